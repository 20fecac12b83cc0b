import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A tiny HTTP server for `sluice demo`: answers every path with its name, `/alive` with 200 or 503,
/// and lets a person flip its health with `/fail` and `/recover`. One poll(2) thread.
final class DemoServer: @unchecked Sendable {
    let name: String
    let port: Int
    /// What `/alive` answers.
    let healthy = Atomic<Bool>(true)
    /// Requests other than `/alive`: traffic that reached this server.
    let served = Atomic<Int>(0)
    private let listener: CInt
    private var wake: [CInt] = [-1, -1]
    private var thread = pthread_t()

    init(name: String, port requested: Int = 0) throws {
        self.name = name
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: CInt = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(requested).bigEndian)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 1024) == 0 else { throw DemoError("cannot start demo server \(name): \(String(cString: strerror(errno)))") }
        _ = fcntl(fd, F_SETFL, O_NONBLOCK)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        _ = pipe(&wake)
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { arg in
            Unmanaged<DemoServer>.fromOpaque(arg!).takeRetainedValue().loop()
            return nil
        }, box)
    }

    func stop() {
        guard wake[1] >= 0 else { return }
        var b: UInt8 = 1
        _ = write(wake[1], &b, 1)
        pthread_join(thread, nil)
        close(wake[0]); close(wake[1])
        wake = [-1, -1]
    }

    private struct Connection {
        var fd: CInt
        var request: [UInt8] = []
        var reply: [UInt8] = []
        var sent = 0
    }

    private func respond(to head: String) -> [UInt8] {
        let path = head.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
        var status = 200
        var body = name + "\n"
        switch path {
        case "/alive":
            status = healthy.load(ordering: .relaxed) ? 200 : 503
            body = status == 200 ? "OK\n" : "unhealthy\n"
        case "/fail":
            healthy.store(false, ordering: .relaxed)
            body = "\(name): /alive now answers 503\n"
        case "/recover":
            healthy.store(true, ordering: .relaxed)
            body = "\(name): /alive now answers 200\n"
        default:
            served.wrappingAdd(1, ordering: .relaxed)
        }
        let phrase = status == 200 ? "OK" : "Service Unavailable"
        return Array("HTTP/1.1 \(status) \(phrase)\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8)
    }

    private func loop() {
        var connections: [Connection] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var fds = [pollfd(fd: wake[0], events: Int16(POLLIN), revents: 0), pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            for c in connections {
                fds.append(pollfd(fd: c.fd, events: Int16(c.reply.isEmpty ? POLLIN : POLLOUT), revents: 0))
            }
            if poll(&fds, nfds_t(fds.count), -1) < 0 { continue }
            if fds[0].revents != 0 { break }
            var next: [Connection] = []
            for (k, var c) in connections.enumerated() {
                let events = fds[2 + k].revents
                var done = false
                if events != 0 && c.reply.isEmpty {
                    let n = buffer.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
                    if n <= 0 {
                        done = true
                    } else {
                        c.request += buffer[0..<n]
                        if let end = c.request.firstRange(of: Array("\r\n\r\n".utf8)) {
                            c.reply = respond(to: String(decoding: c.request[..<end.lowerBound], as: UTF8.self))
                        } else if c.request.count > 8192 {
                            done = true
                        }
                    }
                }
                if !done && !c.reply.isEmpty {
                    let n = c.reply[c.sent...].withUnsafeBytes { send(c.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if n > 0 { c.sent += n }
                    if n < 0 && errno != EAGAIN { done = true }
                    if c.sent == c.reply.count { done = true }
                }
                if done { close(c.fd) } else { next.append(c) }
            }
            connections = next
            if fds[1].revents != 0 {
                while case let fd = accept(listener, nil, nil), fd >= 0 {
                    _ = fcntl(fd, F_SETFL, O_NONBLOCK)
                    connections.append(Connection(fd: fd))
                }
            }
        }
        for c in connections { close(c.fd) }
        close(listener)
    }
}

struct DemoError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
