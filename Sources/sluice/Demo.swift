import ArgumentParser
import Logging
import Sluice
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `sluice demo`: the reference topology running in one process, with a live view.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run two HTTP servers and a backup behind Sluice, with health checks and a live view.",
        discussion: """
            Starts three small HTTP servers on loopback (server01, server02, backup01), Sluice in front \
            of them with HTTP checks on /alive, and a client that sends a request every 100 ms. In a \
            terminal, keys 1, 2 and 3 flip a server's /alive between 200 and 503 so you can watch failover \
            to the backup and back; q or Ctrl-C quits. With --duration (or without a terminal) it runs a \
            scripted failover instead and prints a summary.
            """
    )

    @Option(help: "Port for the balancer on 127.0.0.1 (0: any free port).")
    var port: Int = 0

    @Option(help: "Run non-interactively for this long (e.g. 10s), scripting a failover, then print a summary.")
    var duration: String?

    func run() throws {
        var runFor: Duration?
        if let duration {
            guard let d = Duration(haproxyTime: duration) else {
                throw ValidationError("--duration '\(duration)' is not a time such as 10s or 1500ms")
            }
            runFor = d
        }
        let interactive = runFor == nil && isatty(0) == 1 && isatty(1) == 1
        let events = EventLog(echo: !interactive)
        LoggingSystem.bootstrap { _ in events }

        let servers = try ["server01", "server02", "backup01"].map { try DemoServer(name: $0) }
        defer { servers.forEach { $0.stop() } }
        let text = """
            global
              spread-checks 5
            defaults
              mode tcp
              timeout connect 1s
              timeout client 10s
              timeout server 10s
              retries 3
              option redispatch
            frontend api
              bind 127.0.0.1:\(port)
              default_backend api
            backend api
              balance roundrobin
              option httpchk GET /alive HTTP/1.1
              http-check send hdr Host api.local
              default-server inter 1s fastinter 250ms rise 2 fall 2 on-marked-up shutdown-backup-sessions
              server server01 127.0.0.1:\(servers[0].port) check
              server server02 127.0.0.1:\(servers[1].port) check
              server backup01 127.0.0.1:\(servers[2].port) check backup
            """
        let configuration = try Configuration.parse(text, file: "demo.cfg").configuration
        let balancer = try LoadBalancer(configuration: configuration, logger: Logger(label: "sluice"))
        try balancer.start()
        defer { balancer.stop(graceful: false); balancer.wait() }
        guard let address = balancer.listeningAddresses(of: "api").first, let backend = balancer.backend(named: "api") else {
            throw DemoError("the demo balancer did not start")
        }
        let traffic = Traffic(port: address.port)
        traffic.start()
        defer { traffic.stop() }

        if !interactive {
            print("Sluice demo: balancer on \(address), servers on ports \(servers.map { String($0.port) }.joined(separator: ", ")).")
            print(text.split(separator: "\n").map { "  | " + $0 }.joined(separator: "\n"))
        }
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        let terminal = interactive ? RawTerminal() : nil
        defer { terminal?.restore() }

        let clock = ContinuousClock()
        let start = clock.now
        var lastDraw = start - .seconds(2)
        var script: [(at: Double, label: String, action: () -> Void)] = [
            (0.25, "server01 and server02 now fail /alive (503)", { servers[0].healthy.store(false, ordering: .relaxed); servers[1].healthy.store(false, ordering: .relaxed) }),
            (0.6, "server01 and server02 recover", { servers[0].healthy.store(true, ordering: .relaxed); servers[1].healthy.store(true, ordering: .relaxed) }),
        ]
        loop: while true {
            var timeout = timespec(tv_sec: 0, tv_nsec: 100_000_000)
            let signal = sigtimedwait(&signals, nil, &timeout)
            if signal == SIGINT || signal == SIGTERM { break }
            let elapsed = clock.now - start
            if let runFor {
                let fraction = elapsed.seconds / max(runFor.seconds, 0.001)
                while let step = script.first, fraction >= step.at {
                    events.log("demo: \(step.label)")
                    step.action()
                    script.removeFirst()
                }
                if elapsed >= runFor { break }
            }
            var redraw = false
            if let terminal {
                while let key = terminal.readKey() {
                    switch key {
                    case "q", "Q": break loop
                    case "1", "2", "3":
                        let server = servers[Int(String(key))! - 1]
                        let healthy = !server.healthy.load(ordering: .relaxed)
                        server.healthy.store(healthy, ordering: .relaxed)
                        events.log("demo: \(server.name)'s /alive now answers \(healthy ? 200 : 503)")
                        redraw = true
                    default: break
                    }
                }
            }
            if interactive && (redraw || clock.now - lastDraw >= .seconds(1)) {
                lastDraw = clock.now
                draw(address: address, backend: backend, servers: servers, traffic: traffic, events: events)
            }
        }
        if interactive { print("\u{1B}[2J\u{1B}[H", terminator: "") }
        summary(backend: backend, servers: servers, traffic: traffic)
    }

    private func table(backend: BackendState, servers: [DemoServer]) -> [String] {
        var lines = ["  server     role     state       last check              sessions  answered  /alive"]
        for (state, server) in zip(backend.servers, servers) {
            let check = state.lastCheck
            let checkText = "\(check.status.rawValue)\(check.code.map { " \($0)" } ?? "") in \(check.durationMs)ms"
            lines.append("  " + [state.name.padded(10), (state.isBackup ? "backup" : "primary").padded(8), state.status.padded(11),
                                 checkText.padded(23), String(state.statistics.currentSessions).padded(9),
                                 String(server.served.load(ordering: .relaxed)).padded(9),
                                 server.healthy.load(ordering: .relaxed) ? "200" : "503"].joined(separator: " "))
        }
        return lines
    }

    private func draw(address: SocketAddress, backend: BackendState, servers: [DemoServer], traffic: Traffic, events: EventLog) {
        var out = "\u{1B}[2J\u{1B}[H"
        out += "Sluice demo: balancer on \(address). A client sends a request every 100 ms.\n\n"
        out += table(backend: backend, servers: servers).joined(separator: "\n") + "\n\n"
        let (ok, failed, recent) = traffic.snapshot()
        out += "  last answers: \(recent.joined(separator: " "))\n"
        out += "  requests: \(ok) answered, \(failed) failed\n\n"
        out += "  Keys: 1, 2, 3 flip /alive of server01, server02, backup01 between 200 and 503; q quits.\n"
        out += "  Or from another terminal:  curl http://\(address)/    curl http://127.0.0.1:\(servers[0].port)/fail    curl http://127.0.0.1:\(servers[0].port)/recover\n\n"
        out += "  Events:\n" + events.recent(8).map { "    " + $0 }.joined(separator: "\n") + "\n"
        out.withUTF8 { _ = write(1, $0.baseAddress, $0.count) }
    }

    private func summary(backend: BackendState, servers: [DemoServer], traffic: Traffic) {
        let (ok, failed, _) = traffic.snapshot()
        print("Summary:")
        print(table(backend: backend, servers: servers).joined(separator: "\n"))
        print("  requests: \(ok) answered, \(failed) failed")
    }
}

/// `sluice demo-backend`: one of the demo's HTTP servers on its own, for trying deploy scripts.
struct DemoBackend: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-backend",
        abstract: "Run a tiny HTTP server on 127.0.0.1 that answers with its name and serves /alive (for demos and tests).",
        discussion: "GET /alive answers 200, or 503 after GET /fail (GET /recover undoes it); any other path answers 200 with the name."
    )

    @Option(help: "Port on 127.0.0.1.")
    var port: Int

    @Option(help: "The name every answer carries.")
    var name: String

    func run() throws {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        let server = try DemoServer(name: name, port: port)
        let line = "\(name) listening on 127.0.0.1:\(server.port)\n"
        line.utf8CString.withUnsafeBufferPointer { _ = write(1, $0.baseAddress, line.utf8.count) }
        var received: CInt = 0
        sigwait(&signals, &received)
        server.stop()
    }
}

/// The demo's client: one request every 100 ms through the balancer, remembering who answered.
final class Traffic: @unchecked Sendable {
    private let port: Int
    private let state = Mutex<(ok: Int, failed: Int, recent: [String])>((0, 0, []))
    private let running = Atomic<Bool>(true)
    private var thread = pthread_t()

    init(port: Int) { self.port = port }

    func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        pthread_create(&thread, nil, { arg in
            let traffic = Unmanaged<Traffic>.fromOpaque(arg!).takeRetainedValue()
            while traffic.running.load(ordering: .relaxed) {
                let answer = traffic.request()
                traffic.state.withLock { s in
                    if answer != nil { s.ok += 1 } else { s.failed += 1 }
                    s.recent.append(answer ?? "FAILED")
                    if s.recent.count > 12 { s.recent.removeFirst() }
                }
                usleep(100_000)  // the demo's request rate, not a synchronisation
            }
            return nil
        }, box)
    }

    func stop() {
        running.store(false, ordering: .relaxed)
        pthread_join(thread, nil)
    }

    func snapshot() -> (Int, Int, [String]) { state.withLock { ($0.ok, $0.failed, $0.recent) } }

    /// GET / through the balancer; the body names the server, nil on any failure.
    private func request() -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = "GET / HTTP/1.1\r\nHost: demo\r\n\r\n"
        guard request.withCString({ send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }) > 0 else { return nil }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            reply += buffer[0..<n]
        }
        let text = String(decoding: reply, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200"), let body = text.firstRange(of: "\r\n\r\n") else { return nil }
        return String(text[body.upperBound...]).trimmingCharacters(in: "\n")
    }
}

/// Keeps the balancer's log lines for the view (and prints them as they come when not drawing).
final class EventLog: LogHandler, @unchecked Sendable {
    private let lines = Mutex<[String]>([])
    private let echo: Bool
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .notice

    init(echo: Bool) { self.echo = echo }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        log("\(event.message)")
    }

    func log(_ text: String) {
        var stamp = timespec()
        clock_gettime(CLOCK_REALTIME, &stamp)
        var tm = tm()
        var seconds = stamp.tv_sec
        localtime_r(&seconds, &tm)
        let line = String(format2: tm.tm_hour) + ":" + String(format2: tm.tm_min) + ":" + String(format2: tm.tm_sec) + " " + text
        lines.withLock { $0.append(line); if $0.count > 100 { $0.removeFirst() } }
        if echo { print(line) }
    }

    func recent(_ n: Int) -> [String] { lines.withLock { Array($0.suffix(n)) } }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

extension String {
    func padded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }

    init(format2 value: Int32) { self = value < 10 ? "0\(value)" : "\(value)" }

    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let last = s.last, set.contains(last) { s = s.dropLast() }
        return String(s)
    }
}
