import Foundation
import Synchronization
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// Peers that misbehave, against the `sluice` process: silent and slow clients, a client that never
/// reads while its server floods it, servers that never read or never answer, resets in the middle
/// of transfers, a burst far beyond `maxconn`, and a flood of garbage on the runtime socket. After
/// each, the process's sockets return to their count before it (pipes may stay pooled, up to the
/// pool's bound), and forwarding still works.
extension Loopback {
@Suite(.serialized) struct HostilePeerTests {
    /// A running `sluice` with short timeouts in front of `backend`.
    final class Stand {
        let sluice: SluiceProcess
        let port: Int
        let socketPath: String
        /// Sockets open in the process once started with no session open (their inodes: the
        /// process may also hold sockets it inherited from the test process).
        private(set) var baseline: Set<String> = []

        init(servers: String, global: String = "", frontend: String = "", timeouts: String = "1s") throws {
            port = try Net.closedPort()
            socketPath = Loopback.RuntimeAPITests.socketPath()
            let path = try CommandLineTests.write("""
                global
                  stats socket \(socketPath) level admin
                  stats timeout 2s
                \(global)
                defaults
                  mode tcp
                  timeout connect 1s
                  timeout client \(timeouts)
                  timeout server \(timeouts)
                  timeout client-fin \(timeouts)
                  timeout server-fin \(timeouts)
                frontend fe
                  bind 127.0.0.1:\(port)
                \(frontend)
                  default_backend be
                backend be
                \(servers)

                """)
            sluice = try SluiceProcess(configPath: path, listenPort: port)
            baseline = try eventuallyStable()
        }

        /// The sockets (by inode) and the number of pipe ends open in the process now.
        var descriptors: (sockets: Set<String>, pipes: Int) {
            let dir = "/proc/\(sluice.process.processIdentifier)/fd"
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            var sockets: Set<String> = [], pipes = 0
            for entry in entries {
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/" + entry) else { continue }
                if target.hasPrefix("socket:") { sockets.insert(target) } else if target.hasPrefix("pipe:") { pipes += 1 }
            }
            return (sockets, pipes)
        }

        /// The sockets once no session is open (the start-up probe's session gone).
        private func eventuallyStable() throws -> Set<String> {
            try eventually("no session open") {
                ((try? StatsClient.ask(socketPath, "show info")) ?? "").contains("\nCurrConns: 0\n")
            }
            return descriptors.sockets
        }

        /// Waits until the sockets are back to the baseline, and the pipes within the pools' bound
        /// (64 kept per reactor, two descriptors each).
        func expectBackToBaseline(_ what: String, timeout: Duration = .seconds(15), sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
            try eventually(timeout: timeout, "\(what): sockets back to the \(baseline.count) before (now \(descriptors.sockets.count))") {
                descriptors.sockets.isSubset(of: baseline)
            }
            #expect(descriptors.pipes <= 128, "pipes stay within the pool's bound", sourceLocation: sourceLocation)
            #expect(sluice.process.isRunning, sourceLocation: sourceLocation)
        }

        /// One echo round trip through the proxy.
        func echoes() throws -> Bool {
            let fd = try Net.connect(port)
            defer { close(fd) }
            try Net.sendAll(fd, "ping\n")
            shutdown(fd, Int32(SHUT_WR))
            return try Net.readToEnd(fd) == Array("ping\n".utf8)
        }

        /// Connections accepted on the frontend's port whose socket is still established. A closed
        /// socket leaves that state even with bytes it could not send (it is then the kernel's,
        /// with no descriptor); one that stays established after its session closed is still
        /// referenced, e.g. by an io_uring poll never removed, and would be kept for good.
        var establishedOnFrontend: Int {
            let port = String(format: ":%04X", self.port)
            let table = (try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)) ?? ""
            return table.split(separator: "\n").dropFirst().filter { line in
                let fields = line.split(separator: " ")
                return fields.count > 3 && fields[1].hasSuffix(port) && fields[3] == "01"
            }.count
        }

        var residentKiB: Int {
            let status = (try? String(contentsOfFile: "/proc/\(sluice.process.processIdentifier)/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
            return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") ?? 0
        }

        func stop() { _ = sluice.stop() }
    }

    static func reset(_ fd: CInt) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(fd)
    }

    /// Clients that send nothing, and clients that send a byte every 300 ms: the silent ones are
    /// closed by `timeout client`, the slow ones live while they send (each byte is forwarded) and
    /// are closed once they stop.
    @Test func silentAndSlowClientsLiveByTheirTimeouts() throws {
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let stand = try Stand(servers: "  server s1 127.0.0.1:\(echo.port)")
        defer { stand.stop() }
        let silent = try (0..<50).map { _ in try Net.connect(stand.port) }
        let slow = try (0..<10).map { _ in try Net.connect(stand.port) }
        defer { for fd in silent + slow { close(fd) } }
        for round in 0..<6 {
            for fd in slow { try Net.sendAll(fd, [UInt8(ascii: "a") + UInt8(round)]) }
            for fd in slow { #expect(try Net.read(fd, count: 1) == [UInt8(ascii: "a") + UInt8(round)]) }
            usleep(300_000)  // the client's pace is the test's subject, not a synchronisation
        }
        // 1.8 s have passed: the silent clients' sessions were closed after their 1 s.
        for fd in silent { #expect(try Net.readToEnd(fd, timeoutMs: 3_000, resetEnds: true).isEmpty) }
        // The slow ones stop sending; their sessions end by the same timeout.
        for fd in slow { #expect(try Net.readToEnd(fd, timeoutMs: 3_000, resetEnds: true).isEmpty) }
        try stand.expectBackToBaseline("silent and slow clients")
        #expect(try stand.echoes())
    }

    /// Forwarding with pipes (the default), and with `nosplice`, where every byte is copied through
    /// a buffer and what the destination cannot take waits in the session's leftover buffer.
    static let forwardingPaths = ["", "  nosplice"]

    /// A server that sends without end to clients that never read: Sluice holds at most its pipes'
    /// (or one copy buffer's) worth per session (no memory grows with what the server would send),
    /// and `timeout client` ends each session.
    @Test(arguments: forwardingPaths)
    func clientsThatNeverReadAFloodingServerCostBoundedMemoryAndTimeOut(global: String) throws {
        let flood = try FloodServer()
        defer { flood.stop() }
        let stand = try Stand(servers: "  server s1 127.0.0.1:\(flood.port)", global: global)
        defer { stand.stop() }
        let before = stand.residentKiB
        let clients = try (0..<10).map { _ in try Net.connect(stand.port) }
        defer { for fd in clients { close(fd) } }
        try eventually("the flood fills every path") { flood.sent.load(ordering: .relaxed) >= 10 << 20 }
        let grown = stand.residentKiB - before
        #expect(grown < 64 << 10, "resident memory grew \(grown) KiB for 10 stalled sessions")
        try stand.expectBackToBaseline("stalled readers")
        try eventually("the stalled sessions' client sockets were closed, not kept open by the process") { stand.establishedOnFrontend == 0 }
        #expect(flood.sent.load(ordering: .relaxed) < 400 << 20, "the flood stopped when the sessions did")
    }

    /// A server whose listener nobody accepts from (the kernel completes the handshake, nobody
    /// reads) and a server that reads but never answers: clients that send to them are closed by
    /// `timeout server`, never left hanging.
    @Test func serversThatNeverReadOrNeverAnswerAreClosedByTheirTimeout() throws {
        let deaf = try Net.listenerNeverAccepting()
        defer { close(deaf.fd) }
        let mute = try TestServer(.silent)
        defer { mute.stop() }
        let stand = try Stand(servers: "  server deaf 127.0.0.1:\(deaf.port)\n  server mute 127.0.0.1:\(mute.port)")
        defer { stand.stop() }
        let payload = [UInt8](repeating: 0x5A, count: 256 << 10)
        let clients = try (0..<20).map { _ in try Net.connect(stand.port) }
        defer { for fd in clients { close(fd) } }
        for fd in clients {
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            _ = payload.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            _ = fcntl(fd, F_SETFL, 0)
        }
        for fd in clients { #expect(try Net.readToEnd(fd, timeoutMs: 5_000, resetEnds: true).isEmpty) }
        try stand.expectBackToBaseline("deaf and mute servers")
        // The server's thread sees the close a moment after Sluice made it.
        try eventually("the server's side was closed too") { mute.open.load(ordering: .relaxed) == 0 }
    }

    /// Resets in the middle of a bulk transfer, from clients and from a server: every descriptor
    /// and pipe of those sessions is released.
    @Test(arguments: forwardingPaths)
    func resetsMidTransferFromEitherSideReleaseEverything(global: String) throws {
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let rude = try ResettingServer(after: 64 << 10)
        defer { rude.stop() }
        let stand = try Stand(servers: "  server s1 127.0.0.1:\(echo.port)", global: global, timeouts: "10s")
        defer { stand.stop() }
        let chunk = [UInt8](repeating: 0xA5, count: 64 << 10)
        for _ in 0..<20 {
            let fd = try Net.connect(stand.port)
            for _ in 0..<8 { try Net.sendAll(fd, chunk) }
            _ = try Net.read(fd, count: 64 << 10)
            Self.reset(fd)
        }
        try stand.expectBackToBaseline("client resets")
        #expect(try stand.echoes())

        let other = try Stand(servers: "  server s1 127.0.0.1:\(rude.port)", global: global, timeouts: "10s")
        defer { other.stop() }
        for _ in 0..<20 {
            let fd = try Net.connect(other.port)
            defer { close(fd) }
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            for _ in 0..<8 { _ = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
            _ = fcntl(fd, F_SETFL, 0)
            _ = try Net.readToEnd(fd, timeoutMs: 5_000, resetEnds: true)
        }
        try other.expectBackToBaseline("server resets")
    }

    /// Half-open sessions: the client sends its request and its FIN, then neither reads nor closes;
    /// the server keeps its side open and never answers. `timeout client-fin`/`server-fin` end them.
    @Test func halfOpenSessionsEndByTheirFinTimeouts() throws {
        let holder = try TestServer(.holdOpen)
        defer { holder.stop() }
        let stand = try Stand(servers: "  server s1 127.0.0.1:\(holder.port)", timeouts: "1s")
        defer { stand.stop() }
        let clients = try (0..<20).map { _ in try Net.connect(stand.port) }
        defer { for fd in clients { close(fd) } }
        for fd in clients {
            try Net.sendAll(fd, "request\n")
            shutdown(fd, Int32(SHUT_WR))
        }
        // (The holding server keeps even the connections Sluice has closed: it counts them all.)
        try eventually("the server holds every session") { holder.accepted.load(ordering: .relaxed) >= 20 }
        for fd in clients { #expect(try Net.readToEnd(fd, timeoutMs: 5_000, resetEnds: true).isEmpty, "the client's side is closed") }
        try stand.expectBackToBaseline("half-open sessions")
    }

    /// 10,000 clients at once in front of `maxconn 50`: the rest wait in the backlog (or retry
    /// their SYN) and every one is served in turn; nothing is left open afterwards.
    @Test func aBurstFarBeyondMaxconnIsServedInTurn() throws {
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let stand = try Stand(servers: "  server s1 127.0.0.1:\(echo.port)", frontend: "  maxconn 50\n  backlog 4096", timeouts: "30s")
        defer { stand.stop() }
        let result = try EchoSwarm.run(port: stand.port, connections: 10_000, payload: { _ in 512 })
        #expect(result.completed == 10_000 && result.mismatched == 0, "\(result.failed.prefix(5))")
        try stand.expectBackToBaseline("the burst")
    }

    /// Hundreds of connections writing garbage to the runtime socket: they get error replies or
    /// are closed, forwarding goes on meanwhile, and the socket answers again afterwards.
    @Test func aGarbageFloodOnTheRuntimeSocketDoesNotStopForwarding() throws {
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let stand = try Stand(servers: "  server s1 127.0.0.1:\(echo.port)", global: "  stats maxconn 50")
        defer { stand.stop() }
        var generator = SystemRandomNumberGenerator()
        var flood: [CInt] = []
        for _ in 0..<300 {
            guard let fd = try? StatsClient.connect(stand.socketPath) else { continue }
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            let garbage = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = garbage.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            flood.append(fd)
        }
        defer { for fd in flood { close(fd) } }
        for _ in 0..<50 { #expect(try stand.echoes()) }
        for fd in flood { close(fd) }
        flood.removeAll()
        try eventually("the runtime socket answers again") {
            ((try? StatsClient.ask(stand.socketPath, "show info")) ?? "").contains("Name: Sluice")
        }
        try stand.expectBackToBaseline("the runtime-socket flood")
    }
}
}

/// A loopback listener that hands each accepted connection to `serve` (on the accepting thread,
/// or on a thread of its own when `threadPerConnection`), until `stop()`.
class AcceptingServer: @unchecked Sendable {
    let port: Int
    let stopping = Atomic<Bool>(false)
    private let listener: CInt
    private var thread: Thread?

    init(threadPerConnection: Bool, serve: @escaping @Sendable (AcceptingServer, CInt) -> Void) throws {
        _ = pipeSignalIgnored
        (listener, port) = try Net.listener()
        thread = Thread { [self] in
            while !stopping.load(ordering: .relaxed) {
                guard Net.waitReadable(listener, timeoutMs: 50) else { continue }
                let fd = accept(listener, nil, nil)
                guard fd >= 0 else { continue }
                if threadPerConnection { Thread { serve(self, fd) }.start() } else { serve(self, fd) }
            }
        }
        thread?.start()
    }

    func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        while thread?.isFinished == false { usleep(10_000) }
        close(listener)
    }
}

/// Writes 64 KiB chunks to every connection until that fails (the peer is gone).
final class FloodServer: AcceptingServer, @unchecked Sendable {
    let sent = Atomic<Int>(0)

    init() throws {
        try super.init(threadPerConnection: true) { server, fd in
            guard let flood = server as? FloodServer else { return }
            let chunk = [UInt8](repeating: 0x42, count: 64 << 10)
            var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            while !flood.stopping.load(ordering: .relaxed) {
                let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n > 0 { flood.sent.add(n, ordering: .relaxed) } else if n < 0 && errno != EAGAIN && errno != EINTR { break }
            }
            close(fd)
        }
    }
}

/// Reads `after` bytes from each connection, then resets it.
final class ResettingServer: AcceptingServer, @unchecked Sendable {
    init(after: Int) throws {
        try super.init(threadPerConnection: false) { _, fd in
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            var got = 0
            while got < after, Net.waitReadable(fd, timeoutMs: 2_000) {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n <= 0 { break }
                got += n
            }
            Loopback.HostilePeerTests.reset(fd)
        }
    }
}

extension Net {
    /// A listening socket on 127.0.0.1 with a kernel-chosen port.
    static func listener(backlog: Int32 = 1024) throws -> (fd: CInt, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = address(0)
        guard withUnsafePointer(to: &a, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) == 0,
              listen(fd, backlog) == 0 else {
            close(fd)
            throw Failure("listener: \(String(cString: strerror(errno)))")
        }
        return (fd, localPort(fd))
    }

    /// A listener nobody ever accepts from: connections complete in the kernel and are never read.
    static func listenerNeverAccepting() throws -> (fd: CInt, port: Int) { try listener(backlog: 4096) }
}
