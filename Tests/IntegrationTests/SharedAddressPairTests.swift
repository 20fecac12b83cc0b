import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The shared-IP pair of `examples/keepalived/`, as shipped, in network namespaces: two Sluice
/// hosts with keepalived (unicast VRRP) sharing 192.0.2.10, a client host and a host with the two
/// API servers, joined by a bridge in a namespace of its own. The addresses exist only inside the
/// namespaces (TEST-NET-1, no route out), so the example's files run with nothing changed but the
/// paths and, for the fast case, the advert interval.
///
/// A client opens a fresh connection 20 times a second for 20 s through the virtual address; 5 s
/// in, the active host fails — its link goes down (the host is gone, as far as the network can
/// tell), or only its Sluice is killed (keepalived lives on, so `check_sluice` must hand over). The
/// backup must serve within 3 × the advert interval + 1 s, every request after that must succeed,
/// and it must send the client to the same server (consistent hashing, no shared state).
///
/// Not in the `Loopback` suite: the pair uses no loopback port and few descriptors, and its four
/// cases run side by side (each about 25 s).
@Suite struct SharedAddressPairTests {
    enum Failure: String, CustomStringConvertible, CaseIterable, Sendable {
        case hostLinkDown = "the active host's link goes down"
        case sluiceKilled = "only Sluice dies on the active host"
        var description: String { rawValue }
    }

    static let available = getuid() == 0 && FileManager.default.isExecutableFile(atPath: Lab.keepalived)
        && FileManager.default.isExecutableFile(atPath: Lab.ip) && FileManager.default.fileExists(atPath: "/proc/self/ns/net")

    @Test(.enabled(if: available, "needs root, ip(8) and keepalived (scripts/test installs keepalived)"),
          arguments: Failure.allCases, [1.0, 0.2])
    func theBackupTakesOverAndServesTheSameServer(failure: Failure, advert: Double) throws {
        let lab = try Lab(advert: advert)
        defer { lab.tearDown() }
        try lab.startPair()

        let client = PairClient(namespace: lab.namespace("cli"))
        try eventually(timeout: .seconds(15), "100 requests answered before the failure") { client.answered >= 100 || client.finished }
        let failedAt = ContinuousClock.now
        switch failure {
        case .hostLinkDown: try lab.ip("-n", lab.namespace("bridge"), "link", "set", "lb1", "down")
        case .sluiceKilled: lab.killSluice(on: "lb1")
        }
        let records = client.wait()

        let before = records.filter { $0.started < failedAt }
        let after = records.filter { $0.started >= failedAt }
        #expect(before.count >= 100, "the client ran before the failure")
        #expect(before.allSatisfy { $0.answer?.via == "192.0.2.11" }, "before the failure lb1 serves every request: \(summary(before))\n\(lab.logs)")
        let servers = Set(before.compactMap { $0.answer?.server })
        #expect(servers.count == 1, "one client address, one server (balance source): \(servers.sorted())")

        // The takeover: the first answer from lb2. Requests already in flight then may still fail
        // (a SYN sent to the host that is gone waits for its retransmission, 1 s later); every
        // request started after it must succeed, through lb2, on the server lb1 chose.
        guard let takeover = after.compactMap({ $0.answer?.via == "192.0.2.12" ? $0.finished : nil }).min() else {
            Issue.record("lb2 answered no request after the failure: \(summary(after))\n\(lab.logs)")
            return
        }
        let outage = takeover - failedAt
        let bound = Duration.milliseconds(Int(advert * 3000) + 1000)
        let failed = after.filter { $0.answer == nil }.count
        print("shared-IP pair, \(failure), advert \(advert) s: lb2 answered \(milliseconds(outage)) ms after the failure (bound \(milliseconds(bound)) ms); \(failed) of \(records.count) requests failed")
        #expect(outage <= bound, "lb2 serves within 3 × advert + 1 s")
        let later = records.filter { $0.started >= takeover }
        #expect(later.count >= 200, "the client went on after the takeover")
        #expect(later.allSatisfy { $0.answer?.via == "192.0.2.12" }, "after the takeover lb2 serves every request: \(summary(later))\n\(lab.logs)")
        #expect(Set(later.compactMap { $0.answer?.server }) == servers, "lb2 sends the client to the server lb1 chose")
        #expect(lab.vrrpState(of: "lb2") == "MASTER" && lab.vrrpState(of: "lb1") == "FAULT",
                "notify_sluice recorded lb2 MASTER, lb1 FAULT: \(lab.vrrpState(of: "lb2") ?? "-"), \(lab.vrrpState(of: "lb1") ?? "-")")
        #expect(try lab.holdsVirtualAddress("lb2") && !lab.holdsVirtualAddress("lb1"))
    }

    private func milliseconds(_ d: Duration) -> Int64 { d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000 }

    private func summary(_ records: [PairClient.Record]) -> String {
        var counts: [String: Int] = [:]
        for r in records { counts[r.answer.map { "\($0.server) via \($0.via)" } ?? "failed: \(r.error ?? "")", default: 0] += 1 }
        return counts.sorted { $0.key < $1.key }.map { "\($0.value)× \($0.key)" }.joined(separator: ", ")
    }
}

/// The namespaces, links and processes of one pair. Everything it creates it removes in
/// `tearDown`, and each lab has its own names, so several can run at once.
final class Lab {
    static let ip = "/usr/sbin/ip"
    static let keepalived = "/usr/sbin/keepalived"
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/keepalived").path

    let prefix = "sluice-\(UUID().uuidString.prefix(6).lowercased())"
    let directory: String
    let advert: Double
    private var created: [String] = []
    private var processes: [(name: String, pid: pid_t)] = []
    private var backends: BackendHost?

    /// Each host's address on the bridge.
    static let hosts: KeyValuePairs<String, [String]> = [
        "lb1": ["192.0.2.11/24"], "lb2": ["192.0.2.12/24"], "cli": ["192.0.2.50/24"], "api": ["192.0.2.21/24", "192.0.2.22/24"],
    ]

    init(advert: Double) throws {
        self.advert = advert
        directory = TestFiles.folder.appendingPathComponent(prefix).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let bridge = namespace("bridge")
        try addNamespace(bridge)
        try ip("-n", bridge, "link", "add", "br0", "type", "bridge")
        try ip("-n", bridge, "link", "set", "br0", "up")
        for (host, addresses) in Self.hosts {
            let ns = namespace(host)
            try addNamespace(ns)
            // One veth pair: `eth0` in the host, `<host>` on the bridge.
            // (Interface names have at most 15 bytes: a short temporary name, renamed in place.)
            let temporary = "v\(prefix.suffix(6))\(host)"
            try ip("link", "add", temporary, "netns", ns, "type", "veth", "peer", "name", host, "netns", bridge)
            try ip("-n", ns, "link", "set", temporary, "name", "eth0")
            try ip("-n", bridge, "link", "set", host, "master", "br0", "up")
            for address in addresses { try ip("-n", ns, "addr", "add", address, "dev", "eth0") }
            try ip("-n", ns, "link", "set", "eth0", "up")
            try ip("-n", ns, "link", "set", "lo", "up")
        }
    }

    func namespace(_ host: String) -> String { "\(prefix)-\(host)" }

    private func addNamespace(_ name: String) throws {
        try ip("netns", "add", name)
        created.append(name)
    }

    func ip(_ arguments: String...) throws {
        _ = try Spawn.output(Self.ip, arguments)
    }

    /// The API servers, then Sluice and keepalived on both balancer hosts from the example files;
    /// returns when lb1 holds the address and a request through it is answered.
    func startPair() throws {
        backends = try BackendHost(namespace: namespace("api"), addresses: ["192.0.2.21", "192.0.2.22"], port: 8080)
        let sluice = sluiceExecutable()
        for host in ["lb1", "lb2"] {
            let run = directory + "/" + host
            try FileManager.default.createDirectory(atPath: run, withIntermediateDirectories: true)
            // The example's paths, moved into this lab; nothing else changes.
            func localised(_ text: String) -> String {
                var text = text.replacingOccurrences(of: "/run/sluice/", with: run + "/")
                    .replacingOccurrences(of: "/usr/local/libexec/sluice/", with: "/usr/bin/env SLUICE=\(sluice) \(Self.examples)/")
                if advert < 1 {
                    text = text.replacingOccurrences(of: "vrrp_version 2", with: "vrrp_version 3")
                        .replacingOccurrences(of: "advert_int 1\n", with: "advert_int \(advert)\n")
                }
                return text
            }
            let config = localised(try String(contentsOfFile: Self.examples + "/sluice.cfg", encoding: .utf8))
            try config.write(toFile: run + "/sluice.cfg", atomically: true, encoding: .utf8)
            RunningProxy.expectHAProxyAccepts(config)
            let keepalived = localised(try String(contentsOfFile: Self.examples + "/\(host).keepalived.conf", encoding: .utf8))
            try keepalived.write(toFile: run + "/keepalived.conf", atomically: true, encoding: .utf8)

            let ns = namespace(host)
            try Spawn.run(Self.ip, ["netns", "exec", ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind"])
            processes.append(("\(host) sluice", try Spawn.start(Self.ip, ["netns", "exec", ns, sluice, "-f", run + "/sluice.cfg"], output: run + "/sluice.log")))
            try eventually("sluice on \(host) answers on its runtime socket") { FileManager.default.fileExists(atPath: run + "/admin.sock") }
            // -n: in the foreground (its VRRP child is reaped by it); -P: VRRP only; own pid files.
            processes.append(("\(host) keepalived", try Spawn.start(Self.ip, [
                "netns", "exec", ns, Self.keepalived, "-n", "-l", "-P", "-f", run + "/keepalived.conf",
                "-p", run + "/keepalived.pid", "-r", run + "/vrrp.pid",
            ], output: run + "/keepalived.log")))
        }
        try eventually(timeout: .seconds(15), "lb1 holds 192.0.2.10 and lb2 is its backup") {
            try holdsVirtualAddress("lb1") && vrrpState(of: "lb1") == "MASTER" && vrrpState(of: "lb2") == "BACKUP"
        }
    }

    /// SIGKILL to the Sluice on `host` (keepalived stays).
    func killSluice(on host: String) {
        guard let index = processes.firstIndex(where: { $0.name == "\(host) sluice" }) else { return }
        let pid = processes.remove(at: index).pid
        kill(pid, SIGKILL)
        Spawn.wait(pid)
    }

    /// What `notify_sluice` last wrote for `host`: MASTER, BACKUP, FAULT or STOP.
    func vrrpState(of host: String) -> String? {
        let text = try? String(contentsOfFile: "\(directory)/\(host)/vrrp-state", encoding: .utf8)
        return text?.split(separator: " ").first.map(String.init)
    }

    func holdsVirtualAddress(_ host: String) throws -> Bool {
        try Spawn.output(Self.ip, ["-n", namespace(host), "-4", "-o", "addr", "show", "dev", "eth0"]).contains(" 192.0.2.10/")
    }

    var logs: String {
        ["lb1", "lb2"].flatMap { host in ["sluice.log", "keepalived.log"].map { file in
            "== \(host)/\(file)\n" + ((try? String(contentsOfFile: "\(directory)/\(host)/\(file)", encoding: .utf8)) ?? "")
        } }.joined(separator: "\n")
    }

    func tearDown() {
        for (_, pid) in processes.reversed() { Spawn.stop(pid) }
        processes = []
        backends?.stop()
        // Deleting a namespace deletes its end of every veth pair, and with it the other end.
        for name in created.reversed() { try? ip("netns", "delete", name) }
        created = []
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// setns(2), which Glibc's module map leaves out (it needs _GNU_SOURCE).
private let setNetworkNamespace: @convention(c) (CInt, CInt) -> CInt = {
    guard let symbol = dlsym(nil, "setns") else { fatalError("libc has no setns") }
    return unsafeBitCast(symbol, to: (@convention(c) (CInt, CInt) -> CInt).self)
}()

/// Runs `body` on a thread of its own inside network namespace `name`: every socket it creates
/// belongs to that namespace (the rest of the test process stays where it is).
private func startThread(inNamespace name: String, _ body: @escaping @Sendable () -> Void) -> Thread {
    let thread = Thread {
        let fd = open("/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0, setNetworkNamespace(fd, 0x4000_0000 /* CLONE_NEWNET */) == 0 else {
            Issue.record("cannot enter network namespace \(name): \(String(cString: strerror(errno)))")
            return
        }
        close(fd)
        body()
    }
    thread.start()
    return thread
}

/// The API servers: on each address, port `port`, every connection is answered with one line —
/// the address it was made to and the address it came from (which balancer forwarded it) — then
/// closed.
final class BackendHost: @unchecked Sendable {
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    init(namespace: String, addresses: [String], port: Int) throws {
        let ready = DispatchSemaphore(value: 0)
        let problem = Mutex<String?>(nil)
        _ = startThread(inNamespace: namespace) { [self] in
            var listeners: [CInt] = []
            for address in addresses {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
                var one: CInt = 1
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
                var sin = sockaddr_in()
                sin.sin_family = sa_family_t(AF_INET)
                sin.sin_port = in_port_t(UInt16(port).bigEndian)
                inet_pton(AF_INET, address, &sin.sin_addr)
                let bound = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
                guard bound == 0, listen(fd, 512) == 0 else {
                    problem.withLock { $0 = "bind \(address):\(port): \(String(cString: strerror(errno)))" }
                    break
                }
                listeners.append(fd)
            }
            ready.signal()
            while !stopping.load(ordering: .relaxed) {
                var polls = listeners.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
                guard poll(&polls, nfds_t(polls.count), 50) > 0 else { continue }
                for p in polls where p.revents != 0 {
                    while true {
                        var peer = sockaddr_in(), local = sockaddr_in()
                        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                        let c = withUnsafeMutablePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(p.fd, $0, &length) } }
                        guard c >= 0 else { break }
                        length = socklen_t(MemoryLayout<sockaddr_in>.size)
                        _ = withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(c, $0, &length) } }
                        let line = "\(Self.text(local.sin_addr)) \(Self.text(peer.sin_addr))\n"
                        _ = line.withCString { send(c, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
                        close(c)
                    }
                }
            }
            listeners.forEach { close($0) }
            finished.signal()
        }
        ready.wait()
        if let problem = problem.withLock({ $0 }) {
            stop()
            throw Net.Failure(problem)
        }
    }

    static func text(_ address: in_addr) -> String {
        var a = address
        var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        inet_ntop(AF_INET, &a, &buffer, socklen_t(buffer.count))
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        finished.wait()
    }
}

/// From the client host: a fresh connection to 192.0.2.10:8080 every 50 ms for 20 s, each given
/// 1 s to be answered; several may be in flight at once, so one that hangs (its SYN sent to a
/// host that is gone) does not delay the next.
final class PairClient: @unchecked Sendable {
    struct Record: Sendable {
        let started: ContinuousClock.Instant
        var finished: ContinuousClock.Instant
        var answer: (server: String, via: String)?
        var error: String?
    }

    private let records = Mutex<[Record]>([])
    private let done = DispatchSemaphore(value: 0)
    private let finishedFlag = Atomic<Bool>(false)

    init(namespace: String, every interval: Duration = .milliseconds(50), for duration: Duration = .seconds(20)) {
        _ = startThread(inNamespace: namespace) { [self] in
            run(interval: interval, duration: duration)
            finishedFlag.store(true, ordering: .relaxed)
            done.signal()
        }
    }

    var answered: Int { records.withLock { $0.filter { $0.answer != nil }.count } }
    var finished: Bool { finishedFlag.load(ordering: .relaxed) }

    /// Waits for the whole run; the records in the order the requests started.
    func wait() -> [Record] {
        done.wait()
        return records.withLock { $0 }.sorted { $0.started < $1.started }
    }

    private struct InFlight {
        let fd: CInt
        let record: Record
        var received: [UInt8] = []
    }

    private func run(interval: Duration, duration: Duration) {
        let clock = ContinuousClock()
        let start = clock.now
        var next = start
        var inFlight: [InFlight] = []
        while clock.now < start + duration || !inFlight.isEmpty {
            let now = clock.now
            if now >= next && now < start + duration {
                next += interval
                let record = Record(started: now, finished: now)
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                var vip = sockaddr_in()
                vip.sin_family = sa_family_t(AF_INET)
                vip.sin_port = in_port_t(UInt16(8080).bigEndian)
                inet_pton(AF_INET, "192.0.2.10", &vip.sin_addr)
                let r = withUnsafePointer(to: &vip) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
                if r == 0 || errno == EINPROGRESS {
                    inFlight.append(InFlight(fd: fd, record: record))
                } else {
                    finish(fd, record, error: String(cString: strerror(errno)))
                }
            }
            var polls = inFlight.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let wait = max(.zero, min(next, start + duration) - clock.now)
            _ = poll(&polls, nfds_t(polls.count), Int32(wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000) + 1)
            var kept: [InFlight] = []
            for (index, var request) in inFlight.enumerated() {
                if polls[index].revents != 0 {
                    var buffer = [UInt8](repeating: 0, count: 256)
                    let n = recv(request.fd, &buffer, buffer.count, 0)
                    if n > 0 {
                        request.received += buffer[..<n]
                        kept.append(request)
                    } else if n == 0 {
                        let words = String(decoding: request.received, as: UTF8.self).split(whereSeparator: \.isWhitespace).map(String.init)
                        var record = request.record
                        if words.count == 2 { record.answer = (words[0], words[1]) } else { record.error = "closed without an answer" }
                        finish(request.fd, record, error: record.error)
                    } else if errno == EAGAIN || errno == EINTR {
                        kept.append(request)
                    } else {
                        finish(request.fd, request.record, error: String(cString: strerror(errno)))
                    }
                } else if clock.now - request.record.started > .seconds(1) {
                    finish(request.fd, request.record, error: "no answer within 1 s")
                } else {
                    kept.append(request)
                }
            }
            inFlight = kept
        }
    }

    private func finish(_ fd: CInt, _ record: Record, error: String?) {
        close(fd)
        var record = record
        record.finished = .now
        record.error = record.answer == nil ? (error ?? "failed") : nil
        records.withLock { $0.append(record) }
    }
}
