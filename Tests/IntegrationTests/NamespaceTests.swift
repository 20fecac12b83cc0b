import Foundation
import Testing
@_spi(Benchmarks) import Sluice
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

extension Loopback {
/// `namespace <name>` on a server: its connections and checks are made in that network namespace
/// (`ip netns add`), where a server the host cannot reach listens; HAProxy 2.6 on the same file.
@Suite struct NamespaceTests {
    static let available = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip")

    @Test(.enabled(if: available, "needs root and ip(8)"))
    func aServerInANamespaceIsReachedAndCheckedThereAsInHAProxy() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let name = "sluice-ns-\(UUID().uuidString.prefix(6))"
        _ = try Spawn.output("/usr/sbin/ip", ["netns", "add", name])
        defer { _ = try? Spawn.output("/usr/sbin/ip", ["netns", "delete", name]) }
        _ = try Spawn.output("/usr/sbin/ip", ["-n", name, "link", "set", "lo", "up"])
        // A port nothing listens on in the host's namespace: only the namespace's server answers.
        let port = try Net.closedPort()
        let inside = try BackendHost(namespace: name, addresses: ["127.0.0.1"], port: port)
        defer { inside.stop() }
        var seen: [String] = []
        for haproxy in [true, false] {
            let socket = ServerStateTests.temporaryPath("admin.sock")
            defer { unlink(socket) }
            let contender = try Contender(haproxy: haproxy) { listen in
                StatsClient.preamble(socket: socket) + """
                listen l
                  bind 127.0.0.1:\(listen)
                  balance first
                  server there 127.0.0.1:\(port) namespace \(name) check inter 100ms
                  server here 127.0.0.1:\(port) check inter 100ms

                """
            }
            defer { contender.stop() }
            func rows() throws -> [String] {
                try StatsClient.showStat(socket).filter { $0["pxname"] == "l" && $0["svname"] != "FRONTEND" && $0["svname"] != "BACKEND" }
                    .map { "\($0["svname"] ?? "?") \($0["status"] ?? "?") \(($0["check_status"] ?? "?").replacingOccurrences(of: "* ", with: ""))" }
            }
            try eventually("\(contender.name): both servers checked") { try rows() == ["there UP L4OK", "here DOWN L4CON"] }
            let fd = try Net.connect(contender.port)
            defer { close(fd) }
            seen.append("\(contender.name): " + String(decoding: try Net.readToEnd(fd), as: UTF8.self).trimmingCharacters(in: .newlines))
        }
        #expect(seen == ["haproxy: 127.0.0.1 127.0.0.1", "sluice: 127.0.0.1 127.0.0.1"])
    }

    /// `bind … namespace <name>`: the listener accepts the connections made in that namespace (a
    /// client there reaches a server in the host's), beside a bind in the host's own; HAProxy 2.6
    /// on the same file.
    @Test(.enabled(if: available, "needs root and ip(8)"))
    func aBindInANamespaceAcceptsThereAsInHAProxy() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let name = "sluice-ns-\(UUID().uuidString.prefix(6))"
        _ = try Spawn.output("/usr/sbin/ip", ["netns", "add", name])
        defer { _ = try? Spawn.output("/usr/sbin/ip", ["netns", "delete", name]) }
        _ = try Spawn.output("/usr/sbin/ip", ["-n", name, "link", "set", "lo", "up"])
        let server = try TestServer(.identify("host"))
        defer { server.stop() }
        let inner = try Net.closedPort()
        let namespace = try NetworkNamespace.descriptor(name)
        /// A connection from inside the namespace to 127.0.0.1:`inner`, and what it read.
        func fromInside() throws -> String {
            let fd = try NetworkNamespace.within(namespace) { () throws(SystemError) -> CInt in
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                guard fd >= 0 else { throw SystemError(code: errno, call: "socket") }
                return fd
            }
            defer { close(fd) }
            var a = Net.address(inner)
            let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard r == 0 else { return "connect: \(String(cString: strerror(errno)))" }
            return String(decoding: try Net.readToEnd(fd), as: UTF8.self).trimmingCharacters(in: .newlines)
        }
        var seen: [String] = []
        for haproxy in [true, false] {
            let contender = try Contender(haproxy: haproxy) { port in
                tcpDefaults() + "listen l\n  bind 127.0.0.1:\(port)\n  bind 127.0.0.1:\(inner) namespace \(name)\n  server s 127.0.0.1:\(server.port)\n"
            }
            defer { contender.stop() }
            var answer = ""
            try eventually("\(contender.name): the namespace's listener answers") {
                answer = try fromInside()
                return answer == "host"
            }
            seen.append("\(contender.name): \(answer)")
            // In the host's namespace nothing listens on that port.
            #expect(throws: (any Error).self) { close(try Net.connect(inner)) }
        }
        #expect(seen == ["haproxy: host", "sluice: host"])

        // A reload keeps the namespace's listener; one that drops `namespace` from the line moves
        // the listener to the host's namespace (the same address is another socket there).
        let text = { (ns: String) in tcpDefaults() + "listen l\n  bind 127.0.0.1:0\n  bind 127.0.0.1:\(inner)\(ns)\n  server s 127.0.0.1:\(server.port)\n" }
        let proxy = try RunningProxy(text(" namespace \(name)"))
        defer { proxy.stop() }
        try eventually("the namespace's listener answers") { try fromInside() == "host" }
        try proxy.balancer.reload(Configuration.parse(text(" namespace \(name)")).configuration)
        #expect(try fromInside() == "host", "kept across a reload")
        try proxy.balancer.reload(Configuration.parse(text("")).configuration)
        try eventually("the host's namespace has the listener now") {
            guard let fd = try? Net.connect(inner) else { return false }
            defer { close(fd) }
            return String(decoding: try Net.readToEnd(fd), as: UTF8.self) == "host\n"
        }
        #expect(try fromInside().hasPrefix("connect:"), "the namespace's listener is closed")
    }

    /// A namespace that does not exist is HAProxy's error (the wildcard's is in ParserTests).
    @Test func aMissingNamespaceIsRefused() throws {
        let missing = try Configuration.parse(tcpDefaults() + "listen l\n  bind 127.0.0.1:0\n  server s 127.0.0.1:1 namespace sluice-no-such-ns\n").configuration
        do {
            _ = try LoadBalancer(configuration: missing)
            Issue.record("a missing namespace was accepted")
        } catch {
            #expect(error.message.hasPrefix("backend 'l' server 's': Cannot open namespace 'sluice-no-such-ns'"), "\(error.message)")
        }
    }
}
}
