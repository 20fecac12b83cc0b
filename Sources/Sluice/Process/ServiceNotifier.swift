#if canImport(Glibc)
import Glibc
#endif
import CShims

/// systemd's notification protocol (`sd_notify(3)`, `Type=notify` units): newline-separated
/// `KEY=value` assignments in one datagram to the UNIX socket named by `$NOTIFY_SOCKET` (a path, or
/// `@name` for the abstract namespace). The socket is connected when the notifier is made, so it
/// keeps working after `chroot`.
public final class ServiceNotifier: Sendable {
    private let fd: CInt

    /// Nil when `$NOTIFY_SOCKET` is unset (not started by systemd as `Type=notify`), or when the
    /// socket cannot be reached; `problem` then says why (nil when simply unset).
    public static func fromEnvironment() -> (notifier: ServiceNotifier?, problem: String?) {
        guard let raw = getenv("NOTIFY_SOCKET") else { return (nil, nil) }
        let path = String(cString: raw)
        do {
            return (try ServiceNotifier(socketPath: path), nil)
        } catch {
            return (nil, "NOTIFY_SOCKET=\(path): \(error); systemd will not hear from Sluice")
        }
    }

    /// Connects a datagram socket to `socketPath` (`@name`: abstract namespace).
    public init(socketPath: String) throws(SystemError) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(socketPath.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity, bytes.first == UInt8(ascii: "/") || abstract else {
            throw SystemError(code: EINVAL, call: "NOTIFY_SOCKET", operand: socketPath)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(code: errno, call: "socket") }
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
        guard rc == 0 else {
            let code = errno
            close(fd)
            throw SystemError(code: code, call: "connect", operand: socketPath)
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Sends one notification; failures are ignored, as `sd_notify` callers do.
    public func send(_ assignments: [String]) {
        let text = assignments.joined(separator: "\n") + "\n"
        _ = text.utf8CString.withUnsafeBufferPointer { Glibc.send(fd, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) }
    }

    /// Listening and serving: `READY=1`, the main process id (which differs from the one systemd
    /// started after `daemon`), and a status line.
    public func ready(status: String) {
        send(["READY=1", "MAINPID=\(getpid())", "STATUS=\(status)"])
    }

    /// A reload begins: `RELOADING=1` with `CLOCK_MONOTONIC` in microseconds, as `Type=notify-reload`
    /// units require; `ready(status:)` ends it.
    public func reloading() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        send(["RELOADING=1", "MONOTONIC_USEC=\(Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000)", "STATUS=reloading the configuration"])
    }

    /// A stop begins.
    public func stopping(status: String) {
        send(["STOPPING=1", "STATUS=\(status)"])
    }
}
