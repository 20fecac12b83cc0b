import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// HAProxy's log lines, from reactors to syslog servers, UNIX datagram sockets (`/dev/log`),
/// standard output or standard error, without ever making a reactor wait.
///
/// A reactor formats its line and appends it to its own bounded ring (`LogRing`): a mutex only
/// the reactor and the writer take, held for an append. One writer thread empties the rings
/// every 10 ms while lines come, puts each target's syslog header in front (`format`), and sends
/// with non-blocking calls; when a pass finds nothing it sleeps until the next line wakes it (an
/// eventfd, written once per sleep: an idle balancer has no periodic wakeup from logging). A full ring or a target that cannot take a line drops it, counted in
/// `dropped` (`show info` DroppedLogs) — logging never slows forwarding down.
final class LogSink: @unchecked Sendable {
    /// Records each ring holds before it drops (about 1 MiB of lines).
    static let ringCapacity = 8192

    private let state = Mutex<SinkState>(SinkState())
    /// Lines lost: a ring was full, or a target refused a line (would block, or failed).
    let dropped = Atomic<Int>(0)
    /// `log-send-hostname` (nil: "localhost" in rfc3164, "-" in rfc5424).
    private let hostName = Mutex<String?>(nil)
    private var thread: OSThread?
    private let stopping = Atomic<Bool>(false)
    /// The writer found nothing and waits on `wakeup`; the first producer to see it writes there.
    private let idle = Atomic<Bool>(false)
    /// Nil when no eventfd could be had: the writer then polls every 10 ms, as before it slept.
    private let wakeup: CInt?

    private struct SinkState {
        var rings: [LogRing] = []
        /// Destinations opened, by what they are: routes of successive reloads share them.
        var endpoints: [LogTarget.Destination: LogEndpoint] = [:]
    }

    /// The ring of the balancer's occasional lines (server state changes from checks, the
    /// resolver, the runtime API), shared by those threads.
    private(set) var shared: LogRing!

    init() {
        let fd = CShims_eventfd_nonblock()
        wakeup = fd >= 0 ? fd : nil
        shared = makeRing()
    }

    /// A producer queued a line: wakes the writer if it sleeps. Any thread.
    fileprivate func lineQueued() {
        guard idle.load(ordering: .sequentiallyConsistent), idle.exchange(false, ordering: .sequentiallyConsistent) else { return }
        wakeWriter()
    }

    private func wakeWriter() {
        guard let wakeup else { return }
        var one: UInt64 = 1
        _ = Glibc.write(wakeup, &one, 8)
    }

    /// The writer, after a pass that found nothing: sleeps until a line is queued or `stop()`. A
    /// line queued between the pass and `idle` is seen by the check that follows it.
    private func sleepUntilALine(_ rings: [LogRing]) {
        guard let wakeup else { usleep(10_000); return }
        idle.store(true, ordering: .sequentiallyConsistent)
        if rings.contains(where: { !$0.isEmpty }) || stopping.load(ordering: .sequentiallyConsistent) {
            idle.store(false, ordering: .sequentiallyConsistent)
            return
        }
        var fds = pollfd(fd: wakeup, events: Int16(POLLIN), revents: 0)
        _ = poll(&fds, 1, 1000)  // (a bound, in case a ring was added while asleep)
        var value: UInt64 = 0
        _ = read(wakeup, &value, 8)
        idle.store(false, ordering: .sequentiallyConsistent)
    }

    /// A ring for one producer thread (a reactor, or the balancer's other threads together).
    func makeRing() -> LogRing {
        let ring = LogRing(sink: self)
        state.withLock { $0.rings.append(ring) }
        return ring
    }

    func setHostName(_ name: String?) { hostName.withLock { $0 = name } }

    /// The destinations `targets` name, opened once and shared; nil when there are none.
    /// A frontend without targets still gets a route when its sessions have unique IDs to build.
    func route(_ targets: [LogTarget], tag: String, logging: SessionLogging? = nil, evaluator: FrontendRouting? = nil,
               uniqueIDFormat: LogFormat? = nil) -> LogRoute? {
        guard !targets.isEmpty || uniqueIDFormat != nil else { return nil }
        let endpoints = state.withLock { sink in
            targets.map { target in
                let endpoint = sink.endpoints[target.destination] ?? LogEndpoint(target.destination)
                sink.endpoints[target.destination] = endpoint
                return (endpoint, target)
            }
        }
        return LogRoute(targets: endpoints, tag: tag, logging: logging, evaluator: evaluator, uniqueIDFormat: uniqueIDFormat)
    }

    /// Starts the writer thread.
    func start() throws(SystemError) {
        guard thread == nil else { return }
        let pid = getpid()  // after `daemon`'s fork: the process that logs
        thread = try OSThread.spawn("sluice-log") { [self] in
            var formatter = LogFormatter(pid: pid)
            while true {
                let last = stopping.load(ordering: .acquiring)
                formatter.hostName = hostName.withLock { $0 }
                let rings = state.withLock { $0.rings }
                var written = 0
                for ring in rings {
                    let records = ring.take()
                    written += records.count
                    for record in records { write(record, with: &formatter) }
                }
                if last { return }
                if written > 0 { usleep(10_000) } else { sleepUntilALine(rings) }
            }
        }
    }

    /// Writes what the rings hold, then stops the writer.
    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        wakeWriter()
        thread?.join()
        thread = nil
        stopping.store(false, ordering: .releasing)
    }

    deinit {
        for endpoint in state.withLock({ $0.endpoints.values }) { endpoint.close() }
        if let wakeup { close(wakeup) }
    }

    private func write(_ record: LogRecord, with formatter: inout LogFormatter) {
        for (endpoint, target) in record.route.targets where Int(record.level) <= target.maxLevel {
            let line = formatter.line(record, target: target, tag: record.route.tag)
            if !endpoint.send(line) { dropped.wrappingAdd(1, ordering: .relaxed) }
        }
    }
}

/// One producer's lines on their way to the writer.
final class LogRing: @unchecked Sendable {
    private let records = Mutex<[LogRecord]>([])
    /// Weak: a backend (reachable from an embedder) may outlive its balancer.
    private weak let sink: LogSink?

    fileprivate init(sink: LogSink) {
        self.sink = sink
        records.withLock { $0.reserveCapacity(64) }
    }

    /// Dates of this ring's session lines. Only its reactor uses it (the shared ring writes no
    /// session lines).
    @exclusivity(unchecked) var clock = LogClock()

    /// Queues a line of `route` at syslog `level` (0 emerg … 7 debug), stamped now.
    func log(_ route: LogRoute, level: Int, _ text: String) {
        log(route, level: level, bytes: Array(text.utf8))
    }

    func log(_ route: LogRoute, level: Int, bytes: [UInt8]) {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        let record = LogRecord(route: route, level: UInt8(level), seconds: Int(time.tv_sec), micros: Int32(time.tv_nsec / 1000), text: bytes)
        let kept = records.withLock { list in
            guard list.count < LogSink.ringCapacity else { return false }
            list.append(record)
            return true
        }
        if kept { sink?.lineQueued() } else { sink?.dropped.wrappingAdd(1, ordering: .relaxed) }
    }

    fileprivate var isEmpty: Bool { records.withLock { $0.isEmpty } }

    fileprivate func take() -> [LogRecord] {
        records.withLock { list in
            guard !list.isEmpty else { return [] }
            var taken: [LogRecord] = []
            taken.reserveCapacity(list.count)
            swap(&taken, &list)
            return taken
        }
    }
}

/// A line waiting in a ring.
struct LogRecord {
    let route: LogRoute
    let level: UInt8
    /// When it was logged (wall clock).
    let seconds: Int
    let micros: Int32
    let text: [UInt8]
}

/// Where one proxy's lines go, with the tag they carry; for a frontend, how it logs sessions.
final class LogRoute: Sendable {
    let targets: [(LogEndpoint, LogTarget)]
    let tag: String
    /// Nil for a backend (server state changes only).
    let logging: SessionLogging?
    /// The frontend's fetches, for a `log-format` with `%[sample]` parts.
    let evaluator: FrontendRouting?
    /// The session line's format; nil: the `Connect from` line at accept.
    let format: LogFormat?
    /// The line is written when the server connection is established (`option logasap`, or a
    /// format with nothing that waits for the end).
    let logsAtConnect: Bool
    /// The frontend's `unique-id-format`.
    let uniqueIDFormat: LogFormat?

    init(targets: [(LogEndpoint, LogTarget)], tag: String, logging: SessionLogging?, evaluator: FrontendRouting? = nil,
         uniqueIDFormat: LogFormat? = nil) {
        self.targets = targets
        self.tag = tag
        self.uniqueIDFormat = uniqueIDFormat
        self.logging = logging
        self.evaluator = evaluator
        if case .format(let format) = logging?.style {
            self.format = format
            logsAtConnect = logging?.logAsap == true || !format.waitsForEnd
        } else {
            format = nil
            logsAtConnect = false
        }
    }
}

/// An opened destination: a descriptor and, for sockets, the address each datagram goes to.
final class LogEndpoint: @unchecked Sendable {
    private let fd: CInt
    private let ownsDescriptor: Bool
    private var address = sockaddr_storage()
    private var addressLength: socklen_t = 0

    init(_ destination: LogTarget.Destination) {
        switch destination {
        case .standardOutput:
            fd = 1
            ownsDescriptor = false
        case .standardError:
            fd = 2
            ownsDescriptor = false
        case .unixDatagram(let path):
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            ownsDescriptor = true
            var un = sockaddr_un()
            un.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8.prefix(MemoryLayout.size(ofValue: un.sun_path) - 1))
            withUnsafeMutableBytes(of: &un.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            withUnsafeMutableBytes(of: &address) { raw in withUnsafeBytes(of: un) { raw.copyMemory(from: $0) } }
            addressLength = socklen_t(MemoryLayout<sockaddr_un>.size)
        case .udp(let ip, let port):
            // The parser accepted only IP literals.
            let target = SocketAddress(ip: ip, port: port)!
            fd = socket(target.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            ownsDescriptor = true
            target.withSockaddr { pointer, length in
                withUnsafeMutableBytes(of: &address) { $0.copyMemory(from: UnsafeRawBufferPointer(start: pointer, count: Int(length))) }
                addressLength = length
            }
        }
    }

    /// Sends one line; false when it was not taken (the counter of dropped lines grows).
    func send(_ line: [UInt8]) -> Bool {
        guard fd >= 0 else { return false }
        if addressLength == 0 {
            // stdout/stderr: one write per line, as HAProxy's fd@ targets (atomic up to PIPE_BUF).
            var written = 0
            while written < line.count {
                let n = line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return false }
                written += n
            }
            return true
        }
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { to in
                line.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL), to, addressLength) }
            }
        }
        return sent == line.count
    }

    func close() {
        if ownsDescriptor && fd >= 0 { _ = Glibc.close(fd) }
    }
}

/// Puts a target's syslog header in front of a line, as HAProxy 2.6 writes them (checked against
/// its output on this machine: `local` `<134>Dec  1 12:48:36 haproxy[21668]: …`, `rfc5424`
/// `<142>1 2026-12-01T12:48:36.323874+00:00 - haproxy 21668 - - …`, and so on).
struct LogFormatter {
    let pid: Int
    var hostName: String?
    private var clock = LogClock()

    init(pid: Int32) { self.pid = Int(pid) }

    mutating func line(_ record: LogRecord, target: LogTarget, tag: String) -> [UInt8] {
        let level = max(Int(record.level), target.minLevel)
        var line = LineBuilder(capacity: 64 + record.text.count)
        func priority(_ line: inout LineBuilder) {
            line.append(byte: 0x3C); line.append(target.facility * 8 + level); line.append(byte: 0x3E)
        }
        func program(_ line: inout LineBuilder) {
            line.append(tag); line.append(byte: 0x5B); line.append(pid); line.append("]: ")
        }
        switch target.format {
        case .local:
            priority(&line); clock.legacy(record.seconds, into: &line); line.append(byte: 0x20); program(&line)
        case .rfc3164:
            priority(&line); clock.legacy(record.seconds, into: &line); line.append(byte: 0x20)
            line.append(hostName ?? "localhost"); line.append(byte: 0x20); program(&line)
        case .rfc5424:
            priority(&line); line.append("1 "); clock.iso(record.seconds, micros: Int(record.micros), into: &line)
            line.append(byte: 0x20); line.append(hostName ?? "-"); line.append(byte: 0x20); line.append(tag)
            line.append(byte: 0x20); line.append(pid); line.append(" - - ")
        case .priority:
            priority(&line)
        case .short:
            line.append(byte: 0x3C); line.append(level); line.append(byte: 0x3E)
        case .timed:
            line.append(byte: 0x3C); line.append(level); line.append(byte: 0x3E)
            clock.iso(record.seconds, micros: Int(record.micros), into: &line); line.append(byte: 0x20)
        case .iso:
            clock.iso(record.seconds, micros: Int(record.micros), into: &line); line.append(byte: 0x20)
        case .raw:
            break
        }
        line.append(record.text)
        var bytes = line.bytes
        // `len` bounds what a syslog socket receives; stdout/stderr lines are not truncated (HAProxy).
        switch target.destination {
        case .udp, .unixDatagram:
            if bytes.count > target.maxLength - 1 { bytes.removeLast(bytes.count - (target.maxLength - 1)) }
        case .standardOutput, .standardError:
            break
        }
        bytes.append(0x0A)
        return bytes
    }
}
