import Testing
@_spi(Benchmarks) @testable import Sluice

/// Server selection, without sockets: schedules and the backup rules.
struct SelectionTests {
    @Test func smoothWeightsInterleaveInsteadOfBursting() {
        #expect(RoundRobin.schedule(weights: [5, 1, 1]) == [0, 0, 1, 0, 2, 0, 0])
        #expect(RoundRobin.schedule(weights: [1, 1, 1]) == [0, 1, 2])
        #expect(RoundRobin.schedule(weights: [2, 1]) == [0, 1, 0])
    }

    @Test func weightsAreReducedByTheirCommonDivisorAndZeroNeverAppears() {
        #expect(RoundRobin.schedule(weights: [100, 0, 50]) == [0, 2, 0])
        #expect(RoundRobin.schedule(weights: [0, 0]) == [])
    }

    @Test func eachServerAppearsInProportionToItsWeight() {
        let weights = [256, 7, 1, 0, 33]
        let schedule = RoundRobin.schedule(weights: weights)
        for (i, w) in weights.enumerated() {
            #expect(schedule.filter { $0 == Int32(i) }.count == w)
        }
    }

    /// nginx's smooth weighted round-robin written plainly, step by step, to hold the optimised
    /// schedule to: the same sequence for any weights, zeros included.
    @Test func scheduleMatchesThePlainAlgorithmForRandomWeights() {
        func plain(_ weights: [Int]) -> [Int32] {
            let divisor = weights.filter { $0 > 0 }.reduce(0) { a, b in var (x, y) = (a, b); while y != 0 { (x, y) = (y, x % y) }; return x }
            guard divisor > 0 else { return [] }
            let w = weights.map { $0 / divisor }
            var current = [Int](repeating: 0, count: w.count)
            var out: [Int32] = []
            for _ in 0..<w.reduce(0, +) {
                var best = -1
                for i in w.indices where w[i] > 0 {
                    current[i] += w[i]
                    if best < 0 || current[i] > current[best] { best = i }
                }
                current[best] -= w.reduce(0, +)
                out.append(Int32(best))
            }
            return out
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let weights = (0..<Int.random(in: 1...12, using: &generator)).map { _ in
                Bool.random(using: &generator) ? 0 : Int.random(in: 1...20, using: &generator)
            }
            #expect(RoundRobin.schedule(weights: weights) == plain(weights), "weights \(weights)")
        }
    }

    static func backend(_ servers: [(String, Int, Bool)], allBackups: Bool = false) -> BackendState {
        var config = Backend(name: "be", servers: [])
        config.allBackups = allBackups
        let states = servers.enumerated().map { i, s in
            ServerState(name: s.0, ordinal: i, address: SocketAddress(ip: "127.0.0.1", port: 1000 + i)!, weight: s.1, isBackup: s.2, admin: .ready)
        }
        return BackendState(name: "be", servers: states, settings: BackendSettings(config))
    }

    static func picks(_ b: BackendState, _ n: Int, avoiding: UInt64 = 0) -> [String] {
        (0..<n).map { _ in b.pick(avoiding: avoiding)?.name ?? "-" }
    }

    @Test func backupsWaitUntilNoPrimaryIsUsableThenOnlyTheFirstServes() {
        let b = Self.backend([("a", 1, false), ("b", 1, false), ("x", 1, true), ("y", 1, true)])
        #expect(Self.picks(b, 4) == ["a", "b", "a", "b"])
        b.setAdmin(.drain, of: b.servers[0])
        #expect(Self.picks(b, 2) == ["b", "b"])
        b.setOperational(.stopped, of: b.servers[1])
        #expect(Self.picks(b, 3) == ["x", "x", "x"])
        b.setAdmin(.maintenance, of: b.servers[2])
        #expect(Self.picks(b, 2) == ["y", "y"])
        b.setOperational(.running, of: b.servers[1])
        #expect(Self.picks(b, 2) == ["b", "b"])
    }

    @Test func allBackupsRotatesOverEveryUsableBackup() {
        let b = Self.backend([("a", 1, false), ("x", 1, true), ("y", 1, true)], allBackups: true)
        b.setAdmin(.maintenance, of: b.servers[0])
        #expect(Set(Self.picks(b, 4)) == ["x", "y"])
    }

    @Test func weightZeroAndMaintenanceTakeNothing() {
        let b = Self.backend([("a", 0, false), ("b", 1, false)])
        #expect(Self.picks(b, 3) == ["b", "b", "b"])
        b.setAdmin(.maintenance, of: b.servers[1])
        #expect(Self.picks(b, 1) == ["-"])
        b.setWeight(3, of: b.servers[0])
        #expect(Self.picks(b, 2) == ["a", "a"])
    }

    @Test func pickSkipsServersTheSessionAlreadyFailedToReach() {
        let b = Self.backend([("a", 1, false), ("b", 1, false), ("c", 1, false)])
        #expect(Set(Self.picks(b, 6, avoiding: 0b001)) == ["b", "c"])
        #expect(Self.picks(b, 1, avoiding: 0b111) == ["-"])
    }
}

/// `hash-type consistent`: the Maglev table.
struct MaglevTests {
    static func counts(_ table: [Int32], _ n: Int) -> [Int] {
        var c = [Int](repeating: 0, count: n)
        for i in table { c[Int(i)] += 1 }
        return c
    }

    @Test func equalWeightsShareTheTableWithinOneSlot() {
        for n in [1, 2, 3, 7, 100] {
            let names = (0..<n).map { "srv\($0)" }
            let table = Maglev.table(names: names, weights: Array(repeating: 1, count: n))
            #expect(table.count == Maglev.defaultSize)
            let c = Self.counts(table, n)
            let share = Maglev.defaultSize / n
            #expect(c.allSatisfy { abs($0 - share) <= 1 }, "n \(n): \(c.min()!)...\(c.max()!) around \(share)")
        }
    }

    @Test func unequalWeightsShareInProportion() {
        let table = Maglev.table(names: ["a", "b", "c"], weights: [1, 2, 5])
        let c = Self.counts(table, 3)
        let unit = Double(Maglev.defaultSize) / 8
        for (i, w) in [1, 2, 5].enumerated() {
            #expect(abs(Double(c[i]) - unit * Double(w)) <= Double(w), "server \(i): \(c[i]) slots for weight \(w)")
        }
        #expect(!table.contains(where: { $0 < 0 }))
    }

    /// With every server DOWN, a backend hashed through the table (`hash-type consistent`,
    /// `balance random`) has no server to give, and rebuilding its schedule must not fail: it
    /// crashed the process when the last server went DOWN (the weights were an empty list).
    @Test(arguments: [BalanceAlgorithm.source, .random, .hash, .roundRobin, .leastConnections, .first])
    func aBackendWhoseServersAreAllDownPicksNone(algorithm: BalanceAlgorithm) {
        var config = Backend(name: "be", servers: [])
        config.balance = algorithm
        config.consistentHashing = true
        let states = (0..<3).map { i in
            ServerState(name: "s\(i)", ordinal: i, address: SocketAddress(ip: "127.0.0.1", port: 1000 + i)!, weight: 1, isBackup: i == 2, admin: .ready)
        }
        let backend = BackendState(name: "be", servers: states, settings: BackendSettings(config))
        for server in states { backend.setOperational(.stopped, of: server) }
        #expect(backend.pick(hash: 7) == nil)
        backend.setOperational(.running, of: states[2])
        #expect(backend.pick(hash: 7)?.name == "s2", "the backup, once UP")
    }

    @Test func removingOneOfAHundredMovesItsShareAndLittleElse() {
        let names = (0..<100).map { "web-\($0)" }
        var weights = Array(repeating: 1, count: 100)
        let before = Maglev.table(names: names, weights: weights)
        weights[42] = 0  // DOWN, drained or removed
        let after = Maglev.table(names: names, weights: weights)
        let own = before.filter { $0 == 42 }.count
        let moved = zip(before, after).filter { $0 != $1 }.count
        let extra = Double(moved - own) / Double(Maglev.defaultSize)
        print("Maglev, 1 of 100 servers removed: \(own) own slots moved, \(moved - own) others (\(String(format: "%.2f", extra * 100)) % of the table)")
        #expect(extra <= 0.01)
        // And it takes its slots back when it returns.
        #expect(Maglev.table(names: names, weights: Array(repeating: 1, count: 100)) == before)
    }

    @Test func removingOneOfThreeMovesLittleElse() {
        let before = Maglev.table(names: ["s0", "s1", "s2"], weights: [1, 1, 1])
        let after = Maglev.table(names: ["s0", "s1", "s2"], weights: [1, 0, 1])
        let others = zip(before, after).filter { $0 != 1 && $0 != $1 }.count
        print("Maglev, 1 of 3 servers removed: \(others) slots of the others moved (\(String(format: "%.2f", Double(others) * 100 / Double(before.count))) %)")
        #expect(Double(others) / Double(before.count) <= 0.001)
    }

    @Test func permutedServerListsBuildTheSameTable() {
        var generator = SystemRandomNumberGenerator()
        let names = (0..<50).map { "node-\($0)" }
        let weights = names.map { _ in Int.random(in: 1...5, using: &generator) }
        let table = Maglev.table(names: names, weights: weights)
        let order = names.indices.shuffled(using: &generator)
        let permuted = Maglev.table(names: order.map { names[$0] }, weights: order.map { weights[$0] })
        // The same server for every key, whatever the listing order.
        for _ in 0..<10_000 {
            let key = Int.random(in: 0..<Maglev.defaultSize, using: &generator)
            #expect(names[Int(table[key])] == names[order[Int(permuted[key])]])
        }
    }
}

/// `balance random(<draws>)`.
struct RandomDrawsTests {
    static func backend(_ weights: [Int], draws: Int) throws -> (LoadBalancer, BackendState) {
        var text = "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\n"
        text += "listen b\n  bind 127.0.0.1:0\n  balance random(\(draws))\n"
        for (i, w) in weights.enumerated() { text += "  server s\(i) 127.0.0.1:\(1024 + i) weight \(w)\n" }
        let balancer = try LoadBalancer(configuration: Configuration.parse(text).configuration)
        return (balancer, try #require(balancer.backend(named: "b")))
    }

    @Test func anIdleBackendIsSharedInProportionToTheWeights() throws {
        let (_, b) = try Self.backend([1, 3], draws: 2)
        var counts = [0, 0]
        for _ in 0..<8_000 { counts[b.pick()!.name == "s0" ? 0 : 1] += 1 }
        #expect(abs(Double(counts[1]) / 8_000 - 0.75) < 0.03, "\(counts)")
    }

    @Test func twoDrawsAvoidTheLoadedServer() throws {
        let (_, b) = try Self.backend([1, 1, 1, 1], draws: 2)
        let busy = try #require(b.server(named: "s0"))
        busy.currentSessions.store(50, ordering: .relaxed)
        var toBusy = 0
        for _ in 0..<8_000 where b.pick()!.name == "s0" { toBusy += 1 }
        // Only when both draws are s0: 1/16 of the picks (against 1/4 with one draw).
        #expect(abs(Double(toBusy) / 8_000 - 1.0 / 16) < 0.02, "\(toBusy)")
        let (_, single) = try Self.backend([1, 1, 1, 1], draws: 1)
        try #require(single.server(named: "s0")).currentSessions.store(50, ordering: .relaxed)
        var singleToBusy = 0
        for _ in 0..<8_000 where single.pick()!.name == "s0" { singleToBusy += 1 }
        #expect(abs(Double(singleToBusy) / 8_000 - 0.25) < 0.03, "\(singleToBusy)")
    }
}
