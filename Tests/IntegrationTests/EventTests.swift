import Foundation
import Synchronization
import Testing
@_spi(Benchmarks) import Sluice
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// `LoadBalancer.events`: what an embedding program hears, in order, and that a subscriber that
/// does not read costs a bounded buffer and counted drops, never a wait.
extension Loopback {
@Suite struct EventTests {
    /// Collects a stream's events on a task of its own.
    final class Collector: Sendable {
        final class Received: Sendable { let events = Mutex<[BalancerEvent]>([]) }
        private let received = Received()
        private let task: Task<Void, Never>

        init(_ stream: AsyncStream<BalancerEvent>) {
            let received = received
            task = Task { for await event in stream { received.events.withLock { $0.append(event) } } }
        }

        var all: [BalancerEvent] { received.events.withLock { $0 } }
        func cancel() { task.cancel() }
    }

    static func config(_ servers: String) -> String {
        """
        \(tcpDefaults())
        frontend fe
          bind 127.0.0.1:0
          default_backend be
        backend be
        \(servers)

        """
    }

    @Test func healthAdminWeightAddressAndReloadsAreAnnounced() throws {
        let up = try TestServer(.identify("up"))
        let other = try TestServer(.identify("other"), host: "127.0.0.2")
        defer { up.stop(); other.stop() }
        let dead = try Net.closedPort()
        let text = Self.config("""
              server s1 127.0.0.1:\(up.port)
              server s2 127.0.0.1:\(dead) check inter 100ms fall 1 rise 1 disabled
            """)
        let proxy = try RunningProxy(text)
        defer { proxy.stop() }
        let collector = Collector(proxy.balancer.events())
        defer { collector.cancel() }
        // s2's checks start only now, once the subscription exists (events before it are not kept).
        _ = proxy.balancer.runtimeReply("set server be/s2 state ready")
        try eventually("s2 found DOWN by its check") {
            collector.all.contains { event in
                if case .serverHealth("be", "s2", .running, .stopped, let reason?) = event { return reason.contains("Layer4") }
                return false
            }
        }
        _ = proxy.balancer.runtimeReply("set server be/s1 state drain")
        _ = proxy.balancer.runtimeReply("set server be/s1 weight 5")
        _ = proxy.balancer.runtimeReply("set server be/s1 addr 127.0.0.2 port \(other.port)")
        let parsed = try Configuration.parse(text + "backend extra\n  server x 127.0.0.1:1\n", file: "t.cfg")
        var configuration = parsed.configuration
        configuration.global.ioEngine = proxy.balancer.configuration.global.ioEngine
        try proxy.balancer.reload(configuration)
        var broken = configuration
        broken.backends[0].servers[0].endpoint = Endpoint(host: "no-such-host.invalid", port: 80)
        #expect(throws: SluiceError.self) { try proxy.balancer.reload(broken) }
        try eventually("the reload refused") { collector.all.contains { if case .reloadFailed = $0 { true } else { false } } }
        let events = collector.all.filter { if case .serverHealth = $0 { false } else { true } }
        #expect(Array(events.prefix(5)) == [
            .serverAdmin(backend: "be", server: "s2", from: .maintenance, to: .ready, reason: "stats socket command"),
            .serverAdmin(backend: "be", server: "s1", from: .ready, to: .drain, reason: "stats socket command"),
            .serverWeight(backend: "be", server: "s1", from: 1, to: 5),
            .serverAddress(backend: "be", server: "s1", from: "127.0.0.1:\(up.port)", to: "127.0.0.2:\(other.port)", by: "stats socket command"),
            .reloaded(notices: []),
        ])
        #expect(events.count == 6, "\(events)")
        if case .reloadFailed(let reason) = events.last { #expect(reason.contains("no-such-host.invalid")) } else { Issue.record("no reloadFailed: \(events)") }
    }

    /// Clients that wait past `timeout queue` are closed and announced, counted, once a second.
    @Test func sessionsThatOutwaitTheQueueAreAnnounced() throws {
        let holder = try TestServer(.holdOpen)
        defer { holder.stop() }
        let proxy = try RunningProxy("""
            \(tcpDefaults())
            frontend fe
              bind 127.0.0.1:0
              default_backend be
            backend be
              timeout queue 200ms
              server s1 127.0.0.1:\(holder.port) maxconn 1

            """)
        defer { proxy.stop() }
        let collector = Collector(proxy.balancer.events())
        defer { collector.cancel() }
        let first = try Net.connect(proxy.port)  // holds the only slot
        defer { close(first) }
        try eventually("the first session holds the slot") { proxy.balancer.statistics().backend(named: "be")?.servers.first?.sessions.currentSessions == 1 }
        let waiting = try (0..<2).map { _ in try Net.connect(proxy.port) }
        defer { waiting.forEach { close($0) } }
        for fd in waiting { _ = try Net.readToEnd(fd, timeoutMs: 5000, resetEnds: true) }  // closed after 200 ms
        try eventually("the timeout announced") { collector.all.contains { if case .queueTimedOut(backend: "be", _) = $0 { true } else { false } } }
        let counted = collector.all.reduce(0) { if case .queueTimedOut(_, let n) = $1 { $0 + n } else { $0 } }
        #expect((1...2).contains(counted), "\(collector.all)")
    }

    /// The runtime API's server and frontend changes as typed methods: each takes effect and is
    /// announced as the socket command's would be.
    @Test func typedMethodsChangeAddressHealthAndLimits() throws {
        let up = try TestServer(.identify("up"))
        let other = try TestServer(.identify("other"), host: "127.0.0.2")
        defer { up.stop(); other.stop() }
        let proxy = try RunningProxy(Self.config("  server s1 127.0.0.1:\(up.port)"))
        defer { proxy.stop() }
        let collector = Collector(proxy.balancer.events())
        defer { collector.cancel() }
        let backend = try #require(proxy.balancer.backend(named: "be")), s1 = try #require(backend.server(named: "s1"))
        backend.setAddress(try #require(SocketAddress(ip: "127.0.0.2", port: other.port)), of: s1)
        #expect(try BalancingTests.whoAnswers(proxy.port) == "other")
        backend.setHealth(.stopped, of: s1)
        #expect(proxy.balancer.statistics().backend(named: "be")?.servers.first?.operational == .stopped)
        backend.setHealth(.running, of: s1)
        try proxy.balancer.setMaxConnections(3, ofFrontend: "fe")
        #expect(proxy.balancer.statistics().frontend(named: "fe")?.sessionLimit == 3)
        try proxy.balancer.setMaxConnections(nil, ofFrontend: "fe")
        #expect(proxy.balancer.statistics().frontend(named: "fe")?.sessionLimit == nil)
        #expect(throws: SluiceError.self) { try proxy.balancer.setMaxConnections(1, ofFrontend: "nosuch") }
        try eventually("the changes announced") { collector.all.count >= 3 }
        #expect(Array(collector.all.prefix(3)) == [
            .serverAddress(backend: "be", server: "s1", from: "127.0.0.1:\(up.port)", to: "127.0.0.2:\(other.port)", by: "library"),
            .serverHealth(backend: "be", server: "s1", from: .running, to: .stopped, reason: "library"),
            .serverHealth(backend: "be", server: "s1", from: .stopped, to: .running, reason: "library"),
        ])
    }

    /// A frontend at its `maxconn` stops accepting (the next client waits in the backlog) and
    /// says so; it says when it accepts again, and the waiting client is then served.
    @Test func aFrontendAtItsLimitAnnouncesThePauseAndTheResumption() throws {
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let proxy = try RunningProxy("""
            \(tcpDefaults())
            frontend fe
              bind 127.0.0.1:0
              maxconn 1
              default_backend be
            backend be
              server s1 127.0.0.1:\(echo.port)

            """)
        defer { proxy.stop() }
        let collector = Collector(proxy.balancer.events())
        defer { collector.cancel() }
        let first = try Net.connect(proxy.port)
        try Net.sendAll(first, "one")
        #expect(try Net.read(first, count: 3) == Array("one".utf8))
        let second = try Net.connect(proxy.port)  // completes in the kernel's backlog
        defer { close(second) }
        try Net.sendAll(second, "two")
        try eventually("the pause announced") { collector.all.contains(.acceptingPaused(frontend: "fe", limit: .frontend)) }
        // A paused listener is retried every 20 ms (a slot may free on another thread); a retry
        // that finds the frontend still full announces nothing. The window is the subject here.
        usleep(150_000)
        #expect(!collector.all.contains { if case .acceptingResumed = $0 { true } else { false } },
                "no resumption while the first client holds the only slot: \(collector.all)")
        close(first)
        #expect(try Net.read(second, count: 3) == Array("two".utf8), "the waiting client is served once the first leaves")
        try eventually("the resumption announced") {
            collector.all.contains { if case .acceptingResumed(frontend: "fe", let after) = $0 { after >= 0 } else { false } }
        }
        let limits = collector.all.filter {
            switch $0 { case .acceptingPaused, .acceptingResumed: true; default: false }
        }
        #expect(limits.count == 2, "one pause, one resumption: \(limits)")
    }

    @Test func aSubscriberThatDoesNotReadKeepsTheNewestAndTheRestIsCounted() throws {
        let up = try TestServer(.identify("up"))
        defer { up.stop() }
        let proxy = try RunningProxy(Self.config("  server s1 127.0.0.1:\(up.port)"))
        defer { proxy.stop() }
        let stalled = proxy.balancer.events(bufferingNewest: 8)
        for weight in 1...100 { _ = proxy.balancer.runtimeReply("set server be/s1 weight \(weight % 2 == 0 ? 2 : 3)") }
        #expect(proxy.balancer.droppedEvents == 100 - 8)
        // What is left is the newest eight, in order.
        let collector = Collector(stalled)
        defer { collector.cancel() }
        try eventually("the buffered events arrive") { collector.all.count == 8 }
        #expect(collector.all.last == .serverWeight(backend: "be", server: "s1", from: 3, to: 2))
        #expect(try Net.connect(proxy.port) >= 0, "the balancer never waited for the subscriber")
    }
}
}

import Logging
import ServiceLifecycle

/// `LoadBalancer` in a swift-service-lifecycle `ServiceGroup`: it serves once the group runs,
/// a graceful shutdown of the group lets an open session finish, and `run()` returns after.
extension Loopback {
@Suite struct ServiceLifecycleTests {
    @Test func aServiceGroupRunsTheBalancerAndItsGracefulShutdownDrainsIt() async throws {
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        _ = pipeSignalIgnored
        var parsed = try Configuration.parse(EventTests.config("  server s1 127.0.0.1:\(echo.port)"), file: "t.cfg")
        parsed.configuration.global.ioEngine = RunningProxy.defaultEngine
        let balancer = try LoadBalancer(configuration: parsed.configuration, logger: Logger(label: "service-test"))
        let group = ServiceGroup(services: [balancer], logger: Logger(label: "group"))
        let running = Task { try await group.run() }
        var port = 0
        try eventually("the balancer listens") {
            port = balancer.listeningAddresses(of: "fe").first?.port ?? 0
            return port != 0
        }
        let session = try Net.connect(port)
        defer { close(session) }
        try Net.sendAll(session, "before\n")
        #expect(try Net.read(session, count: 7) == Array("before\n".utf8))

        await group.triggerGracefulShutdown()
        try eventually("the balancer drains") { balancer.listeningAddresses(of: "fe").isEmpty || (try? Net.connect(port)).map { close($0); return false } ?? true }
        // Draining: no new session, the open one goes on.
        try eventually("new connections are refused") { (try? Net.connect(port)).map { close($0); return false } ?? true }
        try Net.sendAll(session, "after\n")
        #expect(try Net.read(session, count: 6) == Array("after\n".utf8))
        #expect(!running.isCancelled)
        // The client's FIN reaches the server, whose FIN comes back: the last session ends, and its
        // socket really closes (io_uring's last poll removals are completed when the loop ends).
        shutdown(session, Int32(SHUT_WR))
        _ = try Net.readToEnd(session)
        try await running.value  // returns once the last session has ended
        #expect(balancer.currentSessions == 0)
    }
}
}
