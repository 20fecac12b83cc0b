import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// Talks to a UNIX stats socket as `socat` does.
enum StatsClient {
    static func connect(_ path: String) throws -> CInt {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let r = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard r == 0 else {
            close(fd)
            throw Net.Failure("connect \(path): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    /// Sends one request (a line) and returns everything until the server closes.
    static func ask(_ path: String, _ request: String, timeoutMs: Int = 10_000) throws -> String {
        let fd = try connect(path)
        defer { close(fd) }
        try Net.sendAll(fd, request.hasSuffix("\n") ? request : request + "\n")
        return String(decoding: try Net.readToEnd(fd, timeoutMs: timeoutMs), as: UTF8.self)
    }

    /// A configuration's start for tests that compare with HAProxy: an admin socket at `socket`
    /// and tcp defaults (connect 1 s, client and server 5 s).
    static func preamble(socket: String) -> String {
        """
        global
          stats socket \(socket) level admin
        defaults
          mode tcp
          timeout connect 1s
          timeout client 5s
          timeout server 5s

        """
    }

    /// `show stat`'s rows, each by column name (HAProxy's or Sluice's socket); `command` may add
    /// a selector and flags.
    static func showStat(_ path: String, _ command: String = "show stat") throws -> [[String: String]] {
        let lines = try ask(path, command).split(separator: "\n")
        guard let header = lines.first?.dropFirst(2).split(separator: ",", omittingEmptySubsequences: false).map(String.init) else { return [] }
        return lines.dropFirst().map { line in
            Dictionary(zip(header, line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)), uniquingKeysWith: { first, _ in first })
        }
    }
}

extension Loopback {
@Suite struct RuntimeAPITests {
    /// Sluice and HAProxy 2.6 on the same configuration, each with its own port and admin socket
    /// (`config(port, socket)`): `sockets[0]` is Sluice's, `sockets[1]` HAProxy's. The caller stops both.
    static func sideBySide(_ config: (Int, String) -> String) throws -> (proxy: RunningProxy, haproxy: HAProxyProcess, sockets: [String]) {
        let ports = try (0..<2).map { _ in try Net.closedPort() }
        let sockets = [socketPath(), socketPath()]
        let proxy = try RunningProxy(config(ports[0], sockets[0]))
        do {
            return (proxy, try HAProxyProcess(config: config(ports[1], sockets[1]), port: ports[1]), sockets)
        } catch {
            proxy.stop()
            throw error
        }
    }

    static func socketPath() -> String {
        TestFiles.folder.appendingPathComponent("sluice-\(UUID().uuidString.prefix(8)).sock").path
    }

    /// `listen fe` in front of `servers` (named one, two, …) with an admin socket at `path`.
    static func listenProxy(socket path: String, servers: [TestServer]) throws -> RunningProxy {
        let names = ["one", "two", "three"]
        return try RunningProxy("""
            global
              stats socket \(path) level admin
            listen fe
              bind 127.0.0.1:0
            \(zip(names, servers).map { "  server \($0) 127.0.0.1:\($1.port)" }.joined(separator: "\n"))
            """)
    }

    /// Two identifying servers behind one frontend, with a stats socket at `level`.
    struct Setup {
        let a: TestServer, b: TestServer
        let proxy: RunningProxy
        let path: String
        var backend: BackendState { proxy.balancer.backend(named: "be")! }

        init(level: String = "admin", extra: String = "") throws {
            a = try TestServer(.identify("a"))
            b = try TestServer(.identify("b"))
            path = RuntimeAPITests.socketPath()
            proxy = try RunningProxy("""
                global
                  stats socket \(path) mode 600 level \(level)
                defaults
                  timeout connect 1s
                frontend fe
                  bind 127.0.0.1:0
                  default_backend be
                backend be
                  \(extra)
                  server a 127.0.0.1:\(a.port)
                  server b 127.0.0.1:\(b.port)
                """)
        }

        func ask(_ request: String) throws -> String { try StatsClient.ask(path, request) }
        func who() throws -> String { try BalancingTests.whoAnswers(proxy.port) }
        func stop() { proxy.stop(); a.stop(); b.stop() }
    }

    /// Proxy and server ids (`id`, else HAProxy's numbering: the statistics proxy counts, an
    /// explicit id moves the cursor too) and `show stat`'s selector and flags, against HAProxy 2.6
    /// running the same configuration in the same test: every row's `iid`/`sid`, the rows each
    /// selection keeps, `show servers state`'s ids, and the refusals.
    @Test func idsAndShowStatSelectionsMatchHAProxy() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let server = try TestServer(.echo)
        defer { server.stop() }
        func config(_ ports: ArraySlice<Int>, _ socket: String) -> String {
            StatsClient.preamble(socket: socket) + """
            listen stats
              mode http
              bind 127.0.0.1:\(ports[ports.startIndex])
              http-request use-service prometheus-exporter if { path /metrics }
            frontend fe
              bind 127.0.0.1:\(ports[ports.startIndex + 1])
              default_backend be
            backend be
              id 1
              server s1 127.0.0.1:\(server.port)
              server s2 127.0.0.1:\(server.port) id 1
              server s3 127.0.0.1:\(server.port)
            listen li
              bind 127.0.0.1:\(ports[ports.startIndex + 2])
              server a 127.0.0.1:\(server.port)
              server b 127.0.0.1:\(server.port) disabled

            """
        }
        let ports = try (0..<6).map { _ in try Net.closedPort() }
        let sockets = [Self.socketPath(), Self.socketPath()]
        let proxy = try RunningProxy(config(ports[0..<3], sockets[0]))
        defer { proxy.stop() }
        let haproxy = try HAProxyProcess(config: config(ports[3..<6], sockets[1]), port: ports[5])
        defer { haproxy.stop() }
        // Sluice serves the statistics proxy apart and gives it no rows; HAProxy's are left out.
        func rows(_ socket: String, _ command: String) throws -> [String] {
            try StatsClient.showStat(socket, command).filter { $0["pxname"] != "stats" }
                .map { "\($0["pxname"] ?? "?")/\($0["svname"] ?? "?") iid=\($0["iid"] ?? "?") sid=\($0["sid"] ?? "?")" }
        }
        let all = try rows(sockets[0], "show stat")
        #expect(all == ["fe/FRONTEND iid=3 sid=0", "be/s1 iid=1 sid=2", "be/s2 iid=1 sid=1", "be/s3 iid=1 sid=4", "be/BACKEND iid=1 sid=0",
                        "li/FRONTEND iid=5 sid=0", "li/a iid=5 sid=1", "li/b iid=5 sid=2", "li/BACKEND iid=5 sid=0"])
        for command in ["show stat", "show stat 1 4 -1", "show stat be 6 2", "show stat -1 1 -1", "show stat li 7 -1 no-maint",
                        "show stat -1 4 -1 up", "show stat 99 7 -1", "show stat domain proxy 5 3 -1", "show stat -1 2 -1 typed"] {
            if command.hasSuffix("typed") {
                // Typed lines carry the ids in their prefix (`S.<iid>.<sid>.…`).
                let prefixes = { (socket: String) throws -> Set<String> in
                    Set(try StatsClient.ask(socket, command).split(separator: "\n").map { $0.split(separator: ".").prefix(3).joined(separator: ".") })
                }
                let sluice = try prefixes(sockets[0]), theirs = try prefixes(sockets[1])
                #expect(sluice.isSubset(of: theirs) && sluice == ["B.1.0", "B.5.0"], "\(command): Sluice \(sluice), HAProxy \(theirs)")
                continue
            }
            #expect(try rows(sockets[0], command) == (try rows(sockets[1], command)), "\(command)")
        }
        for command in ["show stat x 4 -1", "show stat domain dns"] {
            #expect(try StatsClient.ask(sockets[0], command) == (try StatsClient.ask(sockets[1], command)), "\(command)")
        }
        // `show servers state`: be_id and srv_id.
        func ids(_ socket: String) throws -> [String] {
            try StatsClient.ask(socket, "show servers state").split(separator: "\n").dropFirst(2)
                .map { $0.split(separator: " ").prefix(4).joined(separator: " ") }
        }
        #expect(try ids(sockets[0]) == (try ids(sockets[1])))
        #expect(try ids(sockets[0]) == ["1 be 2 s1", "1 be 1 s2", "1 be 4 s3", "5 li 1 a", "5 li 2 b"])
        // A server added at run time takes the smallest free id, or its own; one in use is refused.
        for socket in sockets {
            #expect(try StatsClient.ask(socket, "add server be/s4 127.0.0.1:\(server.port)") == "New server registered.\n\n")
            #expect(try StatsClient.ask(socket, "add server be/s5 127.0.0.1:\(server.port) id 9") == "New server registered.\n\n")
        }
        #expect(try rows(sockets[0], "show stat be 4 -1") == (try rows(sockets[1], "show stat be 4 -1")))
        #expect(try rows(sockets[0], "show stat be 4 -1").suffix(2) == ["be/s4 iid=1 sid=3", "be/s5 iid=1 sid=9"])
        #expect(try StatsClient.ask(sockets[0], "add server be/s6 127.0.0.1:\(server.port) id 9") == "'id' : custom id 9 already used ('server s5').\n\n")
    }

    /// Answers word for word and newline for newline, against HAProxy 2.6 given the same commands
    /// in the same order: refusals, reports, and the empty line that ends every answer (some of
    /// HAProxy's sentences carry a newline of their own, some do not).
    @Test func answersMatchHAProxyByteForByte() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let server = try TestServer(.echo)
        defer { server.stop() }
        func config(_ port: Int, _ socket: String) -> String {
            StatsClient.preamble(socket: socket) + """
            frontend fe
              bind 127.0.0.1:\(port)
              default_backend be
            backend be
              server s1 127.0.0.1:\(server.port)
              server s2 127.0.0.1:\(server.port)

            """
        }
        let (proxy, haproxy, sockets) = try Self.sideBySide(config)
        defer { proxy.stop(); haproxy.stop() }
        let other = server.port == 65535 ? 1 : server.port + 1
        for command in ["get weight be/s1", "get weight be/nope", "get weight nope/s1", "get weight", "set weight be/s1 x", "set weight be/s1",
                        "set weight be/s1 5x", "set weight be/s1 300", "set weight be/s1 -5%", "set weight be/s1 50%", "get weight be/s1",
                        "set weight", "set server be/s1 addr 127.0.0.1", "set server be/s1 addr 127.0.0.1 port \(other)",
                        "set server be/s1 addr 127.0.0.1 port \(server.port)", "set server be/s1 addr bogus", "set server be/s1 state bogus",
                        "set server nope/s1 state ready", "disable server be/nope", "enable health be/s1", "disable health be/s1",
                        "set maxconn frontend nope 10", "add server be", "del server be", "add server nope/x 127.0.0.1:1", "del server be/nope",
                        "del server be/s1", "show servers state nope", "show table nope", "clear table nope",
                        "get weight be/s1;get weight be/s2", "set server be/s2 state drain;get weight be/s2", "show stat x 4 -1",
                        "show stat domain dns", "set maxconn frontend", "set maxconn frontend nope", "set maxconn frontend nope x",
                        "set maxconn frontend fe", "set maxconn frontend fe -1", "set maxconn frontend fe 0"] {
            #expect(try StatsClient.ask(sockets[0], command) == (try StatsClient.ask(sockets[1], command)), "\(command)")
        }
    }

    /// `set server … check-port` and `check-addr`: HAProxy's answers word for word (its checks in its
    /// order), `show servers state`'s srv_check_port and srv_check_addr as HAProxy prints them, and
    /// the checks really move: a check port with nothing behind it takes the server DOWN while its
    /// traffic port is alive, and `check-port 0` gives the checks back the server's port.
    @Test func checkPortAndAddressMoveTheChecksAndAnswerAsHAProxy() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let server = try TestServer(.echo)
        let checkTarget = try TestServer(.echo)
        defer { server.stop(); checkTarget.stop() }
        func config(_ port: Int, _ socket: String) -> String {
            StatsClient.preamble(socket: socket) + """
            frontend fe
              bind 127.0.0.1:\(port)
              default_backend be
            backend be
              server s1 127.0.0.1:\(server.port) check inter 100ms rise 1 fall 1
              server s2 127.0.0.1:\(server.port)

            """
        }
        let (proxy, haproxy, sockets) = try Self.sideBySide(config)
        defer { proxy.stop(); haproxy.stop() }
        /// srv_check_port and srv_check_addr of each server line.
        func checkFields(_ socket: String) throws -> [String] {
            try StatsClient.ask(socket, "show servers state be").split(separator: "\n").dropFirst(2).map {
                $0.split(separator: " ")[21...22].joined(separator: " ")
            }
        }
        #expect(try checkFields(sockets[0]) == ["0 -", "0 -"])
        let closed = try Net.closedPort()
        for command in ["set server be/s1 check-port", "set server be/s1 check-addr", "set server be/s1 check-port abc",
                        "set server be/s1 check-port 70000", "set server be/s1 check-port -1", "set server be/s2 check-port 80",
                        "set server be/s1 check-addr bogus", "set server be/s1 check-addr localhost", "set server be/s1 check-addr 127.0.0.1 port x",
                        "set server be/s1 check-addr 127.0.0.1", "set server be/s1 check-port \(closed)"] {
            #expect(try StatsClient.ask(sockets[0], command) == (try StatsClient.ask(sockets[1], command)), "\(command)")
        }
        #expect(try checkFields(sockets[0]) == ["\(closed) 127.0.0.1", "0 -"])
        #expect(try checkFields(sockets[0]) == (try checkFields(sockets[1])))
        let s1 = try #require(proxy.balancer.backend(named: "be")?.servers.first)
        try eventually("s1 is DOWN: its checks go to a closed port") { s1.operational == .stopped }
        let before = checkTarget.accepted.load(ordering: .relaxed)
        _ = try StatsClient.ask(sockets[0], "set server be/s1 check-addr 127.0.0.1 port \(checkTarget.port)")
        try eventually("s1 is UP: checked on the new port") { s1.operational == .running }
        // The kernel completes the check's handshake before the test server's thread accepts it.
        try eventually("the new check port saw the check") { checkTarget.accepted.load(ordering: .relaxed) > before }
        _ = try StatsClient.ask(sockets[0], "set server be/s1 check-port \(closed)")
        try eventually("s1 is DOWN again") { s1.operational == .stopped }
        #expect(try StatsClient.ask(sockets[0], "set server be/s1 check-port 0") == "\n")
        try eventually("s1 is UP: 'check-port 0' checks the server's own port again") { s1.operational == .running }
        #expect(try checkFields(sockets[0]) == ["0 127.0.0.1", "0 -"])
        // Once health checks are disabled, HAProxy refuses to move them.
        _ = try StatsClient.ask(sockets[0], "disable health be/s1")
        _ = try StatsClient.ask(sockets[1], "disable health be/s1")
        #expect(try StatsClient.ask(sockets[0], "set server be/s1 check-port 9") == (try StatsClient.ask(sockets[1], "set server be/s1 check-port 9")))
        // Sluice refuses words HAProxy would ignore after the address.
        #expect(try StatsClient.ask(sockets[0], "set server be/s2 check-addr 127.0.0.1 prt 3") == "'set server <srv> check-addr' expects <addr> [port <port>].\n\n")
    }

    @Test func showStatUsesHAProxysExactHeaderAndOneRowPerFrontendServerAndBackend() throws {
        let s = try Setup()
        defer { s.stop() }
        for _ in 0..<4 { _ = try s.who() }
        let lines = try s.ask("show stat").split(separator: "\n").map(String.init)
        #expect(lines.first == "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ss")
        let header = lines[0].dropFirst(2).split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let rows = lines.dropFirst().map { line -> [String: String] in
            Dictionary(uniqueKeysWithValues: zip(header, line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)))
        }
        #expect(rows.map { "\($0["pxname"]!)/\($0["svname"]!)" } == ["fe/FRONTEND", "be/a", "be/b", "be/BACKEND"])
        #expect(rows.allSatisfy { $0.count == header.count })
        #expect(rows[0]["status"] == "OPEN")
        #expect(rows[1]["status"] == "no check")
        #expect(rows[1]["stot"] == "2" && rows[2]["stot"] == "2")
        #expect(rows[3]["stot"] == "4")
        #expect(Int(rows[1]["bout"] ?? "") == 4)  // "a\n" twice
        #expect(rows[1]["addr"] == "127.0.0.1:\(s.a.port)")
        #expect(rows[3]["act"] == "2")
        #expect(rows[1]["hrsp_2xx"] == "")  // not tracked at Layer 4: empty, as HAProxy leaves it
    }

    @Test func drainStopsNewSessionsKeepsOldOnesAndWaitDrainedAnswersWhenTheyEnd() throws {
        let echo = try TestServer(.echo), other = try TestServer(.echo)
        defer { echo.stop(); other.stop() }
        let path = Self.socketPath()
        let proxy = try Self.listenProxy(socket: path, servers: [echo, other])
        let long = try Net.connect(proxy.port)  // goes to `one` (first in rotation)
        try Net.sendAll(long, "hello\n")
        #expect(String(decoding: try Net.read(long, count: 6), as: UTF8.self) == "hello\n")
        #expect(try StatsClient.ask(path, "set server fe/one state drain") == "\n")
        for _ in 0..<6 {
            let fd = try Net.connect(proxy.port)
            try Net.sendAll(fd, "x")
            _ = try Net.read(fd, count: 1)
            close(fd)
        }
        let one = try #require(proxy.balancer.backend(named: "fe")?.server(named: "one"))
        #expect(one.statistics.totalSessions == 1, "a drained server got new sessions")
        #expect(one.status == "DRAIN")
        // The old session still forwards.
        try Net.sendAll(long, "still\n")
        #expect(String(decoding: try Net.read(long, count: 6), as: UTF8.self) == "still\n")
        // wait-drained answers once it ends.
        let waiter = try StatsClient.connect(path)
        defer { close(waiter) }
        try Net.sendAll(waiter, "wait-drained fe/one timeout 10s\n")
        #expect(!Net.waitReadable(waiter, timeoutMs: 200), "answered while a session was still open")
        close(long)
        #expect(String(decoding: try Net.readToEnd(waiter), as: UTF8.self) == "Server fe/one is drained: 0 sessions.\n\n")
        // A timeout reports the remainder, and shutdown-after closes it.
        #expect(try StatsClient.ask(path, "set server fe/one state ready; set server fe/two state maint") == "\n\n")
        let stuck = try Net.connect(proxy.port)
        defer { close(stuck) }
        try Net.sendAll(stuck, "x")
        _ = try Net.read(stuck, count: 1)
        #expect(try StatsClient.ask(path, "wait-drained fe/one timeout 200ms") == "Server fe/one still has 1 session(s) at the timeout.\n\n")
        #expect(try StatsClient.ask(path, "wait-drained fe/one timeout 100ms shutdown-after") == "Server fe/one still had 1 session(s) at the timeout; they were shut down.\n\n")
        #expect(try Net.readToEnd(stuck).isEmpty)
    }

    /// keepalived's `check_sluice` relies on this: while a graceful stop lets sessions finish, the
    /// socket still answers and `show info` says `Stopping: 1` (HAProxy's field), so the host gives
    /// its shared address up before the listeners are gone.
    @Test func showInfoSaysStoppingDuringAGracefulStop() throws {
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        let path = Self.socketPath()
        let proxy = try Self.listenProxy(socket: path, servers: [echo])
        defer { proxy.stop() }
        #expect(try StatsClient.ask(path, "show info").contains("\nStopping: 0\n"))
        let long = try Net.connect(proxy.port)
        defer { close(long) }
        try Net.sendAll(long, "hello\n")
        #expect(String(decoding: try Net.read(long, count: 6), as: UTF8.self) == "hello\n")
        proxy.balancer.stop(graceful: true)
        #expect(try StatsClient.ask(path, "show info").contains("\nStopping: 1\n"))
        try Net.sendAll(long, "still\n")
        #expect(String(decoding: try Net.read(long, count: 6), as: UTF8.self) == "still\n", "the old session goes on")
    }

    @Test func maintenanceAndReadyAndDisableEnableServerChangeRotation() throws {
        let s = try Setup()
        defer { s.stop() }
        #expect(try s.ask("disable server be/a") == "\n")
        #expect(Set(try (0..<4).map { _ in try s.who() }) == ["b"])
        #expect(s.backend.server(named: "a")?.status == "MAINT")
        #expect(try s.ask("enable server be/a") == "\n")
        #expect(Set(try (0..<4).map { _ in try s.who() }) == ["a", "b"])
        #expect(try s.ask("set server be/b state maint") == "\n")
        #expect(Set(try (0..<4).map { _ in try s.who() }) == ["a"])
        #expect(try s.ask("set server be/b state ready") == "\n")
    }

    @Test func weightAndAddressChangesApplyToNewSessions() throws {
        let s = try Setup()
        defer { s.stop() }
        #expect(try s.ask("set server be/a weight 3") == "\n")
        #expect(try (0..<8).map { _ in try s.who() }.filter { $0 == "a" }.count == 6)
        #expect(try s.ask("set weight be/a 0%") == "\n")
        #expect(Set(try (0..<3).map { _ in try s.who() }) == ["b"])
        #expect(try s.ask("get weight be/a") == "0 (initial 1)\n\n")
        #expect(try s.ask("set server be/a weight 300") == "Absolute weight can only be between 0 and 256 inclusive.\n\n")
        // Point `a` at b's port: new sessions for `a` now reach server b.
        #expect(try s.ask("set server be/a weight 1") == "\n")
        #expect(try s.ask("set server be/a addr 127.0.0.1 port \(s.b.port)") == "no need to change the addr, port changed from '\(s.a.port)' to '\(s.b.port)' by 'stats socket command'\n\n")
        #expect(Set(try (0..<4).map { _ in try s.who() }) == ["b"])
    }

    @Test func userLevelMayReadButNotChange() throws {
        let s = try Setup(level: "user")
        defer { s.stop() }
        #expect(try s.ask("disable server be/a") == "Permission denied\n\n")
        #expect(try s.ask("set server be/a state maint") == "Permission denied\n\n")
        #expect(try s.ask("show info").contains("Name: Sluice"))
        #expect(try s.ask("show info").contains("\nnode: "))
        #expect(s.backend.server(named: "a")?.admin == .ready)
        #expect(!(try s.ask("help")).contains("set server"))
    }

    @Test func badInputGetsAnErrorAndChangesNothing() throws {
        let s = try Setup()
        defer { s.stop() }
        #expect(try s.ask("frobnicate now").hasPrefix("Unknown command, but maybe one of the following ones is a better match:\n"))
        #expect(try s.ask("disable server") == "Require 'backend/server'.\n\n")
        #expect(try s.ask("disable server nope/a") == "No such backend.\n\n")
        #expect(try s.ask("disable server be/nope") == "No such server.\n\n")
        #expect(try s.ask("set server be/a state sideways") == "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n")
        #expect(try s.ask("set server be/a").hasPrefix("'set server <srv>' only supports"))
        #expect(try s.ask("set maxconn frontend nope 10") == "No such frontend.\n\n")
        #expect(try s.ask(String(repeating: "x", count: 70_000)).hasPrefix("Line too long"))
        let garbage = String(decoding: (0..<200).map { UInt8(($0 * 37) % 256) }.filter { $0 != 10 }, as: UTF8.self)
        #expect(try s.ask(garbage).hasPrefix("Unknown command"))
        #expect(s.backend.servers.allSatisfy { $0.admin == .ready && $0.weight == 1 })
        #expect(Set(try (0..<4).map { _ in try s.who() }) == ["a", "b"])
    }

    @Test func promptModeKeepsTheConnectionUntilQuit() throws {
        let s = try Setup()
        defer { s.stop() }
        let fd = try StatsClient.connect(s.path)
        defer { close(fd) }
        // As HAProxy 2.6: every command's answer, even an empty one, ends with an empty line and
        // the prompt, also between the commands of one line.
        try Net.sendAll(fd, "prompt\n")
        #expect(String(decoding: try Net.read(fd, count: 3), as: UTF8.self) == "\n> ")
        try Net.sendAll(fd, "disable server be/a\n")
        #expect(String(decoding: try Net.read(fd, count: 3), as: UTF8.self) == "\n> ")
        try Net.sendAll(fd, "show backend\n")
        #expect(String(decoding: try Net.read(fd, count: 13), as: UTF8.self) == "# name\nbe\n\n> ")
        try Net.sendAll(fd, "get weight be/b;get weight be/nope\n")
        #expect(String(decoding: try Net.read(fd, count: 36), as: UTF8.self) == "1 (initial 1)\n\n> No such server.\n\n> ")
        try Net.sendAll(fd, "quit\n")
        #expect(try Net.readToEnd(fd).isEmpty)
        #expect(s.backend.server(named: "a")?.admin == .maintenance)
    }

    @Test func shutdownSessionsAndMaxconnAndHealthToggles() throws {
        let holder = try TestServer(.holdOpen)
        let web = try TestServer(.http("web"))
        defer { holder.stop(); web.stop() }
        let path = Self.socketPath()
        let proxy = try RunningProxy("""
            global
              stats socket \(path) level admin
            listen fe
              bind 127.0.0.1:0
              option httpchk GET /alive
              server s 127.0.0.1:\(holder.port) check port \(web.port) inter 100ms fall 1
            """)
        let server = try #require(proxy.balancer.backend(named: "fe")?.server(named: "s"))
        let fd = try Net.connect(proxy.port)
        defer { close(fd) }
        try eventually("the session reaches the server") { server.statistics.currentSessions == 1 }
        #expect(try StatsClient.ask(path, "shutdown sessions server fe/s") == "\n")
        #expect(try Net.readToEnd(fd).isEmpty)

        #expect(try StatsClient.ask(path, "set maxconn frontend fe 1") == "\n")
        let first = try Net.connect(proxy.port)
        defer { close(first) }
        try eventually("the first session is up") { server.statistics.currentSessions == 1 }
        let second = try Net.connect(proxy.port)
        defer { close(second) }
        #expect(!Net.waitReadable(second, timeoutMs: 200))
        #expect(server.statistics.currentSessions == 1, "maxconn 1 admitted a second session")

        // disable health: checks stop and the server counts as UP even though /alive fails.
        try eventually("checked") { server.lastCheck.status == .layer7OK }
        #expect(try StatsClient.ask(path, "disable health fe/s") == "\n")
        web.alive.store(503, ordering: .relaxed)
        usleep(400_000)  // four check intervals with checks off: nothing may happen
        #expect(server.operational == .running)
        #expect(server.status == "no check")
        #expect(try StatsClient.ask(path, "enable health fe/s") == "\n")
        try eventually("checks resume and take it down") { server.operational == .stopped }
    }

    /// `set server … health up|stopping|down` sets HAProxy's states — UP, NOLB, DOWN — with the
    /// health counter at its top or 0, and `show servers state` writes HAProxy's op state numbers.
    @Test func setServerHealthGivesHAProxysStatesAndNumbers() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let server = try TestServer(.identify("s"))
        defer { server.stop() }
        let (proxy, haproxy, sockets) = try Self.sideBySide { port, socket in
            StatsClient.preamble(socket: socket) + """
            listen fe
              bind 127.0.0.1:\(port)
              server s 127.0.0.1:\(server.port) check inter 30s rise 2 fall 3

            """
        }
        defer { proxy.stop(); haproxy.stop() }
        var seen: [[String]] = []
        for socket in sockets {
            var states: [String] = []
            for health in ["down", "stopping", "up"] {
                _ = try StatsClient.ask(socket, "set server fe/s health \(health)")
                let row = try StatsClient.showStat(socket).first { $0["svname"] == "s" } ?? [:]
                let line = try StatsClient.ask(socket, "show servers state fe").split(separator: "\n").last ?? ""
                let fields = line.split(separator: " ")
                states.append("\(row["status"] ?? "?") op=\(fields.count > 5 ? fields[5] : "?") health=\(fields.count > 12 ? fields[12] : "?")")
            }
            seen.append(states)
        }
        #expect(seen[0] == seen[1], "Sluice \(seen[0]) HAProxy \(seen[1])")
        #expect(seen[0] == ["DOWN op=0 health=0", "NOLB op=3 health=4", "UP op=2 health=4"], "\(seen[0])")
    }

    /// `stats socket ipv4@<address>:<port>`: the runtime API over TCP, as HAProxy serves it (deploy
    /// tooling in containers often reaches it that way); the same commands get the same answers
    /// from both, a change made through it takes effect, and the level holds.
    @Test func aTCPStatsSocketAnswersAsHAProxysDoes() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let server = try TestServer(.identify("s"))
        defer { server.stop() }
        let ports = try (0..<4).map { _ in try Net.closedPort() }
        func config(_ bind: Int, _ admin: Int, _ user: Int) -> String {
            """
            global
              stats socket ipv4@127.0.0.1:\(admin) level admin
              stats socket 127.0.0.1:\(user) level user
            defaults
              mode tcp
              timeout connect 1s
              timeout client 5s
              timeout server 5s
            listen fe
              bind 127.0.0.1:\(bind)
              server s 127.0.0.1:\(server.port) weight 10

            """
        }
        func ask(_ port: Int, _ line: String) throws -> String {
            let fd = try Net.connect(port)
            defer { close(fd) }
            try Net.sendAll(fd, line + "\n")
            return String(decoding: try Net.readToEnd(fd), as: UTF8.self)
        }
        let userPorts = try (0..<2).map { _ in try Net.closedPort() }
        let proxy = try RunningProxy(config(0, ports[0], userPorts[0]))
        defer { proxy.stop() }
        let haproxy = try HAProxyProcess(config: config(ports[1], ports[2], userPorts[1]), port: ports[1])
        defer { haproxy.stop() }
        var answers: [[String]] = []
        for (admin, user) in [(ports[0], userPorts[0]), (ports[2], userPorts[1])] {
            answers.append([
                try ask(admin, "set weight fe/s 3"),
                try ask(admin, "get weight fe/s"),
                try ask(user, "set weight fe/s 5"),
                try ask(user, "get weight fe/s"),
            ])
        }
        #expect(answers[0] == answers[1], "Sluice \(answers[0]) HAProxy \(answers[1])")
        #expect(answers[0][1] == "3 (initial 10)\n\n", "\(answers[0])")
        #expect(proxy.balancer.backend(named: "fe")?.servers.first?.weight == 3)
    }

    @Test func socketFileHasItsModeRefusesASecondOwnerAndIsRemovedOnStop() throws {
        let path = Self.socketPath()
        let config = """
            global
              stats socket \(path) mode 640 level admin uid 1 group root
            listen fe
              bind 127.0.0.1:0
              server s 127.0.0.1:1
            """
        var proxy: RunningProxy? = try RunningProxy(config)
        var info = stat()
        #expect(stat(path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o640)
        #expect(info.st_uid == 1 && info.st_gid == 0)
        #expect(throws: SluiceError.self) { _ = try RunningProxy(config) }
        // Bound at `<path>.<pid>.tmp` and renamed once listening: only the socket itself is left,
        // and the refused second start did not disturb it.
        let directory = (path as NSString).deletingLastPathComponent, name = (path as NSString).lastPathComponent
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix(name) } == [name])
        #expect(try StatsClient.ask(path, "show backend").contains("fe"))
        proxy?.stop()
        proxy = nil
        #expect(access(path, F_OK) != 0, "the socket file was left behind")
        // A stale file (no process behind it) is replaced.
        _ = FileManager.default.createFile(atPath: path, contents: Data())
        let again = try RunningProxy(config)
        #expect(try StatsClient.ask(path, "show backend").contains("fe"))
        again.stop()
    }
}
}
