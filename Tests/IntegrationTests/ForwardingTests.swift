import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// Forwarding through a real balancer on loopback, to real servers started by each test.
extension Loopback {
@Suite struct ForwardingTests {
    static func config(servers: [Int], extra: String = "", global: String = "") -> String {
        """
        global
        \(global)
        \(tcpDefaults())
        frontend fe
          bind 127.0.0.1:0
          default_backend be
        backend be
          option redispatch
        \(extra)
        \(servers.enumerated().map { "  server s\($0.offset) 127.0.0.1:\($0.element)" }.joined(separator: "\n"))
        """
    }

    /// A proxy in front of one server, with `timeouts` (lines such as `timeout client 300ms`) in defaults.
    static func proxy(to port: Int, timeouts: String, engine: IOEngine) throws -> RunningProxy {
        try RunningProxy("""
            defaults
              timeout connect 2s
            \(timeouts)
            listen fe
              bind 127.0.0.1:0
              server s 127.0.0.1:\(port)
            """, engine: engine)
    }

    /// Waits for the proxy to close `fd`, and checks that it did not do so before `notBefore`.
    static func expectClosedByTimeout(_ fd: CInt, notBefore: Duration, _ what: String) throws {
        let start = ContinuousClock.now
        #expect(try Net.readToEnd(fd, timeoutMs: 10_000).isEmpty, "\(what)")
        #expect(ContinuousClock.now - start >= notBefore, "closed before \(what) could have expired")
    }

    /// One line through an echo server and back.
    static func echoLine(_ fd: CInt, _ line: String) throws {
        try Net.sendAll(fd, line)
        #expect(String(decoding: try Net.read(fd, count: line.utf8.count), as: UTF8.self) == line)
    }

    /// Runs `connections` echo sessions through a proxy with `global` settings in front of an echo
    /// server; returns the swarm's result and how many connections the server accepted.
    static func echoSwarm(engine: IOEngine, global: String = "", connections: Int, timeout: Duration = .seconds(60),
                          payload: (Int) -> Int) throws -> (result: EchoSwarm.Result, accepted: Int) {
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let proxy = try RunningProxy(Self.config(servers: [echo.port], global: global), engine: engine)
        let result = try EchoSwarm.run(port: proxy.port, connections: connections, payload: payload, timeout: timeout)
        return (result, echo.accepted.load(ordering: .relaxed))
    }

    @Test(arguments: IOEngine.allCases)
    func sixtyFourMebibytesEachWayAtOnceArriveIntactAndInOrder(engine: IOEngine) throws {
        guard engine.isAvailable else { return }  // io_uring may be disabled on this kernel
        let (result, _) = try Self.echoSwarm(engine: engine, connections: 1, timeout: .seconds(120), payload: { _ in 64 << 20 })
        #expect(result.failed == [])
        #expect(result.completed == 1)
    }

    @Test(arguments: IOEngine.allCases)
    func thousandConcurrentSessionsEachEchoTheirOwnRandomData(engine: IOEngine) throws {
        guard engine.isAvailable else { return }  // io_uring may be disabled on this kernel
        let (result, accepted) = try Self.echoSwarm(engine: engine, connections: 1000, payload: { 1000 + ($0 * 7919) % 60_000 })
        #expect(result.failed == [])
        #expect(result.completed == 1000)
        #expect(accepted == 1000)
    }

    /// The default accepts one connection per listener per loop turn; a burst must be drained just the
    /// same with no limit (a negative `tune.maxaccept`) or a larger one.
    @Test(arguments: ["-1", "64"])
    func aBurstIsServedWhateverTheAcceptBatch(maxaccept: String) throws {
        let (result, accepted) = try Self.echoSwarm(engine: .preferred, global: "  tune.maxaccept \(maxaccept)", connections: 1000,
                                                    payload: { 1000 + ($0 * 7919) % 60_000 })
        #expect(result.failed == [])
        #expect(result.completed == 1000)
        #expect(accepted == 1000)
    }

    /// `tune.maxpollevents 1`: a reactor takes one event per loop turn and leaves the rest queued in
    /// the kernel (epoll's ready list, the io_uring's completion queue) for the turns after; none
    /// may be lost or wait for a new one to arrive.
    @Test(arguments: IOEngine.allCases)
    func oneEventPerTurnLosesNone(engine: IOEngine) throws {
        guard engine.isAvailable else { return }  // io_uring may be disabled on this kernel
        let (result, accepted) = try Self.echoSwarm(engine: engine, global: "  tune.maxpollevents 1", connections: 300,
                                                    payload: { 1000 + ($0 * 7919) % 60_000 })
        #expect(result.failed == [])
        #expect(result.completed == 300)
        #expect(accepted == 300)
    }

    @Test(arguments: IOEngine.allCases)
    func sameWorkloadWithoutSpliceUsesCopyBuffers(engine: IOEngine) throws {
        guard engine.isAvailable else { return }  // io_uring may be disabled on this kernel
        let (result, _) = try Self.echoSwarm(engine: engine, global: "  nosplice", connections: 50, payload: { 100_000 + $0 * 1000 })
        #expect(result.failed == [])
        #expect(result.completed == 50)
    }

    @Test(arguments: IOEngine.allCases)
    func pipeLimitFallsBackToCopyingWithoutLosingBytes(engine: IOEngine) throws {
        guard engine.isAvailable else { return }  // io_uring may be disabled on this kernel
        let (result, _) = try Self.echoSwarm(engine: engine, global: "  maxpipes 2", connections: 40, payload: { 200_000 + $0 * 999 })
        #expect(result.failed == [])
        #expect(result.completed == 40)
    }

    @Test(arguments: IOEngine.allCases)
    func clientHalfCloseReachesServerAndRepliesStillFlowBack(engine: IOEngine) throws {
        guard engine.isAvailable else { return }  // io_uring may be disabled on this kernel
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let proxy = try RunningProxy(Self.config(servers: [echo.port]), engine: engine)
        let fd = try Net.connect(proxy.port)
        defer { close(fd) }
        try Net.sendAll(fd, "request body")
        shutdown(fd, Int32(SHUT_WR))
        // The echo server answers only after it sees our FIN, then sends its own: both crossed the proxy.
        let reply = try Net.readToEnd(fd)
        #expect(String(decoding: reply, as: UTF8.self) == "request body")
    }

    @Test(arguments: IOEngine.allCases)
    func serverHalfCloseReachesClientAndClientDataStillFlowsToServer(engine: IOEngine) throws {
        guard engine.isAvailable else { return }  // io_uring may be disabled on this kernel
        let server = try TestServer(.halfCloseFirst("bye\n"))
        defer { server.stop() }
        let proxy = try RunningProxy(Self.config(servers: [server.port]), engine: engine)
        let fd = try Net.connect(proxy.port)
        defer { close(fd) }
        let greeting = try Net.readToEnd(fd)
        #expect(String(decoding: greeting, as: UTF8.self) == "bye\n")
        try Net.sendAll(fd, "sent after the server's FIN")
        shutdown(fd, Int32(SHUT_WR))
        try eventually("the server receives what the client sent after the server's FIN") {
            server.received.withLock { String(decoding: $0, as: UTF8.self) } == "sent after the server's FIN"
        }
    }

    @Test(arguments: IOEngine.allCases)
    func serverResetIsPassedOnToTheClient(engine: IOEngine) throws {
        guard engine.isAvailable else { return }  // io_uring may be disabled on this kernel
        // A server that accepts and immediately resets: SO_LINGER 0 then close.
        let listener = try Net.rawListener()
        defer { close(listener) }
        let proxy = try RunningProxy(Self.config(servers: [Net.localPort(listener)]), engine: engine)
        let fd = try Net.connect(proxy.port)
        defer { close(fd) }
        try Net.sendAll(fd, "hello")
        let conn = accept(listener, nil, nil)
        #expect(String(decoding: try Net.read(conn, count: 5), as: UTF8.self) == "hello")
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(conn, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        close(conn)
        #expect(Net.waitReadable(fd, timeoutMs: 5000))
        var b = [UInt8](repeating: 0, count: 16)
        let n = recv(fd, &b, 16, 0)
        #expect(n < 0 && errno == ECONNRESET, "expected a reset, got recv=\(n)")
    }

    @Test(arguments: IOEngine.allCases)
    func tunnelTimeoutReplacesClientAndServerTimeoutsOnceConnected(engine: IOEngine) throws {
        guard engine.isAvailable else { return }  // io_uring may be disabled on this kernel
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let proxy = try Self.proxy(to: echo.port, timeouts: "  timeout client 150ms\n  timeout server 150ms\n  timeout tunnel 600ms", engine: engine)
        let fd = try Net.connect(proxy.port)
        defer { close(fd) }
        // Idle gaps of 300 ms: twice `timeout client`, half `timeout tunnel`.
        for i in 0..<3 {
            try Self.echoLine(fd, "tick \(i)\n")
            usleep(300_000)  // the idle gap under test
        }
        // Then idle past the tunnel timeout: the proxy closes.
        try Self.expectClosedByTimeout(fd, notBefore: .milliseconds(200), "timeout tunnel")
    }

    @Test(arguments: IOEngine.allCases)
    func activeSessionOutlivesItsIdleTimeouts(engine: IOEngine) throws {
        guard engine.isAvailable else { return }  // io_uring may be disabled on this kernel
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let proxy = try Self.proxy(to: echo.port, timeouts: "  timeout client 400ms\n  timeout server 400ms", engine: engine)
        let fd = try Net.connect(proxy.port)
        defer { close(fd) }
        // Ten exchanges 100 ms apart: a whole second of traffic, never 400 ms idle.
        for i in 0..<10 {
            try Self.echoLine(fd, "ping \(i)\n")
            usleep(100_000)  // the idle gap under test, not a synchronisation
        }
    }
}
}
