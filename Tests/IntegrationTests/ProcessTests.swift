import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// What a distribution's stock `global` section asks of the process, done for real: `daemon`,
/// `pidfile`, `user`/`group`, `chroot`, and reloads after all of them.
extension Loopback {
@Suite struct ProcessTests {
    static func config(_ global: String, port: Int, server: Int, extra: String = "") -> String {
        """
        global
        \(global)
        \(tcpDefaults())
        frontend fe
          bind 127.0.0.1:\(port)
          default_backend be
        backend be
          server s1 127.0.0.1:\(server)
        \(extra)
        """
    }

    /// One line through the proxy: the identify server answers its name.
    static func answer(_ port: Int) throws -> String {
        let fd = try Net.connect(port)
        defer { close(fd) }
        return String(decoding: try Net.readToEnd(fd), as: UTF8.self)
    }

    static func alive(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 }

    /// CPU seconds (in clock ticks) the process's reactor thread has used, from `/proc`.
    static func workerTicks(_ pid: pid_t) throws -> Int {
        for task in try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") {
            let comm = try String(contentsOfFile: "/proc/\(pid)/task/\(task)/comm", encoding: .utf8)
            guard comm.hasPrefix("sluice-worker0") else { continue }
            let stat = try String(contentsOfFile: "/proc/\(pid)/task/\(task)/stat", encoding: .utf8)
            // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
            let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
            return Int(fields[11])! + Int(fields[12])!
        }
        throw Net.Failure("no reactor thread in \(pid)")
    }

    /// `busy-polling` (HAProxy's global option): the reactor polls instead of sleeping, so an idle
    /// balancer's reactor thread runs all the time; without it the thread sleeps. Both run side by
    /// side until the busy one has used 300 ms of CPU; the other must have used almost none, and
    /// both forward. `no busy-polling` turns it off again.
    @Test func busyPollingKeepsTheReactorRunningAndOnlyThen() throws {
        let server = try TestServer(.identify("one"))
        defer { server.stop() }
        var running: [(SluiceProcess, Int)] = []
        defer { for (sluice, _) in running { _ = sluice.stop() } }
        for global in ["  busy-polling\n  nbthread 1", "  busy-polling\n  no busy-polling\n  nbthread 1"] {
            let port = try Net.closedPort()
            let path = try CommandLineTests.write(Self.config(global, port: port, server: server.port))
            running.append((try SluiceProcess(configPath: path, listenPort: port), port))
        }
        for (_, port) in running { #expect(try Self.answer(port) == "one\n") }
        let (busy, idle) = (running[0].0.process.processIdentifier, running[1].0.process.processIdentifier)
        let (busyStart, idleStart) = (try Self.workerTicks(busy), try Self.workerTicks(idle))
        try eventually(timeout: .seconds(20), "the busy-polling reactor uses CPU while idle") {
            try Self.workerTicks(busy) - busyStart >= 30
        }
        #expect(try Self.workerTicks(idle) - idleStart <= 3, "the sleeping reactor used CPU without traffic")
    }

    /// systemd's `Type=notify` protocol, heard on a datagram socket the test owns as `NOTIFY_SOCKET`:
    /// READY=1 once listening, RELOADING=1 with MONOTONIC_USEC then READY=1 around a reload,
    /// STOPPING=1 at stop, each with a STATUS= line.
    @Test func systemdHearsReadyReloadingAndStopping() throws {
        let server = try TestServer(.identify("one"))
        defer { server.stop() }
        let listener = try NotifyListener()
        defer { listener.close() }
        let port = try Net.closedPort()
        let path = try CommandLineTests.write(Self.config("", port: port, server: server.port))
        let sluice = try SluiceProcess(configPath: path, listenPort: port, environment: ["NOTIFY_SOCKET": listener.path])
        defer { _ = sluice.stop() }
        let ready = try listener.next()
        #expect(ready.contains("READY=1") && ready.contains("MAINPID=\(sluice.process.processIdentifier)") && ready.contains("STATUS=serving: "), "\(ready)")
        #expect(try Self.answer(port) == "one\n")

        var before = timespec()
        clock_gettime(CLOCK_MONOTONIC, &before)
        sluice.signal(SIGHUP)
        let reloading = try listener.next()
        #expect(reloading.contains("RELOADING=1"), "\(reloading)")
        let usec = reloading.split(separator: "\n").first { $0.hasPrefix("MONOTONIC_USEC=") }.flatMap { Int64($0.dropFirst("MONOTONIC_USEC=".count)) }
        let now = Int64(before.tv_sec) * 1_000_000 + Int64(before.tv_nsec) / 1000
        #expect(usec.map { $0 >= now && $0 < now + 10_000_000 } == true, "MONOTONIC_USEC is CLOCK_MONOTONIC at the reload: \(reloading)")
        #expect(try listener.next().contains("READY=1"))

        sluice.signal(SIGTERM)
        let stopping = try listener.next()
        #expect(stopping.contains("STOPPING=1") && stopping.contains("STATUS=stopping"), "\(stopping)")
        #expect(waitForExit(sluice.process) == 0)
    }

    @Test func daemonReturnsOnceListeningAndThePidfileNamesTheRunningProcessUntilSIGTERM() throws {
        let server = try TestServer(.identify("one"))
        defer { server.stop() }
        let port = try Net.closedPort()
        let dir = TestFiles.folder.appendingPathComponent("sluice-daemon-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let pidfile = dir + "/sluice.pid"
        let path = try CommandLineTests.write(Self.config("  daemon\n  pidfile \(pidfile)", port: port, server: server.port))

        let run = try CommandLineTests.run(["-f", path], deadline: .seconds(30))
        #expect(run.status == 0, "stderr: \(run.stderr)")
        // The parent returned only once the child listened: no waiting needed before connecting.
        #expect(try Self.answer(port) == "one\n")
        let text = try String(contentsOfFile: pidfile, encoding: .utf8)
        let pid = try #require(pid_t(text.trimmingCharacters(in: .newlines)))
        #expect(text.hasSuffix("\n"))
        #expect(Self.alive(pid))
        let comm = try String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)
        #expect(comm.hasPrefix("sluice"))
        // In its own session, not the test's.
        #expect(getsid(pid) == pid)

        kill(pid, SIGTERM)
        try eventually("the daemon exits and removes its pidfile") { !Self.alive(pid) && !FileManager.default.fileExists(atPath: pidfile) }
    }

    @Test func daemonThatCannotStartMakesTheParentFailWithTheReason() throws {
        let blocker = try TestServer(.silent)  // holds the port the frontend wants
        defer { blocker.stop() }
        let path = try CommandLineTests.write(Self.config("  daemon", port: blocker.port, server: blocker.port))
        let run = try CommandLineTests.run(["-f", path], deadline: .seconds(30))
        #expect(run.status == 1)
        #expect(run.stderr.contains("cannot listen on 127.0.0.1:\(blocker.port)"), "stderr: \(run.stderr)")
        // -db keeps the foreground even with `daemon`: the same error, from the one process.
        let foreground = try CommandLineTests.run(["-db", "-f", path], deadline: .seconds(30))
        #expect(foreground.status == 1)
        #expect(foreground.stderr.contains("Address already in use"))
    }

    @Test(.enabled(if: getuid() == 0 && getpwnam("nobody") != nil, "needs root and the 'nobody' account"))
    func userNobodyAndChrootAreInForceAndReloadStillReadsTheFiles() throws {
        let one = try TestServer(.identify("one"))
        let two = try TestServer(.identify("two"))
        defer { one.stop(); two.stop() }
        let port = try Net.closedPort()
        let jail = TestFiles.folder.appendingPathComponent("sluice-jail-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: jail, withIntermediateDirectories: true)
        let nobody = try #require(getpwnam("nobody")).pointee
        let global = "  user nobody\n  chroot \(jail)"
        // An `acl -f` list outside the jail: reloads must read it again too.
        let list = jail + "-allowed.lst"
        try "127.0.0.0/8\n".write(toFile: list, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: list) }
        let rules = "  acl allowed src -f \(list)\n  tcp-request connection reject if !allowed\n"
        func config(_ server: Int, extra: String = "") -> String {
            Self.config(global, port: port, server: server, extra: extra).replacingOccurrences(of: "  default_backend be\n", with: rules + "  default_backend be\n")
        }
        let path = try CommandLineTests.write(config(one.port))
        let sluice = try SluiceProcess(configPath: path, listenPort: port)
        defer { _ = sluice.stop() }
        let pid = sluice.process.processIdentifier
        // Listeners open before privileges are dropped; the start notice comes after.
        try eventually("sluice says it started") { sluice.log.contains("started (pid") }

        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let uids = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst()
        let gids = status.split(separator: "\n").first { $0.hasPrefix("Gid:") }?.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst()
        #expect(uids.map(Array.init) == Array(repeating: Substring("\(nobody.pw_uid)"), count: 4), "real, effective, saved and filesystem uid")
        #expect(gids.map(Array.init) == Array(repeating: Substring("\(nobody.pw_gid)"), count: 4))
        #expect(status.contains("Groups:\t\(nobody.pw_gid)") || status.contains("Groups:\t\n") || status.contains("Groups:\t \n"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/root") == jail)
        #expect(try Self.answer(port) == "one\n")

        // Reload after chroot and setuid: the file is read again through the directory opened at
        // start, even though the path no longer exists inside the jail.
        try config(two.port).write(toFile: path, atomically: true, encoding: .utf8)
        sluice.signal(SIGHUP)
        try eventually("the reload points the backend at server two") { (try? Self.answer(port)) == "two\n" }
        #expect(!sluice.log.contains("reload failed"))

        // A reload that needs a privileged port fails clearly, and the running configuration stays.
        let extra = "frontend low\n  bind 127.0.0.1:81\n  default_backend be\n"
        try config(two.port, extra: extra).write(toFile: path, atomically: true, encoding: .utf8)
        sluice.signal(SIGUSR2)  // HAProxy's reload signal, as systemd units send it
        try eventually("the refused reload is logged") { sluice.log.contains("reload failed") }
        #expect(sluice.log.contains("127.0.0.1:81"))
        #expect(sluice.log.contains("Permission denied"))
        #expect(try Self.answer(port) == "two\n")

        // The list itself changed: the next reload reads the new one, and loopback is refused.
        try "10.0.0.0/8\n".write(toFile: list, atomically: true, encoding: .utf8)
        try config(two.port).write(toFile: path, atomically: true, encoding: .utf8)
        sluice.signal(SIGHUP)
        try eventually("the reload applies the new list: loopback clients are closed unanswered") {
            guard let fd = try? Net.connect(port) else { return false }
            defer { close(fd) }
            return (try? Net.readToEnd(fd, resetEnds: true))?.isEmpty == true
        }
    }

    /// An embedding program keeps its SIGPIPE disposition: Sluice blocks the signal on its own
    /// threads (so `splice` to a gone peer returns EPIPE there) instead of ignoring it for the
    /// whole process.
    @Test func theHostsSigpipeDispositionIsLeftAloneAndSluiceThreadsBlockIt() throws {
        /// Whether each of the process's threads named `sluice-worker…` (the reactors) blocks SIGPIPE.
        /// (Counting every thread that blocks it raced with other tests' threads ending.)
        func reactorThreadsBlockingSigpipe() throws -> [Bool] {
            try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").compactMap { tid in
                guard let status = try? String(contentsOfFile: "/proc/self/task/\(tid)/status", encoding: .utf8) else { return nil }
                let lines = status.split(separator: "\n")
                guard lines.first == "Name:\tsluice-worker0" || lines.first == "Name:\tsluice-worker1",
                      let line = lines.first(where: { $0.hasPrefix("SigBlk:") }),
                      let mask = UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
                return mask & (1 << (UInt64(SIGPIPE) - 1)) != 0
            }
        }
        let server = try TestServer(.echo)
        defer { server.stop() }
        var previous = sigaction()
        var dfl = sigaction()
        dfl.__sigaction_handler.sa_handler = SIG_DFL
        sigaction(SIGPIPE, &dfl, &previous)
        defer { sigaction(SIGPIPE, &previous, nil) }
        let proxy = try RunningProxy("global\n  nbthread 2\n" + Self.config("", port: 0, server: server.port))
        var now = sigaction()
        sigaction(SIGPIPE, nil, &now)
        // SIG_DFL is handler 0 (SIG_IGN is 1).
        #expect(withUnsafeBytes(of: now.__sigaction_handler) { $0.load(as: UInt.self) } == 0, "start() changed the process's SIGPIPE disposition")
        let reactors = try reactorThreadsBlockingSigpipe()
        #expect(reactors.count >= 2, "the two reactor threads, by name")
        #expect(reactors.allSatisfy { $0 }, "a reactor thread does not block SIGPIPE")
        proxy.stop()
    }

    /// An embedder's signal path and main path may both wait: the reactor threads are joined once
    /// (joining a joined POSIX thread is undefined behaviour), and every caller returns.
    @Test func waitAndStopMayBeCalledTwiceAndFromTwoThreadsAtOnce() throws {
        let server = try TestServer(.echo)
        defer { server.stop() }
        let socket = Loopback.RuntimeAPITests.socketPath()
        let proxy = try RunningProxy("global\n  nbthread 2\n  stats socket \(socket)\n" + Self.config("", port: 0, server: server.port))
        #expect(FileManager.default.fileExists(atPath: socket))
        proxy.balancer.stop()
        proxy.balancer.stop()
        let balancer = proxy.balancer
        let group = DispatchGroup()
        for _ in 0..<2 {
            group.enter()
            Thread { balancer.wait(); group.leave() }.start()
        }
        #expect(group.wait(timeout: .now() + 20) == .success, "a concurrent wait() did not return")
        balancer.wait()
        balancer.stop(graceful: false)
        balancer.wait()
        #expect(!FileManager.default.fileExists(atPath: socket))
    }

    @Test func unknownUserOrGroupIsAnErrorNamingTheLine() throws {
        let path = try CommandLineTests.write(Self.config("  user no-such-user-sluice\n  group no-such-group-sluice", port: 1, server: 2))
        let run = try CommandLineTests.run(["-c", "-f", path])
        #expect(run.status == 1)
        #expect(run.stderr.contains("sluice.cfg:2: error: [global] 'user': no user named 'no-such-user-sluice' on this system"))
        #expect(run.stderr.contains("sluice.cfg:3: error: [global] 'group': no group named 'no-such-group-sluice' on this system"))
    }
}
}

/// The systemd side of `Type=notify`: a datagram socket whose path goes in `NOTIFY_SOCKET`.
final class NotifyListener {
    let path: String
    private let fd: CInt

    init() throws {
        path = TestFiles.folder.appendingPathComponent("sluice-notify-\(UUID().uuidString.prefix(8))").path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard rc == 0 else { throw Net.Failure("bind \(path): \(String(cString: strerror(errno)))") }
    }

    /// The next notification, waiting up to `timeoutMs`.
    func next(timeoutMs: Int = 10_000) throws -> String {
        guard Net.waitReadable(fd, timeoutMs: timeoutMs) else { throw Net.Failure("no notification within \(timeoutMs) ms") }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n > 0 else { throw Net.Failure("recv: \(String(cString: strerror(errno)))") }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }

    func close() {
        Glibc.close(fd)
        unlink(path)
    }
}
