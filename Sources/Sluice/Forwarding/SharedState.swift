import Logging
import Synchronization

/// Process-wide limits and counters, shared by every reactor.
final class ProcessState: Sendable {
    /// `maxconn` in global; `Int.max` when unset.
    let maxConnections: Int
    let currentConnections = Atomic<Int>(0)
    let totalConnections = Atomic<Int>(0)
    /// `maxpipes`: pipes open at once (pooled ones included).
    let maxPipes: Int
    let pipesOpen = Atomic<Int>(0)
    let pipeSize: Int
    let noSplice: Bool
    /// `tune.maxaccept`: accepts per listener per loop turn.
    let acceptBatch: Int
    /// `tune.maxpollevents`: events per reactor turn.
    let pollEvents: Int
    /// `busy-polling`: reactors wait with a zero timeout.
    let busyPolling: Bool
    /// `tune.bufsize`: the copy path's buffer.
    let bufferSize: Int
    /// `tune.rcvbuf.*`/`tune.sndbuf.*`: kernel buffer sizes of client and server sockets.
    let clientBuffers: SocketBufferSizes
    let serverBuffers: SocketBufferSizes
    /// Times accept or connect found no descriptor left (EMFILE/ENFILE).
    let descriptorExhaustions = Atomic<Int>(0)
    /// The balancer is stopping (`stopping` fetch).
    let stopping = Atomic<Bool>(false)

    /// `maxconnrate` and `maxsessrate` (0: none), and the connections and sessions of the last
    /// second (sliding), counted only under a limit.
    let connectionRateLimit: Int
    let connectionRate = SharedRate()
    let sessionRateLimit: Int
    let sessionRate = SharedRate()

    init(_ global: Global) {
        connectionRateLimit = global.maxConnectionRate ?? 0
        sessionRateLimit = global.maxSessionRate ?? 0
        maxConnections = global.maxConnections ?? Int.max
        maxPipes = global.maxPipes ?? (global.maxConnections.map { max($0 / 4, 16) } ?? 1024)
        pipeSize = global.pipeSize
        noSplice = global.noSplice
        acceptBatch = switch global.maxAccept ?? 0 {
        case 0: 1
        case ..<0: Int.max
        case let n: n
        }
        pollEvents = (global.maxPollEvents ?? 0) > 0 ? global.maxPollEvents! : Global.defaultPollEvents
        busyPolling = global.busyPolling
        bufferSize = global.bufferSize
        clientBuffers = global.clientBuffers
        serverBuffers = global.serverBuffers
    }

    func reservePipe() -> Bool {
        let now = pipesOpen.wrappingAdd(1, ordering: .relaxed).newValue
        if now > maxPipes {
            pipesOpen.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func releasePipe() { pipesOpen.wrappingSubtract(1, ordering: .relaxed) }

    func noteDescriptorExhaustion() { descriptorExhaustions.wrappingAdd(1, ordering: .relaxed) }

    /// Takes one connection slot in the process, the frontend and the bind, or returns false at a
    /// `maxconn`.
    /// Counts one more session against every limit it is under; the limit that refuses it, if any
    /// (nothing is counted then).
    func admit(_ frontend: FrontendState, _ limit: BindState?) -> AcceptLimit? {
        if currentConnections.wrappingAdd(1, ordering: .relaxed).newValue > maxConnections {
            currentConnections.wrappingSubtract(1, ordering: .relaxed)
            return .process
        }
        if connectionRateLimit | sessionRateLimit != 0 && !processRatesAllow() {
            currentConnections.wrappingSubtract(1, ordering: .relaxed)
            return .processRate
        }
        if frontend.currentConnections.wrappingAdd(1, ordering: .relaxed).newValue > frontend.maxConnections.load(ordering: .relaxed) {
            frontend.currentConnections.wrappingSubtract(1, ordering: .relaxed)
            currentConnections.wrappingSubtract(1, ordering: .relaxed)
            return .frontend
        }
        if !frontend.sessionRateAllows() {
            frontend.currentConnections.wrappingSubtract(1, ordering: .relaxed)
            currentConnections.wrappingSubtract(1, ordering: .relaxed)
            return .sessionRate
        }
        if let limit, limit.current.wrappingAdd(1, ordering: .relaxed).newValue > limit.maximum {  // Int.max: never
            limit.current.wrappingSubtract(1, ordering: .relaxed)
            frontend.currentConnections.wrappingSubtract(1, ordering: .relaxed)
            currentConnections.wrappingSubtract(1, ordering: .relaxed)
            return .bind
        }
        if connectionRateLimit > 0 { connectionRate.add(1, now: monotonicMilliseconds(), period: 1000) }
        return nil
    }

    /// Whether `maxconnrate` and `maxsessrate` let one more connection in now.
    private func processRatesAllow() -> Bool {
        let now = monotonicMilliseconds()
        return (connectionRateLimit == 0 || connectionRate.rate(now: now, period: 1000) < connectionRateLimit)
            && (sessionRateLimit == 0 || sessionRate.rate(now: now, period: 1000) < sessionRateLimit)
    }

    /// A connection passed the `tcp-request connection` rules: one more session under `maxsessrate`.
    func countSession() {
        if sessionRateLimit > 0 { sessionRate.add(1, now: monotonicMilliseconds(), period: 1000) }
    }

    func release(_ frontend: FrontendState, _ limit: BindState?) {
        limit?.current.wrappingSubtract(1, ordering: .relaxed)
        frontend.currentConnections.wrappingSubtract(1, ordering: .relaxed)
        currentConnections.wrappingSubtract(1, ordering: .relaxed)
    }
}

/// A frontend's shared state, for the life of the process: its limits, counters and, per reload,
/// its backend and timeouts.
final class FrontendState: Sendable {
    let name: String
    /// HAProxy's proxy id (`show stat`'s `iid`); a reload may renumber it.
    let id: Atomic<Int>
    /// Its section's place among the proxy sections (`show stat`'s order).
    let declaration: Atomic<Int>
    /// `name` as log lines write it.
    let nameBytes: [UInt8]
    /// Session lines written (`%lc`).
    let logCount = Atomic<Int>(0)
    /// `maxconn` of the frontend; `Int.max` when unset. The runtime API may change it.
    let maxConnections: Atomic<Int>
    let currentConnections = Atomic<Int>(0)
    let totalConnections = Atomic<Int>(0)
    /// Connections refused by `tcp-request connection reject` (`show stat` dcon).
    let deniedConnections = Atomic<Int>(0)
    /// Sessions refused by `tcp-request session reject` (`show stat` dses).
    let deniedSessions = Atomic<Int>(0)
    /// Sessions refused by `tcp-request content reject` (`show stat` dreq).
    let deniedRequests = Atomic<Int>(0)
    /// Responses refused by `tcp-response content reject` in the backend it used (`dresp`).
    let deniedResponses = Atomic<Int>(0)
    /// Clients dropped for a missing or malformed PROXY header (`show stat` ereq).
    let failedRequests = Atomic<Int>(0)
    private let policy: Mutex<FrontendPolicy>
    /// `rate-limit sessions`: the limit (0: none) and the sessions of the last second (sliding).
    let sessionRateLimit = Atomic<Int>(0)
    let sessionRate = SharedRate()

    /// Whether `rate-limit sessions` lets one more session in now (HAProxy's
    /// `freq_ctr_remain` over one second).
    func sessionRateAllows() -> Bool {
        let limit = sessionRateLimit.load(ordering: .relaxed)
        return limit == 0 || sessionRate.rate(now: monotonicMilliseconds(), period: 1000) < limit
    }

    /// Where pauses and resumptions of accepting are announced (`LoadBalancer.events`).
    let events: EventHub?
    /// Listeners of this frontend paused now, over every reactor; when the last pause was
    /// announced (monotonic ms), and whether its resumption is owed.
    private let pausedListeners = Atomic<Int>(0)
    private let lastAnnounced = Atomic<Int64>(Int64.min / 2)
    private let resumptionOwed = Atomic<Bool>(false)
    private let pausedAt = Atomic<Int64>(0)

    /// A reactor stopped accepting on one of its listeners: when it is the frontend's first,
    /// subscribers hear it — at most once a second (a frontend held at its limit pauses and resumes
    /// as each session ends), each announced pause followed by its resumption.
    func listenerPaused(_ reason: AcceptLimit, now: Int64) {
        guard pausedListeners.wrappingAdd(1, ordering: .relaxed).oldValue == 0, let events, events.hasSubscribers,
              now - lastAnnounced.load(ordering: .relaxed) >= 1000 else { return }
        lastAnnounced.store(now, ordering: .relaxed)
        pausedAt.store(now, ordering: .relaxed)
        resumptionOwed.store(true, ordering: .relaxed)
        events.publish(.acceptingPaused(frontend: name, limit: reason))
    }

    /// A paused listener accepts again: when none is left paused, an announced pause ends.
    func listenerResumed(now: Int64) {
        guard pausedListeners.wrappingSubtract(1, ordering: .relaxed).newValue == 0,
              resumptionOwed.exchange(false, ordering: .relaxed) else { return }
        events?.publish(.acceptingResumed(frontend: name, afterMs: Int(now - pausedAt.load(ordering: .relaxed))))
    }

    /// A new session began: counted in the totals and, under `rate-limit sessions`, in the rate.
    func countSession() {
        totalConnections.wrappingAdd(1, ordering: .relaxed)
        if sessionRateLimit.load(ordering: .relaxed) > 0 { sessionRate.add(1, now: monotonicMilliseconds(), period: 1000) }
    }
    /// Whether the current policy reads the client's address — rules, or session logs (read at
    /// accept without the policy's lock: then `accept4` returns it, no `getpeername` later).
    let peerFlag = Atomic<Bool>(false)
    var wantsPeer: Bool { peerFlag.load(ordering: .relaxed) }

    /// What a new session of this frontend takes: where it goes and its client-side timeouts.
    /// Immutable, replaced whole by a reload: a new session retains it once (a struct of it was
    /// copied, one retain per reference it holds, under the lock).
    final class FrontendPolicy: Sendable {
        let backend: BackendState
        /// 0 means no limit.
        let clientTimeoutMs: Int64
        /// 0: unset (the client timeout applies).
        let clientFinTimeoutMs: Int64
        /// `option clitcpka`.
        let keepAlive: KeepAliveSettings
        /// `option nolinger`: close client connections with a reset.
        let noLinger: Bool
        /// `option independent-streams`: only bytes from the client refresh `timeout client`.
        let independentStreams: Bool
        /// ACLs and rules; nil when every session goes to `backend`.
        let routing: FrontendRouting?
        /// Where sessions are logged, and how; nil when the frontend has no `log`.
        let log: LogRoute?

        init(_ frontend: Frontend, _ backend: BackendState, _ routing: FrontendRouting?, _ log: LogRoute?) {
            self.backend = backend
            clientTimeoutMs = frontend.clientTimeout?.milliseconds ?? 0
            clientFinTimeoutMs = frontend.clientFinTimeout?.milliseconds ?? 0
            keepAlive = KeepAliveSettings(frontend.clientKeepAlive)
            noLinger = frontend.noLinger
            independentStreams = frontend.independentStreams
            self.routing = routing
            self.log = log
        }
    }

    init(_ frontend: Frontend, backend: BackendState, routing: FrontendRouting?, log: LogRoute?, events: EventHub? = nil) {
        name = frontend.name
        id = Atomic(frontend.id ?? 0)
        declaration = Atomic(frontend.declaration ?? 0)
        self.events = events
        nameBytes = Array(frontend.name.utf8)
        maxConnections = Atomic(frontend.maxConnections ?? Int.max)
        policy = Mutex(FrontendPolicy(frontend, backend, routing, log))
        peerFlag.store(routing != nil || log != nil, ordering: .relaxed)
        sessionRateLimit.store(frontend.sessionRateLimit ?? 0, ordering: .relaxed)
    }

    var current: FrontendPolicy { policy.withLock { $0 } }

    /// A reload: new sessions follow the new configuration.
    func update(_ frontend: Frontend, backend: BackendState, routing: FrontendRouting?, log: LogRoute?) {
        _ = policy.replace(with: FrontendPolicy(frontend, backend, routing, log))  // the old one is freed outside the lock
        if let number = frontend.id { id.store(number, ordering: .relaxed) }
        if let place = frontend.declaration { declaration.store(place, ordering: .relaxed) }
        peerFlag.store(routing != nil || log != nil, ordering: .relaxed)
        maxConnections.store(frontend.maxConnections ?? Int.max, ordering: .relaxed)
        sessionRateLimit.store(frontend.sessionRateLimit ?? 0, ordering: .relaxed)
    }
}

/// A bind line's address, shared by the listeners every reactor has for it: the sessions
/// accepted through it now (`dst_conn`) under its `maxconn` (`Int.max` without one), and its id
/// (`so_id`).
final class BindState: Sendable {
    let maximum: Int
    let current = Atomic<Int>(0)
    let id: Int

    init(maximum: Int?, id: Int) {
        self.maximum = maximum ?? Int.max
        self.id = id
    }
}
