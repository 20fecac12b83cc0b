/// Where and how often one server is checked, resolved from its configuration.
struct CheckPlan: Sendable {
    /// `addr` (or `set server … check-addr`): checks go there instead of the server's address.
    /// Nil: they follow the server's address, which `set server addr` and DNS answers may change.
    var fixedAddress: SocketAddress?
    /// `port` (or `set server … check-port`): checks go to this port. Nil: the server's.
    var port: Int?
    /// A leading `tcp-check connect port`: it wins over `port`, as in HAProxy.
    let rulePort: Int?
    let rise: Int
    let fall: Int
    let intervalMs: Int64
    let fastIntervalMs: Int64
    let downIntervalMs: Int64

    init(server: Server, check: ServerCheck, serverAddress: SocketAddress, backend: Backend) throws(SluiceError) {
        var fixed: SocketAddress?
        if let host = check.address {
            do {
                fixed = try SocketAddress.resolve(host: host, port: serverAddress.port)
            } catch {
                throw SluiceError("backend '\(backend.name)' server '\(server.name)': cannot resolve check addr \(host): \(error)")
            }
        }
        var rulePort: Int?
        if case .tcp(let rules) = backend.healthCheck, case .connect(let p?)? = rules.first { rulePort = p }
        fixedAddress = fixed
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
        var fixed: SocketAddress?
        if let host = agent.address {
            do {
                fixed = try SocketAddress.resolve(host: host, port: agent.port)
            } catch {
                throw SluiceError("backend '\(backend.name)' server '\(server.name)': cannot resolve agent-addr \(host): \(error)")
            }
        }
        fixedAddress = fixed
        port = agent.port
        rulePort = nil
        rise = 1
        fall = 1
        intervalMs = (agent.interval ?? server.check?.interval ?? ServerCheck().interval).milliseconds
        fastIntervalMs = intervalMs
        downIntervalMs = intervalMs
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
