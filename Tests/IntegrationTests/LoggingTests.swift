import Foundation
import Synchronization
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// A syslog server on 127.0.0.1 over UDP: every datagram it receives, in order.
final class SyslogReceiver: @unchecked Sendable {
    let port: Int
    private let fd: CInt
    private let received = Mutex<[String]>([])
    private let stopping = Atomic<Bool>(false)
    private var thread: Thread?

    init() throws {
        let socketFD = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = Net.address(0)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { throw Net.Failure("bind UDP: \(String(cString: strerror(errno)))") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socketFD, $0, &length) } }
        fd = socketFD
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while !stopping.load(ordering: .relaxed) {
                var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&ready, 1, 50) > 0 else { continue }
                let n = recv(fd, &buffer, buffer.count, 0)
                if n > 0 { received.withLock { $0.append(String(decoding: buffer[..<n], as: UTF8.self)) } }
            }
        }
        self.thread = thread
        thread.start()
    }

    var lines: [String] { received.withLock { $0 } }

    /// Waits until `count` datagrams have arrived, then returns them all.
    func wait(for count: Int, timeout: Duration = .seconds(10)) throws -> [String] {
        try eventually(timeout: timeout, "\(count) log lines on port \(port) (have \(lines.count): \(lines))") { lines.count >= count }
        return lines
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        while thread?.isFinished == false { usleep(1000) }
        close(fd)
    }

    deinit { stop() }
}

extension Loopback {
/// HAProxy's logs: `log` targets with each header format, the `Connect from` line and
/// `option tcplog`'s line with its termination states, compared with HAProxy 2.6 on the same
/// configuration in the same run; `option dontlognull`; server state changes in a backend's log;
/// and a real syslog daemon (rsyslog) receiving over UDP and a UNIX datagram socket.
@Suite struct LoggingTests {
    /// The parts of a line that differ between two runs (times, pids, ports, timers), made equal.
    static func normalized(_ line: String, ports: [Int: String]) -> String {
        var text = line
        for (port, name) in ports { text = text.replacingOccurrences(of: ":\(port) ", with: ":<\(name)> ") }
        let patterns: [(String, String)] = [
            (#"[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d"#, "<date>"),
            (#"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d"#, "<iso>"),
            (#"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\]"#, "[<accept>]"),
            (#"lb\[\d+\]"#, "lb[<pid>]"), (#" lb \d+ - - "#, " lb <pid> - - "),
            (#"127\.0\.0\.1:\d+ \["#, "127.0.0.1:<cport> ["), (#"from 127\.0\.0\.1:\d+ to"#, "from 127.0.0.1:<cport> to"),
            (#" -?\d+/-?\d+/\d+ "#, " <Tw>/<Tc>/<Tt> "),
        ]
        for (pattern, replacement) in patterns {
            text = text.replacingOccurrences(of: pattern, with: replacement, options: .regularExpression)
        }
        return text
    }

    @Test func linesMatchHAProxysInEveryFormatAndTerminationState() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let echo = try TestServer(.echo), silent = try TestServer(.holdOpen)
        defer { echo.stop(); silent.stop() }
        let refused = try Net.closedPort()
        let sluiceLogs = try SyslogReceiver(), haproxyLogs = try SyslogReceiver()
        defer { sluiceLogs.stop(); haproxyLogs.stop() }
        // Each frontend is one case; `fe`'s port is different for the two balancers.
        let names = ["connect", "normal", "refused", "clienttimeout", "servertimeout", "rejected", "null", "reset"]
        let sluiceSocket = Loopback.RuntimeAPITests.socketPath(), haproxySocket = Loopback.RuntimeAPITests.socketPath()
        func config(logPort: Int, ports: [Int], socket: String) -> String {
            let formats = ["local", "rfc3164", "rfc5424", "priority", "short", "timed", "iso", "raw"]
            return """
                global
                  stats socket \(socket) level admin
                  log-tag lb
                \(formats.map { "  log 127.0.0.1:\(logPort) format \($0) local0 info" }.joined(separator: "\n"))
                defaults
                  mode tcp
                  log global
                  timeout connect 1s
                  timeout client 5s
                  timeout server 5s
                frontend connect
                  bind 127.0.0.1:\(ports[0])
                  default_backend echo
                frontend normal
                  option tcplog
                  bind 127.0.0.1:\(ports[1])
                  default_backend echo
                frontend refused
                  option tcplog
                  bind 127.0.0.1:\(ports[2])
                  default_backend refused
                frontend clienttimeout
                  option tcplog
                  timeout client 300ms
                  bind 127.0.0.1:\(ports[3])
                  default_backend silent
                frontend servertimeout
                  option tcplog
                  bind 127.0.0.1:\(ports[4])
                  default_backend slow
                frontend rejected
                  option tcplog
                  tcp-request inspect-delay 1s
                  tcp-request content reject if { req.len gt 0 }
                  bind 127.0.0.1:\(ports[5])
                  default_backend echo
                frontend null
                  option tcplog
                  option dontlognull
                  bind 127.0.0.1:\(ports[6])
                  default_backend echo
                frontend reset
                  option tcplog
                  bind 127.0.0.1:\(ports[7])
                  default_backend silent
                backend echo
                  server e1 127.0.0.1:\(echo.port)
                backend refused
                  retries 0
                  server r1 127.0.0.1:\(refused)
                backend silent
                  server s1 127.0.0.1:\(silent.port)
                backend slow
                  timeout server 300ms
                  server s1 127.0.0.1:\(silent.port)

                """
        }
        let sluicePorts = try names.map { _ in try Net.closedPort() }
        let haproxyPorts = try names.map { _ in try Net.closedPort() }
        let proxy = try RunningProxy(config(logPort: sluiceLogs.port, ports: sluicePorts, socket: sluiceSocket))
        defer { proxy.stop() }
        let haproxy = try HAProxyProcess(config: config(logPort: haproxyLogs.port, ports: haproxyPorts, socket: haproxySocket), port: haproxyPorts[0])
        defer { haproxy.stop() }

        /// The case `run` is at, for a failure's message (which balancer, which case).
        var step = ""
        func labelled(_ balancer: String, _ body: () throws -> [[String]]) throws -> [[String]] {
            do { return try body() } catch { throw Net.Failure("\(balancer), case '\(step)': \(error)") }
        }

        /// The same clients against each balancer, one case at a time; the lines each case writes.
        func run(_ ports: [Int], _ logs: SyslogReceiver, socket: String) throws -> [[String]] {
            var perCase: [[String]] = []
            var seen = logs.lines.count
            // A case's lines: the 8 it must write (one per format); one more would show up as a
            // difference in the next case. The next case starts once the balancer has closed
            // every session (the counters in the line would otherwise depend on timing).
            func collect(_ expected: Int) throws {
                try eventually("no session open") { try StatsClient.ask(socket, "show info").contains("\nCurrConns: 0\n") }
                let all = try logs.wait(for: seen + expected)
                perCase.append(Array(all[seen...]))
                seen = all.count
            }
            func exchange(_ port: Int, _ text: String) throws -> [UInt8] {
                let fd = try Net.connect(port)
                defer { close(fd) }
                try Net.sendAll(fd, text)
                shutdown(fd, Int32(SHUT_WR))
                return try Net.readToEnd(fd, resetEnds: true)
            }
            step = names[0]
            #expect(try exchange(ports[0], "hello") == Array("hello".utf8))
            try collect(8)
            step = names[1]
            #expect(try exchange(ports[1], "hello") == Array("hello".utf8))
            try collect(8)
            step = names[2]
            _ = try exchange(ports[2], "hello")
            try collect(8)
            // Idle client, server holds: `timeout client` (300 ms) ends it. HAProxy 2.6 ends an idle
            // TCP session only once the other side's timeout has passed too (here `timeout server`,
            // 5 s: measured 5.00 s), so the wait must be well beyond 5 s — at 5,000 ms it raced
            // HAProxy's close and lost about one run in two on a loaded machine.
            step = names[3]
            let idle = try Net.connect(ports[3])
            _ = try Net.readToEnd(idle, timeoutMs: 10_000, resetEnds: true)
            close(idle)
            try collect(8)
            // The client sent something, the server never answers: `timeout server` (300 ms).
            step = names[4]
            let waiting = try Net.connect(ports[4])
            try Net.sendAll(waiting, "anyone?")
            _ = try Net.readToEnd(waiting, timeoutMs: 5000, resetEnds: true)
            close(waiting)
            try collect(8)
            step = names[5]
            _ = try exchange(ports[5], "no entry")
            try collect(8)
            // dontlognull: a probe that sends nothing is not logged; the next session is.
            step = names[6]
            close(try Net.connect(ports[6]))
            try eventually("the probe's session is closed") { try StatsClient.ask(socket, "show info").contains("\nCurrConns: 0\n") }
            #expect(try exchange(ports[6], "data") == Array("data".utf8))
            try collect(8)
            // The client resets in the middle of a session.
            step = names[7]
            let resetting = try Net.connect(ports[7])
            try Net.sendAll(resetting, "partial")
            usleep(100_000)
            var hard = linger(l_onoff: 1, l_linger: 0)
            setsockopt(resetting, SOL_SOCKET, SO_LINGER, &hard, socklen_t(MemoryLayout<linger>.size))
            close(resetting)
            try collect(8)
            return perCase
        }
        let sluiceLines = try labelled("Sluice") { try run(sluicePorts, sluiceLogs, socket: sluiceSocket) }
        let haproxyLines = try labelled("HAProxy") { try run(haproxyPorts, haproxyLogs, socket: haproxySocket) }
        var portNames: [Int: String] = [echo.port: "echo", silent.port: "silent", refused: "refused"]
        for (n, name) in names.enumerated() {
            portNames[sluicePorts[n]] = "fe"
            portNames[haproxyPorts[n]] = "fe"
            let ours = sluiceLines[n].map { Self.normalized($0, ports: portNames) }
            let theirs = haproxyLines[n].map { Self.normalized($0, ports: portNames) }
            #expect(ours == theirs, "frontend '\(name)': Sluice wrote\n\(sluiceLines[n].joined())\nHAProxy 2.6 wrote\n\(haproxyLines[n].joined())")
        }
    }
}
}

/// rsyslogd from Debian, on a UDP port and a UNIX datagram socket of its own, writing
/// `facility.severity tag |message|` lines to a file the test reads.
final class RsyslogServer {
    static let path = "/usr/sbin/rsyslogd"
    static var available: Bool { FileManager.default.isExecutableFile(atPath: path) }

    let directory: String
    let port: Int
    var socketPath: String { directory + "/log.sock" }
    private let output: String
    private let pid: pid_t

    init() throws {
        directory = TestFiles.folder.appendingPathComponent("sluice-rs-\(UUID().uuidString.prefix(6))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        output = directory + "/out.log"
        port = try DNSServer.freeUDPPort()
        let conf = directory + "/rsyslog.conf"
        try """
            global(workDirectory="\(directory)")
            module(load="imudp")
            module(load="imuxsock" SysSock.Use="off")
            input(type="imudp" address="127.0.0.1" port="\(port)")
            input(type="imuxsock" Socket="\(directory)/log.sock")
            template(name="line" type="string" string="%syslogfacility-text%.%syslogseverity-text% %syslogtag% |%msg%|\\n")
            *.* action(type="omfile" file="\(output)" template="line")

            """.write(toFile: conf, atomically: true, encoding: .utf8)
        pid = try Spawn.start(Self.path, ["-n", "-f", conf, "-i", directory + "/pid"], output: directory + "/rsyslogd.out")
        // Ready once a probe sent over UDP reaches the file.
        let probe = try SyslogReceiver.sender()
        defer { close(probe) }
        try eventually("rsyslogd writes what it receives on port \(port)") {
            SyslogReceiver.send(probe, "<134>Dec  1 00:00:00 probe[1]: ready", port: port)
            return lines.contains { $0.contains("ready") } && FileManager.default.fileExists(atPath: socketPath)
        }
    }

    var lines: [String] {
        ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func stop() {
        Spawn.stop(pid)
        try? FileManager.default.removeItem(atPath: directory)
    }
}

extension SyslogReceiver {
    static func sender() throws -> CInt {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw Net.Failure("socket: \(String(cString: strerror(errno)))") }
        return fd
    }

    static func send(_ fd: CInt, _ text: String, port: Int) {
        var address = Net.address(port)
        _ = text.withCString { bytes in
            withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, strlen(bytes), 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
    }
}

extension Loopback.LoggingTests {
    /// A real syslog daemon: session lines over UDP at info; a server going DOWN reaches both
    /// targets as an alert — on the UNIX socket capped at crit by its minimum level, and the
    /// session lines filtered out there by its maximum level (notice).
    @Test(.enabled(if: RsyslogServer.available, "needs rsyslogd (scripts/test installs rsyslog)"))
    func rsyslogReceivesSessionsAndServerStatesOverUDPAndAUNIXSocket() throws {
        let rsyslog = try RsyslogServer()
        defer { rsyslog.stop() }
        let echo = try TestServer(.echo), doomed = try TestServer(.echo)
        defer { echo.stop() }
        let proxy = try RunningProxy("""
            global
              log 127.0.0.1:\(rsyslog.port) local0
              log \(rsyslog.socketPath) local1 notice crit
              log-tag sluice-test
            defaults
              mode tcp
              log global
              timeout connect 1s
              timeout client 5s
              timeout server 5s
            frontend fe
              option tcplog
              bind 127.0.0.1:0
              default_backend be
            backend be
              server doomed 127.0.0.1:\(doomed.port) check inter 100ms fall 1 rise 1
              server echo 127.0.0.1:\(echo.port) check inter 100ms fall 1 rise 1 backup
            """)
        defer { proxy.stop() }
        let fd = try Net.connect(proxy.port)
        try Net.sendAll(fd, "ping")
        shutdown(fd, Int32(SHUT_WR))
        #expect(try Net.readToEnd(fd) == Array("ping".utf8))
        close(fd)
        try eventually("the session's line over UDP") { rsyslog.lines.contains { $0.hasPrefix("local0.info sluice-test[") && $0.contains(" fe be/doomed ") } }
        doomed.stop()
        try eventually("the DOWN line on both targets") {
            rsyslog.lines.contains { $0.hasPrefix("local0.alert sluice-test[") && $0.contains("| Server be/doomed is DOWN, reason: Layer4 connection problem") }
                && rsyslog.lines.contains { $0.hasPrefix("local1.crit sluice-test[") && $0.contains("| Server be/doomed is DOWN, reason:") }
        }
        let lines = rsyslog.lines
        #expect(!lines.contains { $0.hasPrefix("local1.info") }, "the UNIX target takes notice and more severe only: \(lines)")
        let session = try #require(lines.first { $0.hasPrefix("local0.info") && $0.contains(" fe be/doomed ") })
        #expect(session.range(of: #"\| 127\.0\.0\.1:\d+ \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\] fe be/doomed \d+/\d+/\d+ 4 -- 1/1/0/0/0 0/0\|$"#, options: .regularExpression) != nil, "\(session)")
    }
}

extension Loopback.LoggingTests {
    /// `%sq/%bq` and the counters of sessions that waited for a server at its `maxconn`: the same
    /// three clients through Sluice and HAProxy 2.6, the same three lines.
    @Test func queuedSessionsLogTheirPlaceInTheQueueLikeHAProxy() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let sluiceLogs = try SyslogReceiver(), haproxyLogs = try SyslogReceiver()
        defer { sluiceLogs.stop(); haproxyLogs.stop() }
        func config(logPort: Int, port: Int, socket: String) -> String {
            """
            global
              nbthread 1
              stats socket \(socket) level admin
              log 127.0.0.1:\(logPort) format raw local0
            defaults
              mode tcp
              log global
              option tcplog
              timeout connect 1s
              timeout client 5s
              timeout server 5s
              timeout queue 5s
            frontend queued
              bind 127.0.0.1:\(port)
              default_backend one
            backend one
              server s1 127.0.0.1:\(echo.port) maxconn 1

            """
        }
        let sluicePort = try Net.closedPort(), haproxyPort = try Net.closedPort()
        let sluiceSocket = Loopback.RuntimeAPITests.socketPath(), haproxySocket = Loopback.RuntimeAPITests.socketPath()
        let proxy = try RunningProxy(config(logPort: sluiceLogs.port, port: sluicePort, socket: sluiceSocket))
        defer { proxy.stop() }
        let haproxy = try HAProxyProcess(config: config(logPort: haproxyLogs.port, port: haproxyPort, socket: haproxySocket), port: haproxyPort)
        defer { haproxy.stop() }

        func run(_ port: Int, _ socket: String, _ logs: SyslogReceiver) throws -> [String] {
            func backendQueue() throws -> String? {
                try StatsClient.ask(socket, "show stat").split(separator: "\n").first { $0.hasPrefix("one,BACKEND,") }?
                    .split(separator: ",", omittingEmptySubsequences: false).dropFirst(2).first.map(String.init)
            }
            // One at a time, so that the order is theirs to keep: a holds the slot, b then c wait.
            var clients: [CInt] = []
            for (n, text) in ["a", "b", "c"].enumerated() {
                let fd = try Net.connect(port)
                try Net.sendAll(fd, text)
                clients.append(fd)
                if n == 0 {
                    #expect(String(decoding: try Net.read(fd, count: 1), as: UTF8.self) == "a")
                } else {
                    try eventually("\(text) waits in the backend's queue") { try backendQueue() == "\(n)" }
                }
            }
            for (n, (fd, text)) in zip(clients, ["a", "b", "c"]).enumerated() {
                if n > 0 { #expect(String(decoding: try Net.read(fd, count: 1), as: UTF8.self) == text) }
                shutdown(fd, Int32(SHUT_WR))
                _ = try Net.readToEnd(fd)
                close(fd)
                _ = try logs.wait(for: n + 1)
            }
            return logs.lines
        }
        func lines(_ who: String, _ port: Int, _ socket: String, _ logs: SyslogReceiver) throws -> [String] {
            do {
                return try run(port, socket, logs).map { Loopback.LoggingTests.normalized($0, ports: [port: "fe"]) }
            } catch {
                Issue.record("\(who): \(error); its lines: \(logs.lines)")
                throw error
            }
        }
        let ours = try lines("Sluice", sluicePort, sluiceSocket, sluiceLogs)
        let theirs = try lines("HAProxy", haproxyPort, haproxySocket, haproxyLogs)
        #expect(ours == theirs, "Sluice wrote\n\(ours.joined())\nHAProxy 2.6 wrote\n\(theirs.joined())")
        #expect(ours.map { $0.split(separator: " ").last.map(String.init) ?? "" } == ["0/0\n", "0/1\n", "0/2\n"])
        // The two that waited are in the backend's queue-time histogram (`sluice_backend_queue_time_seconds`).
        let waits = proxy.balancer.statistics().backend(named: "one")?.queueTime
        #expect(waits?.count == 2 && waits?.cumulativeCounts.count == 19, "\(String(describing: waits))")
    }
}
