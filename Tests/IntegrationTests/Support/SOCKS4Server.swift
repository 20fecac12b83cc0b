import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A SOCKS4 proxy on 127.0.0.1 for the `socks4` tests: it reads each CONNECT request (kept in
/// `requests`), then grants it and relays bytes both ways, refuses it (code 91), or hangs up, as
/// told. A thread per connection and blocking sockets: a handful of test connections.
final class SOCKS4Server: @unchecked Sendable {
    enum Answer: Sendable { case grant, refuse, hangUp }
    struct Request: Equatable, Sendable {
        var version: UInt8
        var command: UInt8
        var destination: String
        var userID: String
        /// Bytes that came after the request within 50 ms, before any answer: a client must wait
        /// for the grant before it sends anything through the tunnel.
        var early: Int
    }

    static let grant: [UInt8] = [0, 90, 0, 0, 0, 0, 0, 0]
    static let refusal: [UInt8] = [0, 91, 0, 0, 0, 0, 0, 0]

    let port: Int
    let answer: Answer
    let requests = Mutex<[Request]>([])
    private let listener: CInt

    init(_ answer: Answer) throws {
        _ = pipeSignalIgnored
        self.answer = answer
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = Net.address(0)
        let bound = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 64) == 0 else { throw Net.Failure("SOCKS4 test proxy: cannot listen (errno \(errno))") }
        listener = fd
        port = Net.localPort(fd)
        let listener = fd
        Thread { [self] in
            while true {
                let c = accept(listener, nil, nil)
                if c < 0 { break }
                Thread { self.serve(c) }.start()
            }
            // Closed here, once accept returned: closed by `stop` while accept waits, its number
            // could go to the next test proxy's listener, and this loop would take its clients.
            close(listener)
        }.start()
    }

    /// Wakes the accepting thread, which closes the listener.
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
    }

    deinit { stop() }

    private func serve(_ client: CInt) {
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        // VN CD DSTPORT(2) DSTIP(4) USERID NUL.
        while request.count < 9 || !request[8...].contains(0) {
            let n = read(client, &chunk, chunk.count)
            if n <= 0 { close(client); return }
            request += chunk[0..<n]
        }
        let end = request[8...].firstIndex(of: 0)!
        var early = request.count - end - 1
        var p = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
        if poll(&p, 1, 50) > 0 { early += max(0, read(client, &chunk, chunk.count)) }
        let port = Int(request[2]) << 8 | Int(request[3])
        let ip = request[4..<8].map(String.init).joined(separator: ".")
        requests.withLock {
            $0.append(Request(version: request[0], command: request[1], destination: "\(ip):\(port)",
                              userID: String(decoding: request[8..<end], as: UTF8.self), early: early))
        }
        switch answer {
        case .hangUp:
            close(client)
        case .refuse:
            _ = write(client, Self.refusal, 8)
            close(client)
        case .grant:
            guard ip == "127.0.0.1", let server = try? Net.connect(port) else {
                _ = write(client, Self.refusal, 8)
                close(client); return
            }
            _ = write(client, Self.grant, 8)
            let done = DispatchGroup()
            for (from, to) in [(client, server), (server, client)] {
                done.enter()
                Thread {
                    var buffer = [UInt8](repeating: 0, count: 16384)
                    while true {
                        let n = read(from, &buffer, buffer.count)
                        if n <= 0 || write(to, buffer, n) != n { break }
                    }
                    shutdown(to, Int32(SHUT_WR))
                    done.leave()
                }.start()
            }
            done.wait()
            close(server)
            close(client)
        }
    }
}
