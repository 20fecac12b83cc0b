#if canImport(Glibc)
import Glibc
#endif

/// HAProxy's `daemon`: the process forks, the child runs the balancer in a new session, and the
/// parent exits only once the child says how its start went: 0 when every listener and stats socket
/// is open, non-zero with the child's error otherwise. A service manager of `Type=forking`, or a
/// shell script, thus learns of a failed start from the exit status, as with HAProxy.
///
/// - Important: fork before any thread starts (before `LoadBalancer.start()`): only the forking
///   thread survives in the child.
public struct Daemon: ~Copyable {
    /// The child's end of the readiness pipe.
    private let report: CInt

    /// Forks. Returns in the child only; the parent waits for the child's report and exits.
    ///
    /// The child closes every descriptor it inherited except standard input, output and error and
    /// `keeping` (daemon(7)): a launcher that watches an inherited descriptor to learn when the
    /// process it started has exited (Foundation's `Process` does) must not be held by the daemon.
    /// - Throws: `SluiceError` when the pipe or the fork fails (still in the only process).
    public static func detach(keeping: Set<CInt> = []) throws(SluiceError) -> Daemon {
        var fds: [CInt] = [-1, -1]
        guard pipe(&fds) == 0 else { throw SluiceError("daemon: pipe: \(String(cString: strerror(errno)))") }
        let pid = fork()
        if pid < 0 {
            let code = errno
            close(fds[0]); close(fds[1])
            throw SluiceError("daemon: fork: \(String(cString: strerror(code)))")
        }
        if pid > 0 {
            close(fds[1])
            waitForReport(from: fds[0], child: pid)
        }
        close(fds[0])
        setsid()  // no controlling terminal: a hang-up of the starting shell does not reach it
        closeInherited(keeping: keeping.union([fds[1]]))
        return Daemon(report: fds[1])
    }

    private static func closeInherited(keeping: Set<CInt>) {
        guard let dir = opendir("/proc/self/fd") else { return }
        let own = dirfd(dir)
        var open: [CInt] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let fd = CInt(name), fd > 2, fd != own, !keeping.contains(fd) { open.append(fd) }
        }
        closedir(dir)
        for fd in open { close(fd) }
    }

    private init(report: CInt) { self.report = report }

    /// The parent: relays the child's report and exits with its verdict.
    private static func waitForReport(from fd: CInt, child: pid_t) -> Never {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        if text == "ready\n" { exit(0) }
        // The child failed before it was ready (or died): reap it and say why.
        var status: CInt = 0
        _ = waitpid(child, &status, 0)
        let message = text.isEmpty ? "the background process exited before it was ready\n" : text
        message.withCString { _ = write(2, $0, strlen($0)) }
        exit(1)
    }

    /// The child is serving: the parent exits 0. Standard input and output become /dev/null, and
    /// so does standard error unless it is a regular file (`sluice -D … 2>>sluice.log` keeps its
    /// log), so that a caller reading the parent's pipes is not held open by the daemon.
    public consuming func ready() {
        send("ready\n")
        let null = open("/dev/null", O_RDWR)
        guard null >= 0 else { return }
        var info = stat()
        let keepStderr = fstat(2, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
        dup2(null, 0)
        dup2(null, 1)
        if !keepStderr { dup2(null, 2) }
        if null > 2 { close(null) }
    }

    /// The child could not start: the parent prints `message` and exits 1.
    public consuming func failed(_ message: String) {
        send(message.hasSuffix("\n") ? message : message + "\n")
    }

    private func send(_ text: String) {
        var text = text
        text.withUTF8 { _ = write(report, $0.baseAddress, $0.count) }
    }

    deinit { close(report) }
}
