import Synchronization

/// What an operator asked of a server, independent of its health (HAProxy's admin state).
public enum AdminState: UInt8, Sendable, CustomStringConvertible {
    /// In rotation.
    case ready = 0
    /// No new sessions; existing ones continue; health checks continue.
    case drain = 1
    /// No new sessions; checks stop. `disabled` in the configuration starts here.
    case maintenance = 2

    /// HAProxy's word for it in `show servers state` and logs.
    public var description: String {
        switch self {
        case .ready: "READY"
        case .drain: "DRAIN"
        case .maintenance: "MAINT"
        }
    }
}

/// What health checks concluded: HAProxy's operational state, with its numbers (`show servers
/// state`'s `srv_op_state`). A server UP whose checks are failing but not yet `fall` times is still
/// `running` ("UP 2/3" is its status, from its health counter), as in HAProxy.
public enum OperationalState: UInt8, Sendable, CustomStringConvertible {
    /// Down: checks failed `fall` times in a row, or the runtime API said so.
    case stopped = 0
    /// Up and warming up (HAProxy's slow-start state, read from its server-state files); Sluice
    /// treats it as `running` and ramps weights with `slowstart` instead.
    case starting = 1
    /// Up. A server without `check` is always here unless the runtime API says otherwise.
    case running = 2
    /// Up, but soft-stopped: no new load-balanced session, while persistent ones (`stick`,
    /// `use-server`) still reach it. `http-check disable-on-404` puts a server here when it answers
    /// 404, and `set server <s> health stopping` does; `show stat` says NOLB.
    case stopping = 3

    /// As events and logs write it.
    public var description: String {
        switch self {
        case .stopped: "DOWN"
        case .starting: "UP (starting)"
        case .running: "UP"
        case .stopping: "NOLB"
        }
    }

    /// Up, whether or not it takes load-balanced sessions (HAProxy: not `SRV_ST_STOPPED`).
    var isUp: Bool { self != .stopped }
    /// Whether load balancing may pick it (HAProxy's `srv_currently_usable`, for the state).
    var balances: Bool { self == .running || self == .starting }
}

/// A server's live state, shared by every reactor. Fields are atomics: reactors update counters
/// without locks; state changes go through the owning `BackendState`, which republishes its schedule.
public final class ServerState: Sendable {
    /// The name on its `server` line, unique in its backend.
    public let name: String
    /// A number unique within the backend, for life: sessions mark servers they failed to reach
    /// with bit `ordinal % 64`.
    let ordinal: Int
    /// HAProxy's server id (`id`, else numbered as HAProxy numbers servers): `show stat`'s `sid`,
    /// `show servers state`'s `srv_id`, what `stick` rules store. A reload may renumber it.
    public var id: Int { idStorage.load(ordering: .relaxed) }
    let idStorage: Atomic<Int>
    /// `backup`: it takes sessions only when no primary server is usable (or with `option allbackups`).
    public let isBackup: Bool
    private let addressStorage: Mutex<SocketAddress>

    /// The server's configuration line, for its policies (`observe`, `on-marked-down` …); a reload
    /// may replace it.
    let configurationStorage: Mutex<Server>
    /// The `server` line it runs with now (a reload may replace it).
    public var configuration: Server { configurationStorage.withLock { $0 } }
    /// What its line says about each connection to it, read per connection (only these fields
    /// are copied): `source`, and `tcp-ut` in milliseconds (0: the kernel's).
    var connectSettings: (source: SourceBinding?, userTimeoutMs: Int, fastOpen: Bool, socks4: SocketAddress?, namespace: CInt?) {
        configurationStorage.withLock { ($0.source, $0.userTimeout.map { Int($0.milliseconds) } ?? 0, $0.fastOpen, $0.socks4Address, $0.namespaceDescriptor) }
    }
    /// Where and how often checks run; nil without `check`. A reload may replace it.
    let checkPlanStorage: Mutex<CheckPlan?>
    var checkPlan: CheckPlan? { checkPlanStorage.withLock { $0 } }
    /// The agent check's plan (`agent-check`); nil without one.
    let agentPlanStorage: Mutex<CheckPlan?>
    var agentPlan: CheckPlan? { agentPlanStorage.withLock { $0 } }
    /// The agent's health, HAProxy's with rise and fall of 1: 1 until the agent answers `down`,
    /// `fail` or `stopped` (the server goes DOWN) or fails after connecting; then 0, and the server
    /// cannot come UP until the agent says `up`.
    let agentHealth = Atomic<Int>(1)
    /// An agent holds the server down: configured, enabled, and its health at 0.
    var agentHoldsDown: Bool { agentHealth.load(ordering: .relaxed) == 0 && hasEnabledAgent }
    /// The server has an agent check and it is not disabled.
    var hasEnabledAgent: Bool { agentEnabled.load(ordering: .relaxed) && agentPlan != nil }
    /// `disable agent` / `enable agent`: whether agent checks run and their health counts.
    let agentEnabled = Atomic<Bool>(true)
    /// The agent check's latest result and whether one runs now (`agent_*` of `show stat`).
    let agentStorage = Mutex(CheckProgress())
    /// False after the runtime API's `disable health`: checks stop and the server counts as UP.
    let checksEnabled = Atomic<Bool>(true)
    /// HAProxy's health counter value (see `HealthCounter`); written by the check reactor only.
    let health: Atomic<Int>
    /// The latest check's outcome, and whether a check is running now; one lock so that a reader
    /// never sees a new result still marked as running.
    let checkStorage = Mutex<CheckProgress>(CheckProgress())
    /// Failed checks (`chkfail`) and UP→DOWN transitions (`chkdown`).
    let failedChecks = Atomic<Int>(0)
    let downTransitions = Atomic<Int>(0)
    /// Monotonic milliseconds of the last operational or admin change (`lastchg`).
    let lastChange = Atomic<Int64>(monotonicMilliseconds())
    /// Monotonic milliseconds of the last session sent here (`lastsess`); 0 when none yet.
    let lastSessionAt = Atomic<Int64>(0)
    /// Time spent DOWN before the current period (`downtime`), and when the current one began (0: up).
    let downtimeMs = Atomic<Int64>(0)
    let downSince = Atomic<Int64>(0)
    /// Started in maintenance by `init-addr none` because its name did not resolve; the first
    /// `set server addr` gives it an address and takes it out of maintenance (HAProxy's RMAINT).
    let awaitingAddress = Atomic<Bool>(false)
    /// Its address came from a DNS answer (`resolvers`): a reload keeps it instead of the one the
    /// system resolver gives at reload.
    let resolvedByDNS = Atomic<Bool>(false)
    /// The host an SRV record gave it (its `srv_fqdn`); nil otherwise.
    let dnsTarget = Mutex<String?>(nil)
    /// Consecutive connection failures seen on traffic, for `observe layer4`.
    let observedErrors = Atomic<Int>(0)

    /// The weight the configuration gave (HAProxy's initial weight, `iweight`).
    var configuredWeight: Int { configuration.weight }
    let weightStorage: Atomic<Int>
    let adminStorage: Atomic<UInt8>
    let operationalStorage: Atomic<UInt8>

    /// Servers that `track` this one, with their backends: they take its health state.
    let trackers = Mutex<[(BackendState, ServerState)]>([])

    /// `slowstart` in milliseconds (0: none); a reload may change it.
    let slowStartMs: Atomic<Int64>
    /// When the current slow start began (monotonic ms), 0 when none is in progress. Set by the
    /// check reactor when the server comes back UP.
    let rampStart = Atomic<Int64>(0)

    /// `maxconn`: sessions at once (`Int.max`: no limit); a reload may change it.
    let maxConnectionsStorage: Atomic<Int>
    /// `minconn` when below `maxconn` (a dynamic limit), else 0; a reload may change it.
    let minConnectionsStorage: Atomic<Int>
    /// `maxqueue`: sessions that may wait in this server's own queue (`Int.max`: no limit).
    let maxQueueStorage: Atomic<Int>
    /// Most sessions ever waiting in this server's queue (`qmax`).
    let queueMax = Atomic<Int>(0)
    /// Sessions that waited in a queue and then got this server, and their total wait (`qtime`).
    let dequeuedSessions = Atomic<Int>(0)
    let dequeuedWaitMs = Atomic<Int>(0)

    /// Sessions open to this server now (`scur`).
    let currentSessions = Atomic<Int>(0)
    /// Highest `currentSessions` seen (`smax`).
    let maxSessions = Atomic<Int>(0)
    /// Sessions ever established or attempted (`stot`).
    let totalSessions = Atomic<Int>(0)
    /// Sessions whose connect failed with no retry left (`econ`, as HAProxy counts it).
    let connectErrors = Atomic<Int>(0)
    /// Responses refused by `tcp-response content reject` (`dresp`).
    let deniedResponses = Atomic<Int>(0)
    /// Retries on this server (`wretr`) and redispatches away from it (`wredis`).
    let retries = Atomic<Int>(0)
    let redispatches = Atomic<Int>(0)
    /// Bytes from clients to this server (`bin`) and back (`bout`).
    let bytesIn = Atomic<Int>(0)
    let bytesOut = Atomic<Int>(0)

    init(name: String, ordinal: Int, address: SocketAddress, weight: Int, isBackup: Bool, admin: AdminState,
         configuration: Server? = nil, checkPlan: CheckPlan? = nil, agentPlan: CheckPlan? = nil) {
        self.agentPlanStorage = Mutex(agentPlan)
        self.configurationStorage = Mutex(configuration ?? Server(name: name, endpoint: Endpoint(host: address.ip, port: address.port), weight: weight, isBackup: isBackup))
        self.checkPlanStorage = Mutex(checkPlan)
        self.health = Atomic(checkPlan?.rise ?? 1)
        self.name = name
        self.ordinal = ordinal
        self.idStorage = Atomic(configuration?.id ?? ordinal + 1)
        self.addressStorage = Mutex(address)
        self.isBackup = isBackup
        self.weightStorage = Atomic(weight)
        self.adminStorage = Atomic(admin.rawValue)
        self.operationalStorage = Atomic(OperationalState.running.rawValue)
        self.maxConnectionsStorage = Atomic(configuration?.maxConnections ?? Int.max)
        self.minConnectionsStorage = Atomic(configuration?.minConnections ?? 0)
        self.slowStartMs = Atomic(configuration?.slowStart?.milliseconds ?? 0)
        self.maxQueueStorage = Atomic(configuration?.maxQueue ?? Int.max)
    }

    /// `maxconn`, or nil without one.
    public var maxConnections: Int? {
        let limit = maxConnectionsStorage.load(ordering: .relaxed)
        return limit == Int.max ? nil : limit
    }

    /// The weight selection uses now: during a slow start, `weight` × elapsed / `slowstart`,
    /// rounded up and at least 1 (HAProxy's eweight); otherwise `weight`.
    func effectiveWeight(now: Int64) -> Int {
        let weight = self.weight
        let start = rampStart.load(ordering: .relaxed)
        let length = slowStartMs.load(ordering: .relaxed)
        guard start > 0, length > 0, weight > 0 else { return weight }
        let elapsed = now - start
        guard elapsed < length else { return weight }
        return max(1, Int((Int64(weight) * max(elapsed, 0) + length - 1) / length))
    }

    /// `throttle` in `show stat`: the percentage of the weight in force during a slow start.
    func throttlePercent(now: Int64) -> Int? {
        let start = rampStart.load(ordering: .relaxed)
        let length = slowStartMs.load(ordering: .relaxed)
        guard start > 0, length > 0, now - start < length else { return nil }
        return Int(max(0, now - start) * 100 / length)
    }

    /// The most sessions this server takes now (HAProxy's `srv_dynamic_maxconn`): its `maxconn`;
    /// with `minconn`, while the backend has fewer sessions than its `fullconn`, `maxconn` ×
    /// sessions / `fullconn` but at least `minconn`; during a slow start, the ramp's share of that,
    /// at least 1. `Int.max`: no limit.
    @inline(__always)
    func sessionLimit(_ budget: SlotBudget) -> Int {
        let maximum = maxConnectionsStorage.load(ordering: .relaxed)
        guard maximum != Int.max, !budget.isFixed else { return maximum }
        var limit = maximum
        let minimum = minConnectionsStorage.load(ordering: .relaxed)
        if minimum > 0, minimum < maximum, budget.sessions < budget.full {
            limit = max(minimum, budget.sessions * maximum / budget.full)
        }
        if let percent = throttlePercent(now: budget.now) { limit = max(1, limit * percent / 100) }
        return limit
    }

    /// Whether this server's limit moves with the backend's load or a slow start.
    var hasDynamicLimit: Bool {
        maxConnectionsStorage.load(ordering: .relaxed) != Int.max
            && (minConnectionsStorage.load(ordering: .relaxed) > 0 || slowStartMs.load(ordering: .relaxed) > 0)
    }

    /// Whether a session could be opened here now without exceeding its limit.
    func hasFreeSlot(_ budget: SlotBudget) -> Bool { currentSessions.load(ordering: .relaxed) < sessionLimit(budget) }

    /// Takes one of the server's slots (`sessionLimit`) for a session about to connect, or returns
    /// false when all are taken. Every successful claim is matched by one `releaseSlot()`.
    @inline(__always)
    func claimSlot(_ budget: SlotBudget) -> Bool {
        let limit = sessionLimit(budget)
        if limit == Int.max {
            currentSessions.wrappingAdd(1, ordering: .relaxed)
            return true
        }
        var seen = currentSessions.load(ordering: .relaxed)
        while seen < limit {
            let (exchanged, original) = currentSessions.compareExchange(expected: seen, desired: seen + 1, ordering: .relaxed)
            if exchanged { return true }
            seen = original
        }
        return false
    }

    /// Gives a slot back. The caller hands it on to a queued session (`BackendState.dispatch`).
    @inline(__always)
    func releaseSlot() { currentSessions.wrappingSubtract(1, ordering: .relaxed) }

    /// Whether sessions may be waiting for this server's slots (it has a `maxconn`).
    var isLimited: Bool { maxConnectionsStorage.load(ordering: .relaxed) != Int.max }

    /// Where sessions connect. The runtime API's `set server addr` changes it for new sessions.
    public var address: SocketAddress {
        get { addressStorage.withLock { $0 } }
    }

    func setAddress(_ address: SocketAddress) { addressStorage.withLock { $0 = address } }

    var avoidanceBit: UInt64 { 1 << UInt64(ordinal & 63) }

    /// The weight set by the configuration or `set server … weight` (HAProxy's `uweight`); 0 takes it out of rotation.
    public var weight: Int { weightStorage.load(ordering: .relaxed) }
    /// What the operator decided: ready, drain or maintenance.
    public var admin: AdminState { AdminState(rawValue: adminStorage.load(ordering: .acquiring)) ?? .ready }
    /// What the health checks (or a followed server) decided.
    public var operational: OperationalState { OperationalState(rawValue: operationalStorage.load(ordering: .acquiring)) ?? .running }

    /// The latest health check's outcome (`.initial` before the first, or without `check`).
    public var lastCheck: CheckResult { checkStorage.withLock { $0.last } }

    /// Whether a health check of this server is running now (HAProxy's `"* "` before `check_status`).
    public var checkInProgress: Bool { checkStorage.withLock { $0.running } }

    /// UP→DOWN transitions so far (`chkdown`).
    public var downTransitionCount: Int { downTransitions.load(ordering: .relaxed) }

    /// The status as HAProxy's `show stat` shows it (its `stats_fill_sv_stats_computestate`):
    /// `MAINT`, `DRAIN`, `no check`, `UP`, `NOLB`, `DOWN`, or `UP 1/3`, `NOLB 1/3`, `DRAIN 1/3`,
    /// `DOWN 1/2` while the health counter is between its ends.
    public var status: String {
        if admin == .maintenance { return awaitingAddress.load(ordering: .relaxed) ? "MAINT (resolution)" : "MAINT" }
        let state = operational
        if !state.isUp && agentHoldsDown { return "DOWN (agent)" }
        let counter = checkPlan.flatMap { plan in
            checksEnabled.load(ordering: .relaxed) && configuration.track == nil
                ? HealthCounter(rise: plan.rise, fall: plan.fall, value: health.load(ordering: .relaxed)) : nil
        }
        let going = counter.map { "\($0.value - $0.rise + 1)/\($0.fall)" }
        let full = counter.map { $0.value == $0.top } ?? true
        switch state {
        case .running, .starting:
            if admin == .drain { return hasEnabledAgent ? "DRAIN (agent)" : full ? "DRAIN" : "DRAIN \(going!)" }
            if counter == nil { return configuration.track != nil ? "UP" : "no check" }
            return full ? "UP" : "UP \(going!)"
        case .stopping:
            return full ? "NOLB" : "NOLB \(going!)"
        case .stopped:
            guard let counter, counter.value > 0 else { return "DOWN" }
            return "DOWN \(counter.value)/\(counter.rise)"
        }
    }

    /// Seconds spent DOWN so far, including a period still in progress.
    func downtimeSeconds(now: Int64) -> Int64 {
        let since = downSince.load(ordering: .relaxed)
        return (downtimeMs.load(ordering: .relaxed) + (since > 0 ? now - since : 0)) / 1000
    }

    /// Whether the server is health-checked.
    public var isChecked: Bool { checkPlan != nil }

    /// Ready, healthy, not soft-stopped and with a weight: load balancing may pick it.
    public var isUsable: Bool { admin == .ready && operational.balances && weight > 0 }
    /// Whether `use-server` or a `stick` match may send it a session: UP (a soft-stopped server
    /// too) and ready, whatever its weight (HAProxy's way to reach a server kept out of the rotation
    /// with weight 0). Unlike HAProxy, a draining server
    /// takes none: drain means no new session in Sluice.
    var takesDirectSessions: Bool { admin == .ready && operational.isUp }

    /// Counts a session opened to this server (its slot was claimed with `claimSlot()`).
    @inline(__always)
    func sessionOpened(at time: Int64) {
        lastSessionAt.store(time, ordering: .relaxed)
        let now = currentSessions.load(ordering: .relaxed)
        totalSessions.wrappingAdd(1, ordering: .relaxed)
        var seen = maxSessions.load(ordering: .relaxed)
        while now > seen {
            let (exchanged, original) = maxSessions.compareExchange(expected: seen, desired: now, ordering: .relaxed)
            if exchanged { break }
            seen = original
        }
    }


    /// A snapshot of the counters, for observers.
    public var statistics: ServerStatistics {
        ServerStatistics(
            currentSessions: currentSessions.load(ordering: .relaxed), maxSessions: maxSessions.load(ordering: .relaxed),
            totalSessions: totalSessions.load(ordering: .relaxed), connectErrors: connectErrors.load(ordering: .relaxed),
            retries: retries.load(ordering: .relaxed), redispatches: redispatches.load(ordering: .relaxed),
            bytesIn: bytesIn.load(ordering: .relaxed), bytesOut: bytesOut.load(ordering: .relaxed),
            deniedResponses: deniedResponses.load(ordering: .relaxed))
    }
}

/// Counters of one server at one instant.
public struct ServerStatistics: Hashable, Sendable {
    /// Sessions connected to the server now (`scur`).
    public var currentSessions: Int
    /// The most at once (`smax`).
    public var maxSessions: Int
    /// Sessions sent to it since start (`stot`).
    public var totalSessions: Int
    /// Sessions whose connect to it failed with no retry left (`econ`; each retry counts in `retries`).
    public var connectErrors: Int
    /// Connection attempts made again to it (`wretr`).
    public var retries: Int
    /// Sessions that went elsewhere after failing to reach it (`wredis`).
    public var redispatches: Int
    /// Bytes from clients to it (`bin`).
    public var bytesIn: Int
    /// Bytes from it to clients (`bout`).
    public var bytesOut: Int
    /// Its responses refused by `tcp-response content reject` (`dresp`).
    public var deniedResponses: Int = 0
}

/// What a server's session limit depends on besides its own settings (`ServerState.sessionLimit`):
/// the backend's load against its `fullconn` for `minconn`, and the time for `slowstart`.
struct SlotBudget: Sendable {
    /// The backend's sessions, queued ones included (HAProxy's `beconn`).
    let sessions: Int
    /// The backend's `fullconn`; 0 in `fixed`.
    let full: Int
    /// Monotonic milliseconds.
    let now: Int64

    /// None of the backend's servers has a dynamic limit: each takes its `maxconn`.
    static let fixed = SlotBudget(sessions: 0, full: 0, now: 0)
    var isFixed: Bool { full == 0 }
}
