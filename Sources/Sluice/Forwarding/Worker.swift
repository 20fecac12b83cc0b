import CShims
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One reactor thread: its listeners (one `SO_REUSEPORT` socket per bind), its sessions and pipes.
///
/// Confined to its thread: everything but `post(_:)` runs there, so the data path takes no lock.
final class Worker: ReactorHandler, SessionWaker, @unchecked Sendable {
    let reactor: any Reactor
    // Reactor-thread state (other threads go through `commands`): no dynamic exclusivity checks,
    // which cost ~7,700 instructions per proxied connection (callgrind, bench/rulecost.py).
    let process: ProcessState
    @exclusivity(unchecked) var listeners: ListenerSet
    @exclusivity(unchecked) var sessions: [Session] = []
    @exclusivity(unchecked) private var freeSlots: [Int32] = []
    @exclusivity(unchecked) private(set) var liveSessions = 0
    @exclusivity(unchecked) var pool: PipePool
    /// Where the copy path receives before sending: one per reactor, allocated once.
    let scratch: UnsafeMutableRawBufferPointer
    let logger: Logger
    /// This reactor's way to the `log` targets.
    let logs: LogRing
    private let commands = Mutex<[WorkerCommand]>([])
    @exclusivity(unchecked) private var draining = false
    @exclusivity(unchecked) var resumeTimerArmed = false
    /// Listeners that accepted `tune.maxaccept` connections and may have more waiting: each accepts
    /// again at the end of the turn, after the sessions' events, and every turn after until its
    /// backlog is empty. No listener is in it twice.
    @exclusivity(unchecked) var pendingAccepts: [Int] = []
    /// Sessions that used their read budget with bytes possibly left (token of the session).
    @exclusivity(unchecked) private var pendingSessions: [UInt64] = []
    @exclusivity(unchecked) var lastExhaustionLog: Int64 = -1_000_000
    /// Health checks, on the one worker that runs them.
    @exclusivity(unchecked) var checks: CheckRunner?
    /// Sends a command to the worker that runs health checks.
    var toCheckWorker: (@Sendable (WorkerCommand) -> Void)?

    /// While paused for a limit on another thread or for descriptors, look again this often.
    let resumeIntervalMs: Int64 = 20
    static let resumeTimer = Token(.worker, index: 0).raw
    private static let hardStopTimer = Token(.worker, index: 1).raw

    /// The reactor's place among the balancer's, from 0 (the `thread` fetch).
    let thread: Int

    init(thread: Int, process: ProcessState, listeners: [Listener], engine: IOEngine, logger: Logger, logs: LogRing) throws(SystemError) {
        self.thread = thread
        self.process = process
        self.listeners = ListenerSet(listeners)
        self.logger = logger
        self.logs = logs
        switch engine {
        case .epoll: self.reactor = try EpollReactor(maxEvents: process.pollEvents, busyPolling: process.busyPolling)
        case .ioUring: self.reactor = try URingReactor(maxEvents: process.pollEvents, busyPolling: process.busyPolling)
        }
        self.pool = PipePool(size: process.pipeSize, keep: 64, process: process)
        self.scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: process.bufferSize, alignment: 64)
        for (i, listener) in listeners.enumerated() {
            try reactor.register(listener.fd, token: Token(.listener, index: i).raw, events: CShims_EPOLLIN | CShims_EPOLLET)
        }
    }

    deinit { scratch.deallocate() }

    /// Runs the loop until stopped; call on the worker's own thread.
    func run() {
        checks?.start()
        reactor.run(self)
        checks?.stop()
        for i in sessions.indices where sessions[i].state != .free { close(i, reset: false, cause: .killed) }
        closeListeners()
        pool.drain()
    }

    func dequeued(_ token: UInt64, to server: ServerState, of backend: BackendState) { post(.dequeued(token, server, backend)) }

    /// Queues a command from any thread.
    func post(_ command: WorkerCommand) {
        commands.withLock { $0.append(command) }
        reactor.wake()
    }

    // MARK: ReactorHandler

    func handleEvent(token raw: UInt64, events: UInt32) {
        let token = Token(raw: raw)
        if token.kind == .listener {
            // A listener that had more waiting than `tune.maxaccept` is already due at the end of
            // the turn: it accepts there, once, after the sessions' events.
            if !pendingAccepts.contains(token.index) { accept(from: token.index) }
            return
        }
        if token.kind == .worker {
            checks?.handleEvent(index: token.index, generation: token.generation, events: events)
            return
        }
        let i = token.index
        guard i < sessions.count, sessions[i].generation & 0x3FFF_FFFF == token.generation, sessions[i].state != .free else { return }
        let readable = events & (CShims_EPOLLIN | CShims_EPOLLRDHUP | CShims_EPOLLHUP | CShims_EPOLLERR) != 0
        let writable = events & (CShims_EPOLLOUT | CShims_EPOLLHUP | CShims_EPOLLERR) != 0
        let end = PeerEnd(events: events)
        if token.kind == .client {
            if readable { sessions[i].clientReadable = true }
            if writable { sessions[i].clientWritable = true }
            sessions[i].clientEnd = max(sessions[i].clientEnd, end)
            if sessions[i].state == .established {
                forward(i)
            } else if sessions[i].state == .inspecting {
                // Only news from the client runs the rules again (HAProxy evaluates them once at
                // the connection, then on each arrival): not the writable edge of the registration.
                if readable { inspect(i) }
            } else if end != .open && sessions[i].policy.backend.abortOnClose {
                // `option abortonclose`: the client left before its server connection was made.
                close(i, reset: false, cause: .client)
            }
        } else {
            if readable { sessions[i].serverReadable = true }
            if writable { sessions[i].serverWritable = true }
            sessions[i].serverEnd = max(sessions[i].serverEnd, end)
            if sessions[i].state == .connecting {
                if sessions[i].socks == .awaitingReply {
                    if readable { socksReply(i) }
                } else if writable {
                    connectFinished(i, failed: end != .open)
                }
            } else if sessions[i].state == .established {
                if readable && sessions[i].inspectsResponse { inspectResponse(i) } else { forward(i) }
            }
        }
    }

    func handleTimer(token raw: UInt64) {
        if raw == Self.resumeTimer {
            resumeTimerArmed = false
            resumeListeners()
            return
        }
        if raw == Self.hardStopTimer {
            if liveSessions > 0 { logger.notice("hard-stop-after reached: closing \(liveSessions) remaining session(s)") }
            post(.stopNow)
            return
        }
        let token = Token(raw: raw)
        if token.kind == .worker {
            checks?.handleTimer(index: token.index)
            return
        }
        let i = token.index
        guard i < sessions.count, sessions[i].generation & 0x3FFF_FFFF == token.generation, sessions[i].state != .free else { return }
        let now = reactor.now
        if now >= sessions[i].armedDeadline { sessions[i].armedDeadline = .max }
        let due = sessions[i].deadline
        if due > now {
            arm(i)
            return
        }
        switch sessions[i].state {
        case .connecting:
            connectFailed(i, SystemError(code: ETIMEDOUT, call: "connect"))
        case .retryWait:
            retry(i)
        case .queued:
            // `timeout queue`: no slot came in time (HAProxy answers 503 in HTTP; a TCP client is closed).
            backend(of: i).queueTimedOut(frontend: frontend(of: i).name, now: now, logger: logger)
            close(i, reset: false, cause: .serverTimeout)
        case .descriptorWait:
            if now >= sessions[i].queueDeadline {
                logger.warning("frontend '\(frontend(of: i).name)': no descriptor for a server connection within timeout queue; closing the client")
                close(i, reset: false, cause: .resource)
            } else {
                retry(i)
            }
        case .established:
            if sessions[i].inspectsResponse && now >= sessions[i].phaseDeadline {
                inspectResponse(i, expired: true)  // `tcp-response inspect-delay`: the rules decide now
            } else {
                expireIdleSides(i, now: now)
            }
        case .inspecting:
            // `timeout client` ends the wait as it ends any idle client; the inspect delay lets the rules decide.
            if sessions[i].policy.clientTimeoutMs > 0 && now >= sessions[i].clientActivity + sessions[i].policy.clientTimeoutMs {
                if sessions[i].context?.expectsProxyHeader == true {
                    frontend(of: i).count(.badProxyHeader("none complete within timeout client"), logger: logger)
                }
                close(i, reset: false, cause: .clientTimeout)
            } else {
                inspect(i, expired: true)
            }
        case .free:
            break
        }
    }

    func handleWakeup() {
        let queued = commands.withLock { list in
            defer { list.removeAll() }
            return list
        }
        for command in queued {
            switch command {
            case .stopGracefully(let hardStopAfterMs):
                draining = true
                closeListeners()
                if liveSessions == 0 {
                    reactor.stop()
                } else if let hardStopAfterMs {
                    reactor.arm(at: reactor.now + hardStopAfterMs, token: Self.hardStopTimer)
                }
            case .stopNow:
                draining = true
                closeListeners()
                for i in sessions.indices where sessions[i].state != .free { close(i, reset: false, cause: .killed) }
                reactor.stop()
            case .shutdownSessions(let server):
                for i in sessions.indices where sessions[i].state != .free && sessions[i].server >= 0
                    && sessions[i].serverRef?.takeUnretainedValue() === server {
                    close(i, reset: false, cause: .killed)
                }
            case .observedFailure(let server):
                checks?.observedFailure(of: server)
            case .updateListeners(let add, let removeKeys, let renamed):
                listeners.rename(renamed)
                for l in listeners.indices where removeKeys.contains(listeners[l].key) { closeListener(l) }
                for listener in add {
                    if draining {
                        closeDescriptor(listener.fd)
                        continue
                    }
                    let l = listeners.append(listener)
                    do {
                        try reactor.register(listener.fd, token: Token(.listener, index: l).raw, events: CShims_EPOLLIN | CShims_EPOLLET)
                        accept(from: l)  // connections may already wait in its backlog
                    } catch {
                        logger.error("frontend '\(listener.frontend.name)': cannot watch a new listener: \(error)")
                        if let fd = listeners.close(l, now: reactor.now) { closeDescriptor(fd) }
                    }
                }
            case .configureChecks(let backends, let node):
                checks?.configure(backends, node: node)
            case .checksToggled(let server, let agent):
                checks?.toggled(server, agent: agent)
            case .warmUp(let backend, let server):
                checks?.warmUp(server, of: backend)
            case .dequeued(let raw, let server, let backend):
                let token = Token(raw: raw)
                let i = token.index
                if i < sessions.count, sessions[i].generation & 0x3FFF_FFFF == token.generation, sessions[i].state == .queued {
                    connect(i, to: server, slotHeld: true)
                } else {
                    backend.releaseSlot(of: server)  // the session left meanwhile: pass the slot on
                }
            }
        }
    }

    func endOfTurn() -> Bool {
        if !pendingSessions.isEmpty {
            let pending = pendingSessions
            pendingSessions.removeAll(keepingCapacity: true)
            for raw in pending {
                let token = Token(raw: raw)
                let i = token.index
                if sessions[i].generation & 0x3FFF_FFFF == token.generation && sessions[i].state == .established {
                    forward(i)
                }
            }
        }
        if !pendingAccepts.isEmpty {
            let pending = pendingAccepts
            pendingAccepts.removeAll(keepingCapacity: true)
            for l in pending { accept(from: l) }
        }
        return !pendingAccepts.isEmpty || !pendingSessions.isEmpty
    }

    // MARK: Sessions

    func startSession(client fd: CInt, frontend: FrontendState, limit: BindState, bind: BindTraits, peer: SocketAddress?) {
        let policy = frontend.current
        var context: SessionContext?
        var outcome = SessionContext.Outcome.proceed(policy.backend)
        let origin = SessionOrigin(frontend: .passUnretained(frontend), bind: .passUnretained(limit), thread: thread, process: .passUnretained(process))
        if policy.routing != nil || bind.acceptProxy {
            let c = SessionContext(client: fd, bindName: bind.name, routing: policy.routing, now: reactor.now,
                                   peer: peer, local: bind.address)
            c.origin = origin
            outcome = c.start(acceptProxy: bind.acceptProxy, fallback: policy.backend)
            if case .close(let reason) = outcome {
                // `tcp-request connection|session reject`: not a session, not counted as one (as HAProxy).
                c.release(now: reactor.now)
                frontend.count(reason, logger: logger)
                process.release(frontend, limit)
                closeDescriptor(fd)
                return
            }
            context = c
        }
        let i: Int
        if let slot = freeSlots.popLast() {
            i = Int(slot)
        } else {
            i = sessions.count
            sessions.append(Session())
        }
        let generation = sessions[i].generation &+ 1
        sessions[i] = Session()
        sessions[i].generation = generation
        sessions[i].client = fd
        sessions[i].context = context
        sessions[i].frontendRef = Unmanaged.passUnretained(frontend)
        sessions[i].bindLimit = Unmanaged.passUnretained(limit)
        sessions[i].policy = SessionPolicy(policy, BackendSettings())  // the backend's part: `route`
        sessions[i].startedAt = reactor.now
        sessions[i].clientActivity = reactor.now
        let serial = process.totalConnections.wrappingAdd(1, ordering: .relaxed).oldValue
        if let route = policy.log { sessions[i].log = logs.sessionStarted(route, client: fd, peer: peer, local: bind.address, bindName: bind.name, origin: origin, frontend: frontend.name, serial: serial, now: reactor.now) }
        context?.log = sessions[i].log
        if policy.keepAlive.enabled { Socket.setKeepAlive(fd, policy.keepAlive) }
        if process.clientBuffers.isSet { Socket.setBufferSizes(fd, process.clientBuffers) }
        liveSessions += 1
        frontend.countSession()
        process.countSession()
        do {
            try reactor.register(fd, token: token(.client, i), events: CShims_EPOLLIN | CShims_EPOLLOUT | CShims_EPOLLRDHUP | CShims_EPOLLET)
        } catch {
            logger.error("frontend '\(frontend.name)': cannot watch a new client: \(error)")
            sessions[i].backendRef = Unmanaged.passUnretained(policy.backend)
            close(i, reset: true, cause: .resource)
            return
        }
        if case .proceed(let backend) = outcome {
            route(i, to: backend)
            return
        }
        // The PROXY header or content rules first, within the inspect delay (for a PROXY header
        // alone, `timeout client`; 5 s when unset).
        sessions[i].state = .inspecting
        sessions[i].backendRef = Unmanaged.passUnretained(policy.backend)
        let delay = policy.routing.map { $0.rules.contentRules.isEmpty ? 0 : $0.rules.inspectDelayMs } ?? 0
        sessions[i].phaseDeadline = reactor.now + (delay > 0 ? delay : (policy.clientTimeoutMs > 0 ? policy.clientTimeoutMs : 5000))
        inspect(i)
    }

    /// Session `i` goes to `backend`: its server-side policy, then a server.
    func route(_ i: Int, to backend: BackendState) {
        let settings = backend.settings
        sessions[i].state = .connecting
        sessions[i].backendRef = Unmanaged.passUnretained(backend)
        backend.routedSessions.wrappingAdd(1, ordering: .relaxed)
        sessions[i].policy.backend = settings
        sessions[i].retriesLeft = settings.retries
        sessions[i].log?.routedAt = reactor.now
        // The backend's own rules (content, `use-server`, `stick`), on the data the frontend inspected
        // (left in the scratch buffer by `SessionContext.advance`, forgotten before it is used again).
        if settings.serverRules != nil && sessions[i].context == nil {
            sessions[i].context = SessionContext(client: sessions[i].client, bindName: nil, routing: nil, now: reactor.now)
            sessions[i].context?.origin = SessionOrigin(frontend: .passUnretained(frontend(of: i)), bind: sessions[i].bindLimit, thread: thread, process: .passUnretained(process))
            sessions[i].context?.log = sessions[i].log
        }
        sessions[i].context?.now = reactor.now
        if let rules = settings.serverRules, !rules.rules.contentRules.isEmpty, sessions[i].context?.routing?.rules !== rules.rules {
            // Its `tcp-request content` rules, which may wait for more of the client's data within
            // its own `tcp-request inspect-delay` (HAProxy's AN_REQ_INSPECT_BE). A `listen`'s ran
            // once, as its frontend's: HAProxy does not run them again (nor wait again).
            sessions[i].state = .inspecting
            sessions[i].inspectsBackendRules = true
            sessions[i].phaseDeadline = reactor.now + rules.rules.inspectDelayMs
            return inspectBackendRules(i)
        }
        chooseServer(i)
    }

    /// The session's backend is settled: its rules' server (`use-server`, `stick match`, `persist
    /// rdp-cookie`), or the algorithm's, then a connection.
    func chooseServer(_ i: Int) {
        let backend = backend(of: i)
        let settings = sessions[i].policy.backend
        sessions[i].queueDeadline = reactor.now + settings.queueTimeoutMs
        if settings.balance == .source || settings.balance == .hash {
            sessions[i].sourceHash = settings.sessionHash(sessions[i].context, client: sessions[i].client, now: reactor.now)
        }
        let choice = settings.ruleTarget(sessions[i].context, in: backend)
        (sessions[i].direct, sessions[i].persistent) = (choice?.direct ?? false, choice?.persistent ?? false)
        if choice?.forced == true { sessions[i].policy.backend.redispatch = false }  // `force-persist`: never elsewhere (HAProxy)
        sessions[i].context?.content = UnsafeRawBufferPointer(start: nil, count: 0)
        connect(i, to: choice?.server)
    }

    /// A session waiting for its PROXY header or for its content rules to decide.
    func inspect(_ i: Int, expired: Bool = false) {
        if sessions[i].inspectsBackendRules { return inspectBackendRules(i, expired: expired) }
        guard let context = sessions[i].context else { return }
        context.now = reactor.now
        switch context.advance(scratch: scratch, limit: process.bufferSize, expired: expired, clientEnded: sessions[i].clientEnd != .open,
                               fallback: backend(of: i)) {
        case .wait:
            arm(i)
        case .proceed(let backend):
            route(i, to: backend)
        case .close(let reason):
            frontend(of: i).count(reason, logger: logger)
            close(i, reset: false, cause: reason.terminationCause)
        }
    }

    func token(_ kind: Token.Kind, _ i: Int) -> UInt64 {
        Token(kind, index: i, generation: sessions[i].generation).raw
    }

    // The session's frontend, backend and server. The balancer keeps these objects alive for its
    // whole life, so the unmanaged references in the slab stay valid.
    func frontend(of i: Int) -> FrontendState {
        guard let ref = sessions[i].frontendRef else { preconditionFailure("session \(i) has no frontend") }
        return ref.takeUnretainedValue()
    }

    func backend(of i: Int) -> BackendState {
        guard let ref = sessions[i].backendRef else { preconditionFailure("session \(i) has no backend") }
        return ref.takeUnretainedValue()
    }

    func server(of i: Int) -> ServerState {
        guard let ref = sessions[i].serverRef else { preconditionFailure("session \(i) has no server") }
        return ref.takeUnretainedValue()
    }

    /// Moves bytes both ways; closes the session when both directions are done or one fails.
    func forward(_ i: Int) {
        let splice = !process.noSplice
        var toServer = 0, fromClient = 0, toClient = 0, fromServer = 0
        let upstream = sessions[i].pumpToServer(pool: &pool, splice: splice, scratch: scratch, moved: &toServer, read: &fromClient)
        // While `tcp-response` rules inspect the server's data, it stays in the server's socket.
        let downstream = sessions[i].inspectsResponse ? .waiting
            : sessions[i].pumpToClient(pool: &pool, splice: splice, scratch: scratch, moved: &toClient, read: &fromServer)
        sessions[i].account(toServer: toServer, fromClient: fromClient, toClient: toClient, fromServer: fromServer, now: reactor.now)
        if case .failed(let error) = upstream {
            logger.debug("session \(i): \(error); resetting both sides")
            close(i, reset: true, cause: sessions[i].serverEnd == .failed ? .server : .client)
        } else if case .failed(let error) = downstream {
            logger.debug("session \(i): \(error); resetting both sides")
            close(i, reset: true, cause: sessions[i].clientEnd == .failed ? .client : .server)
        } else if sessions[i].isFinished {
            close(i, reset: false)
        } else if (sessions[i].toClient.finForwarded && sessions[i].policy.clientNoLinger)
                    || (sessions[i].toServer.finForwarded && sessions[i].policy.backend.noLinger) {
            // `option nolinger`, as HAProxy: a side that is shut is closed at once, with a reset,
            // instead of staying half-open.
            close(i, reset: false)
        } else {
            if sessions[i].isHalfClosed {
                arm(i)  // a -fin timeout, or bytes waiting for a side no longer read, may be due sooner
            }
            if case .yielded = upstream {
                pendingSessions.append(token(.client, i))
            } else if case .yielded = downstream {
                pendingSessions.append(token(.client, i))
            }
        }
    }

    /// An established session's side stayed idle past its timeout, handled as HAProxy 2.6 does:
    /// when bytes waited for that side, the session is aborted; when it only sent nothing, it is no
    /// longer read and the other side is sent a FIN once owed bytes are written, while the other
    /// way goes on until it ends or times out in turn (a late answer still reaches a silent client).
    /// The first such timeout is what the log reports (`cD`/`sD`).
    private func expireIdleSides(_ i: Int, now: Int64) {
        for side in [TerminationCause.clientTimeout, .serverTimeout] {
            switch sessions[i].expiry(ofClient: side == .clientTimeout, now: now) {
            case .none:
                continue
            case .write:
                close(i, reset: false, cause: side)
                return
            case .read:
                if sessions[i].timedOut == .normal { sessions[i].timedOut = side }
                if side == .clientTimeout { sessions[i].toServer.sourceClosed = true } else { sessions[i].toClient.sourceClosed = true }
            }
        }
        forward(i)  // sends the FIN, closes the session when both ways are done, re-arms otherwise
    }

    /// Ends a session: closes both sockets (with RST when `reset`, to pass a reset on), returns
    /// pipes, frees the slot and resumes accepting if a limit had paused it.
    /// `phase`: the log's termination phase when not the session's state's (`sessionEnded`).
    func close(_ i: Int, reset: Bool, cause: TerminationCause = .normal, phase: UInt8? = nil) {
        var session = sessions[i]
        // HAProxy's termination state keeps the first error: a timeout that shut a side earlier.
        let cause = session.timedOut == .normal ? cause : session.timedOut
        // Out of the queue before the client sees its close: whoever reacts to it sees no waiter.
        if session.state == .queued { backend(of: i).removeQueued(token(.client, i)) }
        if let log = session.log { logs.sessionEnded(log, session, cause: cause, phase: phase, frontend: frontend(of: i), process: process, now: reactor.now) }
        if session.state == .established { backend(of: i).sessionDuration.observe(reactor.now - session.startedAt) }
        session.toServer.releaseResources(into: &pool)
        session.toClient.releaseResources(into: &pool)
        if session.client >= 0 {
            reactor.unwatch(session.client, token: token(.client, i))
            // Unread bytes would turn the close into a reset: a client closed before it was forwarded,
            // or after `tcp-response content close` stopped reading it, gets a FIN as from HAProxy.
            Socket.close(session.client, reset: reset || session.policy.clientNoLinger, discardUnread: session.state != .established || session.server < 0)
        }
        if session.server >= 0 {
            reactor.unwatch(session.server, token: token(.server, i))
            // A response still held for `tcp-response` rules was read, for HAProxy: drop it, so the
            // close is a FIN.
            Socket.close(session.server, reset: reset || session.policy.backend.noLinger, discardUnread: session.inspectsResponse)
            backend(of: i).releaseSlot(of: server(of: i))
        }
        session.context?.release(now: reactor.now)
        process.release(frontend(of: i), session.bindLimit?.takeUnretainedValue())
        let generation = session.generation
        sessions[i] = Session()
        sessions[i].generation = generation
        freeSlots.append(Int32(i))
        liveSessions -= 1
        if listeners.pausedCount > 0 && !draining { resumeListeners() }
        if draining && liveSessions == 0 { reactor.stop() }
    }

    // MARK: Timeouts

    /// Pushes a timer for session `i` when its deadline is earlier than the one already armed.
    /// Later deadlines need nothing: the armed timer fires, finds the session still active, re-arms.
    func arm(_ i: Int) {
        let due = sessions[i].deadline
        guard due < sessions[i].armedDeadline else { return }
        sessions[i].armedDeadline = due
        reactor.arm(at: due, token: token(.client, i))
    }
}
