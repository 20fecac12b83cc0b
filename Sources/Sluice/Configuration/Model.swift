/// A complete balancer configuration: what `sluice -f` reads, and what an embedding program may
/// build in code. Plain values; nothing here touches a socket.
public struct Configuration: Hashable, Sendable {
    /// The `global` section.
    public var global: Global
    /// The client side of each `frontend` and `listen`, in file order.
    public var frontends: [Frontend]
    /// The server side of each `backend` and `listen`, in file order.
    public var backends: [Backend]
    /// `stick-table` declarations, each named after its proxy.
    public var stickTables: [StickTableSpec] = []
    /// `resolvers` sections: the name servers servers' names are resolved with while running.
    public var resolvers: [Resolvers] = []
    /// `mode http` proxies that only serve statistics (page, CSV, Prometheus).
    public var statsPages: [StatsPage] = []

    /// A configuration built in code. Every frontend's `defaultBackend`, if any, must name one of `backends`.
    public init(global: Global = Global(), frontends: [Frontend] = [], backends: [Backend] = []) {
        self.global = global
        self.frontends = frontends
        self.backends = backends
    }

    /// The backend called `name`, if any.
    public func backend(named name: String) -> Backend? { backends.first { $0.name == name } }

    /// The `fullconn` of `backend`: its own, else HAProxy's default, 10 % (rounded up, at least 1)
    /// of the `maxconn` of the frontends that may route to it, by `default_backend` (a `listen`
    /// to itself) or by a `use_backend` naming it (a name made from samples counts for none), each
    /// frontend once. A frontend without `maxconn` counts the global one, and `unlimited` without
    /// that (HAProxy counts the global `maxconn` it computes from the descriptor limit).
    public func fullConnections(of backend: Backend, unlimited: Int) -> Int {
        if let full = backend.fullConnections { return full }
        var total = 0
        for frontend in frontends {
            let targets = frontend.rules?.switching.map { rule -> String? in
                if case .fixed(let name) = rule.target { return name } else { return nil }
            } ?? []
            guard frontend.defaultBackend == backend.name || targets.contains(backend.name) else { continue }
            total += frontend.maxConnections ?? global.maxConnections ?? unlimited
        }
        return max(1, (total + 9) / 10)
    }
}

/// Process-wide settings (`global` section).
public struct Global: Hashable, Sendable {
    /// `maxconn`: sessions the whole process serves at once. Nil: limited by descriptors only
    /// (HAProxy derives it from the descriptor limit).
    public var maxConnections: Int?
    /// `maxconnrate`: connections the process accepts per second (a sliding second), over every
    /// frontend; beyond it, listeners stop accepting and clients wait in the kernel backlog. Nil: none.
    public var maxConnectionRate: Int?
    /// `maxsessrate`: the same for sessions (connections that passed `tcp-request connection` rules).
    public var maxSessionRate: Int?
    /// `nbthread`: reactors, one per thread. Default 1.
    public var threads: Int = 1
    /// `external-check`: `option external-check` may run programs (HAProxy requires it).
    public var externalCheck = false
    /// `unix-bind`: the path prefix and socket-file permissions of UNIX `bind`s declared after it.
    public var unixBind = UnixBindDefaults()
    /// `stats socket` lines: parsed and validated; served by the runtime API.
    public var statsSockets: [StatsSocket] = []
    /// `log` lines: where proxies with `log global` send their lines.
    public var logTargets: [LogTarget] = []
    /// `log-tag`: the program name in syslog headers ("sluice" when unset).
    public var logTag: String?
    /// `log-send-hostname [<name>]`: the host name in `rfc3164`/`rfc5424` headers (and `rfc3164`
    /// becomes the default format). Nil: "localhost" / "-", as HAProxy.
    public var logHostname: String?
    /// `hard-stop-after`: after a graceful stop begins, close what remains after this long. Nil: wait.
    public var hardStopAfter: Duration?
    /// HAProxy's `-dr` command-line flag: a server whose name does not resolve at start waits in
    /// maintenance, as if its `init-addr` ended with `none`, instead of failing the start. Handy to
    /// check or run a configuration away from the network it was written for.
    public var toleratesUnresolvedServers = false
    /// `maxpipes`: pipes the process may hold at once, across reactors. Nil: `maxconn / 4` as HAProxy,
    /// or 1,024 when `maxconn` is unset. Sessions beyond it forward through a small copy buffer.
    public var maxPipes: Int?
    /// `tune.pipesize`: bytes of pipe buffer asked for each pipe. Default 1 MiB (measured: pipe
    /// size dominates splice throughput, see DESIGN.md).
    public var pipeSize: Int = 1 << 20
    /// `tune.maxaccept`: connections a listener accepts in a row before its reactor serves the
    /// sessions it has; the rest wait for the next loop turn. Nil or 0: 1 (HAProxy 2.6's default is
    /// 4; with a new connection per request from 10 to 400 clients, 1 served as many connections per
    /// second as 4 within the noise, and 2–13 % more than 64, measured side by side: see the README);
    /// negative: no limit, as HAProxy.
    public var maxAccept: Int?
    /// `tune.maxpollevents`: events a reactor takes from the kernel per loop turn, at most (one
    /// `epoll_wait`, or completions reaped from the io_uring); more stay queued for the next turn,
    /// after timers and deferred work. Nil, 0 or negative: 256 (HAProxy 2.6's default is 200).
    public var maxPollEvents: Int?
    static let defaultPollEvents = 256
    /// The largest `tune.maxpollevents` accepted (an epoll reactor holds an array of that many
    /// events, 12 bytes each).
    static let maxPollEventsLimit = 1_000_000
    /// `nosplice`: forward through user-space buffers instead of pipes.
    public var noSplice: Bool = false
    /// `tune.rcvbuf.client`, `tune.sndbuf.client`: the kernel buffer sizes of client sockets, set
    /// after each accept (nil or 0: the kernel's auto-tuning).
    public var clientBuffers = SocketBufferSizes()
    /// `tune.rcvbuf.server`, `tune.sndbuf.server`: the same for connections to servers and their
    /// health checks, set before the connect.
    public var serverBuffers = SocketBufferSizes()
    /// `busy-polling`: the reactors never sleep; each wait for events polls with a zero timeout,
    /// as HAProxy's option does, for the microseconds a sleeping thread takes to wake (in virtual
    /// machines, on CPUs that scale their frequency). Each reactor thread then uses a whole core.
    public var busyPolling: Bool = false
    /// `spread-checks`: percent of random jitter added to check intervals (0...50).
    public var spreadChecks: Int = 0
    /// `max-spread-checks`: an upper bound on how long the first checks of all servers are
    /// spread over at start (Sluice spreads them over the shortest `inter`, at most 1 s). Nil: none.
    public var maxSpreadChecks: Duration?
    /// `pp2-never-send-local`: health checks of `send-proxy-v2` servers (`checksSendProxy`) send the
    /// PROXY command with the check connection's addresses instead of the LOCAL command (HAProxy's
    /// behaviour before 2.2, for servers that mishandle LOCAL).
    public var pp2NeverSendLocal: Bool = false
    /// `io-engine epoll|io_uring` (a Sluice extension): how reactors learn that sockets are ready.
    /// Data moves with inline `splice(2)`/`recv`/`send` either way. nil: `IOEngine.preferred`.
    public var ioEngine: IOEngine?
    /// `daemon` (or `sluice -D`): fork into the background once every listener and stats socket is
    /// open; the parent exits 0 then, or non-zero with the child's error. `sluice -db` overrides.
    public var daemon: Bool = false
    /// `pidfile` (or `sluice -p`): the running process writes its pid here and removes it on exit.
    public var pidFile: String?
    /// `server-state-file`: the file `load-server-state-from-file global` reads (as written by
    /// `show servers state`), relative to `serverStateBase` unless absolute.
    public var serverStateFile: String?
    /// `server-state-base`: the directory of relative server-state file names.
    public var serverStateBase: String?
    /// `uid`/`user`: the user id the process switches to once listeners and stats sockets are open.
    /// Names are resolved when the configuration is read. Nil: keep the starting user.
    public var userID: UInt32?
    /// `gid`/`group`: the group id, likewise. Nil with a `user`: that user's primary group.
    public var groupID: UInt32?
    /// `chroot`: the directory the process makes its root once listeners are open.
    public var chroot: String?
    /// `ulimit-n`: the descriptor limit (soft) to raise to, up to the hard limit.
    public var fileLimit: Int?
    /// `fd-hard-limit`: the most descriptors the process uses, whatever the system allows: the
    /// soft limit is lowered to it, and a `ulimit-n` above it is not reached. Nil: none.
    public var descriptorCeiling: Int?
    /// `strict-limits` (HAProxy 2.6's default; `no strict-limits` turns it off): a `ulimit-n` that
    /// cannot be reached stops the start instead of a warning.
    public var strictLimits = true
    /// `cpu-map` lines, in order: which CPUs each reactor thread may run on.
    public var cpuMap: [CPUMapping] = []
    /// `tune.bufsize`: bytes of the copy buffer used before a direction proves bulk (and when
    /// pipes are unavailable). Default 16,384, as HAProxy.
    public var bufferSize: Int = 16384
    /// `node` and `description`: names shown by the runtime API's `show info`.
    public var node: String?
    /// `node`, else the host name, as HAProxy's `global.node` (`show info`, `http-check send-state`).
    var nodeName: String { node ?? GlobalKeywords.systemHostName }
    /// `description`: free text shown by `show info`.
    public var description: String?
    /// `stats timeout`: an idle runtime-API connection is closed after this long. Default 10 s.
    public var statsTimeout: Duration = .seconds(10)
    /// `stats maxconn`: runtime-API connections served at once; more wait. Default 10, as HAProxy.
    public var statsMaxConnections: Int = 10

    /// HAProxy's defaults: one thread, no `maxconn`, no runtime socket.
    public init() {}
}

/// One `cpu-map [auto:]1[/<threads>] <cpus>…` line.
public struct CPUMapping: Hashable, Sendable {
    /// Thread numbers (1-based) the line covers; threads above `nbthread` are ignored, as HAProxy.
    public var threads: [Int]
    /// CPU numbers (0-based).
    public var cpus: [Int]
    /// `auto:`: the n-th thread gets the n-th CPU instead of the whole set.
    public var automatic: Bool

    /// One `cpu-map` line.
    public init(threads: [Int], cpus: [Int], automatic: Bool) {
        self.threads = threads
        self.cpus = cpus
        self.automatic = automatic
    }

    /// The CPUs of each thread 1...`threadCount` under `mappings` (later lines win); nil: unpinned.
    public static func cpus(of thread: Int, in mappings: [CPUMapping]) -> [Int]? {
        var result: [Int]?
        for m in mappings {
            guard let position = m.threads.firstIndex(of: thread) else { continue }
            if m.automatic {
                if position < m.cpus.count { result = [m.cpus[position]] }
            } else {
                result = m.cpus
            }
        }
        return result
    }
}

/// `stats socket <path>|<address>:<port> [mode <octal>] [level user|operator|admin]`.
public struct StatsSocket: Hashable, Sendable {
    /// Where the runtime API listens.
    public enum Address: Hashable, Sendable, CustomStringConvertible {
        /// A UNIX socket file (`/run/sluice.sock`, `unix@/run/sluice.sock`).
        case unix(path: String)
        /// A TCP address (`ipv4@127.0.0.1:9999`, `*:9999`): anyone who reaches it has the level.
        case tcp(Endpoint)

        public var description: String {
            switch self {
            case .unix(let path): path
            case .tcp(let endpoint): endpoint.description
            }
        }
    }

    /// `level`: what the socket's clients may do.
    public enum Level: String, Hashable, Sendable {
        /// Read-only commands that reveal nothing sensitive.
        case user
        /// Reading everything, and harmless changes (`clear counters`).
        case `operator`
        /// Every command: server states, weights, addresses, shutting sessions down.
        case admin
    }
    public var address: Address
    /// The UNIX socket's path; nil for a TCP socket.
    public var path: String? {
        if case .unix(let path) = address { path } else { nil }
    }
    /// Permission bits for the socket file; default 0600.
    public var mode: Int = 0o600
    /// `level`; `operator` by default, as HAProxy.
    public var level: Level = .operator
    /// Owner of the socket file (`uid`/`user`); nil: the process's.
    public var owner: Owner?
    /// Group of the socket file (`gid`/`group`); nil: the process's.
    public var group: Owner?

    /// A numeric id or a name to look up when the socket is created.
    public enum Owner: Hashable, Sendable {
        /// A numeric id (`uid`/`gid`).
        case id(Int)
        /// A name looked up when the socket is created (`user`/`group`).
        case name(String)
    }

    /// A UNIX socket at `path` with the given permission bits and level.
    public init(path: String, mode: Int = 0o600, level: Level = .operator) {
        self.address = .unix(path: path)
        self.mode = mode
        self.level = level
    }

    /// A socket at `address` with the given level.
    public init(address: Address, level: Level = .operator) {
        self.address = address
        self.level = level
    }
}

/// A host (IP literal or name; nil is the wildcard `*`) and a port, as written in the configuration.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    /// An IP address or a host name; nil or `*`: every address.
    public var host: String?
    /// The TCP port; 0 lets the kernel choose (`LoadBalancer.listeningAddresses(of:)` tells which).
    public var port: Int
    /// A UNIX socket instead of a host and port (`/run/app.sock`, `unix@app.sock`, `abns@name`).
    public var unix: UnixSocketName?

    /// `host:port`.
    public init(host: String?, port: Int) {
        self.host = host
        self.port = port
    }

    /// A UNIX socket.
    public init(unix: UnixSocketName) {
        self.init(host: nil, port: 0)
        self.unix = unix
    }

    /// `host:port` (`[host]:port` for IPv6, `*:port` for every address), or the UNIX socket's name.
    public var description: String {
        if let unix { return unix.description }
        guard let host else { return "*:\(port)" }
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// A UNIX socket's name: a file's path, or a name in Linux's abstract namespace (no file).
public struct UnixSocketName: Hashable, Sendable, CustomStringConvertible {
    public var path: String
    /// `abns@<name>`.
    public var isAbstract: Bool

    public init(path: String, isAbstract: Bool = false) {
        self.path = path
        self.isAbstract = isAbstract
    }

    /// The socket address (nil when the name does not fit a `sockaddr_un`).
    var address: SocketAddress? { SocketAddress(unixPath: path, abstract: isAbstract) }

    /// `unix@<path>` or `abns@<name>`, as HAProxy's configuration writes them.
    public var description: String { isAbstract ? "abns@\(path)" : "unix@\(path)" }
}

/// `unix-bind [prefix <path>] [mode <octal>] [user|uid <x>] [group|gid <x>]`.
public struct UnixBindDefaults: Hashable, Sendable {
    /// Put before every UNIX `bind` path (not abstract names), as HAProxy, when the bind is read.
    public var prefix: String?
    /// Defaults for the binds' own `mode`, `uid`, `gid`, `user`, `group`.
    public var permissions = UnixSocketPermissions()

    public init() {}
}

/// The socket file a UNIX listener creates: `mode`, `uid`/`user`, `gid`/`group` on a `bind`, or
/// their defaults in `unix-bind`.
public struct UnixSocketPermissions: Hashable, Sendable {
    /// Permission bits; nil: as the process's umask leaves them.
    public var mode: Int?
    /// Owner; nil: the process's user.
    public var owner: StatsSocket.Owner?
    /// Group; nil: the process's group.
    public var group: StatsSocket.Owner?

    public init(mode: Int? = nil, owner: StatsSocket.Owner? = nil, group: StatsSocket.Owner? = nil) {
        self.mode = mode
        self.owner = owner
        self.group = group
    }

    /// These settings, with `defaults`' where these have none (a `bind`'s own win over `unix-bind`).
    func over(_ defaults: UnixSocketPermissions) -> UnixSocketPermissions {
        UnixSocketPermissions(mode: mode ?? defaults.mode, owner: owner ?? defaults.owner, group: group ?? defaults.group)
    }
}

/// A listening address (`bind`).
public struct Bind: Hashable, Sendable {
    /// The address to listen on.
    public var endpoint: Endpoint
    /// `backlog`: the kernel's accept queue length. Nil: the frontend's `maxconn`, as HAProxy does,
    /// and at least 1,024.
    public var backlog: Int?
    /// `v4v6` (false) / `v6only` (true): whether an IPv6 listener refuses IPv4-mapped clients.
    /// Nil: IPv6 only for an IPv6 address, as HAProxy on Linux.
    public var v6Only: Bool?
    /// `defer-accept`: accept only once the client has sent data (`TCP_DEFER_ACCEPT`).
    public var deferAccept: Bool = false
    /// `tfo`: TCP Fast Open on the listener (`TCP_FASTOPEN`, queue = backlog).
    public var fastOpen: Bool = false
    /// `interface <name>`: accept only through this network interface (`SO_BINDTODEVICE`).
    public var interface: String?
    /// `mss <n>`: the maximum segment size advertised to clients (`TCP_MAXSEG`).
    public var maxSegmentSize: Int?
    /// `tcp-ut <time>`: how long sent data may stay unacknowledged (`TCP_USER_TIMEOUT`).
    public var userTimeout: Duration?
    /// `maxconn <n>`: sessions accepted through this address at once; beyond it, clients wait in
    /// the kernel backlog. Nil: only the frontend's and the process's limits.
    public var maxConnections: Int?
    /// `name <text>`: the bind's name, which the `so_name` fetch returns.
    public var name: String?
    /// `shards <n>`: listening sockets for the line; nil for `by-thread` (one per reactor thread,
    /// Sluice's only layout: a number of shards below `nbthread` is refused).
    public var shards: Int?
    /// `id <n>`: the bind's id, which the `so_id` fetch returns (by default its place among the
    /// frontend's binds, from 1, skipping the ids other binds took).
    public var id: Int?
    /// `accept-proxy`: every connection starts with a PROXY-protocol header (v1 or v2), whose
    /// addresses then stand for the client's everywhere but in `tcp-request connection` rules.
    public var acceptProxy = false
    /// `transparent`: the listener may bind an address this host does not own and accepts
    /// connections the kernel diverts to it (TPROXY) for any destination (`IP_TRANSPARENT`).
    public var transparent = false
    /// `namespace <name>`: the listener is made in this network namespace (`ip netns add`), so it
    /// accepts the connections made there, as HAProxy's. TCP binds only.
    public var namespace: String?
    /// `mode`, `uid`/`user`, `gid`/`group`: the socket file of a UNIX listener (the global
    /// `unix-bind` gives the defaults). HAProxy ignores them on other listeners; Sluice warns.
    public var unixPermissions = UnixSocketPermissions()

    /// A bind on `endpoint` with HAProxy's defaults for the other parameters.
    public init(endpoint: Endpoint, backlog: Int? = nil) {
        self.endpoint = endpoint
        self.backlog = backlog
    }
}

/// The client side of a proxy (`frontend`, or the front half of `listen`).
public struct Frontend: Hashable, Sendable {
    /// The frontend's name (its `frontend` or `listen` line).
    public var name: String
    /// HAProxy's proxy id (`id`): `show stat`'s `iid`, the proxy selector of `show stat <iid> …`.
    /// nil: numbered when the balancer starts, as HAProxy numbers proxies (see `Configuration.numbered()`).
    public var id: Int?
    /// Where its section is among the configuration's proxy sections: `show stat` lists proxies
    /// in this order, as HAProxy does. nil: after those that have one, in array order.
    var declaration: Int?
    /// Where it listens (`bind` lines, each address with its parameters).
    public var binds: [Bind]
    /// The backend that receives every connection no `use_backend` rule sends elsewhere. Nil
    /// (`default_backend` absent, as HAProxy allows): such connections are closed at once, and the
    /// log names the frontend as their backend (`fe fe/<NOSRV>`), as HAProxy's.
    public var defaultBackend: String?
    /// `maxconn`: sessions this frontend serves at once. HAProxy's default is 262,144 (effectively
    /// the global limit).
    public var maxConnections: Int?
    /// `rate-limit sessions <n>`: new sessions per second at most; beyond it, clients wait in the
    /// kernel backlog until the rate (over the last second, sliding) falls below. Nil: no limit.
    public var sessionRateLimit: Int?
    /// `timeout client`: inactivity on the client side closes the session. Nil: never.
    public var clientTimeout: Duration?
    /// `timeout client-fin`: inactivity on the client side once one direction is closed.
    /// Nil: `clientTimeout`.
    public var clientFinTimeout: Duration?
    /// `option clitcpka` (or `tcpka`): keep-alive probes on client connections. Nil: off.
    public var clientKeepAlive: TCPKeepAlive?
    /// `option nolinger`: client connections end with a reset instead of a FIN, freeing their
    /// resources at once (HAProxy's meaning; the client may lose the last bytes sent).
    public var noLinger: Bool = false
    /// `option independent-streams`: bytes sent to the client do not refresh its inactivity
    /// timeout (`timeout client`); only bytes received from it do.
    public var independentStreams: Bool = false
    /// ACLs, `tcp-request` rules and `use_backend` rules. Nil: every connection goes to
    /// `defaultBackend`.
    public var rules: RuleSet?
    /// `unique-id-format`: each session's unique ID, built in this format the first time it is
    /// needed (the `unique-id` fetch, a `send-proxy-v2` header with `proxy-v2-options unique-id`,
    /// or the log line's `%ID`), as HAProxy builds it. Nil: sessions have none.
    public var uniqueIDFormat: LogFormat?
    /// `log` lines (or `log global`) with `option tcplog` or `log-format`, `option dontlognull`,
    /// `logasap`, `log-separate-errors`, `dontlog-normal`, `log-tag`: how sessions are logged.
    /// Nil: they are not.
    public var logging: SessionLogging?

    /// A frontend sending every session to `defaultBackend`.
    public init(name: String, binds: [Bind], defaultBackend: String?, maxConnections: Int? = nil,
                clientTimeout: Duration? = nil, clientFinTimeout: Duration? = nil) {
        self.name = name
        self.binds = binds
        self.defaultBackend = defaultBackend
        self.maxConnections = maxConnections
        self.clientTimeout = clientTimeout
        self.clientFinTimeout = clientFinTimeout
    }
}

/// TCP keep-alive probes on one side's sockets (`option clitcpka`/`srvtcpka`, with
/// `clitcpka-idle|intvl|cnt`): `SO_KEEPALIVE`, and `TCP_KEEPIDLE`/`TCP_KEEPINTVL`/`TCP_KEEPCNT`
/// where set (nil: the kernel's `net.ipv4.tcp_keepalive_*`).
public struct TCPKeepAlive: Hashable, Sendable {
    /// `TCP_KEEPIDLE`: idle time before the first probe; nil: the system's.
    public var idle: Duration?
    /// `TCP_KEEPINTVL`: time between probes; nil: the system's.
    public var interval: Duration?
    /// `TCP_KEEPCNT`: probes unanswered before the connection is dropped; nil: the system's.
    public var count: Int?

    /// Keep-alive probes with these settings (nil: the system's).
    public init(idle: Duration? = nil, interval: Duration? = nil, count: Int? = nil) {
        self.idle = idle
        self.interval = interval
        self.count = count
    }
}

/// How a backend chooses a server.
public enum BalanceAlgorithm: String, Hashable, Sendable {
    /// Smooth weighted round-robin (`balance roundrobin`, HAProxy's default).
    case roundRobin = "roundrobin"
    /// `balance static-rr`: the same order as `roundrobin`. (HAProxy's static-rr differs only in
    /// not applying runtime weight changes progressively; Sluice rebuilds the schedule either way.)
    case staticRoundRobin = "static-rr"
    /// `balance leastconn`: the server with the fewest current sessions relative to its weight;
    /// ties go round-robin.
    case leastConnections = "leastconn"
    /// `balance first`: the first server in configuration order (id order) with a free slot under
    /// its `maxconn`; the next one only once it is full.
    case first
    /// `balance source` with `hash-type map-based`: a hash of the client's IP address picks the
    /// server from a table where each server appears `weight` times, so a client keeps its server
    /// while the set of usable servers does not change.
    case source
    /// `balance random[(<draws>)]`: `draws` servers drawn at random in proportion to their weights
    /// (through the consistent-hashing table), and the least loaded of them taken: HAProxy's
    /// "power of two choices" by default.
    case random
    /// `balance hash <expr>`: a hash of a sample (`src`, `dst_port`, `req.ssl_sni` …) picks the
    /// server from the same tables as `source` (map-based, or Maglev with `hash-type consistent`).
    case hash

    /// Whether a session waits behind those in the backend's queue instead of asking the
    /// algorithm: HAProxy's rule for round-robin, static-rr and first, whose queue means every
    /// server is full.
    var queuesBehindWaiting: Bool { self == .roundRobin || self == .staticRoundRobin || self == .first }
}

/// The server side of a proxy (`backend`, or the back half of `listen`).
public struct Backend: Hashable, Sendable {
    /// The backend's name (its `backend` or `listen` line).
    public var name: String
    /// Declared by a `listen` section: HAProxy calls it a "proxy" in its messages.
    var isListen = false
    /// HAProxy's proxy id (`id`): `show stat`'s `iid` and `show servers state`'s `be_id`; a
    /// `listen` section's frontend and backend share it. nil: numbered when the balancer starts.
    public var id: Int?
    /// Where its section is among the proxy sections (see `Frontend.declaration`).
    var declaration: Int?
    /// `load-server-state-from-file` (+ `server-state-file-name`): where the servers' states come
    /// from when Sluice starts.
    public var serverStateSource: ServerStateSource = .none
    /// ACLs and `stick` rules (persistence). Nil: none.
    public var rules: RuleSet?
    /// `balance`: how a server is chosen for a new session.
    public var balance: BalanceAlgorithm = .roundRobin
    /// `hash-type consistent`: hashing (`balance source`) through a Maglev table, so that a change
    /// in the set of servers moves few clients and instances with the same servers agree.
    public var consistentHashing = false
    /// `balance random(<draws>)`: servers drawn per pick (2 by default).
    public var randomDraws = 2
    /// `balance hash <expr>`: the sample hashed.
    var hashExpression: SampleExpression?
    /// `persist rdp-cookie[(<name>)]`: a session whose RDP routing token (cookie `msts` by default)
    /// names a server of this backend by address and port goes to that server.
    public var rdpPersistence: String?
    /// `source`: where connections to this backend's servers come from (a server's own wins).
    public var source: SourceBinding?
    /// `hash-balance-factor <percent>`: with `hash-type consistent` (and `balance random`), no
    /// server takes more than this percentage of the average load per weight. 0: off.
    public var balanceFactor = 0
    /// Its `server` lines (and the servers of `server-template` lines), in order.
    public var servers: [Server]
    /// `fullconn`: the backend's sessions at which servers with a `minconn` reach their `maxconn`.
    /// Nil: 10 % of the `maxconn` of the frontends that route here, as HAProxy
    /// (`Configuration.fullConnections(of:)`).
    public var fullConnections: Int?
    /// `retries`: connection attempts after the first that fails. Default 3, as HAProxy.
    public var retries: Int = 3
    /// `option redispatch`: retries may go to another server.
    public var redispatch: Bool = false
    /// `option redispatch <interval>`: besides the other reasons (see `BackendState.redispatchTarget`),
    /// which retries go elsewhere: every `n`th retry when positive, the `-n`th from the end when
    /// negative (-1, the default: the last retry), none of them for 0.
    public var redispatchInterval: Int = -1
    /// `email-alert …` with a `mailers` section: server state changes mailed. Nil: none.
    public var emailAlert: EmailAlert?
    /// `option persist`: `use-server`, `stick match` and `persist rdp-cookie` may send a session
    /// to a server that is DOWN or in maintenance (HAProxy's rule, which holds in tcp mode too;
    /// `option redispatch` still lets its retries go elsewhere).
    public var persist: Bool = false
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
    /// `option srvtcpka` (or `tcpka`): keep-alive probes on server connections. Nil: off.
    public var serverKeepAlive: TCPKeepAlive?
    /// `option nolinger`: server connections end with a reset instead of a FIN.
    public var noLinger: Bool = false
    /// `option independent-streams`: bytes sent to the server do not refresh its inactivity
    /// timeout (`timeout server`); only bytes received from it do.
    public var independentStreams: Bool = false
    /// `option abortonclose`: a client that closes while its session waits in a queue or for
    /// its server connection is dropped at once instead of being connected (HAProxy's meaning).
    public var abortOnClose: Bool = false
    /// `log` lines (with `log global`, the global ones): where server state changes are logged,
    /// besides the balancer's own logger.
    public var logTargets: [LogTarget] = []
    /// `option log-health-checks`: every change of a server's check result or health is logged
    /// (`Health check for server be/s failed, reason: …, status: 2/3 UP.`), not only UP and DOWN.
    public var logHealthChecks: Bool = false
    /// `log-tag` of the backend (or the global one).
    public var logTag: String?

    /// A backend with HAProxy's defaults: round-robin, 3 retries, no timeouts but `timeout connect` 5 s.
    public init(name: String, servers: [Server]) {
        self.name = name
        self.servers = servers
    }

    /// `connectTimeout` with Sluice's default applied.
    public var effectiveConnectTimeout: Duration { connectTimeout ?? .seconds(5) }
}

/// A backend server (`server` line).
public struct Server: Hashable, Sendable {
    /// The server's name, unique in its backend.
    public var name: String
    /// HAProxy's server id (`id`), unique in its backend: `show stat`'s `sid`, `show servers
    /// state`'s `srv_id`, and what `stick` rules store as `server_id`. nil: numbered when the
    /// balancer starts, as HAProxy numbers servers (see `Configuration.numbered()`).
    public var id: Int?
    /// Its address and port.
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
    /// `maxconn`: sessions open to this server at once; more wait in the server's queue (or the
    /// backend's), FIFO, bounded by `maxqueue` and `timeout queue`. Nil: no limit.
    public var maxConnections: Int?
    /// `minconn`: with it, `maxconn` is a dynamic limit that follows the backend's load: at least
    /// `minconn`, and `maxconn` × the backend's sessions / its `fullconn` up to `maxconn` (HAProxy's
    /// formula). Nil: `maxconn` is fixed. A `minconn` above `maxconn` (or without one) becomes
    /// the fixed `maxconn`, as HAProxy.
    public var minConnections: Int?
    /// `agent-check`, with its `agent-*` parameters. Nil: no agent.
    public var agent: AgentCheck?
    /// `maxqueue`: sessions that may wait for this server; beyond it a session goes to another
    /// server or the backend's queue. Nil: no limit.
    public var maxQueue: Int?
    /// `send-proxy` / `send-proxy-v2`: the PROXY-protocol header sent to the server before the
    /// client's bytes, carrying the client's address. Nil: none. Health checks send it too unless
    /// the server's `port` or `addr` sends them elsewhere (HAProxy's rule).
    public var proxyProtocol: ProxyProtocolVersion?
    /// `proxy-v2-options`, `send-proxy-v2-ssl(-cn)`: what a v2 header carries after the addresses.
    public var proxyV2Options: ProxyV2Options = []
    /// `source` on the server line: where connections to it (and its checks) come from.
    public var source: SourceBinding?
    /// `check-send-proxy`: health checks send the PROXY header (v1 with the check connection's
    /// addresses, v2 as the LOCAL command) even when the server's `port` or `addr` sends them
    /// elsewhere, or when the server has no `send-proxy` (then v1, as HAProxy).
    public var checkSendProxy: Bool = false
    /// `socks4 <addr>:<port>`: connections to the server go through this SOCKS4 proxy, which is
    /// asked (CONNECT, user ID "HAProxy", as HAProxy) for the server's address; the client's bytes
    /// and any PROXY header wait for its grant. A refusal or a proxy that hangs up is a failed
    /// connect (retried, `SC` in the log). Health checks go direct unless `checkViaSocks4`.
    public var socks4: Endpoint?
    /// `check-via-socks4`: health checks go through the `socks4` proxy too.
    public var checkViaSocks4: Bool = false
    /// The `socks4` proxy's address, resolved with the server's (the balancer sets it).
    var socks4Address: SocketAddress?
    /// `namespace <name>`: connections to the server (and its checks) are made in this network
    /// namespace (`ip netns add <name>`), as HAProxy's; Sluice needs CAP_SYS_ADMIN for it.
    public var namespace: String?
    /// The open namespace (the balancer sets it with the server's address).
    var namespaceDescriptor: CInt?

    /// Whether health checks open with a PROXY header: HAProxy 2.6's `init_srv_check` rule, where
    /// checks of a server that sends one send it too unless `port`/`addr` point them elsewhere.
    var checksSendProxy: Bool { checkSendProxy || (proxyProtocol != nil && check?.port == nil && check?.address == nil) }
    /// `non-stick`: sessions sent to this server are never stored in a stick table (`stick on`,
    /// `stick store-request`); `stick` undoes a `default-server non-stick`. Matching still may
    /// send a client here.
    public var nonStick: Bool = false
    /// `tcp-ut <time>`: how long data sent to the server (or a check's) may stay unacknowledged
    /// before the connection fails (`TCP_USER_TIMEOUT`). Nil: the kernel's.
    public var userTimeout: Duration?
    /// `tfo`: a connection made when the client has already sent data opens with TCP Fast Open
    /// (`TCP_FASTOPEN_CONNECT`), the data in the SYN once the server has given a cookie, as
    /// HAProxy's. A refused connect then shows as a failed transfer, not a connect failure, so it
    /// is not retried (HAProxy says the same). `no-tfo` (the default) undoes it.
    public var fastOpen: Bool = false
    /// `init-addr`: how a server named by a host name finds its address at start, tried in order
    /// (an IP address is used as written, whatever this says, as HAProxy). Nil: HAProxy's
    /// default, `last,libc`, then `none` for a server with `resolvers`, so that a name that does
    /// not resolve yet leaves the server in maintenance until the resolvers answer instead of
    /// failing the start. `initAddressMethods` is the list that applies.
    public var initAddress: [InitAddressMethod]?
    /// The `init-addr` methods that apply: `initAddress`, or HAProxy's default.
    public var initAddressMethods: [InitAddressMethod] {
        initAddress ?? (resolvers == nil ? [.last, .libc] : [.last, .libc, .none])
    }
    /// `track [<backend>/]<server>`: this server has no check of its own and follows that
    /// server's health (backend nil: the same backend).
    public var track: TrackTarget?
    /// `slowstart`: after coming back UP from DOWN, the server's weight ramps from nothing to its
    /// full value over this time (HAProxy's meaning; never at start). Nil: full weight at once.
    public var slowStart: Duration?
    /// `resolve-prefer ipv6`: take an IPv6 address when a name has both families. Default: IPv4
    /// at start (the system resolver), IPv6 with `resolvers`, as HAProxy.
    public var preferIPv6: Bool = false
    /// `resolvers <name>`: the server's name is resolved again while running with that section's
    /// name servers. Nil: resolved at start (and at each reload) only.
    public var resolvers: String?
    /// `resolve-net`: among the addresses a name resolves to, those in these networks come first.
    public var resolveNetworks: [String] = []
    /// `resolve-opts allow-dup-ip`: this server may take an address another server of its backend
    /// already has (by default it may not, as HAProxy).
    public var allowDuplicateAddress: Bool = false
    /// `resolve-opts ignore-weight`: SRV weights do not change this server's weight.
    public var ignoreSRVWeight: Bool = false
    /// `server-template`: the template's name prefix, which groups its slots (their addresses are
    /// handed out together, each address to one slot). Nil for a `server` line.
    public var templatePrefix: String?

    /// A server line.
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

/// The server another one follows (`track`).
public struct TrackTarget: Hashable, Sendable, CustomStringConvertible {
    /// The followed server's backend; nil: the same backend.
    public var backend: String?
    /// The followed server's name.
    public var server: String

    /// `track [<backend>/]<server>`.
    public init(backend: String?, server: String) {
        self.backend = backend
        self.server = server
    }

    /// As the `track` parameter writes it.
    public var description: String { backend.map { "\($0)/\(server)" } ?? server }
}

/// The PROXY protocol's versions (`send-proxy`, `send-proxy-v2`).
public enum ProxyProtocolVersion: Int, Hashable, Sendable {
    /// The text header (`PROXY TCP4 …\r\n`).
    case v1 = 1
    /// The binary header.
    case v2 = 2
}

/// The TLVs (type-length-value fields) a v2 PROXY header carries after the addresses
/// (`proxy-v2-options`), written as HAProxy 2.6's `make_proxy_line_v2` writes them, in its order.
public struct ProxyV2Options: OptionSet, Hashable, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// `ssl`: PP2_TYPE_SSL. Sluice does not terminate TLS, so it says "not over TLS" (client
    /// flags and verify result zero), as HAProxy's says for a plain TCP client.
    public static let ssl = ProxyV2Options(rawValue: 1 << 0)
    /// `cert-cn`, `cert-key`, `cert-sig`, `ssl-cipher`: sub-TLVs of `ssl` that only a TLS client
    /// has; never written at Layer 4 (HAProxy writes none for a plain TCP client either).
    public static let certCN = ProxyV2Options(rawValue: 1 << 1)
    public static let certKey = ProxyV2Options(rawValue: 1 << 2)
    public static let certSig = ProxyV2Options(rawValue: 1 << 3)
    public static let sslCipher = ProxyV2Options(rawValue: 1 << 4)
    /// `authority`: PP2_TYPE_AUTHORITY, the authority a client's own v2 header carried
    /// (`accept-proxy`); none when it carried none.
    public static let authority = ProxyV2Options(rawValue: 1 << 5)
    /// `crc32c`: PP2_TYPE_CRC32C, the header's CRC32c checksum.
    public static let crc32c = ProxyV2Options(rawValue: 1 << 6)
    /// `unique-id`: PP2_TYPE_UNIQUE_ID, the session's ID from its frontend's `unique-id-format`
    /// (empty without one, as HAProxy sends it).
    public static let uniqueID = ProxyV2Options(rawValue: 1 << 7)

    /// The names `proxy-v2-options` takes, with what each one sets (HAProxy's table).
    static let names: [String: ProxyV2Options] = [
        "ssl": .ssl, "cert-cn": [.ssl, .certCN], "cert-key": [.ssl, .certKey], "cert-sig": [.ssl, .certSig],
        "ssl-cipher": [.ssl, .sslCipher], "authority": .authority, "crc32c": .crc32c, "unique-id": .uniqueID,
    ]
}

/// One method of `init-addr`.
public enum InitAddressMethod: Hashable, Sendable {
    /// `libc`: resolve the name with the system resolver.
    case libc
    /// `last`: the address saved for the server in its backend's server-state file
    /// (`load-server-state-from-file`).
    case last
    /// `none`: start in maintenance without an address; `set server addr` gives it one.
    case none
    /// An IP address to use as it is.
    case ip(String)
}

/// A `resolvers` section.
/// A `mailers` section: the SMTP servers email alerts go to (HAProxy's section 3.6).
public struct Mailers: Hashable, Sendable {
    public var name: String
    /// `mailer <name> <address>:<port>`, in the order written. Each receives every alert.
    public var mailers: [Mailer] = []
    /// `timeout mail`: how long one alert's whole SMTP exchange may take. HAProxy's default, 10 s.
    public var timeout: Duration = .seconds(10)

    public struct Mailer: Hashable, Sendable {
        public var name: String
        public var endpoint: Endpoint
        public init(name: String, endpoint: Endpoint) {
            self.name = name
            self.endpoint = endpoint
        }
    }

    public init(name: String) { self.name = name }
}

/// `email-alert mailers|from|to|level|myhostname`: a backend's server state changes mailed, as
/// HAProxy mails them (the same SMTP exchange and message).
public struct EmailAlert: Hashable, Sendable {
    public var mailers: Mailers
    public var from: String
    public var to: String
    /// The highest syslog level mailed (`email-alert level`): 1 (alert, HAProxy's default) mails a
    /// server going DOWN; 5 (notice) also UP and drain; 6 (info) also each health-check line of
    /// `option log-health-checks`.
    public var level: Int = 1
    /// `email-alert myhostname`: the name given in `HELO`; the host's name by default.
    public var myHostname: String

    public init(mailers: Mailers, from: String, to: String, level: Int = 1, myHostname: String) {
        self.mailers = mailers
        self.from = from
        self.to = to
        self.level = level
        self.myHostname = myHostname
    }
}

public struct Resolvers: Hashable, Sendable {
    /// One `nameserver <name> <address>:<port>` line.
    public struct Nameserver: Hashable, Sendable {
        /// Its name in the section.
        public var name: String
        /// Its IP address.
        public var address: String
        /// Its port (53 by default).
        public var port: Int
        /// `tcp@`: queries go over TCP (otherwise UDP, with TCP when an answer is truncated).
        public var overTCP: Bool
    }
    /// The section's name, as servers' `resolvers` parameter names it.
    public var name: String
    /// Queried in turn.
    public var nameservers: [Nameserver] = []
    /// `resolve_retries`: queries sent for one resolution before it fails. Default 3.
    public var retries: Int = 3
    /// `timeout resolve`: how often due resolutions are looked for. Default 1 s.
    public var resolveTimeout: Duration = .seconds(1)
    /// `timeout retry`: how long a query waits for an answer before it is sent again. Default 1 s.
    public var retryTimeout: Duration = .seconds(1)
    /// `hold valid`: how long a valid answer stands before the name is asked again. Default 10 s.
    public var holdValid: Duration = .seconds(10)
    /// `hold nx|refused|timeout|other`: how long after the last valid answer such a failure is
    /// ignored (the server keeps its address and state); after it, the server goes to maintenance.
    /// Default 30 s each.
    public var holdNX: Duration = .seconds(30)
    /// `hold refused`.
    public var holdRefused: Duration = .seconds(30)
    /// `hold timeout`.
    public var holdTimeout: Duration = .seconds(30)
    /// `hold other`.
    public var holdOther: Duration = .seconds(30)
    /// `hold obsolete`: how long an address missing from new answers keeps its template slot. Default 0.
    public var holdObsolete: Duration = .zero
    /// `accepted_payload_size`: the EDNS0 payload size announced (512: no EDNS0). Default 512.
    public var acceptedPayloadSize: Int = 512

    /// A section with HAProxy's defaults and no name server yet.
    public init(name: String) { self.name = name }
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
    /// `check-ssl` (or a backend's `http-check|tcp-check connect ssl`): checks run over TLS with
    /// these settings. Nil: plain TCP.
    public var tls: CheckTLS?

    /// HAProxy's defaults: every 2 s, rise 2, fall 3, to the server's own address.
    public init() {}
}

/// TLS under a server's health checks, as HAProxy's `check-ssl` sets it up: an HTTP check becomes
/// HTTPS, a connect check a TLS handshake (`L6OK`). Sluice originates TLS for checks only; the
/// traffic it forwards is never deciphered.
public struct CheckTLS: Hashable, Sendable {
    /// `verify required` (HAProxy's default, unless `ssl-server-verify none`): the server's chain
    /// must verify against `caFile`, and its names against `sni`, else `verifyHost`.
    public var verify: Bool = true
    /// `ca-file`: a PEM file, a directory of them, or `@system-ca`.
    public var caFile: String?
    /// `crl-file`: revocation lists checked with the chain.
    public var crlFile: String?
    /// `verifyhost`: the name the certificate must carry when no SNI is sent.
    public var verifyHost: String?
    /// `check-sni` (or `http-check connect … sni`): the name sent in the ClientHello.
    public var sni: String?
    /// `check-alpn` (else `alpn`, or `connect … alpn`): protocols offered, comma-separated.
    public var alpn: String?
    /// `crt`: a client certificate and its key (or the key at `<crt>.key`).
    public var certificate: String?
    /// `ciphers`, `ciphersuites`, `curves`, `sigalgs`, `client-sigalgs`: OpenSSL's lists.
    public var ciphers: String?
    public var cipherSuites: String?
    public var curves: String?
    public var signatureAlgorithms: String?
    public var clientSignatureAlgorithms: String?
    /// `ssl-min-ver`/`ssl-max-ver` (or the `no-…`/`force-…` forms): protocol bounds.
    public var minVersion: TLSVersion?
    public var maxVersion: TLSVersion?

    public init() {}
}

/// HAProxy's protocol version names.
public enum TLSVersion: String, CaseIterable, Comparable, Hashable, Sendable {
    case sslv3 = "SSLv3", tlsv10 = "TLSv1.0", tlsv11 = "TLSv1.1", tlsv12 = "TLSv1.2", tlsv13 = "TLSv1.3"

    /// OpenSSL's number for it (SSL3_VERSION, TLS1_VERSION …).
    var wire: Int32 {
        switch self {
        case .sslv3: 0x300
        case .tlsv10: 0x301
        case .tlsv11: 0x302
        case .tlsv12: 0x303
        case .tlsv13: 0x304
        }
    }

    /// The word of `no-tlsv12`, `force-tlsv12`…
    var flagSuffix: String { String(rawValue.lowercased().filter { $0 != "." }) }

    public static func < (a: TLSVersion, b: TLSVersion) -> Bool { a.wire < b.wire }
}

/// `agent-check`: an auxiliary check of a server, run besides its health check. Each check
/// connects to the agent, sends `agent-send`, and reads one line whose words set the server's
/// weight (`75%` of its configured weight), `maxconn:<n>`, admin state (`ready`, `drain`, `maint`)
/// and health (`up`; `down`, `fail`, `stopped` with an optional `#` description) — HAProxy's
/// agent protocol. The server is UP only while both its health check and its agent say so; an
/// agent that cannot be reached changes nothing.
public struct AgentCheck: Hashable, Sendable {
    /// `agent-port`.
    public var port: Int
    /// `agent-addr`: the agent's address. Nil: the server's.
    public var address: String?
    /// `agent-inter`: interval between agent checks (and their timeout without `timeout check`).
    /// Nil: the server's `inter`.
    public var interval: Duration?
    /// `agent-send`: sent verbatim once connected. Empty: nothing.
    public var send: [UInt8] = []

    public init(port: Int, address: String? = nil, interval: Duration? = nil, send: [UInt8] = []) {
        self.port = port
        self.address = address
        self.interval = interval
        self.send = send
    }
}

/// What an active health check does.
public enum HealthCheck: Hashable, Sendable {
    /// Connect, then close (`check` alone).
    case tcpConnect
    /// `option httpchk` and `http-check` lines.
    case http(HTTPCheck)
    /// `option tcp-check` and `tcp-check` rules.
    case tcp([TCPCheckRule])
    /// A protocol check (`option redis-check`, `mysql-check` …): HAProxy's conversation and verdicts.
    case protocolCheck(ProtocolCheck)
    /// `option external-check`: a program run per check, which passes when it exits with 0.
    case external(ExternalCheck)

    /// The HTTP check, if this is one.
    public var httpCheck: HTTPCheck? {
        if case .http(let check) = self { check } else { nil }
    }
}

/// `option external-check`, `external-check command <cmd>`, `external-check path <path>`: HAProxy's
/// external checks. The command gets `<proxy_address> <proxy_port> <server_address> <server_port>`
/// and only HAProxy's variables in its environment (`PATH` from `path`, `HAPROXY_PROXY_*`,
/// `HAPROXY_SERVER_*`).
public struct ExternalCheck: Hashable, Sendable {
    public var command: String
    /// The `PATH` the command sees (and is searched in when it has no `/`); HAProxy's default is empty.
    public var path: String?
    /// The proxy's first listening address and port, as the first two arguments give them:
    /// `NOT_USED` for a backend (no listener), the path and `NOT_USED` for a UNIX socket.
    public var proxyAddress = "NOT_USED"
    public var proxyPort = "NOT_USED"

    public init(command: String, path: String? = nil) {
        self.command = command
        self.path = path
    }
}

/// HAProxy's protocol checks, each a fixed conversation with the server.
public enum ProtocolCheck: Hashable, Sendable {
    /// `option redis-check`: PING, expect `+PONG`.
    case redis
    /// `option ssl-hello-chk`: an SSLv3 ClientHello, expect a TLS handshake or alert record.
    case sslHello
    /// `option smtpchk [HELO|EHLO <domain>]`: expect a 2xx banner, send the hello, expect 2xx.
    case smtp(hello: String)
    /// `option pgsql-check user <u>`: a StartupMessage, expect an authentication request.
    case pgsql(user: String)
    /// `option mysql-check [user <u> [post-41|pre-41]]`: read the handshake; with a user, log in
    /// (no password) and quit, expecting OK.
    case mysql(user: String?, post41: Bool)
    /// `option ldap-check`: an anonymous simple bind, expect a successful bindResponse.
    case ldap
}

/// `option httpchk` with its `http-check send` and `http-check expect` lines.
public struct HTTPCheck: Hashable, Sendable {
    /// The request's method; `OPTIONS` by default, as HAProxy.
    public var method: String = "OPTIONS"
    /// The request's target.
    public var uri: String = "/"
    /// The request's version.
    public var version: String = "HTTP/1.0"
    /// `http-check send hdr <name> <value>` lines.
    public var headers: [(name: String, value: String)] = []
    /// `http-check expect`; nil: a 2xx or 3xx status passes.
    public var expect: HTTPExpectation?
    /// `http-check send-state`: each request carries `X-Haproxy-Server-State` (HAProxy's view of
    /// the server: its check state, address, weight, sessions and queue).
    public var sendsState = false
    /// `http-check disable-on-404`: a server that is up and answers 404 is soft-stopped (NOLB: no
    /// new load-balanced session, persistent ones still) until it answers 2xx or 3xx again.
    public var disableOn404 = false
    /// `http-check send … body <string>`: sent after the headers, with its `content-length`.
    public var body = ""
    /// `http-check connect`: where the check connects, when it says.
    public var connect: Connect?
    /// Whether a `send` or `expect` line came (a later `connect` would open a second exchange).
    var hasExchange = false

    /// `http-check connect [default] [port <n>] [addr <ip>] [via-socks4] [linger]`.
    public struct Connect: Hashable, Sendable {
        /// Wins over the server's `port` (as `tcp-check connect port`).
        public var port: Int?
        /// Wins over the server's `addr`.
        public var address: String?
        /// Through the server's `socks4` proxy: `default` follows `check-via-socks4`, `via-socks4` always.
        public var socks: CheckConnectSOCKS = .never
        public init(port: Int? = nil, address: String? = nil, socks: CheckConnectSOCKS = .never) {
            self.port = port
            self.address = address
            self.socks = socks
        }
    }

    /// `option httpchk` alone: `OPTIONS / HTTP/1.0`, any 2xx or 3xx passes.
    public init() {}

    public static func == (a: HTTPCheck, b: HTTPCheck) -> Bool {
        a.method == b.method && a.uri == b.uri && a.version == b.version && a.expect == b.expect && a.sendsState == b.sendsState
            && a.disableOn404 == b.disableOn404 && a.body == b.body && a.connect == b.connect && a.headers.elementsEqual(b.headers) { $0.name == $1.name && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(method); hasher.combine(uri); hasher.combine(version); hasher.combine(expect); hasher.combine(sendsState); hasher.combine(disableOn404)
        hasher.combine(body); hasher.combine(connect)
        for h in headers { hasher.combine(h.name); hasher.combine(h.value) }
    }
}

/// `http-check expect`. Without one, any 2xx or 3xx status passes.
/// `http-check expect [!] status|rstatus|string|rstring <pattern>`.
public enum HTTPExpectation: Hashable, Sendable {
    /// `status <codes>`: the status is one of these (ranges like `200-299`).
    case status([ClosedRange<Int>], negated: Bool)
    /// `rstatus <regex>`: the status matches.
    case statusRegex(String, negated: Bool)
    /// `string <text>`: the body contains it.
    case string(String, negated: Bool)
    /// `rstring <regex>`: the body matches.
    case stringRegex(String, negated: Bool)
}

/// Whether a check's connection opens with the server's PROXY header, as HAProxy 2.6 decides it
/// (`TCPCHK_OPT_DEFAULT_CONNECT`, `TCPCHK_OPT_SEND_PROXY`).
public enum CheckConnectHeader: Hashable, Sendable {
    /// No `connect` rule, or `connect default`: as the server's checks do (`Server.checksSendProxy`).
    case server
    /// `connect send-proxy`: always (v1 unless the server sends v2).
    case always
    /// A `connect` rule with neither: never, whatever the server's `send-proxy`.
    case never
}

/// Whether a check's connection goes through the server's `socks4` proxy, as HAProxy 2.6 decides
/// it (`TCPCHK_OPT_DEFAULT_CONNECT`, `TCPCHK_OPT_SOCKS4`).
public enum CheckConnectSOCKS: Hashable, Sendable {
    /// No `connect` rule, or `connect default`: when the server says `check-via-socks4`.
    case server
    /// `connect via-socks4`: whenever the server has a `socks4` proxy.
    case always
    /// A `connect` rule with neither: direct.
    case never
}

/// A `tcp-check` line: the check is a conversation run in order.
public enum TCPCheckRule: Hashable, Sendable {
    /// `connect [default] [port <n>] [send-proxy] [via-socks4] …`: where the conversation goes (the
    /// server's port when nil), whether it opens with a PROXY header, whether it goes through the
    /// server's SOCKS4 proxy.
    case connect(port: Int?, header: CheckConnectHeader, socks: CheckConnectSOCKS = .never)
    /// `send <text>` / `send-binary <hex>`.
    case send([UInt8])
    /// `expect [!] string <text>`: what arrived contains it.
    case expectString(String, negated: Bool)
    /// `expect [!] rstring <regex>`.
    case expectRegex(String, negated: Bool)
    /// `expect [!] binary <hex>`.
    case expectBinary([UInt8], negated: Bool)
    /// `expect [!] rbinary <regex>`: the regex is matched against what arrived written in
    /// hexadecimal (two upper-case digits a byte, as HAProxy's `dump_binary`).
    case expectBinaryRegex(String, negated: Bool)
    /// `comment <text>`: reported with a failure of the rules that follow (HAProxy's rule: the
    /// next connect, or the next run of sends or of expects). It counts as a step, as in HAProxy.
    case comment(String)
}

extension Duration {
    /// Whole milliseconds, rounding up so that a sub-millisecond timeout is not zero.
    var milliseconds: Int64 {
        let (s, attos) = components
        return s * 1000 + (attos + 999_999_999_999_999) / 1_000_000_000_000_000
    }
}

/// `load-server-state-from-file global|local|none`.
public enum ServerStateSource: Hashable, Sendable {
    /// `none`: servers start from the configuration alone.
    case none
    /// The global `server-state-file`.
    case global
    /// `server-state-file-name <file>`; nil: the backend's name. Relative to `server-state-base`.
    case local(String?)
}

/// `source <addr>[:<port>] [usesrc …] [interface <name>]` (backend or server): where connections
/// to servers, and health checks, come from.
public struct SourceBinding: Sendable, Hashable {
    /// Bound before connecting; port 0 lets the kernel choose it at connect time. Health checks
    /// leave from here even when `presented` is set, as HAProxy's.
    public var address: SocketAddress
    /// `interface`: the connections leave through this device (`SO_BINDTODEVICE`).
    public var interface: String?
    /// `usesrc`: the address forwarded connections present to the server instead (full
    /// transparent proxying). Nil: `address`.
    public var presented: PresentedSource?

    public init(address: SocketAddress, interface: String? = nil, presented: PresentedSource? = nil) {
        self.address = address
        self.interface = interface
        self.presented = presented
    }
}

/// `usesrc`: what a forwarded connection presents to its server as its source, an address this host
/// need not own (`IP_TRANSPARENT`, which needs `CAP_NET_ADMIN`; the servers must route their replies
/// back through this host, as with HAProxy).
public enum PresentedSource: Sendable, Hashable {
    /// `usesrc client`: the client's address and port.
    case client
    /// `usesrc clientip`: the client's address, with a port the kernel picks.
    case clientIP
    /// `usesrc <addr>[:<port>]`: a fixed address (port 0: the kernel's pick).
    case address(SocketAddress)
}

/// `SO_RCVBUF`/`SO_SNDBUF` for one side's sockets (HAProxy's `tune.rcvbuf.*`/`tune.sndbuf.*`).
public struct SocketBufferSizes: Hashable, Sendable {
    /// Bytes; nil (or 0, as HAProxy) leaves the kernel's auto-tuning.
    public var receive: Int?
    public var send: Int?

    public init(receive: Int? = nil, send: Int? = nil) {
        self.receive = receive
        self.send = send
    }

    /// Whether any size is set (else sockets are left alone).
    var isSet: Bool { (receive ?? 0) > 0 || (send ?? 0) > 0 }
}
