/// Where and how often one server is checked, resolved from its configuration.
struct CheckPlan: Sendable {
    /// The check's destination: the server's address, or `addr`/`port` (or a leading
    /// `tcp-check connect port`) instead.
    let address: SocketAddress
    let rise: Int
    let fall: Int
    let intervalMs: Int64
    let fastIntervalMs: Int64
    let downIntervalMs: Int64

    init(server: Server, check: ServerCheck, serverAddress: SocketAddress, backend: Backend) throws(SluiceError) {
        var address = serverAddress
        if let host = check.address {
            do {
                address = try SocketAddress.resolve(host: host, port: serverAddress.port)
            } catch {
                throw SluiceError("backend '\(backend.name)' server '\(server.name)': cannot resolve check addr \(host): \(error)")
            }
        }
        if let port = check.port { address = address.with(port: port) }
        if case .tcp(let rules) = backend.healthCheck, case .connect(let port?)? = rules.first {
            address = address.with(port: port)
        }
        self.address = address
        rise = check.rise
        fall = check.fall
        intervalMs = check.interval.milliseconds
        fastIntervalMs = (check.fastInterval ?? check.interval).milliseconds
        downIntervalMs = (check.downInterval ?? check.interval).milliseconds
    }

    /// HAProxy's choice of interval: `downinter` while down, `fastinter` during a transition.
    func interval(for counter: HealthCounter) -> Int64 {
        if counter.value == 0 { return downIntervalMs }
        if counter.value != counter.top { return fastIntervalMs }
        return intervalMs
    }
}
