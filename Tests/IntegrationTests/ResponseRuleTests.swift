import Foundation
import Synchronization
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

extension Loopback {
/// `tcp-response content` rules, `tcp-response inspect-delay` and `stick store-response`: what a
/// client receives, how each side is closed, the log's termination state, `dresp` (`dreq` for a
/// `silent-drop`) and the stick table — compared with HAProxy 2.6 running the same file against
/// the same scripted server in the same run.
@Suite struct ResponseRuleTests {
    /// A TLS hello record (TLS 1.2; type 1 a ClientHello, 2 a ServerHello) with this session ID:
    /// its length at offset 43, as HAProxy's SSL-session-ID stickiness example reads it.
    static func hello(type: UInt8, sessionID: [UInt8]) -> [UInt8] {
        let suites: [UInt8] = type == 1 ? [0x00, 0x02, 0x00, 0x2F, 0x01, 0x00] : [0x00, 0x2F, 0x00]
        var body: [UInt8] = [0x03, 0x03] + [UInt8](repeating: 0x42, count: 32) + [UInt8(sessionID.count)] + sessionID + suites
        body = [type, 0x00, 0x00, UInt8(body.count)] + body
        return [0x16, 0x03, 0x03, 0x00, UInt8(body.count)] + body
    }

    static let serverHello = hello(type: 2, sessionID: [UInt8](repeating: 0x5A, count: 32))

    /// A server run by the client's first line: it answers as the case needs, then reads until
    /// the proxy closes its connection and records how (`fin` or `reset`) under the case's name.
    final class ScriptedServer: @unchecked Sendable {
        let ends = Mutex<[String: String]>([:])
        /// The `split` case sent its first part and the kernel delivered it to the proxy.
        let partialDelivered = Atomic<Bool>(false)
        private var acceptor: AcceptingServer!
        var port: Int { acceptor.port }

        init() throws {
            acceptor = try AcceptingServer(threadPerConnection: true) { [self] _, fd in serve(fd) }
        }

        private func serve(_ fd: CInt) {
            defer { close(fd) }
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            guard let command = line(fd) else { return }
            switch command {
            case "split":
                try? Net.sendAll(fd, "HEL")
                var unsent: CInt = 1
                while ioctl(fd, UInt(TIOCOUTQ), &unsent) == 0 && unsent > 0 { usleep(1000) }  // in the proxy's socket
                partialDelivered.store(true, ordering: .relaxed)
                guard line(fd) == "more" else { return }
                try? Net.sendAll(fd, "LO\n")
            case "tls": try? Net.sendAll(fd, ResponseRuleTests.serverHello)
            case "bye": try? Net.sendAll(fd, "BYE\n")
            case "bad": try? Net.sendAll(fd, "BAD\n")
            case "short": try? Net.sendAll(fd, "SHORT")
            case "drop": try? Net.sendAll(fd, "DROP\n")
            default: return
            }
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, 0)
            let end = n == 0 ? "fin" : n < 0 && errno == ECONNRESET ? "reset" : n < 0 ? "error \(errno)" : "data"
            ends.withLock { $0[command] = end }
        }

        /// One line from the client, without its newline.
        private func line(_ fd: CInt) -> String? {
            var bytes: [UInt8] = []
            var byte: UInt8 = 0
            while recv(fd, &byte, 1, 0) == 1 {
                if byte == 0x0A { return String(decoding: bytes, as: UTF8.self) }
                bytes.append(byte)
            }
            return nil
        }

        func stop() { acceptor.stop() }
    }

    /// Reads until the end of the stream: the bytes, and whether it ended with a FIN or a reset.
    static func readEnd(_ fd: CInt) throws -> (bytes: [UInt8], end: String) {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            guard Net.waitReadable(fd, timeoutMs: 10_000) else { throw Net.Failure("no end of stream within 10 s (read \(out.count) bytes)") }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { return (out, "fin") }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ECONNRESET { return (out, "reset") }
                throw Net.Failure("recv: \(String(cString: strerror(errno)))")
            }
            out += buffer[0..<n]
        }
    }

    @Test func responseRulesHoldJudgeAndStickAsHAProxys() throws {
        let server = try ScriptedServer()
        defer { server.stop() }
        func observe(haproxy: Bool) throws -> [String] {
            let logs = try SyslogReceiver()
            defer { logs.stop() }
            let socket = RuntimeAPITests.socketPath()
            let contender = try Contender(haproxy: haproxy) { port in
                """
                global
                  stats socket \(socket) level admin
                  log 127.0.0.1:\(logs.port) local0
                defaults
                  mode tcp
                  timeout connect 1s
                  timeout client 5s
                  timeout server 5s
                listen l
                  bind 127.0.0.1:\(port)
                  log global
                  log-format "%ts %B %U"
                  stick-table type binary len 32 size 10 expire 1m
                  acl serverhello res.ssl_hello_type 2
                  tcp-response inspect-delay 300ms
                  tcp-response content reject if { res.payload(0,3) -m str BAD }
                  tcp-response content close if { res.payload(0,3) -m str BYE }
                  tcp-response content silent-drop if { res.payload(0,4) -m str DROP }
                  tcp-response content accept if { res.payload(0,5) -m str HELLO }
                  tcp-response content accept if serverhello
                  tcp-response content reject if { res.len lt 10 }
                  stick store-response res.payload_lv(43,1) if serverhello
                  server s 127.0.0.1:\(server.port)

                """
            }
            defer { contender.stop() }
            var seen: [String] = []
            for (k, command) in ["split", "tls", "bye", "bad", "short", "drop"].enumerated() {
                server.partialDelivered.store(false, ordering: .relaxed)
                let fd = try Net.connect(contender.port)
                defer { close(fd) }
                try Net.sendAll(fd, command + "\n")
                var received: [UInt8] = []
                switch command {
                case "split":
                    // The client's bytes reach the server while its answer is held, incomplete.
                    try eventually("the server sent the first part") { server.partialDelivered.load(ordering: .relaxed) }
                    try Net.sendAll(fd, "more\n")
                    received = try Net.read(fd, count: 6)
                    shutdown(fd, Int32(SHUT_WR))
                case "tls":
                    received = try Net.read(fd, count: Self.serverHello.count)
                    shutdown(fd, Int32(SHUT_WR))
                default: break
                }
                var end: String
                if command == "drop" {
                    // Silenced: no FIN, no reset. (What a later send draws varies with when the proxy
                    // closes the silenced socket: HAProxy gave a reset once, nothing another time.)
                    try eventually("the drop is counted") { try StatsClient.showStat(socket).first { $0["svname"] == "FRONTEND" }?["dreq"] == "1" }
                    end = RuleActionTests.peerState(fd)
                } else {
                    let (rest, how) = try Self.readEnd(fd)
                    (received, end) = (received + rest, how)
                }
                let text = command == "tls" ? (received == Self.serverHello ? "the ServerHello" : "\(received)") : String(decoding: received, as: UTF8.self)
                try eventually("the server saw its connection end (\(command))") { server.ends.withLock { $0[command] } != nil }
                let line = try logs.wait(for: k + 1)[k]
                seen.append("\(command): client got \(text.debugDescription) then \(end); server saw \(server.ends.withLock { $0[command] ?? "" }); log '\(line.split(separator: ": ", maxSplits: 1).last ?? "")'")
            }
            let rows = try StatsClient.showStat(socket)
            for svname in ["FRONTEND", "s", "BACKEND"] {
                seen.append("\(svname) dresp \(rows.first { $0["svname"] == svname }?["dresp"] ?? "?")")
            }
            // The stored key and its server, without the entry's address and expiry.
            let table = try StatsClient.ask(socket, "show table l")
            for entry in table.split(separator: "\n") where entry.contains("key=") {
                seen.append(entry.split(separator: " ").filter { $0.hasPrefix("key=") || $0.hasPrefix("server_id=") }.joined(separator: " "))
            }
            return seen
        }
        let ours = try observe(haproxy: false)
        #expect(ours.contains { $0.hasPrefix("split: client got \"HELLO\\n\" then fin") }, "\(ours)")
        #expect(ours.contains("key=\(String(repeating: "5A", count: 32)) server_id=1"), "\(ours)")
        if HAProxyProcess.requireInstalled() {
            let theirs = try observe(haproxy: true)
            #expect(ours == theirs)
        }
    }

    /// HAProxy's SSL-session-ID stickiness recipe, all in the backend (its example, with `res.`
    /// for the `resp.` HAProxy 2.6 does not know): the backend's `tcp-request content` rule waits
    /// for a whole ClientHello, `stick on` matches a resumed session's ID, `tcp-response` waits for
    /// the ServerHello and `stick store-response` learns the ID the server gave. With a
    /// `tcp-response inspect-delay`, new clients go round-robin and a client resuming a session
    /// reaches the server that issued it; without one (the example as HAProxy's manual writes it)
    /// the response rules decide at connect, on no data, nothing is learnt and every client goes
    /// round-robin — on Sluice as on HAProxy 2.6, each ClientHello sent in two parts.
    @Test func sslSessionIDStickinessRecipeWorksAsInHAProxy() throws {
        /// A server that answers a ClientHello with a ServerHello: the client's session ID when it
        /// offers one (resumption), else its own; then its name.
        func tlsServer(_ name: String, id: UInt8) throws -> AcceptingServer {
            try AcceptingServer(threadPerConnection: true) { _, fd in
                defer { close(fd) }
                guard let head = try? Net.read(fd, count: 5), let body = try? Net.read(fd, count: Int(head[3]) << 8 | Int(head[4])),
                      body.count > 38 else { return }
                let offered = Array(body[39..<(39 + Int(body[38]))])  // offset 43 of the record
                let session = offered.isEmpty ? [UInt8](repeating: id, count: 32) : offered
                try? Net.sendAll(fd, ResponseRuleTests.hello(type: 2, sessionID: session) + Array("\(name)\n".utf8))
                _ = try? Net.readToEnd(fd, resetEnds: true)
            }
        }
        let s1 = try tlsServer("s1", id: 0x11), s2 = try tlsServer("s2", id: 0x22)
        defer { s1.stop(); s2.stop() }
        func run(haproxy: Bool, responseDelay: Bool) throws -> [String] {
            let contender = try Contender(haproxy: haproxy) { port in
                """
                defaults
                  mode tcp
                  timeout connect 1s
                  timeout client 5s
                  timeout server 5s
                frontend fe
                  bind 127.0.0.1:\(port)
                  default_backend https
                backend https
                  balance roundrobin
                  stick-table type binary len 32 size 30k expire 30m
                  acl clienthello req.ssl_hello_type 1
                  acl serverhello res.ssl_hello_type 2
                  tcp-request inspect-delay 5s
                  tcp-request content accept if clienthello
                  \(responseDelay ? "tcp-response inspect-delay 5s" : "")
                  tcp-response content accept if serverhello
                  stick on req.payload_lv(43,1) if clienthello
                  stick store-response res.payload_lv(43,1) if serverhello
                  server s1 127.0.0.1:\(s1.port)
                  server s2 127.0.0.1:\(s2.port)

                """
            }
            defer { contender.stop() }
            var answers: [String] = []
            // New, resuming s1's, new, resuming s2's, new, resuming s1's again.
            for offered: UInt8? in [nil, 0x11, nil, 0x22, nil, 0x11] {
                let hello = Self.hello(type: 1, sessionID: offered.map { [UInt8](repeating: $0, count: 32) } ?? [])
                let fd = try Net.connect(contender.port)
                defer { close(fd) }
                try Net.sendAll(fd, Array(hello[..<20]))
                var unsent: CInt = 1
                while ioctl(fd, UInt(TIOCOUTQ), &unsent) == 0 && unsent > 0 { usleep(1000) }  // in the proxy's socket
                usleep(30_000)  // not a synchronisation: a window in which deciding on a partial hello would show
                try Net.sendAll(fd, Array(hello[20...]))
                let reply = try Net.read(fd, count: Self.serverHello.count + 3)
                answers.append(String(decoding: reply.suffix(3).dropLast(), as: UTF8.self))
            }
            return answers
        }
        let sticky = try run(haproxy: false, responseDelay: true), asWritten = try run(haproxy: false, responseDelay: false)
        #expect(sticky == ["s1", "s1", "s2", "s2", "s1", "s1"])
        #expect(asWritten == ["s1", "s2", "s1", "s2", "s1", "s2"])
        if HAProxyProcess.requireInstalled() {
            #expect(try run(haproxy: true, responseDelay: true) == sticky)
            #expect(try run(haproxy: true, responseDelay: false) == asWritten)
        }
    }
}
}
