#if canImport(Glibc)
import Glibc
#endif

extension Parser {
    /// `server <name> <address>:<port> [param*]`
    mutating func serverLine(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        guard words.count >= 2 else {
            error(location, keyword: "server", "missing name and address: expected 'server <name> <address>:<port> [params]'")
            return
        }
        let name = words[1]
        guard words.count >= 3 else {
            error(location, keyword: "server", "server '\(name)' has no address: expected 'server \(name) <address>:<port> [params]'")
            return
        }
        // The parameters are read even when the address is wrong: one run reports every problem.
        let errorsBefore = errorCount
        defer { if errorCount > errorsBefore { proxy.serverRefused = true } }
        let endpoint = value(ValueParser.serverEndpoint(words[2]), location, keyword: "server")
        var template = proxy.serverTemplate
        serverParameters(&template, words.dropFirst(3), location, keyword: "server", serverName: name)
        guard let endpoint else { return }
        guard let server = makeServer(name, endpoint, words[2], template, location, keyword: "server") else { return }
        proxy.servers.append((server, location))
        proxy.serverTLS[name] = template.tls
    }

    /// `server-template <prefix> <num | low-high> <fqdn>[:<port>] [param*]`: servers `<prefix><n>`
    /// sharing one name, whose addresses `resolvers` hand out (each address to one of them).
    mutating func serverTemplateLine(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        guard words.count >= 4 else {
            error(location, keyword: "server-template", "expected 'server-template <prefix> <num | range> <fqdn>[:<port>] [params]'")
            return
        }
        let errorsBefore = errorCount
        defer { if errorCount > errorsBefore { proxy.serverRefused = true } }
        let prefix = words[1]
        var numbers: ClosedRange<Int>?
        let bounds = words[2].split(separator: "-", omittingEmptySubsequences: false)
        if bounds.count == 1, let n = Int(bounds[0]), n >= 1 {
            numbers = 1...n
        } else if bounds.count == 2, let low = Int(bounds[0]), let high = Int(bounds[1]), low >= 0, low <= high {
            numbers = low...high
        }
        if numbers == nil {
            error(location, keyword: "server-template", "'\(words[2])' is neither a number of servers (1 or more) nor a range '<low>-<high>' with low <= high")
        }
        if let range = numbers, range.count > 10_000 {
            error(location, keyword: "server-template", "\(range.count) servers are too many for one template (at most 10000)")
            numbers = nil
        }
        let endpoint = value(ValueParser.serverEndpoint(words[3]), location, keyword: "server-template")
        var template = proxy.serverTemplate
        serverParameters(&template, words.dropFirst(4), location, keyword: "server-template", serverName: "\(prefix)*")
        guard let endpoint, let numbers else { return }
        for n in numbers {
            guard var server = makeServer("\(prefix)\(n)", endpoint, words[3], template, location, keyword: "server-template") else { return }
            server.templatePrefix = prefix
            proxy.servers.append((server, location))
            proxy.serverTLS[server.name] = template.tls
        }
    }

    /// A server from its name, address and parameters; nil (with an error) when they do not fit.
    private mutating func makeServer(_ name: String, _ endpoint: Endpoint, _ text: String, _ template: ServerTemplate,
                                     _ location: SourceLocation, keyword: String) -> Server? {
        if endpoint.host == nil && endpoint.unix == nil {
            error(location, keyword: keyword, "server '\(name)' needs a host, not the wildcard '\(text)'")
            return nil
        }
        if endpoint.unix != nil {
            let tcpOnly = [("source", template.source != nil), ("tfo", template.fastOpen), ("tcp-ut", template.userTimeout != nil)].filter(\.1).map(\.0)
            if !tcpOnly.isEmpty {
                warning(location, keyword: keyword, "server '\(name)' is a UNIX socket: \(tcpOnly.map { "'\($0)'" }.joined(separator: ", ")) \(tcpOnly.count == 1 ? "applies" : "apply") to TCP connections only and \(tcpOnly.count == 1 ? "is" : "are") ignored (as HAProxy)")
            }
        } else if endpoint.port == 0 && template.checkEnabled && template.check.port == nil {
            error(location, keyword: keyword, "server '\(name)' has no port, so 'check' needs 'port <n>' (the port to check)")
        }
        var server = Server(
            name: name, endpoint: endpoint, weight: template.weight, isBackup: template.isBackup,
            isDisabled: template.isDisabled, check: template.checkEnabled ? template.check : nil)
        server.id = template.id
        server.observeLayer4 = template.observeLayer4
        server.errorLimit = template.errorLimit
        server.onError = template.onError
        server.shutdownSessionsWhenDown = template.shutdownSessionsWhenDown
        server.shutdownBackupSessionsWhenUp = template.shutdownBackupSessionsWhenUp
        // HAProxy's reading: a `minconn` above `maxconn` (or without one) is the fixed limit.
        switch (template.minConnections, template.maxConnections) {
        case (let minimum?, let maximum) where minimum >= (maximum ?? 0):
            server.maxConnections = minimum
        case (let minimum, let maximum):
            server.maxConnections = maximum
            server.minConnections = minimum
        }
        server.maxQueue = template.maxQueue
        if template.agentEnabled {
            if let port = template.agentPort {
                if port > 0 { server.agent = AgentCheck(port: port, address: template.agentAddress, interval: template.agentInterval, send: template.agentSend) }
            } else {
                error(location, keyword: keyword, "server '\(name)' has 'agent-check' but no 'agent-port' (HAProxy: \"does not have agent port\")")
            }
        }
        server.proxyProtocol = template.proxyProtocol
        server.proxyV2Options = template.proxyV2Options
        if !template.proxyV2Options.isEmpty && !template.sendsProxyV2 {
            warning(location, keyword: keyword, "server '\(name)' has PROXY v2 options ('proxy-v2-options' or 'send-proxy-v2-ssl' undone by 'no-send-proxy-v2') without 'send-proxy-v2': it is sent a PROXY v1 header, which carries none of them (as HAProxy does)")
        }
        let tlsOnly = template.proxyV2Options.intersection([.certCN, .certKey, .certSig, .sslCipher])
        if !tlsOnly.isEmpty && template.sendsProxyV2 {
            warning(location, keyword: keyword, "server '\(name)': the PROXY v2 TLS details (cert-cn, cert-key, cert-sig, ssl-cipher) exist only for clients whose TLS the balancer terminates; Sluice forwards TLS untouched, so the header never carries them (HAProxy's carries none for a plain TCP client either)")
        }
        server.initAddress = template.initAddress
        server.resolvers = template.resolvers
        // HAProxy prefers IPv6 for names its resolvers look up, IPv4 at start through libc.
        server.preferIPv6 = template.preferIPv6 ?? (template.resolvers != nil)
        server.resolveNetworks = template.resolveNetworks
        server.allowDuplicateAddress = template.allowDuplicateAddress
        server.ignoreSRVWeight = template.ignoreSRVWeight
        server.slowStart = template.slowStart
        server.track = template.track
        server.checkSendProxy = template.checkSendProxy
        server.socks4 = template.socks4
        server.namespace = template.namespace
        server.checkViaSocks4 = template.checkViaSocks4
        server.nonStick = template.nonStick
        server.userTimeout = template.userTimeout
        server.fastOpen = template.fastOpen
        server.source = template.source
        return server
    }

    /// Parameters shared by `server` and `default-server`, with HAProxy's names and ranges.
    mutating func serverParameters(_ t: inout ServerTemplate, _ params: ArraySlice<String>, _ location: SourceLocation,
                                   keyword: String, serverName: String? = nil) {
        let who = serverName.map { " for server '\($0)'" } ?? ""
        var i = params.startIndex
        func argument(_ i: Int) -> String? { i + 1 < params.endIndex ? params[i + 1] : nil }
        while i < params.endIndex {
            let param = params[i]
            let takesValue: Set<String> = ServerKeywords.takingValue
            var arg = ""
            if takesValue.contains(param) {
                guard let a = argument(i) else {
                    error(location, keyword: keyword, "'\(param)'\(who) needs a value")
                    return
                }
                if a.isEmpty {
                    error(location, keyword: keyword, "'\(param)'\(who) has an empty value")
                }
                arg = a
            }
            switch param {
            case "source":
                // `source <addr>[:<port>] [usesrc <addr2>|client|clientip] [interface <name>]`.
                switch ValueParser.sourceAddress(arg) {
                case .failure(let e): error(location, keyword: keyword, "source\(who): \(e.message)")
                case .success(let address): t.source = address.map { SourceBinding(address: $0) }
                }
            case "usesrc":
                guard i >= params.startIndex + 2 && (params[i - 2] == "source" || params[i - 2] == "interface") else {
                    error(location, keyword: keyword, "'usesrc'\(who) only allowed after a 'source' statement")
                    break
                }
                switch ValueParser.presentedSource(arg) {
                case .failure(let e): error(location, keyword: keyword, "usesrc\(who): \(e.message)")
                case .success(let presented):
                    if t.source == nil { t.source = SourceBinding(address: SocketAddress.anyIPv4) }
                    t.source?.presented = presented
                    transparentSources.append((location, currentSectionLabel))
                }
            case "interface":
                guard i >= params.startIndex + 2 && (params[i - 2] == "source" || params[i - 2] == "usesrc") else {
                    error(location, keyword: keyword, "'interface'\(who) belongs after 'source <addr>'")
                    break
                }
                if t.source == nil { t.source = SourceBinding(address: SocketAddress.anyIPv4) }
                t.source?.interface = arg
            case "check": t.checkEnabled = true
            case "no-check": t.checkEnabled = false
            case "backup": t.isBackup = true
            case "no-backup": t.isBackup = false
            case "disabled": t.isDisabled = true
            case "enabled": t.isDisabled = false
            case "weight":
                if let w = Int(arg), (0...256).contains(w) {
                    t.weight = w
                } else {
                    error(location, keyword: keyword, Int(arg) == nil ? "weight '\(arg)'\(who) is not a whole number" : "weight \(arg)\(who) is outside 0...256")
                }
            case "port":
                t.check.port = value(ValueParser.integer(arg, in: 1...65535, what: "check port"), location, keyword: keyword)
            case "addr":
                if case .failure(let e) = ValueParser.endpoint("\(arg.contains(":") ? "[\(arg)]" : arg):1", allowZeroPort: false) {
                    error(location, keyword: keyword, "addr\(who): \(e.message)")
                } else {
                    t.check.address = arg
                }
            case "inter":
                t.check.interval = positiveTime(arg, location, keyword: keyword, what: "inter") ?? t.check.interval
            case "fastinter":
                t.check.fastInterval = positiveTime(arg, location, keyword: keyword, what: "fastinter")
            case "downinter":
                t.check.downInterval = positiveTime(arg, location, keyword: keyword, what: "downinter")
            case "rise":
                t.check.rise = value(ValueParser.integer(arg, in: 1...1000, what: "rise"), location, keyword: keyword) ?? t.check.rise
            case "fall":
                t.check.fall = value(ValueParser.integer(arg, in: 1...1000, what: "fall"), location, keyword: keyword) ?? t.check.fall
            case "observe":
                switch arg {
                case "layer4": t.observeLayer4 = true
                case "layer7": error(location, keyword: keyword, "'observe layer7'\(who) needs HTTP; Sluice observes layer4 only")
                default: error(location, keyword: keyword, "'observe \(arg)'\(who): expected layer4")
                }
            case "error-limit":
                t.errorLimit = value(ValueParser.integer(arg, in: 1...1000, what: "error-limit"), location, keyword: keyword) ?? t.errorLimit
            case "on-error":
                if let action = ObservedErrorAction(rawValue: arg) { t.onError = action } else {
                    error(location, keyword: keyword, "'on-error \(arg)'\(who): expected fastinter, fail-check, sudden-death or mark-down")
                }
            case "on-marked-down":
                if arg == "shutdown-sessions" { t.shutdownSessionsWhenDown = true } else {
                    error(location, keyword: keyword, "'on-marked-down \(arg)'\(who): expected shutdown-sessions")
                }
            case "on-marked-up":
                if arg == "shutdown-backup-sessions" { t.shutdownBackupSessionsWhenUp = true } else {
                    error(location, keyword: keyword, "'on-marked-up \(arg)'\(who): expected shutdown-backup-sessions")
                }
            case "id":
                if keyword != "server" {
                    error(location, keyword: keyword, "'id' names one server: it is not accepted on '\(keyword)'")
                } else {
                    t.id = value(ValueParser.integer(arg, in: 1...Int(Int32.max), what: "id"), location, keyword: keyword) ?? t.id
                }
            case "maxconn":
                t.maxConnections = value(ValueParser.integer(arg, in: 0...1_000_000, what: "maxconn"), location, keyword: keyword).flatMap { $0 == 0 ? nil : $0 }
            case "minconn":
                t.minConnections = value(ValueParser.integer(arg, in: 0...1_000_000, what: "minconn"), location, keyword: keyword).flatMap { $0 == 0 ? nil : $0 }
            case "maxqueue":
                t.maxQueue = value(ValueParser.integer(arg, in: 0...1_000_000, what: "maxqueue"), location, keyword: keyword).flatMap { $0 == 0 ? nil : $0 }
            // HAProxy's bits: each keyword sets or clears its own, and `no-send-proxy` leaves v2.
            case "send-proxy": t.sendsProxyV1 = true
            case "send-proxy-v2": t.sendsProxyV2 = true
            case "no-send-proxy": t.sendsProxyV1 = false
            case "no-send-proxy-v2": t.sendsProxyV2 = false
            case "send-proxy-v2-ssl", "send-proxy-v2-ssl-cn":
                t.sendsProxyV2 = true
                t.proxyV2Options.formUnion(param == "send-proxy-v2-ssl" ? .ssl : [.ssl, .certCN])
            case "no-send-proxy-v2-ssl", "no-send-proxy-v2-ssl-cn":
                t.sendsProxyV2 = false
                t.proxyV2Options.subtract(param == "no-send-proxy-v2-ssl" ? .ssl : [.ssl, .certCN])
            case "proxy-v2-options":
                for name in arg.split(separator: ",", omittingEmptySubsequences: false) {
                    guard let options = ProxyV2Options.names[String(name)] else {
                        error(location, keyword: keyword, "'proxy-v2-options'\(who): '\(name)' : proxy v2 option not implemented (HAProxy's: ssl, cert-cn, cert-key, cert-sig, ssl-cipher, authority, crc32c, unique-id)")
                        break
                    }
                    t.proxyV2Options.formUnion(options)
                }
            case "check-send-proxy": t.checkSendProxy = true
            case "socks4":
                // HAProxy: an address with a port, resolved once when the configuration is read.
                guard arg.split(separator: ":").last.map({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) == true, arg.contains(":") else {
                    error(location, keyword: keyword, "'socks4 \(arg)'\(who): missing port specification in '\(arg)' (as HAProxy)")
                    break
                }
                switch ValueParser.endpoint(arg, allowZeroPort: false) {
                case .success(let endpoint) where endpoint.unix == nil && endpoint.host != nil && endpoint.port > 0:
                    t.socks4 = endpoint
                case .success:
                    error(location, keyword: keyword, "'socks4 \(arg)'\(who): expects <addr>:<port> (an IP address or host name, and a port)")
                case .failure(let e):
                    error(location, keyword: keyword, "'socks4 \(arg)'\(who): \(e.message)")
                }
            case "check-via-socks4": t.checkViaSocks4 = true
            case "namespace":
                // `*`: the namespace a client's PROXY header names (its NETNS TLV), per session.
                if arg == "*" {
                    error(location, keyword: keyword, "'namespace *'\(who) (the namespace each client's PROXY header names) is not supported yet; name one")
                } else {
                    t.namespace = arg
                }
            case "no-check-send-proxy": t.checkSendProxy = false
            case "init-addr":
                var methods: [InitAddressMethod] = []
                for method in arg.split(separator: ",") {
                    switch method {
                    case "libc": methods.append(.libc)
                    case "last": methods.append(.last)
                    case "none": methods.append(.none)
                    default:
                        if case .success = ValueParser.endpoint(method.contains(":") ? "[\(method)]:1" : "\(method):1", allowZeroPort: false),
                           method.allSatisfy({ $0.isHexDigit || $0 == "." || $0 == ":" }) {
                            methods.append(.ip(String(method)))
                        } else {
                            error(location, keyword: keyword, "'init-addr \(arg)'\(who): '\(method)' is not libc, last, none or an IP address")
                        }
                    }
                }
                if !methods.isEmpty { t.initAddress = methods }
            case "track":
                let parts = arg.split(separator: "/", maxSplits: 1).map(String.init)
                if parts.allSatisfy({ !$0.isEmpty }) {
                    t.track = parts.count == 2 ? TrackTarget(backend: parts[0], server: parts[1]) : TrackTarget(backend: nil, server: parts[0])
                } else {
                    error(location, keyword: keyword, "'track \(arg)'\(who): expected [<backend>/]<server>")
                }
            case "slowstart":
                if let time = timeValue(arg, location, keyword: keyword) { t.slowStart = time > .zero ? time : nil }
            case "resolve-prefer":
                switch arg {
                case "ipv4": t.preferIPv6 = false
                case "ipv6": t.preferIPv6 = true
                default: error(location, keyword: keyword, "'resolve-prefer \(arg)'\(who): expected ipv4 or ipv6")
                }
            case "resolvers":
                t.resolvers = arg
            case "resolve-opts":
                for option in arg.split(separator: ",") {
                    switch option {
                    case "allow-dup-ip": t.allowDuplicateAddress = true
                    case "prevent-dup-ip": t.allowDuplicateAddress = false
                    case "ignore-weight": t.ignoreSRVWeight = true
                    default: error(location, keyword: keyword, "'resolve-opts \(arg)'\(who): '\(option)' is not allow-dup-ip, prevent-dup-ip or ignore-weight")
                    }
                }
            case "resolve-net":
                var networks: [String] = []
                for network in arg.split(separator: ",").map(String.init) {
                    if IPNetwork(network) != nil { networks.append(network) } else {
                        error(location, keyword: keyword, "'resolve-net \(arg)'\(who): '\(network)' is not an IPv4 or IPv6 network such as 10.0.0.0/8")
                    }
                }
                t.resolveNetworks = networks
            case "cookie", "redir", "ws":
                warning(location, keyword: keyword, "'\(param)'\(who) has no effect: it needs HTTP, and Sluice balances at Layer 4")
            case "pool-max-conn", "pool-low-conn", "pool-purge-delay", "max-reuse":
                warning(location, keyword: keyword, "'\(param)'\(who) has no effect: it tunes HTTP connection reuse, and Sluice gives each client its own server connection")
            case "non-stick": t.nonStick = true
            case "stick": t.nonStick = false
            case "tcp-ut":
                t.userTimeout = positiveTime(arg, location, keyword: keyword, what: "'tcp-ut'\(who)")
            case "agent-check": t.agentEnabled = true
            case "no-agent-check": t.agentEnabled = false
            case "agent-port":
                t.agentPort = value(ValueParser.integer(arg, in: 1...65535, what: "agent-port"), location, keyword: keyword) ?? 0  // 0: refused already
            case "agent-addr": t.agentAddress = arg
            case "agent-inter":
                t.agentInterval = positiveTime(arg, location, keyword: keyword, what: "agent-inter") ?? t.agentInterval
            case "agent-send": t.agentSend = Array(arg.utf8)
            case "tfo": t.fastOpen = true
            case "no-tfo": t.fastOpen = false
            case _ where tlsParameter(&t.tls, param, arg, location, keyword: keyword, who: who):
                break
            case "ssl":
                error(location, keyword: keyword, "'ssl'\(who): TLS to servers is not supported for forwarded traffic; Sluice forwards the client's bytes untouched (health checks may use TLS: 'check-ssl')")
            case _ where ServerKeywords.notYet[param] != nil:
                error(location, keyword: keyword, "server parameter '\(param)'\(who) is not supported yet: \(ServerKeywords.notYet[param] ?? "")")
            default:
                error(location, keyword: keyword, "unknown server parameter '\(param)'\(who)")
            }
            i += takesValue.contains(param) ? 2 : 1
        }
    }

    private mutating func positiveTime(_ text: String, _ location: SourceLocation, keyword: String, what: String) -> Duration? {
        guard let t = timeValue(text, location, keyword: keyword) else { return nil }
        if t <= .zero {
            error(location, keyword: keyword, "\(what) must be greater than zero")
            return nil
        }
        return t
    }
}

/// Server parameters by what Sluice does with them.
enum ServerKeywords {
    static let takingValue: Set<String> = [
        "weight", "port", "addr", "inter", "fastinter", "downinter", "rise", "fall", "id", "observe", "error-limit", "on-error",
        "on-marked-down", "on-marked-up", "maxconn", "maxqueue", "minconn", "slowstart", "init-addr", "resolve-prefer", "resolvers",
        "resolve-opts", "resolve-net", "cookie", "redir", "pool-max-conn", "pool-low-conn", "pool-purge-delay", "max-reuse", "track",
        "agent-port", "agent-addr", "agent-inter", "agent-send", "source", "interface", "usesrc", "proto", "check-proto", "namespace", "socks4",
        "verify", "sni", "ca-file", "crt", "ciphers", "ciphersuites", "crl-file", "alpn", "npn", "check-sni", "check-alpn", "curves",
        "sigalgs", "client-sigalgs", "ssl-min-ver", "ssl-max-ver", "verifyhost", "ws", "log-proto", "shard", "tcp-ut", "guid",
        "set-proxy-v2-tlv-fmt", "proxy-v2-options", "check-reuse-pool", "hash-key", "idle-ping", "strict-maxconn",
    ]

    static let notYet: [String: String] = [
        "proto": "multiplexer protocols are HTTP", "check-proto": "multiplexer protocols are HTTP",
        "set-proxy-v2-tlv-fmt": "custom PROXY-protocol TLVs",
        "log-proto": "log servers", "shard": "peers", "guid": "GUIDs", "check-reuse-pool": "connection reuse",
        "hash-key": "consistent-hash keys", "idle-ping": "idle pings", "strict-maxconn": "strict maxconn",
    ]
}

extension Server {
    /// Parameters a server added at run time may not have (HAProxy's list for `add server`, less
    /// what Sluice refuses anyway): its address is given as it is, and it inherits nothing.
    static let notForDynamicServers: Set<String> = ["init-addr", "resolvers", "resolve-prefer", "resolve-net", "resolve-opts", "cookie", "redir", "socks4", "namespace"]

    /// A server for `add server <backend>/<name> <address>[:<port>] [param*]`, read with the
    /// `server` line's keywords but without `default-server` (as HAProxy). The failure is the
    /// sentence to answer.
    public static func dynamic(name: String, arguments: [String]) -> Result<Server, SluiceError> {
        guard let address = arguments.first else {
            return .failure(SluiceError("'server' expects <name> and <addr>[:<port>] as arguments."))
        }
        if let refused = arguments.dropFirst().first(where: { notForDynamicServers.contains($0) }) {
            return .failure(SluiceError("'\(refused)' option is not accepted for dynamic server"))
        }
        var parser = Parser(readFile: { _ in .failure(SystemError(code: ENOENT, call: "open")) })
        var draft = ProxyDraft(kind: .backend, name: "", location: SourceLocation(file: "add server", line: 1))
        parser.serverLine(&draft, ["server", name, address] + arguments.dropFirst(), SourceLocation(file: "add server", line: 1))
        if let problem = parser.diagnostics.first(where: { $0.severity == .error }) {
            return .failure(SluiceError(problem.message))
        }
        // Without `global`'s TLS words: a dynamic server verifies unless it says `verify none`.
        parser.resolveCheckTLS(&draft, global: GlobalTLS())
        if let problem = parser.diagnostics.first(where: { $0.severity == .error }) {
            return .failure(SluiceError(problem.message))
        }
        guard let server = draft.servers.first?.0 else { return .failure(SluiceError("'server' expects <name> and <addr>[:<port>] as arguments.")) }
        return .success(server)
    }
}
