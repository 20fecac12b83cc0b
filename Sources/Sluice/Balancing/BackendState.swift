import Logging
import Synchronization

/// The live state of one backend, shared by every reactor, for the life of the process.
///
/// Readers take the current `Schedule` (an immutable value) and advance one atomic cursor; writers
/// (health checks, the runtime API, a reload) change a server's state or the membership and call
/// `republish()`, which builds a new schedule. Reactors never wait on each other for a pick.
public final class BackendState: Sendable {
    /// The backend's name (its `backend` or `listen` line).
    public let name: String
    /// `name` as log lines write it.
    let nameBytes: [UInt8]
    /// HAProxy's proxy id (`id`, else numbered in declaration order): `show stat`'s `iid`,
    /// `show servers state`'s `be_id`. A reload may renumber it.
    public var id: Int { idStorage.load(ordering: .relaxed) }
    let idStorage = Atomic<Int>(0)
    /// Its section's place among the proxy sections (`show stat`'s order).
    let declaration = Atomic<Int>(0)

    /// Which servers receive new sessions, in order. Replaced whole by `republish()`.
    struct Schedule: Sendable {
        /// The members when the schedule was built.
        var servers: [ServerState] = []
        /// Indices into `servers` in smooth round-robin order; empty when no server is usable.
        var order: [Int32] = []
        /// True when `order` holds backups because no primary is usable.
        var onBackups = false
        /// Usable primaries, for HAProxy's redispatch rule (redispatch at once when more than one).
        var usablePrimaries = 0
        var algorithm = BalanceAlgorithm.roundRobin
        /// Indices into `servers` of the usable servers with a weight (the primaries, or the
        /// backups when none is usable), in configuration order: leastconn and first scan them.
        var eligible: [Int32] = []
        /// `balance source`: `eligible` entries repeated by weight (reduced by their common
        /// divisor); a client address hash indexes it.
        var map: [Int32] = []
        /// `balance random(<draws>)`.
        var draws = 2
        /// `hash-balance-factor` (0: off), and the eligible servers' total weight it compares with.
        var balanceFactor = 0
        var totalWeight = 0
    }

    private struct Members {
        var servers: [ServerState]
        var settings: BackendSettings
        /// The next `ServerState.ordinal` to hand out.
        var nextOrdinal: Int
    }

    private let members: Mutex<Members>
    /// The schedule as published: replaced whole, read through one reference (a pick retains that,
    /// not each of the schedule's arrays).
    final class PublishedSchedule: Sendable {
        let value: Schedule
        init(_ value: Schedule) { self.value = value }
    }

    /// Held only to swap the schedule, so a pick never waits while a new one is built.
    private let published = Mutex(PublishedSchedule(Schedule()))

    /// The current schedule. Read its fields in place (`current.value.order[i]`): the fields of an
    /// immutable object are borrowed, where a copy of the `Schedule` would retain each array.
    var current: PublishedSchedule { published.withLock { $0 } }
    /// Serialises writers for the whole rebuild (milliseconds for a 1,000-server backend with mixed
    /// weights): the last republish reads the latest states, and publishes last.
    private let publisher = Mutex(())
    private let cursor = Atomic<Int>(0)
    /// Sessions waiting for a server slot (`maxconn`): this backend's queue and its servers' own.
    let queues = Mutex(Queues())
    /// How many sessions wait in any of `queues`: a free slot looks at the queues only when this is
    /// not zero.
    /// Sessions given to this backend since start (`stot`, HAProxy's `cum_conn` of a backend: once per
    /// session, whatever its retries and redispatches).
    let routedSessions = Atomic<Int>(0)
    let queuedCount = Atomic<Int>(0)
    /// The backend's `fullconn` when one of its servers has a limit that moves (`minconn`, or
    /// `maxconn` with `slowstart`), else 0: every limit is its `maxconn`. Set by `republish()`.
    private let dynamicFullConnections = Atomic<Int>(0)
    /// Most sessions ever waiting in the backend's queue (`qmax`).
    let queueMax = Atomic<Int>(0)
    /// Histograms of the time to connect to a server (the successful attempt), of sessions'
    /// lengths (from accept to close, for sessions that reached a server) and of waits in the
    /// queue (the `sluice_backend_*_seconds` metrics; `show stat`'s `qtime`, `ctime` and `ttime`
    /// are their means).
    let connectTime = DurationHistogram()
    let sessionDuration = DurationHistogram()
    let queueTime = DurationHistogram()

    /// Where state changes are announced (`LoadBalancer.events`); nil in unit tests.
    let events: EventHub?
    /// The backend's `log` targets (with `log global`, the global ones) and the ring to them:
    /// where server state changes are logged, besides the balancer's logger. Nil: no `log`.
    let log = Mutex<(LogRoute, LogRing)?>(nil)

    /// The backend's `email-alert` settings and the balancer's sender. Nil: no email alerts.
    let email = Mutex<(EmailAlert, EmailAlerter)?>(nil)

    /// Sends `text` to the backend's `log` targets at syslog `level` (1 alert: a server is DOWN;
    /// 0 emerg: no server left; 5 notice: UP and other changes — HAProxy's levels) and, when
    /// `mailLevel` is given and within `email-alert level`, mails it (without its final period,
    /// as HAProxy's `send_email_alert`). HAProxy mails only server DOWN/UP/drain lines and
    /// `option log-health-checks` lines (at info).
    func announce(level: Int, _ text: String, mailLevel: Int? = nil) {
        if let mailLevel, let (alert, sender) = email.withLock({ $0 }), mailLevel <= alert.level {
            sender.send(alert, message: text.hasSuffix(".") ? String(text.dropLast()) : text)
        }
        guard let (route, ring) = log.withLock({ $0 }) else { return }
        ring.log(route, level: level, text)
    }

    /// Where a `slowstart` ramp that begins outside health checks is handed to the check runner.
    let warmUps: WarmUpRelay?

    init(name: String, servers: [ServerState], settings: BackendSettings, events: EventHub? = nil, warmUps: WarmUpRelay? = nil) {
        self.name = name
        nameBytes = Array(name.utf8)
        self.events = events
        self.warmUps = warmUps
        self.members = Mutex(Members(servers: servers, settings: settings, nextOrdinal: servers.count))
        republish()
    }

    /// The current servers, in configuration order.
    public var servers: [ServerState] { members.withLock { $0.servers } }

    /// The connection policy new sessions take.
    var settings: BackendSettings { members.withLock { $0.settings } }

    /// The server called `name`.
    public func server(named name: String) -> ServerState? { servers.first { $0.name == name } }

    /// Rebuilds the schedule from the servers' current states and weights.
    @_spi(Benchmarks) public func republish() {
        publisher.withLock { _ in
            let (servers, settings) = members.withLock { ($0.servers, $0.settings) }
            dynamicFullConnections.store(servers.contains { $0.hasDynamicLimit } ? max(1, settings.fullConnections) : 0, ordering: .relaxed)
            let primaries = servers.filter { !$0.isBackup && $0.isUsable }
            let now = monotonicMilliseconds()
            var next = Schedule(servers: servers, usablePrimaries: primaries.count, algorithm: settings.balance)
            // One weight per server, 0 for those not in rotation (all of them when none is usable).
            var weights = [Int](repeating: 0, count: servers.count)
            if !primaries.isEmpty {
                weights = servers.map { !$0.isBackup && $0.isUsable ? $0.effectiveWeight(now: now) : 0 }
            } else if settings.allBackups {
                weights = servers.map { $0.isBackup && $0.isUsable ? $0.effectiveWeight(now: now) : 0 }
                next.onBackups = true
            } else if let first = servers.firstIndex(where: { $0.isBackup && $0.isUsable && $0.weight > 0 }) {
                // HAProxy uses only the first usable backup unless `option allbackups`.
                weights = servers.indices.map { $0 == first ? 1 : 0 }
                next.onBackups = true
            }
            next.eligible = weights.indices.filter { weights[$0] > 0 }.map(Int32.init)
            next.balanceFactor = settings.balanceFactor
            next.totalWeight = weights.reduce(0, +)
            switch settings.balance {
            case .roundRobin, .staticRoundRobin: next.order = RoundRobin.schedule(weights: weights)
            case .source, .hash:
                next.map = settings.consistentHashing ? Maglev.table(names: servers.map(\.name), weights: weights) : SourceHash.map(weights: weights)
            case .random:
                next.map = Maglev.table(names: servers.map(\.name), weights: weights)
                next.draws = settings.randomDraws
            case .leastConnections, .first: break
            }
            _ = published.replace(with: PublishedSchedule(next))  // the old one is freed here, outside the lock
        }
        // New capacity (a server came up, a weight or maxconn grew) goes to waiting sessions first.
        if queuedCount.load(ordering: .relaxed) > 0 { dispatch() }
    }

    /// Where a session goes after a failed connect to `server`, following HAProxy: with
    /// `option redispatch`, elsewhere at once when more than one primary is usable (round-robin),
    /// on the retries its interval names (by default the last), or when the server is no longer
    /// usable; and a checked server that has not been checked yet was never shown healthy (nothing
    /// asked to stick to it), so its failure goes elsewhere even without the option. Nil: retry the
    /// same server. A `direct` session (assigned outright) leaves its server only on those retries
    /// or when the server can no longer take it, as HAProxy's sessions assigned outright do.
    func redispatchTarget(after server: ServerState, direct: Bool = false, policy: BackendSettings, retriesLeft: Int, avoiding tried: UInt64) -> ServerState? {
        let neverChecked = server.isChecked && server.lastCheck.status == .initial
        let due = Self.redispatchDue(retry: policy.retries - retriesLeft, retries: policy.retries, interval: Int(policy.redispatchInterval))
        let leave = direct ? due || !server.takesDirectSessions : usablePrimaries > 1 || due || !server.isUsable
        let redispatch = policy.redispatch
        guard (redispatch && leave) || neverChecked else { return nil }
        return pick(avoiding: tried)
    }

    /// Whether retry number `retry` (1 for the first) is one `option redispatch <interval>` sends
    /// elsewhere: HAProxy's `stream_choose_redispatch` (every `interval`th when positive; when
    /// negative, those whose number is a multiple of `retries + 1 + interval`, so -1 is the last).
    static func redispatchDue(retry: Int, retries: Int, interval: Int) -> Bool {
        let period = interval > 0 ? interval : retries + 1 + interval
        return interval != 0 && period > 0 && retry > 0 && retry % period == 0
    }

    /// A usable server for a new session, not in `avoiding` (a bit per `ServerState.ordinal`
    /// modulo 64, for servers a session already failed to reach), or nil when none is. By the
    /// backend's algorithm: the next in round-robin order, the least loaded, the first with a free
    /// slot, or the one the client's address hashes to (`hash`). Servers at their `maxconn` are
    /// skipped, except by `source`, whose client then waits for its own server.
    /// Public to the micro-benchmarks only (`bench/Benchmarks`).
    /// `budget`: what the servers' limits depend on (nil: the backend now, with one more session).
    @_spi(Benchmarks) public func pick(avoiding: UInt64 = 0, hash: UInt32 = 0) -> ServerState? {
        pick(avoiding: avoiding, hash: hash, budget: slotBudget(placing: 1))
    }

    func pick(avoiding: UInt64 = 0, hash: UInt32 = 0, budget: SlotBudget) -> ServerState? {
        let published = current
        let bound = BoundedLoad(published)
        func eligible(_ server: ServerState) -> Bool { avoiding & server.avoidanceBit == 0 && server.isUsable && bound.admits(server) }
        switch published.value.algorithm {
        case .roundRobin, .staticRoundRobin:
            let count = published.value.order.count
            guard count > 0 else { return nil }
            let start = cursor.wrappingAdd(1, ordering: .relaxed).oldValue
            for step in 0..<count {
                let server = published.value.servers[Int(published.value.order[Int(UInt(bitPattern: start &+ step) % UInt(count))])]
                if eligible(server) && server.hasFreeSlot(budget) { return server }
            }
            return nil
        case .leastConnections:
            return LeastConnections.pick(published.value.servers, published.value.eligible, start: cursor.wrappingAdd(1, ordering: .relaxed).oldValue, budget: budget, eligible)
        case .first:
            for index in published.value.eligible {
                let server = published.value.servers[Int(index)]
                if eligible(server) && server.hasFreeSlot(budget) { return server }
            }
            return nil
        case .source, .hash:
            return SourceHash.pick(published.value.servers, published.value.map, hash: hash, eligible)
        case .random:
            return RandomDraws.pick(published.value.servers, published.value.map, published.value.eligible, draws: published.value.draws,
                                    seed: UInt64(bitPattern: Int64(cursor.wrappingAdd(1, ordering: .relaxed).oldValue)), budget: budget, eligible)
        }
    }

    /// What the servers' limits depend on now, counting `placing` sessions not yet in the backend's
    /// queue or on a server (HAProxy counts a session in `beconn` from its assignment to the
    /// backend until it is freed).
    @inline(__always)
    func slotBudget(placing: Int) -> SlotBudget {
        let full = dynamicFullConnections.load(ordering: .relaxed)
        guard full > 0 else { return .fixed }
        return SlotBudget(sessions: Int(load(.sessions)) + placing, full: full, now: monotonicMilliseconds())
    }

    /// How many primaries can take sessions now.
    var usablePrimaries: Int { current.value.usablePrimaries }

    /// Changes a server's admin state and republishes. `reason` goes with the event. A server with
    /// `slowstart` leaving maintenance warms up, as HAProxy's does.
    public func setAdmin(_ state: AdminState, of server: ServerState, reason: String? = nil) {
        let before = server.admin
        applyAdmin(state, of: server, reason: reason)
        warmUpIfBack(server, from: before)
    }

    /// A server leaving maintenance UP starts its `slowstart` ramp (HAProxy's SRV_ST_STARTING from
    /// `srv_update_status`), stepped by the check runner like one after a check brought it back.
    private func warmUpIfBack(_ server: ServerState, from before: AdminState) {
        guard before == .maintenance, server.admin != .maintenance, server.operational != .stopped,
              server.slowStartMs.load(ordering: .relaxed) > 0 else { return }
        server.rampStart.store(monotonicMilliseconds(), ordering: .relaxed)
        republish()
        warmUps?.started(server, of: self)
    }

    /// The admin state alone, without a warm-up (a state file read at start, as HAProxy's
    /// MODE_STARTING); returns how many waiting sessions moved to the backend's queue.
    @discardableResult
    func applyAdmin(_ state: AdminState, of server: ServerState, reason: String?) -> Int {
        let before = server.admin
        if before != state {
            server.lastChange.store(monotonicMilliseconds(), ordering: .relaxed)
            events?.publish(.serverAdmin(backend: name, server: server.name, from: before, to: state, reason: reason))
        }
        server.adminStorage.store(state.rawValue, ordering: .releasing)
        // HAProxy zeroes the health of a server entering maintenance; one without checks keeps 0
        // once it is back (`show servers state`).
        if state == .maintenance && server.checkPlan == nil { server.health.store(0, ordering: .relaxed) }
        republish()
        return server.isUsable ? 0 : redistribute(from: server)
    }

    /// The end of HAProxy's server state lines (`srv_append_status`): the servers left (`down`) or
    /// online, " Running on backup." when only backups are, and the sessions of `server`: active
    /// (when down), requeued, waiting in its queue.
    func serversStatus(after server: ServerState, down: Bool, requeued: Int = 0) -> String {
        let usable = servers.filter(\.isUsable)
        let (primaries, backups) = (usable.filter { !$0.isBackup }.count, usable.filter(\.isBackup).count)
        let onBackup = backups > 0 && primaries == 0 ? " Running on backup." : ""
        let queued = queueLength(of: server)
        return down
            ? ". \(primaries) active and \(backups) backup servers left.\(onBackup) \(server.currentSessions.load(ordering: .relaxed)) sessions active, \(requeued) requeued, \(queued) remaining in queue."
            : ". \(primaries) active and \(backups) backup servers online.\(onBackup) \(requeued) sessions requeued, \(queued) total in queue."
    }

    /// Whether no server of the backend is usable.
    var hasNoUsableServer: Bool { !servers.contains(where: \.isUsable) }

    /// No server of the backend is usable any more: HAProxy's `set_backend_down` line (its alert
    /// on standard error quotes the name; the log line does not), at emerg.
    func announceNoServer() {
        announce(level: 0, "\(settings.proxyType) \(name) has no server available!")
    }

    /// `setAdmin` as the runtime API and agents change it, logged (and a drain mailed) in HAProxy
    /// 2.6's words and levels (`srv_update_status`): going DOWN for maintenance (alert), was DOWN
    /// and now enters maintenance, leaving forced maintenance, enters drain state, leaving forced
    /// drain (notice).
    func setAdminAnnounced(_ state: AdminState, of server: ServerState, reason: String?) {
        let before = server.admin
        let wasStopped = server.operational == .stopped, wasStopping = server.operational == .stopping
        let requeued = applyAdmin(state, of: server, reason: reason)
        guard before != state else { return }
        // Leaving maintenance, a checked server starts at `rise`, UP at once and checked as usual
        // (HAProxy's "start OK but check immediately"), unless its agent says it is down.
        if before == .maintenance, let plan = server.checkPlan, server.checksEnabled.load(ordering: .relaxed),
           server.configuration.track == nil, server.agentPlan == nil || server.agentHealth.load(ordering: .relaxed) > 0 {
            server.health.store(plan.rise, ordering: .relaxed)
            if server.operational == .stopped { setOperational(.running, of: server, reason: reason) }
        }
        warmUpIfBack(server, from: before)
        let who = "\(server.isBackup ? "Backup " : "")Server \(name)/\(server.name)"
        if state == .maintenance {
            if wasStopped {
                announce(level: 5, "\(who) was DOWN and now enters maintenance.")
                return
            }
            announce(level: wasStopping ? 5 : 1, "\(who) is going DOWN for maintenance\(serversStatus(after: server, down: true, requeued: requeued))")
            if hasNoUsableServer { announceNoServer() }
            return
        }
        let health = server.operational == .stopped ? "DOWN" : "UP"
        if before == .maintenance {
            announce(level: 5, "\(who) is \(health)/\(state == .drain ? "DRAIN" : "READY") (leaving forced maintenance).")
        }
        if state == .drain && before == .maintenance {
            // HAProxy sets the drain flag while the server is still in maintenance, then clears that.
            announce(level: 5, "\(who) remains in forced drain mode.")
        } else if state == .drain {
            announce(level: 5, "\(who) enters drain state\(serversStatus(after: server, down: false, requeued: requeued))", mailLevel: 5)
        } else if before == .drain {
            announce(level: 5, "\(who) is \(health) (leaving forced drain).")
        }
    }

    /// Changes a server's weight (0...256) and republishes.
    public func setWeight(_ weight: Int, of server: ServerState) {
        precondition((0...256).contains(weight), "weight \(weight) for server '\(server.name)' is outside 0...256")
        let before = server.weightStorage.exchange(weight, ordering: .relaxed)
        if before != weight { events?.publish(.serverWeight(backend: name, server: server.name, from: before, to: weight)) }
        republish()
    }

    /// Changes a server's health state and republishes. `reason`: the check's verdict, if one decided.
    func setOperational(_ state: OperationalState, of server: ServerState, reason: String? = nil) {
        let before = OperationalState(rawValue: server.operationalStorage.exchange(state.rawValue, ordering: .acquiringAndReleasing)) ?? .running
        if before != state { events?.publish(.serverHealth(backend: name, server: server.name, from: before, to: state, reason: reason)) }
        republish()
        if !server.isUsable { redistribute(from: server) }
        // `track`: followers take the same state (and pass it on to theirs).
        for (backend, follower) in server.trackers.withLock({ $0 }) where follower.operational != state {
            follower.lastChange.store(monotonicMilliseconds(), ordering: .relaxed)
            backend.setOperational(state, of: follower, reason: "tracking \(name)/\(server.name)")
        }
    }

    /// Replaces the membership and policy (a reload). Servers are matched by the caller; new ones
    /// get fresh ordinals.
    func replace(servers: [ServerState], settings: BackendSettings) {
        members.withLock { m in
            m.servers = servers
            m.settings = settings
        }
        republish()
    }

    /// Sessions closed for waiting past `timeout queue` since the last announcement, and when that
    /// was (monotonic ms).
    private let queueTimeouts = Atomic<Int>(0)
    private let queueTimeoutsAnnounced = Atomic<Int64>(Int64.min / 2)

    /// A session found no server slot within `timeout queue` and is closed. Said (a notice and an
    /// event) at most once a second per backend, with the number closed since the previous one:
    /// a backend that overflows would otherwise say it for every client.
    func queueTimedOut(frontend: String, now: Int64, logger: Logger) {
        queueTimeouts.wrappingAdd(1, ordering: .relaxed)
        let last = queueTimeoutsAnnounced.load(ordering: .relaxed)
        guard now - last >= 1000, queueTimeoutsAnnounced.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged else { return }
        let count = queueTimeouts.exchange(0, ordering: .relaxed)
        logger.notice("backend '\(name)': \(count) client(s) found no server slot within timeout queue and were closed (the last of frontend '\(frontend)')")
        events?.publish(.queueTimedOut(backend: name, sessions: count))
    }

    /// `set server <b>/<s> addr <ip> port <p>`: new sessions and checks go to `address`; the
    /// sessions in flight stay where they are.
    public func setAddress(_ address: SocketAddress, of server: ServerState) {
        setAddress(address, of: server, by: "library")
    }

    /// `set server <b>/<s> health up|stopping|down`: the server's health as if its checks had
    /// decided it; as HAProxy's CLI, its health counter goes to the top (up, stopping) or to 0
    /// (down), and the checks that follow count from there.
    public func setHealth(_ state: OperationalState, of server: ServerState) {
        setHealth(state, of: server, reason: "library")
    }

    func setHealth(_ state: OperationalState, of server: ServerState, reason: String) {
        if let plan = server.checkPlan { server.health.store(state.isUp ? plan.rise + plan.fall - 1 : 0, ordering: .relaxed) }
        setOperational(state, of: server, reason: reason)
    }

    /// Moves a server to a new address for new sessions and checks; `by` says who (events, logs).
    func setAddress(_ address: SocketAddress, of server: ServerState, by: String) {
        let before = server.address
        server.setAddress(address)
        if before != address { events?.publish(.serverAddress(backend: name, server: server.name, from: before.description, to: address.description, by: by)) }
    }

    /// `add server`: one more member, same policy.
    /// `add server`: the server joins with its id: `explicit`, else the smallest one free (as
    /// HAProxy). Returns the name of the member holding `explicit` when it is taken, and adds nothing.
    func append(_ server: ServerState, id explicit: Int?) -> String? {
        let holder: String? = members.withLock { m in
            if let explicit, let holder = m.servers.first(where: { $0.id == explicit }) { return holder.name }
            server.idStorage.store(explicit ?? Numbering.firstFree(Set(m.servers.map(\.id))), ordering: .relaxed)
            m.servers.append(server)
            return nil
        }
        if holder == nil { republish() }
        return holder
    }

    /// `del server`: the member leaves (its sessions, if any, keep their pointer to it).
    func remove(_ server: ServerState) {
        members.withLock { $0.servers.removeAll { $0 === server } }
        republish()
    }

    /// A reload's `use-server` and `stick` rules (built once every backend and table exists).
    func setServerRules(_ rules: FrontendRouting?) {
        members.withLock { $0.settings.serverRules = rules }
    }

    /// A fresh ordinal for a server joining this backend.
    func nextOrdinal() -> Int {
        members.withLock { m in
            defer { m.nextOrdinal += 1 }
            return m.nextOrdinal
        }
    }
}

/// A backend's connection policy, in the units the data path uses. Sessions copy it when they
/// start, so a reload changes it for new sessions only.
struct BackendSettings: Sendable {
    /// What HAProxy's messages call it (`proxy_type_str`): "backend", or "proxy" for a `listen`.
    var proxyType = "backend"
    var retries = 0
    var redispatch = false
    /// `option redispatch <interval>` (-1: the last retry).
    var redispatchInterval: Int32 = -1
    var allBackups = false
    var connectTimeoutMs: Int64 = 0
    var queueTimeoutMs: Int64 = 0
    /// 0 means no limit.
    var serverTimeoutMs: Int64 = 0
    /// 0: unset (the server timeout applies).
    var serverFinTimeoutMs: Int64 = 0
    /// 0: unset.
    var tunnelTimeoutMs: Int64 = 0
    var balance = BalanceAlgorithm.roundRobin
    /// `hash-type consistent`: `source` picks through a Maglev table instead of a weight map.
    var consistentHashing = false
    /// `balance random(<draws>)`.
    var randomDraws = 2
    /// `hash-balance-factor`; 0: off.
    var balanceFactor = 0
    /// `fullconn`, as given or HAProxy's default (`Configuration.fullConnections(of:unlimited:)`).
    var fullConnections = 1
    /// `balance hash <expr>`: the expression, with an evaluator for it.
    var hashKey: HashKey?
    /// `option srvtcpka`.
    var keepAlive = KeepAliveSettings()
    /// `option nolinger`: close server connections with a reset.
    var noLinger = false
    /// `option abortonclose`: drop a session whose client closed before it was connected.
    var abortOnClose = false
    /// `option independent-streams`: only bytes from the server refresh `timeout server`.
    var independentStreams = false
    /// `use-server` rules, and `stick` rules (persistence through stick tables).
    var serverRules: FrontendRouting?
    /// `option persist`: rules may choose a server whatever its state.
    var persist = false
    /// `persist rdp-cookie`: the cookie's name.
    var rdpPersistence: [UInt8]?
    /// `source` in the backend (a server's own `source` wins).
    var source: SourceBinding?

    /// Nothing allowed: a free session slot's placeholder.
    init() {}

    init(_ backend: Backend) {
        retries = backend.retries
        redispatch = backend.redispatch
        persist = backend.persist
        proxyType = backend.isListen ? "proxy" : "backend"
        redispatchInterval = Int32(clamping: backend.redispatchInterval)
        allBackups = backend.allBackups
        connectTimeoutMs = backend.effectiveConnectTimeout.milliseconds
        queueTimeoutMs = (backend.queueTimeout ?? backend.effectiveConnectTimeout).milliseconds
        serverTimeoutMs = backend.serverTimeout?.milliseconds ?? 0
        serverFinTimeoutMs = backend.serverFinTimeout?.milliseconds ?? 0
        tunnelTimeoutMs = backend.tunnelTimeout?.milliseconds ?? 0
        balance = backend.balance
        consistentHashing = backend.consistentHashing
        randomDraws = backend.randomDraws
        hashKey = backend.hashExpression.map { HashKey(expression: $0, backend: backend.name) }
        rdpPersistence = backend.rdpPersistence.map { Array($0.utf8) }
        source = backend.source
        balanceFactor = backend.consistentHashing || backend.balance == .random ? backend.balanceFactor : 0
        keepAlive = KeepAliveSettings(backend.serverKeepAlive)
        noLinger = backend.noLinger
        abortOnClose = backend.abortOnClose
        independentStreams = backend.independentStreams
    }
}

/// Hands a `slowstart` ramp that began outside health checks (a server leaving maintenance) to
/// the worker running checks, whose runner steps every ramp. Connected once the workers exist.
final class WarmUpRelay: Sendable {
    private let deliver = Mutex<(@Sendable (BackendState, ServerState) -> Void)?>(nil)

    func connect(_ deliver: @escaping @Sendable (BackendState, ServerState) -> Void) { self.deliver.withLock { $0 = deliver } }

    func started(_ server: ServerState, of backend: BackendState) { deliver.withLock { $0 }?(backend, server) }
}
