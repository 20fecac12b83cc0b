import Testing
@testable import Sluice

/// The runtime API's command reader, without a balancer: what each line asks, at which level, and
/// the refusals that need no lookup. (Execution against a running balancer, and the replies
/// compared with HAProxy's, are in the integration suites.)
struct RuntimeCommandTests {
    static func parse(_ line: String, _ level: StatsSocket.Level = .admin) -> RuntimeCommand { RuntimeCommand.parse(line, level: level) }

    static func reply(_ command: RuntimeCommand) -> String? {
        if case .reply(let text) = command { return text }
        return nil
    }

    @Test func linesSplitAtSemicolonsIntoTrimmedCommands() {
        #expect(RuntimeCommand.split(" show info ;;\tset server a/b state drain \r\n; ") == ["show info", "set server a/b state drain"])
        #expect(RuntimeCommand.split(" ; \t;").isEmpty)
    }

    @Test func serverCommandsReadTheirPathAndAction() {
        guard case .server(let path, .success(.setAdmin(.drain))) = Self.parse("set server api/s1 state drain") else { Issue.record("not a drain"); return }
        #expect(path == RuntimeCommand.ServerPath("api/s1"))
        #expect(path?.backend == "api" && path?.server == "s1")
        guard case .server(_, .success(.setAddress(let ip, let port))) = Self.parse("set server api/s1 addr ::1 port 8081") else { Issue.record("not an address"); return }
        #expect(ip == "::1" && port == 8081)
        guard case .server(_, .success(.waitDrained(let timeout, let shutdown))) = Self.parse("wait-drained api/s1 shutdown-after timeout 2m") else {
            Issue.record("not wait-drained"); return
        }
        #expect(timeout == 120_000 && shutdown)
        guard case .server(_, .success(.setWeight(let w))) = Self.parse("set weight api/s1 50%") else { Issue.record("not a weight"); return }
        #expect(w.resolve(configured: 10) == 5)
        #expect(w.resolve(configured: 1000) == 256)  // HAProxy caps a relative weight
        // HAProxy's refusals, word for word.
        for (text, refusal) in [("", "Require <weight> or <weight%>.\n"), ("x", "Empty weight string empty or preceded by garbage"),
                                ("-5%", "Relative weight must be positive.\n"), ("300", "Absolute weight can only be between 0 and 256 inclusive.\n"),
                                ("5x", "Trailing garbage in weight string")] {
            #expect(RuntimeCommand.Weight.parse(text) == .failure(RuntimeCommand.Refusal(refusal)), "\(text)")
        }
    }

    /// HAProxy answers an unknown backend or server before a bad argument: the refusal of the
    /// arguments travels with the path, for the execution to answer after the lookup.
    @Test func argumentRefusalsWaitForTheServerLookup() {
        guard case .server(let path, .failure(let refusal)) = Self.parse("set server api/s1 state sleepy") else { Issue.record("refused early"); return }
        #expect(path != nil)
        #expect(refusal.text == "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n")
        guard case .server(_, .failure(let bad)) = Self.parse("set server api/s1 addr 10.0.0.300") else { Issue.record("refused early"); return }
        #expect(bad == RuntimeCommand.invalidAddress("10.0.0.300"))
        guard case .server(_, .failure(let port)) = Self.parse("set server api/s1 addr 10.0.0.3 port 0") else { Issue.record("refused early"); return }
        #expect(port.text == "Invalid port '0'.\n")
        guard case .setMaxConnections("web", .failure(let integer)) = Self.parse("set maxconn frontend web lots") else { Issue.record("refused early"); return }
        #expect(integer.text == "Integer value expected.\n")
        guard case .server(nil, _) = Self.parse("get weight nopath") else { Issue.record("a path without a slash"); return }
    }

    @Test func syntaxRefusalsPermissionsAndUnknownCommandsAreReplies() {
        #expect(Self.reply(Self.parse("set weight")) == RuntimeCommand.requireServer)
        #expect(Self.reply(Self.parse("add server nopath 127.0.0.1:80")) == "Require 'backend/server'.")  // bare here, as HAProxy's add/del server
        #expect(Self.reply(Self.parse("add server api/s3 127.0.0.1:80 cookie c1")) == "'cookie' option is not accepted for dynamic server\n")
        #expect(Self.reply(Self.parse("set server api/s1 state drain", .operator)) == RuntimeCommand.permissionDenied)
        #expect(Self.reply(Self.parse("clear table t", .user)) == RuntimeCommand.permissionDenied)
        #expect(Self.reply(Self.parse("wait-drained api/s1", .operator)) == nil)
        let unknown = Self.reply(Self.parse("shw stat")) ?? ""
        #expect(unknown.hasPrefix("Unknown command, but maybe one of the following ones is a better match:\n"))
        let help = Self.reply(Self.parse("help", .user)) ?? ""
        #expect(help.contains("show stat") && !help.contains("set server"))
        guard case .addServer(let path, let server) = Self.parse("add server api/s3 127.0.0.1:8082 weight 7") else { Issue.record("not add server"); return }
        #expect(path.server == "s3" && server.name == "s3" && server.weight == 7)
    }

    @Test func tableSelectionsReadAgainstTheTablesTypes() {
        func parse(_ words: String, _ type: StickTableSpec.KeyType) -> Result<TableSelection, RuntimeCommand.Refusal> {
            TableSelection.parse(ArraySlice(words.split(separator: " ").map(String.init)), keyType: type, stored: { $0 == .connectionRate })
        }
        guard case .success(let s) = parse("data.conn_rate gt 10", .ipv4) else { Issue.record("refused a stored filter"); return }
        #expect(s.filters.count == 1 && s.matches(StickKey(.int(1), for: .integer)!, [(.connectionRate, 11)]))
        #expect(!s.matches(StickKey(.int(1), for: .integer)!, [(.connectionRate, 10)]))
        guard case .failure(let notStored) = parse("data.conn_cur gt 10", .ipv4) else { Issue.record("accepted a filter on data not stored"); return }
        #expect(notStored.text == "Data type not stored in this table\n")
        guard case .failure(let key) = parse("key notanaddress", .ipv4) else { Issue.record("accepted a bad key"); return }
        #expect(key.text == "Invalid key\n")
        guard case .success(let k) = parse("key 42", .integer) else { Issue.record("refused an integer key"); return }
        #expect(k.key == StickKey(.int(42), for: .integer))
        guard case .failure(let op) = parse("data.conn_rate about 3", .string(length: 32)) else { Issue.record("accepted a bad operator"); return }
        #expect(op.text.hasPrefix("Require a valid filter operator"))
    }
}
