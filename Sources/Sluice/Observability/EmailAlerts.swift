import CShims
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// HAProxy's email alerts (`mailers` section, `email-alert …`): a backend's server state change is
/// mailed to every mailer of its section, each mail one SMTP exchange exactly as HAProxy 2.6's
/// `enqueue_one_email_alert` builds it (HELO, MAIL FROM, RCPT TO, DATA with its headers, QUIT, each
/// answer checked for its code). As HAProxy keeps a queue per mailer, each mailer has its own queue
/// and thread, started with its first mail: a mail server that is slow or away delays only its own
/// next mails, never another mailer's, a reactor or a check, and each exchange gets at most the
/// section's `timeout mail`.
final class EmailAlerter: @unchecked Sendable {
    struct Job {
        let alert: EmailAlert
        let mailer: Mailers.Mailer
        let message: String
        /// The `Date:` header, written when the alert was raised (as HAProxy).
        let date: String
    }

    private let logger: Logger
    /// One queue per mailer (by section, name and address), for the life of the balancer.
    private let queues = Mutex<(byMailer: [String: MailQueue], stopping: Bool)>(([:], false))
    /// Exchanges that failed (each is also logged with its reason).
    let failed = Atomic<Int>(0)

    init(logger: Logger) { self.logger = logger }

    /// Queues `message` (a log line without its final period) for every mailer of `alert`. Any thread.
    func send(_ alert: EmailAlert, message: String) {
        let date = Self.dateHeader(time(nil))
        for mailer in alert.mailers.mailers {
            let key = "\(alert.mailers.name)/\(mailer.name)/\(mailer.endpoint)"
            let queue = queues.withLock { q -> MailQueue? in
                guard !q.stopping else { return nil }
                if let existing = q.byMailer[key] { return existing }
                let created = MailQueue(owner: self)
                q.byMailer[key] = created
                return created
            }
            queue?.append(Job(alert: alert, mailer: mailer, message: message, date: date))
        }
    }

    /// Ends every queue's thread after the exchange in progress (without waiting for it); queued
    /// mails are dropped (and said so).
    func stop() {
        let all = queues.withLock { q in
            q.stopping = true
            defer { q.byMailer.removeAll() }
            return Array(q.byMailer.values)
        }
        for queue in all { queue.stop() }
    }

    /// A mailer's mails, sent in order by a thread started with the first.
    private final class MailQueue: @unchecked Sendable {
        /// Strong: a queue's thread may outlive the balancer by one exchange. `stop()` lets the
        /// queues go, so nothing holds the pair once the threads end.
        let owner: EmailAlerter
        private let state = Mutex<(jobs: [Job], stopping: Bool)>(([], false))
        /// An eventfd the thread sleeps on while there is nothing to send.
        private let wakeup = CShims_eventfd_nonblock()
        private let thread = Mutex<OSThread?>(nil)
        private let started = Atomic<Bool>(false)

        init(owner: EmailAlerter) { self.owner = owner }
        deinit { if wakeup >= 0 { close(wakeup) } }

        func append(_ job: Job) {
            state.withLock { $0.jobs.append(job) }
            if !started.exchange(true, ordering: .acquiringAndReleasing) {
                do {
                    let spawned = try OSThread.spawn("sluice-mail") { [self] in run() }
                    thread.withLock { $0 = spawned }
                } catch {
                    owner.logger.error("email alerts: cannot start a thread for mailer '\(job.mailer.name)' (\(error)); its alerts are not sent")
                }
            } else {
                wake()
            }
        }

        private func wake() {
            guard wakeup >= 0 else { return }
            var one: UInt64 = 1
            _ = write(wakeup, &one, 8)
        }

        func stop() {
            let dropped = state.withLock { s -> Int in
                s.stopping = true
                defer { s.jobs.removeAll() }
                return s.jobs.count
            }
            if dropped > 0 { owner.logger.warning("email alerts: \(dropped) mail(s) not sent: the balancer is stopping") }
            wake()
            // Not joined: an exchange in progress may last up to `timeout mail`, and stopping the
            // balancer does not wait for a mail server. The thread ends after it.
            thread.withLock { t in
                t?.detach()
                t = nil
            }
        }

        private func run() {
            while true {
                let next = state.withLock { s -> Job?? in
                    if s.stopping { return .some(nil) }
                    return s.jobs.isEmpty ? nil : .some(s.jobs.removeFirst())
                }
                switch next {
                case .some(nil): return
                case .some(let job?):
                    do {
                        try EmailAlerter.deliver(job)
                    } catch {
                        owner.failed.wrappingAdd(1, ordering: .relaxed)
                        owner.logger.warning("email alert to mailer '\(job.mailer.name)' (\(job.mailer.endpoint)) not sent: \(error.message)")
                    }
                case .none:
                    var ready = pollfd(fd: wakeup, events: Int16(POLLIN), revents: 0)
                    _ = poll(&ready, 1, wakeup >= 0 ? -1 : 100)
                    var value: UInt64 = 0
                    if wakeup >= 0 { _ = read(wakeup, &value, 8) }
                }
            }
        }
    }

    struct Failure: Error {
        let message: String
    }

    /// One SMTP exchange, within the section's `timeout mail` from the connect to the end.
    private static func deliver(_ job: Job) throws(Failure) {
        let deadline = monotonicMilliseconds() + max(1, job.alert.mailers.timeout.milliseconds)
        let address: SocketAddress
        do {
            address = try SocketAddress.resolve(host: job.mailer.endpoint.host ?? "127.0.0.1", port: job.mailer.endpoint.port)
        } catch {
            throw Failure(message: "cannot resolve \(job.mailer.endpoint.host ?? ""): \(error)")
        }
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(message: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let connected = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        if connected != 0 {
            guard errno == EINPROGRESS else { throw Failure(message: "connect: \(String(cString: strerror(errno)))") }
            try wait(fd, for: Int16(POLLOUT), until: deadline, doing: "connecting")
            var code: CInt = 0
            var length = socklen_t(MemoryLayout<CInt>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length)
            guard code == 0 else { throw Failure(message: "connect: \(String(cString: strerror(code)))") }
        }
        let alert = job.alert
        let steps: [(send: String?, expect: String)] = [
            (nil, "220 "),
            ("HELO \(alert.myHostname)\r\n", "250 "),
            ("MAIL FROM:<\(alert.from)>\r\n", "250 "),
            ("RCPT TO:<\(alert.to)>\r\n", "250 "),
            ("DATA\r\n", "354 "),
            ("From: \(alert.from)\r\nTo: \(alert.to)\r\nDate: \(job.date)\r\nSubject: [HAProxy Alert] \(job.message)\r\n\r\n\(job.message)\r\n\r\n.\r\n", "250 "),
            ("QUIT\r\n", "221 "),
        ]
        for step in steps {
            if let text = step.send { try send(fd, Array(text.utf8), until: deadline) }
            try expect(fd, step.expect, until: deadline, after: step.send.map { String($0.prefix { $0 != " " && $0 != ":" && $0 != "\r" }) } ?? "connect")
        }
    }

    private static func wait(_ fd: CInt, for events: Int16, until deadline: Int64, doing what: String) throws(Failure) {
        while true {
            let left = deadline - monotonicMilliseconds()
            guard left > 0 else { throw Failure(message: "timeout mail expired while \(what)") }
            var ready = pollfd(fd: fd, events: events, revents: 0)
            let r = poll(&ready, 1, Int32(min(left, 1000)))
            if r > 0 { return }
            if r < 0 && errno != EINTR { throw Failure(message: "poll: \(String(cString: strerror(errno)))") }
        }
    }

    private static func send(_ fd: CInt, _ bytes: [UInt8], until deadline: Int64) throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { offset += n; continue }
            guard n < 0 && (errno == EAGAIN || errno == EINTR) else { throw Failure(message: "send: \(String(cString: strerror(errno)))") }
            try wait(fd, for: Int16(POLLOUT), until: deadline, doing: "sending")
        }
    }

    /// Reads until what arrived contains `code` (HAProxy's `tcp-check expect string`); each send
    /// starts a new answer.
    private static func expect(_ fd: CInt, _ code: String, until deadline: Int64, after command: String) throws(Failure) {
        var answer: [UInt8] = []
        let wanted = Array(code.utf8)
        var chunk = [UInt8](repeating: 0, count: 1024)
        while answer.firstRange(of: wanted) == nil {  // as `tcp-check expect string` matches
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { answer += chunk[0..<n]; continue }
            if n == 0 {
                throw Failure(message: "the mail server closed the connection after \(command) without '\(code.dropLast())' (it said '\(Self.printable(answer))')")
            }
            guard errno == EAGAIN || errno == EINTR else { throw Failure(message: "recv: \(String(cString: strerror(errno)))") }
            try wait(fd, for: Int16(POLLIN), until: deadline, doing: "waiting for '\(code.dropLast())' after \(command) (it said '\(Self.printable(answer))')")
        }
    }

    private static func printable(_ bytes: [UInt8]) -> String {
        let visible = bytes.prefix(200).map { $0 >= 0x20 && $0 < 0x7F ? $0 : 0x20 }
        return String(decoding: visible.drop { $0 == 0x20 }.reversed().drop { $0 == 0x20 }.reversed(), as: UTF8.self)
    }

    /// HAProxy's `Date:` value: `strftime("%a, %d %b %Y %T %z (%Z)")` in local time.
    static func dateHeader(_ seconds: time_t) -> String {
        var t = seconds
        var parts = tm()
        localtime_r(&t, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let n = strftime(&buffer, buffer.count, "%a, %d %b %Y %T %z (%Z)", &parts)
        return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
