/// Which proxy sections accept each keyword, as in HAProxy's keyword matrix.
enum ProxyKeywords {
    /// `rdp-cookie` (the default name) or `rdp-cookie(<name>)`; nil when malformed or empty.
    static func rdpCookieName(_ word: String, default name: String) -> String? {
        if word == "rdp-cookie" { return name }
        guard word.hasPrefix("rdp-cookie("), word.hasSuffix(")"), word.count > "rdp-cookie()".count else { return nil }
        return String(word.dropFirst("rdp-cookie(".count).dropLast())
    }

    static let allowed: [String: Set<SectionKind>] = [
        "mode": SectionKind.proxies,
        "bind": [.frontend, .listen],
        "default_backend": SectionKind.frontSide,
        "acl": SectionKind.realProxies,
        "use_backend": [.frontend, .listen],
        "tcp-request": SectionKind.proxies,
        "tcp-response": SectionKind.proxies,
        "declare": [.frontend, .listen],
        "stick-table": SectionKind.realProxies,
        "stick": [.backend, .listen],
        "persist": SectionKind.backSide,
        "source": SectionKind.backSide,
        "use-server": [.backend, .listen],
        "force-persist": [.backend, .listen],
        "email-alert": SectionKind.proxies,
        "external-check": SectionKind.backSide,
        "ignore-persist": [.backend, .listen],
        "id": SectionKind.realProxies,
        "balance": SectionKind.backSide,
        "hash-type": SectionKind.backSide,
        "server": [.backend, .listen],
        "server-template": [.backend, .listen],
        "default-server": SectionKind.backSide,
        "timeout": SectionKind.proxies,
        "retries": SectionKind.backSide,
        "fullconn": SectionKind.backSide,
        "rate-limit": SectionKind.frontSide,
        "hash-balance-factor": [.defaults, .backend],
        "load-server-state-from-file": SectionKind.backSide,
        "server-state-file-name": [.backend, .listen],
        "option": SectionKind.proxies,
        "no": SectionKind.proxies,
        "http-check": SectionKind.backSide,
        "tcp-check": SectionKind.backSide,
        "maxconn": SectionKind.frontSide,
        "backlog": SectionKind.frontSide,
        "log": SectionKind.proxies,
        "log-tag": SectionKind.proxies,
        "log-format": SectionKind.proxies,
        "unique-id-format": SectionKind.proxies,
        "description": SectionKind.realProxies,
        "clitcpka-idle": SectionKind.frontSide, "clitcpka-intvl": SectionKind.frontSide, "clitcpka-cnt": SectionKind.frontSide,
        "srvtcpka-idle": SectionKind.backSide, "srvtcpka-intvl": SectionKind.backSide, "srvtcpka-cnt": SectionKind.backSide,
    ]

    /// Timeouts and the sections they belong to (HAProxy: client side in frontends, server side in backends).
    static let timeouts: [String: Set<SectionKind>] = [
        "client": SectionKind.frontSide, "client-fin": SectionKind.frontSide,
        "connect": SectionKind.backSide, "server": SectionKind.backSide, "server-fin": SectionKind.backSide,
        "queue": SectionKind.backSide, "check": SectionKind.backSide, "tunnel": SectionKind.backSide,
    ]

    /// Keywords that only mean something to a proxy in mode http. HAProxy ignores them in a tcp
    /// proxy with a warning, and so does Sluice; in a mode http proxy they are part of the refusal.
    static let httpOnly: Set<String> = [
        "http-request", "http-response", "http-after-response", "http-error", "cookie", "redirect", "errorfile", "errorfiles",
        "errorloc", "errorloc302", "errorloc303", "capture", "stats", "compression", "unique-id-header",
        "monitor-uri", "monitor-net", "http-reuse", "http-send-name-header", "use-fcgi-app", "max-keep-alive-queue",
        "retry-on", "dynamic-cookie-key",
    ]

    /// Options that only mean something to a proxy in mode http.
    static let httpOnlyOptions: Set<String> = [
        "forwardfor", "httpclose", "http-server-close", "http-keep-alive", "forceclose", "http-pretend-keepalive",
        "http-buffer-request", "originalto", "http-use-htx", "http-ignore-probes", "accept-invalid-http-request",
        "accept-invalid-http-response", "http-no-delay", "http-use-proxy-header", "http-restrict-req-hdr-names",
        "h1-case-adjust-bogus-client", "h1-case-adjust-bogus-server", "checkcache", "http_proxy", "prefer-last-server",
        "disable-h2-upgrade", "http-drop-request-trailers", "http-drop-response-trailers",
    ]

    /// Keywords HAProxy removed, applied with their modern meaning after a warning.
    static let removed: [String: String] = [
        "contimeout": "timeout connect", "clitimeout": "timeout client", "srvtimeout": "timeout server",
        "redispatch": "option redispatch",
    ]

    /// Keywords removed from HAProxy with no unambiguous replacement.
    static let removedHTTP: Set<String> = ["reqadd", "rspadd", "reqrep", "rsprep", "reqdel", "rspdel", "reqallow", "reqdeny",
                                           "reqpass", "reqtarpit", "reqirep", "rspirep", "reqidel", "rspidel", "block",
                                           "reqsetbe", "reqisetbe", "rspdeny", "rspideny", "reqiallow", "reqideny", "reqipass", "reqitarpit"]

    /// Keywords HAProxy has in tcp mode that Sluice does not implement yet.
    static let notYet: [String: String] = [
        "dispatch": "'dispatch' is not supported; declare a 'server' line",
        "filter": "filters are not supported",
        "error-log-format": "a format for connection errors before a session exists is not supported; they are logged with the session's 'log-format'",
        "log-format-sd": "structured data (RFC 5424 SD) log formats are not supported; use 'log-format'",
        "bind-process": "removed in HAProxy 2.5; Sluice runs as one process",
        "disabled": "a disabled proxy is not supported yet; comment the proxy out",
        "enabled": "'enabled' is not supported yet",
        "guid": "not supported",
    ]

    /// Keywords a frontend or backend without the capability for them makes HAProxy refuse
    /// (`'server' not allowed because frontend 'f' has no backend capability`, and `use-server`,
    /// which then names no server of the frontend); the others it ignores with a warning.
    static let refusedWithoutCapability: Set<String> = ["server", "server-template", "default-server", "use-server", "declare"]

    static func describe(_ sections: Set<SectionKind>) -> String {
        SectionKind.allCases.filter { sections.contains($0) }.map(\.rawValue).joined(separator: ", ")
    }
}

extension Parser {
    mutating func proxyKeyword(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        let keyword = words[0]
        if ProxyKeywords.httpOnly.contains(keyword) {
            if keyword == "stats" || keyword == "http-request" { proxy.statsLines.append((words, location)) }
            proxy.httpOnly.append((keyword, location))
            return
        }
        if let why = ProxyKeywords.notYet[keyword] {
            error(location, keyword: keyword, "rejected: \(why)")
            return
        }
        if let modern = ProxyKeywords.removed[keyword] {
            warning(location, keyword: keyword, "removed from HAProxy in 2.1; applied as '\(modern)'; write that instead")
            let replaced = modern.split(separator: " ").map(String.init) + words.dropFirst()
            proxyKeyword(&proxy, replaced, location)
            return
        }
        if ProxyKeywords.removedHTTP.contains(keyword) {
            error(location, keyword: keyword, "removed from HAProxy in 2.1 (replaced by 'http-request'/'http-response' rules), and it needs HTTP; Sluice balances at Layer 4")
            return
        }
        guard let allowed = ProxyKeywords.allowed[keyword] else {
            if ["maxpipes", "nbthread", "tune.pipesize", "nosplice", "hard-stop-after", "spread-checks", "daemon", "user", "group",
                "chroot", "pidfile", "ulimit-n", "nbproc", "stats"].contains(keyword) {
                error(location, keyword: keyword, "is not allowed in a '\(proxy.kind.rawValue)' section (it belongs in global)")
            } else {
                error(location, keyword: keyword, "unknown keyword in a '\(proxy.kind.rawValue)' section")
            }
            return
        }
        guard allowed.contains(proxy.kind) else { return misplaced(keyword, allowed, proxy, location) }
        switch keyword {
        case "mode":
            guard expect(words, count: 2, location, usage: "mode tcp") else { return }
            switch words[1] {
            case "tcp", "http":
                // A mode http defaults section is fine when every proxy using it says mode tcp:
                // the verdict waits for the proxy (see `validate`).
                proxy.mode = words[1]
                proxy.modeLocation = location
            default:
                error(location, keyword: "mode", "'\(words[1])' is not supported; Sluice supports 'mode tcp'")
            }
        case "bind":
            guard words.count >= 2 else {
                error(location, keyword: "bind", "missing address: expected 'bind <address>:<port> [backlog <n>]'")
                return
            }
            addBind(&proxy, words[1], Array(words.dropFirst(2)), location)
        case "acl": aclKeyword(&proxy, words, location)
        case "tcp-request": tcpRequestKeyword(&proxy, words, location)
        case "tcp-response": tcpResponseKeyword(&proxy, words, location)
        case "declare": declareKeyword(&proxy, words, location)
        case "use_backend": useBackendKeyword(&proxy, words, location)
        case "stick-table": stickTableKeyword(&proxy, words, location)
        case "stick": stickKeyword(&proxy, words, location)
        case "source":
            // `source <addr>[:<port>] [usesrc <addr2>|client|clientip] [interface <name>]`, HAProxy's words for mistakes.
            guard words.count >= 2 else {
                return error(location, keyword: keyword, "'source' expects <addr>[:<port>], and optionally 'usesrc' <addr>, and 'interface' <name>")
            }
            var binding: SourceBinding?
            switch ValueParser.sourceAddress(words[1]) {
            case .failure(let e): return error(location, keyword: keyword, e.message)
            case .success(let address): binding = SourceBinding(address: address ?? SocketAddress.anyIPv4)
            }
            var k = 2
            while k < words.count {
                guard words[k] == "usesrc" || words[k] == "interface" else {
                    return error(location, keyword: keyword, "'source' only supports optional keywords 'interface' and 'usesrc'")
                }
                guard k + 1 < words.count else {
                    return error(location, keyword: keyword, words[k] == "usesrc" ? "'usesrc' expects <addr>[:<port>], 'client', or 'clientip' as argument"
                                 : "'source' : missing interface name")
                }
                if words[k] == "interface" {
                    binding?.interface = words[k + 1]
                } else {
                    switch ValueParser.presentedSource(words[k + 1]) {
                    case .failure(let e): return error(location, keyword: keyword, e.message)
                    case .success(let presented):
                        binding?.presented = presented
                        transparentSources.append((location, currentSectionLabel))
                    }
                }
                k += 2
            }
            // The wildcard address alone, the default, binds nothing.
            if let b = binding, b.address.isWildcard && b.address.port == 0 && b.interface == nil && b.presented == nil { binding = nil }
            proxy.source = binding
        case "persist":
            // HAProxy's only persistence of this kind: `persist rdp-cookie[(<name>)]`, cookie `msts` by default.
            guard words.count == 2, words[1].hasPrefix("rdp-cookie"), let name = ProxyKeywords.rdpCookieName(words[1], default: "msts") else {
                return error(location, keyword: keyword, "expected 'persist rdp-cookie' or 'persist rdp-cookie(<name>)' (the only kind HAProxy has)")
            }
            proxy.rdpPersistence = name
        case "use-server": useServerKeyword(&proxy, words, location)
        case "force-persist", "ignore-persist": persistRuleKeyword(&proxy, words, location)
        case "email-alert": emailAlertKeyword(&proxy, words, location)
        case "external-check": externalCheckKeyword(&proxy, words, location)
        case "default_backend":
            guard expect(words, count: 2, location, usage: "default_backend <backend>") else { return }
            proxy.defaultBackend = (words[1], location)
        case "balance":
            guard words.count >= 2 else {
                error(location, keyword: keyword, "missing algorithm: expected 'balance roundrobin'")
                return
            }
            let supported = "supported: roundrobin, static-rr, leastconn, first, source, random, hash <expression>, rdp-cookie"
            if words[1].hasPrefix("random(") || words[1] == "random" {
                if words.count > 2 { error(location, keyword: keyword, "'\(words[1])' takes no further arguments") }
                var draws = 2
                if words[1] != "random" {
                    guard words[1].hasSuffix(")"), let n = Int(words[1].dropFirst(7).dropLast()), (1...100).contains(n) else {
                        return error(location, keyword: keyword, "'\(words[1])': expected random(<draws>) with 1 to 100 draws")
                    }
                    draws = n
                }
                proxy.balance = .random
                proxy.randomDraws = draws
            } else if words[1].hasPrefix("rdp-cookie") {
                guard words.count == 2 else { return error(location, keyword: keyword, "'\(words[1])' takes no further arguments") }
                // HAProxy: the cookie `mstshash` unless named; sessions without it go round-robin.
                guard let name = ProxyKeywords.rdpCookieName(words[1], default: "mstshash") else {
                    return error(location, keyword: keyword, "'\(words[1])': expected rdp-cookie or rdp-cookie(<name>)")
                }
                proxy.balance = .hash
                proxy.hashExpression = SampleExpression(fetch: .rdpCookie(name: name))
            } else if words[1] == "hash" {
                guard words.count == 3 else { return error(location, keyword: keyword, "usage: balance hash <expression> (e.g. balance hash src)") }
                switch SampleExpression.parse(words[2], readFile: readFile) {
                case .success(let expression):
                    proxy.balance = .hash
                    proxy.hashExpression = expression
                case .failure(let e): error(location, keyword: keyword, e.message)
                }
            } else if words[1] != "hash", let algorithm = BalanceAlgorithm(rawValue: words[1]) {
                if words.count > 2 { error(location, keyword: keyword, "'\(words[1])' takes no arguments") }
                proxy.balance = algorithm
            } else if words[1].hasPrefix("hash") {
                error(location, keyword: keyword, "algorithm '\(words[1])' is not supported yet; \(supported)")
            } else if ["uri", "url_param", "hdr"].contains(where: { words[1].hasPrefix($0) }) {
                // HAProxy 2.6 in tcp mode: "Layer 7 hash not possible … Falling back to round robin."
                warning(location, keyword: keyword, "'\(words.dropFirst().joined(separator: " "))' is a Layer 7 hash, which needs 'mode http': round-robin is used instead, as HAProxy falls back to")
                proxy.balance = .roundRobin
            } else {
                error(location, keyword: keyword, "unknown algorithm '\(words[1])'; \(supported)")
            }
        case "hash-type":
            guard words.count >= 2 else {
                error(location, keyword: keyword, "missing method: expected 'hash-type map-based'")
                return
            }
            switch words[1] {
            case "map-based", "consistent":
                proxy.consistentHashing = words[1] == "consistent"
                if words.count > 2 {
                    warning(location, keyword: keyword, "'\(words.dropFirst(2).joined(separator: " "))' has no effect: Sluice hashes the client address with its own function (a client keeps its server; which server a given address maps to differs from HAProxy's)")
                }
            default:
                error(location, keyword: keyword, "unknown method '\(words[1])'; expected map-based or consistent")
            }
        case "server":
            serverLine(&proxy, words, location)
        case "server-template":
            serverTemplateLine(&proxy, words, location)
        case "default-server":
            var template = proxy.serverTemplate
            serverParameters(&template, words.dropFirst(1), location, keyword: "default-server")
            proxy.serverTemplate = template
        case "timeout":
            timeoutLine(&proxy, words, location)
        case "rate-limit":
            guard words.count == 3, words[1] == "sessions" else { return error(location, keyword: keyword, "usage: rate-limit sessions <rate per second>") }
            proxy.sessionRateLimit = value(ValueParser.integer(words[2], in: 0...10_000_000, what: "rate"), location, keyword: keyword).flatMap { $0 > 0 ? $0 : nil }
        case "hash-balance-factor":
            guard expect(words, count: 2, location, usage: "hash-balance-factor <percent>") else { return }
            guard let factor = Int(words[1]), factor == 0 || (101...10_000).contains(factor) else {
                return error(location, keyword: keyword, "'\(words[1])' is not 0 (off) or a percentage above 100")
            }
            proxy.balanceFactor = factor
        case "load-server-state-from-file":
            guard expect(words, count: 2, location, usage: "load-server-state-from-file global|local|none") else { return }
            switch words[1] {
            case "global": proxy.serverStateSource = .global
            case "local": proxy.serverStateSource = .local(nil)
            case "none": proxy.serverStateSource = .none
            default: error(location, keyword: keyword, "'\(words[1])' is not one of global, local, none")
            }
        case "server-state-file-name":
            guard words.count <= 2 else { return error(location, keyword: keyword, "usage: server-state-file-name [use-backend-name|<file>]") }
            proxy.serverStateFileName = words.count == 2 && words[1] != "use-backend-name" ? words[1] : nil
        case "fullconn":
            guard expect(words, count: 2, location, usage: "fullconn <conns>") else { return }
            // 0: the default, computed (HAProxy's reading).
            proxy.fullConnections = value(ValueParser.integer(words[1], in: 0...1_000_000, what: "fullconn"), location, keyword: keyword).flatMap { $0 == 0 ? nil : $0 }
        case "retries":
            guard expect(words, count: 2, location, usage: "retries <count>") else { return }
            proxy.retries = value(ValueParser.integer(words[1], in: 0...100, what: "retries"), location, keyword: keyword) ?? proxy.retries
        case "maxconn":
            guard expect(words, count: 2, location, usage: "maxconn <number>") else { return }
            proxy.maxConnections = value(ValueParser.integer(words[1], in: 1...1_000_000, what: "maxconn"), location, keyword: keyword)
        case "backlog":
            guard expect(words, count: 2, location, usage: "backlog <number>") else { return }
            proxy.backlog = value(ValueParser.integer(words[1], in: 1...1_000_000, what: "backlog"), location, keyword: keyword)
        case "option":
            optionLine(&proxy, Array(words.dropFirst()), negated: false, location)
        case "no":
            if words.count >= 2 && words[1] == "log" {
                proxyLogLine(&proxy, Array(words.dropFirst()), negated: true, location)
                return
            }
            guard words.count >= 3, words[1] == "option" else {
                error(location, keyword: "no", "expected 'no option <name>' or 'no log'")
                return
            }
            optionLine(&proxy, Array(words.dropFirst(2)), negated: true, location)
        case "http-check":
            httpCheckLine(&proxy, words, location)
        case "tcp-check":
            tcpCheckLine(&proxy, words, location)
        case "log":
            proxyLogLine(&proxy, words, negated: false, location)
        case "log-tag":
            guard expect(words, count: 2, location, usage: "log-tag <string>") else { return }
            proxy.log.tag = words[1]
        case "log-format":
            guard words.count == 2 else {
                return error(location, keyword: keyword, words.count < 2 ? "expects an argument" : "expects only one argument, don't forget to escape spaces ('\\ ') or to quote the format (as HAProxy)")
            }
            guard proxy.kind != .backend else {
                return warning(location, keyword: keyword, "ignored in a backend: sessions are logged in their frontend's format (as HAProxy)")
            }
            if proxy.kind == .defaults, let previous = proxy.log.format {
                let name = switch previous { case .tcplog: "option tcplog"; case .httplog: "option httplog"; case .custom: "log-format" }
                warning(location, keyword: keyword, "overrides the previous '\(name)' in the defaults section (as HAProxy)")
            }
            proxy.log.format = .custom(words[1], location)
        case "unique-id-format":
            guard words.count == 2 else {
                return error(location, keyword: keyword, words.count < 2 ? "expects an argument" : "expects only one argument, don't forget to escape spaces ('\\ ') or to quote the format (as HAProxy)")
            }
            guard proxy.kind != .backend else {
                return warning(location, keyword: keyword, "ignored in a backend: a session's unique ID is built in its frontend's format (as HAProxy)")
            }
            proxy.uniqueIDFormat = (words[1], location)
        case "description":
            break  // free text for humans; nothing to do at Layer 4
        case "id":
            guard expect(words, count: 2, location, usage: "id <number>") else { return }
            if let id = value(ValueParser.integer(words[1], in: 1...Int(Int32.max), what: "id"), location, keyword: keyword) {
                proxy.id = (id, location)
            }
        case "clitcpka-idle", "clitcpka-intvl", "srvtcpka-idle", "srvtcpka-intvl":
            guard expect(words, count: 2, location, usage: "\(keyword) <time>") else { return }
            guard let time = timeValue(words[1], location, keyword: keyword) else { return }
            if time < .seconds(1) { error(location, keyword: keyword, "must be at least 1s (the kernel counts whole seconds)"); return }
            if keyword.hasPrefix("cli") {
                if keyword.hasSuffix("idle") { proxy.clientKeepAliveTuning.idle = time } else { proxy.clientKeepAliveTuning.interval = time }
            } else {
                if keyword.hasSuffix("idle") { proxy.serverKeepAliveTuning.idle = time } else { proxy.serverKeepAliveTuning.interval = time }
            }
        case "clitcpka-cnt", "srvtcpka-cnt":
            guard expect(words, count: 2, location, usage: "\(keyword) <count>") else { return }
            let count = value(ValueParser.integer(words[1], in: 1...127, what: keyword), location, keyword: keyword)
            if keyword.hasPrefix("cli") { proxy.clientKeepAliveTuning.count = count } else { proxy.serverKeepAliveTuning.count = count }
        default:
            preconditionFailure("keyword '\(keyword)' is in the allowed table but has no handler")
        }
    }

    mutating func addBind(_ proxy: inout ProxyDraft, _ address: String, _ options: [String], _ location: SourceLocation) {
        // Each address is checked, and the parameters too even when an address is wrong, so that
        // one run reports every problem on the line.
        let errorsBefore = errorCount
        defer { if errorCount > errorsBefore { proxy.bindRefused = true } }
        let endpoints: [Endpoint] = address.split(separator: ",").flatMap {
            value(ValueParser.bindEndpoints(String($0), unixPrefix: global.unixBind.prefix), location, keyword: "bind") ?? []
        }
        var bind = Bind(endpoint: Endpoint(host: nil, port: 0))
        var i = 0
        // Every parameter is looked at, so one run reports every problem on the line.
        while i < options.count {
            let option = options[i]
            let needsValue: Set<String> = ["backlog", "interface", "maxconn", "mss", "tcp-ut", "name", "id", "process", "thread", "nice", "shards",
                                           "namespace", "crt", "ca-file", "alpn", "npn", "ciphers", "ciphersuites", "verify", "curves",
                                           "ecdhe", "crl-file", "crt-list", "ssl-min-ver", "ssl-max-ver", "mode", "user", "group", "uid",
                                           "gid", "level", "severity-output", "label", "proto", "accept-netscaler-cip", "quic-cc-algo"]
            let arg = needsValue.contains(option) ? (i + 1 < options.count ? options[i + 1] : nil) : ""
            guard let arg else {
                error(location, keyword: "bind", "'\(option)' needs a value")
                break
            }
            switch option {
            case "backlog":
                bind.backlog = value(ValueParser.integer(arg, in: 1...1_000_000, what: "backlog"), location, keyword: "bind")
            case "maxconn":
                bind.maxConnections = value(ValueParser.integer(arg, in: 1...1_000_000, what: "bind maxconn"), location, keyword: "bind")
            case "v4v6": bind.v6Only = false
            case "v6only": bind.v6Only = true
            case "defer-accept": bind.deferAccept = true
            case "tfo": bind.fastOpen = true
            case "interface": bind.interface = arg
            case "mss":
                bind.maxSegmentSize = value(ValueParser.integer(arg, in: 88...65535, what: "mss"), location, keyword: "bind")
            case "tcp-ut":
                bind.userTimeout = timeValue(arg, location, keyword: "bind")
            case "name": bind.name = arg
            case "shards":
                // HAProxy's words; whether the count fits `nbthread` is checked once `global` is read.
                if arg != "by-thread" {
                    guard let n = Int(arg), (1...64).contains(n) else {
                        error(location, keyword: "bind", "'shards': invalid value \(arg), allowed range is 1..64 or 'by-thread'")
                        break
                    }
                    bind.shards = n
                }
            case "id":
                bind.id = value(ValueParser.integer(arg, in: 1...Int(Int32.max), what: "bind id"), location, keyword: "bind")
            case "process", "thread":
                warning(location, keyword: "bind", "'\(option) \(arg)' has no effect: every Sluice reactor thread accepts on every bind")
            case "nice":
                warning(location, keyword: "bind", "'nice \(arg)' has no effect: Sluice serves every listener alike")
            case "transparent": bind.transparent = true
            case "namespace":
                if bind.endpoint.unix != nil {
                    error(location, keyword: "bind", "'namespace' on a UNIX socket is not supported yet (TCP binds only)")
                } else {
                    bind.namespace = arg
                }
            case "accept-netscaler-cip":
                error(location, keyword: "bind", "'\(option)' is not supported")
            case "accept-proxy":
                bind.acceptProxy = true
            case "ssl", "crt", "crt-list", "alpn", "npn", "ca-file", "verify", "ciphers", "ciphersuites", "curves", "ecdhe", "crl-file",
                 "ssl-min-ver", "ssl-max-ver", "strict-sni", "no-sslv3", "no-tlsv10", "no-tlsv11", "no-tlsv12", "no-tlsv13",
                 "force-tlsv12", "force-tlsv13", "prefer-client-ciphers", "allow-0rtt", "no-tls-tickets", "generate-certificates":
                error(location, keyword: "bind", "'\(option)': TLS termination is not supported; Sluice forwards TLS untouched at Layer 4 (terminate it on the servers)")
            case "mode", "user", "group", "uid", "gid":
                _ = value(ValueParser.unixPermission(option, arg, &bind.unixPermissions), location, keyword: "bind")
            case "level", "severity-output", "expose-fd":
                // HAProxy reads them on stats sockets only and ignores them here.
                warning(location, keyword: "bind", "'\(option) \(arg)' has no effect: it applies to the runtime API's 'stats socket'")
            case "label", "proto", "quic-cc-algo":
                error(location, keyword: "bind", "'\(option)' applies to QUIC listeners, which Sluice does not support")
            default:
                error(location, keyword: "bind", "unknown bind parameter '\(option)'")
            }
            i += needsValue.contains(option) ? 2 : 1
        }
        if let id = bind.id {
            // HAProxy's words.
            if endpoints.count > 1 {
                error(location, keyword: "bind", "'id' can only be used with a single socket ('\(address)' is \(endpoints.count))")
            } else if let other = proxy.binds.first(where: { $0.0.id == id }) {
                error(location, keyword: "bind", "'id': custom id \(id) already used at \(other.1)")
            }
        }
        if bind.unixPermissions != UnixSocketPermissions(), let ip = endpoints.first(where: { $0.unix == nil }) {
            warning(location, keyword: "bind", "'mode', 'uid', 'gid', 'user' and 'group' set a UNIX socket file's permissions; \(ip) is not one (HAProxy ignores them too)")
        }
        if endpoints.contains(where: { $0.unix != nil }) {
            let tcpOnly = [("defer-accept", bind.deferAccept), ("tfo", bind.fastOpen), ("mss", bind.maxSegmentSize != nil), ("tcp-ut", bind.userTimeout != nil),
                           ("interface", bind.interface != nil), ("transparent", bind.transparent), ("v4v6/v6only", bind.v6Only != nil)].filter(\.1).map { "'\($0.0)'" }
            if !tcpOnly.isEmpty {
                warning(location, keyword: "bind", "\(tcpOnly.joined(separator: ", ")) \(tcpOnly.count == 1 ? "applies" : "apply") to TCP listeners only and \(tcpOnly.count == 1 ? "is" : "are") ignored on a UNIX socket (as HAProxy)")
            }
        }
        bind.unixPermissions = bind.unixPermissions.over(global.unixBind.permissions)
        for endpoint in endpoints {
            bind.endpoint = endpoint
            proxy.binds.append((bind, location))
        }
    }

    private mutating func timeoutLine(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        guard words.count >= 2 else {
            error(location, keyword: "timeout", "missing name: expected 'timeout <connect|client|server|…> <time>'")
            return
        }
        let name = words[1]
        let keyword = "timeout \(name)"
        guard let allowed = ProxyKeywords.timeouts[name] else {
            if ["http-request", "http-keep-alive", "tarpit"].contains(name) {
                guard words.count == 3, let time = Duration(haproxyTime: words[2]) else {
                    return error(location, keyword: keyword, words.count == 3 ? "'\(words[2])' is not a time" : "expected '\(keyword) <time>'")
                }
                if name == "http-request" { proxy.httpRequestTimeout = time }
                proxy.httpOnly.removeAll { $0.keyword == keyword }
                proxy.httpOnly.append((keyword, location))
            } else {
                error(location, keyword: keyword, "unknown timeout; supported: connect, client, server, tunnel, client-fin, server-fin, queue, check")
            }
            return
        }
        guard allowed.contains(proxy.kind) else { return misplaced(keyword, allowed, proxy, location) }
        guard words.count == 3 else {
            error(location, keyword: keyword, words.count < 3 ? "missing time: expected '\(keyword) <time>'" : "too many arguments: expected '\(keyword) <time>'")
            return
        }
        guard let time = timeValue(words[2], location, keyword: keyword) else { return }
        switch name {
        case "client": proxy.clientTimeout = time
        case "client-fin": proxy.clientFinTimeout = time
        case "connect": proxy.connectTimeout = time
        case "server": proxy.serverTimeout = time
        case "server-fin": proxy.serverFinTimeout = time
        case "queue": proxy.queueTimeout = time
        case "check": proxy.checkTimeout = time
        case "tunnel": proxy.tunnelTimeout = time
        default: preconditionFailure("timeout '\(name)' is in the table but has no field")
        }
    }

    /// The arguments of a protocol check option, as HAProxy reads them.
    private mutating func protocolCheck(_ name: String, _ args: [String], _ location: SourceLocation, keyword: String) -> ProtocolCheck? {
        switch name {
        case "redis-check", "ssl-hello-chk", "ldap-check":
            if !args.isEmpty { error(location, keyword: keyword, "takes no arguments") }
            return name == "redis-check" ? .redis : name == "ldap-check" ? .ldap : .sslHello
        case "smtpchk":
            // HAProxy: HELO or EHLO with a domain; anything else falls back to "HELO localhost".
            if args.count >= 2 && (args[0] == "HELO" || args[0] == "EHLO") { return .smtp(hello: "\(args[0]) \(args[1])") }
            if !args.isEmpty {
                warning(location, keyword: keyword, "'\(args.joined(separator: " "))' is not 'HELO <domain>' or 'EHLO <domain>'; 'HELO localhost' is sent, as HAProxy does")
            }
            return .smtp(hello: "HELO localhost")
        case "pgsql-check":
            guard args.count == 2, args[0] == "user", !args[1].isEmpty else {
                error(location, keyword: keyword, "expects 'user <username>'")
                return nil
            }
            return .pgsql(user: args[1])
        case "mysql-check":
            if args.isEmpty { return .mysql(user: nil, post41: true) }
            guard args[0] == "user", args.count >= 2, args.count <= 3, !args[1].isEmpty else {
                error(location, keyword: keyword, "expects '[user <username> [post-41|pre-41]]'")
                return nil
            }
            if args.count == 3 && args[2] != "post-41" && args[2] != "pre-41" {
                error(location, keyword: keyword, "'\(args[2])': expected post-41 or pre-41")
                return nil
            }
            return .mysql(user: args[1], post41: args.count < 3 || args[2] == "post-41")
        default:
            preconditionFailure("'\(name)' is not a protocol check")
        }
    }

    /// A logging option of frontends written in a backend: no effect, and HAProxy's warning.
    private mutating func ignoredInBackend(_ location: SourceLocation, _ keyword: String) {
        warning(location, keyword: keyword, "ignored in a backend: it applies to the frontends that log sessions (as HAProxy)")
    }

    /// A keyword in a section that may not hold it. As HAProxy 2.6 does, a frontend ignores a
    /// backend's keyword (and a backend a frontend's) with a warning, except the few HAProxy
    /// refuses (`ProxyKeywords.refusedWithoutCapability`); anywhere else it is an error.
    private mutating func misplaced(_ keyword: String, _ allowed: Set<SectionKind>, _ proxy: ProxyDraft, _ location: SourceLocation) {
        let other: SectionKind = proxy.kind == .frontend ? .backend : .frontend
        guard proxy.kind == .frontend || proxy.kind == .backend, allowed.contains(other) || allowed.contains(.listen),
              !ProxyKeywords.refusedWithoutCapability.contains(keyword) else {
            return error(location, keyword: keyword, "is not allowed in a '\(proxy.kind.rawValue)' section (it belongs in \(ProxyKeywords.describe(allowed)))")
        }
        let hint = keyword == "maxconn" ? "; maybe you want a server's 'maxconn'" : ""
        warning(location, keyword: keyword, "ignored because \(proxy.kind.rawValue) '\(proxy.name)' has no \(other.rawValue) capability (as HAProxy)\(hint)")
    }

    private mutating func optionLine(_ proxy: inout ProxyDraft, _ words: [String], negated: Bool, _ location: SourceLocation) {
        guard let name = words.first else {
            error(location, keyword: "option", "missing option name")
            return
        }
        let keyword = (negated ? "no option " : "option ") + name
        let backOnly: Set<String> = ["redispatch", "allbackups", "httpchk", "tcp-check", "persist"]
        if backOnly.contains(name) && !SectionKind.backSide.contains(proxy.kind) {
            return misplaced(keyword, SectionKind.backSide, proxy, location)
        }
        switch name {
        case "redispatch":
            if words.count > 2 { error(location, keyword: keyword, "too many arguments") }
            proxy.redispatchInterval = -1
            if words.count == 2 {
                if let n = Int(words[1]), let interval = Int32(exactly: n) {
                    proxy.redispatchInterval = Int(interval)
                } else {
                    // HAProxy reads it with atol (a word is 0, which disables the interval); refused here.
                    error(location, keyword: keyword, "'\(words[1])' is not a whole number (the interval: redispatch every <n>th retry, or the -<n>th from the last)")
                }
            }
            proxy.redispatch = !negated
        case "allbackups":
            proxy.allBackups = !negated
        case "persist":
            proxy.persist = !negated
        case "httpchk":
            if negated { proxy.checkKind = .tcpConnect; return }
            var check = proxy.httpCheck
            let args = Array(words.dropFirst())
            // HAProxy: `option httpchk <uri>` alone, or `<method> <uri> [<version>]`.
            switch args.count {
            case 0: break
            case 1: check.uri = args[0]
            case 2: check.method = args[0]; check.uri = args[1]
            case 3: check.method = args[0]; check.uri = args[1]; check.version = args[2]
            default:
                error(location, keyword: keyword, "too many arguments: expected 'option httpchk [<method>] [<uri>] [<version>]'; add headers with 'http-check send hdr <name> <value>'")
            }
            if !check.uri.hasPrefix("/") && check.uri != "*" {
                error(location, keyword: keyword, "URI '\(check.uri)' must start with '/'")
            }
            proxy.httpCheck = check
            proxy.checkKind = .http
        case "tcp-check":
            proxy.checkKind = negated ? .tcpConnect : .tcp
        case "splice-auto", "splice-request", "splice-response":
            break  // Sluice always splices (unless 'nosplice' in global): the option is already in effect.
        case "tcplog":
            // HAProxy refuses the negation too: a defaults' tcplog cannot be undone in a proxy.
            if negated { return error(location, keyword: keyword, "negation is not supported for option 'tcplog' (as in HAProxy)") }
            guard proxy.kind != .backend else { return ignoredInBackend(location, keyword) }
            proxy.log.format = .tcplog(location)
        case "httplog" where proxy.kind == .backend && !negated, "dontlognull" where proxy.kind == .backend:
            ignoredInBackend(location, keyword)
        case "httplog":
            // In a tcp proxy HAProxy logs as with 'option tcplog' (its warning comes with the proxies).
            if !negated {
                proxy.log.format = .httplog(location)
            } else if case .httplog = proxy.log.format {
                proxy.log.format = nil
            }
        case "dontlognull":
            proxy.log.dontLogNull = !negated
        case "logasap", "log-separate-errors", "dontlog-normal":
            guard proxy.kind != .backend else { return ignoredInBackend(location, keyword) }
            switch name {
            case "logasap": proxy.log.logAsap = !negated
            case "log-separate-errors": proxy.log.separateErrors = !negated
            default: proxy.log.dontLogNormal = !negated
            }
        case "log-health-checks":
            guard proxy.kind != .frontend else {
                return warning(location, keyword: keyword, "ignored in a frontend: it applies to the backends whose servers are checked (as HAProxy)")
            }
            proxy.logHealthChecks = !negated
        case "httpslog":
            // A TLS-terminating HTTP format: nothing of it applies to a tcp proxy.
            error(location, keyword: keyword, "rejected: 'option httpslog' needs 'mode http' and TLS termination; use 'option tcplog' or 'log-format'")
        case "socket-stats", "contstats":
            warning(location, keyword: keyword, "accepted without effect: Sluice keeps its statistics per proxy and server, updated as data moves")
        case "tcpka":
            if proxy.kind != .backend { proxy.clientKeepAlive = !negated }
            if proxy.kind != .frontend { proxy.serverKeepAlive = !negated }
        case "clitcpka":
            guard SectionKind.frontSide.contains(proxy.kind) else { return misplaced(keyword, SectionKind.frontSide, proxy, location) }
            proxy.clientKeepAlive = !negated
        case "srvtcpka":
            guard SectionKind.backSide.contains(proxy.kind) else { return misplaced(keyword, SectionKind.backSide, proxy, location) }
            proxy.serverKeepAlive = !negated
        case "nolinger":
            proxy.noLinger = !negated
        case "abortonclose":
            guard SectionKind.backSide.contains(proxy.kind) else { return misplaced(keyword, SectionKind.backSide, proxy, location) }
            proxy.abortOnClose = !negated
        case "tcp-smart-accept", "tcp-smart-connect":
            // Both delay the first packet exchange until data flows; Sluice cannot know that the
            // protocol is client-speaks-first (MySQL, SMTP and Redis Sentinel servers speak first).
            warning(location, keyword: keyword, "accepted without effect: Sluice accepts and connects at once, which is safe for server-speaks-first protocols; use 'bind … defer-accept' where clients always speak first")
        case "independent-streams":
            proxy.independentStreams = !negated
        case "transparent":
            error(location, keyword: keyword, "rejected: 'option transparent' is not supported; a server at '0.0.0.0' without a port ('server original 0.0.0.0') connects each client to the address and port it asked for (before NAT), which is what this option does")
        case "ldap-check", "mysql-check", "pgsql-check", "redis-check", "smtpchk", "ssl-hello-chk":
            guard SectionKind.backSide.contains(proxy.kind) else { return misplaced(keyword, SectionKind.backSide, proxy, location) }
            if negated { proxy.checkKind = .tcpConnect; return }
            if let check = protocolCheck(name, Array(words.dropFirst()), location, keyword: keyword) {
                proxy.checkKind = .protocolCheck(check)
            }
        case "spop-check":
            error(location, keyword: keyword, "rejected: SPOE agents are not supported")
        case "external-check":
            guard SectionKind.backSide.contains(proxy.kind) else { return misplaced(keyword, SectionKind.backSide, proxy, location) }
            proxy.checkKind = negated ? .tcpConnect : .external
        case _ where ProxyKeywords.httpOnlyOptions.contains(name):
            if negated {
                proxy.httpOnly.removeAll { $0.keyword == "option \(name)" }
            } else {
                proxy.httpOnly.append(("option \(name)", location))
            }
        default:
            error(location, keyword: keyword, "unknown option")
        }
    }
}
