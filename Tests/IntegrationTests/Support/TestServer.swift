import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A real TCP server on 127.0.0.1, on its own thread, for the proxy to forward to.
/// One poll(2) loop serves every connection, so a thousand sessions need one thread.
final class TestServer: @unchecked Sendable {
    enum Behavior: Sendable {
        /// Writes back everything it reads; after the client's FIN and the last byte, sends FIN.
        case echo
        /// Sends its name and a newline, then FIN; reads until the client's FIN.
        case identify(String)
        /// Sends `greeting`, then FIN at once; keeps reading what the client still sends (kept in `received`).
        case halfCloseFirst(String)
        /// Reads and discards; never writes; closes when the client does.
        case silent
        /// Reads and discards; never writes; keeps its side open even after the client's FIN.
        case holdOpen
        /// An HTTP/1.x server: `GET /alive` answers `alive` (200 or 503, settable); anything else
        /// answers 200 with the name as body. One request per connection.
        case http(String)
        /// Answers any request with the start of a status line, then closes.
        case partialHTTP
        /// Answers each `PING` with `reply` (a Redis-like health endpoint).
        case pong(String)
        /// Sends the address the connection came from (`getpeername`) and a newline, then FIN; keeps
        /// `ip:port` of every connection in `peers`.
        case peerAddress
        /// Reads until the client's FIN, then sends `reply` and FIN (a late answer).
        case answerAtEnd(String)
        /// An agent-check agent: sends `agentReply` as it is at the accept, then FIN; keeps what
        /// the client sends in `received`.
        case agent
    }

    let port: Int
    let behavior: Behavior
    private let listener: CInt
    private var wake: [CInt] = [-1, -1]
    private var thread = pthread_t()
    /// Connections accepted so far.
    let accepted = Atomic<Int>(0)
    /// Connections open now.
    let open = Atomic<Int>(0)
    /// Most connections ever open at once.
    let peakOpen = Atomic<Int>(0)
    /// Bytes received after our FIN, in `halfCloseFirst` mode.
    let received = Mutex<[UInt8]>([])
    /// `ip:port` of each connection accepted, in `peerAddress` mode.
    let peers = Mutex<[String]>([])
    /// What an `agent` sends to each connection.
    let agentReply = Mutex("up\n")
    /// The status `GET /alive` answers, in `http` mode.
    let alive = Atomic<Int>(200)
    /// Requests for `/alive` served, in `http` mode.
    let aliveRequests = Atomic<Int>(0)

    private struct Connection {
        var fd: CInt
        var out: [UInt8] = []
        var outOffset = 0
        var readClosed = false
        var finSent = false
        var request: [UInt8] = []
        var answered = false
    }

    /// `port` 0: the kernel picks one; another: that port (to bring a "restarted" server back).
    /// `host`: the loopback address it listens on (DNS tests give each server its own).
    /// `fastOpen`: the listener accepts data in SYNs (`TCP_FASTOPEN`).
    init(_ behavior: Behavior, port requested: Int = 0, host: String = "127.0.0.1", fastOpen: Bool = false) throws {
        _ = pipeSignalIgnored
        self.behavior = behavior
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: CInt = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        var a = Net.address(requested, host: host)
        let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var queue: CInt = 64
        if fastOpen { setsockopt(fd, Int32(IPPROTO_TCP), TCP_FASTOPEN, &queue, socklen_t(MemoryLayout<CInt>.size)) }
        guard r == 0, listen(fd, 4096) == 0 else { throw Net.Failure("test server bind/listen: \(String(cString: strerror(errno)))") }
        listener = fd
        port = Net.localPort(fd)
        start()
    }

    /// The same server on a UNIX socket file at `unixPath` (`port` is 0).
    init(_ behavior: Behavior, unixPath: String) throws {
        _ = pipeSignalIgnored
        self.behavior = behavior
        unlink(unixPath)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_un()
        a.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &a.sun_path) { $0.copyBytes(from: Array(unixPath.utf8)) }
        let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard r == 0, listen(fd, 4096) == 0 else { throw Net.Failure("test server bind/listen \(unixPath): \(String(cString: strerror(errno)))") }
        listener = fd
        port = 0
        start()
    }

    private func start() {
        _ = fcntl(listener, F_SETFL, O_NONBLOCK)
        _ = pipe(&wake)
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { arg in
            let server = Unmanaged<TestServer>.fromOpaque(arg!).takeRetainedValue()
            server.loop()
            return nil
        }, box)
    }

    /// Stops the loop, closes every connection and the listener.
    func stop() {
        guard wake[1] >= 0 else { return }
        var b: UInt8 = 1
        _ = write(wake[1], &b, 1)
        pthread_join(thread, nil)
        close(wake[1])
        close(wake[0])
        wake = [-1, -1]
    }

    deinit { stop() }

    private func loop() {
        var conns: [Connection] = []
        var buf = [UInt8](repeating: 0, count: 256 * 1024)
        while true {
            var fds = [pollfd(fd: wake[0], events: Int16(POLLIN), revents: 0)]
            fds.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0))
            for c in conns {
                var ev = Int16(POLLIN)
                if c.outOffset < c.out.count { ev |= Int16(POLLOUT) }
                fds.append(pollfd(fd: c.fd, events: ev, revents: 0))
            }
            let n = poll(&fds, nfds_t(fds.count), -1)
            if n < 0 { continue }
            if fds[0].revents != 0 { break }
            let polled = conns.count  // connections accepted below are polled from the next turn
            if fds[1].revents != 0 {
                while true {
                    let fd = accept(listener, nil, nil)
                    if fd < 0 { break }
                    _ = fcntl(fd, F_SETFL, O_NONBLOCK)
                    var one: CInt = 1
                    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<CInt>.size))
                    accepted.wrappingAdd(1, ordering: .relaxed)
                    let now = open.wrappingAdd(1, ordering: .relaxed).newValue
                    if now > peakOpen.load(ordering: .relaxed) { peakOpen.store(now, ordering: .relaxed) }
                    var c = Connection(fd: fd)
                    switch behavior {
                    case .identify(let name): c.out = Array((name + "\n").utf8)
                    case .agent: c.out = Array(agentReply.withLock { $0 }.utf8)
                    case .halfCloseFirst(let greeting): c.out = Array(greeting.utf8)
                    case .peerAddress:
                        var peer = sockaddr_in()
                        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                        _ = withUnsafeMutablePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) } }
                        var text = [CChar](repeating: 0, count: 32)
                        inet_ntop(AF_INET, &peer.sin_addr, &text, 32)
                        c.out = Array((String(cString: text) + "\n").utf8)
                        peers.withLock { $0.append("\(String(cString: text)):\(UInt16(bigEndian: peer.sin_port))") }
                    default: break
                    }
                    conns.append(c)
                }
            }
            var k = 0
            var survivors: [Connection] = []
            for var c in conns {
                let re = k < polled ? fds[2 + k].revents : 0
                k += 1
                var dead = false
                if re & Int16(POLLIN | POLLHUP | POLLERR) != 0 && !c.readClosed {
                    let r = buf.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
                    if r > 0 {
                        switch behavior {
                        case .echo: c.out += buf[0..<r]
                        case .halfCloseFirst, .agent: received.withLock { $0 += buf[0..<r] }
                        case .http(let name):
                            c.request += buf[0..<r]
                            if !c.answered, let end = c.request.firstRange(of: Array("\r\n\r\n".utf8)) {
                                c.answered = true
                                let head = String(decoding: c.request[..<end.lowerBound], as: UTF8.self)
                                let isAlive = head.hasPrefix("GET /alive ")
                                let status = isAlive ? alive.load(ordering: .relaxed) : 200
                                if isAlive { aliveRequests.wrappingAdd(1, ordering: .relaxed) }
                                let body = isAlive ? (status == 200 ? "OK\n" : "unhealthy\n") : name + "\n"
                                let phrase = status == 200 ? "OK" : status == 503 ? "Service Unavailable" : status == 404 ? "Not Found" : "Status"
                                c.out = Array("HTTP/1.1 \(status) \(phrase)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8)
                            }
                        case .partialHTTP:
                            if !c.answered { c.answered = true; c.out = Array("HTTP/1.1 20".utf8) }
                        case .pong(let reply):
                            c.request += buf[0..<r]
                            while let range = c.request.firstRange(of: Array("PING".utf8)) {
                                c.out += Array(reply.utf8)
                                c.request.removeSubrange(..<range.upperBound)
                            }
                        default: break
                        }
                    } else if r == 0 {
                        c.readClosed = true
                        if case .answerAtEnd(let reply) = behavior { c.out += Array(reply.utf8) }
                    } else if errno != EAGAIN && errno != EINTR {
                        dead = true
                    }
                }
                if !dead && c.outOffset < c.out.count {
                    let w = c.out[c.outOffset...].withUnsafeBytes { send(c.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if w > 0 {
                        c.outOffset += w
                        if c.outOffset > 1 << 20 && c.outOffset * 2 > c.out.count {
                            c.out.removeFirst(c.outOffset)
                            c.outOffset = 0
                        }
                    } else if w < 0 && errno != EAGAIN && errno != EINTR {
                        dead = true
                    }
                }
                let flushed = c.outOffset >= c.out.count
                if !dead && flushed && !c.finSent {
                    switch behavior {
                    case .identify, .halfCloseFirst, .peerAddress, .agent:
                        shutdown(c.fd, Int32(SHUT_WR)); c.finSent = true
                    case .http where c.answered:
                        shutdown(c.fd, Int32(SHUT_WR)); c.finSent = true
                    case .partialHTTP where c.answered:
                        dead = true  // close mid-response
                    case .echo where c.readClosed, .answerAtEnd where c.readClosed:
                        shutdown(c.fd, Int32(SHUT_WR)); c.finSent = true
                    default: break
                    }
                }
                var holds = false
                if case .holdOpen = behavior { holds = true }
                if dead || (c.readClosed && flushed && !holds) {
                    close(c.fd)
                    open.wrappingSubtract(1, ordering: .relaxed)
                } else {
                    survivors.append(c)
                }
            }
            conns = survivors
        }
        for c in conns { close(c.fd) }
        close(listener)
    }
}
