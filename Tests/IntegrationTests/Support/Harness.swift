import Foundation
import Testing
import Logging
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// A balancer started in-process from configuration text, listening on a kernel-chosen port.
final class RunningProxy {
    let balancer: LoadBalancer
    let port: Int

    /// The engine tests use unless they choose one: Sluice's default, or `SLUICE_TEST_IO_ENGINE`
    /// (`SLUICE_TEST_IO_ENGINE=epoll swift test` runs the in-process suites on epoll; `.ci/run` does both).
    static let defaultEngine = ProcessInfo.processInfo.environment["SLUICE_TEST_IO_ENGINE"].flatMap(IOEngine.init(rawValue:)) ?? .preferred

    /// `config` must have exactly one frontend; write its bind as `bind 127.0.0.1:0`.
    init(_ config: String, engine: IOEngine = RunningProxy.defaultEngine, logLevel: Logger.Level = .warning) throws {
        _ = pipeSignalIgnored
        Self.expectHAProxyAccepts(config)
        var parsed = try Configuration.parse(config, file: "test.cfg")
        parsed.configuration.global.ioEngine = engine
        var logger = Logger(label: "sluice-test")
        logger.logLevel = logLevel
        balancer = try LoadBalancer(configuration: parsed.configuration, logger: logger)
        try balancer.start()
        guard let frontend = parsed.configuration.frontends.first,
              let address = balancer.listeningAddresses(of: frontend.name).first else {
            throw Net.Failure("the test configuration has no listening frontend")
        }
        port = address.port
    }

    /// Sluice's syntax is HAProxy's: every configuration a test runs must also pass `haproxy -c`
    /// (where HAProxy is installed; `scripts/test` installs it). Port 0, which lets the kernel pick
    /// a port for Sluice, becomes a fixed one for the check.
    static func expectHAProxyAccepts(_ config: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/haproxy") else { return }
        let path = TestFiles.folder.appendingPathComponent("sluice-haproxy-c-\(UUID().uuidString.prefix(8)).cfg").path
        defer { unlink(path) }
        let text = config.replacingOccurrences(of: ":0\n", with: ":45999\n").replacingOccurrences(of: ":0 ", with: ":45999 ") + "\n"
        guard (try? text.write(toFile: path, atomically: true, encoding: .utf8)) != nil else { return }
        let check = Process()
        check.executableURL = URL(fileURLWithPath: "/usr/sbin/haproxy")
        check.arguments = ["-c", "-q", "-f", path]
        let err = Pipe()
        check.standardOutput = FileHandle.nullDevice
        check.standardError = err
        guard (try? check.run()) != nil else { return }
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let status = waitForExit(check, deadline: .seconds(10))
        #expect(status == 0, "haproxy -c rejects a test configuration:\n\(message)\n\(config)", sourceLocation: sourceLocation)
    }

    func stop() {
        balancer.stop(graceful: false)
        balancer.wait()
    }

    deinit { stop() }
}

/// Drives many non-blocking client connections at once from one thread: each sends `payload`
/// bytes, half-closes, and checks that what comes back matches (an echo server behind the proxy).
struct EchoSwarm {
    struct Result {
        var completed = 0
        var mismatched = 0
        var failed: [String] = []
    }

    static func run(port: Int, connections: Int, payload: (Int) -> Int, timeout: Duration = .seconds(60)) throws -> Result {
        struct Client {
            var fd: CInt
            var toSend: [UInt8]
            var sent = 0
            var received = Checksum()
            var expected = Checksum()
            var receivedCount = 0
            var done = false
            var finSent = false
        }
        var clients: [Client] = []
        clients.reserveCapacity(connections)
        for i in 0..<connections {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw Net.Failure("socket: \(String(cString: strerror(errno)))") }
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            var a = Net.address(port)
            let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            if r != 0 && errno != EINPROGRESS { throw Net.Failure("connect: \(String(cString: strerror(errno)))") }
            var stream = ByteStream(seed: UInt64(i + 1) * 7919)
            let bytes = stream.bytes(payload(i))
            var c = Client(fd: fd, toSend: bytes)
            bytes.withUnsafeBytes { c.expected.add($0) }
            clients.append(c)
        }
        var result = Result()
        let clock = ContinuousClock()
        let end = clock.now + timeout
        var buf = [UInt8](repeating: 0, count: 65536)
        var remaining = connections
        while remaining > 0 {
            guard clock.now < end else {
                result.failed.append("\(remaining) connections unfinished after \(timeout)")
                break
            }
            var fds = clients.map { c -> pollfd in
                var ev = Int16(POLLIN)
                if c.sent < c.toSend.count { ev |= Int16(POLLOUT) }
                return pollfd(fd: c.done ? -1 : c.fd, events: ev, revents: 0)
            }
            _ = poll(&fds, nfds_t(fds.count), 100)
            for i in clients.indices where !clients[i].done && fds[i].revents != 0 {
                let re = fds[i].revents
                if re & Int16(POLLOUT) != 0 && clients[i].sent < clients[i].toSend.count {
                    let n = clients[i].toSend[clients[i].sent...].withUnsafeBytes { send(clients[i].fd, $0.baseAddress, min($0.count, 65536), Int32(MSG_NOSIGNAL)) }
                    if n > 0 { clients[i].sent += n }
                }
                if clients[i].sent == clients[i].toSend.count && !clients[i].finSent {
                    shutdown(clients[i].fd, Int32(SHUT_WR))
                    clients[i].finSent = true
                }
                if re & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                    let n = buf.withUnsafeMutableBytes { recv(clients[i].fd, $0.baseAddress, $0.count, 0) }
                    if n > 0 {
                        buf.withUnsafeBytes { clients[i].received.add(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                        clients[i].receivedCount += n
                    } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                        let error = n == 0 ? nil : String(cString: strerror(errno))
                        clients[i].done = true
                        remaining -= 1
                        close(clients[i].fd)
                        if let error {
                            result.failed.append("client \(i): \(error) after \(clients[i].receivedCount) bytes")
                        } else if clients[i].received == clients[i].expected && clients[i].sent == clients[i].toSend.count {
                            result.completed += 1
                        } else {
                            result.mismatched += 1
                            result.failed.append("client \(i): got \(clients[i].receivedCount) bytes back of \(clients[i].toSend.count), checksum \(clients[i].received == clients[i].expected ? "equal" : "different")")
                        }
                    }
                }
            }
        }
        for c in clients where !c.done { close(c.fd) }
        return result
    }
}

/// The `defaults` section most tests share: tcp mode and the three timeouts HAProxy asks for.
func tcpDefaults(connect: String = "2s", client: String = "30s", server: String = "30s") -> String {
    "defaults\n  mode tcp\n  timeout connect \(connect)\n  timeout client \(client)\n  timeout server \(server)\n"
}

/// Waits for a child process to exit, killing it past `deadline`: a stuck child fails its test
/// (the issue is recorded and the status is the kill's) instead of hanging CI.
@discardableResult
func waitForExit(_ process: Process, deadline: Duration = .seconds(60)) -> Int32 {
    let clock = ContinuousClock()
    let end = clock.now + deadline
    while process.isRunning && clock.now < end { usleep(5_000) }
    if process.isRunning {
        Issue.record("\(process.executableURL?.lastPathComponent ?? "a child") was still running after \(deadline); killed")
        kill(process.processIdentifier, SIGKILL)
    }
    process.waitUntilExit()
    return process.terminationStatus
}
