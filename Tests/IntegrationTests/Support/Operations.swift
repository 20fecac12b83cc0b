import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Backends as separate processes (`sluice demo-backend`), so that a deploy script can stop,
/// restart and kill them as it would real services. Pid and port files live in `dir`.
final class ProcessBackends {
    let dir: String
    let names: [String]
    private(set) var ports: [String: Int] = [:]

    init(_ names: [String]) throws {
        dir = TestFiles.folder.appendingPathComponent("sluice-ops-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        self.names = names
        for name in names {
            let port = try Net.closedPort()
            ports[name] = port
            try "\(port)".write(toFile: "\(dir)/\(name).port", atomically: true, encoding: .utf8)
            try run(startCommand(name, suffix: ""))
        }
    }

    /// Starts a backend in the background with only stdin/stdout/stderr (to /dev/null): it must not
    /// inherit the test's sockets, nor the pipes by which the test waits for the shell to finish.
    private func launch(name: String, answer: String) -> String {
        """
        port=$(cat "\(dir)/\(name).port")
        (
          for fd in /proc/self/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-" 2>/dev/null; done
          exec '\(sluiceExecutable())' demo-backend --port "$port" --name "\(answer)" </dev/null >/dev/null 2>&1
        ) &
        echo $! > "\(dir)/\(name).pid"
        until (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 0.02; done
        """
    }

    /// A shell command that starts server `name` (its answers carry `name + suffix`) and returns
    /// once it accepts connections.
    func startCommand(_ name: String, suffix: String) -> String { launch(name: name, answer: name + suffix) }

    /// The deploy's restart: stop the old process (SIGTERM, wait for it), start version 2.
    var restartCommand: String {
        """
        pid=$(cat "\(dir)/$SERVER.pid"); kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
        """ + "\n" + launch(name: "$SERVER", answer: "$SERVER-v2")
    }

    func pid(_ name: String) throws -> Int32 {
        guard let pid = Int32(try String(contentsOfFile: "\(dir)/\(name).pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw Net.Failure("no pid for \(name)")
        }
        return pid
    }

    func run(_ script: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", script]
        try p.run()
        waitForExit(p)
        guard p.terminationStatus == 0 else { throw Net.Failure("script failed (\(p.terminationStatus)): \(script)") }
    }

    func stop() {
        for name in names { if let pid = try? pid(name) { kill(pid, SIGKILL) } }
        try? FileManager.default.removeItem(atPath: dir)
    }
}

/// Clients making fresh-connection HTTP requests through the proxy, each checked for a complete
/// response, until stopped.
final class Load: @unchecked Sendable {
    struct Record { var started: ContinuousClock.Instant; var ok: Bool; var answer: String; var error: String }

    private let port: Int
    private let records = Mutex<[Record]>([])
    private let running = Atomic<Bool>(true)
    private var threads: [Thread] = []
    private let done = DispatchGroup()

    init(port: Int, clients: Int) {
        self.port = port
        for _ in 0..<clients {
            done.enter()
            let thread = Thread { [self] in
                while running.load(ordering: .relaxed) {
                    let started = ContinuousClock.now
                    let record: Record
                    do {
                        let answer = try request()
                        record = Record(started: started, ok: true, answer: answer, error: "")
                    } catch {
                        record = Record(started: started, ok: false, answer: "", error: "\(error)")
                    }
                    records.withLock { $0.append(record) }
                }
                done.leave()
            }
            threads.append(thread)
            thread.start()
        }
    }

    /// One GET /; the body (the server's name) when the response is complete and 200.
    private func request() throws -> String {
        let fd = try Net.connect(port)
        defer { close(fd) }
        try Net.sendAll(fd, "GET / HTTP/1.1\r\nHost: load\r\n\r\n")
        let reply = String(decoding: try Net.readToEnd(fd, timeoutMs: 5000), as: UTF8.self)
        guard reply.hasPrefix("HTTP/1.1 200 OK\r\n"), let split = reply.range(of: "\r\n\r\n"),
              let lengthLine = reply[..<split.lowerBound].split(separator: "\r\n").first(where: { $0.hasPrefix("Content-Length: ") }),
              let length = Int(lengthLine.dropFirst("Content-Length: ".count)) else {
            throw Net.Failure("incomplete or bad response: \(reply.prefix(80).debugDescription)")
        }
        let body = reply[split.upperBound...]
        guard body.utf8.count == length else { throw Net.Failure("body of \(body.utf8.count) bytes, expected \(length)") }
        return body.trimmingCharacters(in: .newlines)
    }

    /// Stops the clients and returns every request made.
    func stop() -> [Record] {
        running.store(false, ordering: .relaxed)
        done.wait()
        threads.removeAll()  // each thread's closure holds self: let both go
        return records.withLock { $0 }
    }

    var count: Int { records.withLock { $0.count } }
}

/// `sluice -f` as a child process, with its stderr in a file.
final class SluiceProcess {
    let process = Process()
    let logPath: String

    init(configPath: String, listenPort: Int, environment: [String: String] = [:]) throws {
        _ = pipeSignalIgnored
        logPath = configPath + ".log"
        process.executableURL = URL(fileURLWithPath: sluiceExecutable())
        process.arguments = ["-f", configPath]
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
        try eventually("sluice listens on \(listenPort)") {
            guard process.isRunning else { throw Net.Failure("sluice exited: \(log)") }
            guard let fd = try? Net.connect(listenPort) else { return false }
            close(fd)
            return true
        }
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func signal(_ s: Int32) { kill(process.processIdentifier, s) }

    func stop() -> Int32 {
        if process.isRunning { process.terminate() }
        return waitForExit(process)
    }
}
