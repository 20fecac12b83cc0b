import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// Server choice, failover and limits, observed from real clients.
extension Loopback {
@Suite struct BalancingTests {
    /// Opens a connection and returns the name the server behind the proxy sent.
    static func whoAnswers(_ port: Int) throws -> String {
        let fd = try Net.connect(port)
        defer { close(fd) }
        let reply = try Net.readToEnd(fd, timeoutMs: 10_000)
        return String(decoding: reply, as: UTF8.self).trimmingCharacters(in: .newlines)
    }

    @Test func weightedRoundRobinFollowsTheSmoothScheduleOverRealConnections() throws {
        let a = try TestServer(.identify("a")), b = try TestServer(.identify("b")), c = try TestServer(.identify("c"))
        defer { a.stop(); b.stop(); c.stop() }
        let proxy = try RunningProxy("""
            listen fe
              bind 127.0.0.1:0
              balance roundrobin
              server a 127.0.0.1:\(a.port) weight 5
              server b 127.0.0.1:\(b.port) weight 1
              server c 127.0.0.1:\(c.port) weight 1
            """)
        let answers = try (0..<14).map { _ in try Self.whoAnswers(proxy.port) }
        #expect(answers.joined() == "aabacaa" + "aabacaa")
    }

    @Test func refusedServerIsSkippedWithNoClientVisibleFailureUnderRedispatch() throws {
        let a = try TestServer(.identify("a")), b = try TestServer(.identify("b"))
        defer { a.stop(); b.stop() }
        let dead = try Net.closedPort()
        let proxy = try RunningProxy("""
            defaults
              timeout connect 2s
              retries 3
              option redispatch
            listen fe
              bind 127.0.0.1:0
              server a 127.0.0.1:\(a.port)
              server dead 127.0.0.1:\(dead)
              server b 127.0.0.1:\(b.port)
            """)
        var counts: [String: Int] = [:]
        for _ in 0..<90 { counts[try Self.whoAnswers(proxy.port), default: 0] += 1 }
        #expect(counts["a", default: 0] + counts["b", default: 0] == 90, "\(counts)")
        #expect(counts["a", default: 0] >= 30 && counts["b", default: 0] >= 30, "\(counts)")
        let deadState = try #require(proxy.balancer.backend(named: "fe")?.server(named: "dead"))
        #expect(deadState.statistics.redispatches >= 25)
        // `econ` counts sessions that gave up (HAProxy's failed_conns); these all went elsewhere.
        #expect(deadState.statistics.connectErrors == 0)
        // The backend counts each session once (`stot`, as HAProxy's backend cum_conn); servers
        // count each one they were given, the redispatched ones twice in all (`lbtot`).
        let backend = try #require(proxy.balancer.statistics().backends.first { $0.name == "fe" })
        #expect(backend.sessionsSinceStart == 90)
        #expect(backend.totals.totalSessions == 90 + deadState.statistics.totalSessions)
    }

    @Test func withoutRedispatchAFailedConnectRetriesTheSameServerThenGivesUp() throws {
        let dead = try Net.closedPort()
        let proxy = try RunningProxy("""
            defaults
              timeout connect 100ms
              retries 2
            listen fe
              bind 127.0.0.1:0
              server dead 127.0.0.1:\(dead)
            """)
        let fd = try Net.connect(proxy.port)
        defer { close(fd) }
        // Three attempts with a min(timeout connect, 1 s) = 100 ms pause between them, then a close.
        #expect(try Net.readToEnd(fd).isEmpty)
        let stats = try #require(proxy.balancer.backend(named: "fe")?.server(named: "dead")).statistics
        #expect(stats.totalSessions == 3, "each attempt")
        #expect(stats.connectErrors == 1, "one session gave up (HAProxy's econ)")
        #expect(stats.retries == 2)
    }

    @Test func backupTakesTrafficOnlyWhenNoPrimaryIsUsable() throws {
        let p1 = try TestServer(.identify("p1")), p2 = try TestServer(.identify("p2"))
        let b1 = try TestServer(.identify("b1")), b2 = try TestServer(.identify("b2"))
        defer { p1.stop(); p2.stop(); b1.stop(); b2.stop() }
        let proxy = try RunningProxy("""
            listen fe
              bind 127.0.0.1:0
              server p1 127.0.0.1:\(p1.port)
              server p2 127.0.0.1:\(p2.port)
              server b1 127.0.0.1:\(b1.port) backup
              server b2 127.0.0.1:\(b2.port) backup
            """)
        let backend = try #require(proxy.balancer.backend(named: "fe"))
        #expect(Set(try (0..<6).map { _ in try Self.whoAnswers(proxy.port) }) == ["p1", "p2"])
        backend.setAdmin(.maintenance, of: try #require(backend.server(named: "p1")))
        #expect(Set(try (0..<4).map { _ in try Self.whoAnswers(proxy.port) }) == ["p2"])
        backend.setAdmin(.maintenance, of: try #require(backend.server(named: "p2")))
        // Only the first backup, as HAProxy without `option allbackups`.
        #expect(Set(try (0..<4).map { _ in try Self.whoAnswers(proxy.port) }) == ["b1"])
        backend.setAdmin(.ready, of: try #require(backend.server(named: "p1")))
        #expect(Set(try (0..<4).map { _ in try Self.whoAnswers(proxy.port) }) == ["p1"])
    }

    @Test func allBackupsSpreadsOverEveryBackup() throws {
        let p = try TestServer(.identify("p")), b1 = try TestServer(.identify("b1")), b2 = try TestServer(.identify("b2"))
        defer { p.stop(); b1.stop(); b2.stop() }
        let proxy = try RunningProxy("""
            listen fe
              bind 127.0.0.1:0
              option allbackups
              server p 127.0.0.1:\(p.port) disabled
              server b1 127.0.0.1:\(b1.port) backup
              server b2 127.0.0.1:\(b2.port) backup
            """)
        #expect(Set(try (0..<6).map { _ in try Self.whoAnswers(proxy.port) }) == ["b1", "b2"])
    }

    @Test func maxconnHoldsExtraClientsInTheBacklogAndServesThemWhenSlotsFree() throws {
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let proxy = try RunningProxy("""
            global
              maxconn 5
            listen fe
              bind 127.0.0.1:0
              server s 127.0.0.1:\(echo.port)
            """)
        var clients: [CInt] = []
        defer { for fd in clients where fd >= 0 { close(fd) } }
        for i in 0..<8 {
            let fd = try Net.connect(proxy.port)  // the kernel completes the handshake either way
            clients.append(fd)
            try Net.sendAll(fd, "hello \(i)\n")
        }
        // The first five are served.
        for i in 0..<5 {
            #expect(String(decoding: try Net.read(clients[i], count: 8), as: UTF8.self) == "hello \(i)\n")
        }
        // The other three wait in the backlog: accepted by the kernel, not by Sluice, so no reply.
        for i in 5..<8 { #expect(!Net.waitReadable(clients[i], timeoutMs: 200), "client \(i) was served beyond maxconn") }
        #expect(echo.accepted.load(ordering: .relaxed) == 5)
        #expect(proxy.balancer.currentSessions == 5)
        // Freeing three slots lets the waiting three in.
        for i in 0..<3 { close(clients[i]); clients[i] = -1 }
        for i in 5..<8 {
            #expect(String(decoding: try Net.read(clients[i], count: 8), as: UTF8.self) == "hello \(i)\n")
        }
        #expect(echo.accepted.load(ordering: .relaxed) == 8)
    }

    @Test func twoThreadsShareTheLoadAndTheRoundRobinCursor() throws {
        let a = try TestServer(.identify("a")), b = try TestServer(.identify("b"))
        defer { a.stop(); b.stop() }
        let proxy = try RunningProxy("""
            global
              nbthread 2
            listen fe
              bind 127.0.0.1:0
              server a 127.0.0.1:\(a.port)
              server b 127.0.0.1:\(b.port)
            """)
        var counts: [String: Int] = [:]
        for _ in 0..<100 { counts[try Self.whoAnswers(proxy.port), default: 0] += 1 }
        #expect(counts == ["a": 50, "b": 50])
    }
}
}
