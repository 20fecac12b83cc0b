import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// ACLs, `tcp-request` rules, `use_backend`, stick tables and the PROXY protocol, with real peers:
/// nginx TLS servers and curl/openssl clients for SNI, curl from several loopback addresses for
/// source rules, HAProxy beside Sluice for a connection-rate limit, nginx's `proxy_protocol` for
/// the PROXY header Sluice sends.
extension Loopback {
@Suite struct ContentSwitchingTests {
    static let hellos = ClientHellos()

    /// Real ClientHellos captured from curl and openssl (the fuzz target's seeds).
    struct ClientHellos {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/ClientHello/corpus")

        func bytes(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: directory.appendingPathComponent(name))) }
    }

    /// Sends `bytes` (optionally half-closing after), then reads what the server behind says.
    static func exchange(_ port: Int, _ bytes: [UInt8], halfClose: Bool = false, from source: String? = nil) throws -> String {
        let fd: CInt
        do {
            fd = try source.map { try AlgorithmTests.connect(port, from: $0) } ?? Net.connect(port)
        } catch where "\(error)".contains("Connection reset by peer") {
            // A connection rule's reset can reach the client before its own connect() returns.
            return ""
        }
        defer { close(fd) }
        if !bytes.isEmpty { try Net.sendAll(fd, bytes) }
        if halfClose { shutdown(fd, Int32(SHUT_WR)) }
        return String(decoding: try Net.readToEnd(fd, resetEnds: true), as: UTF8.self)
    }

    static func sniConfig(_ a: Int, _ b: Int, _ fallback: Int, delay: String = "2s") -> String {
        """
        \(tcpDefaults(client: "10s", server: "10s"))
        frontend tls
          bind 127.0.0.1:0
          tcp-request inspect-delay \(delay)
          tcp-request content accept if { req.ssl_hello_type 1 }
          acl to_a req.ssl_sni -i a.example
          use_backend be_a if to_a
          use_backend be_b if { req.ssl_sni -m end .b.example }
          default_backend be_default
        backend be_a
          server a 127.0.0.1:\(a)
        backend be_b
          server b 127.0.0.1:\(b)
        backend be_default
          server d 127.0.0.1:\(fallback)

        """
    }

    /// The same decisions as HAProxy documents: exact and suffix names, `-i`, no SNI and no TLS to
    /// the default; a client silent past the delay is routed when it ends; a truncated hello from
    /// a client that closes is decided on what came, and the balancer goes on.
    @Test func sniRoutesCapturedHellosAndDecidesWhenTheDelayEnds() throws {
        let servers = try ["a", "b", "default"].map { try TestServer(.identify($0)) }
        defer { for s in servers { s.stop() } }
        let proxy = try RunningProxy(Self.sniConfig(servers[0].port, servers[1].port, servers[2].port, delay: "1s"))
        defer { proxy.stop() }
        let h = Self.hellos
        #expect(try Self.exchange(proxy.port, h.bytes("curl-sni-h2")) == "a\n")               // a.example
        #expect(try Self.exchange(proxy.port, h.bytes("curl-http1.1")) == "b\n")              // shop.b.example
        #expect(try Self.exchange(proxy.port, h.bytes("openssl-tls13")) == "default\n")       // tls13.example
        #expect(try Self.exchange(proxy.port, h.bytes("curl-no-sni")) == "default\n")
        #expect(try Self.exchange(proxy.port, Array("SSH-2.0-OpenSSH_9.2\r\n".utf8)) == "default\n")
        // A hello sent in pieces is routed once it is whole, not on its first bytes.
        let fd = try Net.connect(proxy.port)
        let hello = try h.bytes("curl-sni-h2")
        for chunk in stride(from: 0, to: hello.count, by: 100) {
            try Net.sendAll(fd, Array(hello[chunk..<min(chunk + 100, hello.count)]))
            usleep(20_000)
        }
        #expect(String(decoding: try Net.readToEnd(fd), as: UTF8.self) == "a\n")
        close(fd)
        // Silent: nothing is decided before the inspect delay, then the default backend.
        let clock = ContinuousClock()
        let started = clock.now
        #expect(try Self.exchange(proxy.port, []) == "default\n")
        #expect(clock.now - started >= .milliseconds(900), "routed before the inspect delay ended")
        // Truncated and closed: decided at once on the partial hello (no SNI), the server still answers.
        let truncatedStart = clock.now
        #expect(try Self.exchange(proxy.port, Array(hello.prefix(100)), halfClose: true) == "default\n")
        #expect(clock.now - truncatedStart < .milliseconds(900), "a client that closed should not wait for the delay")
        #expect(try Self.exchange(proxy.port, h.bytes("curl-sni-h2")) == "a\n")
        #expect(servers[0].accepted.load(ordering: .relaxed) == 3)
    }

    /// HAProxy's map-based SNI router: the backend named by a map file (`map_dom`), the default
    /// when the name is not in it, and `default_backend` when there is no name at all — the same
    /// choices as HAProxy 2.6 on the same configuration and map.
    /// A frontend without `default_backend` (HAProxy allows it; SNI routers often have none):
    /// what a `use_backend` rule routes is served, the rest is closed at once without a byte and
    /// logged with the frontend as its backend — the same log line from both proxies.
    @Test func whatNoRuleRoutesIsClosedWithoutADefaultBackendLikeHAProxy() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let logs = [try SyslogReceiver(), try SyslogReceiver()]
        defer { for l in logs { l.stop() } }
        func config(_ routed: Int, _ other: Int, _ log: Int) -> String {
            tcpDefaults() + """
            frontend fe
              bind 127.0.0.1:\(routed) id 10
              bind 127.0.0.1:\(other) id 20
              log 127.0.0.1:\(log) local0
              log-format "%f %b/%s %ts defbe=%[fe_defbe]"
              use_backend be if { so_id 10 }
            backend be
              server s 127.0.0.1:\(echo.port)

            """
        }
        let ports = try (0..<4).map { _ in try Net.closedPort() }
        let proxy = try RunningProxy(config(ports[0], ports[1], logs[0].port))
        defer { proxy.stop() }
        let haproxy = try HAProxyProcess(config: config(ports[2], ports[3], logs[1].port), port: ports[2])
        defer { haproxy.stop() }
        var unrouted: [String] = []
        for (name, routed, other, log) in [("Sluice", ports[0], ports[1], logs[0]), ("HAProxy", ports[2], ports[3], logs[1])] {
            let served = try Net.connect(routed)
            try Net.sendAll(served, "hello\n")
            shutdown(served, Int32(SHUT_WR))
            #expect(try Net.readToEnd(served) == Array("hello\n".utf8), "\(name)")
            close(served)
            let closed = try Net.connect(other)
            try Net.sendAll(closed, "hello\n")
            #expect(try Net.readToEnd(closed, timeoutMs: 3000, resetEnds: true).isEmpty, "\(name)")
            close(closed)
            try eventually("\(name): the closed session is logged") { log.lines.contains { $0.contains("<NOSRV>") } }
            unrouted.append(log.lines.first { $0.contains("<NOSRV>") }.map { String($0[$0.range(of: "fe ")!.lowerBound...]) } ?? "")
        }
        #expect(unrouted[0] == unrouted[1], "Sluice: \(unrouted[0]) HAProxy: \(unrouted[1])")
        #expect(unrouted[0].hasPrefix("fe fe/<NOSRV> "), "\(unrouted[0])")
    }

    @Test func sniRoutesThroughAMapFileLikeHAProxy() throws {
        let servers = try ["a", "b", "default"].map { try TestServer(.identify($0)) }
        defer { for s in servers { s.stop() } }
        let map = TestFiles.folder.appendingPathComponent("sluice-sni-\(UUID().uuidString.prefix(8)).map").path
        try "# SNI -> backend\na.example  be_a\nb.example  be_b\n".write(toFile: map, atomically: true, encoding: .utf8)
        defer { unlink(map) }
        func config(_ port: Int) -> String {
            """
            \(tcpDefaults(client: "10s", server: "10s"))
            frontend tls
              bind 127.0.0.1:\(port)
              tcp-request inspect-delay 2s
              tcp-request content accept if { req.ssl_hello_type 1 }
              use_backend %[req.ssl_sni,lower,map_dom(\(map),be_default)]
              default_backend be_none
            backend be_a
              server a 127.0.0.1:\(servers[0].port)
            backend be_b
              server b 127.0.0.1:\(servers[1].port)
            backend be_default
              server d 127.0.0.1:\(servers[2].port)
            backend be_none
              server n 127.0.0.1:\(servers[2].port)

            """
        }
        let h = Self.hellos
        func routes(_ port: Int) throws -> [String] {
            try ["curl-sni-h2", "curl-http1.1", "openssl-tls13", "curl-no-sni"].map { try Self.exchange(port, h.bytes($0)) }
        }
        let proxy = try RunningProxy(config(0))
        defer { proxy.stop() }
        // a.example, shop.b.example (a subdomain: map_dom), tls13.example (not in the map), no SNI.
        let sluice = try routes(proxy.port)
        #expect(sluice == ["a\n", "b\n", "default\n", "default\n"])
        if FileManager.default.isExecutableFile(atPath: "/usr/sbin/haproxy") {
            let port = try Net.closedPort()
            let haproxy = try HAProxyProcess(config: config(port), port: port)
            defer { haproxy.stop() }
            #expect(try routes(port) == sluice, "HAProxy 2.6 routes differently")
        }
    }

    /// HAProxy's `use-server` example: servers of weight 0, out of the rotation, reached by SNI; a
    /// `%[…]` name; the rest load-balanced — the same choices as HAProxy 2.6 on the same file. A
    /// server in maintenance is passed over, and a `%[…]` name that names no server ends the rules.
    @Test func useServerRoutesByNameWithinOneBackendLikeHAProxy() throws {
        let servers = try ["a", "b", "t", "default"].map { try TestServer(.identify($0)) }
        defer { for s in servers { s.stop() } }
        func config(_ port: Int) -> String {
            """
            \(tcpDefaults(client: "10s", server: "10s"))
            listen tls
              bind 127.0.0.1:\(port)
              tcp-request inspect-delay 2s
              tcp-request content accept if { req.ssl_hello_type 1 }
              use-server a if { req.ssl_sni -i a.example }
              use-server b if { req.ssl_sni -m end .b.example }
              use-server %[req.ssl_sni,lower] if { req.ssl_sni -m found }
              server a 127.0.0.1:\(servers[0].port) weight 0
              server b 127.0.0.1:\(servers[1].port) weight 0
              server tls13.example 127.0.0.1:\(servers[2].port) weight 0
              server default 127.0.0.1:\(servers[3].port)

            """
        }
        let h = Self.hellos
        func routes(_ port: Int) throws -> [String] {
            try ["curl-sni-h2", "curl-http1.1", "openssl-tls13", "curl-no-sni"].map { try Self.exchange(port, h.bytes($0)) }
                + [try Self.exchange(port, Array("SSH-2.0-OpenSSH_9.2\r\n".utf8))]
        }
        let proxy = try RunningProxy(config(0))
        defer { proxy.stop() }
        // a.example, shop.b.example, tls13.example (by its own name), no SNI, no TLS.
        let sluice = try routes(proxy.port)
        #expect(sluice == ["a\n", "b\n", "t\n", "default\n", "default\n"])
        if FileManager.default.isExecutableFile(atPath: "/usr/sbin/haproxy") {
            let port = try Net.closedPort()
            let haproxy = try HAProxyProcess(config: config(port), port: port)
            defer { haproxy.stop() }
            #expect(try routes(port) == sluice, "HAProxy 2.6 routes differently")
        }
        // `a` in maintenance: its rule is passed over; the `%[…]` rule names `a.example`, no server,
        // which ends the rules: the algorithm's server.
        let backend = try #require(proxy.balancer.backend(named: "tls"))
        backend.setAdmin(.maintenance, of: try #require(backend.server(named: "a")))
        let reachedA = servers[0].accepted.load(ordering: .relaxed)
        #expect(try Self.exchange(proxy.port, h.bytes("curl-sni-h2")) == "default\n")
        #expect(servers[0].accepted.load(ordering: .relaxed) == reachedA)
    }

    /// A `use-server` target at its `maxconn` keeps its sessions: they wait in its own queue and
    /// are served when it frees a slot, never sent to the other servers.
    @Test func useServerWaitsForItsServerAtMaxconn() throws {
        let echo = try TestServer(.echo)
        let other = try TestServer(.identify("other"))
        defer { echo.stop(); other.stop() }
        let proxy = try RunningProxy("""
            \(tcpDefaults(client: "10s", server: "10s"))
            listen l
              bind 127.0.0.1:0
              timeout queue 10s
              use-server e if { src 127.0.0.1 }
              server e 127.0.0.1:\(echo.port) weight 0 maxconn 1
              server other 127.0.0.1:\(other.port)

            """)
        defer { proxy.stop() }
        let first = try Net.connect(proxy.port)
        try Net.sendAll(first, Array("1".utf8))
        #expect(try Net.read(first, count: 1) == Array("1".utf8))
        let second = try Net.connect(proxy.port)
        defer { close(second) }
        try Net.sendAll(second, Array("2".utf8))
        let server = try #require(proxy.balancer.backend(named: "l")?.server(named: "e"))
        try eventually("the second session waits in e's queue") { server.queueMax.load(ordering: .relaxed) == 1 }
        close(first)
        #expect(try Net.read(second, count: 1) == Array("2".utf8))
        #expect(other.accepted.load(ordering: .relaxed) == 0)
    }

    /// HAProxy's Terminal Services farm in front of `servers` (s1, s2, s3): wait for the RDP cookie,
    /// `persist rdp-cookie`, and `choice` (how sessions without a routing token are spread).
    static func rdpFarm(_ port: Int, _ servers: [TestServer], _ choice: String) -> String {
        """
        \(tcpDefaults(client: "10s", server: "10s"))
        listen tse-farm
          bind 127.0.0.1:\(port)
          tcp-request inspect-delay 5s
          tcp-request content accept if RDP_COOKIE
          persist rdp-cookie
          \(choice)
        \(servers.enumerated().map { "  server s\($0.offset + 1) 127.0.0.1:\($0.element.port)" }.joined(separator: "\n"))

        """
    }

    /// An RDP client's X.224 Connection Request (TPKT and X.224 headers, 11 bytes) with its cookie
    /// line (`<name>=<value>`, none when nil), then its RDP negotiation request.
    static func rdpConnectionRequest(_ cookie: String?) -> [UInt8] {
        [3, 0, 0, 0, 0, 0xE0, 0, 0, 0, 0, 0] + Array((cookie.map { "Cookie: \($0)\r\n" } ?? "").utf8) + [1, 0, 8, 0, 3, 0, 0, 0]
    }

    /// HAProxy's Terminal Services farm: wait for the RDP cookie, hash the user's `mstshash` to a
    /// server (the same user lands on the same server), and send a client whose connection broker
    /// gave it a routing token (`msts=<address>.<port>.0000`) to the server it names — as HAProxy
    /// 2.6 does on the same file.
    @Test func rdpCookieBalancesAndPersistsLikeHAProxy() throws {
        let servers = try ["s1", "s2", "s3"].map { try TestServer(.identify($0)) }
        defer { for s in servers { s.stop() } }
        func config(_ port: Int) -> String { Self.rdpFarm(port, servers, "balance rdp-cookie") }
        func connectionRequest(_ cookie: String?) -> [UInt8] { Self.rdpConnectionRequest(cookie) }
        // 127.0.0.1 as the number HAProxy reads (the address's bytes in memory order), the port byte-swapped.
        let token = "msts=16777343.\(UInt16(servers[1].port).byteSwapped).0000"
        let proxy = try RunningProxy(config(0))
        defer { proxy.stop() }
        let users = (1...12).map { "mstshash=user\($0)" }
        var first: [String] = []
        for user in users { first.append(try Self.exchange(proxy.port, connectionRequest(user))) }
        for (user, server) in zip(users, first) {
            #expect(try Self.exchange(proxy.port, connectionRequest(user)) == server, "\(user) moved")
        }
        #expect(Set(first).count > 1, "every user hashed to one server: \(first)")
        for _ in 0..<3 {  // not round-robin's luck: every time
            #expect(try Self.exchange(proxy.port, connectionRequest(token)) == "s2\n")
        }
        // A request without a cookie is not held for the delay: the algorithm's choice, at once.
        let clock = ContinuousClock()
        let started = clock.now
        #expect(try Self.exchange(proxy.port, connectionRequest(nil)).hasPrefix("s"))
        #expect(clock.now - started < .seconds(2))
        if FileManager.default.isExecutableFile(atPath: "/usr/sbin/haproxy") {
            let port = try Net.closedPort()
            let haproxy = try HAProxyProcess(config: config(port), port: port)
            defer { haproxy.stop() }
            for _ in 0..<3 {
                #expect(try Self.exchange(port, connectionRequest(token)) == "s2\n", "HAProxy 2.6 reads the routing token differently")
            }
            let again = try users.map { try Self.exchange(port, connectionRequest($0)) }
            #expect(try users.map { try Self.exchange(port, connectionRequest($0)) } == again, "HAProxy keeps users on their servers too")
        }
    }

    /// HAProxy's own RDP example: round-robin, but `stick on req.rdp_cookie(mstshash)` in a string
    /// table keeps each user on the server of their first connection — a key on the data the
    /// frontend inspected, taken when the session is routed and stored once it is connected. The
    /// same property holds on HAProxy 2.6 with the same file.
    @Test func stickOnTheRDPUserKeepsEachUserOnTheirFirstServer() throws {
        let servers = try ["s1", "s2", "s3"].map { try TestServer(.identify($0)) }
        defer { for s in servers { s.stop() } }
        func config(_ port: Int) -> String {
            Self.rdpFarm(port, servers, "stick-table type string size 204800\n  stick on req.rdp_cookie(mstshash)")
        }
        func request(_ user: String) -> [UInt8] { Self.rdpConnectionRequest("mstshash=\(user)") }
        /// Each user's server on first contact, after checking that two more connections land there.
        func placements(_ port: Int) throws -> [String] {
            // Five users: not a multiple of three, so plain round-robin would move them on the next pass.
            let users = (1...5).map { "user\($0)" }
            let first = try users.map { try Self.exchange(port, request($0)) }
            for _ in 0..<2 {
                #expect(try users.map { try Self.exchange(port, request($0)) } == first, "a user moved")
            }
            return first
        }
        let proxy = try RunningProxy(config(0))
        defer { proxy.stop() }
        // Round-robin spreads the five first contacts over the three servers.
        #expect(Set(try placements(proxy.port)).count == 3)
        if FileManager.default.isExecutableFile(atPath: "/usr/sbin/haproxy") {
            let port = try Net.closedPort()
            let haproxy = try HAProxyProcess(config: config(port), port: port)
            defer { haproxy.stop() }
            #expect(Set(try placements(port)).count == 3, "HAProxy 2.6 spreads and sticks differently")
        }
    }

    /// End to end with real TLS: nginx terminates it behind Sluice, which only peeks at the hello.
    @Test func sniRoutesRealTLSClientsToNginx() throws {
        let certificate = try TLSCertificate()
        let nginx = try ["a", "b", "default"].map { try Nginx.tls(answer: $0, certificate: certificate) }
        defer { for n in nginx { n.stop() } }
        let proxy = try RunningProxy(Self.sniConfig(nginx[0].port, nginx[1].port, nginx[2].port))
        defer { proxy.stop() }
        func curl(_ name: String?) throws -> String {
            let url = name.map { "https://\($0):\(proxy.port)/" } ?? "https://127.0.0.1:\(proxy.port)/"
            let resolve = name.map { ["--resolve", "\($0):\(proxy.port):127.0.0.1"] } ?? []
            return try Loopback.CommandLineTests.run(["-sk", "--max-time", "10"] + resolve + [url], executable: "/usr/bin/curl", deadline: .seconds(20)).stdout
        }
        #expect(try curl("a.example") == "a\n")
        #expect(try curl("A.Example") == "a\n")  // -i (curl may lower-case it itself; either way it is a)
        #expect(try curl("api.b.example") == "b\n")
        #expect(try curl("c.example") == "default\n")
        #expect(try curl(nil) == "default\n")  // an IP address: no SNI
        let openssl = try Loopback.CommandLineTests.run(
            ["s_client", "-quiet", "-connect", "127.0.0.1:\(proxy.port)", "-servername", "x.b.example"],
            executable: "/usr/bin/openssl", stdin: "GET / HTTP/1.0\r\n\r\n", deadline: .seconds(20))
        #expect(openssl.stdout.hasSuffix("b\n"), "\(openssl.stdout) \(openssl.stderr)")
    }

    /// `src` rules and a `-f` list of 100,000 networks, against curl from several loopback addresses.
    @Test func sourceRulesAndLargePatternFiles() throws {
        let server = try TestServer(.http("web"))
        defer { server.stop() }
        var lines = ["# generated: 100,000 networks, one of them 127.0.0.3/32"]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<99_999 { lines.append("\(IPAddress.v4(UInt32.random(in: 0x0B00_0000...0x6400_0000, using: &generator)))/\(Int.random(in: 16...32, using: &generator))") }
        lines.insert("  127.0.0.3/32", at: 50_000)
        let list = try Loopback.CommandLineTests.write(lines.joined(separator: "\n") + "\n", name: "blocked.lst")
        let config = """
            \(tcpDefaults())
            frontend fe
              bind 127.0.0.1:0
              tcp-request connection reject if { src 127.0.0.2 }
              tcp-request connection reject if { src -f \(list) }
              default_backend be
            backend be
              server s 127.0.0.1:\(server.port)

            """
        let clock = ContinuousClock()
        let started = clock.now
        let proxy = try RunningProxy(config)
        defer { proxy.stop() }
        print("a configuration with a 100,000-network -f list loaded and started in \(clock.now - started)")
        func curl(from source: String) throws -> Int32 {
            try Loopback.CommandLineTests.run(["-s", "-o", "/dev/null", "--max-time", "5", "--interface", source, "http://127.0.0.1:\(proxy.port)/"],
                                              executable: "/usr/bin/curl", deadline: .seconds(15)).status
        }
        #expect(try curl(from: "127.0.0.1") == 0)
        #expect(try curl(from: "127.0.0.2") != 0)
        #expect(try curl(from: "127.0.0.3") != 0)
        #expect(try curl(from: "127.0.0.4") == 0)
        let frontend = try #require(proxy.balancer.frontendState(named: "fe"))
        #expect(frontend.deniedConnections.load(ordering: .relaxed) == 2)
        #expect(frontend.totalConnections.load(ordering: .relaxed) == 2)  // rejected connections are not sessions
        #expect(server.accepted.load(ordering: .relaxed) == 2)
    }

    static func rateLimitConfig(port: Int, server: Int) -> String {
        """
        \(tcpDefaults())
        frontend fe
          bind 127.0.0.1:\(port)
          stick-table type ip size 100k expire 30s store conn_cur,conn_rate(10s)
          tcp-request connection track-sc0 src
          tcp-request connection reject if { sc0_conn_rate gt 3 }
          default_backend be
        backend be
          server s 127.0.0.1:\(server)

        """
    }

    /// A per-source `conn_rate(10s)` limit gives the same answers as HAProxy 2.6 on the same
    /// configuration, connection by connection; another source is not affected; `show table`
    /// reports the entry and `clear table` lets the source in again.
    @Test func connectionRateLimitMatchesHAProxy() throws {
        let server = try TestServer(.identify("s"))
        defer { server.stop() }
        func outcomes(_ port: Int) throws -> [Bool] {
            try (["127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"]).map {
                try Self.exchange(port, [], from: $0) == "s\n"
            }
        }
        let expected = [true, true, true, false, false, true, false, true]
        let proxy = try RunningProxy(Self.rateLimitConfig(port: 0, server: server.port))
        defer { proxy.stop() }
        let sluice = try outcomes(proxy.port)
        #expect(sluice == expected)
        if FileManager.default.isExecutableFile(atPath: "/usr/sbin/haproxy") {
            let port = try Net.closedPort()
            let haproxy = try HAProxyProcess(config: Self.rateLimitConfig(port: port, server: server.port), port: port)
            defer { haproxy.stop() }
            #expect(try outcomes(port) == sluice, "HAProxy 2.6 decides differently")
        }
        let api = RuntimeAPI(balancer: proxy.balancer, version: "test")
        guard case .reply(let table) = api.execute("show table fe", level: .admin) else { Issue.record("no reply"); return }
        let lines = table.split(separator: "\n")
        #expect(lines.first == "# table: fe, type: ip, size:102400, used:2")
        let entry = try #require(lines.first { $0.contains("key=127.0.0.2 ") })
        #expect(entry.contains(" use=0 ") && entry.contains(" conn_rate(10000)=6") && entry.contains(" conn_cur=0"), "\(entry)")
        guard case .reply(let filtered) = api.execute("show table fe data.conn_rate gt 3", level: .admin) else { return }
        #expect(filtered.split(separator: "\n").count == 2)  // the header and 127.0.0.2
        // A reload with the same table keeps its entries (and so the limit); a changed table starts empty.
        let text = Self.rateLimitConfig(port: proxy.port, server: server.port)
        _ = try proxy.balancer.reload(Configuration.parse(text, file: "reload.cfg").configuration)
        #expect(try Self.exchange(proxy.port, [], from: "127.0.0.2") == "")
        _ = try proxy.balancer.reload(Configuration.parse(text.replacingOccurrences(of: "size 100k", with: "size 200k"), file: "reload.cfg").configuration)
        #expect(try Self.exchange(proxy.port, [], from: "127.0.0.2") == "s\n")
        _ = api.execute("clear table fe key 127.0.0.2", level: .admin)
        #expect(try Self.exchange(proxy.port, [], from: "127.0.0.2") == "s\n")
        #expect(api.execute("clear table fe", level: .user).replyText == RuntimeCommand.permissionDenied)
    }

    /// `sc0_conn_rate(<table>)`: the key counter 0 tracks, looked up in another table (here the one
    /// counter 1 tracks it in) — the same answers as HAProxy 2.6, connection by connection.
    @Test func aCounterReadsItsKeyInAnotherTableLikeHAProxy() throws {
        let server = try TestServer(.identify("s"))
        defer { server.stop() }
        func config(_ port: Int) -> String {
            """
            \(tcpDefaults())
            frontend fe
              bind 127.0.0.1:\(port)
              stick-table type ip size 1k expire 30s store conn_cur
              tcp-request connection track-sc0 src
              tcp-request connection track-sc1 src table rates
              tcp-request connection reject if { sc0_conn_rate(rates) gt 2 }
              default_backend be
            backend rates
              stick-table type ip size 1k expire 30s store conn_rate(10s)
            backend be
              server s 127.0.0.1:\(server.port)

            """
        }
        func outcomes(_ port: Int) throws -> [Bool] {
            try ["127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.3"].map { try Self.exchange(port, [], from: $0) == "s\n" }
        }
        let proxy = try RunningProxy(config(0))
        defer { proxy.stop() }
        let sluice = try outcomes(proxy.port)
        #expect(sluice == [true, true, false, false, true])
        if FileManager.default.isExecutableFile(atPath: "/usr/sbin/haproxy") {
            let port = try Net.closedPort()
            let haproxy = try HAProxyProcess(config: config(port), port: port)
            defer { haproxy.stop() }
            #expect(try outcomes(port) == sluice, "HAProxy 2.6 decides differently")
        }
    }

    /// `stick on src`: each client address keeps its server; a server in maintenance loses its
    /// clients to another, where they then stay. And the MySQL-failover idiom (`size 1 nopurge`,
    /// `stick on dst`): everyone on one server until it fails, then everyone on the next, for good.
    /// The overflow pattern: `use_backend` to a second farm once the first is full, by `be_conn`
    /// (sessions of the backend) and by `connslots` (free connection and queue slots), on Sluice and
    /// on HAProxy 2.6 with the same file; each client keeps its session open.
    @Test func overflowToASecondFarmByBackendLoadLikeHAProxy() throws {
        let servers = try ["primary", "limited", "overflow"].map { try TestServer(.identify($0)) }
        defer { for s in servers { s.stop() } }
        func config(_ ports: [Int]) -> String {
            """
            \(tcpDefaults(connect: "5s", client: "10s", server: "10s"))
            frontend byconn
              bind 127.0.0.1:\(ports[0])
              use_backend overflow if { be_conn(primary) ge 2 }
              default_backend primary
            frontend byslots
              bind 127.0.0.1:\(ports[1])
              acl full connslots(limited) lt 2
              use_backend overflow if full
              default_backend limited
            backend primary
              server p 127.0.0.1:\(servers[0].port)
            backend limited
              timeout queue 5s
              server l 127.0.0.1:\(servers[1].port) maxconn 2 maxqueue 1
            backend overflow
              server o 127.0.0.1:\(servers[2].port)

            """
        }
        /// The name each of three clients in a row gets (nil: still waiting), the first ones held open.
        func names(_ port: Int) throws -> [String?] {
            var held: [CInt] = []
            defer { for fd in held { close(fd) } }
            var seen: [String?] = []
            for _ in 0..<3 {
                let fd = try Net.connect(port)
                held.append(fd)
                seen.append(Net.waitReadable(fd, timeoutMs: 1_000) ? String(decoding: try Net.read(fd, count: 2), as: UTF8.self) : nil)
            }
            return seen
        }
        // be_conn(primary): two sessions there, the third overflows. connslots(limited): two slots
        // and one place in the server's own queue (3, 2, then 1 left), so the third overflows. (A
        // session waiting for any server joins the backend's queue, which connslots does not count,
        // in HAProxy as in Sluice.)
        let expected: [[String?]] = [["pr", "pr", "ov"], ["li", "li", "ov"]]
        let proxy = try RunningProxy(config([0, 0]))
        defer { proxy.stop() }
        let ports = proxy.balancer.listeningAddresses(of: "byconn").map(\.port) + proxy.balancer.listeningAddresses(of: "byslots").map(\.port)
        let got = try ports.map(names)
        #expect(got == expected, "\(got)")
        if HAProxyProcess.requireInstalled() {
            let ports = try [Net.closedPort(), Net.closedPort()]
            let haproxy = try HAProxyProcess(config: config(ports), port: ports[0])
            defer { haproxy.stop() }
            let haproxyGot = try ports.map(names)
            #expect(haproxyGot == expected, "HAProxy 2.6: \(haproxyGot)")
        }
    }

    /// `non-stick`: sessions sent to that server are not stored, so a client that round-robin put
    /// there is placed again next time, and sticks only once it lands on a server that stores;
    /// `stick` on a server line undoes a `default-server non-stick`. The same on HAProxy 2.6.
    @Test func nonStickServersAreNeverStoredLikeHAProxy() throws {
        let servers = try ["a", "b"].map { try TestServer(.identify($0)) }
        defer { for s in servers { s.stop() } }
        func config(_ port: Int) -> String {
            """
            \(tcpDefaults())
            listen fe
              bind 127.0.0.1:\(port)
              balance roundrobin
              stick-table type ip size 10 expire 30m
              stick on src
              default-server non-stick
              server a 127.0.0.1:\(servers[0].port)
              server b 127.0.0.1:\(servers[1].port) stick

            """
        }
        func sequence(_ port: Int) throws -> [String] {
            try (0..<5).map { _ in try Self.exchange(port, [], from: "127.0.0.2") }
        }
        let proxy = try RunningProxy(config(0))
        defer { proxy.stop() }
        // a (not stored), then b (stored), then b for good.
        #expect(try sequence(proxy.port) == ["a\n", "b\n", "b\n", "b\n", "b\n"])
        if HAProxyProcess.requireInstalled() {
            let port = try Net.closedPort()
            let haproxy = try HAProxyProcess(config: config(port), port: port)
            defer { haproxy.stop() }
            #expect(try sequence(port) == ["a\n", "b\n", "b\n", "b\n", "b\n"], "HAProxy 2.6 stores differently")
        }
    }

    @Test func stickOnKeepsClientsOnTheirServerAndFailsOverForGood() throws {
        let servers = try ["a", "b"].map { try TestServer(.identify($0)) }
        defer { for s in servers { s.stop() } }
        let proxy = try RunningProxy("""
            \(tcpDefaults())
            listen fe
              bind 127.0.0.1:0
              balance roundrobin
              stick-table type ip size 10 expire 30m
              stick on src
              server a 127.0.0.1:\(servers[0].port)
              server b 127.0.0.1:\(servers[1].port)

            """)
        defer { proxy.stop() }
        func from(_ source: String) throws -> String { try Self.exchange(proxy.port, [], from: source) }
        let first2 = try from("127.0.0.2"), first3 = try from("127.0.0.3")
        #expect(first2 != first3)  // round-robin placed them; persistence keeps them there
        for _ in 0..<4 {
            #expect(try from("127.0.0.2") == first2)
            #expect(try from("127.0.0.3") == first3)
        }
        let backend = try #require(proxy.balancer.backend(named: "fe"))
        let pinned = try #require(backend.server(named: first2 == "a\n" ? "a" : "b"))
        backend.setAdmin(.maintenance, of: pinned)
        #expect(try from("127.0.0.2") == first3)
        backend.setAdmin(.ready, of: pinned)
        #expect(try from("127.0.0.2") == first3)  // stored anew on the server that took it
        let table = try #require(RuntimeAPI(balancer: proxy.balancer, version: "test").execute("show table fe", level: .admin).replyText)
        #expect(table.contains("key=127.0.0.2 use=0 ") && table.contains(" server_id="), "\(table)")

        let failover = try RunningProxy("""
            \(tcpDefaults())
            listen db
              bind 127.0.0.1:0
              stick-table type ip size 1 nopurge
              stick on dst
              server a 127.0.0.1:\(servers[0].port)
              server b 127.0.0.1:\(servers[1].port) backup

            """)
        defer { failover.stop() }
        let db = try #require(failover.balancer.backend(named: "db"))
        for source in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] { #expect(try Self.exchange(failover.port, [], from: source) == "a\n") }
        db.setAdmin(.maintenance, of: try #require(db.server(named: "a")))
        #expect(try Self.exchange(failover.port, []) == "b\n")
        db.setAdmin(.ready, of: try #require(db.server(named: "a")))
        for source in ["127.0.0.2", "127.0.0.3"] { #expect(try Self.exchange(failover.port, [], from: source) == "b\n") }
    }

    /// `accept-proxy` (v1 and v2) in, `send-proxy-v2` out to nginx, which answers with the address
    /// it was told; content rules see the PROXY address, connection rules the real one; malformed
    /// headers are refused and counted, and the balancer goes on serving.
    @Test func proxyProtocolInAndOut() throws {
        let nginx = try Nginx.proxyProtocol()
        defer { nginx.stop() }
        let proxy = try RunningProxy("""
            \(tcpDefaults(client: "2s"))
            frontend fe
              bind 127.0.0.1:0 accept-proxy
              stick-table type ip size 1k expire 1m store sess_cnt,bytes_in_cnt,bytes_out_cnt,bytes_out_rate(10s)
              tcp-request connection reject if { src 203.0.113.0/24 }
              tcp-request session reject if { src 192.0.2.0/24 }
              tcp-request session track-sc0 src
              tcp-request inspect-delay 2s
              tcp-request content reject if { src 198.51.100.0/24 }
              tcp-request content accept if { req.len gt 0 }
              default_backend be
            backend be
              server n 127.0.0.1:\(nginx.port) send-proxy-v2

            """)
        defer { proxy.stop() }
        let request = Array("GET / HTTP/1.0\r\n\r\n".utf8)
        func body(_ response: String) -> String { response.components(separatedBy: "\r\n\r\n").last ?? "" }
        let v1 = Array("PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n".utf8)
        #expect(body(try Self.exchange(proxy.port, v1 + request)) == "203.0.113.7:40000")
        let v2 = ProxyHeader.bytes(.v2, source: SocketAddress(ip: "2001:db8::7", port: 4242)!, destination: SocketAddress(ip: "2001:db8::1", port: 443)!)
        #expect(body(try Self.exchange(proxy.port, v2 + request)) == "2001:db8::7:4242")
        // The header and the request in separate segments.
        let fd = try Net.connect(proxy.port)
        try Net.sendAll(fd, Array(v1.prefix(10)))
        usleep(50_000)
        try Net.sendAll(fd, Array(v1.dropFirst(10)) + request)
        #expect(body(String(decoding: try Net.readToEnd(fd), as: UTF8.self)) == "203.0.113.7:40000")
        close(fd)
        let frontend = try #require(proxy.balancer.frontendState(named: "fe"))
        // Content rules judge the address the header carries.
        #expect(try Self.exchange(proxy.port, Array("PROXY TCP4 198.51.100.9 127.0.0.1 1 80\r\n".utf8) + request) == "")
        #expect(frontend.deniedRequests.load(ordering: .relaxed) == 1)
        // Malformed headers: closed unanswered, counted, never forwarded.
        var generator = SystemRandomNumberGenerator()
        var malformed: [[UInt8]] = [request, Array("PROXY TCP4 1.2.3.4\r\n".utf8), Array("PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\n".utf8),
                                    ProxyProtocol.signature + [0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4]]
        for _ in 0..<20 { malformed.append((0..<Int.random(in: 1...200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }) }
        malformed = malformed.filter { bytes in bytes.withUnsafeBytes { if case .invalid = ProxyProtocol.parse($0) { true } else { false } } }
        // Forwarded, any of them would get an answer (nginx says 400 to bytes that are not HTTP).
        for bytes in malformed { #expect(try Self.exchange(proxy.port, bytes) == "") }
        #expect(frontend.failedRequests.load(ordering: .relaxed) == malformed.count)
        // A client that sends no header at all is closed at `timeout client`.
        let clock = ContinuousClock()
        let started = clock.now
        #expect(try Self.exchange(proxy.port, []) == "")
        #expect(clock.now - started >= .milliseconds(1_900))
        #expect(frontend.failedRequests.load(ordering: .relaxed) == malformed.count + 1)
        #expect(body(try Self.exchange(proxy.port, v1 + request)) == "203.0.113.7:40000")
        // Session rules judge (and track) the PROXY address too: three sessions from 203.0.113.7,
        // each 18 request bytes in and nginx's answer out.
        #expect(try Self.exchange(proxy.port, Array("PROXY TCP4 192.0.2.1 127.0.0.1 1 80\r\n".utf8) + request) == "")
        #expect(frontend.deniedSessions.load(ordering: .relaxed) == 1)
        let api = RuntimeAPI(balancer: proxy.balancer, version: "test")
        let table = try #require(api.execute("show table fe key 203.0.113.7", level: .admin).replyText)
        let entry = try #require(table.split(separator: "\n").dropFirst().first)
        #expect(entry.contains(" sess_cnt=3 ") && entry.contains(" bytes_in_cnt=54 "), "\(entry)")
        let sent = try #require(entry.split(separator: " ").first { $0.hasPrefix("bytes_out_cnt=") }.flatMap { Int($0.dropFirst(14)) })
        #expect(sent > 3 * "203.0.113.7:40000".count)
        // The rate is a sliding window: a period boundary during the test weighs the earlier bytes down.
        let rate = try #require(entry.split(separator: " ").first { $0.hasPrefix("bytes_out_rate(10000)=") }.flatMap { Int($0.dropFirst(22)) })
        #expect(rate > 0 && rate <= sent, "\(entry)")
    }
}
}

extension RuntimeAPI.Outcome {
    var replyText: String? { if case .reply(let text) = self { text } else { nil } }
}

/// A self-signed certificate made by the test (`openssl req -x509`), for nginx's TLS servers.
struct TLSCertificate {
    let certificate: String
    let key: String

    init() throws {
        let dir = TestFiles.folder.appendingPathComponent("sluice-tls-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        certificate = dir + "/cert.pem"
        key = dir + "/key.pem"
        let run = try Loopback.CommandLineTests.run(
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
             "-subj", "/CN=sluice-test", "-keyout", key, "-out", certificate],
            executable: "/usr/bin/openssl", deadline: .seconds(30))
        guard run.status == 0 else { throw Net.Failure("openssl req failed: \(run.stderr)") }
    }
}

/// nginx, started by the test in the foreground with its own prefix directory.
enum Nginx {
    static func start(_ name: String, server: @escaping (Int, String) -> String) throws -> RealServer {
        try RealServer(name) { port, dir in
            let conf = """
                daemon off;
                master_process off;
                pid \(dir)/nginx.pid;
                error_log \(dir)/error.log;
                events { worker_connections 256; }
                http {
                  access_log \(dir)/access.log;
                  client_body_temp_path \(dir); proxy_temp_path \(dir); fastcgi_temp_path \(dir); uwsgi_temp_path \(dir); scgi_temp_path \(dir);
                  server {
                \(server(port, dir))
                  }
                }

                """
            try? conf.write(toFile: dir + "/nginx.conf", atomically: true, encoding: .utf8)
            return ["/usr/sbin/nginx", "-e", dir + "/error.log", "-p", dir, "-c", dir + "/nginx.conf"]
        }
    }

    static func tls(answer: String, certificate: TLSCertificate) throws -> RealServer {
        try start("nginx-\(answer)") { port, _ in
            """
                listen 127.0.0.1:\(port) ssl;
                ssl_certificate \(certificate.certificate);
                ssl_certificate_key \(certificate.key);
                location / { default_type text/plain; return 200 "\(answer)\\n"; }
            """
        }
    }

    /// Answers with the client address and port its PROXY header carried.
    static func proxyProtocol() throws -> RealServer {
        try start("nginx-proxy-protocol") { port, _ in
            """
                listen 127.0.0.1:\(port) proxy_protocol;
                location / { default_type text/plain; return 200 "$proxy_protocol_addr:$proxy_protocol_port"; }
            """
        }
    }
}
