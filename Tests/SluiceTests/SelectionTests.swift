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
