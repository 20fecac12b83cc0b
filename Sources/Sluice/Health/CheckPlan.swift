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
    let rise: Int
    let fall: Int
    let intervalMs: Int64
    let fastIntervalMs: Int64
    let downIntervalMs: Int64

    init(server: Server, check: ServerCheck, serverAddress: SocketAddress, backend: Backend) throws(SluiceError) {
        var rulePort: Int?
        var connectHeader = CheckConnectHeader.server
        var connectRule = backend.healthCheck.httpCheck?.connect != nil
        if case .tcp(let rules) = backend.healthCheck,
           case .connect(let p, let header)? = rules.first(where: { if case .comment = $0 { false } else { true } }) {
            rulePort = p
            connectHeader = header
            connectRule = true
        }
        // HAProxy sends a check through the proxy only from its implicit connect or one marked
        // `default` (or `socks4`); Sluice does not keep those marks on an explicit rule.
        if server.checkViaSocks4 && server.socks4 != nil && connectRule {
            throw SluiceError("backend '\(backend.name)' server '\(server.name)': 'check-via-socks4' with an explicit 'tcp-check connect' or 'http-check connect' rule is not supported yet; without the rule the check goes through the proxy")
        }
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
