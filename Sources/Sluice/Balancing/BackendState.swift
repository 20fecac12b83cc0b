import Synchronization

/// The live state of one backend, shared by every reactor.
///
/// Readers take the current `Schedule` (an immutable value) and advance one atomic cursor; writers
/// (health checks, the runtime API) change a server's state and call `republish()`, which builds a
/// new schedule. Reactors never wait on each other for a pick.
public final class BackendState: Sendable {
    public let name: String
    public let servers: [ServerState]
    let settings: BackendSettings

    /// Which servers receive new sessions, in order. Replaced whole by `republish()`.
    struct Schedule: Sendable {
        /// Server indices in smooth round-robin order; empty when no server is usable.
        var order: [Int32] = []
        /// True when `order` holds backups because no primary is usable.
        var onBackups = false
        /// Usable primaries, for HAProxy's redispatch rule (redispatch at once when more than one).
        var usablePrimaries = 0
    }

    private let schedule: Mutex<Schedule>
    private let cursor = Atomic<Int>(0)

    init(name: String, servers: [ServerState], settings: BackendSettings) {
        self.name = name
        self.servers = servers
        self.settings = settings
        self.schedule = Mutex(Schedule())
        republish()
    }

    /// The server called `name`.
    public func server(named name: String) -> ServerState? { servers.first { $0.name == name } }

    /// Rebuilds the schedule from the servers' current states and weights.
    func republish() {
        let primaries = servers.filter { !$0.isBackup && $0.isUsable }
        var next = Schedule(usablePrimaries: primaries.count)
        if !primaries.isEmpty {
            next.order = RoundRobin.schedule(weights: servers.map { !$0.isBackup && $0.isUsable ? $0.weight : 0 })
        } else if settings.allBackups {
            next.order = RoundRobin.schedule(weights: servers.map { $0.isBackup && $0.isUsable ? $0.weight : 0 })
            next.onBackups = true
        } else if let first = servers.first(where: { $0.isBackup && $0.isUsable }) {
            // HAProxy uses only the first usable backup unless `option allbackups`.
            next.order = [Int32(first.index)]
            next.onBackups = true
        }
        schedule.withLock { $0 = next }
    }

    /// The next server in rotation that is not in `avoiding` (a bit per server index, for
    /// servers a session already failed to reach), or nil when none is usable.
    func pick(avoiding: UInt64 = 0) -> ServerState? {
        let current = schedule.withLock { $0 }
        let order = current.order
        guard !order.isEmpty else { return nil }
        let start = cursor.wrappingAdd(1, ordering: .relaxed).oldValue
        for step in 0..<order.count {
            let index = Int(order[Int(UInt(bitPattern: start &+ step) % UInt(order.count))])
            if index < 64 && avoiding & (1 << UInt64(index)) != 0 { continue }
            let server = servers[index]
            if server.isUsable { return server }
        }
        return nil
    }

    /// How many primaries can take sessions now.
    var usablePrimaries: Int { schedule.withLock { $0.usablePrimaries } }

    /// Changes a server's admin state and republishes.
    public func setAdmin(_ state: AdminState, of server: ServerState) {
        server.adminStorage.store(state.rawValue, ordering: .releasing)
        republish()
    }

    /// Changes a server's weight (0...256) and republishes.
    public func setWeight(_ weight: Int, of server: ServerState) {
        precondition((0...256).contains(weight), "weight \(weight) for server '\(server.name)' is outside 0...256")
        server.weightStorage.store(weight, ordering: .relaxed)
        republish()
    }

    /// Changes a server's health state and republishes.
    func setOperational(_ state: OperationalState, of server: ServerState) {
        server.operationalStorage.store(state.rawValue, ordering: .releasing)
        republish()
    }
}

/// A backend's connection policy, in the units the data path uses.
struct BackendSettings: Sendable {
    var retries: Int
    var redispatch: Bool
    var allBackups: Bool
    var connectTimeoutMs: Int64
    var queueTimeoutMs: Int64
    /// 0 means no limit.
    var serverTimeoutMs: Int64
    var serverFinTimeoutMs: Int64
    var tunnelTimeoutMs: Int64

    init(_ backend: Backend) {
        retries = backend.retries
        redispatch = backend.redispatch
        allBackups = backend.allBackups
        connectTimeoutMs = backend.effectiveConnectTimeout.milliseconds
        queueTimeoutMs = (backend.queueTimeout ?? backend.effectiveConnectTimeout).milliseconds
        serverTimeoutMs = backend.serverTimeout?.milliseconds ?? 0
        serverFinTimeoutMs = backend.serverFinTimeout?.milliseconds ?? serverTimeoutMs
        tunnelTimeoutMs = backend.tunnelTimeout?.milliseconds ?? 0
    }
}
