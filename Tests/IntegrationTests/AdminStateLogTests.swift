import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

extension Loopback.LoggingTests {
    /// Runs `body` against HAProxy or Sluice serving `listen be` with `servers` (its lines), logging
    /// to a syslog receiver; `body` gets the contender's name, its admin socket and the lines about
    /// `be`'s servers so far (check durations blanked).
    static func watchingServerLines(haproxy: Bool, servers: String,
                                    _ body: (_ name: String, _ socket: String, _ lines: () -> [String]) throws -> [String]) throws -> [String] {
        let logs = try SyslogReceiver()
        defer { logs.stop() }
        let socket = TestFiles.folder.appendingPathComponent("admin-\(UUID().uuidString.prefix(8)).sock").path
        defer { unlink(socket) }
        let contender = try Contender(haproxy: haproxy) { port in
            StatsClient.preamble(socket: socket).replacingOccurrences(of: "global\n", with: "global\n  log 127.0.0.1:\(logs.port) format priority local0\n")
                + "listen be\n  bind 127.0.0.1:\(port)\n  log global\n" + servers
        }
        defer { contender.stop() }
        return try body(contender.name, socket) {
            logs.lines.filter { $0.contains("Server be/") || $0.contains("be has no server") }.map {
                $0.trimmingCharacters(in: .newlines).replacingOccurrences(of: #"check duration: \d+ms"#, with: "check duration: <t>ms", options: .regularExpression)
            }
        }
    }

    /// Changes of a server's admin state through the runtime API — drain, ready, maintenance, and
    /// back — logged in HAProxy 2.6's words and levels, with its counts of servers left, sessions
    /// and queues: each line compared with HAProxy's on the same file and the same commands.
    @Test func adminStateChangesAreLoggedAsHAProxyLogsThem() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let server = try TestServer(.echo)
        defer { server.stop() }
        let commands = ["set server be/a state drain", "set server be/a state ready", "disable server be/a", "disable server be/b",
                        "disable server be/c", "enable server be/a", "set server be/b state drain", "set server be/b state ready"]
        var runs: [[String]] = []
        for haproxy in [true, false] {
            let servers = (["a", "b"].map { "  server \($0) 127.0.0.1:\(server.port)\n" } + ["  server c 127.0.0.1:\(server.port) backup\n"]).joined()
            runs.append(try Self.watchingServerLines(haproxy: haproxy, servers: servers) { name, socket, about in
                var seen = 0
                for command in commands {
                    _ = try StatsClient.ask(socket, command)
                    // Each command logs at least one line: wait for it before the next command.
                    try eventually("\(name): a line after '\(command)' (have \(about()))") { about().count > seen }
                    seen = about().count
                }
                // A last command whose line marks the end: every line before it has arrived (one writer,
                // in order), a late second line of the previous command included.
                _ = try StatsClient.ask(socket, "disable server be/a")
                try eventually("\(name): the closing line") { about().last?.contains("be/a is going DOWN for maintenance") == true }
                return Array(about().dropLast())
            })
        }
        #expect(runs[1] == runs[0])
        #expect(runs[1].first == "<133>Server be/a enters drain state. 1 active and 1 backup servers online. 0 sessions requeued, 0 total in queue.")
        #expect(runs[1].contains("<129>Backup Server be/c is going DOWN for maintenance. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue."))
        #expect(runs[1].contains("<128>proxy be has no server available!"))  // a `listen`: HAProxy's "proxy", not "backend"
        #expect(runs[1].contains("<133>Server be/b remains in forced drain mode."))
    }

    /// A checked server that went DOWN, then into maintenance, then out of it: as HAProxy, it starts
    /// at `rise` — UP at once — and its next check decides (here, still refused: DOWN again).
    @Test func aCheckedServerLeavingMaintenanceStartsUpAsInHAProxy() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let server = try TestServer(.echo)
        defer { server.stop() }
        var runs: [[String]] = []
        for haproxy in [true, false] {
            let health = try TestServer(.echo)
            defer { health.stop() }
            // A backup too: the check's lines end as HAProxy's `srv_append_status` ("Running on backup.").
            let servers = "  server s 127.0.0.1:\(server.port) check port \(health.port) inter 100ms fall 1 rise 2\n  server spare 127.0.0.1:\(server.port) backup\n"
            runs.append(try Self.watchingServerLines(haproxy: haproxy, servers: servers) { name, socket, about in
                try eventually("\(name): s is UP") { try StatsClient.showStat(socket).first { $0["svname"] == "s" }?["status"] == "UP" }
                health.stop()
                try eventually("\(name): s is DOWN") { about().contains { $0.contains("is DOWN") } }
                _ = try StatsClient.ask(socket, "disable server be/s")
                try eventually("\(name): s enters maintenance") { about().contains { $0.contains("enters maintenance") } }
                _ = try StatsClient.ask(socket, "enable server be/s")
                // Leaving maintenance, then the next check's verdict.
                try eventually("\(name): s leaves maintenance and is checked") { about().count >= 4 }
                return about()
            })
        }
        #expect(runs[1] == runs[0])
        #expect(runs[1].contains("<133>Server be/s is UP/READY (leaving forced maintenance)."))
        #expect(runs[1].first?.hasSuffix(". 0 active and 1 backup servers left. Running on backup. 0 sessions active, 0 requeued, 0 remaining in queue.") == true)
    }
}
