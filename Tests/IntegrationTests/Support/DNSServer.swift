import Foundation
import Synchronization
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
        let directory = TestFiles.folder.appendingPathComponent("sluice-dns-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        hostsFile = directory + "/hosts"
        try Self.write(hosts, to: hostsFile)
        let conf = directory + "/dnsmasq.conf"
        // `local=/test/`: names under .test are dnsmasq's own, so a missing one is NXDOMAIN (without
        // it dnsmasq, having no upstream server, answers REFUSED).
        try (["local=/test/"] + options).map { $0 + "\n" }.joined().write(toFile: conf, atomically: true, encoding: .utf8)
        port = try Self.freeUDPPort()
        let pidFile = directory + "/pid"
        let status = try Spawn.run(Self.path, ["--port=\(port)", "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
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

/// A name server answering over UDP from records the test gives: A records and SRV records
/// (without additional records, so the resolver has to look the targets up itself, as some
/// servers make it). Unknown names are NXDOMAIN; a known name without records of the asked type is
/// an empty NOERROR answer.
final class ScriptedNameServer: @unchecked Sendable {
    enum Record {
        case a(String)
        case srv(priority: UInt16, weight: UInt16, port: UInt16, target: String)
    }

    let port: Int
    let queries = Mutex<[String]>([])
    private let records: [String: [Record]]
    private let fd: CInt
    private let stopping = Atomic<Bool>(false)
    private var thread: Thread?

    init(_ records: [String: [Record]]) throws {
        self.records = records
        port = try DNSServer.freeUDPPort()
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var address = Net.address(port)
        guard withUnsafePointer(to: &address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) == 0 else {
            throw Net.Failure("scripted name server bind: \(String(cString: strerror(errno)))")
        }
        thread = Thread { [self] in serve() }
        thread?.start()
    }

    private func serve() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stopping.load(ordering: .relaxed) {
            guard Net.waitReadable(fd, timeoutMs: 50) else { continue }
            var peer = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = withUnsafeMutablePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &length) } }
            guard n > 12, let reply = answer(Array(buffer[0..<n])) else { continue }
            _ = withUnsafePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, reply, reply.count, 0, $0, length) } }
        }
    }

    /// The response to `query`: its header and question, then the matching records.
    private func answer(_ query: [UInt8]) -> [UInt8]? {
        var labels: [String] = []
        var i = 12
        while i < query.count, query[i] != 0 {
            let count = Int(query[i])
            guard i + 1 + count <= query.count else { return nil }
            labels.append(String(decoding: query[(i + 1)...(i + count)], as: UTF8.self).lowercased())
            i += 1 + count
        }
        guard i + 5 <= query.count else { return nil }
        let name = labels.joined(separator: ".")
        let type = UInt16(query[i + 1]) << 8 | UInt16(query[i + 2])
        queries.withLock { $0.append("\(name) \(type)") }
        var out = Array(query[0..<(i + 5)])
        out[2] = 0x81; out[3] = 0x80
        out[6] = 0; out[7] = 0; out[8] = 0; out[9] = 0; out[10] = 0; out[11] = 0
        guard let known = records[name] else {
            out[3] |= 3  // NXDOMAIN
            return out
        }
        var count = 0
        for record in known {
            switch record {
            case .a(let ip) where type == 1:
                guard let parsed = IPAddress(ip), case .v4(let v) = parsed else { continue }
                out += [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
                count += 1
            case .srv(let priority, let weight, let port, let target) where type == 33:
                let encoded = DNSMessage.encode(name: target) ?? [0]
                let rdata = [UInt8(priority >> 8), UInt8(priority & 0xFF), UInt8(weight >> 8), UInt8(weight & 0xFF), UInt8(port >> 8), UInt8(port & 0xFF)] + encoded
                out += [0xC0, 12, 0, 33, 0, 1, 0, 0, 0, 5, UInt8(rdata.count >> 8), UInt8(rdata.count & 0xFF)] + rdata
                count += 1
            default:
                continue
            }
        }
        out[7] = UInt8(count)
        return out
    }

    func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        while thread?.isFinished == false { usleep(10_000) }
        close(fd)
    }

    deinit { stop() }
}
