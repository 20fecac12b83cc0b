/// TLS to servers. Sluice originates TLS for health checks only (`check-ssl`, `http-check|tcp-check
/// connect ssl`), with HAProxy's server settings; the traffic it forwards is never deciphered, so
/// `ssl` on a server stays refused.
///
/// A server line's TLS words are collected as it is read (`ServerTLSDraft`) and resolved once the
/// whole file is: whether its checks use TLS depends on its backend's `connect` rule and on
/// `global` (`ssl-server-verify`, `ca-base`, `crt-base`), which may come later.
struct ServerTLSDraft {
    var checkSSL = false
    var settings = CheckTLS()
    /// `verify` written (else `ssl-server-verify` decides).
    var verifyGiven = false
    /// `alpn`: the server's protocols, which checks offer when `check-alpn` is not written.
    var serverALPN: String?
    var versions = TLSVersionFlags()
    /// Every TLS word written, for the "no effect" warning when the checks stay plain.
    var given: [Given] = []

    struct Given: Hashable {
        let keyword: String
        let location: SourceLocation
    }
}

/// A backend's `http-check connect ssl …` or `tcp-check connect ssl …`.
struct ConnectTLS {
    var sni: String?
    var alpn: String?
}

/// The `global` words that shape TLS checks.
struct GlobalTLS {
    /// `ssl-server-verify none`.
    var verify = true
    var caBase: String?
    var crtBase: String?
    /// `ssl-default-server-ciphers`, `-ciphersuites`, and `ssl-default-server-options`' bounds.
    var ciphers: String?
    var cipherSuites: String?
    var minVersion: TLSVersion?
    var maxVersion: TLSVersion?
    var versions = TLSVersionFlags()
}

/// `no-sslv3` … `no-tlsv13` and `force-sslv3` … `force-tlsv13`, on a server line or in
/// `ssl-default-server-options`.
struct TLSVersionFlags {
    var disabled: Set<TLSVersion> = []
    var forced: TLSVersion?

    static let words: Set<String> = Set(TLSVersion.allCases.flatMap { ["no-\($0.flagSuffix)", "force-\($0.flagSuffix)"] })

    /// Takes `word` if it is one of them.
    mutating func take(_ word: String) -> Bool {
        if let version = TLSVersion.allCases.first(where: { word == "no-\($0.flagSuffix)" }) {
            disabled.insert(version)
        } else if let version = TLSVersion.allCases.first(where: { word == "force-\($0.flagSuffix)" }) {
            forced = version
        } else {
            return false
        }
        return true
    }
}

enum TLSKeywords {
    /// Server words Sluice applies to TLS checks (each takes a value unless listed in `flags`).
    static let applied: Set<String> = [
        "verify", "ca-file", "crl-file", "crt", "verifyhost", "check-sni", "check-alpn", "alpn", "ciphers", "ciphersuites", "curves",
        "sigalgs", "client-sigalgs", "ssl-min-ver", "ssl-max-ver",
    ]
    static let flags: Set<String> = TLSVersionFlags.words.union(["no-verifyhost"])

    /// Words that change nothing in a check, with the reason.
    static let noEffect: [String: String] = [
        "sni": "it names the server for forwarded traffic, which Sluice does not cipher; checks send 'check-sni'",
        "npn": "NPN is obsolete and Sluice's checks offer ALPN only",
        "allow-0rtt": "early data needs a resumed session, and each check opens a new one",
        "ssl-reuse": "each check opens a new TLS session", "no-ssl-reuse": "each check opens a new TLS session",
        "tls-tickets": "each check opens a new TLS session", "no-tls-tickets": "each check opens a new TLS session",
    ]
}

extension Parser {
    /// `ssl-server-verify`, `ca-base`, `crt-base` and the `ssl-default-server-…` lines of `global`:
    /// the defaults of servers whose checks use TLS.
    mutating func globalTLSLine(_ words: [String], _ location: SourceLocation) {
        let keyword = words[0]
        if keyword != "ssl-default-server-options" {
            guard expect(words, count: 2, location, usage: "\(keyword) <\(keyword == "ssl-server-verify" ? "none|required" : "value")>") else { return }
        }
        switch keyword {
        case "ssl-server-verify":
            switch words[1] {
            case "none": globalTLS.verify = false
            case "required": globalTLS.verify = true
            default: error(location, keyword: keyword, "'\(words[1])': expected none or required")
            }
        case "ca-base": globalTLS.caBase = words[1]
        case "crt-base": globalTLS.crtBase = words[1]
        case "ssl-default-server-ciphers": globalTLS.ciphers = words[1]
        case "ssl-default-server-ciphersuites": globalTLS.cipherSuites = words[1]
        default:
            var i = 1
            while i < words.count {
                let word = words[i]
                if word == "ssl-min-ver" || word == "ssl-max-ver" {
                    guard i + 1 < words.count, let version = TLSVersion(rawValue: words[i + 1]) else {
                        return error(location, keyword: keyword, "'\(word)' expects one of \(TLSVersion.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    if word == "ssl-min-ver" { globalTLS.minVersion = version } else { globalTLS.maxVersion = version }
                    i += 2
                    continue
                }
                if !globalTLS.versions.take(word) && (TLSKeywords.noEffect[word] == nil || word == "sni" || word == "npn") {
                    error(location, keyword: keyword, "'\(word)' is not supported; supported: ssl-min-ver, ssl-max-ver, no-<version>, force-<version>, no-tls-tickets, no-ssl-reuse")
                }
                i += 1
            }
        }
    }

    /// `ssl`, `sni <name>`, `alpn <list>` of `http-check connect` / `tcp-check connect`, at `i`.
    mutating func connectTLSOption(_ tls: inout (ssl: Bool, sni: String?, alpn: String?), _ args: [String], _ i: inout Int,
                                   _ location: SourceLocation, keyword: String) -> Bool {
        if args[i] == "ssl" {
            tls.ssl = true
            i += 1
            return true
        }
        guard i + 1 < args.count else {
            error(location, keyword: keyword, "'\(args[i])' needs a value")
            return false
        }
        if args[i] == "sni" { tls.sni = args[i + 1] } else { tls.alpn = args[i + 1] }
        i += 2
        return true
    }

    /// Reads one TLS word of a server line into `draft`; false if `param` is not one.
    mutating func tlsParameter(_ draft: inout ServerTLSDraft, _ param: String, _ arg: String, _ location: SourceLocation,
                               keyword: String, who: String) -> Bool {
        switch param {
        case "check-ssl": draft.checkSSL = true; return true
        case "no-check-ssl": draft.checkSSL = false; return true
        case "no-ssl": return true  // what Sluice does anyway
        case _ where TLSKeywords.noEffect[param] != nil:
            warning(location, keyword: keyword, "'\(param)'\(who) has no effect: \(TLSKeywords.noEffect[param] ?? "")")
            return true
        case _ where TLSKeywords.applied.contains(param) || TLSKeywords.flags.contains(param):
            break
        default:
            return false
        }
        draft.given.append(.init(keyword: param, location: location))
        var s = draft.settings
        switch param {
        case "verify":
            switch arg {
            case "none": s.verify = false
            case "required": s.verify = true
            default: error(location, keyword: keyword, "'verify \(arg)'\(who): expected none or required")
            }
            draft.verifyGiven = true
        case "ca-file": s.caFile = arg
        case "crl-file": s.crlFile = arg
        case "crt": s.certificate = arg
        case "verifyhost": s.verifyHost = arg
        case "no-verifyhost": s.verifyHost = nil
        case "check-sni": s.sni = arg
        case "check-alpn": s.alpn = arg
        case "alpn": draft.serverALPN = arg
        case "ciphers": s.ciphers = arg
        case "ciphersuites": s.cipherSuites = arg
        case "curves": s.curves = arg
        case "sigalgs": s.signatureAlgorithms = arg
        case "client-sigalgs": s.clientSignatureAlgorithms = arg
        case "ssl-min-ver", "ssl-max-ver":
            guard let version = TLSVersion(rawValue: arg) else {
                error(location, keyword: keyword, "'\(param) \(arg)'\(who): expected one of \(TLSVersion.allCases.map(\.rawValue).joined(separator: ", "))")
                break
            }
            if param == "ssl-min-ver" { s.minVersion = version } else { s.maxVersion = version }
        default:
            _ = draft.versions.take(param)
        }
        draft.settings = s
        return true
    }

    /// Sets the TLS of every checked server whose checks use it (`check-ssl`, or its backend's
    /// `connect ssl`), with HAProxy's defaults and refusals, and warns of TLS words that stay
    /// without effect.
    mutating func resolveCheckTLS(_ proxy: inout ProxyDraft, global: GlobalTLS) {
        var unused: [ServerTLSDraft.Given] = []
        for j in proxy.servers.indices {
            let (server, location) = proxy.servers[j]
            let draft = proxy.serverTLS[server.name] ?? ServerTLSDraft()
            // As HAProxy, the settings are checked wherever checks would use TLS, `check` or not.
            guard draft.checkSSL || proxy.checkConnectTLS != nil else {
                unused += draft.given
                continue
            }
            switch Self.checkTLS(draft, connect: proxy.checkConnectTLS, global: global, loaded: &loadedTLS) {
            case .success(let tls): proxy.servers[j].0.check?.tls = tls
            case .failure(let problem): report(.error, proxy, location, keyword: "server", "'\(server.name)': \(problem.message)")
            }
        }
        for given in Set(unused).sorted(by: { ($0.location.line, $0.keyword) < ($1.location.line, $1.keyword) }) {
            report(.warning, proxy, given.location, keyword: "server",
                   "'\(given.keyword)' has no effect where the checks are plain: Sluice uses TLS to servers only for health checks ('check-ssl', 'http-check connect ssl'), and forwards traffic untouched")
        }
    }

    /// One server's check TLS: HAProxy's verify default and refusal, `ca-base`/`crt-base`, the
    /// version bounds, and its files loaded (so a missing one is an error now, not at the first check).
    static func checkTLS(_ draft: ServerTLSDraft, connect: ConnectTLS?, global: GlobalTLS,
                         loaded: inout [CheckTLS: SluiceError?]) -> Result<CheckTLS, SluiceError> {
        var tls = draft.settings
        if !draft.verifyGiven { tls.verify = global.verify }
        if let connect {
            if let sni = connect.sni { tls.sni = sni }
            if let alpn = connect.alpn { tls.alpn = alpn }
        }
        func based(_ path: String?, _ base: String?) -> String? {
            guard let path, let base, !path.hasPrefix("/"), path != "@system-ca" else { return path }
            return base + "/" + path
        }
        tls.caFile = based(tls.caFile, global.caBase)
        tls.crlFile = based(tls.crlFile, global.caBase)
        tls.certificate = based(tls.certificate, global.crtBase)
        tls.ciphers = tls.ciphers ?? global.ciphers
        tls.cipherSuites = tls.cipherSuites ?? global.cipherSuites
        tls.minVersion = tls.minVersion ?? global.minVersion
        tls.maxVersion = tls.maxVersion ?? global.maxVersion
        tls.alpn = tls.alpn ?? draft.serverALPN  // HAProxy: checks offer the server's ALPN unless `check-alpn`
        let forced = draft.versions.forced ?? global.versions.forced
        let disabled = draft.versions.disabled.union(global.versions.disabled)
        if let forced {
            tls.minVersion = forced
            tls.maxVersion = forced
        } else if !disabled.isEmpty {
            // HAProxy's rule: the lowest version left on, up to the first one off above it.
            let on = TLSVersion.allCases.filter { !disabled.contains($0) }
            guard let low = on.first else { return .failure(SluiceError("every TLS version is disabled")) }
            tls.minVersion = max(tls.minVersion ?? low, low)
            if let gap = TLSVersion.allCases.first(where: { $0 > low && disabled.contains($0) }),
               let below = TLSVersion.allCases.last(where: { $0 < gap }) {
                tls.maxVersion = min(tls.maxVersion ?? below, below)
            }
        }
        if tls.verify && tls.caFile == nil {
            // HAProxy 2.6's words (ssl_sock_prepare_srv_ctx).
            return .failure(SluiceError("verify is enabled by default but no CA file specified. If you're running on a LAN where you're certain to trust the server's certificate, please set an explicit 'verify none' statement on the 'server' line, or use 'ssl-server-verify none' in the global section to disable server-side verifications by default."))
        }
        if loaded[tls] == nil {
            do {
                _ = try TLSClientContext(tls)
                loaded[tls] = .some(nil)
            } catch {
                loaded[tls] = .some(error)
            }
        }
        if let problem = loaded[tls] ?? nil { return .failure(problem) }
        return .success(tls)
    }
}
