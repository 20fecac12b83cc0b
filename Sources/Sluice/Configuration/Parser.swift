/// A configuration read from text, with the warnings its reading produced.
public struct ParsedConfiguration: Sendable {
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
        var parser = Parser()
        for source in sources { parser.read(source.text, file: source.file) }
        return try parser.finish()
    }

    /// Reads one HAProxy-style configuration text.
    public static func parse(_ text: String, file: String = "<text>") throws(ConfigurationError) -> ParsedConfiguration {
        try parse([(file: file, text: text)])
    }
}

/// The section kinds, as HAProxy names them.
enum SectionKind: String, CaseIterable {
    case global, defaults, frontend, backend, listen

    static let proxies: Set<SectionKind> = [.defaults, .frontend, .backend, .listen]
    static let frontSide: Set<SectionKind> = [.defaults, .frontend, .listen]
    static let backSide: Set<SectionKind> = [.defaults, .backend, .listen]
    static let realProxies: Set<SectionKind> = [.frontend, .backend, .listen]
}

/// Settings that a `defaults` section passes to the proxies after it, and that a proxy accumulates.
struct ProxyDraft {
    var kind: SectionKind
    var name: String
    var location: SourceLocation
    var binds: [(Bind, SourceLocation)] = []
    var defaultBackend: (String, SourceLocation)?
    var maxConnections: Int?
    var backlog: Int?
    var clientTimeout: Duration?
    var clientFinTimeout: Duration?
    var connectTimeout: Duration?
    var serverTimeout: Duration?
    var serverFinTimeout: Duration?
    var tunnelTimeout: Duration?
    var queueTimeout: Duration?
    var checkTimeout: Duration?
    var balance: BalanceAlgorithm = .roundRobin
    var retries = 3
    var redispatch = false
    var allBackups = false
    var serverTemplate = ServerTemplate()
    var servers: [(Server, SourceLocation)] = []
    /// Which active check `check` runs: chosen by `option httpchk` / `option tcp-check`.
    var checkKind: CheckKind = .tcpConnect
    var httpCheck = HTTPCheck()
    var tcpCheckRules: [TCPCheckRule] = []

    enum CheckKind { case tcpConnect, http, tcp }

    static let placeholder = ProxyDraft(kind: .defaults, name: "", location: SourceLocation(file: "", line: 0))

    var label: String { kind == .defaults && name.isEmpty ? "defaults" : "\(kind.rawValue) '\(name)'" }
}

/// What `default-server` sets and each `server` line starts from.
struct ServerTemplate {
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
}

struct Parser {
    private(set) var diagnostics: [ConfigDiagnostic] = []
    private var global = Global()
    private var sawGlobal = false
    private var defaults = ProxyDraft(kind: .defaults, name: "", location: SourceLocation(file: "", line: 0))
    private var proxies: [ProxyDraft] = []
    private var section: SectionKind?
    /// Set while the current section is one whose lines are skipped (after an error in its header).
    private var skippingSection = false

    // MARK: Reading

    mutating func read(_ text: String, file: String) {
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
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
            if let kind = SectionKind(rawValue: first) {
                openSection(kind, words, location)
            } else {
                keywordLine(words, location)
            }
        }
    }

    private mutating func openSection(_ kind: SectionKind, _ words: [String], _ location: SourceLocation) {
        section = kind
        skippingSection = false
        currentSectionLabel = kind == .global ? "global" : words.count > 1 ? "\(kind.rawValue) '\(words[1])'" : kind.rawValue
        switch kind {
        case .global:
            if words.count > 1 { error(location, keyword: "global", "takes no arguments") }
            sawGlobal = true
        case .defaults:
            // A new defaults section starts from HAProxy's defaults, not from the previous one.
            defaults = ProxyDraft(kind: .defaults, name: words.count > 1 ? words[1] : "", location: location)
        case .frontend, .backend, .listen:
            guard words.count >= 2 else {
                error(location, keyword: kind.rawValue, "needs a name: '\(kind.rawValue) <name>'")
                skippingSection = true
                return
            }
            let name = words[1]
            if let bad = name.first(where: { !($0.isLetter || $0.isNumber || "-_.:".contains($0)) }) {
                error(location, keyword: kind.rawValue, "name '\(name)' has the character '\(bad)'; use letters, digits, '-', '_', '.' and ':'")
            }
            var draft = defaults
            draft.kind = kind
            draft.name = name
            draft.location = location
            var rest = Array(words.dropFirst(2))
            if rest.first == "from" {
                error(location, keyword: kind.rawValue, "'from <defaults>' (named defaults) is not supported yet; the proxy uses the last defaults section")
                rest = Array(rest.dropFirst(2))
            }
            if kind == .listen, let address = rest.first {
                // HAProxy's legacy `listen <name> <address>` form.
                addBind(&draft, address, Array(rest.dropFirst()), location)
            } else if !rest.isEmpty {
                error(location, keyword: kind.rawValue, "unexpected '\(rest[0])' after the \(kind.rawValue) name")
            }
            proxies.append(draft)
        }
    }

    private mutating func keywordLine(_ words: [String], _ location: SourceLocation) {
        guard let section else {
            error(location, keyword: words[0], "appears before any section; start with 'global', 'defaults', 'frontend', 'backend' or 'listen'")
            return
        }
        if skippingSection { return }
        if section == .global {
            globalKeyword(words, location)
        } else if section == .defaults {
            var draft = defaults
            defaults = ProxyDraft.placeholder  // keep `draft` uniquely referenced while it changes
            proxyKeyword(&draft, words, location)
            defaults = draft
        } else {
            var draft = proxies.removeLast()
            proxyKeyword(&draft, words, location)
            proxies.append(draft)
        }
    }

    // MARK: Diagnostics

    /// e.g. `backend 'api'`; set when a section opens.
    private var currentSectionLabel: String?

    mutating func error(_ location: SourceLocation, keyword: String?, _ message: String) {
        diagnostics.append(ConfigDiagnostic(.error, location, section: currentSectionLabel, keyword: keyword, message))
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

    // MARK: global

    private mutating func globalKeyword(_ words: [String], _ location: SourceLocation) {
        let keyword = words[0]
        switch keyword {
        case "maxconn":
            guard expect(words, count: 2, location, usage: "maxconn <number>") else { return }
            global.maxConnections = value(ValueParser.integer(words[1], in: 1...1_000_000, what: "maxconn"), location, keyword: keyword)
        case "nbthread":
            guard expect(words, count: 2, location, usage: "nbthread <number>") else { return }
            global.threads = value(ValueParser.integer(words[1], in: 1...64, what: "nbthread"), location, keyword: keyword) ?? 1
        case "maxpipes":
            guard expect(words, count: 2, location, usage: "maxpipes <number>") else { return }
            global.maxPipes = value(ValueParser.integer(words[1], in: 0...1_000_000, what: "maxpipes"), location, keyword: keyword)
        case "tune.pipesize":
            guard expect(words, count: 2, location, usage: "tune.pipesize <bytes>") else { return }
            if let size = value(ValueParser.size(words[1]), location, keyword: keyword) {
                if (4096...(64 << 20)).contains(size) { global.pipeSize = size } else {
                    error(location, keyword: keyword, "\(size) bytes is outside 4096...67108864")
                }
            }
        case "nosplice":
            guard expect(words, count: 1, location, usage: "nosplice") else { return }
            global.noSplice = true
        case "spread-checks":
            guard expect(words, count: 2, location, usage: "spread-checks <0..50>") else { return }
            global.spreadChecks = value(ValueParser.integer(words[1], in: 0...50, what: "spread-checks"), location, keyword: keyword) ?? 0
        case "hard-stop-after":
            guard expect(words, count: 2, location, usage: "hard-stop-after <time>") else { return }
            global.hardStopAfter = value(ValueParser.time(words[1]), location, keyword: keyword)
        case "stats":
            statsKeyword(words, location)
        case "io-engine":
            guard expect(words, count: 2, location, usage: "io-engine epoll|io_uring") else { return }
            if let engine = IOEngine(rawValue: words[1]) { global.ioEngine = engine } else {
                error(location, keyword: keyword, "'\(words[1])' is not an engine; expected epoll or io_uring (a Sluice extension)")
            }
        case "log", "log-send-hostname", "log-tag":
            warning(location, keyword: keyword, "log targets are not supported yet; Sluice logs to standard error")
        case "daemon", "master-worker":
            error(location, keyword: keyword, "Sluice runs in the foreground; run it under a supervisor (systemd) instead of '\(keyword)'")
        case "nbproc":
            error(location, keyword: keyword, "removed in HAProxy 2.5; use 'nbthread'")
        case "user", "group", "uid", "gid", "chroot", "pidfile", "ulimit-n", "cpu-map", "ssl-default-bind-ciphers",
             "ssl-default-bind-options", "ca-base", "crt-base", "tune.bufsize", "tune.maxrewrite", "server-state-file",
             "grace", "noreuseport", "description", "node", "setenv", "presetenv", "resetenv", "unsetenv":
            error(location, keyword: keyword, "not supported yet by Sluice")
        default:
            if let allowed = ProxyKeywords.allowed[keyword] {
                error(location, keyword: keyword, "is not allowed in the 'global' section (it belongs in \(ProxyKeywords.describe(allowed)))")
            } else {
                error(location, keyword: keyword, "unknown keyword in the 'global' section")
            }
        }
    }

    private mutating func statsKeyword(_ words: [String], _ location: SourceLocation) {
        guard words.count >= 2 else {
            error(location, keyword: "stats", "missing argument: expected 'stats socket <path> [mode <octal>] [level user|operator|admin]'")
            return
        }
        let keyword = "stats \(words[1])"
        switch words[1] {
        case "socket":
            guard words.count >= 3 else {
                error(location, keyword: keyword, "missing path: expected 'stats socket <path> [mode <octal>] [level user|operator|admin]'")
                return
            }
            let path = words[2]
            if path.contains(":") && !path.hasPrefix("/") {
                error(location, keyword: keyword, "'\(path)': TCP stats sockets are not supported; give a UNIX socket path")
                return
            }
            var socket = StatsSocket(path: path)
            var i = 3
            while i < words.count {
                let option = words[i]
                guard i + 1 < words.count else {
                    error(location, keyword: keyword, "'\(option)' needs a value")
                    return
                }
                let arg = words[i + 1]
                switch option {
                case "mode":
                    if let mode = Int(arg, radix: 8), (0...0o777).contains(mode) { socket.mode = mode } else {
                        error(location, keyword: keyword, "mode '\(arg)' is not an octal permission such as 600")
                    }
                case "level":
                    if let level = StatsSocket.Level(rawValue: arg) { socket.level = level } else {
                        error(location, keyword: keyword, "level '\(arg)' is not one of user, operator, admin")
                    }
                case "uid", "gid":
                    if let id = Int(arg), id >= 0 {
                        if option == "uid" { socket.owner = .id(id) } else { socket.group = .id(id) }
                    } else {
                        error(location, keyword: keyword, "\(option) '\(arg)' is not a numeric id")
                    }
                case "user": socket.owner = .name(arg)
                case "group": socket.group = .name(arg)
                case "expose-fd":
                    error(location, keyword: keyword, "'expose-fd' is not supported: Sluice reloads in-process and needs no socket transfer")
                default:
                    error(location, keyword: keyword, "unknown option '\(option)'; supported: mode, level, uid, gid, user, group")
                }
                i += 2
            }
            global.statsSockets.append(socket)
        case "timeout", "maxconn":
            warning(location, keyword: keyword, "has no effect yet in Sluice")
        default:
            error(location, keyword: keyword, "unknown stats keyword; supported: 'stats socket'")
        }
    }

    // MARK: Finishing

    mutating func finish() throws(ConfigurationError) -> ParsedConfiguration {
        let configuration = validate()
        if diagnostics.contains(where: { $0.severity == .error }) {
            throw ConfigurationError(diagnostics: diagnostics)
        }
        return ParsedConfiguration(configuration: configuration, warnings: diagnostics)
    }

    /// Cross-section checks, then the typed configuration.
    private mutating func validate() -> Configuration {
        var configuration = Configuration(global: global)
        section = nil
        currentSectionLabel = nil
        func diag(_ proxy: ProxyDraft, _ location: SourceLocation, keyword: String?, _ message: String) -> ConfigDiagnostic {
            ConfigDiagnostic(.error, location, section: proxy.label, keyword: keyword, message)
        }
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
        for proxy in proxies where proxy.kind == .backend || proxy.kind == .listen {
            var backend = Backend(name: proxy.name, servers: proxy.servers.map(\.0))
            backend.balance = proxy.balance
            backend.retries = proxy.retries
            backend.redispatch = proxy.redispatch
            backend.allBackups = proxy.allBackups
            backend.connectTimeout = proxy.connectTimeout
            backend.serverTimeout = proxy.serverTimeout
            backend.serverFinTimeout = proxy.serverFinTimeout
            backend.tunnelTimeout = proxy.tunnelTimeout
            backend.queueTimeout = proxy.queueTimeout
            backend.checkTimeout = proxy.checkTimeout
            switch proxy.checkKind {
            case .tcpConnect: backend.healthCheck = .tcpConnect
            case .http: backend.healthCheck = .http(proxy.httpCheck)
            case .tcp: backend.healthCheck = .tcp(proxy.tcpCheckRules)
            }
            var names: [String: SourceLocation] = [:]
            for (server, location) in proxy.servers {
                if let first = names[server.name] {
                    diagnostics.append(diag(proxy, location, keyword: "server", "duplicate server name '\(server.name)' (first at \(first))"))
                }
                names[server.name] = names[server.name] ?? location
            }
            configuration.backends.append(backend)
        }
        for proxy in proxies where proxy.kind == .frontend || proxy.kind == .listen {
            if proxy.binds.isEmpty {
                diagnostics.append(diag(proxy, proxy.location, keyword: proxy.kind.rawValue,
                    "has no 'bind' line, so it would never receive a connection"))
            }
            var target = proxy.name
            if proxy.kind == .frontend {
                guard let (name, location) = proxy.defaultBackend else {
                    diagnostics.append(diag(proxy, proxy.location, keyword: "frontend",
                        "has no 'default_backend'; Sluice routes every connection of a frontend to its default backend"))
                    continue
                }
                target = name
                guard let backend = configuration.backend(named: name) else {
                    diagnostics.append(diag(proxy, location, keyword: "default_backend", "no backend named '\(name)' exists"))
                    continue
                }
                if backend.servers.isEmpty {
                    let where_ = proxies.first { $0.name == name && $0.kind != .frontend }?.location
                    diagnostics.append(diag(proxy, location, keyword: "default_backend",
                        "backend '\(name)'\(where_.map { " (at \($0))" } ?? "") has no 'server' line, so every connection would fail"))
                }
            } else if proxy.servers.isEmpty {
                diagnostics.append(diag(proxy, proxy.location, keyword: "listen", "has no 'server' line, so every connection would fail"))
            }
            configuration.frontends.append(Frontend(
                name: proxy.name, binds: proxy.binds.map { bind in
                    var b = bind.0
                    if b.backlog == nil { b.backlog = proxy.backlog }
                    return b
                }, defaultBackend: target, maxConnections: proxy.maxConnections,
                clientTimeout: proxy.clientTimeout, clientFinTimeout: proxy.clientFinTimeout))
        }
        return configuration
    }
}
