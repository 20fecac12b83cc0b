/// `balance leastconn`: the usable server with the fewest current sessions relative to its weight,
/// as HAProxy's fwlc (a server of weight 2 takes twice the sessions of one of weight 1 before it
/// counts as equally loaded). Ties go round-robin: the scan starts at a rotating offset.
enum LeastConnections {
    /// Scans `candidates` (indices into `servers`); no allocation.
    static func pick(_ servers: [ServerState], _ candidates: [Int32], start: Int, budget: SlotBudget, _ eligible: (ServerState) -> Bool) -> ServerState? {
        guard !candidates.isEmpty else { return nil }
        let now = monotonicMilliseconds()
        var best: ServerState?
        var bestLoad = 0, bestWeight = 1
        for step in 0..<candidates.count {
            let server = servers[Int(candidates[Int(UInt(bitPattern: start &+ step) % UInt(candidates.count))])]
            guard eligible(server), server.hasFreeSlot(budget) else { continue }
            let load = server.currentSessions.load(ordering: .relaxed) + 1
            let weight = server.effectiveWeight(now: now)
            // load/weight < bestLoad/bestWeight, without division.
            if best == nil || load * bestWeight < bestLoad * weight {
                best = server
                bestLoad = load
                bestWeight = weight
            }
        }
        return best
    }
}
