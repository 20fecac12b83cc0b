import ArgumentParser
import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// `sluice cli`: one command to a running Sluice's (or HAProxy's) runtime socket, the answer on
/// standard output — what operators otherwise do with `echo … | socat stdio <socket>`, without
/// needing socat. The exit status says whether the process answered, which makes it a health
/// check for keepalived's `vrrp_script` (see examples/keepalived).
struct RuntimeClient: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cli",
        abstract: "Send one command to a runtime socket ('stats socket') and print the answer.",
        discussion: """
            Example: sluice cli -S /run/sluice/admin.sock show servers state. Exits 0 when the process \
            answered (whatever the answer says), 1 when the socket cannot be reached or no complete \
            answer arrives within --timeout.
            """
    )

    @Option(name: .customShort("S"), help: ArgumentHelp("The UNIX socket of a 'stats socket' line.", valueName: "socket"))
    var socketPath: String

    @Option(help: "How long to wait for the whole answer (e.g. 2s, 500ms).")
    var timeout: String = "2s"

    @Argument(parsing: .captureForPassthrough, help: "The command, e.g. show info.")
    var command: [String] = []

    func run() throws {
        guard let limit = Duration(haproxyTime: timeout) else {
            throw ValidationError("--timeout '\(timeout)' is not a time such as 2s or 500ms")
        }
        guard !command.isEmpty else { throw ValidationError("no command: e.g. sluice cli -S \(socketPath) show info") }
        do {
            let answer = try Self.ask(socketPath, command.joined(separator: " "), timeoutMs: Int(limit.components.seconds * 1000 + limit.components.attoseconds / 1_000_000_000_000_000))
            answer.withUnsafeBufferPointer { _ = write(1, $0.baseAddress, $0.count) }
        } catch {
            printError("sluice cli: \((error as? Failure)?.message ?? "\(error)")")
            throw ExitCode(1)
        }
    }

    struct Failure: Error { let message: String }


    /// Connects, sends `line`, and reads until the server closes (the runtime API closes after one
    /// command unless in interactive mode).
    static func ask(_ path: String, _ line: String, timeoutMs: Int) throws -> [UInt8] {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw Failure(message: "\(path): path too long for a UNIX socket") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(message: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw Failure(message: "\(path): \(String(cString: strerror(errno)))") }
        let deadline = monotonicNow() + Int64(timeoutMs)
        let request = Array((line + "\n").utf8)
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure(message: "\(path): send: \(String(cString: strerror(errno)))") }
            sent += n
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let left = deadline - monotonicNow()
            guard left > 0 else { throw Failure(message: "\(path): no complete answer within \(timeoutMs) ms") }
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = poll(&ready, 1, Int32(left))
            if r < 0, errno == EINTR { continue }
            guard r > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw Failure(message: "\(path): recv: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            answer += buffer[..<n]
        }
        guard !answer.isEmpty else { throw Failure(message: "\(path): closed without an answer") }
        return answer
    }
}

/// Monotonic milliseconds, for the command line's deadlines and rates.
func monotonicNow() -> Int64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Int64(t.tv_sec) * 1000 + Int64(t.tv_nsec) / 1_000_000
}
