import Foundation
import Testing
@_spi(Benchmarks) import Sluice
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

extension Loopback {
/// `socks4 <addr>:<port>` and `check-via-socks4`: connections to a server through an upstream
/// SOCKS4 proxy (the published use: an SNI router reaching registries through a local proxy), with
/// SOCKS4 proxies the test runs (granting, refusing, hanging up), and HAProxy 2.6 on the same file
/// in the same run.
@Suite struct SOCKS4Tests {
    static func temporary(_ name: String) -> String {
        TestFiles.folder.appendingPathComponent("sluice-\(UUID().uuidString.prefix(8))-\(name)").path
    }

    /// A session through a granting proxy: the proxy is asked for the server's address with the
    /// user ID "HAProxy"; nothing comes before its grant; then the PROXY header and the client's
    /// bytes reach the server, whose answer comes back.
    @Test func aSessionGoesThroughTheProxyAsHAProxys() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let echo = try TestServer(.echo)
        let proxy = try SOCKS4Server(.grant)
        defer { echo.stop(); proxy.stop() }
        var seen: [String] = []
        for haproxy in [true, false] {
            let contender = try Contender(haproxy: haproxy) { port in
                tcpDefaults() + """
                listen l
                  bind 127.0.0.1:\(port)
                  server s 127.0.0.1:\(echo.port) socks4 127.0.0.1:\(proxy.port) send-proxy

                """
            }
            defer { contender.stop() }
            let fd = try Net.connect(contender.port)
            defer { close(fd) }
            try Net.sendAll(fd, Array("hello\n".utf8))
            shutdown(fd, Int32(SHUT_WR))
            let answer = String(decoding: try Net.readToEnd(fd), as: UTF8.self)
            // The PROXY line names the client's port and the proxy's: the same shape on both.
            let words = answer.split(separator: " ")
            seen.append("\(contender.name): \(words.prefix(4).joined(separator: " ")) … \(answer.hasSuffix("\r\nhello\n") ? "hello" : answer)")
        }
        #expect(seen == ["haproxy: PROXY TCP4 127.0.0.1 127.0.0.1 … hello", "sluice: PROXY TCP4 127.0.0.1 127.0.0.1 … hello"])
        let requests = proxy.requests.withLock { $0 }
        let expected = SOCKS4Server.Request(version: 4, command: 1, destination: "127.0.0.1:\(echo.port)", userID: "HAProxy", early: 0)
        #expect(requests == [expected, expected], "\(requests)")
    }

    /// A proxy that refuses, or hangs up, fails the connect: retried (`retries`), counted in
    /// `econ` and `wretr`, logged `SC`, the client closed — as HAProxy.
    @Test func aRefusalOrAHangUpIsAFailedConnectAsHAProxys() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let server = try TestServer(.identify("never"))
        defer { server.stop() }
        for answer in [SOCKS4Server.Answer.refuse, .hangUp] {
            let proxy = try SOCKS4Server(answer)
            defer { proxy.stop() }
            var seen: [String] = []
            for haproxy in [true, false] {
                let socket = Self.temporary("admin.sock")
                defer { unlink(socket) }
                let contender = try Contender(haproxy: haproxy) { port in
                    StatsClient.preamble(socket: socket) + """
                    listen l
                      bind 127.0.0.1:\(port)
                      retries 2
                      timeout connect 200ms
                      server s 127.0.0.1:\(server.port) socks4 127.0.0.1:\(proxy.port)

                    """
                }
                defer { contender.stop() }
                let fd = try Net.connect(contender.port)
                defer { close(fd) }
                #expect(try Net.readToEnd(fd).isEmpty, "\(contender.name): the client is closed")
                let row = try #require(try StatsClient.showStat(socket).first { $0["svname"] == "s" })
                seen.append("\(contender.name): " + ["econ", "wretr", "wredis", "stot"].map { "\($0)=\(row[$0] ?? "?")" }.joined(separator: " "))
            }
            #expect(seen == ["haproxy: econ=1 wretr=2 wredis=0 stot=3", "sluice: econ=1 wretr=2 wredis=0 stot=3"], "\(answer): \(seen)")
            #expect(proxy.requests.withLock { $0.count } == 6, "\(answer): three attempts each: \(proxy.requests.withLock { $0 })")
            #expect(server.accepted.load(ordering: .relaxed) == 0)
        }
    }

    /// `socks4` on a server added at run time is refused, as HAProxy refuses it.
    @Test func aDynamicServerMayNotHaveAProxy() throws {
        let proxy = try RunningProxy(tcpDefaults() + "listen l\n  bind 127.0.0.1:0\n  server a 127.0.0.1:1\n")
        defer { proxy.stop() }
        #expect(proxy.balancer.runtimeReply("add server l/b 127.0.0.1:2 socks4 127.0.0.1:1080") == "'socks4' option is not accepted for dynamic server\n\n")
        // The library's `addServer` says the same rather than connect past the proxy.
        var server = Server(name: "c", endpoint: Endpoint(host: "127.0.0.1", port: 2))
        server.socks4 = Endpoint(host: "127.0.0.1", port: 1080)
        #expect(throws: SluiceError.self) { _ = try proxy.balancer.addServer(server, to: "l") }
    }

    /// `check-via-socks4` sends health checks through the proxy too, and reports a refusal or a
    /// hang-up as HAProxy does (SOCKERR with its words); without it, checks go direct. An explicit
    /// connect rule decides for itself, as in HAProxy (`default`, `via-socks4`).
    @Test func checksGoThroughTheProxyWhenAskedAsHAProxys() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let server = try TestServer(.identify("up"))
        let granting = try SOCKS4Server(.grant), refusing = try SOCKS4Server(.refuse), hangingUp = try SOCKS4Server(.hangUp)
        defer { server.stop(); granting.stop(); refusing.stop(); hangingUp.stop() }
        var seen: [String: [String]] = [:]
        for haproxy in [true, false] {
            let socket = Self.temporary("admin.sock")
            defer { unlink(socket) }
            let contender = try Contender(haproxy: haproxy) { port in
                StatsClient.preamble(socket: socket) + """
                listen l
                  bind 127.0.0.1:\(port)
                  default-server check inter 100ms rise 1 fall 1
                  server granted 127.0.0.1:\(server.port) socks4 127.0.0.1:\(granting.port) check-via-socks4
                  server refused 127.0.0.1:\(server.port) socks4 127.0.0.1:\(refusing.port) check-via-socks4
                  server hungup 127.0.0.1:\(server.port) socks4 127.0.0.1:\(hangingUp.port) check-via-socks4
                  server direct 127.0.0.1:\(server.port) socks4 127.0.0.1:\(refusing.port)
                backend ruled
                  option tcp-check
                  tcp-check connect default
                  server bydefault 127.0.0.1:\(server.port) socks4 127.0.0.1:\(refusing.port) check-via-socks4 check inter 100ms rise 1 fall 1
                backend ruleddirect
                  option tcp-check
                  tcp-check connect port \(server.port)
                  server byrule 127.0.0.1:\(server.port) socks4 127.0.0.1:\(refusing.port) check-via-socks4 check inter 100ms rise 1 fall 1
                backend forced
                  option httpchk
                  http-check connect via-socks4
                  server forced 127.0.0.1:\(server.port) socks4 127.0.0.1:\(refusing.port) check inter 100ms rise 1 fall 1

                """
            }
            defer { contender.stop() }
            func rows() throws -> [String] {
                try StatsClient.showStat(socket).filter { $0["svname"] != "FRONTEND" && $0["svname"] != "BACKEND" }
                    .map { "\($0["svname"] ?? "?") \($0["status"] ?? "?") \(($0["check_status"] ?? "?").replacingOccurrences(of: "* ", with: "")) \($0["last_chk"] ?? "")" }
            }
            try eventually("\(contender.name): every server checked") { try rows().count == 7 && !(try rows().contains { $0.contains(" INI") || $0.contains("no check") }) }
            seen[contender.name] = try rows()
        }
        #expect(seen["haproxy"] == [
            "granted UP L4OK ", "refused DOWN SOCKERR SOCKS4 Proxy deny the request",
            "hungup DOWN SOCKERR SOCKS4 Proxy read error during handshake", "direct UP L4OK ",
            // A connect rule: `default` follows `check-via-socks4`, a bare one goes direct (its
            // check passes where the proxy refuses), `via-socks4` goes through the proxy regardless.
            "bydefault DOWN SOCKERR SOCKS4 Proxy deny the request at step 1 of tcp-check (connect)", "byrule UP L4OK (tcp-check)",
            "forced DOWN SOCKERR SOCKS4 Proxy deny the request",
        ], "\(seen)")
        #expect(seen["sluice"] == seen["haproxy"], "\(seen)")
        #expect(granting.requests.withLock { $0.allSatisfy { $0.destination == "127.0.0.1:\(server.port)" && $0.userID == "HAProxy" } })
    }
}
}
