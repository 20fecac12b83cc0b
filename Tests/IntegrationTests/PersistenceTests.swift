import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

extension Loopback {
/// `option persist`, `force-persist` and `ignore-persist` at Layer 4: which server a `use-server`
/// rule's session reaches when that server is DOWN or in maintenance, and whether its retries may
/// be redispatched — each proxy's answers compared with HAProxy 2.6's on the same file.
@Suite struct PersistenceTests {
    /// Section name, its lines, and the client's source address.
    static let cases: [(name: String, lines: String, source: String)] = [
        ("plain", "", "127.0.0.2"),
        ("persist", "option persist", "127.0.0.2"),
        ("forced", "force-persist if { src 127.0.0.2 }", "127.0.0.2"),
        ("forced-other-client", "force-persist if { src 127.0.0.2 }", "127.0.0.3"),
        ("ignored-first", "ignore-persist if { src 127.0.0.2 }\n  force-persist if TRUE", "127.0.0.2"),
        ("maintenance", "force-persist if TRUE", "127.0.0.2"),
        ("persist-redispatched", "option persist\n  option redispatch\n  retries 1", "127.0.0.2"),
        ("forced-not-redispatched", "force-persist if TRUE\n  option redispatch\n  retries 1", "127.0.0.2"),
    ]

    static func config(ports: [Int], one: Int, two: Int, closed: Int, socket: String) -> String {
        var text = StatsClient.preamble(socket: socket)
        for (k, c) in cases.enumerated() {
            // `one` is DOWN (its check goes to a closed port), in maintenance, or (for the
            // redispatch cases) DOWN and refusing connections too.
            let oneLine: String
            switch c.name {
            case "maintenance": oneLine = "server one 127.0.0.1:\(one) disabled"
            case "persist-redispatched", "forced-not-redispatched": oneLine = "server one 127.0.0.1:\(closed) check inter 100ms fall 1 rise 1"
            default: oneLine = "server one 127.0.0.1:\(one) check port \(closed) inter 100ms fall 1 rise 1"
            }
            text += """
            listen \(c.name)
              bind 127.0.0.1:\(ports[k])
              \(c.lines)
              use-server one if { src 127.0.0.2 }
              \(oneLine)
              server two 127.0.0.1:\(two)

            """
        }
        return text
    }

    static func answer(_ port: Int, from source: String) throws -> String {
        let fd = try Loopback.AlgorithmTests.connect(port, from: source)
        defer { close(fd) }
        return String(decoding: (try? Net.readToEnd(fd, timeoutMs: 5_000)) ?? [], as: UTF8.self)
    }

    /// Each case's answer once `one` is out of the rotation (a client of the algorithm gets `two`).
    static func answers(haproxy: Bool, one: Int, two: Int, closed: Int) throws -> [String] {
        let ports = try cases.map { _ in try Net.closedPort() }
        let socket = TestFiles.folder.appendingPathComponent("persist-\(UUID().uuidString.prefix(8)).sock").path
        defer { unlink(socket) }
        let text = config(ports: ports, one: one, two: two, closed: closed, socket: socket)
        let runner: AnyObject = haproxy ? try HAProxyProcess(config: text, port: ports[0]) : try RunningProxy(text)
        defer { if let h = runner as? HAProxyProcess { h.stop() } else if let p = runner as? RunningProxy { p.stop() } }
        // Every checked `one` is STOPPED (srv_op_state 0): its first check has failed.
        try eventually("\(haproxy ? "haproxy" : "sluice"): every checked server 'one' is down") {
            let rows: [[Substring]] = try StatsClient.ask(socket, "show servers state").split(separator: "\n").map { $0.split(separator: " ") }
            let checked = rows.filter { (row: [Substring]) -> Bool in row.count > 5 && row[3] == "one" && row[1] != "maintenance" }
            return checked.count == cases.count - 1 && checked.allSatisfy { $0[5] == "0" }
        }
        return try zip(cases, ports).map { c, port in "\(c.name): " + (try answer(port, from: c.source)).trimmingCharacters(in: .newlines) }
    }

    /// A stick table's entry names a server that has gone DOWN since: `force-persist` still sends
    /// the client there, without it the algorithm chooses — as HAProxy does on the same file.
    @Test func stickMatchesReachADownServerOnlyWhenPersistenceIsForced() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let one = try TestServer(.identify("one")), two = try TestServer(.identify("two"))
        defer { one.stop(); two.stop() }
        var results: [[String]] = []
        for haproxy in [true, false] {
            // `one`'s checks go to a server of their own, stopped to take `one` DOWN.
            let health = try TestServer(.echo)
            defer { health.stop() }  // stop() is idempotent
            let socket = TestFiles.folder.appendingPathComponent("stick-\(UUID().uuidString.prefix(8)).sock").path
            defer { unlink(socket) }
            let contender = try Contender(haproxy: haproxy) { port in
                StatsClient.preamble(socket: socket) + """
                listen l
                  bind 127.0.0.1:\(port)
                  balance first
                  stick-table type ip size 10
                  stick on src
                  force-persist if { src 127.0.0.2 }
                  server one 127.0.0.1:\(one.port) check port \(health.port) inter 100ms fall 1 rise 1
                  server two 127.0.0.1:\(two.port)

                """
            }
            defer { contender.stop() }
            var answers = try ["127.0.0.2", "127.0.0.3"].map { try Self.answer(contender.port, from: $0) }
            health.stop()
            try eventually("\(contender.name): one is down") {
                let rows = try StatsClient.ask(socket, "show servers state l").split(separator: "\n").map { $0.split(separator: " ") }
                return rows.contains { $0.count > 5 && $0[3] == "one" && $0[5] == "0" }
            }
            answers += try ["127.0.0.2", "127.0.0.3"].map { try Self.answer(contender.port, from: $0) }
            results.append(answers.map { $0.trimmingCharacters(in: .newlines) })
        }
        #expect(results[1] == results[0])
        #expect(results[1] == ["one", "one", "one", "two"])
    }

    @Test func downAndMaintenanceServersTakeWhatPersistenceSendsThemLikeHAProxy() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let one = try TestServer(.identify("one")), two = try TestServer(.identify("two"))
        defer { one.stop(); two.stop() }
        let closed = try Net.closedPort()
        let theirs = try Self.answers(haproxy: true, one: one.port, two: two.port, closed: closed)
        let ours = try Self.answers(haproxy: false, one: one.port, two: two.port, closed: closed)
        #expect(ours == theirs)
        #expect(ours == ["plain: two", "persist: one", "forced: one", "forced-other-client: two", "ignored-first: two", "maintenance: one",
                         "persist-redispatched: two", "forced-not-redispatched: "])
    }

    /// A session waits in the queue of the server `use-server` chose (its only slot is taken); the
    /// server goes into maintenance, then its slot frees. As HAProxy's process_srv_queue and
    /// pendconn_redistribute: without `option redispatch` the waiting session is served there all
    /// the same; with it, it moves to another server — unless `force-persist` sent it, or the
    /// backend has `option persist`.
    @Test func sessionsQueuedForAServerInMaintenanceAreServedAsHAProxyServesThem() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let one = try TestServer(.identify("one")), two = try TestServer(.identify("two"))
        defer { one.stop(); two.stop() }
        let cases = [("waiting", ""), ("redispatched", "option redispatch"), ("forced", "option redispatch\n  force-persist if TRUE"),
                     ("persist", "option redispatch\n  option persist")]
        var results: [[String]] = []
        for haproxy in [true, false] {
            let socket = TestFiles.folder.appendingPathComponent("queue-\(UUID().uuidString.prefix(8)).sock").path
            defer { unlink(socket) }
            var answers: [String] = []
            for (name, lines) in cases {
                let contender = try Contender(haproxy: haproxy) { port in
                    StatsClient.preamble(socket: socket) + """
                    listen \(name)
                      bind 127.0.0.1:\(port)
                      timeout queue 5s
                      \(lines)
                      use-server one if TRUE
                      server one 127.0.0.1:\(one.port) maxconn 1
                      server two 127.0.0.1:\(two.port)

                    """
                }
                defer { contender.stop() }
                var holder = try Net.connect(contender.port)
                defer { if holder >= 0 { close(holder) } }
                _ = try Net.read(holder, count: 4)  // "one\n": the session holds one's only slot
                let waiting = try Net.connect(contender.port)
                defer { close(waiting) }
                try eventually("\(contender.name) \(name): the second session waits for one") {
                    try StatsClient.showStat(socket).first { $0["svname"] == "one" }?["qcur"] == "1"
                }
                _ = try StatsClient.ask(socket, "disable server \(name)/one")
                close(holder)
                holder = -1
                answers.append("\(name): " + String(decoding: (try? Net.readToEnd(waiting, timeoutMs: 8_000)) ?? [], as: UTF8.self).trimmingCharacters(in: .newlines))
            }
            results.append(answers)
        }
        #expect(results[1] == results[0])
        #expect(results[1] == ["waiting: one", "redispatched: two", "forced: one", "persist: one"])
    }
}
}
