import ArgumentParser
import Logging
import Sluice
#if canImport(Glibc)
import Glibc
#endif

let sluiceVersion = LoadBalancer.version

@main
struct SluiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "A Layer-4 TCP load balancer that reads HAProxy's tcp-mode configuration.",
        discussion: """
            Runs in the foreground (unless -D or 'daemon') and logs to standard error. SIGHUP or \
            SIGUSR2 reloads the -f files in-process, dropping nothing (a file with errors is refused \
            and the running configuration stays). SIGINT, SIGTERM and SIGUSR1 stop accepting and let \
            sessions finish (bounded by hard-stop-after); a second SIGINT or SIGTERM closes \
            everything at once. Under systemd (NOTIFY_SOCKET set, Type=notify) it reports READY, \
            RELOADING and STOPPING. The README documents every configuration keyword and runtime \
            API command.
            """,
        subcommands: [Demo.self, DemoBackend.self, RuntimeClient.self, Top.self]
    )

    @Option(name: .customShort("f"), help: ArgumentHelp("Configuration file or directory of *.cfg files; repeat to concatenate, as HAProxy.", valueName: "file"))
    var files: [String] = []

    @Flag(name: .customShort("c"), help: "Check the configuration and exit: 0 when valid, 1 otherwise.")
    var checkOnly = false

    @Flag(name: [.customShort("v"), .customLong("version")], help: "Print the version and exit.")
    var version = false

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Flag(name: .customShort("q"), help: "Quiet: log warnings and errors only.")
    var quiet = false

    @Flag(name: .customShort("D"), help: "Run in the background once listening, as 'daemon' in global.")
    var daemonFlag = false

    @Flag(name: .customLong("db", withSingleDash: true), help: "Stay in the foreground even if the configuration says 'daemon'.")
    var foreground = false

    @Flag(name: .customLong("dr", withSingleDash: true), help: "A server whose name does not resolve at start waits in maintenance for an address instead of failing the start (HAProxy's -dr).")
    var toleratesUnresolvedServers = false

    @Option(name: .customShort("p"), help: ArgumentHelp("Write the pid to this file, as 'pidfile' in global.", valueName: "pidfile"))
    var pidFilePath: String?

    /// The command line is the host program: it ignores SIGPIPE process-wide (its demo servers
    /// write to clients that may be gone). The library only blocks it on its own threads.
    static func main() {
        signal(SIGPIPE, SIG_IGN)
        main(nil)
    }

    func run() throws {
        if version {
            print("Sluice version \(sluiceVersion)")
            return
        }
        guard !files.isEmpty else {
            throw ValidationError("no configuration: give one with -f <file>")
        }
        let level = quiet ? .warning : (Logger.Level(rawValue: logLevel) ?? .info)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "sluice")

        let parsed: ParsedConfiguration
        let sources: ConfigurationFiles
        do {
            sources = try ConfigurationFiles(paths: files)
            parsed = try sources.load()
        } catch {
            for diagnostic in error.diagnostics { printError(diagnostic.description) }
            printError("\(error.errors.count) error\(error.errors.count == 1 ? "" : "s") in the configuration")
            throw ExitCode(1)
        }
        for warning in parsed.warnings { printError(warning.description) }
        var configuration = parsed.configuration
        configuration.global.toleratesUnresolvedServers = toleratesUnresolvedServers

        let balancer: LoadBalancer
        do {
            balancer = try LoadBalancer(configuration: configuration, logger: logger)
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        if checkOnly {
            print("Configuration file is valid")
            return
        }
        let global = configuration.global
        if let shortfall = DescriptorLimit.apply(wanted: global.fileLimit, ceiling: global.descriptorCeiling) {
            // HAProxy 2.6 refuses to start there unless `no strict-limits` says otherwise.
            guard !global.strictLimits else {
                printError("error: \(shortfall) ('no strict-limits' in global starts anyway, as HAProxy)")
                throw ExitCode(1)
            }
            logger.warning("\(shortfall)")
        }
        // Fork before any thread exists: the child alone starts reactors.
        var daemon: Daemon? = (daemonFlag || global.daemon) && !foreground ? try Daemon.detach(keeping: sources.descriptors) : nil
        func fail(_ message: String) -> ExitCode {
            if let d = daemon.take() { d.failed("error: \(message)") } else { printError("error: \(message)") }
            return ExitCode(1)
        }

        // Signals go to this thread, which waits for them; block them before reactors start so that
        // every thread inherits the mask. SIGALRM is ours: the thread that waits for the reactors to
        // end raises it, so that this loop still hears a second stop signal meanwhile. SIGUSR2
        // reloads, as it does HAProxy's master process (systemd units send it).
        var signals = sigset_t()
        sigemptyset(&signals)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM] { sigaddset(&signals, s) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let paths = files
        let tolerant = toleratesUnresolvedServers
        balancer.setReloadSource { () throws(ConfigurationError) -> Configuration in
            // Through the directories opened at start: this works after chroot too.
            let parsed = try sources.load()
            for warning in parsed.warnings { logger.warning("\(warning)") }
            var configuration = parsed.configuration
            configuration.global.toleratesUnresolvedServers = tolerant
            return configuration
        }
        do {
            try balancer.start()
        } catch {
            throw fail("\(error)")
        }
        // systemd's `Type=notify`: the socket is connected now, before chroot hides its path.
        let (notifier, notifyProblem) = ServiceNotifier.fromEnvironment()
        if let notifyProblem { logger.warning("\(notifyProblem)") }
        var pidFile: PidFile?
        do {
            if let path = pidFilePath ?? global.pidFile { pidFile = try PidFile(path: path) }
            // Listeners and stats sockets are open: now give up what opened them.
            try Privileges.drop(chroot: global.chroot, userID: global.userID, groupID: global.groupID)
        } catch {
            balancer.stop(graceful: false)
            balancer.wait()
            _ = pidFile.take()?.remove()
            throw fail("\(error)")
        }
        logger.notice("Sluice \(sluiceVersion) started (pid \(getpid())\(global.daemon || daemonFlag ? ", in the background" : ""))")
        daemon.take()?.ready()
        func status() -> String { "serving: \(balancer.currentSessions) session(s), \(balancer.backends.count) backend(s)" }
        notifier?.ready(status: status())
        defer {
            if let problem = pidFile.take()?.remove() { logger.warning("\(problem)") }
        }

        var stopping = false
        var waiter: pthread_t?
        while true {
            var received: CInt = 0
            guard sigwait(&signals, &received) == 0 else { continue }
            switch received {
            case SIGHUP, SIGUSR2:
                let name = received == SIGHUP ? "SIGHUP" : "SIGUSR2"
                notifier?.reloading()
                defer { notifier?.ready(status: status()) }
                do {
                    let notices = try balancer.reloadFromSource()
                    logger.notice("\(name): configuration reloaded from \(paths.joined(separator: ", "))")
                    for notice in notices { logger.warning("\(notice)") }
                } catch {
                    logger.error("\(name): reload failed; the running configuration is unchanged:\n\(error)")
                }
            case SIGINT, SIGTERM, SIGUSR1:
                if !stopping {
                    stopping = true
                    logger.notice("stopping: no new connections; \(balancer.currentSessions) session(s) finishing")
                    notifier?.stopping(status: "stopping: \(balancer.currentSessions) session(s) finishing")
                    balancer.stop(graceful: true)
                    let pid = getpid()
                    waiter = spawnWaiter { balancer.wait(); kill(pid, SIGALRM) }
                } else if received != SIGUSR1 {
                    logger.notice("second stop signal: closing every session now")
                    balancer.stop(graceful: false)
                }
            case SIGALRM where stopping:
                // The waiter has signalled; joining it lets go of its hold on the balancer, which is
                // then freed before the process exits (a leak checker at exit sees nothing alive).
                if let waiter { pthread_join(waiter, nil) }
                logger.notice("stopped")
                return
            default:
                break
            }
        }
    }
}

/// Runs `body` on a thread of its own; join it once it is done.
private func spawnWaiter(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Box { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    let rc = pthread_create(&thread, nil, { arg in
        Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create: \(rc)")
    return thread
}

func printError(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
