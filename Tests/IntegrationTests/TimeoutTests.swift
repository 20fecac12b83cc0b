import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// Inactivity timeouts of established sessions, each case run on HAProxy 2.6 and on Sluice (both
/// engines) with the same configuration: a side idle past its timeout is no longer read and the
/// other side gets a FIN, while the other way goes on, as HAProxy's read timeouts do; `-fin`
/// timeouts apply to a side once it was sent a FIN.
extension Loopback {
@Suite struct TimeoutTests {
    /// What a client saw of one session, and when (from its connect).
    struct Seen: CustomStringConvertible {
        var received = ""
        /// When the client read the end of the stream.
        var endedAfter = Duration.zero
        /// When the server saw its connection closed (nil: not watched).
        var serverClosedAfter: Duration?
        var description: String {
            "received \(received.debugDescription), end after \(endedAfter)" + (serverClosedAfter.map { ", server closed after \($0)" } ?? "")
        }
    }

    /// Runs `client` against HAProxy and against Sluice on each engine, all in front of a fresh
    /// `server` with `timeouts` in defaults, and returns what each saw, named.
    static func each(_ behavior: TestServer.Behavior, timeouts: String,
                     _ client: (_ port: Int, _ server: TestServer) throws -> Seen) throws -> [(String, Seen)] {
        var seen: [(String, Seen)] = []
        func config(_ bind: Int, _ server: TestServer) -> String {
            """
            defaults
              mode tcp
              timeout connect 2s
            \(timeouts)
            listen fe
              bind 127.0.0.1:\(bind)
              server s 127.0.0.1:\(server.port)

            """
        }
        if HAProxyProcess.requireInstalled() {
            let server = try TestServer(behavior)
            defer { server.stop() }
            let port = try Net.closedPort()
            let haproxy = try HAProxyProcess(config: config(port, server), port: port)
            defer { haproxy.stop() }
            seen.append(("HAProxy", try client(port, server)))
        }
        for engine in IOEngine.allCases where engine.isAvailable {
            let server = try TestServer(behavior)
            defer { server.stop() }
            let proxy = try RunningProxy(config(0, server), engine: engine)
            defer { proxy.stop() }
            seen.append(("Sluice (\(engine.rawValue))", try client(proxy.port, server)))
        }
        return seen
    }

    /// Connects, sends `request` (then FIN when `halfClose`), and reads to the end of the stream;
    /// with `watchServer`, also waits for the server to see its connection closed.
    static func session(port: Int, server: TestServer, request: String, halfClose: Bool = false, watchServer: Bool = false) throws -> Seen {
        let clock = ContinuousClock()
        let start = clock.now
        let fd = try Net.connect(port)
        defer { close(fd) }
        try Net.sendAll(fd, request)
        if halfClose { shutdown(fd, Int32(SHUT_WR)) }
        var seen = Seen()
        seen.received = String(decoding: try Net.readToEnd(fd, timeoutMs: 10_000), as: UTF8.self)
        seen.endedAfter = clock.now - start
        if watchServer {
            try eventually(timeout: .seconds(10), "the server sees its connection closed") { server.open.load(ordering: .relaxed) == 0 }
            seen.serverClosedAfter = clock.now - start
        }
        return seen
    }

    /// A client that waits in silence past `timeout client` still gets the answer its server sends
    /// once told the client is done (HAProxy: the client's read timeout shuts its side; the server
    /// gets a FIN and answers).
    @Test func aSilentClientStillGetsALateAnswer() throws {
        let seen = try Self.each(.answerAtEnd("late answer\n"), timeouts: "  timeout client 200ms\n  timeout server 5s") { port, server in
            try Self.session(port: port, server: server, request: "request")
        }
        for (name, s) in seen {
            #expect(s.received == "late answer\n", "\(name): \(s)")
            #expect(s.endedAfter >= .milliseconds(150), "\(name): \(s)")
        }
    }

    /// A client that sent its request and its FIN waits for `timeout server`, not for
    /// `timeout client` or `client-fin` (nothing was shut toward it).
    @Test func aHalfClosedClientWaitsForTheServersTimeout() throws {
        let timeouts = "  timeout client 150ms\n  timeout client-fin 100ms\n  timeout server 800ms"
        let seen = try Self.each(.holdOpen, timeouts: timeouts) { port, server in
            try Self.session(port: port, server: server, request: "request", halfClose: true)
        }
        for (name, s) in seen {
            #expect(s.received.isEmpty, "\(name): \(s)")
            #expect(s.endedAfter >= .milliseconds(700), "\(name): \(s)")
        }
    }

    /// A silent server past `timeout server`: the client gets a FIN at once, but the server's
    /// connection lives until the client has been silent for `timeout client` in turn.
    @Test func aSilentServersTimeoutClosesTowardTheClientFirst() throws {
        let seen = try Self.each(.silent, timeouts: "  timeout client 900ms\n  timeout server 150ms") { port, server in
            try Self.session(port: port, server: server, request: "request", watchServer: true)
        }
        for (name, s) in seen {
            #expect(s.endedAfter >= .milliseconds(100), "\(name): \(s)")
            #expect(try #require(s.serverClosedAfter) >= .milliseconds(800), "\(name): \(s)")
            #expect(try #require(s.serverClosedAfter) > s.endedAfter, "\(name): \(s)")
        }
    }

    /// `timeout client-fin` ends a session once the client was sent the server's FIN and keeps its
    /// side open in silence (with `timeout client` a minute).
    @Test func clientFinEndsAClientThatKeepsItsSideOpen() throws {
        let timeouts = "  timeout client 60s\n  timeout client-fin 200ms\n  timeout server 60s"
        let seen = try Self.each(.identify("bye"), timeouts: timeouts) { port, server in
            // The client reads the server's answer and FIN but never closes: the proxy must.
            try Self.session(port: port, server: server, request: "", watchServer: true)
        }
        for (name, s) in seen {
            #expect(s.received == "bye\n", "\(name): \(s)")
            #expect(try #require(s.serverClosedAfter) >= .milliseconds(150), "\(name): \(s)")
        }
    }
}
}
