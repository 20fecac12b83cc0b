/// Where and how often one server is checked, resolved from its configuration.
struct CheckPlan: Sendable {
    /// `addr` (or `set server … check-addr`, or `http-check connect addr`): checks go there
    /// instead of the server's address.
    /// Nil: they follow the server's address, which `set server addr` and DNS answers may change.
    var fixedAddress: SocketAddress?
    /// `port` (or `set server … check-port`): checks go to this port. Nil: the server's.
    var port: Int?
    /// A leading `tcp-check connect port` or `http-check connect port`: it wins over `port`, as in HAProxy.
    let rulePort: Int?
    /// Whether the check opens with a PROXY header: a leading `tcp-check connect` says.
    let connectHeader: CheckConnectHeader
    /// Whether the check goes through the server's `socks4` proxy.
    let viaSOCKS: Bool
    let rise: Int
    let fall: Int
    let intervalMs: Int64
    let fastIntervalMs: Int64
    let downIntervalMs: Int64

    init(server: Server, check: ServerCheck, serverAddress: SocketAddress, backend: Backend) throws(SluiceError) {
        var rulePort: Int?
        var connectHeader = CheckConnectHeader.server
        var socks = backend.healthCheck.httpCheck?.connect?.socks ?? .server
        if case .tcp(let rules) = backend.healthCheck,
           case .connect(let p, let header, let s)? = rules.first(where: { if case .comment = $0 { false } else { true } }) {
            rulePort = p
            connectHeader = header
            socks = s
        }
        // As HAProxy: the implicit connect, or one marked `default`, follows `check-via-socks4`;
        // one marked `via-socks4` always goes through the proxy; any other goes direct.
        viaSOCKS = server.socks4 != nil && (socks == .always || (socks == .server && server.checkViaSocks4))
        self.connectHeader = connectHeader
        if let connect = backend.healthCheck.httpCheck?.connect { rulePort = connect.port }
        let ruleAddress = backend.healthCheck.httpCheck?.connect?.address
        fixedAddress = try Self.resolve(ruleAddress ?? check.address, port: serverAddress.port, what: ruleAddress == nil ? "check addr" : "http-check connect addr",
                                        server: server, backend: backend)
        port = check.port
        self.rulePort = rulePort
        rise = check.rise
        fall = check.fall
        intervalMs = check.interval.milliseconds
        fastIntervalMs = (check.fastInterval ?? check.interval).milliseconds
        downIntervalMs = (check.downInterval ?? check.interval).milliseconds
    }

    /// An agent check's plan: `agent-addr` (else the server's address, as it moves) and
    /// `agent-port`, every `agent-inter` (else `inter`); its health turns at once (HAProxy's rise
    /// and fall of 1 for agents).
    init(agent: AgentCheck, server: Server, serverAddress: SocketAddress, backend: Backend) throws(SluiceError) {
        fixedAddress = try Self.resolve(agent.address, port: agent.port, what: "agent-addr", server: server, backend: backend)
        port = agent.port
        rulePort = nil
        connectHeader = .never  // agents never get one (HAProxy)
        viaSOCKS = false  // nor go through a SOCKS4 proxy
        rise = 1
        fall = 1
        intervalMs = (agent.interval ?? server.check?.interval ?? ServerCheck().interval).milliseconds
        fastIntervalMs = intervalMs
        downIntervalMs = intervalMs
    }

    /// `addr` / `agent-addr` resolved once, at start or reload; nil without one.
    private static func resolve(_ host: String?, port: Int, what: String, server: Server, backend: Backend) throws(SluiceError) -> SocketAddress? {
        guard let host else { return nil }
        do {
            return try SocketAddress.resolve(host: host, port: port)
        } catch {
            throw SluiceError("backend '\(backend.name)' server '\(server.name)': cannot resolve \(what) \(host): \(error)")
        }
    }

    /// Where the check connects when the server is at `serverAddress`.
    func address(serverAddress: SocketAddress) -> SocketAddress {
        (fixedAddress ?? serverAddress).with(port: rulePort ?? port ?? serverAddress.port)
    }

    /// HAProxy's choice of interval: `downinter` while down, `fastinter` during a transition.
    func interval(for counter: HealthCounter) -> Int64 {
        if counter.value == 0 { return downIntervalMs }
        if counter.value != counter.top { return fastIntervalMs }
        return intervalMs
    }
}
