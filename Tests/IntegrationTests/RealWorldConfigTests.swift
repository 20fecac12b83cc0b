import Foundation
import Logging
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// The operators' configurations in `examples/real-world/`, as written for HAProxy: each passes
/// `sluice -c` and `haproxy -c`, then runs with its servers' addresses pointed at servers the test
/// starts on loopback (the real server of the protocol where the health check speaks it), every
/// checked server comes UP, and traffic goes through.
extension Loopback {
@Suite(.serialized) struct RealWorldConfigTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/real-world")

    /// A running stand-in for the servers of one file, and what a client should see through it.
    struct Stand {
        /// Every server address in the file (`host:port`, the `check port` too) → a loopback port.
        var ports: [String: Int]
        /// Sends a request through the proxy's port and checks the answer.
        var probe: (Int) throws -> Void
        var keep: [AnyObject]
        /// Other text to replace (e.g. a name's port, where DNS gives the address).
        var rewrite: [(String, String)] = []
    }

    static func stand(for file: String) throws -> Stand {
        func read(_ port: Int, _ request: [UInt8], count: Int) throws -> [UInt8] {
            let fd = try Net.connect(port)
            defer { close(fd) }
            if !request.isEmpty { try Net.sendAll(fd, request) }
            return try Net.read(fd, count: count)
        }
        switch file {
        case "kubernetes-api.cfg":
            // API servers answer HTTPS only: checked over TLS (`check-ssl`), reached through the
            // balancer with TLS end to end.
            let certificate = try TLSCertificate()
            let servers = try (1...3).map { try Nginx.tls(answer: "master\($0)", certificate: certificate) }
            var ports: [String: Int] = [:]
            for (i, s) in servers.enumerated() { ports["10.0.0.1\(i + 1):6443"] = s.port }
            return Stand(ports: ports, probe: { port throws in
                let curl = try Loopback.CommandLineTests.run(["-sk", "--max-time", "10", "https://127.0.0.1:\(port)/version"],
                                                             executable: "/usr/bin/curl", deadline: .seconds(20))
                #expect(curl.stdout.hasPrefix("master"), "\(curl.stdout) \(curl.stderr)")
            }, keep: servers)
        case "mariadb-galera.cfg":
            let db = try RealServer.mariadb()
            return Stand(ports: ["db1.internal:3306": db.port, "db2.internal:3306": db.port, "db3.internal:3306": db.port], probe: { port throws in
                // The server's handshake: protocol version 10, then its version string.
                let greeting = try read(port, [], count: 12)
                #expect(greeting[4] == 10)
            }, keep: [db])
        case "patroni-postgres.cfg":
            let pg = try RealServer.postgres()
            let api = try TestServer(.http("patroni"))
            return Stand(ports: ["10.0.1.21:5432": pg.port, "10.0.1.22:5432": pg.port, "8008": api.port], probe: { port throws in
                let startup: [UInt8] = [0, 0, 0, 23, 0, 3, 0, 0] + Array("user".utf8) + [0] + Array("postgres".utf8) + [0, 0]
                #expect(try read(port, startup, count: 1) == [UInt8(ascii: "R")])
            }, keep: [pg, api])
        case "redis-sentinel.cfg":
            let redis = try RealServer.redis()
            return Stand(ports: ["10.0.2.31:6379": redis.port, "10.0.2.32:6379": redis.port], probe: { port throws in
                #expect(try read(port, Array("PING\r\n".utf8), count: 7) == Array("+PONG\r\n".utf8))
            }, keep: [redis])
        case "smtp-relay.cfg":
            let smtp = try RealServer.smtp()
            return Stand(ports: ["mx1.example.com:25": smtp.port, "mx2.example.com:25": smtp.port], probe: { port throws in
                #expect(try read(port, [], count: 4) == Array("220 ".utf8))
            }, keep: [smtp])
        case "tls-passthrough.cfg", "tls-session-stickiness.cfg":
            // A real TLS server; the second file holds its ServerHello until `tcp-response` accepts it.
            let tls = try RealServer.tls()
            return Stand(ports: ["10.0.3.41:443": tls.port, "10.0.3.42:443": tls.port], probe: { port throws in
                let reply = try read(port, ProtocolCheck.clientHello(unixTime: 0), count: 1)
                #expect(reply == [0x15] || reply == [0x16])
            }, keep: [tls])
        case "docker-redis-dns.cfg":
            // Docker's DNS server is dnsmasq on loopback; tasks.redis resolves to 127.0.0.1, where
            // the real Redis listens on its own port.
            let redis = try RealServer.redis()
            let dns = try DNSServer(hosts: [("127.0.0.1", "tasks.redis")], options: ["local=/redis/"])
            return Stand(ports: ["127.0.0.11:53": dns.port], probe: { port throws in
                #expect(try read(port, Array("PING\r\n".utf8), count: 7) == Array("+PONG\r\n".utf8))
            }, keep: [redis, dns], rewrite: [("tasks.redis:6379", "tasks.redis:\(redis.port)")])
        case "mqtt-brokers.cfg":
            let servers = try (1...3).map { try TestServer(.identify("emqx\($0)")) }
            var ports: [String: Int] = [:]
            for (i, s) in servers.enumerated() { ports["10.0.5.1\(i + 1):1883"] = s.port }
            return Stand(ports: ports, probe: { port throws in
                // The same client identifier twice reaches the same broker; HTTP is refused.
                let answers = try (0..<2).map { _ in try read(port, MQTTConnect.v311, count: 6) }
                #expect(answers[0] == answers[1] && String(decoding: answers[0], as: UTF8.self).hasPrefix("emqx"), "\(answers)")
                #expect(try ContentSwitchingTests.exchange(port, Array("GET / HTTP/1.0\r\n\r\n".utf8)) == "")
            }, keep: servers)
        case "rabbitmq.cfg":
            let servers = try (1...3).map { _ in try TestServer(.echo) }
            var ports: [String: Int] = [:]
            for (i, s) in servers.enumerated() { ports["rabbit\(i + 1).internal:5672"] = s.port }
            return Stand(ports: ports, probe: { port throws in
                #expect(try read(port, Array("AMQP\u{0}\u{0}\u{9}\u{1}".utf8), count: 8) == Array("AMQP\u{0}\u{0}\u{9}\u{1}".utf8))
            }, keep: servers)
        case "registries-through-socks.cfg":
            // The registries and the local SOCKS4 proxy they are reached through.
            let names = ["registry.k8s.io", "pkg.dev", "docker.io"]
            let servers = try names.map { try TestServer(.identify($0)) }
            let proxy = try SOCKS4Server(.grant)
            var ports = Dictionary(uniqueKeysWithValues: zip(["34.96.108.209:443", "216.239.32.27:443", "44.205.64.79:443"], servers.map(\.port)))
            ports["127.0.0.1:7890"] = proxy.port
            return Stand(ports: ports, probe: { port throws in
                func answer(_ name: String) throws -> String {
                    let fd = try Net.connect(port)
                    defer { close(fd) }
                    try Net.sendAll(fd, clientHello(serverName: name))
                    return String(decoding: try Net.readToEnd(fd), as: UTF8.self)
                }
                #expect(try answer("registry.k8s.io") == "registry.k8s.io\n")
                #expect(try answer("us-docker.pkg.dev") == "pkg.dev\n")
                #expect(try answer("registry-1.docker.io") == "docker.io\n")
                #expect(proxy.requests.withLock { $0.count } >= 3, "the sessions went through the proxy")
            }, keep: servers + [proxy])
        case "sni-router.cfg":
            let names = ["bastion", "gitea", "mx", "web1", "web2"]
            let servers = try names.map { try TestServer(.identify($0)) }
            let addresses = ["10.0.4.10:22", "10.0.4.20:443", "10.0.4.30:443", "10.0.4.41:443", "10.0.4.42:443"]
            return Stand(ports: Dictionary(uniqueKeysWithValues: zip(addresses, servers.map(\.port))), probe: { port throws in
                func answer(_ bytes: [UInt8]) throws -> String {
                    let fd = try Net.connect(port)
                    defer { close(fd) }
                    try Net.sendAll(fd, bytes)
                    return String(decoding: try Net.readToEnd(fd), as: UTF8.self)
                }
                #expect(try answer(Array("SSH-2.0-OpenSSH_9.2p1\r\n".utf8)) == "bastion\n")
                #expect(try answer(clientHello(serverName: "Git.Example.org")) == "gitea\n")
                #expect(try answer(clientHello(serverName: "imap.mail.example.org")) == "mx\n")
                let web = try [answer(clientHello(serverName: "www.example.org")), answer(clientHello(serverName: "example.org"))]
                #expect(Set(web) == ["web1\n", "web2\n"])
            }, keep: servers)
        default:
            throw Net.Failure("no stand-in servers for \(file): add them to RealWorldConfigTests")
        }
    }

    /// The file with its addresses pointed at loopback: servers at the stand-ins, binds at
    /// kernel-chosen ports (`port` for HAProxy, which cannot report one), sockets in a temporary place.
    static func pointed(_ text: String, at stand: Stand, bind port: Int) -> String {
        var out = text
        for (address, loopback) in stand.ports where address.contains(":") {
            out = out.replacingOccurrences(of: " \(address)", with: " 127.0.0.1:\(loopback)")
        }
        for (from, to) in stand.rewrite { out = out.replacingOccurrences(of: from, with: to) }
        if let api = stand.ports["8008"] { out = out.replacingOccurrences(of: "check port 8008", with: "check port \(api)") }
        let lines = out.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if words.first == "bind", words.count >= 2 {
                return line.replacingOccurrences(of: String(words[1]), with: "127.0.0.1:\(port)")
            }
            if words.first == "stats", words.count >= 3, words[1] == "socket" {
                return "    stats socket \(Loopback.RuntimeAPITests.socketPath())"
            }
            return String(line)
        }
        return lines.joined(separator: "\n")
    }

    static let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".cfg") }.sorted()

    @Test func theExamplesAreThere() {
        #expect(Self.files.count >= 8)
    }

    @Test(.enabled(if: ProtocolCheckTests.installed, "needs haproxy and the servers (scripts/test installs them)"), arguments: files)
    func passesBothCheckersRunsAndMovesTraffic(_ file: String) throws {
        let text = try String(contentsOf: Self.directory.appendingPathComponent(file), encoding: .utf8)
        let stand = try Self.stand(for: file)
        defer {
            for case let server as RealServer in stand.keep { server.stop() }
            for case let server as TestServer in stand.keep { server.stop() }
            for case let server as DNSServer in stand.keep { server.stop() }
            for case let proxy as SOCKS4Server in stand.keep { proxy.stop() }
        }

        // sluice -c on the file as written (host names need not resolve for the syntax), and on
        // the pointed copy with the real command line, which resolves.
        let parsed = try Configuration.parse(text, file: file)
        #expect(!parsed.configuration.frontends.isEmpty)
        let haproxyPort = try Net.closedPort()
        let forHAProxy = try Loopback.CommandLineTests.write(Self.pointed(text, at: stand, bind: haproxyPort), name: file)
        let check = try Loopback.CommandLineTests.run(["-c", "-f", forHAProxy])
        #expect(check.status == 0, "sluice -c: \(check.stderr)")
        let haproxyCheck = Process()
        haproxyCheck.executableURL = URL(fileURLWithPath: "/usr/sbin/haproxy")
        haproxyCheck.arguments = ["-c", "-q", "-f", forHAProxy]
        haproxyCheck.standardOutput = FileHandle.nullDevice
        haproxyCheck.standardError = FileHandle.nullDevice
        try haproxyCheck.run()
        waitForExit(haproxyCheck)
        #expect(haproxyCheck.terminationStatus == 0, "haproxy -c rejects \(forHAProxy)")

        // Run it in-process (the global section's daemon/user/chroot are the command line's job).
        var configuration = try Configuration.parse(Self.pointed(text, at: stand, bind: 0), file: file).configuration
        configuration.global.ioEngine = RunningProxy.defaultEngine
        var logger = Logger(label: "real-world")
        logger.logLevel = .error
        let balancer = try LoadBalancer(configuration: configuration, logger: logger)
        try balancer.start()
        defer { balancer.stop(graceful: false); balancer.wait() }
        let checked = balancer.backends.flatMap { backend in backend.servers.filter { $0.isChecked && $0.admin == .ready } }
        try eventually(timeout: .seconds(20), "every checked server of \(file) passes its check") {
            checked.allSatisfy { $0.lastCheck.status.passed && $0.operational == .running }
        }
        // Servers found through DNS: each such backend has one resolved and UP.
        try eventually(timeout: .seconds(20), "the DNS-named servers of \(file) resolve and come UP") {
            balancer.backends.allSatisfy { backend in
                !backend.servers.contains { $0.configuration.resolvers != nil }
                    || backend.servers.contains { $0.admin == .ready && $0.operational == .running && (!$0.isChecked || $0.lastCheck.status.passed) }
            }
        }
        for frontend in configuration.frontends {
            guard let address = balancer.listeningAddresses(of: frontend.name).first else { continue }
            try stand.probe(address.port)
        }
    }
}
}
