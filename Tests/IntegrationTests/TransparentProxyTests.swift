import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

extension Loopback {
/// Full transparent proxying, side by side with HAProxy 2.6 on the same files: `source … usesrc`
/// presents the client's address (or a fixed one) to the servers, and `bind … transparent` listens
/// on an address the host does not own. On loopback every 127.0.0.0/8 address is the host's, so
/// the servers' replies come back without the policy routing a real deployment needs; what is
/// tested is what the proxies do with their sockets.
@Suite struct TransparentProxyTests {
    static let privileged = getuid() == 0

    /// A client at `host` (its own port, with `SO_REUSEADDR` so that `usesrc client` may bind the
    /// same pair toward the server) sends `first`, then reads to the end: the server's answer and
    /// the client's port.
    static func exchange(_ port: Int, from host: String, to destination: String = "127.0.0.1", sending first: String = "") throws -> (answer: String, clientPort: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var one: CInt = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        var local = Net.address(0, host: host)
        var remote = Net.address(port, host: destination)
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        guard withUnsafePointer(to: &local, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) } }) == 0,
              withUnsafePointer(to: &remote, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, size) } }) == 0 else {
            throw Net.Failure("client at \(host): \(String(cString: strerror(errno)))")
        }
        if !first.isEmpty { try Net.sendAll(fd, first) }
        let answer = String(decoding: try Net.readToEnd(fd, resetEnds: true), as: UTF8.self)
        return (answer, Net.localPort(fd))
    }

    struct Case: CustomTestStringConvertible, Sendable {
        let usesrc: String
        let bindOptions: String
        /// What the client sends first (a PROXY header for `accept-proxy`).
        let first: String
        /// The server's peer for the client's connection; `PORT` stands for the client's port.
        let expected: String
        var testDescription: String { "usesrc \(usesrc)\(bindOptions)" }
    }

    static let cases = [
        Case(usesrc: "clientip", bindOptions: "", first: "", expected: "127.0.0.5"),
        Case(usesrc: "client", bindOptions: "", first: "", expected: "127.0.0.5:PORT"),
        Case(usesrc: "127.0.0.9", bindOptions: "", first: "", expected: "127.0.0.9"),
        // The client as the PROXY header names it, as HAProxy's stream source.
        Case(usesrc: "clientip", bindOptions: " accept-proxy", first: "PROXY TCP4 127.0.0.7 127.0.0.1 5555 80\r\n", expected: "127.0.0.7"),
    ]

    /// Each form of `usesrc` presents to the server what HAProxy presents, while health checks
    /// still leave from `source`'s own address (127.0.0.2), as HAProxy's.
    @Test(.enabled(if: privileged, "IP_TRANSPARENT needs CAP_NET_ADMIN"), arguments: cases)
    func usesrcPresentsWhatHAProxyPresents(_ c: Case) throws {
        func config(_ port: Int) -> String {
            """
            \(tcpDefaults())
            frontend fe
              bind 127.0.0.1:\(port)\(c.bindOptions)
              default_backend be
            backend be
              source 127.0.0.2 usesrc \(c.usesrc)
              # The server answers the peer's address: a check that waits for it is seen by the
              # server (HAProxy resets a bare connect check before the server accepts it).
              option tcp-check
              tcp-check expect string 127.0.0.2
              server s 127.0.0.1:SERVER check inter 100ms

            """
        }
        func run(_ contender: String, start: (String, Int) throws -> (port: Int, stop: () -> Void)) throws {
            let server = try TestServer(.peerAddress)
            defer { server.stop() }
            let proxy = try start(config(0).replacingOccurrences(of: "SERVER", with: "\(server.port)"), try Net.closedPort())
            defer { proxy.stop() }
            try eventually("\(contender): a health check reached the server") { !server.peers.withLock { $0.isEmpty } }
            let (answer, clientPort) = try Self.exchange(proxy.port, from: "127.0.0.5", sending: c.first)
            let expected = c.expected.replacingOccurrences(of: "PORT", with: "\(clientPort)")
            let peers = server.peers.withLock { $0 }
            let forwarded = peers.filter { !$0.hasPrefix("127.0.0.2:") }
            #expect(answer == expected.split(separator: ":")[0] + "\n", "\(contender): the server saw \(answer)")
            #expect(forwarded.count == 1 && forwarded[0].hasPrefix(expected.contains(":") ? expected : expected + ":"), "\(contender): \(forwarded)")
            #expect(peers.count > forwarded.count, "\(contender): checks leave from 127.0.0.2: \(peers)")
        }
        try run("sluice") { text, _ in
            let proxy = try RunningProxy(text)
            return (proxy.port, proxy.stop)
        }
        guard HAProxyProcess.requireInstalled() else { return }
        try run("haproxy") { text, port in
            let haproxy = try HAProxyProcess(config: text.replacingOccurrences(of: "127.0.0.1:0", with: "127.0.0.1:\(port)"), port: port)
            return (port, haproxy.stop)
        }
    }

    /// `bind … transparent` binds an address the host does not own (TEST-NET-1's 192.0.2.77), which
    /// fails without it, and serves connections that reach it: here once a local route makes the
    /// address deliverable (TPROXY would divert them in a real deployment). HAProxy 2.6 does both.
    @Test(.enabled(if: privileged && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip"), "needs root and iproute2"))
    func aTransparentBindListensOnAnAddressTheHostLacksLikeHAProxy() throws {
        let address = "192.0.2.77"
        let server = try TestServer(.identify("s"))
        defer { server.stop() }
        func config(_ port: Int, transparent: Bool) -> String {
            "\(tcpDefaults())frontend fe\n  bind \(address):\(port)\(transparent ? " transparent" : "")\n  default_backend be\nbackend be\n  server s 127.0.0.1:\(server.port)\n"
        }
        func start(_ text: String) throws -> LoadBalancer {
            var parsed = try Configuration.parse(text, file: "test.cfg")
            parsed.configuration.global.ioEngine = RunningProxy.defaultEngine
            let balancer = try LoadBalancer(configuration: parsed.configuration)
            try balancer.start()
            return balancer
        }
        let port = try Net.closedPort()
        RunningProxy.expectHAProxyAccepts(config(port, transparent: true))
        do {
            let balancer = try start(config(port, transparent: false))
            balancer.stop()
            Issue.record("sluice listened on \(address) without 'transparent': is net.ipv4.ip_nonlocal_bind set, or the address local?")
        } catch {
            #expect("\(error)".contains("Cannot assign requested address"), "\(error)")
        }
        let sluice = try start(config(port, transparent: true))
        defer { sluice.stop() }
        let haproxyPort = try Net.closedPort()
        let haproxy = HAProxyProcess.requireInstalled() ? try HAProxyProcess(config: config(haproxyPort, transparent: true), port: haproxyPort) : nil
        defer { haproxy?.stop() }
        try Self.ip(["route", "add", "local", "\(address)/32", "dev", "lo"])
        defer { try? Self.ip(["route", "del", "local", "\(address)/32", "dev", "lo"]) }
        func answer(_ port: Int) throws -> String {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var remote = Net.address(port, host: address)
            guard withUnsafePointer(to: &remote, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) == 0 else {
                throw Net.Failure("connect to \(address):\(port): \(String(cString: strerror(errno)))")
            }
            return String(decoding: try Net.readToEnd(fd), as: UTF8.self)
        }
        #expect(try answer(port) == "s\n")
        if haproxy != nil { #expect(try answer(haproxyPort) == "s\n", "HAProxy 2.6") }
    }

    /// A server at `0.0.0.0` (no port) connects to the address and port each client asked for —
    /// before NAT rewrote it (`SO_ORIGINAL_DST`), as HAProxy's — and `dst` is that address: clients
    /// of 127.0.0.3:<server port> are redirected to the proxies by an nftables rule, and the
    /// proxies take them to the server that listens there. A client that reaches a proxy directly
    /// asked for the proxy itself: `dst` refuses it.
    @Test(.enabled(if: privileged && FileManager.default.isExecutableFile(atPath: "/usr/sbin/nft"), "needs root and nftables"))
    func aServerAtTheWildcardAddressIsTheOriginalDestinationLikeHAProxy() throws {
        let server = try TestServer(.identify("s"), host: "127.0.0.3")
        defer { server.stop() }
        let logs = try SyslogReceiver()
        defer { logs.stop() }
        func config(_ port: Int) -> String {
            """
            global
              log 127.0.0.1:\(logs.port) format raw local0 info
            \(tcpDefaults())
            frontend fe
              bind 127.0.0.1:\(port)
              log global
              tcp-request connection reject unless { dst 127.0.0.3 }
              default_backend be
            backend be
              server original 0.0.0.0

            """
        }
        let sluice = try RunningProxy(config(0))
        defer { sluice.stop() }
        var ports = [("sluice", "127.0.0.5", sluice.port)]
        var haproxy: HAProxyProcess?
        if HAProxyProcess.requireInstalled() {
            let port = try Net.closedPort()
            haproxy = try HAProxyProcess(config: config(port), port: port)
            ports.append(("haproxy", "127.0.0.6", port))
        }
        defer { haproxy?.stop() }
        let table = "sluice_test_\(getpid())"
        try Self.run("/usr/sbin/nft", ["add", "table", "ip", table])
        defer { try? Self.run("/usr/sbin/nft", ["delete", "table", "ip", table]) }
        try Self.run("/usr/sbin/nft", ["add chain ip \(table) out { type nat hook output priority -100 ; }"])
        for (_, client, port) in ports {
            try Self.run("/usr/sbin/nft", ["add rule ip \(table) out ip saddr \(client) ip daddr 127.0.0.3 tcp dport \(server.port) redirect to :\(port)"])
        }
        for (contender, client, port) in ports {
            #expect(try Self.exchange(server.port, from: client, to: "127.0.0.3").answer == "s\n", "\(contender)")
            #expect(try Self.exchange(port, from: "127.0.0.7").answer == "", "\(contender): dst is the proxy's own address")
        }
        #expect(server.accepted.load(ordering: .relaxed) == ports.count)
        // Each proxy's `Connect from` line names the address the client asked for, as HAProxy's
        // (the direct clients, refused by a connection rule, are no session and not logged).
        let lines = try logs.wait(for: ports.count)
        for (contender, client, _) in ports {
            let reached = lines.filter { $0.contains("Connect from \(client):") }.map { $0.components(separatedBy: " to ").last ?? "" }
            #expect(reached == ["127.0.0.3:\(server.port) (fe/TCP)\n"], "\(contender): \(lines)")
        }
        // Without the rule, the client asked for the proxy itself: Sluice refuses to connect it back
        // to its own listener (HAProxy would, again and again, up to its connection limit).
        let loop = try RunningProxy("\(tcpDefaults())frontend fe\n  bind 127.0.0.1:0\n  default_backend be\nbackend be\n  retries 0\n  server original 0.0.0.0\n")
        defer { loop.stop() }
        #expect(try Self.exchange(loop.port, from: "127.0.0.7").answer == "")
        #expect(loop.balancer.frontendState(named: "fe")?.totalConnections.load(ordering: .relaxed) == 1)
    }

    static func ip(_ arguments: [String]) throws { try run("/usr/sbin/ip", arguments) }

    static func run(_ tool: String, _ arguments: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = arguments
        try p.run()
        guard waitForExit(p, deadline: .seconds(10)) == 0 else { throw Net.Failure("\(tool) \(arguments.joined(separator: " ")) failed") }
    }
}
}
