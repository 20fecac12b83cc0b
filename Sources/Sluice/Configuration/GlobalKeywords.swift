import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What the `global` section says, keyword by keyword. Every keyword HAProxy 2.6 knows is either
/// applied, accepted with a warning that says why it changes nothing at Layer 4, or refused with
/// the reason: none is ignored silently.
enum GlobalKeywords {
    /// Prefixes of keywords that only configure TLS termination, which Sluice never does.
    static let tlsPrefixes = ["ssl-", "tune.ssl.", "maxssl", "ca-base", "crt-base", "issuers-chain-path"]
    /// Prefixes of keywords that only configure HTTP processing.
    static let httpPrefixes = ["tune.http.", "tune.h2.", "h1-", "h2-", "tune.comp.", "maxcomp", "maxzlibmem", "tune.zlib.",
                               "tune.maxrewrite", "tune.idle-pool", "tune.fail-alloc", "http-err-codes", "http-fail-codes"]
    /// Keywords with no meaning for Sluice, and why.
    static let meaningless: [String: String] = [
        "insecure-fork-wanted": "Sluice needs no such permission: it starts processes only for 'option external-check' (with 'external-check' in global), whether or not this is set",
        "insecure-setuid-wanted": "Sluice does not stop external checks from running setuid programs (HAProxy does without this)",
        "noreuseport": "Sluice needs SO_REUSEPORT for one listener per thread and reloads in-process",
        "nbproc": "Sluice runs as one process (HAProxy removed 'nbproc' in 2.5); use 'nbthread' for more cores",
        "tune.chksize": "removed from HAProxy; checks read up to 16 KiB of reply",
        "numa-cpu-mapping": "use 'cpu-map' to place reactor threads",
        "quiet": "Sluice prints nothing at start unless something is wrong; use 'sluice -q' to hide notices",
        "grace": "Sluice stops accepting at once on a stop signal; sessions then finish, bounded by 'hard-stop-after'",
        "profiling.tasks": "Sluice has no task profiler",
        "profiling.memory": "Sluice has no memory profiler",
        "set-dumpable": "Sluice does not change the dumpable flag",
        "expose-experimental-directives": "Sluice has no experimental directives",
        "noepoll": "it keeps HAProxy off epoll; Sluice's engines are io_uring (the default) and epoll, chosen with 'io-engine'",
        "nopoll": "it keeps HAProxy off poll(); Sluice never uses poll()",
        "nogetaddrinfo": "it makes HAProxy resolve names with gethostbyname; Sluice resolves with getaddrinfo at start and with its own resolvers at run time",
        "tune.idletimer": "it tunes when HAProxy splices a stream; Sluice splices a direction once a read fills its buffer",
        "tune.recv_enough": "it tunes HAProxy's buffer reads; Sluice reads up to 'tune.bufsize' at once",
        "tune.listener.multi-queue": "it spreads HAProxy's accepted connections over threads; each Sluice thread accepts on its own listener",
        "tune.runqueue-depth": "it tunes HAProxy's task scheduler; a Sluice reactor handles up to 'tune.maxpollevents' events per turn",
        "tune.sched.low-latency": "it tunes HAProxy's task scheduler; a Sluice reactor handles events in arrival order",
    ]
    /// Prefixes of keywords for features Sluice refuses wherever they are used, so that the
    /// setting alone changes nothing.
    static let unusedFeaturePrefixes: [(prefix: String, why: String)] = [
        ("tune.lua.", "Lua scripting is not supported ('lua-load' is refused)"),
        ("tune.vars.", "Sluice does not cap the memory variables take ('set-var' never fails for it; HAProxy has no cap by default either)"),
    ]
    /// Keywords Sluice refuses, and why.
    static let refused: [String: String] = [
        "lua-load": "Lua scripting is not supported",
        "lua-load-per-thread": "Lua scripting is not supported",
        "lua-prepend-path": "Lua scripting is not supported",
        "thread-group": "thread groups are not supported; Sluice's threads form one group",
        "thread-groups": "thread groups are not supported; Sluice's threads form one group",
        "wurfl-data-file": "device detection needs HTTP",
        "51degrees-data-file": "device detection needs HTTP",
        "deviceatlas-json-file": "device detection needs HTTP",
        "default-path": "relative paths are read from the current directory",
        "cluster-secret": "QUIC and PROXY-protocol authentication are not supported",
        "stats-file": "not supported",
    ]
}

extension GlobalKeywords {
    static var systemHostName: String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count) == 0 else { return "localhost" }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension Parser {
    mutating func globalKeyword(_ words: [String], _ location: SourceLocation) {
        let keyword = words[0]
        switch keyword {
        case "localpeer":
            // The local peer's name in `peers` sections (HAProxy's default: the host name).
            guard expect(words, count: 2, location, usage: "localpeer <name>") else { return }
            localPeer = words[1]
        case "maxconn":
            guard expect(words, count: 2, location, usage: "maxconn <number>") else { return }
            global.maxConnections = value(ValueParser.integer(words[1], in: 1...1_000_000, what: "maxconn"), location, keyword: keyword)
        case "maxconnrate", "maxsessrate":
            guard expect(words, count: 2, location, usage: "\(keyword) <number>") else { return }
            // 0: no limit, as HAProxy.
            let limit = value(ValueParser.integer(words[1], in: 0...10_000_000, what: keyword), location, keyword: keyword).flatMap { $0 == 0 ? nil : $0 }
            if keyword == "maxconnrate" { global.maxConnectionRate = limit } else { global.maxSessionRate = limit }
        case "nbthread":
            guard expect(words, count: 2, location, usage: "nbthread <number>") else { return }
            global.threads = value(ValueParser.integer(words[1], in: 1...64, what: "nbthread"), location, keyword: keyword) ?? 1
        case "maxpipes":
            guard expect(words, count: 2, location, usage: "maxpipes <number>") else { return }
            global.maxPipes = value(ValueParser.integer(words[1], in: 0...1_000_000, what: "maxpipes"), location, keyword: keyword)
        case "tune.pipesize":
            guard expect(words, count: 2, location, usage: "tune.pipesize <bytes>") else { return }
            if let size = value(ValueParser.size(words[1]), location, keyword: keyword) {
                if (4096...(64 << 20)).contains(size) { global.pipeSize = size } else {
                    error(location, keyword: keyword, "\(size) bytes is outside 4096...67108864")
                }
            }
        case "tune.bufsize":
            guard expect(words, count: 2, location, usage: "tune.bufsize <bytes>") else { return }
            if let size = value(ValueParser.size(words[1]), location, keyword: keyword) {
                if (1024...(1 << 20)).contains(size) { global.bufferSize = size } else {
                    error(location, keyword: keyword, "\(size) bytes is outside 1024...1048576")
                }
            }
        case "tune.maxaccept":
            if let n = firstNumber(words, location, keyword: keyword, current: global.maxAccept, limit: Int(Int32.max),
                                   tooLarge: { _ in "expects -1 or an integer from 0 to INT_MAX (2147483647)" }) {
                global.maxAccept = n
            }
        case "tune.maxpollevents":
            if let n = firstNumber(words, location, keyword: keyword, current: global.maxPollEvents, limit: Global.maxPollEventsLimit,
                                   tooLarge: { "\($0) events per poll is above \(Global.maxPollEventsLimit)" }) {
                global.maxPollEvents = n
            }
        case "tune.rcvbuf.client", "tune.sndbuf.client", "tune.rcvbuf.server", "tune.sndbuf.server":
            let client = keyword.hasSuffix(".client"), receive = keyword.hasPrefix("tune.rcvbuf")
            let sizes = client ? global.clientBuffers : global.serverBuffers
            guard let n = firstNumber(words, location, keyword: keyword, current: receive ? sizes.receive : sizes.send, limit: Int(Int32.max),
                                      tooLarge: { _ in "expects a size in bytes from 0 to INT_MAX (2147483647)" }) else { return }
            guard n >= 0 else {
                error(location, keyword: keyword, "expects a size in bytes from 0 to INT_MAX (2147483647)")
                return
            }
            switch (client, receive) {
            case (true, true): global.clientBuffers.receive = n
            case (true, false): global.clientBuffers.send = n
            case (false, true): global.serverBuffers.receive = n
            case (false, false): global.serverBuffers.send = n
            }
        case "ssl-server-verify", "ca-base", "crt-base", "ssl-default-server-ciphers", "ssl-default-server-ciphersuites", "ssl-default-server-options":
            globalTLSLine(words, location)
        case "nosplice":
            guard expect(words, count: 1, location, usage: "nosplice") else { return }
            global.noSplice = true
        case "busy-polling":
            guard expect(words, count: 1, location, usage: "busy-polling") else { return }
            global.busyPolling = true
        case "no" where words.count > 1 && words[1] == "busy-polling":
            guard expect(words, count: 2, location, usage: "no busy-polling") else { return }
            global.busyPolling = false
        case "spread-checks":
            guard expect(words, count: 2, location, usage: "spread-checks <0..50>") else { return }
            global.spreadChecks = value(ValueParser.integer(words[1], in: 0...50, what: "spread-checks"), location, keyword: keyword) ?? 0
        case "pp2-never-send-local":
            guard expect(words, count: 1, location, usage: "pp2-never-send-local") else { return }
            global.pp2NeverSendLocal = true
        case "max-spread-checks":
            guard expect(words, count: 2, location, usage: "max-spread-checks <time>") else { return }
            global.maxSpreadChecks = timeValue(words[1], location, keyword: keyword)
        case "hard-stop-after":
            guard expect(words, count: 2, location, usage: "hard-stop-after <time>") else { return }
            global.hardStopAfter = timeValue(words[1], location, keyword: keyword)
        case "stats":
            statsKeyword(words, location)
        case "external-check":
            guard expect(words, count: 1, location, usage: "external-check") else { return }
            global.externalCheck = true
        case "unix-bind":
            var i = 1
            while i < words.count {
                guard i + 1 < words.count else { return error(location, keyword: keyword, "'\(words[i])' needs a value") }
                if words[i] == "prefix" {
                    global.unixBind.prefix = words[i + 1]
                } else if value(ValueParser.unixPermission(words[i], words[i + 1], &global.unixBind.permissions), location, keyword: keyword) == false {
                    error(location, keyword: keyword, "unknown parameter '\(words[i])'; expected prefix, mode, user, uid, group or gid")
                }
                i += 2
            }
        case "server-state-file", "server-state-base":
            guard expect(words, count: 2, location, usage: "\(keyword) <\(keyword == "server-state-file" ? "file" : "directory")>") else { return }
            if keyword == "server-state-file" { global.serverStateFile = words[1] } else { global.serverStateBase = words[1] }
        case "io-engine":
            guard expect(words, count: 2, location, usage: "io-engine epoll|io_uring") else { return }
            if let engine = IOEngine(rawValue: words[1]) { global.ioEngine = engine } else {
                error(location, keyword: keyword, "'\(words[1])' is not an engine; expected epoll or io_uring (a Sluice extension)")
            }
        case "log":
            if let target = logTarget(words, location) { global.logTargets.append(target) }
        case "log-tag":
            guard expect(words, count: 2, location, usage: "log-tag <string>") else { return }
            global.logTag = words[1]
        case "log-send-hostname":
            guard words.count <= 2 else { return error(location, keyword: keyword, "usage: log-send-hostname [<string>]") }
            global.logHostname = words.count == 2 ? words[1] : GlobalKeywords.systemHostName
        case "log-format":
            error(location, keyword: keyword, "belongs in a proxy: defaults, frontend or listen")
        case "daemon":
            guard expect(words, count: 1, location, usage: "daemon") else { return }
            global.daemon = true
        case "master-worker":
            warning(location, keyword: keyword, "Sluice runs as one process that reloads itself in-process (SIGHUP, SIGUSR2 or the 'reload' command); there is no separate master")
        case "pidfile":
            guard expect(words, count: 2, location, usage: "pidfile <path>") else { return }
            global.pidFile = words[1]
        case "user", "uid":
            guard expect(words, count: 2, location, usage: "\(keyword) <\(keyword == "user" ? "name" : "number")>") else { return }
            global.userID = account(words[1], numeric: keyword == "uid", group: false, location, keyword: keyword)
        case "group", "gid":
            guard expect(words, count: 2, location, usage: "\(keyword) <\(keyword == "group" ? "name" : "number")>") else { return }
            global.groupID = account(words[1], numeric: keyword == "gid", group: true, location, keyword: keyword)
        case "chroot":
            guard expect(words, count: 2, location, usage: "chroot <directory>") else { return }
            guard words[1].hasPrefix("/") else {
                error(location, keyword: keyword, "'\(words[1])' must be an absolute path")
                return
            }
            global.chroot = words[1]
        case "fd-hard-limit":
            guard expect(words, count: 2, location, usage: "fd-hard-limit <number>") else { return }
            guard global.descriptorCeiling == nil else {
                warning(location, keyword: keyword, "already specified; the first one stands (as HAProxy)")
                return
            }
            global.descriptorCeiling = value(ValueParser.integer(words[1], in: 64...100_000_000, what: "fd-hard-limit"), location, keyword: keyword)
        case "strict-limits":
            guard expect(words, count: 1, location, usage: "strict-limits") else { return }
            global.strictLimits = true
        case "no" where words.count > 1 && words[1] == "strict-limits":
            guard expect(words, count: 2, location, usage: "no strict-limits") else { return }
            global.strictLimits = false
        case "ulimit-n":
            guard expect(words, count: 2, location, usage: "ulimit-n <number>") else { return }
            global.fileLimit = value(ValueParser.integer(words[1], in: 64...100_000_000, what: "ulimit-n"), location, keyword: keyword)
        case "cpu-map":
            cpuMapLine(words, location)
        case "node", "description":
            guard words.count >= 2 else {
                error(location, keyword: keyword, "missing argument: expected '\(keyword) <text>'")
                return
            }
            let text = words.dropFirst().joined(separator: " ")
            if keyword == "node" { global.node = text } else { global.description = text }
        case "setenv", "presetenv":
            guard expect(words, count: 3, location, usage: "\(keyword) <name> <value>") else { return }
            // As HAProxy: the variable is set while reading, so later lines can expand it.
            setenv(words[1], words[2], keyword == "setenv" ? 1 : 0)
        case "unsetenv":
            for name in words.dropFirst() { unsetenv(name) }
        case "resetenv":
            warning(location, keyword: keyword, "not applied: Sluice keeps its environment (it starts no other program)")
        case "contimeout", "clitimeout", "srvtimeout", "redispatch":
            error(location, keyword: keyword, "is not allowed in the 'global' section (it belongs in defaults, frontend, backend or listen)")
        default:
            if keyword == "nbproc" {
                guard expect(words, count: 2, location, usage: "nbproc 1") else { return }
                guard words[1] == "1" else {
                    error(location, keyword: keyword, "'nbproc \(words[1])': Sluice runs as one process (HAProxy removed 'nbproc' in 2.5); use 'nbthread \(words[1])' for more cores")
                    return
                }
            }
            if let why = GlobalKeywords.meaningless[keyword] {
                warning(location, keyword: keyword, "has no effect: \(why)")
            } else if let why = GlobalKeywords.refused[keyword] {
                error(location, keyword: keyword, "rejected: \(why)")
            } else if GlobalKeywords.tlsPrefixes.contains(where: keyword.hasPrefix) {
                warning(location, keyword: keyword, "has no effect: it configures TLS termination, and Sluice forwards TLS untouched at Layer 4")
            } else if GlobalKeywords.httpPrefixes.contains(where: keyword.hasPrefix) {
                warning(location, keyword: keyword, "has no effect: it configures HTTP processing, and Sluice balances at Layer 4")
            } else if let unused = GlobalKeywords.unusedFeaturePrefixes.first(where: { keyword.hasPrefix($0.prefix) }) {
                warning(location, keyword: keyword, "has no effect: \(unused.why)")
            } else if ProxyKeywords.allowed[keyword] != nil {
                error(location, keyword: keyword, "is not allowed in the 'global' section (it belongs in \(ProxyKeywords.describe(ProxyKeywords.allowed[keyword] ?? [])))")
            } else {
                error(location, keyword: keyword, "unknown keyword in the 'global' section")
            }
        }
    }

    /// `tune.maxaccept`, `tune.maxpollevents`: a whole number up to `limit`, read as HAProxy 2.6
    /// reads these: a second line keeps the first value (unless that was 0), with a warning. Nil
    /// when nothing is to be stored (the diagnostic is reported).
    private mutating func firstNumber(_ words: [String], _ location: SourceLocation, keyword: String, current: Int?, limit: Int,
                                      tooLarge: (Int) -> String) -> Int? {
        guard expect(words, count: 2, location, usage: "\(keyword) <number>") else { return nil }
        if let first = current, first != 0 {
            // HAProxy 2.6 keeps the first value, with the same words.
            warning(location, keyword: keyword, "already specified; the first value (\(first)) stays, as in HAProxy")
            return nil
        }
        guard let n = Int(words[1]) else {
            error(location, keyword: keyword, "\(keyword) '\(words[1])' is not a whole number")
            return nil
        }
        guard n <= limit else {
            error(location, keyword: keyword, tooLarge(n))
            return nil
        }
        return n
    }

    /// A user or group id from a number or a name in the system's databases (HAProxy reads
    /// /etc/passwd and /etc/group; Sluice asks NSS, which includes them).
    private mutating func account(_ text: String, numeric: Bool, group: Bool, _ location: SourceLocation, keyword: String) -> UInt32? {
        if numeric {
            return value(ValueParser.integer(text, in: 0...Int(Int32.max), what: keyword), location, keyword: keyword).map(UInt32.init)
        }
        if group {
            if let gid = Accounts.group(text) { return gid }
            error(location, keyword: keyword, "no group named '\(text)' on this system")
        } else {
            if let (uid, gid) = Accounts.user(text) {
                if global.groupID == nil { implicitGroup = gid }
                return uid
            }
            error(location, keyword: keyword, "no user named '\(text)' on this system")
        }
        return nil
    }

    /// `cpu-map [auto:]<group>[/<threads>] <cpu-set>…`, where sets are `all`, `odd`, `even`,
    /// `n` or `n-m`. Sluice has one thread group: the group must include 1.
    private mutating func cpuMapLine(_ words: [String], _ location: SourceLocation) {
        guard words.count >= 3 else {
            error(location, keyword: "cpu-map", "missing argument: expected 'cpu-map [auto:]1[/<threads>] <cpu-set>…'")
            return
        }
        var target = Substring(words[1])
        let automatic = target.hasPrefix("auto:")
        if automatic { target = target.dropFirst(5) }
        let parts = target.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let groups = numberSet(parts[0], limit: 64), let threads = parts.count > 1 ? numberSet(parts[1], limit: 64) : Array(1...64) else {
            error(location, keyword: "cpu-map", "'\(words[1])' is not '[auto:]<group>[/<threads>]' with numbers, ranges, all, odd or even")
            return
        }
        guard groups.contains(1) else {
            // HAProxy ignores process or group numbers above 1; say so instead.
            warning(location, keyword: "cpu-map", "has no effect: Sluice runs one process with one thread group, and this line names group(s) \(groups.map(String.init).joined(separator: ","))")
            return
        }
        var cpus: [Int] = []
        for set in words.dropFirst(2) {
            for part in set.split(separator: ",") {
                guard let some = numberSet(part, limit: 4096, zeroBased: true) else {
                    error(location, keyword: "cpu-map", "'\(set)' is not a CPU set such as 0, 0-3 or 1,3")
                    return
                }
                cpus += some
            }
        }
        global.cpuMap.append(CPUMapping(threads: threads, cpus: cpus, automatic: automatic))
    }

    /// `all`, `odd`, `even`, `n` or `n-m` as a list of numbers within 1...limit (0..<limit when
    /// `zeroBased`).
    private func numberSet(_ text: Substring, limit: Int, zeroBased: Bool = false) -> [Int]? {
        let range = zeroBased ? 0...(limit - 1) : 1...limit
        switch text {
        case "all": return Array(range)
        case "odd": return range.filter { $0 % 2 == 1 }
        case "even": return range.filter { $0 % 2 == 0 }
        default:
            let bounds = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map { Int($0) }
            guard let low = bounds[0] else { return nil }
            let high = bounds.count > 1 ? (bounds[1] ?? range.upperBound) : low
            guard range.contains(low), range.contains(high), low <= high else { return nil }
            return Array(low...high)
        }
    }

    private mutating func statsKeyword(_ words: [String], _ location: SourceLocation) {
        let usage = "stats socket <path>|<address>:<port> [mode <octal>] [level user|operator|admin] [user|uid|group|gid <x>] [expose-fd listeners]"
        guard words.count >= 2 else {
            error(location, keyword: "stats", "missing argument: expected '\(usage)'")
            return
        }
        let keyword = "stats \(words[1])"
        if ["socket", "timeout", "maxconn", "bind-process"].contains(words[1]) { cliProxyPosition = cliProxyPosition ?? proxies.count }
        switch words[1] {
        case "socket":
            guard words.count >= 3 else {
                error(location, keyword: keyword, "missing path: expected '\(usage)'")
                return
            }
            var path = words[2]
            let unix = path.hasPrefix("unix@")  // then the path may be relative, as HAProxy reads it
            if unix { path.removeFirst(5) }
            if path.hasPrefix("abns@") {
                return error(location, keyword: keyword, "'\(path)': a runtime API socket in the abstract namespace is not supported yet; use a path")
            }
            var socket = StatsSocket(path: path)
            if !unix && !path.hasPrefix("/") {
                // `ipv4@127.0.0.1:9999`, `*:9999`: HAProxy's TCP form of the socket.
                guard let endpoint = value(ValueParser.endpoint(words[2], allowZeroPort: false), location, keyword: keyword) else { return }
                socket = StatsSocket(address: .tcp(endpoint))
            }
            var i = 3
            while i < words.count {
                let option = words[i]
                guard i + 1 < words.count else {
                    error(location, keyword: keyword, "'\(option)' needs a value")
                    return
                }
                let arg = words[i + 1]
                if socket.path == nil && ["mode", "uid", "gid", "user", "group"].contains(option) {
                    warning(location, keyword: keyword, "'\(option) \(arg)' has no effect on a TCP socket (it sets a UNIX socket file's permissions)")
                    i += 2
                    continue
                }
                switch option {
                case "mode", "uid", "gid", "user", "group":
                    var permissions = UnixSocketPermissions(mode: socket.mode, owner: socket.owner, group: socket.group)
                    _ = value(ValueParser.unixPermission(option, arg, &permissions), location, keyword: keyword)
                    (socket.mode, socket.owner, socket.group) = (permissions.mode ?? socket.mode, permissions.owner, permissions.group)
                case "level":
                    if let level = StatsSocket.Level(rawValue: arg) { socket.level = level } else {
                        error(location, keyword: keyword, "level '\(arg)' is not one of user, operator, admin")
                    }
                case "expose-fd":
                    if arg == "listeners" {
                        warning(location, keyword: keyword, "'expose-fd listeners' is not needed: Sluice reloads in-process (SIGHUP, SIGUSR2 or 'reload') and keeps its listening sockets open")
                    } else {
                        error(location, keyword: keyword, "'expose-fd \(arg)': expected 'expose-fd listeners'")
                    }
                case "process", "thread":
                    warning(location, keyword: keyword, "'\(option) \(arg)' has no effect: one runtime API serves every thread")
                default:
                    error(location, keyword: keyword, "unknown option '\(option)'; supported: mode, level, uid, gid, user, group, expose-fd")
                }
                i += 2
            }
            global.statsSockets.append(socket)
        case "timeout":
            guard expect(words, count: 3, location, usage: "stats timeout <time>") else { return }
            if let time = timeValue(words[2], location, keyword: keyword) {
                if time > .zero { global.statsTimeout = time } else { error(location, keyword: keyword, "must be greater than zero") }
            }
        case "maxconn":
            guard expect(words, count: 3, location, usage: "stats maxconn <number>") else { return }
            global.statsMaxConnections = value(ValueParser.integer(words[2], in: 1...100_000, what: "stats maxconn"), location, keyword: keyword) ?? 10
        case "bind-process":
            warning(location, keyword: keyword, "has no effect: Sluice runs as one process")
        default:
            error(location, keyword: keyword, "unknown stats keyword; supported: socket, timeout, maxconn")
        }
    }

    /// A time, refused above HAProxy's maximum of 2,147,483,647 ms (~24.8 days).
    mutating func timeValue(_ text: String, _ location: SourceLocation, keyword: String) -> Duration? {
        guard let time = value(ValueParser.time(text), location, keyword: keyword) else { return nil }
        if time > .milliseconds(Int64(Int32.max)) {
            error(location, keyword: keyword, "'\(text)' is too long: the maximum is 2147483647 ms (~24.8 days), as in HAProxy")
            return nil
        }
        return time
    }
}

/// User and group names, looked up in the system's databases and remembered for the life of the
/// process: after `chroot` the databases are out of reach, and a reload must still read `user`.
enum Accounts {
    private static let known = Mutex<(users: [String: (UInt32, UInt32)], groups: [String: UInt32])>(([:], [:]))

    /// The uid and primary gid of `name`.
    static func user(_ name: String) -> (uid: UInt32, gid: UInt32)? {
        if let entry = getpwnam(name) {
            let ids = (entry.pointee.pw_uid, entry.pointee.pw_gid)
            known.withLock { $0.users[name] = ids }
            return ids
        }
        return known.withLock { $0.users[name] }
    }

    static func group(_ name: String) -> UInt32? {
        if let entry = getgrnam(name) {
            let gid = entry.pointee.gr_gid
            known.withLock { $0.groups[name] = gid }
            return gid
        }
        return known.withLock { $0.groups[name] }
    }
}
