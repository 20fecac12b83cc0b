import Foundation
import Testing
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Blocking-socket helpers for the client side of tests, with deadlines instead of sleeps.
enum Net {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    static func address(_ port: Int, host: String = "127.0.0.1") -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        a.sin_addr.s_addr = inet_addr(host)
        return a
    }

    /// Binds `fd` to 127.0.0.1:`port` (0: the kernel picks); whether it worked.
    static func bindLoopback(_ fd: CInt, port: Int) -> Bool {
        var a = address(port)
        return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }

    /// Whether 127.0.0.1:`port` can be bound now.
    static func isFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        return bindLoopback(fd, port: port)
    }

    /// A listening socket on 127.0.0.1 at a port the kernel picks (`localPort`), which the test
    /// accepts from itself, or never: the kernel then completes handshakes and takes bytes until
    /// each connection's window closes.
    static func rawListener() throws -> CInt {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard bindLoopback(fd, port: 0), listen(fd, 16) == 0 else {
            close(fd)
            throw Failure("cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))")
        }
        return fd
    }

    /// A connected blocking TCP socket to 127.0.0.1:port.
    static func connect(_ port: Int) throws -> CInt {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket: \(String(cString: strerror(errno)))") }
        var a = address(port)
        let r = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if r != 0 {
            let e = errno
            close(fd)
            throw Failure("connect 127.0.0.1:\(port): \(String(cString: strerror(e)))")
        }
        var one: CInt = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<CInt>.size))
        return fd
    }

    static func sendAll(_ fd: CInt, _ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure("send: \(String(cString: strerror(errno)))")
            }
            off += n
        }
    }

    static func sendAll(_ fd: CInt, _ text: String) throws { try sendAll(fd, Array(text.utf8)) }

    /// Waits until `fd` is readable or the deadline passes. True when readable.
    static func waitReadable(_ fd: CInt, timeoutMs: Int) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let r = poll(&p, 1, Int32(timeoutMs))
        return r > 0
    }

    /// Reads until end of stream, failing after `timeoutMs` without it. With `resetEnds`, a reset
    /// ends the stream too (a peer that closes with unread bytes resets).
    static func readToEnd(_ fd: CInt, timeoutMs: Int = 10_000, resetEnds: Bool = false) throws -> [UInt8] {
        let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let left = Int(deadline.timeIntervalSinceNow * 1000)
            guard left > 0, waitReadable(fd, timeoutMs: left) else { throw Failure("no end of stream within \(timeoutMs) ms (read \(out.count) bytes)") }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return out }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ECONNRESET && resetEnds { return out }
                throw Failure("recv: \(String(cString: strerror(errno))) after \(out.count) bytes")
            }
            out += buf[0..<n]
        }
    }

    /// Reads exactly `count` bytes, failing after `timeoutMs`.
    static func read(_ fd: CInt, count: Int, timeoutMs: Int = 10_000) throws -> [UInt8] {
        let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while out.count < count {
            let left = Int(deadline.timeIntervalSinceNow * 1000)
            guard left > 0, waitReadable(fd, timeoutMs: left) else { throw Failure("only \(out.count) of \(count) bytes within \(timeoutMs) ms") }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, count - out.count), 0) }
            if n == 0 { throw Failure("end of stream after \(out.count) of \(count) bytes") }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure("recv: \(String(cString: strerror(errno))) after \(out.count) bytes")
            }
            out += buf[0..<n]
        }
        return out
    }

    /// A port that refuses connections, for a test to give a proxy or to find closed. Never the same
    /// port twice in one test process, and never one the kernel hands out itself: tests run in
    /// parallel, and two proxies told the same port would both bind it (Sluice and HAProxy listen
    /// with SO_REUSEPORT) and share its connections — and a port taken from the kernel by binding
    /// port 0 and closing could be handed again to the next test that binds port 0 (a server, an
    /// in-process proxy). So ports come from below the ephemeral range
    /// (`net.ipv4.ip_local_port_range`, 32768–60999 by default), from a cursor each process
    /// starts at random, and only ones that bind now. Likely cause of a rare CI failure:
    /// `aBurstFarBeyondMaxconnIsServedInTurn`'s clients reset after 0 bytes. (An idle client
    /// through HAProxy that "never closed" in `LoggingTests` was the test's own 5 s wait racing
    /// HAProxy's 5 s server timeout: see that test.)
    static func closedPort() throws -> Int {
        let range = portRange
        for _ in 0..<range.count {
            let port = portCursor.withLock { cursor in
                defer { cursor = cursor + 1 == range.upperBound ? range.lowerBound : cursor + 1 }
                return cursor
            }
            guard handedOut.withLock({ $0.insert(port).inserted }) else { continue }
            if isFree(port) { return port }
        }
        throw Failure("no free port in \(range.lowerBound)..<\(range.upperBound)")
    }

    /// Ports below the kernel's ephemeral range (above 10000), or above it if it starts too low.
    private static let portRange: Range<Int> = {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let bounds = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
        let (low, high) = bounds.count == 2 ? (bounds[0], bounds[1]) : (32768, 60999)
        return low - 10000 >= 2000 ? 10000..<low : (high + 1)..<65536
    }()
    private static let portCursor = Mutex<Int>(portRange.lowerBound + Int.random(in: 0..<portRange.count))
    /// Every port `closedPort()` has tried in this process.
    private static let handedOut = Mutex<Set<Int>>([])

    static func localPort(_ fd: CInt) -> Int {
        var a = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: a.sin_port))
    }
}

/// Polls `condition` until it holds or `timeout` passes; the wait for an event without a signal.
func eventually(timeout: Duration = .seconds(10), _ what: String, _ condition: () throws -> Bool) throws {
    let clock = ContinuousClock()
    let end = clock.now + timeout
    while clock.now < end {
        if try condition() { return }
        usleep(5_000)
    }
    throw Net.Failure("timed out after \(timeout) waiting for: \(what)")
}

/// Deterministic pseudo-random bytes (xorshift64*), so each side can regenerate what the other sent.
struct ByteStream {
    private var state: UInt64
    init(seed: UInt64) { state = seed | 1 }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2685821657736338717
    }

    mutating func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var i = 0
        while i + 8 <= buffer.count {
            buffer.storeBytes(of: next(), toByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < buffer.count {
            buffer[i] = UInt8(truncatingIfNeeded: next())
            i += 1
        }
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { fill($0) }
        return out
    }
}

/// FNV-1a over 64-bit words (and a byte tail): fast enough in debug builds for 64 MiB.
struct Checksum: Equatable {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    private(set) var count = 0
    private var pending: [UInt8] = []

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var view = bytes[...]
        if !pending.isEmpty {
            let take = min(8 - pending.count, view.count)
            pending += view.prefix(take)
            view = view.dropFirst(take)
            if pending.count == 8 {
                let word = pending.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                mix(word)
                pending.removeAll(keepingCapacity: true)
            }
        }
        let base = UnsafeRawBufferPointer(rebasing: view)
        let words = base.count / 8
        for w in 0..<words { mix(base.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self)) }
        pending += base[(words * 8)...]
        count += bytes.count
    }

    private mutating func mix(_ word: UInt64) {
        value = (value ^ word) &* 0x100_0000_01b3
    }

    var final: UInt64 {
        var v = value
        for b in pending { v = (v ^ UInt64(b)) &* 0x100_0000_01b3 }
        return v ^ UInt64(count)
    }

    static func == (a: Checksum, b: Checksum) -> Bool { a.final == b.final }
}

/// Where `swift build` put the `sluice` executable: next to the test bundle.
func sluiceExecutable() -> String {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    if dir.lastPathComponent == "Linux" || dir.path.contains(".xctest") {
        dir = dir.deletingLastPathComponent()
    }
    while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("sluice").path) && dir.path != "/" {
        dir = dir.deletingLastPathComponent()
    }
    return dir.appendingPathComponent("sluice").path
}

/// A minimal, well-formed TLS 1.2 ClientHello carrying `serverName` (SNI), for routing tests that
/// need names no captured hello has.
func clientHello(serverName: String) -> [UInt8] {
    func u16(_ v: Int) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    let name = Array(serverName.utf8)
    let entry = [UInt8(0)] + u16(name.count) + name
    let sni = u16(0) + u16(entry.count + 2) + u16(entry.count) + entry
    var body: [UInt8] = [0x03, 0x03] + [UInt8](repeating: 7, count: 32) + [0]  // version, random, no session id
    body += u16(2) + [0x13, 0x01] + [1, 0]  // one cipher suite, null compression
    body += u16(sni.count) + sni
    let handshake = [UInt8(1), 0] + u16(body.count) + body
    return [0x16, 0x03, 0x01] + u16(handshake.count) + handshake
}
