import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

extension Loopback.LoggingTests {
    /// `log-format` with every Layer-4 variable, its flags and samples; a format that waits for
    /// nothing (written at connect); `option logasap`, `log-separate-errors`, `dontlog-normal`;
    /// `%rc`'s `+` after a redispatch; and `option log-health-checks` — each line compared with
    /// HAProxy 2.6's on the same configuration in the same run (variables and the session and
    /// connection fetches included).
    @Test func customFormatsEarlyLinesErrorLevelsAndCheckLinesMatchHAProxys() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        var flapping = try TestServer(.echo)
        let flappingPort = flapping.port
        defer { flapping.stop() }
        let refused = try Net.closedPort()
        let sluiceLogs = try SyslogReceiver(), haproxyLogs = try SyslogReceiver()
        defer { sluiceLogs.stop(); haproxyLogs.stop() }
        // Fields that differ between two runs are between `<` and `>` in the format's output:
        // the test blanks them (timers, source ports, dates, pids, counters of streams).
        let all = [
            "A\\ %ci|<%cp>|%fi|%fp|%bi|<%bp>|%si|%sp|%f|%ft|%b|%s|%Th|<%Tw/%Tc/%Td/%Tt/%Tu>|%ST|%B|%U|%ts|%tsc",
            "%ac/%fc/%bc/%sc/%rc|%sq/%bq|%ID|%sslc|%sslv|%hr%hrl%hs%hsl|%{+Q}ci|%{+X}ci|<%{+X}cp>|%{+Q}f|%{+Q}ft",
            "%{+Q}s|%[src]|%[so_name]|%[dst_port]|%{+Q}[src]|%{-M}ID|%{+Q}ID|%%|x%-y\\ \\ \\ z|%lc|<%T|%Tl|%Ts|%ms>",
            "<%t>|%H|%{+Q}H|<%pid|%{+X}Ts|%{+X}ms|%{+X}pid|%{+X}rt|%rt>|%{+X}lc|%{+Q,+E}o%f|%b|%{-Q}o%s",
            "%[var(sess.who)]|%[var(txn.pick)]|%[var(txn.none,dflt)]|%{+Q}[var(txn.pick)]",
            "%[fe_conn]|%[fe_conn(early)]|%[dst_conn]|%[so_id]|%[fe_id]|%[fe_defbe]|%[stopping]|%[fc_rcvd_proxy]|%[fc_src]|%[fc_dst]|%[rand(1)]",
            "%[fc_unacked]|%[fc_sacked]|%[fc_retrans]|%[fc_lost]|%[fc_reordering]|<%[fc_rtt(us)]|%[fc_src_port]|%[date]|%[date_us]|%[uuid]>",
        ].joined(separator: "\\ ")
        let names = ["all", "asap", "early", "errors", "normal", "quiet", "redispatched"]
        func config(logPort: Int, ports: [Int], socket: String) -> String {
            """
            global
              stats socket \(socket) level admin
              log-tag lb
              log 127.0.0.1:\(logPort) format priority local0 info
            defaults
              mode tcp
              log global
              timeout connect 1s
              timeout client 5s
              timeout server 5s
            frontend all
              bind 127.0.0.1:\(ports[0]) name front
              log-format \(all)
              tcp-request connection set-var(sess.who) src
              tcp-request content set-var-fmt(txn.pick) be_%[var(sess.who)]
              default_backend echo
            frontend asap
              bind 127.0.0.1:\(ports[1])
              option tcplog
              option logasap
              default_backend echo
            frontend early
              bind 127.0.0.1:\(ports[2])
              log-format "E %ci %b/%s %[src] %{+Q}f"
              default_backend echo
            frontend errors
              bind 127.0.0.1:\(ports[3])
              option tcplog
              option log-separate-errors
              default_backend refused
            frontend normal
              bind 127.0.0.1:\(ports[4])
              option tcplog
              option log-separate-errors
              default_backend echo
            frontend quiet
              bind 127.0.0.1:\(ports[5])
              option tcplog
              option dontlog-normal
              default_backend echo
            frontend redispatched
              bind 127.0.0.1:\(ports[6])
              option tcplog
              default_backend redispatched
            backend echo
              server e1 127.0.0.1:\(echo.port)
            backend refused
              retries 1
              server r1 127.0.0.1:\(refused)
            backend redispatched
              retries 2
              option redispatch
              server r1 127.0.0.1:\(refused)
              server e1 127.0.0.1:\(echo.port)
            backend checked
              option log-health-checks
              server c1 127.0.0.1:\(flappingPort) check inter 100ms rise 2 fall 2
              server c2 127.0.0.1:\(refused) check inter 100ms backup

            """
        }
        let sluiceSocket = Loopback.RuntimeAPITests.socketPath(), haproxySocket = Loopback.RuntimeAPITests.socketPath()
        let sluicePorts = try names.map { _ in try Net.closedPort() }, haproxyPorts = try names.map { _ in try Net.closedPort() }

        /// The same clients against one balancer, one case at a time: the session lines of each
        /// case, then the check lines of `c1` going down and up again.
        func run(_ ports: [Int], _ logs: SyslogReceiver, socket: String) throws -> (sessions: [[String]], checks: [String]) {
            func status(_ server: String) throws -> String? {
                let rows: [[Substring]] = try StatsClient.ask(socket, "show stat").split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
                guard let row = rows.first(where: { $0.count > 17 && $0[0] == "checked" && $0[1] == Substring(server) }) else { return nil }
                return String(row[17])
            }
            try eventually("c1 UP and c2 DOWN") { try status("c1") == "UP" && status("c2") == "DOWN" }
            var perCase: [[String]] = []
            var seen = logs.lines.filter { !$0.contains("heck") && !$0.contains("erver") }.count
            for (n, port) in ports.enumerated() {
                let fd = try Net.connect(port)
                try Net.sendAll(fd, "hello")
                shutdown(fd, Int32(SHUT_WR))
                _ = try Net.readToEnd(fd, resetEnds: true)
                close(fd)
                try eventually("no session open") { try StatsClient.ask(socket, "show info").contains("\nCurrConns: 0\n") }
                // Each case writes one line, but `quiet` (a normal session under dontlog-normal).
                let expected = names[n] == "quiet" ? 0 : 1
                var lines: [String] = []
                try eventually("\(expected) line(s) of frontend '\(names[n])'") {
                    lines = Array(logs.lines.filter { !$0.contains("heck") && !$0.contains("erver") }[seen...])
                    return lines.count >= expected
                }
                usleep(100_000)  // a second line would show up as a difference in this case
                lines = Array(logs.lines.filter { !$0.contains("heck") && !$0.contains("erver") }[seen...])
                seen += lines.count
                perCase.append(lines)
            }
            flapping.stop()
            try eventually("c1 DOWN") { try status("c1") == "DOWN" }
            flapping = try TestServer(.echo, port: flappingPort)
            try eventually("c1 UP again, and logged") { try status("c1") == "UP" && logs.lines.contains { $0.contains("Server checked/c1 is UP") } }
            let checks = logs.lines.filter { $0.contains("heck") || $0.contains("erver") }
            return (perCase, checks)
        }
        let proxy = try RunningProxy(config(logPort: sluiceLogs.port, ports: sluicePorts, socket: sluiceSocket))
        let ours = try run(sluicePorts, sluiceLogs, socket: sluiceSocket)
        proxy.stop()
        let haproxy = try HAProxyProcess(config: config(logPort: haproxyLogs.port, ports: haproxyPorts, socket: haproxySocket), port: haproxyPorts[0])
        let theirs = try run(haproxyPorts, haproxyLogs, socket: haproxySocket)
        haproxy.stop()

        func normalized(_ line: String) -> String {
            var text = line
            for port in sluicePorts + haproxyPorts { text = text.replacingOccurrences(of: "|\(port)|", with: "|<fe>|") }
            let patterns: [(String, String)] = [
                (#"<[^<>|]*(\|[^<>|]*)*>"#, "<…>"),
                (#"\d+\.\d+\.\d+\.\d+:\d+ \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\]"#, "<client> [<accept>]"),
                (#" \+?-?\d+/-?\d+/\+?\d+ "#, " <Tw>/<Tc>/<Tt> "),
                (#"check duration: \d+ms"#, "check duration: <n>ms"),
            ]
            for (pattern, replacement) in patterns {
                text = text.replacingOccurrences(of: pattern, with: replacement, options: .regularExpression)
            }
            return text
        }
        for (n, name) in names.enumerated() {
            #expect(ours.sessions[n].map(normalized) == theirs.sessions[n].map(normalized),
                    "frontend '\(name)': Sluice wrote\n\(ours.sessions[n].joined())\nHAProxy 2.6 wrote\n\(theirs.sessions[n].joined())")
        }
        // What the lines say beyond the timers, checked here so that a shared mistake shows too.
        #expect(ours.sessions[0].first?.contains("|echo|e1|0|") == true && ours.sessions[0].first?.contains("|5|5|--|---- 1/1/0/0/0|0/0|") == true)
        #expect(ours.sessions[0].first?.contains("|x-y z|") == true, "spaces merge; '%-' is '-'")
        #expect(ours.sessions[1].first?.contains(" +0 -- 1/1/1/1/0 ") == true, "logasap: at connect, bytes so far with '+'")
        #expect(ours.sessions[2].first?.hasPrefix("<134>E 127.0.0.1 echo/e1 127.0.0.1 \"early\"") == true)
        #expect(ours.sessions[3].first?.hasPrefix("<131>") == true && ours.sessions[4].first?.hasPrefix("<134>") == true, "err for errors, info otherwise")
        #expect(ours.sessions[6].first?.contains("/+1 0/0") == true, "a redispatch shows as +1 retries")
        // Check lines, server by server (the two servers' first checks may come in either order).
        for server in ["c1", "c2"] {
            let mine = ours.checks.filter { $0.contains("/\(server) ") }.map(normalized)
            let haproxys = theirs.checks.filter { $0.contains("/\(server) ") }.map(normalized)
            #expect(mine == haproxys, "server \(server): Sluice wrote\n\(mine.joined())\nHAProxy 2.6 wrote\n\(haproxys.joined())")
        }
        #expect(ours.checks.contains { $0.hasPrefix("<133>Health check for server checked/c1 failed, reason: Layer4 connection problem") && $0.contains("status: 1/2 UP.") })
        #expect(ours.checks.contains { $0.hasPrefix("<129>Server checked/c1 is DOWN. 0 active") })
    }
}
