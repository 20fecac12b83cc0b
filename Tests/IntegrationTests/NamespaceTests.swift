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
