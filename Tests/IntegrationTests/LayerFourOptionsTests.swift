import Foundation
import Testing
@_spi(Benchmarks) @testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// A listening socket that hands each accepted connection to the test, to see exactly what a
/// server receives.
final class CaptureServer: @unchecked Sendable {
    let fd: CInt
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = Net.address(0)
        let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard r == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw Net.Failure("capture server: \(String(cString: strerror(errno)))")
        }
        self.fd = fd
        port = Net.localPort(fd)
    }

    /// The next connection, waiting at most `timeoutMs`.
    func accept(timeoutMs: Int = 10_000) throws -> CInt {
        guard Net.waitReadable(fd, timeoutMs: timeoutMs) else { throw Net.Failure("no connection reached the capture server") }
        let c = Glibc.accept(fd, nil, nil)
        guard c >= 0 else { throw Net.Failure("accept: \(String(cString: strerror(errno)))") }
        return c
    }

    deinit { close(fd) }
}

/// Server parameters and options that change what happens on the wire at Layer 4.
extension Loopback {
@Suite struct LayerFourOptionsTests {
    static func proxy(_ serverLine: String, options: String = "", port: Int = 0) -> String {
        """
        \(tcpDefaults(client: "10s", server: "10s"))
        frontend fe
          bind 127.0.0.1:\(port)
          default_backend be
        backend be
        \(options)
          \(serverLine)

        """
    }

    /// What the server receives for one client connection: the client sends `hello`, the server
    /// reads the header plus `hello`, answers `ok`, closes.
    static func received(through port: Int, capture: CaptureServer, headerLength: (ArraySlice<UInt8>) -> Int?) throws -> (bytes: [UInt8], clientPort: Int) {
        let client = try Net.connect(port)
        defer { close(client) }
        try Net.sendAll(client, "hello")
        let server = try capture.accept()
        defer { close(server) }
        var bytes: [UInt8] = []
        while headerLength(bytes[...]).map({ bytes.count < $0 + 5 }) ?? true {
            bytes += try Net.read(server, count: 1)
        }
        try Net.sendAll(server, "ok")
        shutdown(server, Int32(SHUT_WR))
        #expect(try Net.readToEnd(client) == Array("ok".utf8))
        return (bytes, Net.localPort(client))
    }

    static func v1Length(_ b: ArraySlice<UInt8>) -> Int? {
        b.firstRange(of: [13, 10]).map { $0.upperBound - b.startIndex }
    }

    static func v2Length(_ b: ArraySlice<UInt8>) -> Int? {
        b.count >= 16 ? 16 + Int(b[b.startIndex + 14]) << 8 + Int(b[b.startIndex + 15]) : nil
    }

    /// `rate-limit sessions 10`: 25 clients that connect at once are all served, none refused,
    /// but no faster than ten a second — the others wait in the kernel backlog.
    @Test func rateLimitSessionsHoldsClientsInTheBacklogAndRefusesNone() throws {
        let server = try TestServer(.identify("s"))
        defer { server.stop() }
        let proxy = try RunningProxy("\(tcpDefaults())frontend fe\n  bind 127.0.0.1:0\n  rate-limit sessions 10\n  default_backend be\nbackend be\n  server s 127.0.0.1:\(server.port)\n")
        defer { proxy.stop() }
        let clock = ContinuousClock()
        let started = clock.now
        let clients = try (0..<25).map { _ in try Net.connect(proxy.port) }
        defer { for fd in clients { close(fd) } }
        let answers = try clients.map { String(decoding: try Net.readToEnd($0, timeoutMs: 10_000), as: UTF8.self) }
        let elapsed = clock.now - started
        #expect(answers.allSatisfy { $0 == "s\n" })
        #expect(server.accepted.load(ordering: .relaxed) == 25)
        // Ten in the first second, then as the sliding window frees room: well over a second in all.
        #expect(elapsed >= .milliseconds(1_200), "25 sessions at 10/s took only \(elapsed)")
    }

    /// `maxconnrate 10` / `maxsessrate 10` in global: 24 clients that connect at once to two
    /// frontends are all served, none refused, but no faster than ten a second over the process —
    /// on Sluice and on HAProxy 2.6 with the same file.
    @Test(arguments: ["maxconnrate", "maxsessrate"])
    func globalRateLimitsHoldClientsOfEveryFrontendInTheBacklogLikeHAProxy(keyword: String) throws {
        let server = try TestServer(.identify("s"))
        defer { server.stop() }
        func config(_ ports: [Int], _ socket: String) -> String {
            "global\n  \(keyword) 10\n  stats socket \(socket) level admin\n" + tcpDefaults()
                + "frontend a\n  bind 127.0.0.1:\(ports[0])\n  default_backend be\nfrontend b\n  bind 127.0.0.1:\(ports[1])\n  default_backend be\n"
                + "backend be\n  server s 127.0.0.1:\(server.port)\n"
        }
        func run(_ contender: String, _ ports: [Int]) throws -> Duration {
            let clock = ContinuousClock()
            let started = clock.now
            let clients = try (0..<24).map { try Net.connect(ports[$0 % 2]) }
            defer { for fd in clients { close(fd) } }
            // Each client's wait starts when the previous one is answered: 10 s each is far beyond 2.4 s in all.
            var unanswered: [String] = []
            for (k, fd) in clients.enumerated() {
                let answer = String(decoding: try Net.readToEnd(fd, timeoutMs: 10_000), as: UTF8.self)
                if answer != "s\n" { unanswered.append("client \(k) (frontend \(k % 2 == 0 ? "a" : "b")) got \(answer.debugDescription) after \(clock.now - started)") }
            }
            #expect(unanswered.isEmpty, "\(contender): \(unanswered)")
            return clock.now - started
        }
        let socket = RuntimeAPITests.socketPath()
        let proxy = try RunningProxy(config([0, 0], socket))
        defer { proxy.stop() }
        let elapsed = try run("sluice", ["a", "b"].map { proxy.balancer.listeningAddresses(of: $0)[0].port })
        // Ten in the first second, then as the sliding window frees room: well over a second in all.
        #expect(elapsed >= .milliseconds(1_200), "24 \(keyword == "maxconnrate" ? "connections" : "sessions") at 10/s took only \(elapsed)")
        let info = try StatsClient.ask(socket, "show info")
        #expect(info.contains(keyword == "maxconnrate" ? "\nConnRateLimit: 10\n" : "\nSessRateLimit: 10\n"), "\(info)")
        guard HAProxyProcess.requireInstalled() else { return }
        let ports = try [Net.closedPort(), Net.closedPort()]
        let haproxy = try HAProxyProcess(config: config(ports, RuntimeAPITests.socketPath()), port: ports[0])
        defer { haproxy.stop() }
        // HAProxy 2.6 serves every client too; its pace is not asserted: in CI its `maxsessrate`
        // once let all 24 through in 4 ms (its frequency counter, not Sluice, is what varies).
        _ = try run("haproxy", ports)
    }

    /// `tfo` on a server: the bytes a client sent before the proxy connected travel in the SYN to a
    /// server that takes TCP Fast Open (counted by the kernel's `TCPFastOpenPassive`), as HAProxy
    /// means it; without `tfo`, none do. `defer-accept` makes the client's bytes
    /// be there when the proxies connect.
    @Test(.enabled(if: getuid() == 0, "sets net.ipv4.tcp_fastopen"))
    func tfoCarriesTheClientsFirstBytesInTheSYNLikeHAProxy() throws {
        let sysctl = "/proc/sys/net/ipv4/tcp_fastopen"
        let saved = try String(contentsOfFile: sysctl, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try "3".write(toFile: sysctl, atomically: false, encoding: .utf8)  // client and server
        defer { try? saved.write(toFile: sysctl, atomically: false, encoding: .utf8) }
        let server = try TestServer(.identify("s"), fastOpen: true)
        defer { server.stop() }
        func config(_ port: Int, _ tfo: Bool) -> String {
            "\(tcpDefaults())frontend fe\n  bind 127.0.0.1:\(port) defer-accept\n  default_backend be\nbackend be\n  server s 127.0.0.1:\(server.port)\(tfo ? " tfo" : "")\n"
        }
        /// SYNs with data the server took, over four clients that speak first.
        func synsWithData(_ port: Int) throws -> Int {
            let before = try Self.netstat("TCPFastOpenPassive")
            for _ in 0..<4 {
                let fd = try Net.connect(port)
                defer { close(fd) }
                try Net.sendAll(fd, "hello")
                #expect(String(decoding: try Net.readToEnd(fd), as: UTF8.self) == "s\n")
            }
            return try Self.netstat("TCPFastOpenPassive") - before
        }
        for tfo in [true, false] {
            let proxy = try RunningProxy(config(0, tfo))
            let count = try synsWithData(proxy.port)
            proxy.stop()
            // The first connection may only fetch the server's cookie.
            #expect(tfo ? count >= 3 : count == 0, "sluice\(tfo ? " with tfo" : ""): \(count) SYNs with data")
        }
        // HAProxy 2.6 reads the file but never puts data in the SYN: it looks for pending data in
        // the response channel instead of the request's (fixed upstream by 933cb7646, "BUG/MINOR:
        // backend: inspect request not response buffer to check for TFO", 2025, marked for
        // backport to 2.6), so there is nothing to compare with here.
    }

    /// A `TcpExt` counter of /proc/net/netstat.
    static func netstat(_ name: String) throws -> Int {
        let lines = try String(contentsOfFile: "/proc/net/netstat", encoding: .utf8).split(separator: "\n").filter { $0.hasPrefix("TcpExt:") }
        guard lines.count == 2 else { throw Net.Failure("no TcpExt lines in /proc/net/netstat") }
        let (names, values) = (lines[0].split(separator: " "), lines[1].split(separator: " "))
        guard let k = names.firstIndex(where: { $0 == name }), let value = Int(values[k]) else { throw Net.Failure("no \(name) in /proc/net/netstat") }
        return value
    }

    @Test func sendProxyV1CarriesTheClientAddressThenTheClientsBytes() throws {
        let capture = try CaptureServer()
        let proxy = try RunningProxy(Self.proxy("server s 127.0.0.1:\(capture.port) send-proxy"))
        defer { proxy.stop() }
        let (bytes, clientPort) = try Self.received(through: proxy.port, capture: capture, headerLength: Self.v1Length)
        #expect(String(decoding: bytes, as: UTF8.self) == "PROXY TCP4 127.0.0.1 127.0.0.1 \(clientPort) \(proxy.port)\r\nhello")
    }

    @Test func sendProxyV2CarriesTheClientAddressInBinary() throws {
        let capture = try CaptureServer()
        let proxy = try RunningProxy(Self.proxy("server s 127.0.0.1:\(capture.port) send-proxy-v2"))
        defer { proxy.stop() }
        let (bytes, clientPort) = try Self.received(through: proxy.port, capture: capture, headerLength: Self.v2Length)
        let expected: [UInt8] = ProxyHeader.signature + [0x21, 0x11, 0, 12, 127, 0, 0, 1, 127, 0, 0, 1,
            UInt8(clientPort >> 8), UInt8(clientPort & 255), UInt8(proxy.port >> 8), UInt8(proxy.port & 255)] + Array("hello".utf8)
        #expect(bytes == expected)
    }

    /// HAProxy on the same configuration, in the same run: the server must receive the same bytes
    /// from both, but for the client's port.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/haproxy"), "needs haproxy (scripts/test installs it)"),
          arguments: ["send-proxy", "send-proxy-v2"])
    func theHeaderIsByteForByteWhatHAProxySends(parameter: String) throws {
        let capture = try CaptureServer()
        let port = try Net.closedPort()
        let config = Self.proxy("server s 127.0.0.1:\(capture.port) \(parameter)", port: port)
        let haproxy = try HAProxyProcess(config: config, port: port)
        let length = parameter == "send-proxy" ? Self.v1Length : Self.v2Length
        let fromHAProxy = try Self.received(through: port, capture: capture, headerLength: length)
        haproxy.stop()
        let proxy = try RunningProxy(Self.proxy("server s 127.0.0.1:\(capture.port) \(parameter)"))
        defer { proxy.stop() }
        let fromSluice = try Self.received(through: proxy.port, capture: capture, headerLength: length)
        func normalised(_ r: (bytes: [UInt8], clientPort: Int), listener: Int) -> String {
            String(decoding: r.bytes, as: UTF8.self).replacingOccurrences(of: "\(r.clientPort) \(listener)", with: "CPORT LPORT")
                + (parameter == "send-proxy" ? "" : r.bytes.prefix(24).map { String($0) }.joined(separator: ","))
        }
        if parameter == "send-proxy" {
            #expect(normalised(fromSluice, listener: proxy.port) == normalised(fromHAProxy, listener: port))
        } else {
            // Everything but the ports (bytes 24...27) is identical.
            #expect(fromSluice.bytes.prefix(24) == fromHAProxy.bytes.prefix(24))
            #expect(fromSluice.bytes.dropFirst(28) == fromHAProxy.bytes.dropFirst(28))
        }
    }

    /// `source`: server connections and health checks leave from that address — the backend's, or
    /// a server's own, which wins — as with HAProxy 2.6 on the same file; an address the host does
    /// not have fails the connect (and only that server's), the balancer goes on.
    @Test func sourceBindsServerConnectionsAndChecksLikeHAProxy() throws {
        let server = try TestServer(.peerAddress)
        defer { server.stop() }
        func config(_ port: Int) -> String {
            Self.proxy("server s 127.0.0.1:\(server.port) check inter 100ms", options: "  source 127.0.0.2", port: port)
        }
        func from(_ port: Int) throws -> String {
            let fd = try Net.connect(port)
            defer { close(fd) }
            return String(decoding: try Net.readToEnd(fd), as: UTF8.self)
        }
        let proxy = try RunningProxy(config(0))
        #expect(try from(proxy.port) == "127.0.0.2\n")
        let s = try #require(proxy.balancer.backend(named: "be")?.servers.first)
        try eventually("a health check passed from 127.0.0.2") { s.lastCheck.status == .layer4OK }
        proxy.stop()
        if FileManager.default.isExecutableFile(atPath: "/usr/sbin/haproxy") {
            let port = try Net.closedPort()
            let haproxy = try HAProxyProcess(config: config(port), port: port)
            defer { haproxy.stop() }
            #expect(try from(port) == "127.0.0.2\n", "HAProxy 2.6 binds differently")
        }
        // A server's own source wins over the backend's.
        let own = try RunningProxy(Self.proxy("server s 127.0.0.1:\(server.port) source 127.0.0.3", options: "  source 127.0.0.2"))
        #expect(try from(own.port) == "127.0.0.3\n")
        own.stop()
        // 192.0.2.1 (TEST-NET-1) is no address of this host: bind fails, the client is closed, and
        // the checks, which leave from there too, take the server DOWN.
        let unbound = try RunningProxy(Self.proxy("server s 127.0.0.1:\(server.port) check inter 100ms fall 1", options: "  source 192.0.2.1\n  retries 0"))
        defer { unbound.stop() }
        #expect(try from(unbound.port) == "")
        let down = try #require(unbound.balancer.backend(named: "be")?.servers.first)
        try eventually("checks from an address the host lacks fail") { down.operational == .stopped }
    }

    /// `tune.rcvbuf.*`/`tune.sndbuf.*`: the proxy's sockets toward the client and toward the server
    /// have the sizes asked for (`ss -m` shows them doubled, the kernel's bookkeeping share), the
    /// same as HAProxy 2.6's on the same file.
    @Test func socketBufferSizesAreSetOnClientAndServerSocketsLikeHAProxy() throws {
        let global = "global\n  tune.rcvbuf.client 16384\n  tune.sndbuf.client 24576\n  tune.rcvbuf.server 32768\n  tune.sndbuf.server 40960\n"
        /// (rb, tb) of the proxy's socket toward the client and toward the server.
        func sizes(_ port: Int, _ server: TestServer) throws -> [String] {
            let client = try Net.connect(port)
            defer { close(client) }
            try eventually("the server has the connection") { server.open.load(ordering: .relaxed) == 1 }
            // Each socket is two lines with -m: the addresses, then skmem:(r0,rb<n>,t0,tb<n>,…).
            func skmem(_ filter: String) throws -> String {
                let lines = try Self.ss(["-tmnH", "state", "established", filter])
                guard let line = lines.first(where: { $0.contains("skmem:") }) else { return "no socket for \(filter)" }
                let fields = line.split(whereSeparator: { "(),".contains($0) }).map(String.init)
                return fields.filter { $0.hasPrefix("rb") || $0.hasPrefix("tb") }.joined(separator: " ")
            }
            return [try skmem("sport = :\(port)"), try skmem("dport = :\(server.port)")]
        }
        let expected = ["rb32768 tb49152", "rb65536 tb81920"]
        let server = try TestServer(.holdOpen)
        defer { server.stop() }
        let proxy = try RunningProxy(global + Self.proxy("server s 127.0.0.1:\(server.port)"))
        #expect(try sizes(proxy.port, server) == expected)
        proxy.stop()
        if HAProxyProcess.requireInstalled() {
            let other = try TestServer(.holdOpen)
            defer { other.stop() }
            let port = try Net.closedPort()
            let haproxy = try HAProxyProcess(config: global + Self.proxy("server s 127.0.0.1:\(other.port)", port: port), port: port)
            defer { haproxy.stop() }
            #expect(try sizes(port, other) == expected, "HAProxy 2.6 sets them differently")
        }
    }

    /// `tcp-ut` on a server line: a server that stops taking data (its window stays shut) fails
    /// the connection within about a second of unacknowledged sending, and the session ends, where
    /// without it the session would wait for `timeout server` (10 s here). The same on HAProxy 2.6.
    @Test func serverUserTimeoutEndsASessionWhoseServerStopsTakingData() throws {
        // A server whose connections are never accepted: the kernel takes bytes until the window
        // closes, then nothing more (zero-window probes, which TCP_USER_TIMEOUT bounds).
        let listener = try Net.rawListener()
        defer { close(listener) }
        func config(_ port: Int) -> String { Self.proxy("server s 127.0.0.1:\(Net.localPort(listener)) tcp-ut 500ms", port: port) }
        /// Pushes bytes until the proxy stops taking them, then waits (up to 8 s) for it to end the session.
        func ended(_ port: Int) throws -> Bool {
            let fd = try Net.connect(port)
            defer { close(fd) }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            let chunk = [UInt8](repeating: 0x78, count: 65536)
            let clock = ContinuousClock()
            let end = clock.now + .seconds(8)
            var stalledSince: ContinuousClock.Instant?
            while clock.now < end {
                let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n < 0 && errno != EAGAIN { return true }  // reset by the proxy
                if n > 0 { stalledSince = nil; continue }
                if stalledSince == nil { stalledSince = clock.now }
                // Stalled: has the proxy closed its side?
                if Net.waitReadable(fd, timeoutMs: 100) {
                    var byte: UInt8 = 0
                    if recv(fd, &byte, 1, Int32(MSG_DONTWAIT)) <= 0 { return true }
                }
            }
            return false
        }
        let proxy = try RunningProxy(config(0))
        defer { proxy.stop() }
        #expect(try ended(proxy.port), "the session outlived tcp-ut")
        if HAProxyProcess.requireInstalled() {
            let port = try Net.closedPort()
            let haproxy = try HAProxyProcess(config: config(port), port: port)
            defer { haproxy.stop() }
            #expect(try ended(port), "HAProxy 2.6 kept the session")
        }
    }

    @Test func keepAliveProbesAreOnForClientAndServerSocketsWithTheConfiguredTiming() throws {
        let server = try TestServer(.holdOpen)
        defer { server.stop() }
        let proxy = try RunningProxy(Self.proxy("server s 127.0.0.1:\(server.port)",
            options: "  option tcpka\n  srvtcpka-idle 77s\n  srvtcpka-intvl 5s\n  srvtcpka-cnt 4").replacingOccurrences(of: "default_backend be", with: "default_backend be\n  option clitcpka\n  clitcpka-idle 66s"))
        defer { proxy.stop() }
        let client = try Net.connect(proxy.port)
        defer { close(client) }
        try eventually("the server has the connection") { server.open.load(ordering: .relaxed) == 1 }
        // ss shows the keep-alive timer of each socket: on the proxy's side of the client
        // connection (local port = the frontend's) and of the server connection (peer = server).
        // Fields: Recv-Q Send-Q Local Peer [timer]
        let sockets = try Self.ss().map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        let clientSide = sockets.first { $0.count > 3 && $0[2] == "127.0.0.1:\(proxy.port)" && $0[3] == "127.0.0.1:\(Net.localPort(client))" }
        let serverSide = sockets.first { $0.count > 3 && $0[3] == "127.0.0.1:\(server.port)" }
        let clientTimer = clientSide?.dropFirst(4).joined(separator: " ") ?? "no client-side socket"
        let serverTimer = serverSide?.dropFirst(4).joined(separator: " ") ?? "no server-side socket"
        // 66 s and 77 s idle, counting down: ss prints e.g. "timer:(keepalive,1min5sec,0)".
        #expect(clientTimer.hasPrefix("timer:(keepalive,1min5") || clientTimer.hasPrefix("timer:(keepalive,1min6"), "\(clientTimer)")
        #expect(serverTimer.hasPrefix("timer:(keepalive,1min16") || serverTimer.hasPrefix("timer:(keepalive,1min17"), "\(serverTimer)")
    }

    static func ss(_ arguments: [String] = ["-tnoH", "state", "established"]) throws -> [String] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/ss")
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        waitForExit(p, deadline: .seconds(10))
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// The server ends first: normally the client's side stays half-open until the client closes
    /// too; with `option nolinger` the proxy closes it at once, with a reset (HAProxy's meaning:
    /// a shut side is closed, not half-closed).
    @Test(arguments: [false, true])
    func noLingerClosesAShutSideAtOnceWithAReset(noLinger: Bool) throws {
        // The server is the test's own listener: it answers once the client's connect has returned
        // (a server answering at once could have the reset reach the client inside its connect).
        let listener = try Net.rawListener()
        defer { close(listener) }
        let proxy = try RunningProxy(Self.proxy("server s 127.0.0.1:\(Net.localPort(listener))")
            .replacingOccurrences(of: "default_backend be", with: "default_backend be\n" + (noLinger ? "  option nolinger" : "")))
        defer { proxy.stop() }
        let client = try Net.connect(proxy.port)
        defer { close(client) }
        let server = accept(listener, nil, nil)
        #expect(server >= 0)
        try Net.sendAll(server, "bye\n")
        close(server)
        #expect(try Net.read(client, count: 4) == Array("bye\n".utf8))
        if noLinger {
            try eventually("the session ends while the client is still open") { proxy.balancer.currentSessions == 0 }
            var byte: UInt8 = 0
            var result = 0
            try eventually("the client sees the reset") {
                result = recv(client, &byte, 1, Int32(MSG_DONTWAIT))
                return result <= 0 && !(result < 0 && errno == EAGAIN)
            }
            #expect(result < 0 && errno == ECONNRESET)
        } else {
            #expect(try Net.readToEnd(client).isEmpty)  // the forwarded FIN
            #expect(proxy.balancer.currentSessions == 1, "half-open until the client closes")
        }
    }

    /// A client that only receives: its inactivity timeout is refreshed by what it is sent,
    /// unless `option independent-streams`, which counts only what the client sends. Then, as in
    /// HAProxy 2.6 (checked by hand: the same bytes and FIN), the silent client's timeout shuts its
    /// side: the server gets a FIN, and what it still sends reaches the client.
    @Test(arguments: [false, true])
    func independentStreamsCountsOnlyWhatTheClientSends(independent: Bool) throws {
        let capture = try CaptureServer()
        let config = Self.proxy("server s 127.0.0.1:\(capture.port)")
            .replacingOccurrences(of: "timeout client 10s", with: "timeout client 400ms")
            .replacingOccurrences(of: "default_backend be", with: "default_backend be\n" + (independent ? "  option independent-streams" : ""))
        let proxy = try RunningProxy(config)
        defer { proxy.stop() }
        let client = try Net.connect(proxy.port)
        defer { close(client) }
        let server = try capture.accept()
        defer { close(server) }
        // The server sends a byte every 100 ms for 1.2 s; the client never sends anything.
        var received = 0
        var serverGotFin = false
        for _ in 0..<12 {
            _ = send(server, "x", 1, Int32(MSG_NOSIGNAL))
            usleep(100_000)
            var buffer = [UInt8](repeating: 0, count: 16)
            while Net.waitReadable(client, timeoutMs: 0) {
                let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                received += n
            }
            if !serverGotFin && Net.waitReadable(server, timeoutMs: 0) {
                serverGotFin = buffer.withUnsafeMutableBytes { recv(server, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) } == 0
            }
        }
        #expect(received == 12)
        #expect(proxy.balancer.currentSessions == 1)
        #expect(serverGotFin == independent, "the client's timeout \(independent ? "did not shut" : "shut") its side")
    }

    /// `bind <addr>:<low>-<high>` listens on every port of the range, and `ipv4@`/`ipv6@` prefixes
    /// name the family, as HAProxy reads them (the same file passes `haproxy -c`).
    @Test func bindPortRangesAndFamilyPrefixesListenAsHAProxy() throws {
        func errors(_ text: String) -> [String] {
            do {
                _ = try Configuration.parse(text, file: "t.cfg")
                return []
            } catch {
                return error.errors.map(\.description)
            }
        }
        var low = 0
        for _ in 0..<100 {
            let p = try Net.closedPort()
            if p + 2 <= 65535 && Net.isFree(p + 1) && Net.isFree(p + 2) { low = p; break }
        }
        try #require(low > 0, "no three free ports in a row")
        let server = try TestServer(.identify("s"))
        defer { server.stop() }
        let proxy = try RunningProxy(Self.proxy("server s ipv4@127.0.0.1:\(server.port)")
            .replacingOccurrences(of: "bind 127.0.0.1:0", with: "bind ipv4@127.0.0.1:\(low)-\(low + 2)"))
        defer { proxy.stop() }
        for port in low...(low + 2) {
            let fd = try Net.connect(port)
            defer { close(fd) }
            #expect(String(decoding: try Net.readToEnd(fd), as: UTF8.self) == "s\n", "port \(port)")
        }
        #expect(errors("frontend f\n  bind 127.0.0.1:90-80\n").first == "t.cfg:2: error: [frontend 'f'] 'bind': '127.0.0.1:90-80': a port range is <low>-<high>, from 1 to 65535, low first")
        #expect(errors("frontend f\n  bind ipv4@::1:80\n").first == "t.cfg:2: error: [frontend 'f'] 'bind': 'ipv4@::1:80': ::1 is not an IPv4 address")
    }

    /// `bind … maxconn 2`: a third client waits in the backlog until one of the first two leaves.
    @Test func bindMaxconnHoldsTheRestInTheBacklog() throws {
        let server = try TestServer(.silent)
        defer { server.stop() }
        let proxy = try RunningProxy("global\n  nbthread 2\n" + Self.proxy("server s 127.0.0.1:\(server.port)")
            .replacingOccurrences(of: "bind 127.0.0.1:0", with: "bind 127.0.0.1:0 maxconn 2"))
        defer { proxy.stop() }
        var clients = try (0..<3).map { _ in try Net.connect(proxy.port) }
        defer { for fd in clients where fd >= 0 { close(fd) } }
        try eventually("two sessions reach the server") { server.open.load(ordering: .relaxed) == 2 }
        // The third must not be accepted while two are open (watched for 300 ms).
        #expect(throws: Net.Failure.self) {
            try eventually(timeout: .milliseconds(300), "a third session") { server.accepted.load(ordering: .relaxed) > 2 }
        }
        close(clients[0])
        clients[0] = -1
        try eventually("the third is served once a slot frees") { server.accepted.load(ordering: .relaxed) == 3 }
    }

    @Test func abortOnCloseDropsAClientThatLeftBeforeItsServerConnectionWasMade() throws {
        // A black-holed server address: the connect hangs until timeout connect.
        let proxy = try RunningProxy(Self.proxy("server s 192.0.2.1:9 ", options: "  option abortonclose\n  timeout connect 30s"))
        defer { proxy.stop() }
        let client = try Net.connect(proxy.port)
        try eventually("the session is connecting") { proxy.balancer.currentSessions == 1 }
        close(client)
        try eventually("the session is dropped without waiting for timeout connect") { proxy.balancer.currentSessions == 0 }
    }

    @Test func initAddrNoneStartsAnUnresolvableServerInMaintenanceUntilItGetsAnAddress() throws {
        let server = try TestServer(.identify("late"))
        defer { server.stop() }
        let proxy = try RunningProxy(Self.proxy("server s no-such-host.invalid:\(server.port) init-addr none"))
        defer { proxy.stop() }
        let s = try #require(proxy.balancer.backend(named: "be")?.server(named: "s"))
        #expect(s.admin == .maintenance)
        #expect(proxy.balancer.runtimeReply("set server be/s addr 127.0.0.1") == "IP changed from '0.0.0.0' to '127.0.0.1' by 'stats socket command'\n\n")
        #expect(s.admin == .ready)
        let fd = try Net.connect(proxy.port)
        defer { close(fd) }
        #expect(try Net.readToEnd(fd) == Array("late\n".utf8))
    }

    /// `init-addr` is for names: a server written as an IP address has it from the start, even with
    /// `init-addr none` (HAProxy iterates the methods only for a server with a host name); Sluice
    /// used to leave it in maintenance.
    @Test func aServerWrittenAsAnAddressIgnoresInitAddr() throws {
        let server = try TestServer(.identify("literal"))
        defer { server.stop() }
        let proxy = try RunningProxy(Self.proxy("server s 127.0.0.1:\(server.port) init-addr none"))
        defer { proxy.stop() }
        #expect(proxy.balancer.backend(named: "be")?.server(named: "s")?.admin == .ready)
        let fd = try Net.connect(proxy.port)
        defer { close(fd) }
        #expect(try Net.readToEnd(fd) == Array("literal\n".utf8))
    }

    @Test func nodeAndDescriptionAreShownByShowInfo() throws {
        let proxy = try RunningProxy("global\n  node lb-7\n  description edge balancer\n" + Self.proxy("server s 127.0.0.1:1"))
        defer { proxy.stop() }
        let info = proxy.balancer.runtimeReply("show info")
        #expect(info.contains("\nnode: lb-7\n"))
        #expect(info.contains("\ndescription: edge balancer\n"))
    }

    @Test func everyUnresolvableServerIsReportedInOneRun() throws {
        let config = try Configuration.parse(Self.proxy("server a no-such-host-a.invalid:80\n  server b no-such-host-b.invalid:80\n  server c 127.0.0.1:80 init-addr last,10.1.2.3")).configuration
        do {
            _ = try LoadBalancer(configuration: config)
            Issue.record("an unresolvable server was accepted")
        } catch {
            #expect(error.message.contains("server 'a': cannot resolve no-such-host-a.invalid:80"))
            #expect(error.message.contains("server 'b': cannot resolve no-such-host-b.invalid:80"))
            #expect(!error.message.contains("server 'c'"))
        }
        // `init-addr last` with nothing saved is no failure of its own: the next method runs (no
        // warning for `last,none`), and alone it is HAProxy's "no method found".
        let lastOnly = try Configuration.parse(Self.proxy("server d no-such-host-d.invalid:80 init-addr last\n  server e no-such-host-e.invalid:80 init-addr last,none")).configuration
        do {
            _ = try LoadBalancer(configuration: lastOnly)
            Issue.record("init-addr last with nothing saved was accepted")
        } catch {
            #expect(error.message == "backend 'be' server 'd': no method found to resolve address 'no-such-host-d.invalid' (init-addr last)")
        }
        let waits = try LoadBalancer(configuration: Configuration.parse(Self.proxy("server e no-such-host-e.invalid:80 init-addr last,none")).configuration)
        #expect(waits.startupNotices.isEmpty, "\(waits.startupNotices)")
    }

    @Test func aServerWithoutAPortGetsTheClientsDestinationPort() throws {
        let server = try TestServer(.identify("same-port"))
        defer { server.stop() }
        // The frontend listens on the server's port on another loopback address.
        let proxy = try RunningProxy(Self.proxy("server s 127.0.0.1", port: server.port).replacingOccurrences(of: "bind 127.0.0.1:", with: "bind 127.0.0.2:"))
        defer { proxy.stop() }
        var a = Net.address(server.port)
        a.sin_addr.s_addr = inet_addr("127.0.0.2")
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(r == 0)
        #expect(try Net.readToEnd(fd) == Array("same-port\n".utf8))
    }
}
}

/// HAProxy itself on a configuration, for side-by-side behaviour.
final class HAProxyProcess {
    /// Whether HAProxy is installed; a test that compares with it records an issue when it is not
    /// (scripts/test installs it).
    static func requireInstalled(sourceLocation: Testing.SourceLocation = #_sourceLocation) -> Bool {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/haproxy") else {
            Issue.record("HAProxy is not installed (scripts/test installs it)", sourceLocation: sourceLocation)
            return false
        }
        return true
    }

    let process = Process()
    /// The port it was started on.
    let port: Int

    init(config: String, port: Int) throws {
        self.port = port
        let path = try Loopback.CommandLineTests.write(config, name: "haproxy.cfg")
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/haproxy")
        process.arguments = ["-db", "-f", path]
        let log = path + ".log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        // Listening, as ss sees it: a probe connection would reach the server.
        try eventually("haproxy listens on \(port)") {
            guard process.isRunning else {
                throw Net.Failure("haproxy exited with \(process.terminationStatus): \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            }
            return try !Loopback.LayerFourOptionsTests.ss(["-ltnH", "sport = :\(port)"]).isEmpty
        }
    }

    func stop() {
        if process.isRunning { process.terminate() }
        waitForExit(process)
    }

    deinit { stop() }
}

/// HAProxy or Sluice on one configuration, for the side-by-side tests: HAProxy gets a free fixed
/// port (it cannot tell which one the kernel picked), Sluice port 0; `port` is where it listens.
final class Contender {
    let port: Int
    let haproxy: HAProxyProcess?
    let sluice: RunningProxy?

    init(haproxy: Bool, _ config: (_ port: Int) -> String) throws {
        if haproxy {
            let fixed = try Net.closedPort()
            let process = try HAProxyProcess(config: config(fixed), port: fixed)
            (self.haproxy, sluice, port) = (process, nil, fixed)
        } else {
            let proxy = try RunningProxy(config(0))
            (self.haproxy, sluice, port) = (nil, proxy, proxy.port)
        }
    }

    var name: String { haproxy != nil ? "haproxy" : "sluice" }

    func stop() {
        haproxy?.stop()
        sluice?.stop()
    }
}
