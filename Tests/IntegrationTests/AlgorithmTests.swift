import Foundation
import Synchronization
import Testing
@_spi(Benchmarks) @testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// The balancing algorithms and server `maxconn` queues, over real connections.
extension Loopback {
@Suite struct AlgorithmTests {
    static func config(_ backend: String, servers: [(String, Int, String)]) -> String {
        """
        \(tcpDefaults(client: "10s", server: "10s"))
        frontend fe
          bind 127.0.0.1:0
          default_backend be
        backend be
        \(backend)
        \(servers.map { "  server \($0.0) 127.0.0.1:\($0.1) \($0.2)" }.joined(separator: "\n"))

        """
    }

    /// A connection from `source` (a 127.0.0.x address) to the proxy.
    static func connect(_ port: Int, from source: String) throws -> CInt {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var local = Net.address(0)
        local.sin_addr.s_addr = inet_addr(source)
        var remote = Net.address(port)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, connected == 0 else {
            close(fd)
            throw Net.Failure("connect from \(source): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    /// With two threads, slots freed on one reactor go to sessions queued on the other.
    @Test(arguments: [1, 2])
    func serverMaxconnQueuesTheRestAndNeverExceedsTheLimit(threads: Int) throws {
        let server = try TestServer(.echo)
        defer { server.stop() }
        let proxy = try RunningProxy("global\n  nbthread \(threads)\n" + Self.config("  timeout queue 20s", servers: [("s", server.port, "maxconn 2")]))
        defer { proxy.stop() }
        let backend = try #require(proxy.balancer.backend(named: "be"))
        // 20 clients at once, each holding its session until the test has read its echo.
        var clients: [CInt] = []
        defer { for fd in clients where fd >= 0 { close(fd) } }
        for n in 0..<20 {
            let fd = try Net.connect(proxy.port)
            clients.append(fd)
            try Net.sendAll(fd, "client \(n)\n")
        }
        try eventually("two sessions at the server, eighteen waiting") { backend.queueLength() == 18 }
        // Serve whichever client has its echo, then close it, freeing its slot for the next.
        var order: [Int] = []
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while order.count < 20 && clock.now < deadline {
            var fds = clients.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            guard poll(&fds, nfds_t(fds.count), 1000) > 0 else { continue }
            for n in fds.indices where fds[n].revents != 0 && clients[n] >= 0 {
                #expect(try Net.read(clients[n], count: "client \(n)\n".utf8.count) == Array("client \(n)\n".utf8))
                close(clients[n])
                clients[n] = -1
                order.append(n)
            }
        }
        #expect(order.count == 20)
        if threads == 1 {
            // One reactor accepts in connection order, and the queue is FIFO.
            #expect(order == Array(0..<20))
        }
        #expect(server.peakOpen.load(ordering: .relaxed) == 2, "the server saw \(server.peakOpen.load(ordering: .relaxed)) at once")
        #expect(server.accepted.load(ordering: .relaxed) == 20)
        let stat = proxy.balancer.runtimeReply("show stat")
        let header = try #require(stat.split(separator: "\n").first).dropFirst(2).split(separator: ",", omittingEmptySubsequences: false)
        let row = try #require(stat.split(separator: "\n").first { $0.hasPrefix("be,s,") }).split(separator: ",", omittingEmptySubsequences: false)
        func column(_ name: String) -> Substring? { header.firstIndex(of: Substring(name)).map { row[$0] } }
        #expect(column("slim") == "2")
        #expect(column("qcur") == "0")
        #expect(column("smax") == "2")
        let backendRow = try #require(stat.split(separator: "\n").first { $0.hasPrefix("be,BACKEND,") }).split(separator: ",", omittingEmptySubsequences: false)
        let qmax = Int(backendRow[header.firstIndex(of: "qmax") ?? 0]) ?? 0
        #expect(qmax == 18)
    }

    /// `set-priority-class` and `set-priority-offset`: with the server's one slot held, four
    /// clients queue in turn; released, they are served lowest class first, then within a class
    /// by arrival plus offset — the order HAProxy 2.6 serves them in on the same file, and
    /// `prio_class`/`prio_offset` read what the rules set.
    @Test func priorityClassesAndOffsetsOrderTheQueueLikeHAProxy() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let listener = try CaptureServer()
        // The server takes one connection at a time: the first client's name, echoed; then the next.
        final class Served: @unchecked Sendable {
            let order = Mutex<[String]>([])
            let stop = Atomic<Bool>(false)
        }
        let served = Served()
        let serving = Thread {
            while !served.stop.load(ordering: .relaxed) {
                guard let fd = try? listener.accept(timeoutMs: 100) else { continue }
                if let name = try? Net.read(fd, count: 1, timeoutMs: 5_000), !name.isEmpty {
                    var rest = name
                    while !rest.contains(0x0A), let more = try? Net.read(fd, count: 1, timeoutMs: 5_000), !more.isEmpty { rest += more }
                    served.order.withLock { $0.append(String(decoding: rest.dropLast(), as: UTF8.self)) }
                    try? Net.sendAll(fd, rest)
                }
                close(fd)
            }
        }
        serving.start()
        defer { served.stop.store(true, ordering: .relaxed); while !serving.isFinished { usleep(1000) } }
        func config(_ port: Int, _ socket: String) -> String {
            StatsClient.preamble(socket: socket) + """
            listen fe
              bind 127.0.0.1:\(port)
              timeout queue 30s
              tcp-request content set-priority-class int(1) if { src 127.0.0.2 }
              tcp-request content set-priority-class int(-1) if { src 127.0.0.3 }
              tcp-request content set-priority-offset int(-10000) if { src 127.0.0.4 }
              tcp-request content reject if { src 127.0.0.3 } !{ prio_class -- -1 }
              tcp-request content reject if { src 127.0.0.4 } !{ prio_offset -- -10000 }
              server s 127.0.0.1:\(listener.port) maxconn 1

            """
        }
        func run(haproxy: Bool) throws -> [String] {
            served.order.withLock { $0.removeAll() }
            let socket = TestFiles.folder.appendingPathComponent("prio-\(UUID().uuidString.prefix(8)).sock").path
            defer { unlink(socket) }
            let contender = try Contender(haproxy: haproxy) { config($0, socket) }
            defer { contender.stop() }
            let listen = contender.port
            // The holder takes the slot and keeps it: the server answers it, the client does not close.
            let holder = try Self.connect(listen, from: "127.0.0.1")
            try Net.sendAll(holder, "holder\n")
            _ = try Net.read(holder, count: 7)
            var clients: [CInt] = []
            defer { for fd in clients { close(fd) } }
            for (k, (name, source)) in [("class1", "127.0.0.2"), ("plain", "127.0.0.1"), ("earlier", "127.0.0.4"), ("class-1", "127.0.0.3")].enumerated() {
                let fd = try Self.connect(listen, from: source)
                clients.append(fd)
                try Net.sendAll(fd, name + "\n")
                shutdown(fd, Int32(SHUT_WR))  // its session ends with the server's answer
                try eventually("\(k + 1) client(s) queued") {
                    Int(try StatsClient.showStat(socket).first { $0["svname"] == "BACKEND" }?["qcur"] ?? "") == k + 1
                }
            }
            close(holder)
            for fd in clients { _ = try Net.readToEnd(fd) }
            return served.order.withLock { $0 }
        }
        let theirs = try run(haproxy: true)
        let ours = try run(haproxy: false)
        #expect(ours == theirs)
        #expect(ours == ["holder", "class-1", "earlier", "plain", "class1"])
    }

    /// `minconn` with `fullconn`: the server's limit follows the backend's sessions (queued ones
    /// included): at least `minconn`, `maxconn` × sessions / `fullconn` on the way, `maxconn` from
    /// `fullconn` on (here max(1, sessions / 2) up to 3). Six clients arrive, then three leave, on
    /// Sluice and HAProxy 2.6 with the same file. They differ on arrival, on purpose: Sluice gives
    /// the oldest waiting session a slot as soon as the limit allows it, HAProxy only when a
    /// session ends; once sessions leave, both hold the same sessions at the server and in queue.
    @Test func minconnLimitFollowsTheBackendsLoadLikeHAProxy() throws {
        let server = try TestServer(.silent)
        defer { server.stop() }
        func config(_ port: Int, _ socket: String) -> String {
            StatsClient.preamble(socket: socket) + """
            listen fe
              bind 127.0.0.1:\(port)
              timeout queue 30s
              fullconn 6
              server s 127.0.0.1:\(server.port) minconn 1 maxconn 3

            """
        }
        let expectedDepartures = [[3, 2], [2, 2], [2, 1]]
        /// Sessions at the server and waiting, `[scur, qcur]`, once they are `expected`, or as they
        /// were when the wait gave up (the caller's expectation then shows the difference). Waiting
        /// for the sum alone raced: Sluice counts an arrival in the queue before it promotes it.
        func state(_ socket: String, _ expected: [Int]) -> [Int] {
            var seen: [Int] = []
            try? eventually(timeout: .seconds(5), "\(expected) sessions at the server and waiting") {
                let rows = try StatsClient.showStat(socket)
                let current = Int(rows.first { $0["svname"] == "s" }?["scur"] ?? "") ?? -1
                let queued = Int(rows.first { $0["svname"] == "BACKEND" }?["qcur"] ?? "") ?? -1
                seen = [current, queued]
                return seen == expected
            }
            return seen
        }
        /// Six arrivals then three departures, each step observed once it settles.
        func run(_ port: Int, _ socket: String, arrivals expectedArrivals: [[Int]]) throws -> (arrivals: [[Int]], departures: [[Int]]) {
            var clients: [CInt] = []
            defer { for fd in clients { close(fd) } }
            var arrivals: [[Int]] = []
            for expected in expectedArrivals {
                clients.append(try Net.connect(port))
                arrivals.append(state(socket, expected))
            }
            // The first three clients are at the server by then on both: FIFO.
            var departures: [[Int]] = []
            for (k, expected) in expectedDepartures.enumerated() {
                close(clients[k])
                clients[k] = -1
                departures.append(state(socket, expected))
            }
            clients.removeAll { $0 < 0 }
            return (arrivals, departures)
        }
        let ourArrivals = [[1, 0], [1, 1], [1, 2], [2, 2], [2, 3], [3, 3]]
        let socket = RuntimeAPITests.socketPath()
        let proxy = try RunningProxy(config(0, socket))
        defer { proxy.stop() }
        let sluice = try run(proxy.port, socket, arrivals: ourArrivals)
        #expect(sluice.arrivals == ourArrivals)
        #expect(sluice.departures == expectedDepartures)
        #expect(try StatsClient.showStat(socket).first { $0["svname"] == "BACKEND" }?["slim"] == "6", "a backend's slim is its fullconn")
        if HAProxyProcess.requireInstalled() {
            let port = try Net.closedPort(), socket = RuntimeAPITests.socketPath()
            let haproxy = try HAProxyProcess(config: config(port, socket), port: port)
            defer { haproxy.stop() }
            let theirArrivals = [[1, 0], [1, 1], [1, 2], [1, 3], [1, 4], [1, 5]]
            let reference = try run(port, socket, arrivals: theirArrivals)
            #expect(reference.arrivals == theirArrivals, "HAProxy 2.6")
            #expect(reference.departures == expectedDepartures, "HAProxy 2.6")
            #expect(try StatsClient.showStat(socket).first { $0["svname"] == "BACKEND" }?["slim"] == "6")
        }
    }

    @Test func aQueuedSessionIsClosedAtTimeoutQueueAndLeavesTheQueue() throws {
        let server = try TestServer(.holdOpen)
        defer { server.stop() }
        let proxy = try RunningProxy(Self.config("  timeout queue 300ms", servers: [("s", server.port, "maxconn 1")]))
        defer { proxy.stop() }
        let first = try Net.connect(proxy.port)
        defer { close(first) }
        try eventually("the first session holds the slot") { server.open.load(ordering: .relaxed) == 1 }
        let second = try Net.connect(proxy.port)
        defer { close(second) }
        let backend = try #require(proxy.balancer.backend(named: "be"))
        try eventually("the second one waits") { backend.queueLength() == 1 }
        #expect(try Net.readToEnd(second, timeoutMs: 5_000).isEmpty)
        #expect(backend.queueLength() == 0)
        #expect(server.accepted.load(ordering: .relaxed) == 1)
    }

    @Test func leastconnSendsNewSessionsToTheServerWithFewest() throws {
        let a = try TestServer(.silent), b = try TestServer(.silent)
        defer { a.stop(); b.stop() }
        let proxy = try RunningProxy(Self.config("  balance leastconn", servers: [("a", a.port, ""), ("b", b.port, "")]))
        defer { proxy.stop() }
        var held: [CInt] = []
        defer { for fd in held { close(fd) } }
        for _ in 0..<4 { held.append(try Net.connect(proxy.port)) }
        try eventually("four sessions, two each") { a.open.load(ordering: .relaxed) == 2 && b.open.load(ordering: .relaxed) == 2 }
        // Free two of one server's sessions: the next two go there, whatever the rotation says.
        let backend = try #require(proxy.balancer.backend(named: "be"))
        let sa = try #require(backend.server(named: "a"))
        proxy.balancer.shutdownSessions(of: sa)
        try eventually("a has none") { a.open.load(ordering: .relaxed) == 0 && sa.currentSessions.load(ordering: .relaxed) == 0 }
        for _ in 0..<2 { held.append(try Net.connect(proxy.port)) }
        try eventually("the two new sessions went to a") { a.open.load(ordering: .relaxed) == 2 }
        #expect(b.open.load(ordering: .relaxed) == 2)
    }

    @Test func firstFillsServersInOrderUpToTheirMaxconn() throws {
        let a = try TestServer(.holdOpen), b = try TestServer(.holdOpen), c = try TestServer(.holdOpen)
        defer { a.stop(); b.stop(); c.stop() }
        let proxy = try RunningProxy(Self.config("  balance first", servers: [("a", a.port, "maxconn 2"), ("b", b.port, "maxconn 2"), ("c", c.port, "maxconn 2")]))
        defer { proxy.stop() }
        var held: [CInt] = []
        defer { for fd in held { close(fd) } }
        for expected in [(1, 0), (2, 0), (2, 1)] {
            held.append(try Net.connect(proxy.port))
            try eventually("a=\(expected.0) b=\(expected.1)") {
                a.open.load(ordering: .relaxed) == expected.0 && b.open.load(ordering: .relaxed) == expected.1
            }
        }
        #expect(c.accepted.load(ordering: .relaxed) == 0)
    }

    @Test func sourceKeepsEachClientAddressOnOneServer() throws {
        let servers = try (0..<3).map { try TestServer(.identify("s\($0)")) }
        defer { for s in servers { s.stop() } }
        let proxy = try RunningProxy(Self.config("  balance source\n  hash-type map-based", servers: servers.enumerated().map { ("s\($0.offset)", $0.element.port, "") }))
        defer { proxy.stop() }
        var chosen: [String: Set<String>] = [:]
        for host in 2...13 {
            let address = "127.0.0.\(host)"
            for _ in 0..<4 {
                let fd = try Self.connect(proxy.port, from: address)
                defer { close(fd) }
                chosen[address, default: []].insert(String(decoding: try Net.readToEnd(fd), as: UTF8.self))
            }
        }
        #expect(chosen.values.allSatisfy { $0.count == 1 }, "\(chosen)")
        #expect(Set(chosen.values.compactMap(\.first)).count > 1, "twelve addresses all hashed to one server")
    }

    /// `hash-type consistent`: two balancers whose server lists are in different orders send each
    /// client address to the same server (as two instances behind ECMP must); a reload and a
    /// restart keep every client on its server; draining one server moves only its clients.
    @Test func consistentHashingAgreesAcrossInstancesReloadsAndRestarts() throws {
        let servers = try (0..<3).map { try TestServer(.identify("s\($0)")) }
        defer { for s in servers { s.stop() } }
        let list = servers.enumerated().map { ("s\($0.offset)", $0.element.port, "") }
        let config = Self.config("  balance source\n  hash-type consistent", servers: list)
        let permuted = Self.config("  balance source\n  hash-type consistent", servers: [list[2], list[0], list[1]])
        func answers(_ port: Int) throws -> [String] {
            try (2...25).map { host in
                let fd = try Self.connect(port, from: "127.0.0.\(host)")
                defer { close(fd) }
                return String(decoding: try Net.readToEnd(fd), as: UTF8.self)
            }
        }
        let one = try RunningProxy(config)
        defer { one.stop() }
        let two = try RunningProxy(permuted)
        defer { two.stop() }
        let chosen = try answers(one.port)
        #expect(Set(chosen).count == 3, "24 addresses did not spread over the three servers: \(chosen)")
        #expect(try answers(two.port) == chosen)
        _ = try one.balancer.reload(Configuration.parse(config.replacingOccurrences(of: "server 10s", with: "server 11s")).configuration)
        #expect(try answers(one.port) == chosen)
        two.stop()
        let restarted = try RunningProxy(permuted)
        defer { restarted.stop() }
        #expect(try answers(restarted.port) == chosen)
        let backend = try #require(one.balancer.backend(named: "be"))
        backend.setAdmin(.drain, of: try #require(backend.server(named: "s1")))
        let drained = try answers(one.port)
        // s1's clients move; Maglev moves few others (0.6 % of the table for 1 of 100 servers,
        // see MaglevTests; 0.01 % with 3: one of these 24 addresses at most, and almost always none).
        #expect(zip(chosen, drained).allSatisfy { $0 != "s1\n" || $1 != "s1\n" })
        #expect(zip(chosen, drained).filter { $0 != "s1\n" && $0 != $1 }.count <= 1, "\(chosen) → \(drained)")
    }

    /// `balance hash <expr>`: sessions with the same sample go to the same server — the port the
    /// client reached (`dst_port`, two binds), or its address (`src`, as `balance source`).
    @Test func hashOnASampleKeepsEachValueOnOneServer() throws {
        let servers = try (0..<3).map { try TestServer(.identify("s\($0)")) }
        defer { for s in servers { s.stop() } }
        let list = servers.enumerated().map { "  server s\($0.offset) 127.0.0.1:\($0.element.port)" }.joined(separator: "\n")
        let proxy = try RunningProxy("""
            \(tcpDefaults())
            frontend fe
              bind 127.0.0.1:0
              bind 127.0.0.1:0
              default_backend be
            backend be
              balance hash dst_port
            \(list)

            """)
        defer { proxy.stop() }
        let ports = proxy.balancer.listeningAddresses(of: "fe").map(\.port)
        #expect(ports.count == 2)
        for port in ports {
            let answers = try (0..<6).map { _ in
                let fd = try Net.connect(port)
                defer { close(fd) }
                return String(decoding: try Net.readToEnd(fd), as: UTF8.self)
            }
            #expect(Set(answers).count == 1, "port \(port): \(answers)")
        }
        let bySource = try RunningProxy(Self.config("  balance hash src", servers: servers.enumerated().map { ("s\($0.offset)", $0.element.port, "") }))
        defer { bySource.stop() }
        var chosen: [String: Set<String>] = [:]
        for host in 2...13 {
            for _ in 0..<3 {
                let fd = try Self.connect(bySource.port, from: "127.0.0.\(host)")
                defer { close(fd) }
                chosen["\(host)", default: []].insert(String(decoding: try Net.readToEnd(fd), as: UTF8.self))
            }
        }
        #expect(chosen.values.allSatisfy { $0.count == 1 }, "\(chosen)")
        #expect(Set(chosen.values.compactMap(\.first)).count > 1, "twelve addresses all hashed to one server")
    }

    /// `hash-balance-factor 150`: one client address (every session hashes to one server) fills
    /// its server up to 1.5 × the average, then the hash moves on; without it, one server takes all.
    @Test(arguments: [0, 150])
    func hashBalanceFactorBoundsTheLoadOfAHotHash(factor: Int) throws {
        let a = try TestServer(.holdOpen), b = try TestServer(.holdOpen)
        defer { a.stop(); b.stop() }
        let proxy = try RunningProxy(Self.config("  balance source\n  hash-type consistent\n  hash-balance-factor \(factor)",
                                                 servers: [("a", a.port, ""), ("b", b.port, "")]))
        defer { proxy.stop() }
        var held: [CInt] = []
        defer { for fd in held { close(fd) } }
        for n in 1...20 {
            held.append(try Net.connect(proxy.port))
            try eventually("session \(n) reached a server") { a.open.load(ordering: .relaxed) + b.open.load(ordering: .relaxed) == n }
        }
        let loads = [a.open.load(ordering: .relaxed), b.open.load(ordering: .relaxed)].sorted()
        if factor == 0 {
            #expect(loads == [0, 20])
        } else {
            #expect(loads.max()! <= 15, "\(loads)")  // 1.5 × 20 sessions / 2 servers
        }
    }

    /// `balance random(2)` over real connections: sessions held open on one server steer new ones
    /// to the other (the busy one gets one only when both draws land on it: a quarter of the time
    /// with two equal servers, against half with one draw or round-robin).
    @Test func randomWithTwoDrawsPrefersTheLessLoadedServer() throws {
        let busy = try TestServer(.holdOpen), idle = try TestServer(.holdOpen)
        defer { busy.stop(); idle.stop() }
        let proxy = try RunningProxy(Self.config("  balance random(2)", servers: [("busy", busy.port, "weight 1"), ("idle", idle.port, "weight 1")]))
        defer { proxy.stop() }
        let backend = try #require(proxy.balancer.backend(named: "be"))
        backend.setAdmin(.drain, of: try #require(backend.server(named: "idle")))
        var held: [CInt] = []
        defer { for fd in held { close(fd) } }
        for _ in 0..<20 { held.append(try Net.connect(proxy.port)) }
        try eventually("20 sessions on busy") { busy.open.load(ordering: .relaxed) == 20 }
        backend.setAdmin(.ready, of: try #require(backend.server(named: "idle")))
        for _ in 0..<20 { held.append(try Net.connect(proxy.port)) }
        try eventually("40 sessions open") { busy.open.load(ordering: .relaxed) + idle.open.load(ordering: .relaxed) == 40 }
        #expect(idle.open.load(ordering: .relaxed) >= 13, "busy \(busy.open.load(ordering: .relaxed)), idle \(idle.open.load(ordering: .relaxed))")
    }

    /// A server back UP after being DOWN takes a small share at first and its full share once
    /// `slowstart` has passed; `show stat` shows the throttle meanwhile.
    @Test func slowstartRampsTheWeightOfAServerThatCameBackUp() throws {
        var a = try TestServer(.identify("a"))
        let b = try TestServer(.identify("b"))
        defer { a.stop(); b.stop() }
        let proxy = try RunningProxy(Self.config("", servers: [("a", a.port, "check inter 100ms rise 1 fall 1 slowstart 3s weight 100"),
                                                                 ("b", b.port, "check inter 100ms rise 1 fall 1 weight 100")]))
        defer { proxy.stop() }
        let backend = try #require(proxy.balancer.backend(named: "be"))
        let sa = try #require(backend.server(named: "a"))
        func shares(_ n: Int) throws -> Int {
            var fromA = 0
            for _ in 0..<n {
                let fd = try Net.connect(proxy.port)
                defer { close(fd) }
                if try Net.readToEnd(fd) == Array("a\n".utf8) { fromA += 1 }
            }
            return fromA
        }
        #expect(sa.throttlePercent(now: monotonicMilliseconds()) == nil, "no slow start at start-up, as HAProxy")
        let port = a.port
        a.stop()
        try eventually("a goes DOWN") { sa.operational == .stopped }
        a = try TestServer(.identify("a"), port: port)
        try eventually("a comes back UP") { sa.operational == .running }
        // Early in the ramp a has a few percent of b's weight.
        let early = try shares(20)
        #expect(early <= 6, "a took \(early) of 20 sessions right after coming back")
        let throttle = sa.throttlePercent(now: monotonicMilliseconds())
        #expect(throttle != nil && throttle! < 100)
        let stat = proxy.balancer.runtimeReply("show stat")
        let header = try #require(stat.split(separator: "\n").first).dropFirst(2).split(separator: ",", omittingEmptySubsequences: false)
        let row = try #require(stat.split(separator: "\n").first { $0.hasPrefix("be,a,") }).split(separator: ",", omittingEmptySubsequences: false)
        #expect(!(header.firstIndex(of: "throttle").map { row[$0].isEmpty } ?? true))
        try eventually("the ramp ends") { sa.throttlePercent(now: monotonicMilliseconds()) == nil && sa.rampStart.load(ordering: .relaxed) == 0 }
        let late = try shares(20)
        #expect((8...12).contains(late), "a took \(late) of 20 sessions after the ramp")
    }

    /// A server with `slowstart` leaving maintenance (`disable server`, then `enable server`: a
    /// deploy script's steps) warms up as one a check brought back does — as HAProxy's, which
    /// `show stat` shows throttled on both, taking few sessions at first.
    @Test func slowstartRampsAServerLeavingMaintenanceAsHAProxy() throws {
        let a = try TestServer(.identify("a")), b = try TestServer(.identify("b"))
        defer { a.stop(); b.stop() }
        func observe(haproxy: Bool) throws -> (status: String, throttle: Int?, early: Int) {
            let socket = RuntimeAPITests.socketPath()
            let contender = try Contender(haproxy: haproxy) { port in
                StatsClient.preamble(socket: socket) + """
                listen l
                  bind 127.0.0.1:\(port)
                  server a 127.0.0.1:\(a.port) slowstart 30s weight 100
                  server b 127.0.0.1:\(b.port) weight 100

                """
            }
            defer { contender.stop() }
            func row() throws -> [String: String] { try #require(try StatsClient.showStat(socket).first { $0["svname"] == "a" }) }
            #expect(try row()["throttle"] == "", "\(contender.name): no warm-up at start")
            _ = try StatsClient.ask(socket, "disable server l/a")
            _ = try StatsClient.ask(socket, "enable server l/a")
            let status = try row()["status"] ?? "", throttle = Int(try row()["throttle"] ?? "")
            var early = 0
            for _ in 0..<20 {
                let fd = try Net.connect(contender.port)
                defer { close(fd) }
                if try Net.readToEnd(fd) == Array("a\n".utf8) { early += 1 }
            }
            return (status, throttle, early)
        }
        let ours = try observe(haproxy: false)
        #expect(ours.status == "no check" && ours.throttle.map { $0 < 100 } == true && ours.early <= 4, "\(ours)")
        if HAProxyProcess.requireInstalled() {
            let theirs = try observe(haproxy: true)
            #expect(theirs.status == ours.status && theirs.throttle.map { $0 < 100 } == true && theirs.early <= 4, "HAProxy 2.6: \(theirs)")
        }
    }

    /// A stopped balancer is freed, its backends and reactors with it: nothing it hands closures to
    /// (the check runner, the warm-up relay) keeps it alive. The soak's LeakSanitizer once found a
    /// cycle through the warm-up relay (every backend → relay → the checking worker → its backends).
    @Test func aStoppedBalancerIsReleasedAfterAWarmUp() throws {
        let server = try TestServer(.identify("a"))
        defer { server.stop() }
        weak var balancer: LoadBalancer?
        weak var backend: BackendState?
        do {
            let proxy = try RunningProxy(Self.config("", servers: [("a", server.port, "check inter 100ms slowstart 10s")]))
            (balancer, backend) = (proxy.balancer, proxy.balancer.backend(named: "be"))
            _ = proxy.balancer.runtimeReply("disable server be/a")
            _ = proxy.balancer.runtimeReply("enable server be/a")  // a warm-up, through the relay
            #expect(try #require(backend?.server(named: "a")).rampStart.load(ordering: .relaxed) > 0)
            proxy.stop()
        }
        #expect(balancer == nil && backend == nil)
    }

    /// `track`: a server without a check of its own goes DOWN and UP with the one it follows,
    /// in another backend, and `show stat` names what it tracks.
    @Test func aTrackingServerFollowsTheServerItTracks() throws {
        var checked = try TestServer(.identify("checked"))
        let follower = try TestServer(.identify("follower"))
        let backup = try TestServer(.identify("backup"))
        defer { checked.stop(); follower.stop(); backup.stop() }
        let config = """
            \(tcpDefaults())
            frontend fe
              bind 127.0.0.1:0
              default_backend be
            backend be
              server f 127.0.0.1:\(follower.port) track health/s
              server b 127.0.0.1:\(backup.port) backup
            backend health
              server s 127.0.0.1:\(checked.port) check inter 100ms rise 1 fall 1

            """
        let proxy = try RunningProxy(config)
        defer { proxy.stop() }
        func answer() throws -> String {
            let fd = try Net.connect(proxy.port)
            defer { close(fd) }
            return String(decoding: try Net.readToEnd(fd), as: UTF8.self)
        }
        let f = try #require(proxy.balancer.backend(named: "be")?.server(named: "f"))
        #expect(try answer() == "follower\n")
        let port = checked.port
        checked.stop()
        try eventually("the follower goes DOWN with the server it tracks") { f.operational == .stopped }
        #expect(try answer() == "backup\n")
        let stat = proxy.balancer.runtimeReply("show stat")
        let header = try #require(stat.split(separator: "\n").first).dropFirst(2).split(separator: ",", omittingEmptySubsequences: false)
        let row = try #require(stat.split(separator: "\n").first { $0.hasPrefix("be,f,") }).split(separator: ",", omittingEmptySubsequences: false)
        #expect(header.firstIndex(of: "tracked").map { row[$0] } == "health/s")
        #expect(header.firstIndex(of: "status").map { row[$0] } == "DOWN")
        checked = try TestServer(.identify("checked"), port: port)
        try eventually("the follower comes back UP") { f.operational == .running }
        #expect(try answer() == "follower\n")
    }

    @Test func aSessionQueuedForItsServerIsRedispatchedWhenThatServerGoesIntoMaintenance() throws {
        let a = try TestServer(.identify("a")), b = try TestServer(.identify("b"))
        defer { a.stop(); b.stop() }
        let proxy = try RunningProxy(Self.config("  balance source\n  option redispatch\n  timeout queue 10s",
                                                 servers: [("a", a.port, "maxconn 1"), ("b", b.port, "maxconn 1")]))
        defer { proxy.stop() }
        // The first client holds its server's only slot (it does not read, so the session stays).
        let first = try Self.connect(proxy.port, from: "127.0.0.7")
        defer { close(first) }
        let backend = try #require(proxy.balancer.backend(named: "be"))
        var taken: ServerState?
        try eventually("the first session holds a slot") {
            taken = backend.servers.first { $0.currentSessions.load(ordering: .relaxed) == 1 }
            return taken != nil
        }
        let held = try #require(taken)
        // The same address hashes to the same, full, server: it waits in that server's queue.
        let second = try Self.connect(proxy.port, from: "127.0.0.7")
        defer { close(second) }
        try eventually("the second session waits for its server") { backend.queueLength(of: held) == 1 }
        backend.setAdmin(.maintenance, of: held)
        let other = held.name == "a" ? "b" : "a"
        #expect(String(decoding: try Net.readToEnd(second), as: UTF8.self) == "\(other)\n")
        #expect(backend.queueLength(of: held) == 0 && backend.queueLength() == 0)
    }
}
}
