import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

extension Loopback {
/// `option external-check`: a program per check, with HAProxy's arguments and environment, judged
/// by its exit status, timed out as HAProxy times it out — compared with HAProxy 2.6 running the
/// same file and the same script in the same run.
@Suite struct ExternalCheckTests {
    /// What one proxy showed: the script's arguments and environment, then `show stat`'s status,
    /// check_status, check_code and check_desc of the checked server after each change.
    static func observe(haproxy: Bool, folder: String, server: Int) throws -> [String] {
        let tag = haproxy ? "h" : "s"
        let dir = "\(folder)/\(tag)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // The script reports where it ran and what it was given, then sleeps and exits as told.
        let script = """
            #!/bin/sh
            { echo "args: $*"; env | grep -v '^PWD=' | sort; } > \(dir)/seen.tmp && mv \(dir)/seen.tmp \(dir)/seen
            [ -f \(dir)/sleep ] && exec sleep 5
            exit $(cat \(dir)/code 2>/dev/null || echo 0)

            """
        try script.write(toFile: "\(dir)/check.sh", atomically: true, encoding: .utf8)
        chmod("\(dir)/check.sh", 0o755)
        let socket = "\(dir)/admin.sock"
        let contender = try Contender(haproxy: haproxy) { port in
            StatsClient.preamble(socket: socket).replacingOccurrences(of: "global\n", with: "global\n  external-check\n  insecure-fork-wanted\n") + """
            listen l
              bind 127.0.0.1:\(port)
              option external-check
              external-check command check.sh
              external-check path /usr/bin:/bin:\(dir)
              server s 127.0.0.1:\(server) check inter 200ms fall 1 rise 1 maxconn 7

            """
        }
        defer { contender.stop() }
        func row() throws -> String {
            guard let server = try StatsClient.showStat(socket).first(where: { $0["svname"] == "s" }) else { return "" }
            return ["status", "check_status", "check_code", "check_desc"].map { server[$0] ?? "?" }.joined(separator: ",")
        }
        var seen: [String] = []
        try eventually("\(contender.name): the script ran and passed") { try row() == "UP,PROCOK,0,External check passed" }
        // The proxy's port differs between the two runs: named, it must be the bound one.
        seen.append(try String(contentsOfFile: "\(dir)/seen", encoding: .utf8)
            .replacingOccurrences(of: "args: 127.0.0.1 \(contender.port) ", with: "args: 127.0.0.1 <port> ")
            .replacingOccurrences(of: "HAPROXY_PROXY_PORT=\(contender.port)\n", with: "HAPROXY_PROXY_PORT=<port>\n"))
        seen.append(try row())
        try "3".write(toFile: "\(dir)/code", atomically: true, encoding: .utf8)
        try eventually("\(contender.name): exit 3 takes the server down") { try row().hasPrefix("DOWN,PROCERR,3") }
        seen.append(try row())
        FileManager.default.createFile(atPath: "\(dir)/sleep", contents: nil)
        try eventually("\(contender.name): a script past its interval times out") { try row().contains("PROCTOUT") }
        seen.append(try row().replacingOccurrences(of: "* ", with: ""))
        try FileManager.default.removeItem(atPath: "\(dir)/sleep")
        try "0".write(toFile: "\(dir)/code", atomically: true, encoding: .utf8)
        try eventually("\(contender.name): the server comes back") { try row() == "UP,PROCOK,0,External check passed" }
        return seen
    }

    @Test func programsRunAndAreJudgedAsHAProxyRunsAndJudgesThem() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let server = try TestServer(.echo)
        defer { server.stop() }
        let folder = TestFiles.folder.appendingPathComponent("extcheck-\(UUID().uuidString.prefix(6))").path
        let theirs = try Self.observe(haproxy: true, folder: folder, server: server.port)
        let ours = try Self.observe(haproxy: false, folder: folder, server: server.port)
        // The script's folder differs (one per proxy); everything else must not.
        #expect(ours.map { $0.replacingOccurrences(of: "\(folder)/s", with: "<dir>") } == theirs.map { $0.replacingOccurrences(of: "\(folder)/h", with: "<dir>") })
        #expect(ours.first?.hasPrefix("args: 127.0.0.1 <port> 127.0.0.1 \(server.port)\n") == true)
        #expect(ours.first?.contains("HAPROXY_PROXY_PORT=<port>\n") == true)
        #expect(ours.first?.contains("HAPROXY_SERVER_MAXCONN=7\n") == true && ours.first?.contains("HAPROXY_PROXY_NAME=l\n") == true)
        #expect(Array(ours.dropFirst()) == ["UP,PROCOK,0,External check passed", "DOWN,PROCERR,3,External check error", "DOWN,PROCTOUT,3,External check timeout"])
    }
}
}
