import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Programs run with `posix_spawn`, not Foundation's `Process`: a `Process` passes on the test
/// runner's blocked signals (a daemon would never see its SIGHUP or SIGTERM), and on Linux a
/// long-running one keeps Foundation from noticing that the test's other children exit.
enum Spawn {
    /// Starts `path` with no signal blocked or ignored, standard output and error appended to
    /// `output` (or discarded), standard input from /dev/null. The caller reaps it (`stop`, `wait`).
    static func start(_ path: String, _ arguments: [String], output: String? = nil) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, path, &actions, &attributes, argv, environ)
        guard rc == 0 else { throw Net.Failure("posix_spawn \(path): \(String(cString: strerror(rc)))") }
        return child
    }

    /// Runs `path` to its exit and returns its exit status (128 + n when killed by signal n).
    @discardableResult
    static func run(_ path: String, _ arguments: [String], output: String? = nil) throws -> Int32 {
        wait(try start(path, arguments, output: output))
    }

    /// Runs `path` to its exit and returns what it wrote; throws unless it exits with 0.
    static func output(_ path: String, _ arguments: [String]) throws -> String {
        let file = TestFiles.folder.appendingPathComponent("sluice-spawn-\(UUID().uuidString.prefix(8))").path
        defer { unlink(file) }
        let status = try run(path, arguments, output: file)
        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        guard status == 0 else { throw Net.Failure("\(([path] + arguments).joined(separator: " ")): exit status \(status): \(text)") }
        return text
    }

    /// Waits for `pid` to exit and reaps it.
    @discardableResult
    static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status & 0x7F != 0 ? 128 + (status & 0x7F) : (status >> 8) & 0xFF
    }

    /// Sends `signal`, waits up to `deadline` for the exit, then kills; reaps it either way.
    static func stop(_ pid: pid_t, signal: Int32 = SIGTERM, deadline: Duration = .seconds(5)) {
        kill(pid, signal)
        let clock = ContinuousClock()
        let end = clock.now + deadline
        var status: Int32 = 0
        while clock.now < end {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno == ECHILD) { return }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        wait(pid)
    }
}
