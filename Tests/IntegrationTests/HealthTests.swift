import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// Health checks against real servers on loopback, and the failover they drive.
extension Loopback {
@Suite struct HealthTests {
    /// Sends one HTTP request through the proxy; returns the body (the answering server's name).
    static func get(_ port: Int, path: String = "/") throws -> String {
        let fd = try Net.connect(port)
        defer { close(fd) }
        try Net.sendAll(fd, "GET \(path) HTTP/1.1\r\nHost: test\r\n\r\n")
        let reply = String(decoding: try Net.readToEnd(fd), as: UTF8.self)
        guard let body = reply.range(of: "\r\n\r\n") else { throw Net.Failure("no HTTP response: '\(reply)'") }
        return String(reply[body.upperBound...]).trimmingCharacters(in: .newlines)
    }

    static func reference(_ s1: TestServer, _ s2: TestServer, _ b1: TestServer, inter: String = "200ms", extra: String = "") -> String {
        """
        defaults
          timeout connect 1s
          retries 3
          option redispatch
        frontend api
          bind 127.0.0.1:0
          default_backend api
        backend api
          balance roundrobin
          option httpchk GET /alive HTTP/1.1
          http-check send hdr Host api.local
          default-server inter \(inter) rise 2 fall 2 \(extra)
          server server01 127.0.0.1:\(s1.port) check port \(s1.port)
          server server02 127.0.0.1:\(s2.port) check port \(s2.port)
          server backup01 127.0.0.1:\(b1.port) check port \(b1.port) backup
        """
    }

    static func waitForFirstChecks(_ backend: BackendState) throws {
        try eventually("every server has been checked once") {
            backend.servers.allSatisfy { $0.lastCheck.status != .initial }
        }
    }

    @Test func roundRobinSplitsConnectionsAndTheBackupGetsNoneWhilePrimariesAreUp() throws {
        let s1 = try TestServer(.http("server01")), s2 = try TestServer(.http("server02")), b1 = try TestServer(.http("backup01"))
        defer { s1.stop(); s2.stop(); b1.stop() }
        let proxy = try RunningProxy(Self.reference(s1, s2, b1))
        let backend = try #require(proxy.balancer.backend(named: "api"))
        try Self.waitForFirstChecks(backend)
        #expect(backend.servers.map(\.lastCheck.status) == [.layer7OK, .layer7OK, .layer7OK])
        #expect(backend.servers.map(\.lastCheck.code) == [200, 200, 200])
        var counts: [String: Int] = [:]
        for _ in 0..<100 { counts[try Self.get(proxy.port), default: 0] += 1 }
        #expect((40...60).contains(counts["server01", default: 0]), "\(counts)")
        #expect((40...60).contains(counts["server02", default: 0]), "\(counts)")
        #expect(counts["backup01"] == nil, "\(counts)")
        #expect(s1.aliveRequests.load(ordering: .relaxed) >= 1)
    }

    @Test func primariesFailingTheirCheckSendTrafficToTheBackupAndRecoveringBringsItBack() throws {
        let s1 = try TestServer(.http("server01")), s2 = try TestServer(.http("server02")), b1 = try TestServer(.http("backup01"))
        defer { s1.stop(); s2.stop(); b1.stop() }
        let proxy = try RunningProxy(Self.reference(s1, s2, b1))
        let backend = try #require(proxy.balancer.backend(named: "api"))
        try Self.waitForFirstChecks(backend)
        #expect(try Self.get(proxy.port) != "backup01")

        s1.alive.store(503, ordering: .relaxed)
        s2.alive.store(503, ordering: .relaxed)
        // fall (2) × inter (200 ms) plus one interval, and scheduling slack.
        try eventually(timeout: .milliseconds(600 + 1000), "traffic moves to backup01") {
            try (0..<4).map { _ in try Self.get(proxy.port) } == Array(repeating: "backup01", count: 4)
        }
        let down = try #require(backend.server(named: "server01"))
        #expect(down.operational == .stopped)
        #expect(down.lastCheck.status == .layer7Status)
        #expect(down.lastCheck.code == 503)
        #expect(down.statistics.currentSessions == 0)

        s1.alive.store(200, ordering: .relaxed)
        s2.alive.store(200, ordering: .relaxed)
        // rise (2) × inter plus one interval, and slack.
        try eventually(timeout: .milliseconds(600 + 1000), "traffic returns to the primaries") {
            Set(try (0..<4).map { _ in try Self.get(proxy.port) }) == ["server01", "server02"]
        }
        #expect(down.operational == .running)
        #expect(down.downTransitionCount == 1)
    }

    @Test func killedPrimaryCostsNoRequestWithRetriesRedispatchAndObserveLayer4() throws {
        let s1 = try TestServer(.http("server01")), s2 = try TestServer(.http("server02")), b1 = try TestServer(.http("backup01"))
        defer { s2.stop(); b1.stop() }
        // Checks every 2 s: it is traffic, not the next check, that must notice the kill.
        let proxy = try RunningProxy(Self.reference(s1, s2, b1, inter: "2s", extra: "observe layer4 error-limit 1 on-error mark-down"))
        let backend = try #require(proxy.balancer.backend(named: "api"))
        try Self.waitForFirstChecks(backend)
        s1.stop()  // the process is gone: its port refuses
        var failures = 0
        var answers: [String: Int] = [:]
        for _ in 0..<200 {
            do { answers[try Self.get(proxy.port), default: 0] += 1 } catch { failures += 1 }
        }
        #expect(failures == 0)
        #expect(answers["server01"] == nil)
        #expect(answers["server02", default: 0] == 200, "\(answers)")
        // observe layer4 with on-error mark-down took it out of rotation without waiting for a check.
        #expect(try #require(backend.server(named: "server01")).operational == .stopped)
    }

    @Test func serverRefusingAtStartNeverFailsAClientWhileAnotherAccepts() throws {
        let up = try TestServer(.http("up"))
        defer { up.stop() }
        let dead = try Net.closedPort()
        // No `option redispatch`. First checks are spread over the first second, so the second
        // server is not checked for its first ~500 ms: the first requests reach it unchecked.
        let proxy = try RunningProxy("""
            defaults
              timeout connect 1s
            listen fe
              bind 127.0.0.1:0
              server up 127.0.0.1:\(up.port) check inter 10s
              server dead 127.0.0.1:\(dead) check inter 10s
            """)
        let answers = try (0..<10).map { _ in try Self.get(proxy.port) }
        #expect(answers == Array(repeating: "up", count: 10))
        let deadServer = try #require(proxy.balancer.backend(named: "fe")?.server(named: "dead")).statistics
        #expect(deadServer.totalSessions >= 1, "no request reached the unchecked server: the test proved nothing")
        #expect(deadServer.retries == 0, "a client waited on a retry of a server never shown healthy")
    }

    @Test func serverThatAcceptsButNeverAnswersTimesOutAndGoesDown() throws {
        let silent = try TestServer(.holdOpen)
        defer { silent.stop() }
        let proxy = try RunningProxy("""
            backend be
              option httpchk GET /alive
              timeout check 200ms
              server s 127.0.0.1:\(silent.port) check inter 100ms fall 1
            listen fe
              bind 127.0.0.1:0
              server x 127.0.0.1:1
            """)
        let server = try #require(proxy.balancer.backend(named: "be")?.server(named: "s"))
        // The check's result is recorded just before the state changes: read them together.
        try eventually("the check times out and the server goes DOWN") { server.lastCheck.status == .layer7Timeout && server.operational == .stopped }
        try eventually("the check's connection is closed, not leaked") { silent.open.load(ordering: .relaxed) <= 1 }
    }

    @Test func serverThatClosesMidResponseFailsTheCheck() throws {
        let broken = try TestServer(.partialHTTP)
        defer { broken.stop() }
        let proxy = try RunningProxy("""
            listen fe
              bind 127.0.0.1:0
              option httpchk GET /alive
              server s 127.0.0.1:\(broken.port) check inter 100ms fall 1
            """)
        let server = try #require(proxy.balancer.backend(named: "fe")?.server(named: "s"))
        // The result is recorded just before the state it causes is published: wait for both.
        try eventually("the check fails and takes the server down") { server.lastCheck.status == .layer7Response && server.operational == .stopped }
    }

    @Test func tcpCheckMarksAClosedPortDown() throws {
        let up = try TestServer(.silent)
        defer { up.stop() }
        let closed = try Net.closedPort()
        let proxy = try RunningProxy("""
            listen fe
              bind 127.0.0.1:0
              server up 127.0.0.1:\(up.port) check inter 100ms
              server closed 127.0.0.1:\(closed) check inter 100ms fall 1
            """)
        let backend = try #require(proxy.balancer.backend(named: "fe"))
        let closedServer = try #require(backend.server(named: "closed"))
        try eventually("the closed port is DOWN") { closedServer.operational == .stopped }
        #expect(closedServer.lastCheck.status == .layer4Connection)
        #expect(closedServer.lastCheck.info == "Connection refused")
        let upServer = try #require(backend.server(named: "up"))
        try eventually("the open port has been checked") { upServer.lastCheck.status == .layer4OK }
        #expect(upServer.operational == .running)
    }

    @Test func tcpCheckConversationWithARedisLikeServer() throws {
        let good = try TestServer(.pong("+PONG\r\n")), bad = try TestServer(.pong("-ERR loading\r\n"))
        defer { good.stop(); bad.stop() }
        let proxy = try RunningProxy("""
            listen redis
              bind 127.0.0.1:0
              option tcp-check
              tcp-check send PING\\r\\n
              tcp-check expect string +PONG
              server good 127.0.0.1:\(good.port) check inter 100ms
              server bad 127.0.0.1:\(bad.port) check inter 100ms fall 1
            """)
        let backend = try #require(proxy.balancer.backend(named: "redis"))
        let goodServer = try #require(backend.server(named: "good")), badServer = try #require(backend.server(named: "bad"))
        try eventually("both servers have been checked") { goodServer.lastCheck.status != .initial && badServer.lastCheck.status != .initial }
        #expect(goodServer.lastCheck.status == .layer7OK)
        #expect(goodServer.operational == .running)
        try eventually("the bad server is DOWN") { badServer.operational == .stopped }
        // As HAProxy: a reply that does not match waits for more until the check times out.
        #expect(badServer.lastCheck.status == .layer7Timeout)
        #expect(badServer.lastCheck.info == " at step 2 of tcp-check (expect string '+PONG')")  // HAProxy's leading blank
    }

    /// A failed `tcp-check` expectation is worded as HAProxy words it: its step counts every rule
    /// (`connect` and `comment` too), the pattern as HAProxy shows it, and the comment that applies
    /// (HAProxy's rule: a comment goes to the next run of rules of one kind).
    @Test func tcpCheckFailuresAndCommentsReadAsHAProxys() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let refusing = try TestServer(.halfCloseFirst("-ERR loading\r\n")), silent = try TestServer(.silent)
        defer { refusing.stop(); silent.stop() }
        let dead = try Net.closedPort()
        func backend(_ name: String, _ rules: String, _ server: TestServer?) -> String {
            "backend \(name)\n  option tcp-check\n  default-server inter 300ms rise 1 fall 1\n"
                + rules.split(separator: "\n").map { "  tcp-check \($0)\n" }.joined() + "  server s 127.0.0.1:\(server?.port ?? dead) check\n"
        }
        let (proxy, haproxy, sockets) = try Loopback.RuntimeAPITests.sideBySide { port, socket in
            StatsClient.preamble(socket: socket) + "frontend fe\n  bind 127.0.0.1:\(port)\n  default_backend comments\n"
                + backend("comments", "connect\ncomment PINGING\\ Redis\nsend PING\\r\\n\ncomment Expecting\\ PONG\nexpect string +PONG", refusing)
                + backend("negated", "send PING\\r\\n\nexpect ! string -ERR", refusing)
                + backend("regex", "comment only\\ the\\ send\nsend PING\\r\\n\nexpect rstring ^[+]PONG", refusing)
                + backend("binary", "send PING\\r\\n\nexpect binary 2b504f4e47", refusing)
                + backend("timeout", "connect\nsend PING\\r\\n\ncomment waiting\nexpect string +PONG", silent)
                // Refused connections: the implicit connect, and a rule's own (with its port and comment).
                + backend("initial", "send PING\\r\\n\nexpect string +PONG", nil)
                + backend("stepped", "comment dialing\nconnect port \(dead)\nsend PING\\r\\n\nexpect string +PONG", nil)
        }
        defer { proxy.stop(); haproxy.stop() }
        var results: [[String]] = []
        for socket in sockets {
            var rows: [String] = []
            try eventually("every check ended") {
                rows = try StatsClient.showStat(socket).filter { $0["svname"] == "s" }.map { "\($0["pxname"] ?? "") \($0["check_status"] ?? "") \($0["last_chk"] ?? "")" }
                return rows.count == 7 && rows.allSatisfy { !$0.contains("* ") && !$0.contains("INI") && !$0.hasSuffix(" ") }
            }
            results.append(rows)
        }
        #expect(results[0] == results[1], "Sluice \(results[0]), HAProxy \(results[1])")
        #expect(results[1].contains("comments L7RSP TCPCHK did not match content '+PONG' at step 5 comment: Expecting PONG"), "\(results[1])")
        #expect(results[1].contains("timeout L7TOUT  at step 4 of tcp-check (expect string '+PONG') comment: 'waiting'"), "\(results[1])")
        #expect(results[1].contains("initial L4CON Connection refused at initial connection step of tcp-check"), "\(results[1])")
        #expect(results[1].contains("stepped L4CON Connection refused at step 2 of tcp-check (connect port \(dead)) comment: 'dialing'"), "\(results[1])")
    }

    /// `tcp-check expect rbinary`: the regex sees the reply in upper-case hexadecimal ("+PONG" is
    /// 2B504F4E47), on Sluice and on HAProxy 2.6 with the same file.
    @Test func tcpCheckExpectRbinaryMatchesTheReplyInHexadecimalLikeHAProxy() throws {
        let good = try TestServer(.pong("+PONG\r\n")), bad = try TestServer(.pong("-ERR loading\r\n"))
        defer { good.stop(); bad.stop() }
        func config(_ port: Int, _ socket: String) -> String {
            StatsClient.preamble(socket: socket) + """
            listen redis
              bind 127.0.0.1:\(port)
              option tcp-check
              tcp-check send PING\\r\\n
              tcp-check expect rbinary ^2B50(4F|00)4E47
              server good 127.0.0.1:\(good.port) check inter 100ms
              server bad 127.0.0.1:\(bad.port) check inter 100ms fall 1

            """
        }
        func states(_ socket: String) throws {
            var seen: [String] = []
            do {
                try eventually("good UP with L7OK, bad DOWN") {
                    let rows = try StatsClient.showStat(socket)
                    let good = rows.first { $0["svname"] == "good" }, bad = rows.first { $0["svname"] == "bad" }
                    seen = [good, bad].map { "\($0?["status"] ?? "-") \($0?["check_status"] ?? "-") \($0?["last_chk"] ?? "-")" }
                    return good?["check_status"] == "L7OK" && good?["status"] == "UP" && bad?["status"] == "DOWN"
                }
            } catch {
                Issue.record("\(socket == haproxySocket ? "HAProxy 2.6" : "Sluice"): \(seen)")
                throw error
            }
        }
        let socket = RuntimeAPITests.socketPath(), haproxySocket = RuntimeAPITests.socketPath()
        let proxy = try RunningProxy(config(0, socket))
        defer { proxy.stop() }
        try states(socket)
        guard HAProxyProcess.requireInstalled() else { return }
        let port = try Net.closedPort()
        let haproxy = try HAProxyProcess(config: config(port, haproxySocket), port: port)
        defer { haproxy.stop() }
        try states(haproxySocket)
    }

    @Test func onMarkedDownShutdownSessionsClosesTheDownServersSessions() throws {
        let s1 = try TestServer(.http("server01"))
        let echo = try TestServer(.holdOpen)  // the data port: holds sessions open
        defer { s1.stop(); echo.stop() }
        let proxy = try RunningProxy("""
            listen fe
              bind 127.0.0.1:0
              option httpchk GET /alive
              server s 127.0.0.1:\(echo.port) check port \(s1.port) inter 100ms fall 1 on-marked-down shutdown-sessions
            """)
        let server = try #require(proxy.balancer.backend(named: "fe")?.server(named: "s"))
        try eventually("the server is checked") { server.lastCheck.status == .layer7OK }
        let fd = try Net.connect(proxy.port)
        defer { close(fd) }
        try eventually("the session reaches the server") { server.statistics.currentSessions == 1 }
        s1.alive.store(503, ordering: .relaxed)
        #expect(try Net.readToEnd(fd, timeoutMs: 5000).isEmpty)  // closed by Sluice, not by the server
        #expect(server.operational == .stopped)
    }

    /// `http-check send-state`: the check request carries `X-Haproxy-Server-State` with the check's
    /// view of the server, its address, names, node, weight among the usable servers, sessions and
    /// queue — the same request, byte for byte, as HAProxy 2.6 sends to the same server.
    /// `http-check disable-on-404`, HAProxy's graceful-deploy idiom: a server whose check answers
    /// 404 is soft-stopped (NOLB: no new load-balanced session, a session already there goes on),
    /// and a 2xx brings it back; a DOWN server stays DOWN on 404. Both proxies in the same run,
    /// compared on `show stat` and `show servers state`.
    @Test func disableOn404SoftStopsAServerLikeHAProxy() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let a = try TestServer(.http("a")), b = try TestServer(.http("b"))
        defer { a.stop(); b.stop() }
        let (proxy, haproxy, sockets) = try Loopback.RuntimeAPITests.sideBySide { port, socket in
            StatsClient.preamble(socket: socket) + """
            listen fe
              bind 127.0.0.1:\(port)
              option httpchk GET /alive
              http-check disable-on-404
              server a 127.0.0.1:\(a.port) check inter 100ms rise 1 fall 1
              server b 127.0.0.1:\(b.port) check inter 100ms rise 1 fall 1

            """
        }
        defer { proxy.stop(); haproxy.stop() }
        let contenders = [("Sluice", proxy.port, sockets[0]), ("HAProxy", haproxy.port, sockets[1])]
        func row(_ socket: String) throws -> [String: String] {
            try StatsClient.showStat(socket).first { $0["pxname"] == "fe" && $0["svname"] == "a" } ?? [:]
        }
        func opState(_ socket: String) throws -> String {
            let line = try StatsClient.ask(socket, "show servers state fe").split(separator: "\n").first { $0.split(separator: " ").dropFirst(3).first == "a" }
            return line.map { String($0.split(separator: " ")[5]) } ?? "?"
        }
        func get(_ port: Int) throws -> String {
            let fd = try Net.connect(port)
            defer { close(fd) }
            try Net.sendAll(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return String(decoding: try Net.readToEnd(fd), as: UTF8.self).split(whereSeparator: \.isNewline).last.map(String.init) ?? ""
        }
        for (name, _, socket) in contenders {
            try eventually("\(name): both UP") { try row(socket)["status"] == "UP" }
        }
        // A session on `a` before its check says 404, completed after: connect until one lands there.
        func sessionOnA(_ name: String, _ port: Int) throws -> CInt {
            for _ in 0..<4 {
                let (onA, onB) = (a.open.load(ordering: .relaxed), b.open.load(ordering: .relaxed))
                let fd = try Net.connect(port)
                try eventually("\(name): the session reached a server") { a.open.load(ordering: .relaxed) > onA || b.open.load(ordering: .relaxed) > onB }
                if a.open.load(ordering: .relaxed) > onA { return fd }
                close(fd)
                try eventually("\(name): b's connection closed") { b.open.load(ordering: .relaxed) == onB }
            }
            throw Net.Failure("\(name): no session reached a")
        }
        let held = try contenders.map { try sessionOnA($0.0, $0.1) }
        defer { for fd in held { close(fd) } }
        a.alive.store(404, ordering: .relaxed)
        for (index, (name, port, socket)) in contenders.enumerated() {
            // (A check in progress shows "* L7OKC" without its code: wait for one that ended.)
            try eventually("\(name): a is NOLB after an L7OKC with 404") {
                let fields = try row(socket)
                return fields["status"] == "NOLB" && fields["check_status"] == "L7OKC" && fields["check_code"] == "404"
            }
            #expect(try opState(socket) == "3", "\(name)")
            let answers = try (0..<6).map { _ in try get(port) }
            #expect(answers == Array(repeating: "b", count: 6), "\(name): new sessions go to b only: \(answers)")
            try Net.sendAll(held[index], "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            let reply = String(decoding: try Net.readToEnd(held[index]), as: UTF8.self)
            #expect(reply.hasSuffix("\r\n\r\na\n"), "\(name): the session already on a goes on: \(reply)")
        }
        a.alive.store(200, ordering: .relaxed)
        for (name, port, socket) in contenders {
            try eventually("\(name): a is UP again") { try row(socket)["status"] == "UP" }
            #expect(try opState(socket) == "2", "\(name)")
            let answers = try (0..<4).map { _ in try get(port) }
            #expect(Set(answers) == ["a", "b"], "\(name): \(answers)")
        }
        // DOWN first (a 503), then 404: it stays DOWN, the 404 a plain failure.
        a.alive.store(503, ordering: .relaxed)
        for (name, _, socket) in contenders { try eventually("\(name): a is DOWN") { try row(socket)["status"] == "DOWN" } }
        a.alive.store(404, ordering: .relaxed)
        for (name, _, socket) in contenders {
            try eventually("\(name): a's check saw the 404 as a plain failure") {
                let fields = try row(socket)
                return fields["check_code"] == "404" && fields["check_status"] == "L7STS"
            }
            #expect(try row(socket)["status"] == "DOWN", "\(name)")
        }
    }

    /// HAProxy 2.2's check rules: `http-check connect port` sends the check elsewhere than the
    /// server's port, and `http-check send … body` posts a body; the request (with send-state)
    /// equals HAProxy 2.6's byte for byte — lower-case header names, the state header after the
    /// configured ones, then `content-length` and `connection: close`.
    @Test func httpCheckConnectAndBodyMakeHAProxysRequest() throws {
        let capture = try CaptureServer()
        let closed = try Net.closedPort()
        func config(_ port: Int) -> String {
            "global\n  node lb1\n" + tcpDefaults() + """
            frontend fe
              bind 127.0.0.1:\(port)
              default_backend be
            backend be
              option httpchk
              http-check connect port \(capture.port) linger
              http-check send meth POST uri /health ver HTTP/1.1 hdr Host api.local hdr X-Probe 1 body "{\\"ping\\":1}"
              http-check send-state
              http-check expect status 200
              server s1 127.0.0.1:\(closed) check inter 1s

            """
        }
        /// The first check's request (head and body), answered with a 200.
        func firstRequest() throws -> String {
            let fd = try capture.accept()
            defer { close(fd) }
            var request: [UInt8] = []
            while !request.suffix(4).elementsEqual("\r\n\r\n".utf8) { request += try Net.read(fd, count: 1) }
            let head = String(decoding: request, as: UTF8.self)
            let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length: ") }.flatMap { Int($0.dropFirst(16)) } ?? 0
            request += try Net.read(fd, count: length)
            try Net.sendAll(fd, "HTTP/1.0 200 OK\r\n\r\n")
            return String(decoding: request, as: UTF8.self)
        }
        let proxy = try RunningProxy(config(0))
        let ours = try firstRequest()
        proxy.stop()
        #expect(ours.hasPrefix("POST /health HTTP/1.1\r\nhost: api.local\r\nx-probe: 1\r\nx-haproxy-server-state: UP 1/3; "), "\(ours)")
        #expect(ours.hasSuffix("\r\ncontent-length: 10\r\nconnection: close\r\n\r\n{\"ping\":1}"), "\(ours)")
        guard HAProxyProcess.requireInstalled() else { return }
        let port = try Net.closedPort()
        let haproxy = try HAProxyProcess(config: config(port), port: port)
        defer { haproxy.stop() }
        let theirs = try firstRequest()
        #expect(theirs == ours, "HAProxy 2.6 sends another request: \(theirs.debugDescription) vs \(ours.debugDescription)")
    }

    @Test func sendStateTellsTheServerHowTheBalancerSeesItLikeHAProxy() throws {

        let capture = try CaptureServer()
        let closed = try Net.closedPort()
        func config(_ port: Int) -> String {
            "global\n  node lb1\n" + tcpDefaults() + """
            frontend fe
              bind 127.0.0.1:\(port)
              default_backend be
            backend be
              option httpchk GET /alive
              http-check send-state
              server s1 127.0.0.1:\(capture.port) check inter 1s rise 2 fall 3
              server s2 127.0.0.1:\(closed) weight 3

            """
        }
        /// The first check's request, answered with a 200.
        func firstRequest() throws -> String {
            let fd = try capture.accept()
            defer { close(fd) }
            var request: [UInt8] = []
            while !request.suffix(4).elementsEqual("\r\n\r\n".utf8) { request += try Net.read(fd, count: 1) }
            try Net.sendAll(fd, "HTTP/1.0 200 OK\r\n\r\n")
            return String(decoding: request, as: UTF8.self)
        }
        let expected = "GET /alive HTTP/1.0\r\nx-haproxy-server-state: UP 1/3; address=127.0.0.1; port=\(capture.port); name=be/s1; node=lb1; "
            + "weight=1/4; scur=0/0; qcur=0\r\n\r\n"
        let proxy = try RunningProxy(config(0))
        #expect(try firstRequest() == expected)
        proxy.stop()
        if HAProxyProcess.requireInstalled() {
            let port = try Net.closedPort()
            let haproxy = try HAProxyProcess(config: config(port), port: port)
            defer { haproxy.stop() }
            let request = try firstRequest()
            #expect(request == expected, "HAProxy 2.6 sends another request")
        }
    }
}
}
