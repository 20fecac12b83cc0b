/// `balance random[(<draws>)]`, as HAProxy: `draws` servers drawn at random, each in proportion to
/// its weight (a random slot of the backend's Maglev table), and the least loaded of them (current
/// sessions relative to weight) takes the session — the "power of two choices" with the default of
/// two draws, which keeps loads even without scanning every server.
enum RandomDraws {
    /// No allocation. `seed` changes on every pick (the backend's cursor); the draws come from it
    /// through a 64-bit mixer, not from the system's random source (a system call per pick).
    static func pick(_ servers: [ServerState], _ table: [Int32], _ eligibleIndices: [Int32], draws: Int, seed: UInt64, budget: SlotBudget,
                     _ eligible: (ServerState) -> Bool) -> ServerState? {
        guard !table.isEmpty else { return nil }
        let now = monotonicMilliseconds()
        var best: ServerState?
        var bestLoad = 0, bestWeight = 1
        var state = seed &* 0x9E37_79B9_7F4A_7C15
        for _ in 0..<draws {
            state = Maglev.mix(state &+ 0x9E37_79B9_7F4A_7C15)
            let server = servers[Int(table[Int(state % UInt64(table.count))])]
            guard eligible(server), server.hasFreeSlot(budget) else { continue }
            // HAProxy's comparison: the later draw unless it serves more per weight (so an idle
            // backend is shared in proportion to the weights).
            let load = server.currentSessions.load(ordering: .relaxed)
            let weight = server.effectiveWeight(now: now)
            if best == nil || load * bestWeight <= bestLoad * weight {
                (best, bestLoad, bestWeight) = (server, load, weight)
            }
        }
        // Every draw unusable (full, or already failed for this session): the least loaded of all.
        return best ?? LeastConnections.pick(servers, eligibleIndices, start: Int(truncatingIfNeeded: seed), budget: budget, eligible)
    }
}
