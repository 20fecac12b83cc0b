import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// The promise: deploys, crashes and reloads under load without one failed request.
extension Loopback {
@Suite struct ZeroDowntimeTests {
    struct Topology {
        let backends: ProcessBackends
        let port: Int
        let socket: String
        let configPath: String
        let sluice: SluiceProcess

        init(extraServers: String = "", echo: (server: Int, listen: Int)? = nil) throws {
            backends = try ProcessBackends(["server01", "server02", "backup01"])
            port = try Net.closedPort()
            socket = RuntimeAPITests.socketPath()
            configPath = backends.dir + "/sluice.cfg"
            try Self.config(backends, port: port, socket: socket, servers: """
                  server server01 127.0.0.1:\(backends.ports["server01"]!) check
                  server server02 127.0.0.1:\(backends.ports["server02"]!) check
                  server backup01 127.0.0.1:\(backends.ports["backup01"]!) check backup
                """ + extraServers, echo: echo).write(toFile: configPath, atomically: true, encoding: .utf8)
            sluice = try SluiceProcess(configPath: configPath, listenPort: port)
            let socket = self.socket
            try eventually("every server passed a check") {
                let state = (try? StatsClient.ask(socket, "show servers state api")) ?? ""
                return state.split(separator: "\n").filter { $0.hasPrefix("1 api ") }.allSatisfy { $0.split(separator: " ")[11] == "3" }
                    && state.contains("backup01")
            }
        }

        static func config(_ backends: ProcessBackends, port: Int, socket: String, servers: String, echo: (server: Int, listen: Int)?, weight: Int = 1) -> String {
            var text = """
                global
                  stats socket \(socket) mode 600 level admin
                defaults
                  mode tcp
                  timeout connect 1s
                  timeout client 30s
                  timeout server 30s
                  retries 3
                  option redispatch
                frontend api
                  bind 127.0.0.1:\(port)
                  default_backend api
                backend api
                  balance roundrobin
                  option httpchk GET /alive HTTP/1.1
                  http-check send hdr Host api.local
                  default-server inter 200ms fastinter 100ms rise 2 fall 2 observe layer4 weight \(weight)
                \(servers)

                """
            if let echo {
                text += """
                    listen echo
                      bind 127.0.0.1:\(echo.listen)
                      server e 127.0.0.1:\(echo.server)

                    """
            }
            return text
        }

        func stop() {
            #expect(sluice.stop() == 0)
            #expect(access(socket, F_OK) != 0, "the stats socket was left behind")
            backends.stop()
        }
    }

    static func runFor(_ seconds: Duration, _ load: Load, during action: () throws -> Void) throws -> [Load.Record] {
        let start = ContinuousClock.now
        try eventually("the load is flowing") { load.count >= 20 }
        try action()
        while ContinuousClock.now - start < seconds { usleep(50_000) }  // keep the load going; not a synchronisation
        return load.stop()
    }

    @Test func rollingDeployScriptCostsNoRequest() throws {
        let t = try Topology()
        defer { t.stop() }
        let load = Load(port: t.port, clients: 8)
        var status: Int32 = -1
        var output = ""
        let records = try Self.runFor(.seconds(10), load) {
            let script = Process()
            script.executableURL = URL(fileURLWithPath: "/bin/bash")
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            script.arguments = [root.appendingPathComponent("examples/rolling-deploy.sh").path, t.socket, "api", "server01 server02", t.backends.restartCommand]
            script.environment = ProcessInfo.processInfo.environment.merging(["DRAIN_TIMEOUT": "10s", "UP_TIMEOUT": "20"]) { $1 }
            let err = Pipe()
            script.standardError = err
            try script.run()
            output = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            waitForExit(script)
            status = script.terminationStatus
        }
        #expect(status == 0, "\(output)")
        let failures = records.filter { !$0.ok }
        #expect(failures.isEmpty, "\(failures.count) of \(records.count) requests failed: \(failures.prefix(3).map(\.error))")
        #expect(records.count > 200)
        // The new versions answered after the deploy; the backup never had to.
        let lastAnswers = Set(records.suffix(40).map(\.answer))
        #expect(lastAnswers == ["server01-v2", "server02-v2"], "\(lastAnswers)")
        #expect(!records.contains { $0.answer == "backup01" })
        #expect(output.contains("api/server01 is drained") && output.contains("deploy done"), "\(output)")
    }

    @Test func primaryKilledWithSIGKILLCostsNoNewConnection() throws {
        let t = try Topology()
        defer { t.stop() }
        let load = Load(port: t.port, clients: 8)
        var killedAt = ContinuousClock.now
        let records = try Self.runFor(.seconds(10), load) {
            usleep(1_000_000)  // a second of normal traffic first
            let pid = try t.backends.pid("server01")
            kill(pid, SIGKILL)
            // "After the kill" starts when the process is gone and its port refuses: connections
            // its kernel had already accepted die with it, as they would behind any balancer.
            let port = t.backends.ports["server01"]!
            try eventually("server01 is gone") {
                guard kill(pid, 0) != 0 else { return false }
                guard let fd = try? Net.connect(port) else { return true }
                close(fd)
                return false
            }
            killedAt = ContinuousClock.now
        }
        let after = records.filter { $0.started > killedAt }
        let failures = after.filter { !$0.ok }
        #expect(failures.isEmpty, "\(failures.count) of \(after.count) requests after the kill failed: \(failures.prefix(3).map(\.error))")
        #expect(after.count > 200)
        #expect(!after.suffix(50).contains { $0.answer == "server01" })
        #expect(t.sluice.log.contains("Server api/server01 is DOWN"))
    }

    @Test func tenReloadsUnderLoadDropNothingAndKeepALongSession() throws {
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let extra = try ProcessBackends(["server03"])
        defer { extra.stop() }
        let echoPorts = (server: echo.port, listen: try Net.closedPort())
        let t = try Topology(echo: echoPorts)
        defer { t.stop() }
        let long = try Net.connect(echoPorts.listen)
        defer { close(long) }
        try Net.sendAll(long, "before\n")
        #expect(String(decoding: try Net.read(long, count: 7), as: UTF8.self) == "before\n")

        let s01 = "  server server01 127.0.0.1:\(t.backends.ports["server01"]!) check\n"
        let s02 = "  server server02 127.0.0.1:\(t.backends.ports["server02"]!) check\n"
        let s03 = "  server server03 127.0.0.1:\(extra.ports["server03"]!) check\n"
        let b01 = "  server backup01 127.0.0.1:\(t.backends.ports["backup01"]!) check backup\n"
        let load = Load(port: t.port, clients: 8)
        var replies: [String] = []
        let records = try Self.runFor(.seconds(12), load) {
            for round in 1...10 {
                let servers = switch round {
                case 3...5: s01 + s02 + s03 + b01           // adds server03
                case 6...10: s01 + s03 + b01                // removes server02
                default: s01 + s02 + b01
                }
                let text = Topology.config(t.backends, port: t.port, socket: t.socket, servers: servers, echo: echoPorts, weight: round % 3 + 1)
                try text.write(toFile: t.configPath, atomically: true, encoding: .utf8)
                if round % 2 == 0 {
                    replies.append(try StatsClient.ask(t.socket, "reload"))
                } else {
                    t.sluice.signal(SIGHUP)
                    try eventually("SIGHUP reload \(round) is logged") { t.sluice.log.components(separatedBy: "configuration reloaded").count - 1 == (round + 1) / 2 }
                }
                usleep(300_000)  // let traffic run on this configuration; not a synchronisation
            }
        }
        #expect(replies.allSatisfy { $0.hasPrefix("Reload complete.") }, "\(replies)")
        let failures = records.filter { !$0.ok }
        #expect(failures.isEmpty, "\(failures.count) of \(records.count) requests failed: \(failures.prefix(3).map(\.error))")
        #expect(records.contains { $0.answer == "server03" }, "the added server never received traffic")
        #expect(!records.suffix(40).contains { $0.answer == "server02" }, "the removed server still receives new sessions")
        // The session opened before the first reload still forwards after the last.
        try Net.sendAll(long, "after\n")
        #expect(String(decoding: try Net.read(long, count: 6), as: UTF8.self) == "after\n")
        let state = try StatsClient.ask(t.socket, "show servers state api")
        #expect(state.contains(" server03 ") && !state.contains(" server02 "))
    }

    /// The kernel's listening sockets on a loopback port (their inodes, from /proc/net/tcp).
    static func listeningSockets(_ port: Int) throws -> Set<String> {
        let local = String(format: "0100007F:%04X", port)
        return Set(try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8).split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 9 && fields[1] == local && fields[3] == "0A" ? String(fields[9]) : nil
        })
    }

    /// A reload that writes the port a `bind …:0` was given keeps that very socket: replacing it
    /// would reset (or silently drop) the connections waiting in its backlog at that moment.
    @Test func aReloadNamingThePortOfAPortZeroBindKeepsItsSocket() throws {
        let server = try TestServer(.identify("s"))
        defer { server.stop() }
        let text = { (port: Int) in "\(tcpDefaults())\nlisten fe\n  bind 127.0.0.1:\(port)\n  server s 127.0.0.1:\(server.port)\n" }
        let proxy = try RunningProxy(text(0))
        defer { proxy.stop() }
        let before = try Self.listeningSockets(proxy.port)
        #expect(!before.isEmpty)
        _ = try proxy.balancer.reload(Configuration.parse(text(proxy.port)).configuration)
        #expect(try Self.listeningSockets(proxy.port) == before)
        let client = try Net.connect(proxy.port)
        defer { close(client) }
        #expect(String(decoding: try Net.readToEnd(client), as: UTF8.self) == "s\n")
        // And a later reload that drops the bind closes it: the worker knows it by its new key.
        _ = try proxy.balancer.reload(Configuration.parse(text(proxy.port).replacingOccurrences(of: "127.0.0.1:\(proxy.port)\n  server", with: "127.0.0.1:0\n  server")).configuration)
        try eventually("the old socket is closed") { try Self.listeningSockets(proxy.port).isDisjoint(with: before) }
    }

    @Test func invalidReloadKeepsTheRunningConfigurationAndSaysWhy() throws {
        let t = try Topology()
        defer { t.stop() }
        try "frontend api\n  bind 127.0.0.1:\(t.port)\n  default_backend nowhere\n".write(toFile: t.configPath, atomically: true, encoding: .utf8)
        let reply = try StatsClient.ask(t.socket, "reload")
        #expect(reply.hasPrefix("Reload failed; the running configuration is unchanged:"))
        #expect(reply.contains("sluice.cfg:3: error: [frontend 'api'] 'default_backend': no backend named 'nowhere' exists"))
        t.sluice.signal(SIGHUP)
        try eventually("SIGHUP failure is logged") { t.sluice.log.contains("SIGHUP: reload failed") }
        let load = Load(port: t.port, clients: 2)
        try eventually("traffic still flows") { load.count >= 10 }
        let records = load.stop()
        #expect(records.allSatisfy { $0.ok })
    }

    @Test func gracefulStopFinishesSessionsAndHardStopAfterBoundsIt() throws {
        let holder = try TestServer(.echo)
        defer { holder.stop() }
        for (signal, hardStop) in [(SIGTERM, ""), (SIGUSR1, ""), (SIGINT, "  hard-stop-after 300ms\n")] {
            let port = try Net.closedPort()
            let dir = TestFiles.folder.appendingPathComponent("sluice-stop-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let path = dir.appendingPathComponent("sluice.cfg").path
            try "global\n\(hardStop)listen fe\n  bind 127.0.0.1:\(port)\n  server s 127.0.0.1:\(holder.port)\n".write(toFile: path, atomically: true, encoding: .utf8)
            let sluice = try SluiceProcess(configPath: path, listenPort: port)
            let fd = try Net.connect(port)
            defer { close(fd) }
            try Net.sendAll(fd, "ping\n")
            _ = try Net.read(fd, count: 5)
            sluice.signal(signal)
            // New connections are refused once the listener closes…
            try eventually("the listener closes") {
                guard let probe = try? Net.connect(port) else { return true }
                close(probe)
                return false
            }
            if hardStop.isEmpty {
                // …while the open session still forwards, and the process waits for it.
                try Net.sendAll(fd, "pong\n")
                #expect(String(decoding: try Net.read(fd, count: 5), as: UTF8.self) == "pong\n")
                #expect(sluice.process.isRunning)
                shutdown(fd, Int32(SHUT_WR))
                _ = try Net.readToEnd(fd)
            } else {
                // …and hard-stop-after closes what remains.
                #expect(try Net.readToEnd(fd, timeoutMs: 5000).isEmpty)
            }
            try eventually("sluice exits") { !sluice.process.isRunning }
            #expect(sluice.stop() == 0, "signal \(signal): \(sluice.log)")
        }
    }
}
}
