import Foundation
import Testing
@_spi(Benchmarks) import Sluice
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// `server-state-file` + `load-server-state-from-file`: the states an operator's reload script
/// saved with `show servers state` (from HAProxy or from Sluice) apply when Sluice starts, before
/// any traffic; lines that do not fit are reported and skipped, never fatal.
extension Loopback {
@Suite struct ServerStateTests {
    static func config(stateFile: String, port: Int, servers: [Int], extraGlobal: String = "", check: String = "") -> String {
        """
        global
          server-state-file \(stateFile)
        \(extraGlobal)
        \(tcpDefaults())
          load-server-state-from-file global
        listen be
          bind 127.0.0.1:\(port)
        \(servers.enumerated().map { "  server s\($0.offset + 1) 127.0.0.1:\($0.element) weight 10\(check)" }.joined(separator: "\n"))

        """
    }

    /// HAProxy 2.6 on `config` with an admin socket, given `commands`; what `show servers state`
    /// then says is written to `stateFile` (as a reload script saves it) and returned with the
    /// commands' answers. HAProxy is stopped before this returns.
    static func savedByHAProxy(_ stateFile: String, servers: [TestServer], check: String = "",
                               commands: [String]) throws -> (saved: String, answers: [String]) {
        let socket = temporaryPath("haproxy.sock")
        defer { unlink(socket) }
        let port = try Net.closedPort()
        let haproxy = try HAProxyProcess(config: config(stateFile: stateFile, port: port, servers: servers.map(\.port),
                                                        extraGlobal: "  stats socket \(socket) level admin", check: check), port: port)
        defer { haproxy.stop() }
        let answers = try commands.map { try StatsClient.ask(socket, $0) }
        let saved = try StatsClient.ask(socket, "show servers state")
        try saved.write(toFile: stateFile, atomically: true, encoding: .utf8)
        return (saved, answers)
    }

    static func temporaryPath(_ name: String) -> String {
        TestFiles.folder.appendingPathComponent("sluice-\(UUID().uuidString.prefix(8))-\(name)").path
    }

    /// HAProxy 2.6 saves the states (drain, maintenance, a weight set at run time); Sluice starts
    /// from that file with the same states, as a reload script that switches from one to the other
    /// expects.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/haproxy"), "needs HAProxy"))
    func statesSavedByHAProxyApplyAtStart() throws {
        let servers = try (0..<3).map { _ in try TestServer(.identify("x")) }
        defer { for s in servers { s.stop() } }
        let stateFile = Self.temporaryPath("state")
        defer { unlink(stateFile) }
        let (saved, _) = try Self.savedByHAProxy(stateFile, servers: servers,
                                                 commands: ["set server be/s1 state drain", "set server be/s2 state maint", "set server be/s3 weight 4"])
        #expect(saved.hasPrefix("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state"))

        let proxy = try RunningProxy(Self.config(stateFile: stateFile, port: 0, servers: servers.map(\.port)))
        defer { proxy.stop() }
        let backend = try #require(proxy.balancer.backend(named: "be"))
        #expect(backend.servers.map(\.admin) == [.drain, .maintenance, .ready])
        #expect(backend.servers.map(\.weight) == [10, 10, 4])
        #expect(proxy.balancer.startupNotices.isEmpty, "\(proxy.balancer.startupNotices)")
        // And so the traffic: only s3 takes new sessions.
        for _ in 0..<3 {
            let fd = try Net.connect(proxy.port)
            _ = try Net.readToEnd(fd)
            close(fd)
        }
        #expect(servers.map { $0.accepted.load(ordering: .relaxed) } == [0, 0, 3])
    }

    /// Where checks go (`set server … check-port|check-addr`) is saved in HAProxy's srv_check_port
    /// and srv_check_addr, and restored at start as HAProxy restores it; a check port and address
    /// equal to the server's own (what earlier Sluice versions wrote) follow the server instead.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/haproxy"), "needs HAProxy"))
    func checkPortAndAddressSavedByHAProxyApplyAtStart() throws {
        let servers = try (0..<3).map { _ in try TestServer(.identify("x")) }
        defer { for s in servers { s.stop() } }
        let stateFile = Self.temporaryPath("state")
        defer { unlink(stateFile) }
        let checked = " check inter 1h"
        let (saved, answers) = try Self.savedByHAProxy(stateFile, servers: servers, check: checked, commands: [
            "set server be/s1 check-port \(servers[2].port)", "set server be/s2 check-addr 127.0.0.2 port 81"])
        #expect(answers == ["\n", "\n"])

        let proxy = try RunningProxy(Self.config(stateFile: stateFile, port: 0, servers: servers.map(\.port), check: checked))
        defer { proxy.stop() }
        #expect(proxy.balancer.startupNotices.isEmpty, "\(proxy.balancer.startupNotices)")
        let plans = try #require(proxy.balancer.backend(named: "be")).servers.map { $0.checkPlan }
        #expect(plans.map { $0?.port } == [servers[2].port, 81, nil])
        #expect(plans.map { $0?.fixedAddress?.ip } == [nil, "127.0.0.2", nil])
        func checkFields(_ text: String) -> [String] {
            text.split(separator: "\n").dropFirst(2).map { $0.split(separator: " ")[21...22].joined(separator: " ") }
        }
        #expect(checkFields(proxy.balancer.runtimeReply("show servers state")) == checkFields(saved))

        // A line as earlier Sluice versions wrote it: the check port and address are the server's.
        let old = "1\n# header\n1 be 1 s1 10.0.0.5 2 0 10 10 7 6 3 4 6 0 0 0 - 8080 - 0 8080 10.0.0.5 - 0\n"
        let entry = try #require(ServerStateFile.parse(old, path: "old").entries.first)
        #expect(entry.checkPort == nil && entry.checkAddress == nil)
        let bad = "1\n1 be 1 s1 10.0.0.5 2 0 10 10 7 6 3 4 6 0 0 0 - 8080 - 0 99999 nowhere - 0\n"
        #expect(ServerStateFile.parse(bad, path: "bad").problems == ["bad:2: the check port '99999' or address 'nowhere' is not valid"])
    }

    /// The state columns of servers in maintenance (by `disabled` or at run time, checked or not),
    /// drained, and enabled again are HAProxy's: `srv_op_state` 0 and a health of 0 in maintenance,
    /// `srv_admin_state` with 0x04 for every server the configuration disables (kept after `enable
    /// server`), checks paused (0x08). So a state file Sluice saves tells a configuration change
    /// as HAProxy's does: removing `disabled` and restarting brings the server back.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/haproxy"), "needs HAProxy"))
    func maintenanceAndDisabledServersAreSavedAsHAProxySavesThem() throws {
        let server = try TestServer(.identify("x"))
        defer { server.stop() }
        let parameters = ["", " check inter 1h", " disabled", " check inter 1h disabled", "", " check inter 1h", " check inter 1h", " disabled", ""]
        let commands = ["disable server be/s5", "disable server be/s6", "set server be/s7 state drain", "enable server be/s4", "enable server be/s8",
                        "disable server be/s9", "enable server be/s9"]
        func text(_ port: Int, socket: String) -> String {
            "global\n  stats socket \(socket) level admin\n\(tcpDefaults())listen be\n  bind 127.0.0.1:\(port)\n"
                + parameters.enumerated().map { "  server s\($0.offset + 1) 127.0.0.1:\(server.port)\($0.element)\n" }.joined()
        }
        func columns(_ state: String) -> [String] {
            state.split(separator: "\n").dropFirst(2).map { row in
                let f = row.split(separator: " ")
                return "\(f[3]) op \(f[5]) admin \(f[6]) health \(f[12]) check \(f[13])"
            }
        }
        var states: [[String]] = []
        for haproxy in [true, false] {
            let socket = Self.temporaryPath("state.sock")
            defer { unlink(socket) }
            let contender = try Contender(haproxy: haproxy) { text($0, socket: socket) }
            defer { contender.stop() }
            for command in commands { _ = try StatsClient.ask(socket, command) }
            states.append(columns(try StatsClient.ask(socket, "show servers state")))
        }
        #expect(states[1] == states[0])
        #expect(states[1].prefix(3) == ["s1 op 2 admin 0 health 2 check 0", "s2 op 2 admin 0 health 4 check 6", "s3 op 0 admin 5 health 0 check 8"])
        #expect(states[1].last == "s9 op 2 admin 0 health 0 check 0")  // maintenance zeroed it, for good

        // A `disabled` server saved by Sluice, then the line without `disabled`: it is back.
        let stateFile = Self.temporaryPath("state")
        defer { unlink(stateFile) }
        let first = try RunningProxy(Self.config(stateFile: stateFile, port: 0, servers: [server.port], check: " disabled"))
        try first.balancer.runtimeReply("show servers state").write(toFile: stateFile, atomically: true, encoding: .utf8)
        first.stop()
        let second = try RunningProxy(Self.config(stateFile: stateFile, port: 0, servers: [server.port]))
        defer { second.stop() }
        #expect(try #require(second.balancer.backend(named: "be")).servers.map(\.admin) == [.ready])
    }

    /// Sluice's own `show servers state` round-trips, a checked server that was DOWN starts DOWN
    /// (no session reaches it before a check says otherwise), and what does not fit is named and
    /// skipped.
    @Test func sluicesOwnStatesRoundTripAndBadLinesAreSkipped() throws {
        let up = try TestServer(.identify("up"))
        let other = try TestServer(.identify("other"))
        let third = try TestServer(.identify("third"))
        defer { up.stop(); other.stop(); third.stop() }
        let stateFile = Self.temporaryPath("state")
        defer { unlink(stateFile) }
        // First run: s3 is a closed port, found DOWN. Second run: s3 is alive, but it starts DOWN as
        // saved, and needs two passing checks two seconds apart to come up.
        let config = Self.config(stateFile: stateFile, port: 0, servers: [up.port, other.port, try Net.closedPort()], check: " check inter 200ms fall 1 rise 1")
        let restarted = Self.config(stateFile: stateFile, port: 0, servers: [up.port, other.port, third.port], check: " check inter 2s fall 1 rise 2")
        var saved = ""
        do {
            let first = try RunningProxy(config)
            defer { first.stop() }
            let backend = try #require(first.balancer.backend(named: "be"))
            try eventually("s3 is seen DOWN") { backend.servers[2].operational == .stopped }
            _ = first.balancer.runtimeReply("set server be/s1 weight 7")
            _ = first.balancer.runtimeReply("set server be/s2 state drain")
            _ = first.balancer.runtimeReply("disable health be/s1")
            saved = first.balancer.runtimeReply("show servers state")
        }
        let garbage = "be 1 2\nnot a server line at all but long enough to have fifteen fields ok 1 2 3 4 5 6 7\n"
        let foreign = saved.split(separator: "\n").last.map { $0.replacingOccurrences(of: " s3 ", with: " s9 ") + "\n" } ?? ""
        try (saved + garbage + foreign).write(toFile: stateFile, atomically: true, encoding: .utf8)

        let second = try RunningProxy(restarted)
        defer { second.stop() }
        let backend = try #require(second.balancer.backend(named: "be"))
        #expect(backend.servers.map(\.operational) == [.running, .running, .stopped])
        #expect(backend.servers.map(\.admin) == [.ready, .drain, .ready])
        #expect(backend.servers.map(\.weight) == [7, 10, 10])
        let s1Checked = backend.servers[0].checksEnabled.load(ordering: .relaxed)
        #expect(!s1Checked, "'disable health' was saved and restored")
        let notices = second.balancer.startupNotices
        #expect(notices.count == 3, "\(notices)")
        #expect(notices.contains { $0.hasPrefix("\(stateFile):") && $0.contains("fields where a server line has at least 15") })
        #expect(notices.contains { $0.hasPrefix("\(stateFile):") && $0.contains("out of range") })
        #expect(notices.contains { $0.contains("no server 's9' in backend 'be'") })
        for _ in 0..<4 {
            let fd = try Net.connect(second.port)
            #expect(String(decoding: try Net.readToEnd(fd), as: UTF8.self) == "up\n")  // s2 drains, s3 is DOWN
            close(fd)
        }
        #expect(third.accepted.load(ordering: .relaxed) <= 1, "only a health check may have reached s3")

        // A missing file is a notice, not a failure to start. (Stopped first: Sluice saves the
        // states at stop.)
        second.stop()
        unlink(stateFile)
        let again = try RunningProxy(config)
        defer { again.stop() }
        #expect(again.balancer.startupNotices == ["server-state file '\(stateFile)': No such file or directory; no state loaded from it"])
    }

    /// Beyond HAProxy: Sluice keeps the file current itself, so a drained server stays drained
    /// across a restart without anyone saving the state first — and across a crash (SIGKILL),
    /// since the file follows each change within a second.
    @Test func aDrainedServerStaysDrainedAcrossARestartAndACrash() throws {
        let servers = try (0..<2).map { _ in try TestServer(.identify("x")) }
        defer { for s in servers { s.stop() } }
        let dir = Self.temporaryPath("states")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let stateFile = dir + "/servers.state"
        func saved(_ server: String) -> ServerStateFile.Entry? {
            guard let text = try? String(contentsOfFile: stateFile, encoding: .utf8) else { return nil }
            return ServerStateFile.parse(text, path: stateFile).entries.first { $0.server == server }
        }
        let config = Self.config(stateFile: stateFile, port: 0, servers: servers.map(\.port))
        do {
            let first = try RunningProxy(config)
            defer { first.stop() }
            #expect(first.balancer.startupNotices == ["server-state file '\(stateFile)': No such file or directory; no state loaded from it"])
            try eventually("the file is written at start") { saved("s1")?.admin == 0 }
            _ = first.balancer.runtimeReply("set server be/s1 state drain")
            try eventually("the drain is saved") { saved("s1")?.admin == ServerStateFile.forcedDrain }
            _ = first.balancer.runtimeReply("set server be/s2 weight 3")
        }
        // Stopped: the last change (the weight) was saved at the stop at the latest.
        #expect(saved("s2")?.userWeight == 3)
        let second = try RunningProxy(config)
        defer { second.stop() }
        let backend = try #require(second.balancer.backend(named: "be"))
        #expect(backend.servers.map(\.admin) == [.drain, .ready])
        #expect(backend.servers.map(\.weight) == [10, 3])
        second.stop()

        // A crash: the process is killed right after the change is saved; the next start keeps it.
        let port = try Net.closedPort()
        let socket = dir + "/sluice.sock"
        let path = dir + "/sluice.cfg"
        try Self.config(stateFile: stateFile, port: port, servers: servers.map(\.port), extraGlobal: "  stats socket \(socket) level admin")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let crashing = try SluiceProcess(configPath: path, listenPort: port)
        try eventually("the stats socket is up") { FileManager.default.fileExists(atPath: socket) }
        _ = try StatsClient.ask(socket, "set server be/s2 state maint")
        try eventually("the maintenance is saved") { saved("s2")?.admin == ServerStateFile.forcedMaintenance }
        crashing.signal(SIGKILL)
        _ = crashing.stop()
        unlink(socket)
        let restarted = try SluiceProcess(configPath: path, listenPort: port)
        defer { _ = restarted.stop() }
        try eventually("the stats socket is up again") { FileManager.default.fileExists(atPath: socket) }
        let state = try StatsClient.ask(socket, "show servers state be")
        let admin = state.split(separator: "\n").filter { !$0.hasPrefix("#") && $0.split(separator: " ").count > 6 }.map { $0.split(separator: " ")[6] }
        #expect(admin == ["8", "1"], "\(state)")
    }

    /// HAProxy's default `init-addr` is `last,libc`: a server named by a host name starts at the
    /// address its state file saved (Sluice resolved the name again); one written as an IP address
    /// keeps it, whatever the file says. Both proxies start from the same file.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/haproxy"), "needs HAProxy"))
    func aHostNamedServerStartsAtItsSavedAddressAsInHAProxy() throws {
        let resolved = try TestServer(.identify("resolved"))
        let saved = try TestServer(.identify("saved"), port: resolved.port, host: "127.0.0.2")
        defer { resolved.stop(); saved.stop() }
        let stateFile = Self.temporaryPath("state")
        defer { unlink(stateFile) }
        var seen: [String] = []
        for (host, fqdn) in [("localhost", "localhost"), ("127.0.0.1", "-")] {
            let file = """
                1
                # be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
                2 be 1 s1 127.0.0.2 2 0 10 10 5 1 0 2 0 0 0 0 \(fqdn) \(resolved.port) - 0 0 - - 0

                """
            for haproxy in [true, false] {
                try file.write(toFile: stateFile, atomically: true, encoding: .utf8)
                let c = try Contender(haproxy: haproxy) { port in
                    Self.config(stateFile: stateFile, port: port, servers: [resolved.port])
                        .replacingOccurrences(of: "server s1 127.0.0.1:", with: "server s1 \(host):")
                }
                defer { c.stop() }
                let fd = try Net.connect(c.port)
                defer { close(fd) }
                seen.append("\(c.name) \(host): " + String(decoding: try Net.readToEnd(fd), as: UTF8.self).trimmingCharacters(in: .newlines))
            }
        }
        #expect(seen == ["haproxy localhost: saved", "sluice localhost: saved", "haproxy 127.0.0.1: resolved", "sluice 127.0.0.1: resolved"])
    }

    /// `init-addr last`: a server whose name no longer resolves starts at the address saved for it.
    @Test func initAddrLastTakesTheSavedAddress() throws {
        let server = try TestServer(.identify("saved"))
        defer { server.stop() }
        let stateFile = Self.temporaryPath("state")
        defer { unlink(stateFile) }
        do {
            let first = try RunningProxy(Self.config(stateFile: stateFile, port: 0, servers: [server.port]))
            first.stop()  // saves the states, the address with them
        }
        let unresolvable = Self.config(stateFile: stateFile, port: 0, servers: [server.port])
            .replacingOccurrences(of: "server s1 127.0.0.1:", with: "server s1 sluice-test-no-such-host.invalid:")
        let proxy = try RunningProxy(unresolvable.replacingOccurrences(of: " weight 10", with: " weight 10 init-addr last,none"))
        defer { proxy.stop() }
        let backend = try #require(proxy.balancer.backend(named: "be"))
        #expect(backend.servers[0].address.ip == "127.0.0.1")
        #expect(backend.servers[0].admin == .ready)
        let fd = try Net.connect(proxy.port)
        defer { close(fd) }
        #expect(String(decoding: try Net.readToEnd(fd), as: UTF8.self) == "saved\n")
    }
}
}
