import Foundation
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// A real name server on loopback: Debian's dnsmasq, answering only from a hosts file the test
/// writes (`--no-resolv --no-hosts --addn-hosts`), plus fixed records from `options` (`srv-host=…`,
/// `host-record=…`). `setHosts` rewrites the file and sends SIGHUP, then waits until dnsmasq answers
/// with the new addresses.
final class DNSServer {
    static let path = "/usr/sbin/dnsmasq"
    static var available: Bool { FileManager.default.isExecutableFile(atPath: path) }

    let port: Int
    private let hostsFile: String
    /// The daemon's process id, from its pid file. dnsmasq runs as a daemon (it forks, the parent
    /// exits): a dnsmasq kept in the foreground as a Foundation `Process` stops Foundation from
    /// noticing that the test's other children (`haproxy -c`) exit.
    private var pid: pid_t = 0

    init(hosts: [(ip: String, name: String)], options: [String] = []) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-dns-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        hostsFile = directory + "/hosts"
        try Self.write(hosts, to: hostsFile)
        let conf = directory + "/dnsmasq.conf"
        // `local=/test/`: names under .test are dnsmasq's own, so a missing one is NXDOMAIN (without
        // it dnsmasq, having no upstream server, answers REFUSED).
        try (["local=/test/"] + options).map { $0 + "\n" }.joined().write(toFile: conf, atomically: true, encoding: .utf8)
        port = try Self.freeUDPPort()
        let pidFile = directory + "/pid"
        let status = try Self.run(Self.path, ["--port=\(port)", "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
                                              "--addn-hosts=\(hostsFile)", "--conf-file=\(conf)", "--user=root", "--pid-file=\(pidFile)",
                                              "--log-facility=\(directory)/log"])
        guard status == 0, let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw Net.Failure("dnsmasq did not start: exit status \(status) (see \(directory)/log)")
        }
        self.pid = pid
        // Ready when it answers a query for one of its names (or, without names, any query).
        let probe = hosts.first?.name ?? "ready.invalid"
        try eventually("dnsmasq answers on port \(port)") { Self.ask(port: port, name: probe, type: .a) != nil }
    }

    /// Replaces the hosts file and waits until `name` resolves to exactly its new addresses.
    func setHosts(_ hosts: [(ip: String, name: String)], waitFor name: String) throws {
        try Self.write(hosts, to: hostsFile)
        kill(pid, SIGHUP)
        let expected = Set(hosts.filter { $0.name == name && !$0.ip.contains(":") }.map(\.ip))
        try eventually("dnsmasq serves \(name) as \(expected.sorted())") {
            guard let answer = Self.ask(port: port, name: name, type: .a) else { return false }
            let got = Set(answer.addresses(of: name, type: .a).compactMap { IPAddress(bytes: $0)?.description })
            return got == expected
        }
    }

    func stop() {
        guard pid > 0 else { return }
        kill(pid, SIGTERM)
        pid = 0
    }

    deinit { stop() }

    /// Runs a program to its exit with no signal blocked or ignored (a Foundation `Process`
    /// passes on the test runner's blocked signals, and dnsmasq would never see its SIGHUP).
    private static func run(_ path: String, _ arguments: [String]) throws -> Int32 {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, path, nil, &attributes, argv, environ)
        guard rc == 0 else { throw Net.Failure("posix_spawn \(path): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        return (status >> 8) & 0xFF
    }

    private static func write(_ hosts: [(ip: String, name: String)], to path: String) throws {
        try hosts.map { "\($0.ip) \($0.name)\n" }.joined().write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// One query over UDP to 127.0.0.1:port, 200 ms for the answer.
    static func ask(port: Int, name: String, type: DNSRecordType) -> DNSResponse? {
        let id = UInt16.random(in: 1...UInt16.max)
        guard let query = DNSMessage.query(id: id, name: name, type: type) else { return nil }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = Net.address(port)
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0, send(fd, query, query.count, 0) == query.count else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        guard count > 0, case .success(let response) = DNSMessage.parse(Array(buffer[0..<count])), response.id == id else { return nil }
        return response
    }

    /// A port nothing is bound to on 127.0.0.1 for UDP nor TCP (a name server takes both; test
    /// servers hold TCP ports), found by binding both, then closed.
    static func freeUDPPort() throws -> Int {
        for _ in 0..<20 {
            let tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            let udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(tcp); close(udp) }
            var address = Net.address(0)
            guard withUnsafePointer(to: &address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(tcp, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) == 0 else {
                throw Net.Failure("bind TCP: \(String(cString: strerror(errno)))")
            }
            var same = Net.address(Net.localPort(tcp))
            if withUnsafePointer(to: &same, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(udp, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) == 0 {
                return Net.localPort(udp)
            }
        }
        throw Net.Failure("no port free for both UDP and TCP")
    }
}
