/// What a running balancer has done and how its servers stand, as values: the numbers `show stat`
/// prints (its CSV, the statistics page and the Prometheus exporter are rendered from this), taken
/// at one instant from counters the reactors update without locks.
///
/// ```swift
/// let snapshot = balancer.statistics()
/// for backend in snapshot.backends {
///     for server in backend.servers where server.status != "UP" {
///         print("\(backend.name)/\(server.name): \(server.status), last check \(server.check?.lastResult.description ?? "-")")
///     }
/// }
/// ```
public struct StatisticsSnapshot: Hashable, Sendable {
    /// In configuration order.
    public var frontends: [FrontendStatistics]
    /// In configuration order, each with its servers.
    public var backends: [BackendStatistics]

    /// Reads every counter now (`now`: monotonic milliseconds, for the ages and rates).
    init(frontends: [FrontendState], backends: [BackendState], now: Int64) {
        self.frontends = frontends.map { FrontendStatistics($0) }
        self.backends = backends.map { BackendStatistics($0, now: now) }
    }

    /// A frontend by name.
    public func frontend(named name: String) -> FrontendStatistics? { frontends.first { $0.name == name } }
    /// A backend by name.
    public func backend(named name: String) -> BackendStatistics? { backends.first { $0.name == name } }
}

/// One frontend: its sessions and what its rules refused.
public struct FrontendStatistics: Hashable, Sendable {
    /// The frontend's name.
    public var name: String
    /// HAProxy's proxy id (`iid`).
    public var id: Int
    /// Its section's place among the proxy sections (`show stat`'s order).
    var declaration: Int
    /// Sessions open now (`scur`).
    public var currentSessions: Int
    /// The frontend's `maxconn` (as the runtime API may have changed it); nil: none.
    public var sessionLimit: Int?
    /// Sessions since start (`stot`).
    public var totalSessions: Int
    /// Connections refused by `tcp-request connection reject` (`show stat` `dcon`).
    public var deniedConnections: Int
    /// Sessions refused by `tcp-request session reject` (`dses`).
    public var deniedSessions: Int
    /// Sessions refused by `tcp-request content reject` (`dreq`).
    public var deniedRequests: Int
    /// Clients dropped for a missing or malformed PROXY header (`ereq`).
    public var failedRequests: Int
    /// Responses refused by its backends' `tcp-response content reject` (`dresp`).
    public var deniedResponses: Int

    init(_ frontend: FrontendState) {
        name = frontend.name
        id = frontend.id.load(ordering: .relaxed)
        declaration = frontend.declaration.load(ordering: .relaxed)
        currentSessions = frontend.currentConnections.load(ordering: .relaxed)
        let limit = frontend.maxConnections.load(ordering: .relaxed)
        sessionLimit = limit == Int.max ? nil : limit
        totalSessions = frontend.totalConnections.load(ordering: .relaxed)
        deniedConnections = frontend.deniedConnections.load(ordering: .relaxed)
        deniedSessions = frontend.deniedSessions.load(ordering: .relaxed)
        deniedRequests = frontend.deniedRequests.load(ordering: .relaxed)
        failedRequests = frontend.failedRequests.load(ordering: .relaxed)
        deniedResponses = frontend.deniedResponses.load(ordering: .relaxed)
    }
}

/// One backend: its servers, their sums, and its queue.
public struct BackendStatistics: Hashable, Sendable {
    /// The backend's name.
    public var name: String
    /// HAProxy's proxy id (`iid`).
    public var id: Int
    /// Its section's place among the proxy sections (`show stat`'s order).
    var declaration: Int
    /// `balance`.
    public var algorithm: BalanceAlgorithm
    /// `fullconn`, as given or computed (`slim`, as HAProxy's backend row).
    public var fullConnections: Int
    /// In configuration order (servers added at run time last).
    public var servers: [ServerSnapshot]
    /// The servers' counters summed (`maxSessions` is not summed: 0). `totalSessions` there counts
    /// a session once per server it was sent to (`lbtot`); `sessionsSinceStart` counts it once.
    public var totals: ServerStatistics
    /// Sessions given to the backend since start (`stot`).
    public var sessionsSinceStart: Int
    /// Sessions waiting for any server of the backend now (`qcur`).
    public var queued: Int
    /// The most that waited at once (`qmax`).
    public var maxQueued: Int
    /// The mean wait of the sessions that waited, in milliseconds (`qtime`).
    public var averageQueueMs: Int
    /// Whether a server can take a session, or the backend has none (`status` UP/DOWN, as HAProxy).
    public var isUp: Bool
    /// The usable servers' weights summed.
    public var weight: Int
    /// Usable primary servers (`act`).
    public var activeServers: Int
    /// Usable backup servers (`bck`).
    public var backupServers: Int
    /// Times its servers went DOWN (`chkdown`).
    public var downTransitions: Int
    /// Since the last session began, in seconds; nil: none yet.
    public var secondsSinceLastSession: Int?
    /// Time to connect to a server (the attempt that succeeded), for every session that did.
    public var connectTime: DurationHistogramSnapshot
    /// Sessions' lengths, from accept to close, for those that reached a server.
    public var sessionDuration: DurationHistogramSnapshot
    /// Waits in the backend's or a server's queue, for sessions that waited and got a server.
    public var queueTime: DurationHistogramSnapshot

    init(_ backend: BackendState, now: Int64) {
        name = backend.name
        id = backend.id
        declaration = backend.declaration.load(ordering: .relaxed)
        let settings = backend.settings
        algorithm = settings.balance
        fullConnections = settings.fullConnections
        let states = backend.servers
        servers = states.map { ServerSnapshot($0, in: backend, now: now) }
        totals = ServerStatistics(currentSessions: 0, maxSessions: 0, totalSessions: 0, connectErrors: 0,
                                  retries: 0, redispatches: 0, bytesIn: 0, bytesOut: 0)
        for s in servers.map(\.sessions) {
            totals.currentSessions += s.currentSessions
            totals.totalSessions += s.totalSessions
            totals.connectErrors += s.connectErrors
            totals.retries += s.retries
            totals.redispatches += s.redispatches
            totals.bytesIn += s.bytesIn
            totals.bytesOut += s.bytesOut
            totals.deniedResponses += s.deniedResponses
        }
        sessionsSinceStart = backend.routedSessions.load(ordering: .relaxed)
        queued = backend.queueLength()
        maxQueued = backend.queueMax.load(ordering: .relaxed)
        queueTime = backend.queueTime.snapshot
        averageQueueMs = Int(queueTime.meanMs)
        let usable = states.filter(\.isUsable)
        // As HAProxy's stats.c: a backend without any server is UP (no server is down).
        isUp = !usable.isEmpty || states.isEmpty
        weight = usable.reduce(0) { $0 + $1.weight }
        activeServers = usable.filter { !$0.isBackup }.count
        backupServers = usable.filter(\.isBackup).count
        downTransitions = states.reduce(0) { $0 + $1.downTransitionCount }
        let last = states.map { $0.lastSessionAt.load(ordering: .relaxed) }.max() ?? 0
        secondsSinceLastSession = last == 0 ? nil : Int((now - last) / 1000)
        connectTime = backend.connectTime.snapshot
        sessionDuration = backend.sessionDuration.snapshot
    }
}

/// One server: its state as `show stat` words it, its counters, its queue and its last check.
public struct ServerSnapshot: Hashable, Sendable {
    /// The server's name.
    public var name: String
    /// Where sessions go now (DNS or `set server addr` may have changed it).
    public var address: SocketAddress
    /// `backup`.
    public var isBackup: Bool
    /// HAProxy's status text: `UP`, `DOWN`, `UP 1/3`, `DRAIN`, `MAINT`, `NOLB`, `no check` …
    public var status: String
    /// What the operator decided.
    public var admin: AdminState
    /// What the checks decided.
    public var operational: OperationalState
    /// The weight set (`uweight`).
    public var weight: Int
    /// The weight in effect now (lower while `slowstart` ramps it).
    public var effectiveWeight: Int
    /// Its counters.
    public var sessions: ServerStatistics
    /// `maxconn`; nil: none.
    public var sessionLimit: Int?
    /// Sessions waiting for this server now (`qcur`).
    public var queued: Int
    /// The most that waited at once (`qmax`).
    public var maxQueued: Int
    /// `maxqueue`; nil: none.
    public var queueLimit: Int?
    /// The mean wait of the sessions that waited, in milliseconds (`qtime`).
    public var averageQueueMs: Int
    /// `slowstart`'s ramp in percent while it lasts.
    public var throttlePercent: Int?
    /// `track`: the server whose state it follows (`backend/server`).
    public var tracked: String?
    /// Seconds since the last change of state (`lastchg`).
    public var secondsSinceLastChange: Int
    /// Seconds since the last session began (`lastsess`); nil: none yet.
    public var secondsSinceLastSession: Int?
    /// Nil when the server is not checked (or its checks are disabled).
    public var check: CheckStatistics?
    /// Its agent check (`agent-check`); nil without one or while it is disabled.
    public var agent: CheckStatistics?
    /// HAProxy's server id (`sid`).
    public var id: Int

    init(_ server: ServerState, in backend: BackendState, now: Int64) {
        name = server.name
        id = server.id
        address = server.address
        isBackup = server.isBackup
        status = server.status
        admin = server.admin
        operational = server.operational
        weight = server.weight
        effectiveWeight = server.effectiveWeight(now: now)
        sessions = server.statistics
        sessionLimit = server.maxConnections
        queued = backend.queueLength(of: server)
        maxQueued = server.queueMax.load(ordering: .relaxed)
        let limit = server.maxQueueStorage.load(ordering: .relaxed)
        queueLimit = limit == Int.max ? nil : limit
        averageQueueMs = averageWait(server.dequeuedSessions.load(ordering: .relaxed), server.dequeuedWaitMs.load(ordering: .relaxed))
        throttlePercent = server.throttlePercent(now: now)
        tracked = server.configuration.track.map { "\($0.backend ?? backend.name)/\($0.server)" }
        secondsSinceLastChange = Int((now - server.lastChange.load(ordering: .relaxed)) / 1000)
        let last = server.lastSessionAt.load(ordering: .relaxed)
        secondsSinceLastSession = last == 0 ? nil : Int((now - last) / 1000)
        if let plan = server.checkPlan, server.checksEnabled.load(ordering: .relaxed) {
            let progress = server.checkStorage.withLock { $0 }
            check = CheckStatistics(lastResult: progress.last, inProgress: progress.running, failedChecks: server.failedChecks.load(ordering: .relaxed),
                                    downTransitions: server.downTransitionCount, downtimeSeconds: Int(server.downtimeSeconds(now: now)),
                                    rise: plan.rise, fall: plan.fall, health: server.health.load(ordering: .relaxed))
        }
        if let plan = server.agentPlan, server.agentEnabled.load(ordering: .relaxed) {
            let progress = server.agentStorage.withLock { $0 }
            agent = CheckStatistics(lastResult: progress.last, inProgress: progress.running, failedChecks: 0, downTransitions: 0, downtimeSeconds: 0,
                                    rise: plan.rise, fall: plan.fall, health: server.agentHealth.load(ordering: .relaxed))
        }
    }
}

/// A checked server's health checks.
public struct CheckStatistics: Hashable, Sendable {
    /// The last check's verdict, code, text and duration.
    public var lastResult: CheckResult
    /// A check is running now: `show stat` shows `"* "` before the last status and no text yet, as HAProxy.
    public var inProgress: Bool
    /// Checks that failed since start (`chkfail`).
    public var failedChecks: Int
    /// Times the checks took it DOWN (`chkdown`).
    public var downTransitions: Int
    /// Seconds spent DOWN in all.
    public var downtimeSeconds: Int
    /// `rise`: successes that bring it UP.
    public var rise: Int
    /// `fall`: failures that take it DOWN.
    public var fall: Int
    /// HAProxy's health counter: 0 … rise + fall − 1, UP from `rise`.
    public var health: Int
}

/// The mean wait in a queue, in milliseconds, of the sessions that waited.
private func averageWait(_ count: Int, _ total: Int) -> Int { count == 0 ? 0 : total / count }

extension LoadBalancer {
    /// Every frontend's, backend's and server's statistics now, as typed values (what `show stat`
    /// prints).
    public func statistics() -> StatisticsSnapshot {
        StatisticsSnapshot(frontends: frontendStates, backends: backends, now: monotonicMilliseconds())
    }
}
