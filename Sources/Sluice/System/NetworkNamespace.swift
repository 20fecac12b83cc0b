import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Network namespaces (`namespace <name>` on a server), as HAProxy's `my_socketat`: the calling
/// thread enters the namespace, creates the socket, and goes back to the process's own; the socket
/// stays in the namespace it was made in. Each namespace (`/var/run/netns/<name>`, where
/// `ip netns add` puts it) and the process's own are opened once and kept open, so a namespace
/// named at start still works after `chroot`. Entering one needs CAP_SYS_ADMIN, as in HAProxy.
enum NetworkNamespace {
    private static let opened = Mutex<[String: CInt]>([:])
    /// The process's own namespace, opened with the first named one.
    private static let home = Mutex<CInt>(-1)

    /// The open namespace `name`; HAProxy's words when it cannot be opened.
    static func descriptor(_ name: String) throws(SluiceError) -> CInt {
        let result: Result<CInt, SluiceError> = opened.withLock { table in
            if let fd = table[name] { return .success(fd) }
            let own = home.withLock { fd in
                if fd < 0 { fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC) }
                return fd
            }
            guard own >= 0 else { return .failure(SluiceError("Failed to open the default namespace (\(String(cString: strerror(errno))))")) }
            let fd = open("/var/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return .failure(SluiceError("Cannot open namespace '\(name)' (/var/run/netns/\(name): \(String(cString: strerror(errno))))")) }
            table[name] = fd
            return .success(fd)
        }
        return try result.get()
    }

    /// Runs `make` (which creates a socket) inside namespace `fd`, then returns the thread to the
    /// process's own namespace.
    static func within<T>(_ fd: CInt, _ make: () throws(SystemError) -> T) throws(SystemError) -> T {
        guard CShims_setns_net(fd) == 0 else { throw SystemError(code: errno, call: "setns") }
        defer {
            let own = home.withLock { $0 }
            if CShims_setns_net(own) != 0 {
                // A thread left in another namespace would make every later socket there.
                preconditionFailure("cannot return to the process's network namespace: \(String(cString: strerror(errno)))")
            }
        }
        return try make()
    }
}
