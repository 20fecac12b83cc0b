import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The programs of `option external-check`, as HAProxy 2.6's `extcheck.c` runs them: started with
/// `posix_spawn` (no fork of the balancer's memory) with HAProxy's arguments and only its
/// environment, watched through a pidfd on the check runner's reactor, and judged by the exit
/// status (0 passes: PROCOK; another, or a signal, fails: PROCERR with the status as its code). One
/// not done by the check's deadline gets SIGTERM (PROCTOUT), and is reaped later.
enum ExternalCheckProcess {
    /// Children whose check was over before they exited (a timeout, a reload): reaped before the
    /// next start, so none stays a zombie. Shared by every check runner.
    private static let orphans = Mutex<[CInt]>([])

    /// Starts the program for `server`'s check; returns its pidfd. Throws the `posix_spawn` error.
    static func spawn(_ check: ExternalCheck, server: ServerState, backend: BackendState) throws(SystemError) -> CInt {
        reapOrphans()
        let address: String, port: String
        if let (path, abstract) = server.address.unixPath {
            (address, port) = (abstract ? "" : path, "NOT_USED")  // HAProxy copies sun_path, whose first byte is 0 for abns@
        } else {
            (address, port) = (server.address.ip, "\(server.address.port)")
        }
        let arguments = [check.command, check.proxyAddress, check.proxyPort, address, port]
        // HAProxy's variables, in its order, and nothing else.
        let environment = [
            ("PATH", check.path ?? ""),
            ("HAPROXY_PROXY_NAME", backend.name), ("HAPROXY_PROXY_ID", "\(backend.id)"),
            ("HAPROXY_PROXY_ADDR", check.proxyAddress), ("HAPROXY_PROXY_PORT", check.proxyPort),
            ("HAPROXY_SERVER_NAME", server.name), ("HAPROXY_SERVER_ID", "\(server.id)"),
            ("HAPROXY_SERVER_ADDR", address), ("HAPROXY_SERVER_PORT", port),
            ("HAPROXY_SERVER_MAXCONN", "\(server.maxConnections ?? 0)"),
            ("HAPROXY_SERVER_CURCONN", "\(server.currentSessions.load(ordering: .relaxed))"),
            ("HAPROXY_SERVER_SSL", "0"), ("HAPROXY_SERVER_PROTO", "tcp"),
        ].map { "\($0.0)=\($0.1)" }
        let program = executable(check.command, path: check.path ?? "")
        var pid: pid_t = 0
        let pidfd = withCStrings(arguments) { argv in
            withCStrings(environment) { envp in CShims_spawn(program, argv, envp, &pid) }
        }
        guard pidfd >= 0 else { throw SystemError(code: errno, call: "posix_spawn", operand: program) }
        return pidfd
    }

    /// The command as `execvp` finds it in `path` (HAProxy's child runs `execvp` with the check's
    /// PATH): itself when it has a `/`, else the first executable of that name in `path`'s folders.
    static func executable(_ command: String, path: String) -> String {
        guard !command.contains("/") else { return command }
        for folder in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (folder.isEmpty ? "." : String(folder)) + "/" + command
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return command
    }

    /// The verdict of a program that has exited, or nil while it runs.
    static func verdict(_ pidfd: CInt) -> CheckResult? {
        var code: CInt = 0
        guard CShims_reap(pidfd, &code) == 1 else { return nil }
        return code == 0 ? CheckResult(status: .processOK, code: 0) : CheckResult(status: .processError, code: Int(code))
    }

    /// The program could not start: an exec failure is the program's failure (HAProxy's child
    /// exits with 255 when `execvp` fails); anything else is the balancer's (SOCKERR, as a failed
    /// fork in HAProxy).
    static func startFailure(_ error: SystemError) -> CheckResult {
        let exec: Set<CInt> = [ENOENT, EACCES, ENOEXEC, ENOTDIR, ELOOP, ETXTBSY, E2BIG, ENAMETOOLONG]
        return exec.contains(error.code) ? CheckResult(status: .processError, code: 255) : CheckResult(status: .socketError, info: error.reason)
    }

    /// Done with a probe's pidfd: closed once its child is reaped, else the child is sent SIGTERM
    /// and kept to be reaped later.
    static func release(_ pidfd: CInt) {
        var code: CInt = 0
        if CShims_reap(pidfd, &code) != 0 {
            closeDescriptor(pidfd)
        } else {
            _ = CShims_pidfd_signal(pidfd, SIGTERM)
            orphans.withLock { $0.append(pidfd) }
        }
    }

    private static func reapOrphans() {
        orphans.withLock { list in
            list.removeAll { pidfd in
                var code: CInt = 0
                guard CShims_reap(pidfd, &code) != 0 else { return false }
                closeDescriptor(pidfd)
                return true
            }
        }
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        let copies = strings.map { strdup($0) } + [nil]
        defer { for copy in copies { free(copy) } }
        return copies.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

extension CheckRunner {
    /// Starts target `t`'s external check; the program's pidfd stands for the probe's socket
    /// (readable once it has exited), under the deadline `begin` set.
    func startProcess(_ t: Int, _ check: ExternalCheck) {
        do {
            targets[t].fd = try ExternalCheckProcess.spawn(check, server: targets[t].server, backend: targets[t].backend)
            try reactor.register(targets[t].fd, token: token(t), events: CShims_EPOLLIN)
        } catch {
            return finish(t, ExternalCheckProcess.startFailure(error))
        }
        reactor.arm(at: targets[t].deadline, token: token(t))
    }

    /// Target `t`'s program may have exited.
    func processExited(_ t: Int) {
        guard let result = ExternalCheckProcess.verdict(targets[t].fd) else { return }
        finish(t, result)
    }

    /// Target `t`'s program is still running at the deadline: PROCTOUT, with the code of the last
    /// program that exited (HAProxy keeps it), and SIGTERM for this one.
    func processTimedOut(_ t: Int) {
        finish(t, CheckResult(status: .processTimeout, code: targets[t].server.lastCheck.code ?? 0))
    }
}
