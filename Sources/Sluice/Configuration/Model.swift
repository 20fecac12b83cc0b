/// A complete balancer configuration: what `sluice -f` reads, and what an embedding program may
/// build in code. Plain values; nothing here touches a socket.
public struct Configuration: Hashable, Sendable {
    public var global: Global
    public var frontends: [Frontend]
    public var backends: [Backend]

    public init(global: Global = Global(), frontends: [Frontend] = [], backends: [Backend] = []) {
        self.global = global
        self.frontends = frontends
        self.backends = backends
    }

    /// The backend called `name`, if any.
    public func backend(named name: String) -> Backend? { backends.first { $0.name == name } }
}

/// Process-wide settings (`global` section).
public struct Global: Hashable, Sendable {
    /// `maxconn`: sessions the whole process serves at once. Nil: limited by descriptors only
    /// (HAProxy derives it from the descriptor limit).
    public var maxConnections: Int?
    /// `nbthread`: reactors, one per thread. Default 1.
    public var threads: Int = 1
    /// `stats socket` lines: parsed and validated; served by the runtime API.
    public var statsSockets: [StatsSocket] = []
    /// `hard-stop-after`: after a graceful stop begins, close what remains after this long. Nil: wait.
    public var hardStopAfter: Duration?
    /// `maxpipes`: pipes the process may hold at once, across reactors. Nil: `maxconn / 4` as HAProxy,
    /// or 1,024 when `maxconn` is unset. Sessions beyond it forward through a small copy buffer.
    public var maxPipes: Int?
    /// `tune.pipesize`: bytes of pipe buffer asked for each pipe. Default 1 MiB (measured: pipe
    /// size dominates splice throughput, see DESIGN.md).
    public var pipeSize: Int = 1 << 20
    /// `nosplice`: forward through user-space buffers instead of pipes.
    public var noSplice: Bool = false
    /// `spread-checks`: percent of random jitter added to check intervals (0...50).
    public var spreadChecks: Int = 0
    /// `io-engine epoll|io_uring` (a Sluice extension): how reactors learn that sockets are ready.
    /// Data moves with inline `splice(2)`/`recv`/`send` either way. nil: `IOEngine.preferred`.
    public var ioEngine: IOEngine?

    public init() {}
}

/// `stats socket <path> [mode <octal>] [level user|operator|admin]`.
public struct StatsSocket: Hashable, Sendable {
    public enum Level: String, Hashable, Sendable { case user, `operator`, admin }
    public var path: String
    /// Permission bits for the socket file; default 0600.
    public var mode: Int = 0o600
    public var level: Level = .operator
    /// Owner of the socket file (`uid`/`user`); nil: the process's.
    public var owner: Owner?
    /// Group of the socket file (`gid`/`group`); nil: the process's.
    public var group: Owner?

    /// A numeric id or a name to look up when the socket is created.
    public enum Owner: Hashable, Sendable {
        case id(Int)
        case name(String)
    }

    public init(path: String, mode: Int = 0o600, level: Level = .operator) {
        self.path = path
        self.mode = mode
        self.level = level
    }
}

/// A host (IP literal or name; nil is the wildcard `*`) and a port, as written in the configuration.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var host: String?
    public var port: Int

    public init(host: String?, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String {
        guard let host else { return "*:\(port)" }
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// A listening address (`bind`).
public struct Bind: Hashable, Sendable {
    public var endpoint: Endpoint
    /// `backlog`: the kernel's accept queue length. Nil: the frontend's `maxconn`, as HAProxy does,
    /// and at least 1,024.
    public var backlog: Int?

    public init(endpoint: Endpoint, backlog: Int? = nil) {
        self.endpoint = endpoint
        self.backlog = backlog
    }
}

/// The client side of a proxy (`frontend`, or the front half of `listen`).
public struct Frontend: Hashable, Sendable {
    public var name: String
    public var binds: [Bind]
    /// The backend that receives every connection.
    public var defaultBackend: String
    /// `maxconn`: sessions this frontend serves at once. HAProxy's default is 262,144 (effectively
    /// the global limit).
    public var maxConnections: Int?
    /// `timeout client`: inactivity on the client side closes the session. Nil: never.
    public var clientTimeout: Duration?
    /// `timeout client-fin`: inactivity on the client side once one direction is closed.
    /// Nil: `clientTimeout`.
    public var clientFinTimeout: Duration?

    public init(name: String, binds: [Bind], defaultBackend: String, maxConnections: Int? = nil,
                clientTimeout: Duration? = nil, clientFinTimeout: Duration? = nil) {
        self.name = name
        self.binds = binds
        self.defaultBackend = defaultBackend
        self.maxConnections = maxConnections
        self.clientTimeout = clientTimeout
        self.clientFinTimeout = clientFinTimeout
    }
}

/// How a backend chooses a server.
public enum BalanceAlgorithm: String, Hashable, Sendable {
    /// Smooth weighted round-robin (`balance roundrobin`, HAProxy's default).
    case roundRobin = "roundrobin"
}

/// The server side of a proxy (`backend`, or the back half of `listen`).
public struct Backend: Hashable, Sendable {
    public var name: String
    public var balance: BalanceAlgorithm = .roundRobin
    public var servers: [Server]
    /// `retries`: connection attempts after the first that fails. Default 3, as HAProxy.
    public var retries: Int = 3
    /// `option redispatch`: retries may go to another server.
    public var redispatch: Bool = false
    /// `option allbackups`: when no primary is usable, spread load over every usable backup instead
    /// of using only the first.
    public var allBackups: Bool = false
    /// `timeout connect`: how long a connection attempt to a server may take. Nil: HAProxy warns and
    /// uses no limit; Sluice uses 5 s so that a black-holed server cannot hold a client forever.
    public var connectTimeout: Duration?
    /// `timeout server`: inactivity on the server side closes the session. Nil: never.
    public var serverTimeout: Duration?
    /// `timeout server-fin`: inactivity on the server side once one direction is closed. Nil: `serverTimeout`.
    public var serverFinTimeout: Duration?
    /// `timeout tunnel`: once both sides are connected, replaces `timeout client` and `timeout server`.
    public var tunnelTimeout: Duration?
    /// `timeout queue`: how long a session may wait for a server slot or a free descriptor.
    /// Nil: `connectTimeout`, as HAProxy.
    public var queueTimeout: Duration?
    /// `timeout check`: how long a health check may take once connected. Nil: `inter`.
    public var checkTimeout: Duration?
    /// The active health check, when servers have `check`.
    public var healthCheck: HealthCheck = .tcpConnect

    public init(name: String, servers: [Server]) {
        self.name = name
        self.servers = servers
    }

    /// `connectTimeout` with Sluice's default applied.
    public var effectiveConnectTimeout: Duration { connectTimeout ?? .seconds(5) }
}

/// A backend server (`server` line).
public struct Server: Hashable, Sendable {
    public var name: String
    public var endpoint: Endpoint
    /// `weight`: share of traffic relative to the other servers, 0...256. Default 1. Zero takes no
    /// new connections.
    public var weight: Int = 1
    /// `backup`: used only when no primary server is usable.
    public var isBackup: Bool = false
    /// `disabled`: starts in maintenance (administratively down).
    public var isDisabled: Bool = false
    /// `check` and its parameters. Nil: not checked, always considered up.
    public var check: ServerCheck?
    /// `observe layer4`: connection failures on real traffic count against the server.
    public var observeLayer4: Bool = false
    /// `error-limit`: consecutive observed failures that trigger `onError`. Default 10.
    public var errorLimit: Int = 10
    /// `on-error`: what `errorLimit` observed failures do. Default `fail-check`.
    public var onError: ObservedErrorAction = .failCheck
    /// `on-marked-down shutdown-sessions`: close the server's sessions when it goes down.
    public var shutdownSessionsWhenDown: Bool = false
    /// `on-marked-up shutdown-backup-sessions`: when this primary comes up, close the backups' sessions
    /// so that clients reconnect to primaries.
    public var shutdownBackupSessionsWhenUp: Bool = false

    public init(name: String, endpoint: Endpoint, weight: Int = 1, isBackup: Bool = false,
                isDisabled: Bool = false, check: ServerCheck? = nil) {
        self.name = name
        self.endpoint = endpoint
        self.weight = weight
        self.isBackup = isBackup
        self.isDisabled = isDisabled
        self.check = check
    }
}

/// HAProxy's `on-error` actions.
public enum ObservedErrorAction: String, Hashable, Sendable {
    /// Check sooner (`fastinter`), without counting a failure.
    case fastInterval = "fastinter"
    /// Count one failed check.
    case failCheck = "fail-check"
    /// Leave one failed check between the server and DOWN.
    case suddenDeath = "sudden-death"
    /// Mark the server DOWN at once.
    case markDown = "mark-down"
}

/// Per-server health-check parameters, with HAProxy's defaults.
public struct ServerCheck: Hashable, Sendable {
    /// `port`: check this port instead of the server's.
    public var port: Int?
    /// `addr`: check this address instead of the server's.
    public var address: String?
    /// `inter`: interval between checks. Default 2 s.
    public var interval: Duration = .seconds(2)
    /// `fastinter`: interval while a transition is in progress. Nil: `interval`.
    public var fastInterval: Duration?
    /// `downinter`: interval while the server is down. Nil: `interval`.
    public var downInterval: Duration?
    /// `rise`: consecutive successes that bring a server up. Default 2.
    public var rise: Int = 2
    /// `fall`: consecutive failures that take a server down. Default 3.
    public var fall: Int = 3

    public init() {}
}

/// What an active health check does.
public enum HealthCheck: Hashable, Sendable {
    /// Connect, then close (`check` alone).
    case tcpConnect
    /// `option httpchk` and `http-check` lines.
    case http(HTTPCheck)
    /// `option tcp-check` and `tcp-check` rules.
    case tcp([TCPCheckRule])
}

public struct HTTPCheck: Hashable, Sendable {
    public var method: String = "OPTIONS"
    public var uri: String = "/"
    public var version: String = "HTTP/1.0"
    public var headers: [(name: String, value: String)] = []
    public var expect: HTTPExpectation?

    public init() {}

    public static func == (a: HTTPCheck, b: HTTPCheck) -> Bool {
        a.method == b.method && a.uri == b.uri && a.version == b.version && a.expect == b.expect
            && a.headers.elementsEqual(b.headers) { $0.name == $1.name && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(method); hasher.combine(uri); hasher.combine(version); hasher.combine(expect)
        for h in headers { hasher.combine(h.name); hasher.combine(h.value) }
    }
}

/// `http-check expect`. Without one, any 2xx or 3xx status passes.
public enum HTTPExpectation: Hashable, Sendable {
    case status([ClosedRange<Int>], negated: Bool)
    case statusRegex(String, negated: Bool)
    case string(String, negated: Bool)
    case stringRegex(String, negated: Bool)
}

public enum TCPCheckRule: Hashable, Sendable {
    case connect(port: Int?)
    case send([UInt8])
    case expectString(String, negated: Bool)
    case expectRegex(String, negated: Bool)
    case expectBinary([UInt8], negated: Bool)
}

extension Duration {
    /// Whole milliseconds, rounding up so that a sub-millisecond timeout is not zero.
    var milliseconds: Int64 {
        let (s, attos) = components
        return s * 1000 + (attos + 999_999_999_999_999) / 1_000_000_000_000_000
    }
}
