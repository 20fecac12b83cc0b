import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A running balancer: listeners, reactors and shared server state built from a `Configuration`.
///
/// Typical use from an embedding program:
///
/// ```swift
/// let config = try Configuration.parse("""
///     frontend web
///       bind 127.0.0.1:8080
///       default_backend app
///     backend app
///       server a 127.0.0.1:9001
///       server b 127.0.0.1:9002
///     """).configuration
/// let balancer = try LoadBalancer(configuration: config)
/// try balancer.start()
/// // … later
/// balancer.stop()
/// balancer.wait()
/// ```
///
/// - Important: `start()` ignores `SIGPIPE` process-wide: `splice(2)` to a socket whose peer has gone
///   raises it, and a proxy must survive that.
public final class LoadBalancer: Sendable {
    public let configuration: Configuration
    private let logger: Logger
    private let process: ProcessState
    private let frontendStates: [FrontendState]
    private let backendStates: [BackendState]
    private let state = Mutex<RunState>(RunState())

    private struct RunState {
        var workers: [Worker] = []
        var threads: [OSThread] = []
        var addresses: [String: [SocketAddress]] = [:]
        var started = false
    }

    /// Builds the balancer's state; resolves server addresses (which may block on DNS).
    ///
    /// - Throws: `SluiceError` when a server address cannot be resolved.
    public init(configuration: Configuration, logger: Logger = Logger(label: "sluice")) throws(SluiceError) {
        self.configuration = configuration
        self.logger = logger
        self.process = ProcessState(configuration.global)
        var backends: [BackendState] = []
        for backend in configuration.backends {
            var servers: [ServerState] = []
            for (index, server) in backend.servers.enumerated() {
                let address: SocketAddress
                do {
                    address = try SocketAddress.resolve(host: server.endpoint.host ?? "0.0.0.0", port: server.endpoint.port)
                } catch {
                    throw SluiceError("backend '\(backend.name)' server '\(server.name)': cannot resolve \(server.endpoint): \(error)")
                }
                let plan = try server.check.map { check throws(SluiceError) in
                    try CheckPlan(server: server, check: check, serverAddress: address, backend: backend)
                }
                servers.append(ServerState(name: server.name, index: index, address: address, weight: server.weight,
                                           isBackup: server.isBackup, admin: server.isDisabled ? .maintenance : .ready,
                                           configuration: server, checkPlan: plan))
            }
            backends.append(BackendState(name: backend.name, servers: servers, settings: BackendSettings(backend)))
        }
        self.backendStates = backends
        var frontends: [FrontendState] = []
        for frontend in configuration.frontends {
            guard let backend = backends.first(where: { $0.name == frontend.defaultBackend }) else {
                throw SluiceError("frontend '\(frontend.name)': no backend named '\(frontend.defaultBackend)'")
            }
            frontends.append(FrontendState(frontend, backend: backend))
        }
        self.frontendStates = frontends
    }

    /// Opens every listener and starts one reactor thread per `nbthread`.
    ///
    /// Listening sockets are bound before any thread starts, so an address in use is reported here
    /// and nothing is left half-started.
    /// - Throws: `SluiceError` naming the frontend and address when a bind fails.
    public func start() throws(SluiceError) {
        signal(SIGPIPE, SIG_IGN)
        let threads = max(1, configuration.global.threads)
        // listenersByWorker[w] = [(fd, frontend index)]
        var listenersByWorker = [[(fd: CInt, frontend: Int)]](repeating: [], count: threads)
        var addresses: [String: [SocketAddress]] = [:]
        var opened: [CInt] = []
        func closeOpened() { for fd in opened { closeDescriptor(fd) } }
        for (f, frontend) in configuration.frontends.enumerated() {
            for bind in frontend.binds {
                var address: SocketAddress
                do {
                    address = try SocketAddress.resolve(host: bind.endpoint.host ?? "0.0.0.0", port: bind.endpoint.port)
                } catch {
                    closeOpened()
                    throw SluiceError("frontend '\(frontend.name)': cannot resolve bind address \(bind.endpoint): \(error)")
                }
                let backlog = bind.backlog ?? max(1024, min(frontend.maxConnections ?? 1024, 65535))
                for w in 0..<threads {
                    do {
                        let fd = try Socket.listen(on: address, backlog: backlog, reusePort: true).release()
                        opened.append(fd)
                        if address.port == 0 {
                            // Port 0: the kernel picked one; the other reactors join it.
                            address = try Socket.localAddress(fd)
                        }
                        listenersByWorker[w].append((fd, f))
                    } catch {
                        closeOpened()
                        throw SluiceError("frontend '\(frontend.name)': cannot listen on \(bind.endpoint): \(error)")
                    }
                }
                addresses[frontend.name, default: []].append(address)
                logger.info("frontend '\(frontend.name)' listening on \(address) (\(threads) thread\(threads == 1 ? "" : "s"))")
            }
        }
        var workers: [Worker] = []
        do {
            for w in 0..<threads {
                workers.append(try Worker(id: w, process: process, frontends: frontendStates, listeners: listenersByWorker[w], logger: logger))
            }
        } catch {
            closeOpened()
            throw SluiceError("cannot start reactor: \(error)")
        }
        // Health checks run on the first reactor; the others reach it with commands.
        let checkWorker = workers[0]
        let everyone = workers
        do {
            let runner = try CheckRunner(
                backends: Array(zip(backendStates, configuration.backends)), reactor: checkWorker.reactor,
                spreadChecks: configuration.global.spreadChecks, logger: logger,
                broadcast: { command in for w in everyone { w.post(command) } })
            if !runner.isEmpty { checkWorker.checks = runner }
        } catch {
            closeOpened()
            throw error
        }
        for worker in workers { worker.toCheckWorker = { checkWorker.post($0) } }
        var started: [OSThread] = []
        for worker in workers {
            do {
                started.append(try OSThread.spawn { worker.run() })
            } catch {
                for w in workers { w.post(.stopNow) }
                for t in started { t.join() }
                throw SluiceError("cannot start reactor thread: \(error)")
            }
        }
        state.withLock {
            $0.workers = workers
            $0.threads = started
            $0.addresses = addresses
            $0.started = true
        }
    }

    /// The addresses a frontend listens on (with the kernel's port where the configuration said 0).
    public func listeningAddresses(of frontend: String) -> [SocketAddress] {
        state.withLock { $0.addresses[frontend] ?? [] }
    }

    /// Stops the balancer.
    ///
    /// - Parameter graceful: true (the default) stops accepting and lets sessions finish, bounded by
    ///   `hard-stop-after`; false closes every session at once.
    public func stop(graceful: Bool = true) {
        let workers = state.withLock { $0.workers }
        let limit = configuration.global.hardStopAfter?.milliseconds
        for worker in workers { worker.post(graceful ? .stopGracefully(hardStopAfterMs: limit) : .stopNow) }
    }

    /// Blocks until every reactor thread has exited (after `stop`).
    public func wait() {
        let threads = state.withLock { $0.threads }
        for thread in threads { thread.join() }
    }

    /// The live state of a backend, to read counters or drive server states.
    public func backend(named name: String) -> BackendState? { backendStates.first { $0.name == name } }

    /// Sessions open now, across every frontend.
    public var currentSessions: Int { process.currentConnections.load(ordering: .relaxed) }

    /// Times accept or connect found no descriptor left since start.
    public var descriptorExhaustions: Int { process.descriptorExhaustions.load(ordering: .relaxed) }
}

/// An error from the balancer's public API, with a sentence naming what failed.
public struct SluiceError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
