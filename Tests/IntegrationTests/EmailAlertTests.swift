import Foundation
import Synchronization
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// A mail server that accepts every mail and records what each client said, line by line.
final class SMTPRecorder: @unchecked Sendable {
    private let listener: CaptureServer
    var port: Int { listener.port }
    private let transcripts = Mutex<[[String]]>([])
    private let stopping = Atomic<Bool>(false)
    private var thread: Thread?

    init() throws {
        listener = try CaptureServer()
        let thread = Thread { [self] in
            while !stopping.load(ordering: .relaxed) {
                guard let c = try? listener.accept(timeoutMs: 50) else { continue }
                transcripts.withLock { $0.append(serve(c)) }
                close(c)
            }
        }
        self.thread = thread
        thread.start()
    }

    /// One client: HAProxy's dialogue from the server's side (220, 250 …, 354, 250, 221).
    private func serve(_ c: CInt) -> [String] {
        var lines: [String] = []
        var pending: [UInt8] = []
        var inData = false
        func reply(_ text: String) { try? Net.sendAll(c, text + "\r\n") }
        reply("220 recorder ESMTP")
        while let chunk = try? Net.read(c, count: 1, timeoutMs: 3_000), !chunk.isEmpty {
            pending += chunk
            guard pending.last == 0x0A else { continue }
            let line = String(decoding: pending, as: UTF8.self)
            pending = []
            lines.append(line)
            if inData {
                if line == ".\r\n" { inData = false; reply("250 queued") }
                continue
            }
            switch line.prefix(4).uppercased() {
            case "DATA": inData = true; reply("354 go ahead")
            case "QUIT": reply("221 bye"); return lines
            default: reply("250 ok")
            }
        }
        return lines
    }

    /// Waits for `count` finished conversations.
    func wait(for count: Int) throws -> [[String]] {
        try eventually("\(count) mail(s) on port \(port)") { transcripts.withLock { $0.count } >= count }
        return transcripts.withLock { $0 }
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        while thread?.isFinished == false { usleep(1000) }
    }

    deinit { stop() }
}

extension Loopback {
/// `mailers` and `email-alert`: a server going DOWN is mailed to every mailer of the section with
/// HAProxy's SMTP exchange and message, compared line by line with HAProxy 2.6's mail (the check
/// duration and the date aside); a mail server that never answers costs `timeout mail`, no more.
@Suite struct EmailAlertTests {
    static func config(port: Int, mailers: [Int], server: Int) -> String {
        """
        mailers ops
          timeout mail 2s
        \(mailers.enumerated().map { "  mailer m\($0.offset) 127.0.0.1:\($0.element)" }.joined(separator: "\n"))
        \(tcpDefaults())
        listen b
          bind 127.0.0.1:\(port)
          email-alert mailers ops
          email-alert from lb@example.com
          email-alert to ops@example.com
          email-alert level notice
          email-alert myhostname lb1
          server s 127.0.0.1:\(server) check inter 200ms fall 1 rise 1

        """
    }

    static func normalised(_ lines: [String]) -> [String] {
        lines.map {
            $0.replacingOccurrences(of: #"check duration: \d+ms"#, with: "check duration: <n>ms", options: .regularExpression)
                .replacingOccurrences(of: #"^Date: .*"#, with: "Date: <date>", options: .regularExpression)
        }
    }

    @Test func aServerGoingDownIsMailedAsHAProxyMailsIt() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let closed = try Net.closedPort()
        var mails: [[String]] = []
        for haproxy in [true, false] {
            let recorders = try [SMTPRecorder(), SMTPRecorder()]
            defer { for r in recorders { r.stop() } }
            let contender = try Contender(haproxy: haproxy) { Self.config(port: $0, mailers: recorders.map(\.port), server: closed) }
            defer { contender.stop() }
            // Every mailer of the section gets the mail.
            let received = try recorders.map { try $0.wait(for: 1) }
            #expect(received[0] == received[1], "\(haproxy ? "haproxy" : "sluice"): both mailers get the same mail")
            mails.append(received[0][0])
        }
        #expect(Self.normalised(mails[1]) == Self.normalised(mails[0]))
        let date = try #require(mails[1].first { $0.hasPrefix("Date: ") })
        #expect(date.range(of: #"^Date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(.+\)\r\n$"#, options: .regularExpression) != nil, "\(date)")
        #expect(mails[1].first == "HELO lb1\r\n")
        #expect(mails[1].contains { $0.hasPrefix("Subject: [HAProxy Alert] Server b/s is DOWN, reason: Layer4 connection problem") })
    }

    /// A mailer that accepts and never answers holds its mail for `timeout mail` (2 s here); the
    /// balancer goes on serving meanwhile, and the next mailer still gets its mail.
    @Test func aSilentMailServerCostsTimeoutMailAndNothingElse() throws {
        let silent = try TestServer(.silent)
        defer { silent.stop() }
        let recorder = try SMTPRecorder()
        defer { recorder.stop() }
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let closed = try Net.closedPort()
        let text = Self.config(port: 0, mailers: [silent.port, recorder.port], server: closed)
            .replacingOccurrences(of: "listen b\n", with: "listen e\n  bind 127.0.0.1:0\n  server e 127.0.0.1:\(echo.port)\nlisten b\n")
        let proxy = try RunningProxy(text)
        defer { proxy.stop() }
        let started = ContinuousClock.now
        _ = try recorder.wait(for: 1)
        // Each mailer has its own queue, as in HAProxy: the other mail did not wait for the silent one.
        #expect(proxy.balancer.emailAlertsFailed == 0)
        let fd = try Net.connect(proxy.port)
        defer { close(fd) }
        try Net.sendAll(fd, "ping")
        shutdown(fd, Int32(SHUT_WR))
        #expect(try Net.readToEnd(fd) == Array("ping".utf8))
        // The silent mailer's exchange ends at its `timeout mail`.
        try eventually("the silent mailer's exchange fails") { proxy.balancer.emailAlertsFailed == 1 }
        #expect(ContinuousClock.now - started < .seconds(10))
    }
}
}
