import Foundation
import Synchronization
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// The `sluice` executable, run as an operator would.
extension Loopback {
@Suite struct CommandLineTests {
    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func write(_ text: String, name: String = "sluice.cfg") throws -> String {
        let dir = TestFiles.folder.appendingPathComponent("sluice-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Runs `sluice` (or `executable`) to its end. Both pipes are read at once (a child that fills one while the
    /// test waits on the other would block forever), and a child still running at `deadline` is
    /// killed, so a stuck child fails its test instead of hanging CI.
    static func run(_ arguments: [String], executable: String = sluiceExecutable(), stdin: String? = nil,
                    deadline: Duration = .seconds(60)) throws -> Run {
        _ = pipeSignalIgnored
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        try process.run()
        if let stdin {
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try? input.fileHandleForWriting.close()
        }
        let stderr = Mutex(Data())
        let reader = Thread { stderr.withLock { $0 = err.fileHandleForReading.readDataToEndOfFile() } }
        reader.start()
        let killer = DispatchWorkItem { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(deadline.components.seconds * 1000)), execute: killer)
        let o = out.fileHandleForReading.readDataToEndOfFile()
        waitForExit(process, deadline: deadline + .seconds(5))
        killer.cancel()
        try eventually("the child's standard error is read to its end") { reader.isFinished }
        let e = stderr.withLock { $0 }
        return Run(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    @Test func checkModeAcceptsAValidFileWithExitZero() throws {
        let path = try Self.write("""
            global
              maxconn 100
            defaults
              mode tcp
              timeout connect 5s
            frontend fe
              bind 127.0.0.1:7000
              default_backend be
            backend be
              server a 127.0.0.1:7001 check
            """)
        let run = try Self.run(["-c", "-f", path])
        #expect(run.status == 0)
        #expect(run.stdout == "Configuration file is valid\n")
    }

    /// `-dr`, as HAProxy's: a server whose name does not resolve waits in maintenance instead of
    /// failing the check (or the start), with HAProxy's warning; without it the name is an error.
    /// HAProxy says the same of the same file.
    @Test func dashDRLetsAnUnresolvableServerWaitAsHAProxys() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let path = try Self.write("""
            defaults
              mode tcp
              timeout connect 5s
              timeout client 5s
              timeout server 5s
            frontend fe
              bind 127.0.0.1:7000
              default_backend be
            backend be
              server a no-such-host.invalid:7001 check
              server b 127.0.0.1:7002 init-addr none

            """)
        let strict = try Self.run(["-c", "-f", path])
        #expect(strict.status == 1 && strict.stderr.contains("server 'a': cannot resolve no-such-host.invalid:7001"), "\(strict.stderr)")
        let tolerant = try Self.run(["-dr", "-c", "-f", path])
        #expect(tolerant.status == 0 && tolerant.stdout == "Configuration file is valid\n", "\(tolerant.stderr)")
        #expect(tolerant.stderr.contains("server 'a': could not resolve address 'no-such-host.invalid', disabling server"), "\(tolerant.stderr)")
        // `init-addr` is for names: the IP address of `b` is taken as written (no warning for it).
        #expect(!tolerant.stderr.contains("server 'b'"), "\(tolerant.stderr)")
        let haproxyStrict = try Self.run(["-c", "-f", path], executable: "/usr/sbin/haproxy")
        let haproxyTolerant = try Self.run(["-dr", "-c", "-f", path], executable: "/usr/sbin/haproxy")
        #expect(haproxyStrict.status != 0 && haproxyTolerant.status == 0)
        #expect(haproxyTolerant.stderr.contains("'server be/a' : could not resolve address 'no-such-host.invalid', disabling server."))
        #expect(!haproxyTolerant.stderr.contains("be/b"))
    }

    @Test func checkModeListsEveryErrorWithFileLineAndExitsOne() throws {
        let path = try Self.write("""
            frontend fe
              bind 127.0.0.1:7000
              mode http
              default_backend missing
            backend be
              server a 127.0.0.1:99999
              frobnicate yes
            """)
        let run = try Self.run(["-c", "-f", path])
        #expect(run.status == 1)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains("sluice.cfg:3: error: [frontend 'fe'] 'mode http'"))
        #expect(run.stderr.contains("sluice.cfg:6: error: [backend 'be'] 'server': port 99999"))
        #expect(run.stderr.contains("sluice.cfg:7: error: [backend 'be'] 'frobnicate': unknown keyword"))
        #expect(run.stderr.contains("sluice.cfg:4: error: [frontend 'fe'] 'default_backend': no backend named 'missing'"))
    }

    @Test func everyExampleConfigurationIsValid() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let examples = root.appendingPathComponent("examples")
        let files = try FileManager.default.contentsOfDirectory(atPath: examples.path).filter { $0.hasSuffix(".cfg") }
        #expect(!files.isEmpty)
        for file in files {
            let run = try Self.run(["-c", "-f", examples.appendingPathComponent(file).path])
            #expect(run.status == 0, "\(file): \(run.stderr)")
        }
    }

    /// `sluice cli`: the answer on standard output and exit 0; a socket nobody serves, exit 1 with
    /// the reason (what keepalived's `check_sluice` relies on).
    @Test func cliAsksARuntimeSocketAndSaysWhenNobodyAnswers() throws {
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let path = RuntimeAPITests.socketPath()
        let proxy = try RuntimeAPITests.listenProxy(socket: path, servers: [echo])
        let answered = try Self.run(["cli", "-S", path, "show", "servers", "state", "fe"])
        #expect(answered.status == 0, "\(answered.stderr)")
        #expect(answered.stdout.contains("fe 1 one 127.0.0.1 2 0 1 1 "), "\(answered.stdout)")
        proxy.stop()
        let gone = try Self.run(["cli", "-S", path, "show", "info"])
        #expect(gone.status == 1)
        #expect(gone.stderr.contains("sluice cli: \(path): "), "\(gone.stderr)")
        let silent = try Self.run(["cli", "-S", path])
        #expect(silent.status != 0 && silent.stderr.contains("no command"))
    }

    @Test func missingFileIsAnErrorNamingIt() throws {
        let run = try Self.run(["-c", "-f", "/nonexistent/sluice.cfg"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("/nonexistent/sluice.cfg"))
    }

    @Test func demoRunsAScriptedFailoverWithoutFailedRequests() throws {
        let run = try Self.run(["demo", "--duration", "6s"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("Server api/server01 is DOWN, reason: Layer7 wrong status, code: 503"))
        #expect(run.stdout.contains("Server api/server01 is UP, reason: Layer7 check passed"))
        #expect(run.stdout.contains("Summary:"))
        #expect(run.stdout.contains(" answered, 0 failed"), "\(run.stdout)")
        // The backup answered while both primaries were down.
        let backupLine = run.stdout.split(separator: "\n").last { $0.contains("backup01   backup") }
        let answered = backupLine.flatMap { $0.split(separator: " ").dropLast().last }.flatMap { Int($0) }  // the column before /alive
        #expect((answered ?? 0) > 0, "\(run.stdout)")
    }

    @Test func versionFlagPrintsTheVersion() throws {
        let run = try Self.run(["-v"])
        #expect(run.status == 0)
        #expect(run.stdout.hasPrefix("Sluice version "))
    }

    /// Where the kernel forbids io_uring (sysctl `kernel.io_uring_disabled`, seccomp in containers),
    /// Sluice without `io-engine` runs on epoll and says so; naming io_uring fails the start clearly.
    /// Flipping the sysctl needs root (it is restored afterwards); without it the test has nothing to do.
    @Test func withoutIOUringTheDefaultFallsBackToEpollAndNamingItFails() throws {
        let sysctl = "/proc/sys/kernel/io_uring_disabled"
        guard access(sysctl, W_OK) == 0, let saved = try? String(contentsOfFile: sysctl, encoding: .utf8) else { return }
        try "2\n".write(toFile: sysctl, atomically: false, encoding: .utf8)
        defer { try? saved.write(toFile: sysctl, atomically: false, encoding: .utf8) }
        #expect(!IOEngine.ioUring.isAvailable)

        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let port = try Net.closedPort()
        let path = try Self.write("listen fe\n  bind 127.0.0.1:\(port)\n  server s 127.0.0.1:\(echo.port)\n")
        let sluice = try SluiceProcess(configPath: path, listenPort: port)
        defer { _ = sluice.stop() }
        let fd = try Net.connect(port)
        defer { close(fd) }
        try Net.sendAll(fd, "over epoll\n")
        #expect(String(decoding: try Net.read(fd, count: 11), as: UTF8.self) == "over epoll\n")
        #expect(sluice.log.contains("io_uring is not available to this process"), "\(sluice.log)")
        #expect(sluice.log.contains("(1 thread, epoll)"), "\(sluice.log)")

        let named = try Self.write("global\n  io-engine io_uring\nlisten fe\n  bind 127.0.0.1:\(try Net.closedPort())\n  server s 127.0.0.1:\(echo.port)\n")
        let run = try Self.run(["-f", named])
        #expect(run.status == 1)
        #expect(run.stderr.contains("io-engine io_uring: this kernel does not let the process create an io_uring"), "\(run.stderr)")
    }

    @Test func bindConflictFailsAtStartWithTheAddress() throws {
        let blocker = try TestServer(.silent)  // holds the port without SO_REUSEPORT
        defer { blocker.stop() }
        let path = try Self.write("""
            listen fe
              bind 127.0.0.1:\(blocker.port)
              server a 127.0.0.1:1
            """)
        let run = try Self.run(["-f", path])
        #expect(run.status == 1)
        #expect(run.stderr.contains("cannot listen on 127.0.0.1:\(blocker.port)"))
        #expect(run.stderr.contains("EADDRINUSE"))
    }

    /// `ulimit-n` beyond what the system allows stops the start, as HAProxy 2.6's default
    /// `strict-limits` does; with `no strict-limits` both start with the limit they could get;
    /// `fd-hard-limit` lowers the limit the process runs with. Each under `ulimit -n 4000`.
    @Test func descriptorLimitsAreStrictByDefaultLikeHAProxy() throws {
        let port = try Net.closedPort()
        func config(_ global: String) -> String {
            "global\n\(global)\n" + tcpDefaults() + "listen fe\n  bind 127.0.0.1:\(port)\n  server a 127.0.0.1:1\n"
        }
        func under4000(_ executable: String, _ arguments: String, _ text: String) throws -> Run {
            let path = try Self.write(text)
            return try Self.run(["-c", "ulimit -n 4000 && exec \"$0\" \(arguments) -f \"$1\"", executable, path], executable: "/bin/sh", deadline: .seconds(10))
        }
        let strict = try under4000(sluiceExecutable(), "", config("  ulimit-n 8000"))
        #expect(strict.status == 1 && strict.stderr.contains("cannot raise the descriptor limit to 8000 (ulimit-n): the hard limit is 4000"), "\(strict)")
        func openFiles(_ pid: Int32) throws -> String? {
            try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8).split(separator: "\n")
                .first { $0.hasPrefix("Max open files") }?.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first.map(String.init)
        }
        for (global, expected) in [("  ulimit-n 8000\n  no strict-limits", "4000"), ("  fd-hard-limit 1000", "1000")] {
            let child = try Child(config: config(global), descriptorLimit: 4000, port: port)
            #expect(try openFiles(child.process.processIdentifier) == expected, "\(global)")
            #expect(child.stop() == 0)
        }
        guard HAProxyProcess.requireInstalled() else { return }
        let reference = try under4000("/usr/sbin/haproxy", "-db", config("  ulimit-n 8000"))
        #expect(reference.status != 0 && reference.stderr.contains("Cannot raise FD limit to 8000, limit is 4000."), "HAProxy 2.6: \(reference)")
    }

    /// Starts `sluice -f` under `ulimit -n limit` and waits for it to listen.
    final class Child {
        let process = Process()
        let stderrPath: String

        init(config: String, descriptorLimit: Int, port: Int) throws {
            let path = try CommandLineTests.write(config)
            stderrPath = path + ".stderr"
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "ulimit -n \(descriptorLimit) && exec \"$0\" -f \"$1\" 2>\"$2\"", sluiceExecutable(), path, stderrPath]
            try process.run()
            try eventually("sluice listens on \(port)") {
                guard process.isRunning else { throw Net.Failure("sluice exited: \(log)") }
                guard let fd = try? Net.connect(port) else { return false }
                close(fd)
                return true
            }
        }

        var log: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

        func stop() -> Int32 {
            process.terminate()
            return waitForExit(process)
        }
    }

    @Test(arguments: IOEngine.allCases)
    func descriptorExhaustionPausesAcceptingKeepsSessionsAndRecovers(engine: IOEngine) throws {
        guard engine.isAvailable else { return }  // io_uring may be disabled on this kernel
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let port = try Net.closedPort()
        // 48 descriptors: a dozen for the runtime, epoll, eventfd and listener, the rest for sessions
        // at two each (pipes are given back as soon as they empty, and dropped when descriptors run out).
        let child = try Child(config: """
            global
              io-engine \(engine.rawValue)
            defaults
              timeout connect 2s
              timeout queue 30s
            listen fe
              bind 127.0.0.1:\(port)
              server s 127.0.0.1:\(echo.port)
            """, descriptorLimit: 48, port: port)
        try eventually("the readiness probe's session reaches the server and closes") {
            echo.accepted.load(ordering: .relaxed) == 1 && echo.open.load(ordering: .relaxed) == 0
        }

        // Far more clients than descriptors: each sends a line and waits for it to come back.
        let total = 40
        var clients: [CInt] = []
        defer { for fd in clients where fd >= 0 { close(fd) } }
        for i in 0..<total {
            let fd = try Net.connect(port)
            clients.append(fd)
            try Net.sendAll(fd, String(format: "client %03d\n", i))
        }
        var served = Set<Int>()
        func collect() throws {
            for i in 0..<total where !served.contains(i) && clients[i] >= 0 && Net.waitReadable(clients[i], timeoutMs: 0) {
                let line = String(decoding: try Net.read(clients[i], count: 11), as: UTF8.self)
                #expect(line == String(format: "client %03d\n", i))
                served.insert(i)
            }
        }
        try eventually("sessions fill the descriptor limit") {
            try collect()
            return echo.open.load(ordering: .relaxed) >= 10
        }
        try collect()
        let firstWave = served
        #expect(firstWave.count < total, "every client was served: the limit was never reached")
        #expect(child.process.isRunning)
        try eventually("sluice reports the limit") { child.log.contains("pausing accepts") || child.log.contains("no descriptor left") }

        // Existing sessions still forward.
        for i in firstWave.prefix(3) {
            try Net.sendAll(clients[i], "still here\n")
            #expect(String(decoding: try Net.read(clients[i], count: 11), as: UTF8.self) == "still here\n")
        }
        // Closing the served clients frees descriptors; everyone else gets served in turn.
        try eventually(timeout: .seconds(30), "every client is served") {
            try collect()
            for i in served where clients[i] >= 0 {
                close(clients[i])
                clients[i] = -1
            }
            return served.count == total
        }
        #expect(echo.accepted.load(ordering: .relaxed) == 1 + total)
        #expect(child.stop() == 0)
    }
}
}
