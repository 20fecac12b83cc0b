/// `http-check send-state`: the `X-Haproxy-Server-State` header HAProxy 2.6 adds to each HTTP
/// check (its `httpchk_build_status_header`), so that a server can see how the balancer sees it:
///
///     x-haproxy-server-state: UP 2/3; address=10.0.0.1; port=80; name=be/s1; node=lb1; weight=1/2; scur=0/0; qcur=0
enum ServerStateHeader {
    /// `request` with the header at byte `offset` (after the configured headers), its name in
    /// lower case as HAProxy's HTTP/1 output writes it.
    static func insert(into request: [UInt8], at offset: Int, _ server: ServerState, of backend: BackendState, node: String, now: Int64) -> [UInt8] {
        var out = request
        out.insert(contentsOf: Array("x-haproxy-server-state: \(value(server, of: backend, node: node, now: now))\r\n".utf8), at: min(offset, out.count))
        return out
    }

    static func value(_ server: ServerState, of backend: BackendState, node: String, now: Int64) -> String {
        // HAProxy's `httpchk_build_status_header`: the state and the health counter, not the admin
        // state; NOLB for a soft-stopped server.
        var state = "no check"
        if let plan = server.checkPlan, server.checksEnabled.load(ordering: .relaxed) {
            let counter = HealthCounter(rise: plan.rise, fall: plan.fall, value: server.health.load(ordering: .relaxed))
            let operational = server.operational
            if operational.isUp {
                let word = operational == .stopping ? "NOLB" : "UP"
                state = counter.value == counter.top ? word : "\(word) \(counter.value - counter.rise + 1)/\(counter.fall)"
            } else {
                state = counter.value > 0 ? "DOWN \(counter.value)/\(counter.rise)" : "DOWN"
            }
        }
        let total = backend.servers.filter(\.isUsable).reduce(0) { $0 + $1.weight }
        let sessions = backend.load(.sessions) - Int64(backend.queueLength())
        var text = "\(state); address=\(server.address.ip); port=\(server.address.port); name=\(backend.name)/\(server.name); node=\(node)"
            + "; weight=\(server.effectiveWeight(now: now))/\(total); scur=\(server.currentSessions.load(ordering: .relaxed))/\(sessions)"
            + "; qcur=\(backend.queueLength(of: server))"
        if let throttle = server.throttlePercent(now: now) { text += "; throttle=\(throttle)%" }
        return text
    }
}
