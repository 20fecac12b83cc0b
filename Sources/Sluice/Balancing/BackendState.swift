import Synchronization

/// The live state of one backend, shared by every reactor, for the life of the process.
///
/// Readers take the current `Schedule` (an immutable value) and advance one atomic cursor; writers
/// (health checks, the runtime API, a reload) change a server's state or the membership and call
/// `republish()`, which builds a new schedule. Reactors never wait on each other for a pick.
public final class BackendState: Sendable {
    public let name: String

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
    }

    private struct Members {
        var servers: [ServerState]
        var settings: BackendSettings
        /// The next `ServerState.ordinal` to hand out.
        var nextOrdinal: Int
    }

    private let members: Mutex<Members>
    /// Held only to swap the schedule, so a pick never waits while a new one is built.
    private let schedule = Mutex(Schedule())
    /// Serialises writers for the whole rebuild (milliseconds for a 1,000-server backend with mixed
    /// weights): the last republish reads the latest states, and publishes last.
    private let publisher = Mutex(())
    private let cursor = Atomic<Int>(0)

    init(name: String, servers: [ServerState], settings: BackendSettings) {
        self.name = name
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
            let (servers, allBackups) = members.withLock { ($0.servers, $0.settings.allBackups) }
            let primaries = servers.filter { !$0.isBackup && $0.isUsable }
            var next = Schedule(servers: servers, usablePrimaries: primaries.count)
            if !primaries.isEmpty {
                next.order = RoundRobin.schedule(weights: servers.map { !$0.isBackup && $0.isUsable ? $0.weight : 0 })
            } else if allBackups {
                next.order = RoundRobin.schedule(weights: servers.map { $0.isBackup && $0.isUsable ? $0.weight : 0 })
                next.onBackups = true
            } else if let first = servers.firstIndex(where: { $0.isBackup && $0.isUsable }) {
                // HAProxy uses only the first usable backup unless `option allbackups`.
                next.order = [Int32(first)]
                next.onBackups = true
            }
            schedule.withLock { $0 = next }
        }
    }

    /// The next server in rotation that is not in `avoiding` (a bit per `ServerState.ordinal`
    /// modulo 64, for servers a session already failed to reach), or nil when none is usable.
    /// Public to the micro-benchmarks only (`bench/Benchmarks`).
    @_spi(Benchmarks) public func pick(avoiding: UInt64 = 0) -> ServerState? {
        let current = schedule.withLock { $0 }
        let order = current.order
        guard !order.isEmpty else { return nil }
        let start = cursor.wrappingAdd(1, ordering: .relaxed).oldValue
        for step in 0..<order.count {
            let server = current.servers[Int(order[Int(UInt(bitPattern: start &+ step) % UInt(order.count))])]
            if avoiding & server.avoidanceBit != 0 { continue }
            if server.isUsable { return server }
        }
        return nil
    }

    /// How many primaries can take sessions now.
    var usablePrimaries: Int { schedule.withLock { $0.usablePrimaries } }

    /// Changes a server's admin state and republishes.
    public func setAdmin(_ state: AdminState, of server: ServerState) {
        if server.admin != state { server.lastChange.store(monotonicMilliseconds(), ordering: .relaxed) }
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

    /// Replaces the membership and policy (a reload). Servers are matched by the caller; new ones
    /// get fresh ordinals.
    func replace(servers: [ServerState], settings: BackendSettings) {
        members.withLock { m in
            m.servers = servers
            m.settings = settings
        }
        republish()
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
    var retries = 0
    var redispatch = false
    var allBackups = false
    var connectTimeoutMs: Int64 = 0
    var queueTimeoutMs: Int64 = 0
    /// 0 means no limit.
    var serverTimeoutMs: Int64 = 0
    /// 0: unset (the server timeout applies).
    var serverFinTimeoutMs: Int64 = 0
    /// 0: unset.
    var tunnelTimeoutMs: Int64 = 0
    /// `option srvtcpka`.
    var keepAlive = KeepAliveSettings()
    /// `option nolinger`: close server connections with a reset.
    var noLinger = false
    /// `option abortonclose`: drop a session whose client closed before it was connected.
    var abortOnClose = false

    /// Nothing allowed: a free session slot's placeholder.
    init() {}

    init(_ backend: Backend) {
        retries = backend.retries
        redispatch = backend.redispatch
        allBackups = backend.allBackups
        connectTimeoutMs = backend.effectiveConnectTimeout.milliseconds
        queueTimeoutMs = (backend.queueTimeout ?? backend.effectiveConnectTimeout).milliseconds
        serverTimeoutMs = backend.serverTimeout?.milliseconds ?? 0
        serverFinTimeoutMs = backend.serverFinTimeout?.milliseconds ?? 0
        tunnelTimeoutMs = backend.tunnelTimeout?.milliseconds ?? 0
        keepAlive = KeepAliveSettings(backend.serverKeepAlive)
        noLinger = backend.noLinger
        abortOnClose = backend.abortOnClose
    }
}
