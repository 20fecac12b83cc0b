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
/// `SIGPIPE`, which `splice(2)` to a socket whose peer has gone raises, is blocked on Sluice's own
/// threads only: the host program's disposition of it is left alone.
public final class LoadBalancer: Sendable {
    /// Sluice's version, as `sluice -v` and the runtime API's `show info` report it.
    public static let version = "0.1.0"

    private let logger: Logger
    private let process: ProcessState
    private let state: Mutex<RunState>
    /// Monotonic milliseconds at creation, for `show info`'s uptime.
    let startedAt = monotonicMilliseconds()

    private struct RunState {
        var configuration: Configuration
        /// Every frontend and backend by name, for the life of the balancer.
        var frontends: [String: FrontendState] = [:]
        var backends: [String: BackendState] = [:]
        /// A frontend without `default_backend` sends what no rule routes here: itself as a
        /// backend without servers (HAProxy's `s->be = fe`), by frontend name.
        var standIns: [String: BackendState] = [:]
        /// Stick tables by name; a reload keeps a table whose declaration did not change.
        var tables: [String: StickTable] = [:]
        /// `proc` variables: kept across reloads (HAProxy's new process starts without them).
        let variables = ProcessVariables()
        /// The frontends by name for rules that name one (`fe_conn(<frontend>)`).
        let directory = FrontendDirectory()
        /// Objects a reload removed: sessions may still point at them (unmanaged), so they stay alive.
        var retired: [AnyObject] = []
        var workers: [Worker] = []
        var threads: [OSThread] = []
        /// Bound addresses per frontend (with the kernel's port where the configuration said 0).
        var addresses: [String: [SocketAddress]] = [:]
        var started = false
        /// `stop` was called: `show info` says `Stopping: 1` (a keepalived check then gives the
        /// address up before the listeners are gone).
        var stopping = false
        var statsServer: StatsSocketServer?
        /// Saves the servers' states to the server-state files while running.
        var stateWriter: ServerStateWriter?
        /// Resolves server names with `resolvers` while running.
        var resolver: Resolver?
        /// Serves the `mode http` statistics proxies (page, CSV, Prometheus).
        var statsPages: StatsPageServer?
        var statsPageAddresses: [String: [SocketAddress]] = [:]
        /// Announces state changes to `events` subscribers.
        let events: EventHub
        /// Hands warm-ups that begin outside checks (leaving maintenance) to the check worker.
        let warmUps = WarmUpRelay()
        /// Carries `log` lines to their targets.
        let logs: LogSink
        /// Sends `email-alert` mails.
        let mailer: EmailAlerter
    }

    /// Builds the balancer's state; resolves server addresses (which may block on DNS).
    ///
    /// - Throws: `SluiceError` when a server or check address cannot be resolved.
    public init(configuration: Configuration, logger: Logger = Logger(label: "sluice")) throws(SluiceError) {
        self.logger = logger
        let hub = EventHub()
        self.hub = hub
        self.process = ProcessState(configuration.global)
        let logs = LogSink()
        self.logs = logs
        var run = RunState(configuration: configuration, events: hub, logs: logs, mailer: EmailAlerter(logger: logger))
        let plan = try Self.resolve(configuration, atStart: true)
        Self.apply(plan, to: &run)
        // Saved server states (`load-server-state-from-file`) apply before any traffic. Reloads keep
        // the running states in-process and read no file.
        startupNotices = plan.unresolved.map(\.warning) + ServerStateFile.apply(configuration, to: run.backends)
        for notice in startupNotices { logger.warning("\(notice)") }
        state = Mutex(run)
    }

    /// What the operator should know from the start, such as server-state lines that were skipped.
    public let startupNotices: [String]

    private let hub: EventHub
    /// The `log` lines' writer; its `dropped` counter is `show info` DroppedLogs.
    let logs: LogSink
    /// Email alerts whose SMTP exchange failed (each is logged with its reason).
    var emailAlertsFailed: Int { state.withLock { $0.mailer }.failed.load(ordering: .relaxed) }

    /// State changes as they happen: server health (with the check's verdict), admin state, weight
    /// and address, servers added and removed, reloads applied or refused. Each call is a new
    /// subscription. A subscriber that does not keep up keeps the newest `bufferingNewest` events;
    /// the older ones are dropped and counted in `droppedEvents` — no thread of the balancer ever
    /// waits for a subscriber. The sequence ends when the balancer has stopped (`wait()`).
    public func events(bufferingNewest limit: Int = 1024) -> AsyncStream<BalancerEvent> {
        hub.subscribe(bufferingNewest: limit)
    }

    /// Events subscribers' full buffers dropped so far.
    public var droppedEvents: Int { hub.dropped.load(ordering: .relaxed) }

    // MARK: Building and reloading state

    /// Everything a configuration needs that can fail, done before any shared state changes.
    private struct ResolvedPlan {
        struct ServerPlan {
            var server: Server
            var address: SocketAddress
            var check: CheckPlan?
            var agent: CheckPlan?
            /// `init-addr none` took effect: no address yet.
            var unresolved = false
        }
        var configuration: Configuration
        var servers: [String: [ServerPlan]] = [:]
        var binds: [String: [SocketAddress]] = [:]
        /// Servers left waiting for an address, with what to tell the operator.
        var unresolved: [(backend: String, server: String, warning: String)] = []
    }

    /// Resolves every address; every failure is reported, not only the first. `atStart`: the
    /// balancer is being built, so `init-addr`'s default `last` applies (a reload keeps running
    /// servers' addresses in-process; only an explicit `init-addr last` reads the file then).
    private static func resolve(_ configuration: Configuration, atStart: Bool = false) throws(SluiceError) -> ResolvedPlan {
        let configuration = configuration.numbered()
        var plan = ResolvedPlan(configuration: configuration)
        var problems: [String] = []
        // `init-addr last`: the addresses saved in the server-state files (read only if asked for).
        func methods(_ server: Server) -> [InitAddressMethod] {
            atStart || server.initAddress != nil ? server.initAddressMethods : server.initAddressMethods.filter { $0 != .last }
        }
        let needsSaved = configuration.backends.contains { $0.servers.contains { methods($0).contains(.last) } }
        let saved = needsSaved ? ServerStateFile.savedAddresses(configuration) : [:]
        for backend in configuration.backends {
            var servers: [ResolvedPlan.ServerPlan] = []
            for var server in backend.servers {
                if let name = server.namespace {
                    do {
                        server.namespaceDescriptor = try NetworkNamespace.descriptor(name)
                    } catch {
                        problems.append("backend '\(backend.name)' server '\(server.name)': \(error.message)")
                        continue
                    }
                }
                if let socks = server.socks4, let host = socks.host {
                    do {
                        server.socks4Address = try SocketAddress.resolve(host: host, port: socks.port)
                    } catch {
                        problems.append("backend '\(backend.name)' server '\(server.name)': cannot resolve its socks4 proxy \(socks): \(error)")
                        continue
                    }
                }
                var warning: String?
                guard let (address, unresolved) = serverAddress(server, methods: methods(server), backend: backend, saved: saved[backend.name]?[server.name],
                                                                tolerant: configuration.global.toleratesUnresolvedServers,
                                                                problems: &problems, warning: &warning) else { continue }
                if let warning { plan.unresolved.append((backend.name, server.name, warning)) }
                do {
                    let check = try server.check.map { check throws(SluiceError) in
                        try CheckPlan(server: server, check: check, serverAddress: address, backend: backend)
                    }
                    let agent = try server.agent.map { agent throws(SluiceError) in
                        try CheckPlan(agent: agent, server: server, serverAddress: address, backend: backend)
                    }
                    servers.append(.init(server: server, address: address, check: check, agent: agent, unresolved: unresolved))
                } catch {
                    problems.append(error.message)
                }
            }
            if case .failure(let error) = CheckProtocol.make(backend.healthCheck) {
                problems.append("backend '\(backend.name)': \(error.message)")
            }
            plan.servers[backend.name] = servers
        }
        for frontend in configuration.frontends {
            if let name = frontend.defaultBackend, configuration.backend(named: name) == nil {
                problems.append("frontend '\(frontend.name)': no backend named '\(name)'")
                continue
            }
            var binds: [SocketAddress] = []
            for bind in frontend.binds {
                // A namespace is opened with the configuration, so `-c` finds a missing one.
                if let name = bind.namespace {
                    do { _ = try NetworkNamespace.descriptor(name) } catch {
                        problems.append("frontend '\(frontend.name)': bind \(bind.endpoint): \(error.message)")
                    }
                }
                if let unix = bind.endpoint.unix {
                    guard let address = unix.address else { preconditionFailure("the parser let a UNIX socket name too long for sockaddr_un through: \(unix)") }
                    binds.append(address)
                    continue
                }
                do {
                    binds.append(try SocketAddress.resolve(host: bind.endpoint.host ?? (bind.v6Only == false ? "::" : "0.0.0.0"), port: bind.endpoint.port))
                } catch {
                    problems.append("frontend '\(frontend.name)': cannot resolve bind address \(bind.endpoint): \(error)")
                }
            }
            plan.binds[frontend.name] = binds
        }
        if !problems.isEmpty { throw SluiceError(problems.joined(separator: "\n")) }
        return plan
    }

    /// A server's address by its `init-addr` methods, in order, as HAProxy's `srv_iterate_initaddr`;
    /// `unresolved` when `none` was taken. Only a server named by a host name has methods: an IP
    /// address is used as written. A `none` taken after a failure sets `warning`, in HAProxy's words.
    private static func serverAddress(_ server: Server, methods: [InitAddressMethod], backend: Backend, saved: ServerStateFile.SavedAddress?, tolerant: Bool,
                                      problems: inout [String], warning: inout String?) -> (SocketAddress, unresolved: Bool)? {
        if let unix = server.endpoint.unix {
            guard let address = unix.address else { preconditionFailure("the parser let a UNIX socket name too long for sockaddr_un through: \(unix)") }
            return (address, false)
        }
        let host = server.endpoint.host ?? "0.0.0.0"
        if let literal = SocketAddress(ip: host, port: server.endpoint.port) { return (literal, false) }
        var failures: [String] = []
        // `-dr` adds `none` after whatever the server says, as HAProxy's GTUNE_RESOLVE_DONTFAIL.
        var methods = methods
        if tolerant && !methods.contains(.none) { methods.append(.none) }
        for method in methods {
            switch method {
            case .libc:
                do {
                    return (try SocketAddress.resolve(host: host, port: server.endpoint.port, preferIPv6: server.preferIPv6), false)
                } catch {
                    failures.append("\(error)")
                }
            case .last:
                // The saved address of this name (HAProxy applies any saved one; a file that names
                // another host for the server describes a server that is no longer configured).
                if let saved, saved.host == nil || saved.host == host, let address = SocketAddress(ip: saved.address, port: server.endpoint.port) {
                    return (address, false)
                }
                // Nothing saved: the next method, and nothing to report (HAProxy's `continue`).
            case .ip(let ip):
                if let address = SocketAddress(ip: ip, port: server.endpoint.port) { return (address, false) }
                failures.append("init-addr \(ip) is not an IP address")
            case .none:
                guard let placeholder = SocketAddress(ip: host.contains(":") ? "::" : "0.0.0.0", port: server.endpoint.port) else {
                    preconditionFailure("the unspecified address with port \(server.endpoint.port) did not parse")
                }
                if !failures.isEmpty {
                    warning = "backend '\(backend.name)' server '\(server.name)': could not resolve address '\(host)', disabling server (\(failures.joined(separator: "; ")))"
                }
                return (placeholder, true)
            }
        }
        // HAProxy's two alerts: every method failed, or none applied (`init-addr last` alone, with nothing saved).
        problems.append("backend '\(backend.name)' server '\(server.name)': "
                        + (failures.isEmpty ? "no method found to resolve address '\(host)' (init-addr \(initAddressText(methods)))"
                                            : "cannot resolve \(server.endpoint): \(failures.joined(separator: "; "))"))
        return nil
    }

    private static func initAddressText(_ methods: [InitAddressMethod]) -> String {
        methods.map { switch $0 { case .libc: "libc"; case .last: "last"; case .none: "none"; case .ip(let ip): ip } }.joined(separator: ",")
    }

    /// Creates or updates the shared state. A server that keeps its name keeps its state object
    /// (health, counters, sessions); its address, weight and policies follow the new configuration.
    private static func apply(_ plan: ResolvedPlan, to run: inout RunState) {
        let configuration = plan.configuration
        for backend in configuration.backends {
            var settings = BackendSettings(backend)
            settings.fullConnections = configuration.fullConnections(of: backend, unlimited: max(DescriptorLimit.current / 2, 1))
            let existing = run.backends[backend.name]
            var servers: [ServerState] = []
            for p in plan.servers[backend.name] ?? [] {
                // `init-addr none`: no address yet; maintenance until `set server addr` or an answer.
                // (Not recorded as `disabled`: HAProxy's state shows that flag for the keyword only.)
                let admin: AdminState = p.server.isDisabled || p.unresolved ? .maintenance : .ready
                if let old = existing?.server(named: p.server.name), old.isBackup == p.server.isBackup {
                    // A name the resolvers answered keeps that answer; the system resolver's may be older.
                    let keepsDNS = p.server.resolvers != nil && old.resolvedByDNS.load(ordering: .relaxed)
                    if !keepsDNS && old.address != p.address { old.setAddress(p.address) }
                    if p.server.resolvers == nil { old.resolvedByDNS.store(false, ordering: .relaxed) }
                    if old.configuredWeight != p.server.weight { old.weightStorage.store(p.server.weight, ordering: .relaxed) }
                    old.configurationStorage.withLock { $0 = p.server }
                    if let id = p.server.id { old.idStorage.store(id, ordering: .relaxed) }
                    old.maxConnectionsStorage.store(p.server.maxConnections ?? Int.max, ordering: .relaxed)
                    old.minConnectionsStorage.store(p.server.minConnections ?? 0, ordering: .relaxed)
                    old.maxQueueStorage.store(p.server.maxQueue ?? Int.max, ordering: .relaxed)
                    old.slowStartMs.store(p.server.slowStart?.milliseconds ?? 0, ordering: .relaxed)
                    old.checkPlanStorage.withLock { $0 = p.check }
                    old.agentPlanStorage.withLock { $0 = p.agent }
                    if p.agent == nil { old.agentHealth.store(1, ordering: .relaxed) }
                    if p.check == nil && old.operational != .running { existing?.setOperational(.running, of: old) }
                    servers.append(old)
                } else {
                    if let old = existing?.server(named: p.server.name) { run.retired.append(old) }
                    let state = ServerState(
                        name: p.server.name, ordinal: existing?.nextOrdinal() ?? servers.count, address: p.address,
                        weight: p.server.weight, isBackup: p.server.isBackup, admin: admin,
                        configuration: p.server, checkPlan: p.check, agentPlan: p.agent)
                    state.awaitingAddress.store(p.unresolved, ordering: .relaxed)
                    servers.append(state)
                }
            }
            if let existing {
                for old in existing.servers where !servers.contains(where: { $0 === old }) {
                    run.retired.append(old)  // its sessions finish; it takes no new ones
                }
                existing.replace(servers: servers, settings: settings)
            } else {
                run.backends[backend.name] = BackendState(name: backend.name, servers: servers, settings: settings, events: run.events, warmUps: run.warmUps)
            }
            if let id = backend.id { run.backends[backend.name]?.idStorage.store(id, ordering: .relaxed) }
            if let place = backend.declaration { run.backends[backend.name]?.declaration.store(place, ordering: .relaxed) }
        }
        let globalTag = configuration.global.logTag ?? "sluice"
        run.logs.setHostName(configuration.global.logHostname)
        for backend in configuration.backends {
            let route = run.logs.route(backend.logTargets, tag: backend.logTag ?? globalTag)
            run.backends[backend.name]?.log.withLock { $0 = route.map { ($0, run.logs.shared) } }
            run.backends[backend.name]?.email.withLock { $0 = backend.emailAlert.map { ($0, run.mailer) } }
        }
        // `track`: each followed server learns its followers, which start in its state.
        for backend in run.backends.values { for server in backend.servers { server.trackers.withLock { $0.removeAll() } } }
        for backend in configuration.backends {
            guard let state = run.backends[backend.name] else { continue }
            for server in backend.servers {
                guard let track = server.track, let follower = state.server(named: server.name),
                      let followed = run.backends[track.backend ?? backend.name]?.server(named: track.server) else { continue }
                followed.trackers.withLock { $0.append((state, follower)) }
                if follower.operational != followed.operational { state.setOperational(followed.operational, of: follower) }
            }
        }
        for (name, backend) in run.backends where configuration.backend(named: name) == nil {
            run.retired.append(backend)
            run.backends[name] = nil
        }
        var tables: [String: StickTable] = [:]
        for spec in configuration.stickTables {
            tables[spec.name] = run.tables[spec.name].flatMap { $0.spec == spec ? $0 : nil } ?? StickTable(spec)
        }
        run.tables = tables
        for backend in configuration.backends {
            run.backends[backend.name]?.setServerRules(backend.rules.flatMap { rules in
                guard !(rules.stickRules.isEmpty && rules.serverRules.isEmpty && rules.contentRules.isEmpty && rules.persistRules.isEmpty
                        && rules.responseRules.isEmpty) else { return nil }
                return FrontendRouting(rules: rules, frontendName: backend.name, defaultBackend: nil, backends: [:], tables: tables,
                                       variables: run.variables, frontends: run.directory)
            })
        }
        for frontend in configuration.frontends {
            // Without `default_backend`, what no rule routes goes where HAProxy sends it: to the
            // frontend itself as a backend without servers (closed at once; logged `fe fe/<NOSRV>`).
            // It is not a backend of the configuration: no `show stat` row, no `use_backend` target.
            let backend: BackendState
            if let name = frontend.defaultBackend {
                guard let named = run.backends[name] else { preconditionFailure("frontend '\(frontend.name)': backend '\(name)' was resolved but not built") }
                backend = named
            } else {
                backend = run.standIns[frontend.name] ?? BackendState(name: frontend.name, servers: [], settings: BackendSettings(), events: run.events)
                run.standIns[frontend.name] = backend
            }
            let routing = frontend.rules.map {
                FrontendRouting(rules: $0, frontendName: frontend.name, defaultBackend: backend, backends: run.backends, tables: tables,
                                variables: run.variables, frontends: run.directory, namedDefault: frontend.defaultBackend != nil)
            }
            // `%[sample]` parts of a log-format or unique-id-format are fetched as the frontend's rules fetch.
            var evaluator = routing
            var samples = frontend.uniqueIDFormat?.hasSamples == true
            if case .format(let format)? = frontend.logging?.style, format.hasSamples { samples = true }
            if samples && evaluator == nil {
                evaluator = FrontendRouting(rules: .empty, frontendName: frontend.name, defaultBackend: backend, backends: run.backends, tables: tables,
                                            variables: run.variables, frontends: run.directory, namedDefault: frontend.defaultBackend != nil)
            }
            let log = run.logs.route(frontend.logging?.targets ?? [], tag: frontend.logging?.tag ?? "", logging: frontend.logging, evaluator: evaluator,
                                     uniqueIDFormat: frontend.uniqueIDFormat)
            if let existing = run.frontends[frontend.name] {
                existing.update(frontend, backend: backend, routing: routing, log: log)
            } else {
                run.frontends[frontend.name] = FrontendState(frontend, backend: backend, routing: routing, log: log, events: run.events)
            }
        }
        for (name, frontend) in run.frontends where !configuration.frontends.contains(where: { $0.name == name }) {
            run.retired.append(frontend)
            run.frontends[name] = nil
        }
        run.directory.publish(run.frontends)
        run.configuration = configuration
    }

    // MARK: Running

    /// Opens every listener and starts one reactor thread per `nbthread`.
    ///
    /// Listening sockets are bound before any thread starts, so an address in use is reported here
    /// and nothing is left half-started.
    /// - Throws: `SluiceError` naming the frontend and address when a bind fails.
    public func start() throws(SluiceError) {
        let (configuration, frontends, backends) = state.withLock { ($0.configuration, $0.frontends, $0.backends) }
        let threads = max(1, configuration.global.threads)
        let plan = try Self.resolve(configuration, atStart: true)
        var engine = configuration.global.ioEngine ?? .preferred
        if configuration.global.ioEngine == nil && engine == .epoll {
            logger.notice("io_uring is not available to this process (sysctl kernel.io_uring_disabled or seccomp); using epoll")
        }
        if engine == .ioUring && !URingReactor.isAvailable {
            throw SluiceError("io-engine io_uring: this kernel does not let the process create an io_uring (disabled by sysctl kernel.io_uring_disabled or seccomp?); use 'io-engine epoll'")
        }
        if let problem = configuration.transparencyProblem { logger.warning("\(problem)") }
        let opened = try openListeners(plan, threads: threads, keep: [:])
        let listenersByWorker = opened.listeners(frontends)
        let addresses = opened.addresses
        let pages: (StatsPageServer, [String: [SocketAddress]])?
        do {
            pages = try openStatsPages(configuration.statsPages)
        } catch {
            for list in listenersByWorker { for l in list { closeDescriptor(l.fd) } }
            throw error
        }
        func makeWorkers(_ engine: IOEngine) throws(SystemError) -> [Worker] {
            var workers: [Worker] = []
            for w in 0..<threads {
                workers.append(try Worker(thread: w, process: process, listeners: listenersByWorker[w], engine: engine, logger: logger,
                                          logs: logs.makeRing()))
            }
            return workers
        }
        let workers: [Worker]
        do {
            do {
                workers = try makeWorkers(engine)
            } catch where engine == .ioUring && configuration.global.ioEngine == nil {
                // The default engine, refused past the probe (e.g. a memory-lock limit on the rings).
                logger.notice("cannot set up io_uring (\(error)); using epoll")
                engine = .epoll
                workers = try makeWorkers(engine)
            }
        } catch {
            for list in listenersByWorker { for l in list { closeDescriptor(l.fd) } }
            throw SluiceError("cannot start reactor: \(error)")
        }
        // Health checks run on the first reactor; the others reach it with commands.
        let checkWorker = workers[0]
        let everyone = workers
        checkWorker.checks = CheckRunner(
            reactor: checkWorker.reactor, spreadChecks: configuration.global.spreadChecks, maxSpread: configuration.global.maxSpreadChecks,
            neverSendLocal: configuration.global.pp2NeverSendLocal,
            serverBuffers: configuration.global.serverBuffers, logger: logger,
            broadcast: { command in for w in everyone { w.post(command) } })
        checkWorker.checks?.configure(Self.checkTargets(configuration, backends, addresses), node: configuration.global.nodeName)
        for worker in workers { worker.toCheckWorker = { checkWorker.post($0) } }
        // Weakly: the relay lives in every backend, which the check runner holds (a cycle otherwise).
        state.withLock { $0.warmUps }.connect { [weak checkWorker] backend, server in checkWorker?.post(.warmUp(backend, server)) }
        do {
            try logs.start()
            try pages?.0.start()
        } catch {
            for list in listenersByWorker { for l in list { closeDescriptor(l.fd) } }
            throw SluiceError("cannot start the log writer thread: \(error)")
        }
        var started: [OSThread] = []
        let cpuMap = configuration.global.cpuMap
        for (n, worker) in workers.enumerated() {
            let cpus = CPUMapping.cpus(of: n + 1, in: cpuMap)
            let logger = self.logger
            do {
                started.append(try OSThread.spawn("sluice-worker\(n)") {
                    if let cpus, let problem = CPUAffinity.pin(cpus) { logger.warning("\(problem)") }
                    worker.run()
                })
            } catch {
                for w in workers { w.post(.stopNow) }
                for t in started { t.join() }
                throw SluiceError("cannot start reactor thread: \(error)")
            }
        }
        for (name, list) in addresses {
            for address in list {
                logger.info("frontend '\(name)' listening on \(address) (\(threads) thread\(threads == 1 ? "" : "s"), \(engine.rawValue))")
            }
        }
        state.withLock {
            $0.workers = workers
            $0.threads = started
            $0.addresses = addresses
            $0.started = true
            $0.statsPages = pages?.0
            $0.statsPageAddresses = pages?.1 ?? [:]
        }
        if let writer = ServerStateWriter(configuration, render: { [weak self] backend in
            guard let self else { return "" }
            if case .reply(let text) = RuntimeAPI(balancer: self, version: Self.version).execute("show servers state" + (backend.map { " " + $0 } ?? ""), level: .admin) {
                return text + "\n"  // with the empty line that ends it on the socket, as `socat` would save it
            }
            return ""
        }, fingerprint: { [weak self] in
            var states: [String: [String]] = [:]
            for backend in self?.backends ?? [] {
                states[backend.name] = backend.servers.map { "\(backend.name) \($0.name) \($0.admin) \($0.operational) \($0.weight) \($0.checksEnabled.load(ordering: .relaxed)) \($0.address) \($0.checkPlan.map { "\($0.port ?? 0) \($0.fixedAddress?.ip ?? "-")" } ?? "")" }
            }
            return states
        }, report: { [logger] in logger.warning("\($0)") }) {
            do {
                try writer.start()
                state.withLock { $0.stateWriter = writer }
            } catch {
                logger.warning("cannot start the server-state writer: \(error); states will not be saved")
            }
        }
        startResolver(configuration, backends)
        if !configuration.global.statsSockets.isEmpty {
            do {
                let server = try StatsSocketServer(sockets: configuration.global.statsSockets,
                                                   api: RuntimeAPI(balancer: self, version: Self.version), logger: logger,
                                                   maxConnections: configuration.global.statsMaxConnections,
                                                   idleTimeout: configuration.global.statsTimeout)
                try server.start()
                state.withLock { $0.statsServer = server }
            } catch {
                stop(graceful: false)
                wait()
                throw error
            }
        }
    }

    /// Starts resolving server names (`resolvers`) on the resolver's thread; a reload replaces it.
    private func startResolver(_ configuration: Configuration, _ backends: [String: BackendState]) {
        let old = state.withLock { run in
            defer { run.resolver = nil }
            return run.resolver
        }
        old?.stop()
        guard let resolver = Resolver(configuration, backends: backends, report: { [logger] in logger.warning("\($0)") }) else { return }
        do {
            try resolver.start()
            state.withLock { $0.resolver = resolver }
        } catch {
            logger.warning("cannot start the DNS resolver thread: \(error); server names will not be resolved again")
        }
    }

    /// Each name server's `show resolvers` counters in one section (empty when there is none).
    func resolverCounters(_ section: String) -> [String: Resolver.Counters] {
        state.withLock { $0.resolver }?.counters(of: section) ?? [:]
    }

    /// `show resolvers [<section>]`: nil when there is no such section.
    func resolversReport(_ section: String?) -> String? {
        state.withLock { $0.resolver }?.show(section)
    }

    /// The backends to check. An external check's first two arguments name the proxy's first
    /// listener as it is bound (the kernel's port for port 0, a host name's address), as HAProxy's.
    private static func checkTargets(_ configuration: Configuration, _ backends: [String: BackendState],
                                     _ addresses: [String: [SocketAddress]]) -> [(BackendState, Backend)] {
        configuration.backends.compactMap { b in
            var b = b
            if case .external(var check) = b.healthCheck, let first = addresses[b.name]?.first, !first.isUnix {
                (check.proxyAddress, check.proxyPort) = (first.ip, "\(first.port)")
                b.healthCheck = .external(check)
            }
            return backends[b.name].map { ($0, b) }
        }
    }

    /// Sockets opened for a configuration's binds, not yet handed to reactors.
    private struct OpenedListeners {
        /// Per reactor: (frontend name, descriptor, listener key, `bind … maxconn`).
        var byWorker: [[(frontend: String, fd: CInt, key: String, limit: BindState, bind: Worker.BindTraits)]]
        var addresses: [String: [SocketAddress]]

        func closeAll() { for list in byWorker { for l in list { closeDescriptor(l.fd) } } }

        /// The reactors' listeners, once the frontends' shared state exists.
        func listeners(_ frontends: [String: FrontendState]) -> [[Worker.Listener]] {
            byWorker.map { list in
                list.compactMap { l in frontends[l.frontend].map { Worker.Listener(fd: l.fd, frontend: $0, key: l.key, limit: l.limit, bind: l.bind) } }
            }
        }
    }

    /// Opens one `SO_REUSEPORT` socket per bind per reactor, except binds in `keep` (already open).
    /// Nothing else changes, so a bind that fails (an address in use, a privileged port after
    /// `user`) leaves the running balancer as it was.
    private func openListeners(_ plan: ResolvedPlan, threads: Int, keep: [String: SocketAddress]) throws(SluiceError) -> OpenedListeners {
        var opened = OpenedListeners(byWorker: Array(repeating: [], count: threads), addresses: [:])
        for frontend in plan.configuration.frontends {
            // HAProxy numbers a frontend's listeners as it numbers proxies.
            let bindIDs = Numbering.assign(frontend.binds.map(\.id))
            for (bindIndex, (bind, resolved)) in zip(frontend.binds, plan.binds[frontend.name] ?? []).enumerated() {
                let key = Self.listenerKey(frontend.name, resolved, bind.namespace)
                if let kept = keep[key] {
                    opened.addresses[frontend.name, default: []].append(kept)
                    continue
                }
                var address = resolved
                let namespace: CInt?
                do {
                    namespace = try bind.namespace.map { name throws(SluiceError) in try NetworkNamespace.descriptor(name) }
                } catch {
                    opened.closeAll()
                    throw SluiceError("frontend '\(frontend.name)': cannot listen on \(bind.endpoint): \(error.message)")
                }
                let backlog = bind.backlog ?? max(1024, min(frontend.maxConnections ?? 1024, 65535))
                let limit = BindState(maximum: bind.maxConnections, id: bindIDs[bindIndex])
                for w in 0..<threads {
                    do {
                        let fd: CInt
                        if address.isUnix {
                            // One socket (UNIX sockets have no SO_REUSEPORT); each reactor watches its own duplicate.
                            fd = w == 0 ? try Self.listenUnix(address, bind, backlog: backlog) : try Self.duplicate(opened.byWorker[0].last!.fd)
                        } else {
                            fd = try Socket.listen(on: address, backlog: backlog, reusePort: true, options: Self.listenOptions(bind, backlog: backlog),
                                                   namespace: namespace).release()
                        }
                        if address.port == 0 && !address.isUnix {
                            // Port 0: the kernel picked one; the other reactors join it.
                            address = try Socket.localAddress(fd)
                        }
                        opened.byWorker[w].append((frontend.name, fd, key, limit, Worker.BindTraits(name: bind.name.map { Array($0.utf8) }, acceptProxy: bind.acceptProxy,
                            // A wildcard or transparent listener's connections each have their own destination.
                            address: resolved.isWildcard || bind.transparent ? nil : address)))
                    } catch {
                        opened.closeAll()
                        throw SluiceError("frontend '\(frontend.name)': cannot listen on \(bind.endpoint): \(error)")
                    }
                }
                opened.addresses[frontend.name, default: []].append(address)
            }
        }
        return opened
    }

    private static func listenUnix(_ address: SocketAddress, _ bind: Bind, backlog: Int) throws(SluiceError) -> CInt {
        let permissions = bind.unixPermissions
        let ids = try permissions.ids()
        do {
            return try Socket.listenUnix(address, backlog: backlog, owner: ids.owner, group: ids.group, mode: permissions.mode).release()
        } catch {
            throw SluiceError("\(error)")
        }
    }

    private static func duplicate(_ fd: CInt) throws(SluiceError) -> CInt {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard copy >= 0 else { throw SluiceError("\(SystemError(code: errno, call: "fcntl(F_DUPFD_CLOEXEC)"))") }
        return copy
    }

    private static func listenOptions(_ bind: Bind, backlog: Int) -> Socket.ListenOptions {
        var options = Socket.ListenOptions()
        options.v6Only = bind.v6Only ?? true
        // HAProxy's defer-accept: the kernel holds the connection until the client speaks (for at
        // most about a second here, then hands it over anyway).
        options.deferAcceptSeconds = bind.deferAccept ? 1 : 0
        options.fastOpenQueue = bind.fastOpen ? backlog : 0
        options.interface = bind.interface
        options.maxSegmentSize = bind.maxSegmentSize ?? 0
        options.userTimeoutMs = bind.userTimeout.map { Int($0.milliseconds) } ?? 0
        options.transparent = bind.transparent
        return options
    }

    /// Identifies a listener across reloads: the frontend and the address as configured.
    /// A listener's identity across reloads: its frontend, address and network namespace.
    static func listenerKey(_ frontend: String, _ address: SocketAddress, _ namespace: String?) -> String {
        "\(frontend)|\(address)" + (namespace.map { "|netns \($0)" } ?? "")
    }

    /// Applies a new configuration to the running balancer without dropping anything.
    ///
    /// Listeners whose frontend and address are unchanged stay open (not one SYN refused); new ones
    /// open before removed ones close; servers that keep their name (and backup flag and check
    /// address) keep their health, counters and sessions; removed servers take no new sessions
    /// while theirs finish; new weights, timeouts and options apply to new sessions. Settings of
    /// `global` apply at the next start, and a warning says so.
    ///
    /// - Returns: notices for the operator (e.g. global settings that need a restart).
    /// - Throws: `SluiceError` when the new configuration cannot be applied; the old one keeps running.
    @discardableResult
    public func reload(_ configuration: Configuration) throws(SluiceError) -> [String] {
        do {
            let notices = try applyReload(configuration)
            hub.publish(.reloaded(notices: notices))
            return notices
        } catch {
            hub.publish(.reloadFailed(reason: error.message))
            throw error
        }
    }

    private func applyReload(_ configuration: Configuration) throws(SluiceError) -> [String] {
        let plan = try Self.resolve(configuration)
        let (old, started, threads, oldAddresses, oldBackends) = state.withLock { ($0.configuration, $0.started, $0.workers.count, $0.addresses, $0.backends) }
        // A running server the resolvers gave an address keeps it (`apply`): nothing to say of it.
        var notices = plan.unresolved.filter { oldBackends[$0.backend]?.server(named: $0.server)?.resolvedByDNS.load(ordering: .relaxed) != true }.map(\.warning)
        // `log` lines apply at once (each proxy's targets are rebuilt); other global settings wait.
        func withoutLogs(_ global: Global) -> Global {
            var g = global
            g.logTargets = []
            g.logTag = nil
            g.logHostname = nil
            return g
        }
        if withoutLogs(old.global) != withoutLogs(configuration.global) {
            notices.append("global settings changed; they take effect when Sluice restarts")
        }
        if old.statsPages != configuration.statsPages {
            notices.append("statistics proxies changed; they take effect when Sluice restarts")
        }
        guard started else {
            state.withLock { Self.apply(plan, to: &$0) }
            return notices
        }
        // Listeners to keep: same frontend, same configured address. Port-0 binds keep their port.
        var keep: [String: SocketAddress] = [:]
        var running: [(frontend: String, key: String, bound: SocketAddress, namespace: String?)] = []
        for frontend in old.frontends {
            let resolved = (try? Self.resolve(Configuration(global: old.global, frontends: [frontend], backends: old.backends)).binds[frontend.name]) ?? []
            for ((bind, configured), bound) in zip(zip(frontend.binds, resolved), oldAddresses[frontend.name] ?? []) {
                let key = Self.listenerKey(frontend.name, configured, bind.namespace)
                keep[key] = bound
                running.append((frontend.name, key, bound, bind.namespace))
            }
        }
        let wanted = Set(plan.configuration.frontends.flatMap { f in
            zip(f.binds, plan.binds[f.name] ?? []).map { Self.listenerKey(f.name, $1, $0.namespace) }
        })
        // A bind that now names the port a port-0 bind was given is that same socket: it stays,
        // under its new key (closing it would reset the connections waiting in its backlog).
        var renamed: [String: String] = [:]
        for frontend in plan.configuration.frontends {
            for (bind, configured) in zip(frontend.binds, plan.binds[frontend.name] ?? []) {
                let key = Self.listenerKey(frontend.name, configured, bind.namespace)
                guard keep[key] == nil, let old = running.first(where: { $0.frontend == frontend.name && $0.bound == configured && $0.namespace == bind.namespace && !wanted.contains($0.key) }),
                      renamed[old.key] == nil else { continue }
                renamed[old.key] = key
                keep[key] = old.bound
            }
        }
        let removedKeys = Set(keep.keys).subtracting(wanted).subtracting(renamed.keys)
        for key in removedKeys.union(renamed.keys) { keep[key] = nil }

        let opened = try openListeners(plan, threads: threads, keep: keep)
        let (frontends, backends, workers) = state.withLock { run in
            Self.apply(plan, to: &run)
            return (run.frontends, run.backends, run.workers)
        }
        let added = opened.listeners(frontends)
        let addresses = opened.addresses
        for (w, worker) in workers.enumerated() {
            worker.post(.updateListeners(add: added[w], removeKeys: removedKeys, renamed: renamed))
        }
        workers.first?.post(.configureChecks(Self.checkTargets(configuration, backends, addresses), node: configuration.global.nodeName))
        state.withLock { $0.addresses = addresses }
        startResolver(configuration, backends)
        return notices
    }

    /// Where `reload` (runtime API) and `reloadFromSource()` read the new configuration, e.g. the
    /// `-f` files again. Nil: reloading from the runtime API is refused.
    public func setReloadSource(_ source: @escaping @Sendable () throws(ConfigurationError) -> Configuration) {
        reloadSource.withLock { $0 = source }
    }

    private let reloadSource = Mutex<(@Sendable () throws(ConfigurationError) -> Configuration)?>(nil)

    /// Reads the configuration again from the reload source and applies it (see `reload(_:)`).
    /// - Throws: `SluiceError` with every configuration error, or why it could not be applied.
    @discardableResult
    public func reloadFromSource() throws(SluiceError) -> [String] {
        guard let source = reloadSource.withLock({ $0 }) else {
            throw SluiceError("no configuration source to reload from")
        }
        let configuration: Configuration
        do {
            configuration = try source()
        } catch {
            throw SluiceError(error.description)
        }
        return try reload(configuration)
    }

    /// The configuration in force (the last one applied by `init` or `reload`).
    public var configuration: Configuration { state.withLock { $0.configuration } }

    /// True once `stop` has been called.
    public var isStopping: Bool { state.withLock { $0.stopping } }

    /// HAProxy's Prometheus exporter's page (`haproxy_*` metrics) for this balancer, as a
    /// statistics proxy serves it at its `/metrics`.
    public func prometheusMetrics() -> String {
        var info = ""
        if case .reply(let text) = RuntimeAPI(balancer: self, version: Self.version).execute("show info", level: .admin) { info = text }
        let snapshot = statistics()
        return PrometheusExporter.render(info: info, rows: StatsCSV.fields(snapshot), backends: snapshot.backends, version: "Sluice \(Self.version)")
    }

    /// The addresses a statistics proxy (`mode http` with `stats` or the Prometheus exporter)
    /// listens on, with the kernel's port where the configuration said 0.
    public func statsPageAddresses(of name: String) -> [SocketAddress] {
        state.withLock { $0.statsPageAddresses[name] ?? [] }
    }

    /// Binds the statistics proxies' addresses (before any thread starts, so a conflict is
    /// reported by `start`); nil when there are none.
    private func openStatsPages(_ pages: [StatsPage]) throws(SluiceError) -> (StatsPageServer, [String: [SocketAddress]])? {
        guard !pages.isEmpty else { return nil }
        var listeners: [StatsPageServer.Listener] = []
        var addresses: [String: [SocketAddress]] = [:]
        do {
            for page in pages {
                for bind in page.binds {
                    let address = try SocketAddress.resolve(host: bind.endpoint.host ?? "0.0.0.0", port: bind.endpoint.port)
                    let fd = try Socket.listen(on: address, backlog: bind.backlog ?? 128, reusePort: false).release()
                    listeners.append(.init(fd: fd, page: page))
                    addresses[page.name, default: []].append((try? Socket.localAddress(fd)) ?? address)
                }
            }
        } catch {
            for l in listeners { closeDescriptor(l.fd) }
            throw SluiceError("statistics proxy: cannot listen: \(error)")
        }
        let sources = StatsPageServer.Sources(
            metrics: { [weak self] in self?.prometheusMetrics() ?? "" },
            rows: { [weak self] in
                guard let self else { return [] }
                return StatsCSV.fields(self.statistics())
            },
            command: { [weak self] command in
                guard let self, case .reply(let text) = RuntimeAPI(balancer: self, version: Self.version).execute(command, level: .admin) else { return "no reply" }
                return text
            },
            version: Self.version)
        return (StatsPageServer(listeners: listeners, sources: sources), addresses)
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
        let (workers, limit) = state.withLock { run in
            run.stopping = true
            process.stopping.store(true, ordering: .relaxed)
            return (run.workers, run.configuration.global.hardStopAfter?.milliseconds)
        }
        for worker in workers { worker.post(graceful ? .stopGracefully(hardStopAfterMs: limit) : .stopNow) }
    }

    /// Blocks until every reactor thread has exited (after `stop`).
    ///
    /// Safe to call more than once and from several threads at once (a signal handler's thread and
    /// the main path, as a service lifecycle does): the threads are joined exactly once, and every
    /// caller returns once that join has finished.
    public func wait() {
        joining.withLock { _ in
            let threads = state.withLock { run in
                defer { run.threads = [] }
                return run.threads
            }
            for thread in threads { thread.join() }
            // The workers reach each other through closures (checks broadcast to every worker,
            // every worker posts to the checking one): break those cycles once the threads are
            // gone, or each balancer an embedder creates and stops would leak its reactors.
            for worker in state.withLock({ $0.workers }) {
                worker.checks = nil
                worker.toCheckWorker = nil
            }
            let stats = state.withLock { run in
                defer { run.statsServer = nil }
                return run.statsServer
            }
            stats?.stop()  // removes the socket files
            state.withLock { run in
                defer { run.statsPages = nil }
                return run.statsPages
            }?.stop()
            state.withLock { run in
                defer { run.resolver = nil }
                return run.resolver
            }?.stop()
            // The states as they are at the end, for the next start.
            state.withLock { run in
                defer { run.stateWriter = nil }
                return run.stateWriter
            }?.stop()
            hub.finish()
            logs.stop()  // after the reactors: their last lines are written
            state.withLock { $0.mailer }.stop()
        }
    }

    /// Held by `wait()` while it joins: a second caller waits for the first instead of joining
    /// the same threads again (undefined behaviour for POSIX threads).
    private let joining = Mutex(())

    /// The reply to one runtime API command at admin level, as the stats socket would send it
    /// (commands that wait, such as `wait-drained`, are refused). For the micro-benchmarks.
    @_spi(Benchmarks) public func runtimeReply(_ command: String) -> String {
        switch RuntimeAPI(balancer: self, version: Self.version).execute(command, level: .admin) {
        case .reply(let text): text + "\n"  // the empty line that ends every answer on the socket
        case .togglePrompt, .quit, .waitDrained: "not available in-process\n\n"
        }
    }

    /// The live state of a backend, to read counters or drive server states.
    public func backend(named name: String) -> BackendState? { state.withLock { $0.backends[name] } }

    /// Backends in configuration order.
    public var backends: [BackendState] {
        state.withLock { run in run.configuration.backends.compactMap { run.backends[$0.name] } }
    }

    /// Frontends in configuration order, with their live counters.
    var frontendStates: [FrontendState] {
        state.withLock { run in run.configuration.frontends.compactMap { run.frontends[$0.name] } }
    }

    func frontendState(named name: String) -> FrontendState? { state.withLock { $0.frontends[name] } }

    /// Stick tables, in configuration order.
    var stickTables: [StickTable] {
        state.withLock { run in run.configuration.stickTables.compactMap { run.tables[$0.name] } }
    }

    // MARK: Servers added and removed at run time

    /// Adds a server to a running backend (`add server`), as HAProxy 2.6 does: in maintenance,
    /// with health checks disabled, until `setAdmin(.ready…)` (`enable server`) and
    /// `setHealthChecks(enabled: true…)` (`enable health`). A host name instead of an address is not
    /// resolved: the server waits for `set server addr`. A reload keeps only the servers its
    /// configuration names, so add the server to the file too.
    /// - Throws: `SluiceError` with HAProxy's sentence when the backend or the name does not fit.
    @discardableResult
    public func addServer(_ server: Server, to backendName: String) throws(SluiceError) -> ServerState {
        let (backend, configuration) = state.withLock { ($0.backends[backendName], $0.configuration) }
        guard let backend, let declared = configuration.backend(named: backendName) else { throw SluiceError("No such backend.") }
        if backend.server(named: server.name) != nil { throw SluiceError("Already exists a server with the same name in backend.") }
        if !declared.consistentHashing && (declared.balance == .source || declared.balance == .hash) {
            throw SluiceError("Backend must use a dynamic load balancing to support dynamic servers.")
        }
        // HAProxy's `add server` refuses `socks4`; a library caller gets the same answer.
        if server.socks4 != nil { throw SluiceError("'socks4' option is not accepted for dynamic server") }
        if server.namespace != nil { throw SluiceError("'namespace' option is not accepted for dynamic server") }
        let host = server.endpoint.host ?? "0.0.0.0"
        let resolved = if let unix = server.endpoint.unix { unix.address } else { SocketAddress(ip: host, port: server.endpoint.port) }
        let address = resolved ?? SocketAddress(ip: "0.0.0.0", port: server.endpoint.port)!
        var followed: ServerState?
        if let track = server.track {
            guard let target = (track.backend.flatMap { self.backend(named: $0) } ?? backend).server(named: track.server),
                  configuration.backend(named: track.backend ?? backendName)?.servers.contains(where: { $0.name == track.server }) == true else {
                throw SluiceError("unable to find required server '\(track)' to track (only servers of the configuration may be tracked).")
            }
            followed = target
        }
        let check = try server.check.map { check throws(SluiceError) in
            try CheckPlan(server: server, check: check, serverAddress: address, backend: declared)
        }
        let agent = try server.agent.map { agent throws(SluiceError) in
            try CheckPlan(agent: agent, server: server, serverAddress: address, backend: declared)
        }
        let state = ServerState(name: server.name, ordinal: backend.nextOrdinal(), address: address, weight: server.weight,
                                isBackup: server.isBackup, admin: .maintenance, configuration: server, checkPlan: check, agentPlan: agent)
        state.checksEnabled.store(false, ordering: .relaxed)
        state.awaitingAddress.store(resolved == nil, ordering: .relaxed)
        if let holder = backend.append(state, id: server.id) {
            throw SluiceError("'id' : custom id \(server.id ?? 0) already used ('server \(holder)').")
        }
        if let followed {
            followed.trackers.withLock { $0.append((backend, state)) }
            state.operationalStorage.store(followed.operational.rawValue, ordering: .relaxed)
        }
        refreshChecks()
        hub.publish(.serverAdded(backend: backendName, server: server.name))
        logger.notice("New server \(backendName)/\(server.name) registered (\(resolved.map(\.description) ?? "no address yet"), in maintenance)")
        return state
    }

    /// Removes a server from a running backend (`del server`): only in maintenance, with no
    /// session and nothing waiting for it, and followed by no other server (HAProxy's rules).
    /// - Throws: `SluiceError` with HAProxy's sentence when it may not go.
    public func removeServer(named name: String, from backendName: String) throws(SluiceError) {
        guard let backend = backend(named: backendName) else { throw SluiceError("No such backend.") }
        guard let server = backend.server(named: name) else { throw SluiceError("No such server.") }
        guard server.admin == .maintenance else { throw SluiceError("Only servers in maintenance mode can be deleted.") }
        guard server.currentSessions.load(ordering: .acquiring) == 0, backend.queueLength(of: server) == 0 else {
            throw SluiceError("Server still has connections attached to it, cannot remove it.")
        }
        guard server.trackers.withLock({ $0.isEmpty }) else { throw SluiceError("Server is tracked by other servers, cannot remove it.") }
        // It no longer follows anyone (`track`).
        for other in backends { for followed in other.servers { followed.trackers.withLock { $0.removeAll { $0.1 === server } } } }
        backend.remove(server)
        // A session that raced the check may still point at it: keep the object alive.
        state.withLock { $0.retired.append(server) }
        refreshChecks()
        hub.publish(.serverRemoved(backend: backendName, server: name))
        logger.notice("Server \(backendName)/\(name) deleted")
    }

    /// `set server <b>/<s> fqdn <name>`: the resolvers look up the new name from now on (the
    /// server keeps its address until an answer for the new name arrives). The reply's sentence.
    public func setFQDN(_ name: String, of server: ServerState, in backend: BackendState) -> String {
        let old = server.configuration
        guard old.resolvers != nil else {
            return "set server <b>/<s> fqdn failed because no resolution is configured.\n"
        }
        guard DNSMessage.encode(name: name) != nil, SocketAddress(ip: name, port: 1) == nil, !name.hasPrefix("_") else {
            return "set server <b>/<s> fqdn failed because '\(name)' is not a host name.\n"
        }
        server.configurationStorage.withLock { $0.endpoint.host = name }
        let (configuration, backends) = state.withLock { ($0.configuration, $0.backends) }
        startResolver(configuration, backends)
        return "\(backend.name)/\(server.name) changed its FQDN from \(old.endpoint.host ?? "(none)") to \(name) by 'stats socket command'\n"
    }

    /// Gives the check reactor the servers as they are now.
    private func refreshChecks() {
        let (configuration, backends, workers, addresses) = state.withLock { ($0.configuration, $0.backends, $0.workers, $0.addresses) }
        workers.first?.post(.configureChecks(Self.checkTargets(configuration, backends, addresses), node: configuration.global.nodeName))
    }

    /// Closes every session of a server on every reactor (`shutdown sessions server`).
    public func shutdownSessions(of server: ServerState) {
        let workers = state.withLock { $0.workers }
        for worker in workers { worker.post(.shutdownSessions(server)) }
    }

    /// `set maxconn frontend <name> <n>`: the frontend's session limit from now on (0 or nil: none).
    /// - Throws: `SluiceError` when there is no such frontend.
    public func setMaxConnections(_ limit: Int?, ofFrontend name: String) throws(SluiceError) {
        guard let frontend = frontendState(named: name) else { throw SluiceError("No such frontend.") }
        let value = limit ?? 0
        frontend.maxConnections.store(value <= 0 ? Int.max : value, ordering: .relaxed)
    }

    /// Turns a server's health checks off (it is then considered UP) or back on.
    public func setHealthChecks(enabled: Bool, of server: ServerState, in backend: BackendState) {
        server.checksEnabled.store(enabled, ordering: .relaxed)
        if !enabled {
            server.lastChange.store(monotonicMilliseconds(), ordering: .relaxed)
            backend.setOperational(.running, of: server)
        }
        let workers = state.withLock { $0.workers }
        workers.first?.post(.checksToggled(server, agent: false))
    }

    /// `disable agent` / `enable agent`: stops or resumes a server's agent checks. A disabled
    /// agent's health no longer keeps the server DOWN (HAProxy counts only an enabled agent).
    public func setAgentChecks(enabled: Bool, of server: ServerState) {
        server.agentEnabled.store(enabled, ordering: .relaxed)
        let workers = state.withLock { $0.workers }
        workers.first?.post(.checksToggled(server, agent: true))
    }

    /// Sessions open now, across every frontend.
    public var currentSessions: Int { process.currentConnections.load(ordering: .relaxed) }

    /// Sessions accepted since start.
    public var totalSessions: Int { process.totalConnections.load(ordering: .relaxed) }

    /// The process-wide session limit (`maxconn` in global; `Int.max` when unset).
    public var maxSessions: Int { process.maxConnections }

    /// Times accept or connect found no descriptor left since start.
    public var descriptorExhaustions: Int { process.descriptorExhaustions.load(ordering: .relaxed) }

    /// Pipes open now (pooled ones included).
    public var pipesOpen: Int { process.pipesOpen.load(ordering: .relaxed) }

    /// `maxconnrate` and `maxsessrate` (0: none), with the connections and sessions accepted over
    /// the last second under each (nil when there is no limit: the rate is then not counted).
    public var processRates: (connectionLimit: Int, connections: Int?, sessionLimit: Int, sessions: Int?) {
        let now = monotonicMilliseconds()
        return (process.connectionRateLimit, process.connectionRateLimit > 0 ? Int(process.connectionRate.rate(now: now, period: 1000)) : nil,
                process.sessionRateLimit, process.sessionRateLimit > 0 ? Int(process.sessionRate.rate(now: now, period: 1000)) : nil)
    }
}
