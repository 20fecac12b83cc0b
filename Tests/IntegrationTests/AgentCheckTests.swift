import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// `agent-check`: an agent's one-line answers drive a server's weight, admin state, maxconn and
/// health, through Sluice and HAProxy 2.6 with the same file and the same agent.
extension Loopback {
@Suite struct AgentCheckTests {
    static func config(port: Int, socket: String, server: Int, agent: Int) -> String {
        StatsClient.preamble(socket: socket) + """
        listen fe
          bind 127.0.0.1:\(port)
          server s 127.0.0.1:\(server) weight 10 check inter 100 agent-check agent-port \(agent) agent-inter 100 agent-send "hello\\n"

        """
    }

    /// Sets the agent's answer, then waits until server `s`'s `show stat` row has `fields`.
    static func answer(_ line: String, agent: TestServer, socket: String, expect fields: [String: String]) throws {
        agent.agentReply.withLock { $0 = line }
        var row: [String: String] = [:]
        do {
            try eventually("\(fields) after the agent's \(line.debugDescription)") {
                row = try StatsClient.showStat(socket).first { $0["svname"] == "s" } ?? [:]
                return fields.allSatisfy { row[$0.key] == $0.value }
            }
        } catch {
            Issue.record("\(error): the row had \(fields.keys.sorted().map { "\($0)=\(row[$0] ?? "nil")" })")
            throw error
        }
    }

    /// Weight as a percentage of the configured one, drain, ready with a maxconn, down with a
    /// reason (the health check still passes: the agent alone holds the server down), up, maint
    /// (agent checks go on in maintenance) and ready again; then the runtime API's `set server …
    /// agent down|up`, which a later answer without a health word does not undo.
    static func run(port: Int, socket: String, server: TestServer, agent: TestServer) throws {
        func answer(_ line: String, _ fields: [String: String]) throws { try Self.answer(line, agent: agent, socket: socket, expect: fields) }
        try answer("75%\n", ["weight": "7", "status": "UP", "agent_status": "CHECKED"])
        try answer("drain\n", ["status": "DRAIN (agent)"])
        try answer("ready maxconn:5\n", ["status": "UP", "slim": "5", "weight": "7"])
        try answer("down # maintenance window\n", ["status": "DOWN (agent)", "agent_status": "L7STS", "last_agt": "via agent : down (maintenance window)",
                                                  "check_status": "L4OK", "agent_health": "0"])
        try answer("up 100%\n", ["status": "UP", "agent_status": "L7OK", "last_agt": "via agent : up", "weight": "10", "agent_health": "1"])
        try answer("maint\n", ["status": "MAINT"])
        try answer("ready\n", ["status": "UP"])
        try answer("ready nonsense\n", ["status": "UP", "agent_status": "CHECKED", "last_agt": "agent reports an error : nonsense"])
        #expect(try StatsClient.ask(socket, "set server fe/s agent down") == "\n")
        try answer("ready\n", ["status": "DOWN (agent)", "agent_status": "CHECKED"])
        // Health checks that pass after it do not bring the server back either.
        let checked = server.accepted.load(ordering: .relaxed)
        try eventually("two more health checks") { server.accepted.load(ordering: .relaxed) >= checked + 2 }
        try answer("ready\n", ["status": "DOWN (agent)", "check_status": "L4OK"])
        #expect(try StatsClient.ask(socket, "set server fe/s agent up") == "\n")
        try answer("ready\n", ["status": "UP"])
        #expect(try StatsClient.ask(socket, "set server fe/s agent sideways") == "'set server <srv> agent' expects 'up' or 'down'.\n\n")
        let state = try StatsClient.ask(socket, "show servers state fe").split(separator: "\n")
        let fields = try #require(state.last).split(separator: " ")
        #expect(fields.count == 25 && fields[14] == "22" && fields[23] == "-" && fields[24] == "\(agent.port)", "\(fields)")
        #expect(agent.received.withLock { String(decoding: $0, as: UTF8.self) }.hasPrefix("hello\nhello\n"))
    }

    @Test func anAgentSetsWeightAdminStateMaxconnAndHealthLikeHAProxy() throws {
        let server = try TestServer(.identify("s"))
        defer { server.stop() }
        let agent = try TestServer(.agent)
        defer { agent.stop() }
        let socket = RuntimeAPITests.socketPath()
        let proxy = try RunningProxy(Self.config(port: 0, socket: socket, server: server.port, agent: agent.port))
        defer { proxy.stop() }
        try Self.run(port: proxy.port, socket: socket, server: server, agent: agent)
        guard HAProxyProcess.requireInstalled() else { return }
        let other = try TestServer(.agent)
        defer { other.stop() }
        let port = try Net.closedPort(), haproxySocket = RuntimeAPITests.socketPath()
        let haproxy = try HAProxyProcess(config: Self.config(port: port, socket: haproxySocket, server: server.port, agent: other.port), port: port)
        defer { haproxy.stop() }
        try Self.run(port: port, socket: haproxySocket, server: server, agent: other)
    }

    /// An agent that cannot be reached changes nothing: the health check decides, on both.
    @Test func anUnreachableAgentChangesNothingLikeHAProxy() throws {
        let server = try TestServer(.identify("s"))
        defer { server.stop() }
        let closed = try Net.closedPort()
        func run(_ port: Int, _ socket: String) throws {
            try eventually("the agent fails to connect, the health check passes") {
                let row = try StatsClient.showStat(socket).first { $0["svname"] == "s" }
                return row?["agent_status"] == "L4CON" && row?["check_status"] == "L4OK"
            }
            let row = try #require(try StatsClient.showStat(socket).first { $0["svname"] == "s" })
            #expect(row["status"] == "UP" && row["agent_health"] == "1" && row["weight"] == "10", "\(row.filter { $0.key.contains("agent") || $0.key == "status" })")
            let client = try Net.connect(port)
            defer { close(client) }
            #expect(try Net.readToEnd(client) == Array("s\n".utf8))
        }
        let socket = RuntimeAPITests.socketPath()
        let proxy = try RunningProxy(Self.config(port: 0, socket: socket, server: server.port, agent: closed))
        defer { proxy.stop() }
        try run(proxy.port, socket)
        guard HAProxyProcess.requireInstalled() else { return }
        let port = try Net.closedPort(), haproxySocket = RuntimeAPITests.socketPath()
        let haproxy = try HAProxyProcess(config: Self.config(port: port, socket: haproxySocket, server: server.port, agent: closed), port: port)
        defer { haproxy.stop() }
        try run(port, haproxySocket)
    }
}
}
