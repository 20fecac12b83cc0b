import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

extension Loopback {
/// `sluice top`: a snapshot when its output is not a terminal; in a terminal (tmux), the live view
/// whose keys drain the selected server.
@Suite struct TopTests {
    static let tmux = "/usr/bin/tmux"

    struct Stand {
        let a: TestServer, b: TestServer
        let proxy: RunningProxy
        let socket: String

        init() throws {
            a = try TestServer(.echo)
            b = try TestServer(.echo)
            socket = RuntimeAPITests.socketPath()
            proxy = try RunningProxy("""
                global
                  stats socket \(socket) level admin
                defaults
                  timeout connect 1s
                  timeout client 5s
                  timeout server 5s
                frontend fe
                  bind 127.0.0.1:0
                  default_backend be
                backend be
                  server a 127.0.0.1:\(a.port) check inter 200ms
                  server b 127.0.0.1:\(b.port)
                """)
        }

        func stop() { proxy.stop(); a.stop(); b.stop() }
    }

    @Test func withoutATerminalItPrintsOneSnapshot() throws {
        let stand = try Stand()
        defer { stand.stop() }
        let run = try CommandLineTests.run(["top", "-S", stand.socket, "--interval", "200ms"])
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("Sluice ") == true, "\(run.stdout)")
        #expect(!run.stdout.contains("\u{1B}["), "no terminal codes in a snapshot")
        for name in ["fe", "FRONTEND", "be", "  a", "  b", "BACKEND"] {
            #expect(lines.contains { $0.hasPrefix(name + " ") || $0 == name }, "no row '\(name)' in\n\(run.stdout)")
        }
        #expect(lines.contains { $0.hasPrefix("  a ") && $0.contains("UP") && $0.contains("L4OK") }, "\(run.stdout)")
        let unreachable = try CommandLineTests.run(["top", "-S", stand.socket + ".gone", "--once"])
        #expect(unreachable.status != 0 && unreachable.stderr.contains(".gone"))
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: tmux), "needs tmux (scripts/test installs it)"))
    func inATerminalTheKeysDrainTheSelectedServer() throws {
        let stand = try Stand()
        defer { stand.stop() }
        let label = "sluice-top-\(UUID().uuidString.prefix(8))"
        try Spawn.run(Self.tmux, ["-L", label, "new-session", "-d", "-s", "top", "-x", "150", "-y", "30",
                                  "\(sluiceExecutable()) top -S \(stand.socket) --interval 200ms"])
        defer { _ = try? Spawn.run(Self.tmux, ["-L", label, "kill-server"]) }
        func screen() -> String { (try? Spawn.output(Self.tmux, ["-L", label, "capture-pane", "-p", "-t", "top"])) ?? "" }
        /// Types `k` in one write: top must take every key of what one read returns.
        func keys(_ k: String...) throws { try Spawn.run(Self.tmux, ["-L", label, "send-keys", "-t", "top"] + k) }
        /// Waits for `condition`; on a timeout the failure shows what top had on the screen.
        func eventuallyShowing(_ what: String, _ condition: () throws -> Bool) throws {
            do {
                try eventually(what, condition)
            } catch {
                Issue.record("the screen:\n\(screen())")
                throw error
            }
        }
        try eventuallyShowing("top shows the servers") { screen().contains("  a ") && screen().contains("BACKEND") }
        try keys("j", "d")  // from the first row to the first server, `a`, and drain it
        try eventuallyShowing("a is drained") {
            try StatsClient.ask(stand.socket, "show stat").split(separator: "\n").contains { $0.hasPrefix("be,a,") && $0.contains(",DRAIN,") }
        }
        try eventuallyShowing("top says so") { screen().contains("set server be/a state drain: done") }
        try keys("j", "m")  // `b`, to maintenance
        try eventuallyShowing("b is in maintenance") { stand.proxy.balancer.backend(named: "be")?.server(named: "b")?.admin == .maintenance }
        try keys("q")
        try eventually("top has quit") { (try? Spawn.run(Self.tmux, ["-L", label, "has-session", "-t", "top"])) != 0 }
    }
}
}
