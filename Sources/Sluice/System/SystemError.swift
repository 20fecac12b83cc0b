#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: the errno it set, the call's name and, where there is one, what it acted on.
///
/// Raw `CInt` errnos never leave `System/`; everything above it sees this type.
public struct SystemError: Error, Hashable, CustomStringConvertible, Sendable {
    /// The C `errno` value.
    public let code: CInt
    /// The system call that failed, e.g. `"connect"`.
    public let call: String
    /// What the call acted on (an address, a path), when known.
    public let operand: String?

    /// A failure of `call` with `errno` `code`, on `operand` when there is one.
    public init(code: CInt, call: String, operand: String? = nil) {
        self.code = code
        self.call = call
        self.operand = operand
    }

    /// The same error, naming what the call acted on.
    func on(_ operand: String) -> SystemError { SystemError(code: code, call: call, operand: operand) }

    /// `strerror`'s sentence for the code, e.g. "Connection refused".
    public var reason: String { String(cString: strerror(code)) }

    /// The errno's symbolic name, e.g. `ECONNREFUSED`, for the codes a proxy meets.
    public var name: String { Self.names[code] ?? "errno \(code)" }

    /// `call(operand): strerror(code)`.
    public var description: String {
        let what = operand.map { " \($0)" } ?? ""
        return "\(call)\(what): \(reason) (\(name))"
    }

    /// Errors that can only come from a bug in Sluice, never from the world: trap on them.
    var isProgrammerError: Bool { code == EBADF || code == EFAULT || code == EINVAL && call == "epoll_ctl" }

    /// The process or system ran out of descriptors.
    public var isDescriptorExhaustion: Bool { code == EMFILE || code == ENFILE }

    private static let names: [CInt: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", EINTR: "EINTR", EBADF: "EBADF", EAGAIN: "EAGAIN",
        ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT", EINVAL: "EINVAL", ENFILE: "ENFILE",
        EMFILE: "EMFILE", EPIPE: "EPIPE", EADDRINUSE: "EADDRINUSE", EADDRNOTAVAIL: "EADDRNOTAVAIL",
        ENETUNREACH: "ENETUNREACH", ECONNABORTED: "ECONNABORTED", ECONNRESET: "ECONNRESET",
        ENOBUFS: "ENOBUFS", ENOTCONN: "ENOTCONN", ETIMEDOUT: "ETIMEDOUT", ECONNREFUSED: "ECONNREFUSED",
        EHOSTUNREACH: "EHOSTUNREACH", EINPROGRESS: "EINPROGRESS", EAFNOSUPPORT: "EAFNOSUPPORT",
        ENOSPC: "ENOSPC", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR",
    ]
}

/// The outcome of a non-blocking call: done, or it would have blocked.
@frozen
public enum IOResult<T: Sendable>: Sendable {
    /// The call did its work and returned this.
    case processed(T)
    /// The call would have waited (`EAGAIN`): try again when the descriptor is ready.
    case wouldBlock
}

/// The one place that calls into the kernel: retries `EINTR`, returns `EAGAIN` as a value,
/// traps on errors that only a bug can cause, and throws the rest.
///
/// - Important: never use it for `close(2)`; an `EINTR` there must not be retried
///   (https://lwn.net/Articles/576478/).
@inline(__always)
func syscall<T: FixedWidthInteger & Sendable>(
    _ call: StaticString, _ body: () -> T
) throws(SystemError) -> IOResult<T> {
    while true {
        let r = body()
        if r >= 0 { return .processed(r) }
        let err = errno
        if err == EINTR { continue }
        if err == EAGAIN || err == EWOULDBLOCK { return .wouldBlock }
        let error = SystemError(code: err, call: "\(call)")
        precondition(!error.isProgrammerError, "\(error)")
        throw error
    }
}

/// As `syscall`, for calls that never return `EAGAIN` (or where it is an error).
@inline(__always)
func syscallBlocking<T: FixedWidthInteger & Sendable>(
    _ call: StaticString, _ body: () -> T
) throws(SystemError) -> T {
    switch try syscall(call, body) {
    case .processed(let r): return r
    case .wouldBlock: throw SystemError(code: EAGAIN, call: "\(call)")
    }
}

/// Closes a raw descriptor owned by the caller. `EINTR` is not retried: on Linux the descriptor
/// is released whatever close returns.
@inline(__always)
func closeDescriptor(_ fd: CInt) {
    precondition(fd >= 0, "closing invalid descriptor \(fd)")
    let r = close(fd)
    precondition(r == 0 || errno != EBADF, "close(\(fd)): EBADF, the descriptor was already closed")
}
