/// A configuration read from text, with the warnings its reading produced.
public struct ParsedConfiguration: Sendable {
    /// What runs.
    public var configuration: Configuration
    /// Keywords accepted but without effect at Layer 4, and similar notices. Never empty-handed:
    /// each names file:line and the keyword.
    public var warnings: [ConfigDiagnostic]
}

extension Configuration {
    /// Reads HAProxy-style configuration text (one or more files, in order, as `-f` repeated).
    ///
    /// - Throws: `ConfigurationError` with every error found, each naming file:line, section and keyword.
    public static func parse(_ sources: [(file: String, text: String)]) throws(ConfigurationError) -> ParsedConfiguration {
        try parse(sources, readFile: Parser.readFile)
    }

    /// `readFile` reads the files the configuration names (`acl … -f`), or says why not.
    static func parse(_ sources: [(file: String, text: String)], readFile: @escaping (String) -> Result<String, SystemError>) throws(ConfigurationError) -> ParsedConfiguration {
        var parser = Parser(readFile: readFile)
        for source in sources { parser.read(source.text, file: source.file) }
        return try parser.finish()
    }

    /// Reads one HAProxy-style configuration text.
    public static func parse(_ text: String, file: String = "<text>") throws(ConfigurationError) -> ParsedConfiguration {
        try parse([(file: file, text: text)])
    }
}

/// Sections of HAProxy's that Sluice does not read.
enum ForeignSection: String {
    case userlist, program, ring, cache
    case httpErrors = "http-errors", logForward = "log-forward", fcgiApp = "fcgi-app", crtStore = "crt-store"

    /// Why the section changes nothing for a tcp-mode proxy; nil when it would, and is refused.
    var unusedBecause: String? {
        switch self {
        case .userlist: "user lists serve HTTP authentication, which needs mode http"
        case .httpErrors: "HTTP error pages need mode http"
        case .cache: "the HTTP cache needs mode http"
        case .fcgiApp: "FastCGI applications need mode http"
        case .crtStore: "certificates serve TLS termination, and Sluice forwards TLS untouched"
        default: nil
        }
    }

    var refusal: String {
        switch self {
        case .program: "Sluice runs no external programs; start them with your service manager"
        case .ring: "log rings are not supported yet"
        case .logForward: "syslog forwarding is not supported"
        default: "not supported"
        }
    }
}

/// The section kinds, as HAProxy names them.
enum SectionKind: String, CaseIterable {
    case global, defaults, frontend, backend, listen

    static let proxies: Set<SectionKind> = [.defaults, .frontend, .backend, .listen]
    static let frontSide: Set<SectionKind> = [.defaults, .frontend, .listen]
    static let backSide: Set<SectionKind> = [.defaults, .backend, .listen]
    static let realProxies: Set<SectionKind> = [.frontend, .backend, .listen]

    /// How HAProxy's messages name a proxy of this kind (`proxy_type_str`): a `listen` section,
    /// both frontend and backend, is a "proxy".
    var haproxyTypeName: String { self == .listen ? "proxy" : rawValue }
}

/// Settings that a `defaults` section passes to the proxies after it, and that a proxy accumulates.
struct ProxyDraft {
    var kind: SectionKind
    var name: String
    var location: SourceLocation
    /// `id`: the proxy's number (`show stat`'s `iid`), and where it was set.
    var id: (Int, SourceLocation)?
    var binds: [(Bind, SourceLocation)] = []
    var defaultBackend: (String, SourceLocation)?
    var maxConnections: Int?
    /// `rate-limit sessions`.
    var sessionRateLimit: Int?
    /// `email-alert …` lines.
    var emailAlert = EmailAlertDraft()
    /// `unique-id-format`, as written, and where.
    var uniqueIDFormat: (text: String, location: SourceLocation)?
    var backlog: Int?
    var clientTimeout: Duration?
    /// `timeout http-request`: read only by a statistics page (other HTTP use is refused).
    var httpRequestTimeout: Duration?
    var clientFinTimeout: Duration?
    var connectTimeout: Duration?
    var serverTimeout: Duration?
    var serverFinTimeout: Duration?
    var tunnelTimeout: Duration?
    var queueTimeout: Duration?
    var checkTimeout: Duration?
    var balance: BalanceAlgorithm = .roundRobin
    var consistentHashing = false
    var randomDraws = 2
    var balanceFactor = 0
    var hashExpression: SampleExpression?
    /// `persist rdp-cookie[(<name>)]`: the cookie's name.
    var rdpPersistence: String?
    var source: SourceBinding?
    /// `fullconn`.
    var fullConnections: Int?
    var retries = 3
    /// `load-server-state-from-file`, and `server-state-file-name` (its own line, any order).
    var serverStateSource: ServerStateSource = .none
    var serverStateFileName: String?
    var redispatch = false
    var redispatchInterval = -1
    var persist = false
    var allBackups = false
    var serverTemplate = ServerTemplate()
    var servers: [(Server, SourceLocation)] = []
    /// Each server's TLS words, by name, resolved with the backend's and global's (`TLSKeywords`).
    var serverTLS: [String: ServerTLSDraft] = [:]
    /// `http-check connect ssl` / `tcp-check connect ssl`: every checked server's checks use TLS.
    var checkConnectTLS: ConnectTLS?
    /// Which active check `check` runs: chosen by `option httpchk` / `option tcp-check`.
    var checkKind: CheckKind = .tcpConnect
    /// `external-check command` and `external-check path`, and where each was written.
    var externalCheckCommand: (String, SourceLocation)?
    var externalCheckPath: (String, SourceLocation)?
    var httpCheck = HTTPCheck()
    var tcpCheckRules: [TCPCheckRule] = []
    /// `mode`, and where it was set (nil: HAProxy's default, tcp).
    var mode = "tcp"
    var modeLocation: SourceLocation?
    /// Keywords that only mean something in mode http, where they were written: ignored with a
    /// warning in a tcp proxy (as HAProxy does), part of the refusal of a mode http one.
    var httpOnly: [(keyword: String, location: SourceLocation)] = []
    /// `option clitcpka` / `option srvtcpka` (`option tcpka` sets both).
    var clientKeepAlive = false
    var serverKeepAlive = false
    /// `option nolinger`, `option abortonclose`, `option independent-streams`.
    var noLinger = false
    var abortOnClose = false
    var independentStreams = false
    /// `option log-health-checks`.
    var logHealthChecks = false
    /// `clitcpka-*` / `srvtcpka-*`: probe timing when keep-alive is on.
    /// A `bind` line of this proxy had an error: "no bind" would only repeat it.
    var bindRefused = false
    /// Likewise for a `server` line: "no server" would only repeat its error.
    var serverRefused = false
    var clientKeepAliveTuning = TCPKeepAlive()
    var serverKeepAliveTuning = TCPKeepAlive()
    /// `acl`, `tcp-request`, `use_backend`, `stick-table`.
    var routing = RoutingDraft()
    /// `log`, `log global`, `no log`, `log-tag`, `option tcplog`, `option dontlognull`.
    var log = LogDraft()
    /// `stats …` and `http-request …` lines with their words: a mode http proxy made only of these
    /// is a statistics page.
    var statsLines: [([String], SourceLocation)] = []

    enum CheckKind { case tcpConnect, http, tcp, protocolCheck(ProtocolCheck), external }

    static let placeholder = ProxyDraft(kind: .defaults, name: "", location: SourceLocation(file: "", line: 0))

    var label: String { kind == .defaults && name.isEmpty ? "defaults" : "\(kind.rawValue) '\(name)'" }
}

extension Parser {
    /// A backend without servers is valid, as in HAProxy (kind, for one, starts its balancer so and
    /// writes the servers in later): its connections are closed at once until it has one.
    static let noServerYet = "every connection to it is closed at once until servers are added (by a reload, or the runtime API's 'add server')"

    /// Whether a setting of `proxy` written at `location` came from a `defaults` section: those
    /// come before the proxies that use them.
    static func isInherited(_ location: SourceLocation, by proxy: ProxyDraft) -> Bool {
        location.file != proxy.location.file || location.line < proxy.location.line
    }
}

/// What `default-server` sets and each `server` line starts from.
struct ServerTemplate {
    /// `id` (a `server` line only).
    var id: Int?
    var observeLayer4 = false
    var errorLimit = 10
    var onError = ObservedErrorAction.failCheck
    var shutdownSessionsWhenDown = false
    var shutdownBackupSessionsWhenUp = false
    var weight = 1
    var isBackup = false
    var isDisabled = false
    var checkEnabled = false
    var check = ServerCheck()
    var maxConnections: Int?
    var minConnections: Int?
    /// `agent-check` (`no-agent-check` clears it) and the `agent-*` parameters, which count only with it.
    var agentEnabled = false
    var agentPort: Int?
    var agentAddress: String?
    var agentInterval: Duration?
    var agentSend: [UInt8] = []
    var maxQueue: Int?
    /// HAProxy's `pp_opts` bits as `send-proxy*`, `no-send-proxy*` and `proxy-v2-options` leave
    /// them; `proxyProtocol` reads them as HAProxy's `make_proxy_line` does.
    var sendsProxyV1 = false
    var sendsProxyV2 = false
    var proxyV2Options: ProxyV2Options = []
    /// v2 when asked for; otherwise any bit left makes HAProxy send v1 (`proxy-v2-options` alone,
    /// or `no-send-proxy-v2` under a `default-server send-proxy-v2-ssl`).
    var proxyProtocol: ProxyProtocolVersion? {
        sendsProxyV2 ? .v2 : sendsProxyV1 || !proxyV2Options.isEmpty ? .v1 : nil
    }
    var initAddress: [InitAddressMethod]?
    /// `resolve-prefer`; nil: HAProxy's default (IPv6 with `resolvers`, IPv4 otherwise).
    var preferIPv6: Bool?
    var resolvers: String?
    var resolveNetworks: [String] = []
    var allowDuplicateAddress = false
    var ignoreSRVWeight = false
    var slowStart: Duration?
    var track: TrackTarget?
    var checkSendProxy = false
    var socks4: Endpoint?
    var checkViaSocks4 = false
    var namespace: String?
    var nonStick = false
    var userTimeout: Duration?
    var fastOpen = false
    var source: SourceBinding?
    var tls = ServerTLSDraft()
}

struct Parser {
    private(set) var diagnostics: [ConfigDiagnostic] = []
    /// Reads a file the configuration names (`acl … -f <file>`).
    let readFile: (String) -> Result<String, SystemError>

    init(readFile: @escaping (String) -> Result<String, SystemError>) { self.readFile = readFile }
    var global = Global()
    /// `global`'s TLS defaults for checks.
    var globalTLS = GlobalTLS()
    /// Check TLS settings already loaded, and what loading them said: a thousand servers sharing a
    /// CA bundle load it once.
    var loadedTLS: [CheckTLS: SluiceError?] = [:]
    /// Lines with `usesrc` (transparent proxying, which needs privileges `user` gives up).
    var transparentSources: [(location: SourceLocation, section: String?)] = []
    /// Tables `stick` rules use: they show `server_id`.
    var stickTablesWithServers: Set<String> = []
    /// The primary group of `user`, used when no `group`/`gid` line names one.
    var implicitGroup: UInt32?
    private var sawGlobal = false
    private var defaults = ProxyDraft(kind: .defaults, name: "", location: SourceLocation(file: "", line: 0))
    private(set) var proxies: [ProxyDraft] = []
    /// How many proxies preceded the first `stats` line of `global`, which creates HAProxy's
    /// `GLOBAL` proxy (the stats socket's): its id is 0, and it moves the numbering cursor past
    /// one more entry, so the proxies after it are numbered from 2.
    var cliProxyPosition: Int?
    /// `defaults <name>` sections, for `from <name>`.
    private var namedDefaults: [String: ProxyDraft] = [:]
    private var section: SectionKind?
    /// `resolvers` sections with where each starts; `inResolvers` while lines belong to the last one.
    var resolverSections: [(Resolvers, SourceLocation)] = []
    /// Sections with a `nameserver` line, valid or not ("no nameserver" would only repeat its error).
    var sectionsNamingNameservers: Set<String> = []
    private var inResolvers = false
    /// `peers` sections; `inPeers` while lines belong to the last one.
    var peersSections: [PeersDraft] = []
    private var inPeers = false
    /// `mailers` sections; `inMailers` while lines belong to the last one.
    var mailersSections: [MailersDraft] = []
    private var inMailers = false
    /// `localpeer` in global: the local peer's name (else the host name, as HAProxy).
    var localPeer: String?
    /// Each stick table's `peers <name>`, where it was written and in which section.
    private(set) var tablePeers: [(name: String, location: SourceLocation, section: String?)] = []
    /// Set while the current section is one whose lines are skipped (after an error in its header).
    private var skippingSection = false

    // MARK: Reading

    mutating func read(_ text: String, file: String) {
        var lineNumber = 0
        for rawLine in text.lines {
            lineNumber += 1
            let location = SourceLocation(file: file, line: lineNumber)
            let words: [String]
            do {
                words = try Tokenizer.words(rawLine)
            } catch {
                switch error {
                case .unterminatedQuote(let q): self.error(location, keyword: nil, "unterminated \(q == "'" ? "single" : "double") quote")
                case .badEscape(let what): self.error(location, keyword: nil, "bad escape: \(what)")
                }
                continue
            }
            guard let first = words.first else { continue }
            if first == "resolvers" {
                openResolvers(words, location)
            } else if first == "peers" {
                openPeers(words, location)
            } else if first == "mailers" {
                openMailers(words, location)
            } else if let foreign = ForeignSection(rawValue: first) {
                openForeignSection(foreign, words, location)
            } else if let kind = SectionKind(rawValue: first) {
                openSection(kind, words, location)
            } else {
                keywordLine(words, location)
            }
        }
    }

    private mutating func openSection(_ kind: SectionKind, _ words: [String], _ location: SourceLocation) {
        section = kind
        skippingSection = false
        inResolvers = false
        inPeers = false
        inMailers = false
        currentSectionLabel = kind == .global ? "global" : words.count > 1 ? "\(kind.rawValue) '\(words[1])'" : kind.rawValue
        switch kind {
        case .global:
            if words.count > 1 { error(location, keyword: "global", "takes no arguments") }
            sawGlobal = true
        case .defaults:
            // A new defaults section starts from HAProxy's defaults, not from the previous one.
            var fresh = ProxyDraft(kind: .defaults, name: words.count > 1 ? words[1] : "", location: location)
            if words.count > 2 {
                if words[2] == "from", words.count == 4, let base = namedDefaults[words[3]] {
                    fresh = base
                    fresh.name = words[1]
                    fresh.location = location
                } else if words[2] == "from", words.count == 4 {
                    error(location, keyword: "defaults", "no defaults section named '\(words[3])' before this line")
                } else {
                    error(location, keyword: "defaults", "expected 'defaults [<name>] [from <defaults>]'")
                }
            }
            defaults = fresh
        case .frontend, .backend, .listen:
            guard words.count >= 2 else {
                error(location, keyword: kind.rawValue, "needs a name: '\(kind.rawValue) <name>'")
                skippingSection = true
                return
            }
            let name = words[1]
            if let bad = Self.invalidNameCharacter(name) {
                error(location, keyword: kind.rawValue, "name '\(name)' has the character '\(bad)'; use letters, digits, '-', '_', '.' and ':'")
            }
            var draft = defaults
            var rest = Array(words.dropFirst(2))
            if let from = rest.firstIndex(of: "from") {
                if from + 1 < rest.count, let named = namedDefaults[rest[from + 1]] {
                    draft = named
                } else {
                    error(location, keyword: kind.rawValue, from + 1 < rest.count
                          ? "no defaults section named '\(rest[from + 1])' before this line" : "'from' needs the name of a defaults section")
                }
                rest.removeSubrange(from..<min(from + 2, rest.count))
            }
            draft.kind = kind
            draft.name = name
            draft.location = location
            if kind != .backend, let address = rest.first {
                // HAProxy's legacy `listen|frontend <name> <address>` form, which HAProxy 2.6 refuses.
                warning(location, keyword: kind.rawValue, "an address after the name is refused by HAProxy 2.6 (\"please use the 'bind' keyword for listening addresses\"); applied as '\((["bind"] + rest).joined(separator: " "))'; write that instead")
                addBind(&draft, address, Array(rest.dropFirst()), location)
            } else if !rest.isEmpty {
                error(location, keyword: kind.rawValue, "unexpected '\(rest[0])' after the \(kind.rawValue) name")
            }
            proxies.append(draft)
        }
    }

    /// The first character HAProxy does not allow in a proxy or ACL name (letters, digits, `-_.:`).
    static func invalidNameCharacter(_ name: String) -> Character? {
        name.first { !($0.isLetter || $0.isNumber || "-_.:".contains($0)) }
    }

    /// A section Sluice does not read: accepted with one warning when it only serves HTTP, else
    /// refused with one error on its header line. Its lines are skipped either way.
    private mutating func openForeignSection(_ kind: ForeignSection, _ words: [String], _ location: SourceLocation) {
        section = nil
        skippingSection = true
        inResolvers = false
        inPeers = false
        inMailers = false
        currentSectionLabel = words.count > 1 ? "\(kind.rawValue) '\(words[1])'" : kind.rawValue
        if let why = kind.unusedBecause {
            warning(location, keyword: kind.rawValue, "section accepted and not used: \(why)")
        } else {
            error(location, keyword: kind.rawValue, "section rejected: \(kind.refusal); its lines are skipped")
        }
    }

    /// `peers <name>`: its lines go to `peersKeyword` until the next section.
    private mutating func openPeers(_ words: [String], _ location: SourceLocation) {
        section = nil
        inResolvers = false
        inMailers = false
        currentSectionLabel = words.count > 1 ? "peers '\(words[1])'" : "peers"
        guard words.count == 2 else {
            error(location, keyword: "peers", words.count < 2 ? "needs a name: 'peers <name>'" : "unexpected '\(words[2])' after the section name")
            skippingSection = true
            inPeers = false
            return
        }
        if let first = peersSections.first(where: { $0.name == words[1] }) {
            error(location, keyword: "peers", "a peers section named '\(words[1])' is already at \(first.location)")
        }
        skippingSection = false
        inPeers = true
        peersSections.append(PeersDraft(name: words[1], location: location))
    }

    /// A stick table's `peers <name>`, checked once every section is read.
    mutating func notePeersReference(_ name: String, _ location: SourceLocation) {
        tablePeers.append((name, location, currentSectionLabel))
    }

    /// `resolvers <name>`: its lines go to `resolversKeyword` until the next section.
    private mutating func openResolvers(_ words: [String], _ location: SourceLocation) {
        section = nil
        inPeers = false
        inMailers = false
        currentSectionLabel = words.count > 1 ? "resolvers '\(words[1])'" : "resolvers"
        guard words.count == 2 else {
            error(location, keyword: "resolvers", words.count < 2 ? "needs a name: 'resolvers <name>'" : "unexpected '\(words[2])' after the section name")
            skippingSection = true
            inResolvers = false
            return
        }
        if let first = resolverSections.first(where: { $0.0.name == words[1] }) {
            error(location, keyword: "resolvers", "a resolvers section named '\(words[1])' is already at \(first.1)")
        }
        skippingSection = false
        inResolvers = true
        resolverSections.append((Resolvers(name: words[1]), location))
    }

    /// `mailers <name>`: its lines go to `mailersKeyword` until the next section.
    private mutating func openMailers(_ words: [String], _ location: SourceLocation) {
        section = nil
        inPeers = false
        inResolvers = false
        currentSectionLabel = words.count > 1 ? "mailers '\(words[1])'" : "mailers"
        guard words.count >= 2 else {
            error(location, keyword: "mailers", "missing name for mailers section")
            skippingSection = true
            inMailers = false
            return
        }
        if let bad = Self.invalidNameCharacter(words[1]) {
            error(location, keyword: "mailers", "character '\(bad)' is not permitted in 'mailers' name '\(words[1])'")
        }
        if let first = mailersSections.first(where: { $0.mailers.name == words[1] }) {
            error(location, keyword: "mailers", "mailers section '\(words[1])' has the same name as another mailers section declared at \(first.location)")
        }
        skippingSection = false
        inMailers = true
        mailersSections.append(MailersDraft(mailers: Mailers(name: words[1]), location: location))
    }

    private mutating func keywordLine(_ words: [String], _ location: SourceLocation) {
        if skippingSection { return }
        if inMailers, var draft = mailersSections.popLast() {
            mailersKeyword(&draft, words, location)
            mailersSections.append(draft)
            return
        }
        if inPeers, var draft = peersSections.popLast() {
            peersKeyword(&draft, words, location)
            peersSections.append(draft)
            return
        }
        if inResolvers, let (open, start) = resolverSections.popLast() {
            var draft = open
            resolversKeyword(&draft, words, location)
            resolverSections.append((draft, start))
            return
        }
        guard let section else {
            error(location, keyword: words[0], "appears before any section; start with 'global', 'defaults', 'frontend', 'backend' or 'listen'")
            return
        }
        if section == .global {
            globalKeyword(words, location)
        } else if section == .defaults {
            var draft = defaults
            defaults = ProxyDraft.placeholder  // keep `draft` uniquely referenced while it changes
            proxyKeyword(&draft, words, location)
            defaults = draft
            if !draft.name.isEmpty { namedDefaults[draft.name] = draft }
        } else {
            var draft = proxies.removeLast()
            proxyKeyword(&draft, words, location)
            proxies.append(draft)
        }
    }

    // MARK: Diagnostics

    /// e.g. `backend 'api'`; set when a section opens.
    private(set) var currentSectionLabel: String?

    var errorCount: Int { diagnostics.count { $0.severity == .error } }

    mutating func error(_ location: SourceLocation, keyword: String?, _ message: String) {
        diagnostics.append(ConfigDiagnostic(.error, location, section: currentSectionLabel, keyword: keyword, message))
    }

    /// A diagnostic found after reading, against a section by its label.
    mutating func report(_ severity: ConfigDiagnostic.Severity, section: String?, _ location: SourceLocation, keyword: String?, _ message: String) {
        diagnostics.append(ConfigDiagnostic(severity, location, section: section, keyword: keyword, message))
    }

    /// A diagnostic found after reading, against a proxy's section.
    mutating func report(_ severity: ConfigDiagnostic.Severity, _ proxy: ProxyDraft, _ location: SourceLocation, keyword: String?, _ message: String) {
        diagnostics.append(ConfigDiagnostic(severity, location, section: proxy.label, keyword: keyword, message))
    }

    mutating func warning(_ location: SourceLocation, keyword: String?, _ message: String) {
        diagnostics.append(ConfigDiagnostic(.warning, location, section: currentSectionLabel, keyword: keyword, message))
    }

    /// Unwraps a parsed value, recording its error against the keyword.
    mutating func value<T>(_ result: Result<T, ValueError>, _ location: SourceLocation, keyword: String) -> T? {
        switch result {
        case .success(let v): return v
        case .failure(let e): error(location, keyword: keyword, e.message); return nil
        }
    }

    /// Checks the argument count; records an error naming the expected form when it is wrong.
    mutating func expect(_ words: [String], count: Int, _ location: SourceLocation, usage: String) -> Bool {
        if words.count == count { return true }
        let keyword = words.prefix(count - 1).joined(separator: " ")
        error(location, keyword: keyword, words.count < count ? "missing argument: expected '\(usage)'" : "too many arguments: expected '\(usage)'")
        return false
    }

    // MARK: Finishing

    mutating func finish() throws(ConfigurationError) -> ParsedConfiguration {
        let configuration = validate()
        if diagnostics.contains(where: { $0.severity == .error }) {
            throw ConfigurationError(diagnostics: diagnostics)
        }
        return ParsedConfiguration(configuration: configuration, warnings: diagnostics)
    }

    /// `track`: the followed server exists and is checked (or follows another), the follower has
    /// no check of its own, and no chain loops, as HAProxy requires.
    private mutating func validateTracking(_ configuration: Configuration) {
        for proxy in proxies where proxy.kind == .backend || proxy.kind == .listen {
            for (server, location) in proxy.servers {
                guard let track = server.track else { continue }
                func fail(_ message: String) {
                    diagnostics.append(ConfigDiagnostic(.error, location, section: proxy.label, keyword: "server", message))
                }
                if server.check != nil {
                    fail("server '\(server.name)' cannot both 'check' and 'track \(track)' (as in HAProxy)")
                    continue
                }
                var seen: Set<String> = ["\(proxy.name)/\(server.name)"]
                var current = (backend: proxy.name, target: track)
                while true {
                    let backendName = current.target.backend ?? current.backend
                    guard let followed = configuration.backend(named: backendName)?.servers.first(where: { $0.name == current.target.server }) else {
                        fail("'track \(current.target)': no server '\(current.target.server)' in backend '\(backendName)'")
                        break
                    }
                    guard seen.insert("\(backendName)/\(followed.name)").inserted else {
                        fail("'track \(track)' loops back to this server")
                        break
                    }
                    if followed.check != nil { break }
                    guard let next = followed.track else {
                        fail("'track \(current.target)': \(backendName)/\(followed.name) has no 'check' to follow")
                        break
                    }
                    current = (backendName, next)
                }
            }
        }
    }

    /// Every `resolvers` section has a name server; every server's `resolvers` names a section.
    private mutating func validateResolvers(_ configuration: inout Configuration) {
        for (section, location) in resolverSections where section.nameservers.isEmpty && !sectionsNamingNameservers.contains(section.name) {
            diagnostics.append(ConfigDiagnostic(.error, location, section: "resolvers '\(section.name)'", keyword: "resolvers",
                "has no nameserver: add 'nameserver <name> <ip>[:port]' or 'parse-resolv-conf'"))
        }
        // HAProxy makes a section named `default` from /etc/resolv.conf when the file has none.
        if !resolverSections.contains(where: { $0.0.name == "default" }),
           proxies.contains(where: { $0.servers.contains { $0.0.resolvers == "default" } }),
           case .success(let servers) = systemNameservers(), !servers.isEmpty {
            var section = Resolvers(name: "default")
            section.nameservers = servers
            resolverSections.append((section, SourceLocation(file: "/etc/resolv.conf", line: 1)))
        }
        configuration.resolvers = resolverSections.map(\.0)
        for proxy in proxies where proxy.kind == .backend || proxy.kind == .listen {
            for (server, location) in proxy.servers {
                guard let name = server.resolvers, !resolverSections.contains(where: { $0.0.name == name }) else { continue }
                diagnostics.append(ConfigDiagnostic(.error, location, section: proxy.label, keyword: server.templatePrefix == nil ? "server" : "server-template",
                    "'resolvers \(name)' for server '\(server.name)': no resolvers section named '\(name)'"))
            }
        }
    }

    /// Cross-section checks, then the typed configuration.
    private mutating func validate() -> Configuration {
        if global.userID != nil && global.groupID == nil { global.groupID = implicitGroup }
        if let user = global.userID, user != 0, let first = transparentSources.first {
            // HAProxy 2.6 refuses to start with both; Sluice says so when the file is read.
            diagnostics.append(ConfigDiagnostic(.error, first.location, section: first.section, keyword: "usesrc", "'usesrc' needs full privileges (IP_TRANSPARENT) for every connection, and 'user'/'uid' gives them up once listeners are open; HAProxy 2.6 refuses to start with both (\"Some configuration options require full privileges, so global.uid cannot be changed\"): remove one"))
        }
        if global.logHostname != nil {
            // `log-send-hostname` makes rfc3164 the default format (HAProxy's rule).
            for i in global.logTargets.indices where !global.logTargets[i].formatGiven { global.logTargets[i].format = .rfc3164 }
        }
        var configuration = Configuration(global: global)
        section = nil
        currentSectionLabel = nil
        for i in proxies.indices where proxies[i].kind == .backend || proxies[i].kind == .listen {
            var proxy = proxies[i]
            resolveCheckTLS(&proxy, global: globalTLS)
            proxies[i] = proxy
        }
        func diag(_ proxy: ProxyDraft, _ location: SourceLocation, keyword: String?, _ message: String,
                  _ severity: ConfigDiagnostic.Severity = .error) -> ConfigDiagnostic {
            ConfigDiagnostic(severity, location, section: proxy.label, keyword: keyword, message)
        }
        // `shards`: Sluice gives every reactor thread a listening socket of its own (HAProxy's
        // `by-thread`); more shards than threads are trimmed to that, as HAProxy trims them.
        for proxy in proxies {
            for (bind, location) in proxy.binds {
                guard let shards = bind.shards, shards < global.threads else { continue }
                diagnostics.append(diag(proxy, location, keyword: "bind",
                    "'shards \(shards)' with nbthread \(global.threads) is not supported: Sluice opens one socket per reactor thread, as 'shards by-thread' does (write that, or remove it)"))
            }
        }
        // Mode: HTTP-only keywords are ignored with a warning in a tcp proxy, as HAProxy does; a
        // proxy that would run in mode http is refused once. One warning per line, naming every
        // proxy that ignores it (a stock `defaults` section would otherwise warn once per proxy).
        var ignored: [SourceLocation: (keyword: String, proxies: [String])] = [:]
        var ignoredOrder: [SourceLocation] = []
        for proxy in proxies {
            if proxy.mode == "http" && Self.isStatsOnly(proxy) {
                configuration.statsPages.append(Self.statsPage(proxy, diagnostics: &diagnostics))
                if !proxy.log.targets.isEmpty || (proxy.log.usesGlobal && !global.logTargets.isEmpty) {
                    diagnostics.append(ConfigDiagnostic(.warning, proxy.location, section: proxy.label, keyword: "log",
                        "requests to a statistics page are not logged by Sluice (HAProxy logs them as this proxy's sessions)"))
                }
                continue
            }
            // A backend that only holds a stick table for other proxies' rules forwards nothing:
            // the mode it inherits from an HTTP `defaults` section means nothing to it.
            if proxy.kind == .backend && proxy.servers.isEmpty && proxy.routing.stickTable != nil
                && proxy.httpOnly.allSatisfy({ Self.isInherited($0.location, by: proxy) }) && !proxy.serverRefused {
                continue
            }
            if proxy.mode == "http" {
                // Defaults come before the proxies that use them: a mode line before the proxy's own
                // line was inherited, and the error names it; one inside the proxy is the error's line.
                let modeLine = proxy.modeLocation ?? proxy.location
                let inherited = Self.isInherited(modeLine, by: proxy)
                diagnostics.append(diag(proxy, inherited ? proxy.location : modeLine, keyword: "mode http",
                    "rejected: this proxy runs in mode http\(inherited ? " (set at \(modeLine))" : ""), and Sluice is a Layer-4 (TCP) balancer; add 'mode tcp' to it. HTTP routing, header rewriting and cookies need an HTTP proxy in front of or behind Sluice"))
                continue
            }
            if case .httplog(let httplog) = proxy.log.format, proxy.kind != .backend {
                diagnostics.append(ConfigDiagnostic(.warning, httplog, section: nil, keyword: "option httplog",
                    "not usable with \(proxy.label) (needs 'mode http'); falling back to 'option tcplog', as HAProxy"))
            }
            for use in proxy.httpOnly {
                if ignored[use.location] == nil { ignoredOrder.append(use.location) }
                ignored[use.location, default: (use.keyword, [])].proxies.append(proxy.label)
            }
        }
        for location in ignoredOrder {
            guard let (keyword, users) = ignored[location] else { continue }
            diagnostics.append(ConfigDiagnostic(.warning, location, section: nil, keyword: keyword,
                "ignored for \(users.joined(separator: ", ")): it requires HTTP mode, and \(users.count == 1 ? "this proxy runs" : "these proxies run") in mode tcp (as HAProxy does)"))
        }
        for location in Set(proxies.flatMap { $0.httpOnly.map(\.location) }).subtracting(ignoredOrder).sorted(by: { ($0.file, $0.line) < ($1.file, $1.line) }) {
            // A defaults line no proxy inherits, or only mode http ones (refused above).
            if let use = (defaults.httpOnly + namedDefaults.values.flatMap(\.httpOnly)).first(where: { $0.location == location }),
               !proxies.contains(where: { $0.mode == "http" && $0.httpOnly.contains { $0.location == location } }) {
                diagnostics.append(ConfigDiagnostic(.warning, location, section: "defaults", keyword: use.keyword, "has no effect: it requires HTTP mode"))
            }
        }
        // HAProxy's warning for a proxy without the timeouts that bound a dead peer.
        for proxy in proxies where proxy.mode == "tcp" {
            var missing: [String] = []
            if proxy.kind != .backend && proxy.clientTimeout == nil { missing.append("client") }
            if proxy.kind != .frontend && proxy.connectTimeout == nil { missing.append("connect") }
            if proxy.kind != .frontend && proxy.serverTimeout == nil && proxy.tunnelTimeout == nil { missing.append("server") }
            if !missing.isEmpty {
                diagnostics.append(diag(proxy, proxy.location, keyword: proxy.kind.rawValue,
                    "missing timeouts: \(missing.map { "'timeout \($0)'" }.joined(separator: ", ")). A dead peer would then hold its session forever\(missing.contains("connect") ? " (Sluice bounds connect at 5 s)" : ""), as HAProxy warns", .warning))
            }
        }
        // Proxy ids: explicit ones unique (HAProxy's words), the others numbered in declaration order.
        var idOwners: [Int: ProxyDraft] = [:]
        for proxy in proxies {
            guard let (id, location) = proxy.id else { continue }
            if let other = idOwners[id] {
                diagnostics.append(diag(proxy, location, keyword: "id",
                    "\(proxy.kind.haproxyTypeName) \(proxy.name) reuses same custom id as \(other.kind.haproxyTypeName) \(other.name) (declared at \(other.location))"))
            } else {
                idOwners[id] = proxy
            }
        }
        var explicitIDs = proxies.map { $0.id?.0 }
        if let position = cliProxyPosition { explicitIDs.insert(0, at: position) }
        var proxyIDs = Numbering.assign(explicitIDs)
        if let position = cliProxyPosition { proxyIDs.remove(at: position) }
        var seenFront: [String: ProxyDraft] = [:]
        var seenBack: [String: ProxyDraft] = [:]
        for proxy in proxies {
            let front = proxy.kind == .frontend || proxy.kind == .listen
            let back = proxy.kind == .backend || proxy.kind == .listen
            // A frontend and a backend may share a name (HAProxy allows it); two of one side may not.
            if let other = (front ? seenFront[proxy.name] : nil) ?? (back ? seenBack[proxy.name] : nil) {
                diagnostics.append(diag(proxy, proxy.location, keyword: proxy.kind.rawValue,
                    "duplicate proxy name '\(proxy.name)': a \(other.kind.rawValue) of that name is at \(other.location)"))
            }
            if front { seenFront[proxy.name] = seenFront[proxy.name] ?? proxy }
            if back { seenBack[proxy.name] = seenBack[proxy.name] ?? proxy }
        }
        for (p, proxy) in proxies.enumerated() where (proxy.kind == .backend || proxy.kind == .listen) && !(proxy.mode == "http" && Self.isStatsOnly(proxy)) {
            var backend = Backend(name: proxy.name, servers: proxy.servers.map(\.0))
            backend.isListen = proxy.kind == .listen
            backend.id = proxyIDs[p]
            backend.declaration = p
            backend.balance = proxy.balance
            backend.consistentHashing = proxy.consistentHashing
            backend.randomDraws = proxy.randomDraws
            backend.balanceFactor = proxy.balanceFactor
            backend.hashExpression = proxy.hashExpression
            backend.rdpPersistence = proxy.rdpPersistence
            backend.source = proxy.source
            backend.retries = proxy.retries
            backend.fullConnections = proxy.fullConnections
            if case .local = proxy.serverStateSource { backend.serverStateSource = .local(proxy.serverStateFileName) } else { backend.serverStateSource = proxy.serverStateSource }
            backend.redispatch = proxy.redispatch
            backend.persist = proxy.persist
            backend.emailAlert = emailAlert(of: proxy, mailers: mailersSections, hostName: GlobalKeywords.systemHostName)
            backend.redispatchInterval = proxy.redispatchInterval
            backend.allBackups = proxy.allBackups
            backend.connectTimeout = proxy.connectTimeout
            backend.serverTimeout = proxy.serverTimeout
            backend.serverFinTimeout = proxy.serverFinTimeout
            backend.tunnelTimeout = proxy.tunnelTimeout
            backend.queueTimeout = proxy.queueTimeout
            backend.checkTimeout = proxy.checkTimeout
            backend.serverKeepAlive = proxy.serverKeepAlive ? proxy.serverKeepAliveTuning : nil
            backend.noLinger = proxy.noLinger
            backend.abortOnClose = proxy.abortOnClose
            backend.independentStreams = proxy.independentStreams
            backend.logTargets = logTargets(of: proxy)
            backend.logTag = proxy.log.tag ?? global.logTag
            backend.logHealthChecks = proxy.logHealthChecks
            switch proxy.checkKind {
            case .tcpConnect: backend.healthCheck = .tcpConnect
            case .http: backend.healthCheck = .http(proxy.httpCheck)
            case .tcp: backend.healthCheck = .tcp(proxy.tcpCheckRules)
            case .protocolCheck(let check): backend.healthCheck = .protocolCheck(check)
            case .external: backend.healthCheck = externalCheck(proxy)
            }
            externalCheckWarnings(proxy)
            if proxy.httpCheck.disableOn404 && !proxy.servers.isEmpty && backend.healthCheck.httpCheck == nil {
                diagnostics.append(diag(proxy, proxy.location, keyword: "http-check disable-on-404",
                    "will be ignored for \(proxy.label) (requires 'option httpchk'), as HAProxy warns", .warning))
            }
            var names: [String: SourceLocation] = [:]
            for (server, location) in proxy.servers {
                if let first = names[server.name] {
                    diagnostics.append(diag(proxy, location, keyword: "server", "duplicate server name '\(server.name)' (first at \(first))"))
                }
                names[server.name] = names[server.name] ?? location
            }
            var serverIDs: [Int: (String, SourceLocation)] = [:]
            for (server, location) in proxy.servers {
                guard let id = server.id else { continue }
                if let (other, at) = serverIDs[id] {
                    diagnostics.append(diag(proxy, location, keyword: "server", "'id': custom id \(id) already used at \(at) ('server \(other)')"))
                } else {
                    serverIDs[id] = (server.name, location)
                }
            }
            let numbers = Numbering.assign(backend.servers.map(\.id))
            for s in backend.servers.indices { backend.servers[s].id = numbers[s] }
            configuration.backends.append(backend)
        }
        validateTracking(configuration)
        validateResolvers(&configuration)
        validatePeers()
        configuration.stickTables = proxies.compactMap { $0.routing.stickTable?.0 }
        // Rules, once every backend and table is known: a listen's serve both of its sides.
        var frontRules: [String: RuleSet] = [:]
        for proxy in proxies where proxy.kind != .defaults && proxy.mode == "tcp" {
            guard let set = ruleSet(proxy, configuration) else { continue }
            if proxy.kind != .backend { frontRules[proxy.name] = set }
            if proxy.kind != .frontend, let b = configuration.backends.firstIndex(where: { $0.name == proxy.name }) {
                configuration.backends[b].rules = set
            }
        }
        for (t, table) in configuration.stickTables.enumerated() where stickTablesWithServers.contains(table.name) {
            configuration.stickTables[t].stored[.serverID] = 0
        }
        for (p, proxy) in proxies.enumerated() where (proxy.kind == .frontend || proxy.kind == .listen) && !(proxy.mode == "http" && Self.isStatsOnly(proxy)) {
            // A frontend's alerts would mail nothing (no server of its own), as in HAProxy; their
            // settings are checked all the same.
            if proxy.kind == .frontend { _ = emailAlert(of: proxy, mailers: mailersSections, hostName: "") }
            if proxy.binds.isEmpty && !proxy.bindRefused {
                diagnostics.append(diag(proxy, proxy.location, keyword: proxy.kind.rawValue,
                    "has no 'bind' line, so it would never receive a connection"))
            }
            var target: String? = proxy.name
            // A listen is its own backend unless it names another with default_backend, as HAProxy.
            if proxy.kind == .frontend || proxy.defaultBackend != nil {
                if let (name, location) = proxy.defaultBackend {
                    target = name
                    guard let backend = configuration.backend(named: name) else {
                        diagnostics.append(diag(proxy, location, keyword: "default_backend", "no backend named '\(name)' exists"))
                        continue
                    }
                    if backend.servers.isEmpty && !proxies.contains(where: { $0.name == name && $0.kind != .frontend && $0.serverRefused }) {
                        let where_ = proxies.first { $0.name == name && $0.kind != .frontend }?.location
                        diagnostics.append(diag(proxy, location, keyword: "default_backend",
                            "backend '\(name)'\(where_.map { " (at \($0))" } ?? "") has no 'server' line: \(Self.noServerYet)", .warning))
                    }
                } else {
                    // As HAProxy: what no `use_backend` rule routes is closed at once.
                    target = nil
                    if proxy.routing.switching.isEmpty {
                        diagnostics.append(diag(proxy, proxy.location, keyword: "frontend",
                            "has neither 'default_backend' nor 'use_backend': every connection is closed at once (as in HAProxy)", .warning))
                    }
                }
            } else if proxy.servers.isEmpty && !proxy.serverRefused {
                let statsPage = proxy.httpOnly.contains { $0.keyword == "stats" }
                diagnostics.append(diag(proxy, proxy.location, keyword: "listen", statsPage
                    ? "has no 'server' line: \(Self.noServerYet). A statistics page needs 'mode http' in this proxy (Sluice serves a mode http proxy made only of 'stats' and 'http-request use-service prometheus-exporter' lines)"
                    : "has no 'server' line: \(Self.noServerYet)", .warning))
            }
            configuration.frontends.append(Frontend(
                name: proxy.name, binds: proxy.binds.map { bind in
                    var b = bind.0
                    if b.backlog == nil { b.backlog = proxy.backlog }
                    return b
                }, defaultBackend: target, maxConnections: proxy.maxConnections,
                clientTimeout: proxy.clientTimeout, clientFinTimeout: proxy.clientFinTimeout))
            configuration.frontends[configuration.frontends.count - 1].id = proxyIDs[p]
            configuration.frontends[configuration.frontends.count - 1].declaration = p
            configuration.frontends[configuration.frontends.count - 1].clientKeepAlive = proxy.clientKeepAlive ? proxy.clientKeepAliveTuning : nil
            configuration.frontends[configuration.frontends.count - 1].noLinger = proxy.noLinger
            configuration.frontends[configuration.frontends.count - 1].independentStreams = proxy.independentStreams
            configuration.frontends[configuration.frontends.count - 1].rules = frontRules[proxy.name]
            configuration.frontends[configuration.frontends.count - 1].sessionRateLimit = proxy.sessionRateLimit
            if let (text, location) = proxy.uniqueIDFormat {
                switch LogFormat.parse(text, readFile: readFile) {
                case .success(let format): configuration.frontends[configuration.frontends.count - 1].uniqueIDFormat = format
                case .failure(let e): report(.error, proxy, location, keyword: "unique-id-format", e.message)
                }
            }
            let targets = logTargets(of: proxy)
            // The format is read whether or not there is a target (HAProxy reports its mistakes
            // and warns that it is ignored without one).
            var style = SessionLogging.Style.connect
            switch proxy.log.format {
            case nil: break
            case .tcplog, .httplog: style = .tcplog
            case .custom(let text, let location):
                switch LogFormat.parse(text, readFile: readFile) {
                case .success(let format): style = .format(format)
                case .failure(let e): report(.error, proxy, location, keyword: "log-format", e.message)
                }
            }
            if targets.isEmpty, let location = proxy.log.format?.location {
                report(.warning, proxy, location, keyword: nil, "log format ignored for \(proxy.label) since it has no log address (as HAProxy)")
            }
            if !targets.isEmpty {
                var logging = SessionLogging(targets: targets, tag: proxy.log.tag ?? global.logTag ?? "sluice")
                logging.style = style
                logging.dontLogNull = proxy.log.dontLogNull
                logging.logAsap = proxy.log.logAsap
                logging.separateErrors = proxy.log.separateErrors
                logging.dontLogNormal = proxy.log.dontLogNormal
                configuration.frontends[configuration.frontends.count - 1].logging = logging
            }
        }
        return configuration
    }

    /// A proxy's own `log` lines, after the global ones when it says `log global` (HAProxy's order).
    private func logTargets(of proxy: ProxyDraft) -> [LogTarget] {
        var targets = proxy.log.usesGlobal ? global.logTargets : []
        for var target in proxy.log.targets {
            if global.logHostname != nil && !target.formatGiven { target.format = .rfc3164 }
            targets.append(target)
        }
        return targets
    }
}
