#if canImport(Glibc)
import Glibc
#endif

/// The runtime API's commands, HAProxy-compatible where HAProxy has them: the same names,
/// arguments, replies and error sentences, so that deploy scripts written for HAProxy's stats
/// socket work unchanged. Sockets live in `StatsSocketServer`; this type only interprets.
struct RuntimeAPI: Sendable {
    let balancer: LoadBalancer
    let version: String

    /// What one command asks of the connection, beyond its reply text.
    enum Outcome {
        case reply(String)
        /// `prompt`: toggle interactive mode.
        case togglePrompt
        /// `quit`: close the connection.
        case quit
        /// `wait-drained`: answer when the server has no session left, or at `deadline`.
        case waitDrained(DrainWait)
    }

    struct DrainWait {
        let backend: BackendState
        let server: ServerState
        /// Monotonic milliseconds.
        let deadline: Int64
        /// Close the remaining sessions at the deadline.
        let shutdownAfter: Bool
    }

    static let permissionDenied = "Permission denied\n"
    /// The reason events give for a change made here (HAProxy's words in its logs).
    static let byRuntimeAPI = "stats socket command"

    /// Commands with their level and HAProxy-style help line.
    static let commands: [(words: String, level: StatsSocket.Level, help: String)] = [
        ("help", .user, "help                                    : this message"),
        ("prompt", .user, "prompt                                  : toggle interactive mode with prompt"),
        ("quit", .user, "quit                                    : disconnect"),
        ("show info", .user, "show info                               : report information about the running process"),
        ("show stat", .user, "show stat [typed|json]                  : report counters for each proxy and server (CSV, typed or JSON)"),
        ("show servers state", .user, "show servers state [<backend>]          : dump volatile server information"),
        ("show resolvers", .user, "show resolvers [<resolvers section id>] : dumps counters from all resolvers section and associated name servers"),
        ("show backend", .user, "show backend                            : list backends in the current running config"),
        ("show sess", .user, "show sess                               : report a summary of the sessions"),
        ("show table", .user, "show table [<name>] [data.<type> <op> <v>]* | [key <k>] : report table usage stats or dump a table's contents"),
        ("clear table", .operator, "clear table <name> [data.<type> <op> <v>]* | [key <k>] : remove entries from a table"),
        ("get weight", .user, "get weight <bk>/<srv>                   : report a server's current weight"),
        ("wait-drained", .operator, "wait-drained <bk>/<srv> [timeout <t>] [shutdown-after] : wait until a server has no session (Sluice extension)"),
        ("set weight", .admin, "set weight <bk>/<srv> (<w>|<w>%)        : change a server's weight (deprecated)"),
        ("set server", .admin, "set server <bk>/<srv> state|weight|addr|health : change a server's state, weight or address"),
        ("add server", .admin, "add server <bk>/<srv> <addr>[:<port>] [params] : create a new server (in maintenance)"),
        ("del server", .admin, "del server <bk>/<srv>                   : remove a server in maintenance without sessions"),
        ("disable server", .admin, "disable server <bk>/<srv>               : disable a server for maintenance (use 'set server' instead)"),
        ("enable server", .admin, "enable server <bk>/<srv>                : enable a disabled server (use 'set server' instead)"),
        ("disable health", .admin, "disable health <bk>/<srv>               : disable health checks"),
        ("enable health", .admin, "enable health <bk>/<srv>                : enable health checks"),
        ("shutdown sessions server", .admin, "shutdown sessions server <bk>/<srv>     : kill sessions on a server"),
        ("set maxconn frontend", .admin, "set maxconn frontend <frontend> <value>  : change a frontend's maxconn setting"),
        ("reload", .admin, "reload                                  : re-read the configuration files (Sluice: in-process, nothing dropped)"),
    ]

    /// Splits a request line into commands (`;` separates them, as HAProxy).
    static func split(_ line: String) -> [String] {
        line.split(separator: ";").map { $0.trimmingBlanks() }.filter { !$0.isEmpty }
    }

    func execute(_ command: String, level: StatsSocket.Level) -> Outcome {
        let words = command.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard !words.isEmpty else { return .reply("") }
        guard let known = Self.commands.first(where: { entry in
            let prefix = entry.words.split(separator: " ").map(String.init)
            return words.count >= prefix.count && Array(words.prefix(prefix.count)) == prefix
        }) else {
            return .reply(unknown(words))
        }
        guard level.permits(known.level) else { return .reply(Self.permissionDenied) }
        let args = Array(words.dropFirst(known.words.split(separator: " ").count))
        switch known.words {
        case "help": return .reply(help(level))
        case "prompt": return .togglePrompt
        case "quit": return .quit
        case "show info": return .reply(showInfo())
        case "show stat":
            let fields = StatsCSV.fields(balancer.statistics())
            if args.contains("json") { return .reply(StatsTyped.json(fields) + "\n") }
            if args.contains("typed") { return .reply(StatsTyped.typed(fields) + "\n") }
            return .reply(([StatsCSV.header] + fields.map(StatsCSV.render)).joined(separator: "\n") + "\n\n")
        case "show servers state": return .reply(showServersState(args.first))
        case "show resolvers":
            return .reply(balancer.resolversReport(args.first) ?? (args.first == nil ? "\n" : "Can't find that resolvers section\n"))
        case "show backend": return .reply((["# name"] + balancer.backends.map(\.name)).joined(separator: "\n") + "\n\n")
        case "show sess": return .reply(showSessions())
        case "show table": return .reply(showTable(args))
        case "clear table": return .reply(clearTable(args))
        case "get weight":
            return withServer(args.first) { _, server in .reply("\(server.weight) (initial \(server.configuredWeight))\n") }
        case "set weight":
            guard args.count == 2 else { return .reply("Require 'backend/server' and 'weight' or 'weight%'.\n") }
            return withServer(args[0]) { backend, server in .reply(setWeight(args[1], backend, server)) }
        case "set server": return setServer(args)
        case "add server":
            guard let (backend, name) = Self.serverPath(args.first), !name.isEmpty else { return .reply("Require 'backend/server'.\n") }
            switch Server.dynamic(name: name, arguments: Array(args.dropFirst())) {
            case .failure(let error): return .reply(error.message + "\n")
            case .success(let server):
                do {
                    try balancer.addServer(server, to: backend)
                    return .reply("New server registered.\n")
                } catch {
                    return .reply(error.message + "\n")
                }
            }
        case "del server":
            guard let (backend, name) = Self.serverPath(args.first) else { return .reply("Require 'backend/server'.\n") }
            do {
                try balancer.removeServer(named: name, from: backend)
                return .reply("Server deleted.\n")
            } catch {
                return .reply(error.message + "\n")
            }
        case "disable server":
            return withServer(args.first) { backend, server in backend.setAdmin(.maintenance, of: server, reason: Self.byRuntimeAPI); return .reply("\n") }
        case "enable server":
            return withServer(args.first) { backend, server in backend.setAdmin(.ready, of: server, reason: Self.byRuntimeAPI); return .reply("\n") }
        case "disable health", "enable health":
            let enable = known.words == "enable health"
            return withServer(args.first) { backend, server in
                guard server.checkPlan != nil else { return .reply("Health checks are not configured on this server, cannot enable.\n") }
                balancer.setHealthChecks(enabled: enable, of: server, in: backend)
                return .reply("\n")
            }
        case "shutdown sessions server":
            return withServer(args.first) { _, server in balancer.shutdownSessions(of: server); return .reply("\n") }
        case "set maxconn frontend":
            guard args.count == 2 else { return .reply("Frontend name expected.\n") }
            guard balancer.frontendState(named: args[0]) != nil else { return .reply("No such frontend.\n") }
            guard let value = Int(args[1]), value >= 0 else { return .reply("Integer value expected.\n") }
            try? balancer.setMaxConnections(value, ofFrontend: args[0])
            return .reply("\n")
        case "wait-drained": return waitDrained(args)
        case "reload":
            do {
                let notices = try balancer.reloadFromSource()
                return .reply((["Reload complete."] + notices).joined(separator: "\n") + "\n")
            } catch {
                return .reply("Reload failed; the running configuration is unchanged:\n\(error.message)\n")
            }
        default:
            preconditionFailure("runtime command '\(known.words)' has no handler")
        }
    }

    // MARK: Commands

    private func help(_ level: StatsSocket.Level) -> String {
        "The following commands are valid at this level:\n"
            + Self.commands.filter { level.permits($0.level) }.map { "  " + $0.help }.joined(separator: "\n") + "\n\n"
    }

    private func unknown(_ words: [String]) -> String {
        let first = words[0]
        var matches = Self.commands.filter { $0.words.hasPrefix(first) || $0.words.split(separator: " ").contains(Substring(first)) }
        if matches.isEmpty { matches = Self.commands }
        return "Unknown command, but maybe one of the following ones is a better match:\n"
            + matches.prefix(8).map { "  " + $0.help }.joined(separator: "\n") + "\n\n"
    }

    private func showInfo() -> String {
        let uptime = (monotonicMilliseconds() - balancer.startedAt) / 1000
        let max = balancer.maxSessions
        let lines = [
            "Name: Sluice", "Version: \(version)", "Nbthread: \(balancer.configuration.global.threads)", "Nbproc: 1",
            "Process_num: 1", "Pid: \(getpid())",
            // As HAProxy: `node` defaults to the host name, `description` to nothing.
            "node: \(balancer.configuration.global.node ?? Self.hostName)", "description: \(balancer.configuration.global.description ?? "")",
            "Uptime: \(uptime / 86400)d \(uptime % 86400 / 3600)h\(pad2(uptime % 3600 / 60))m\(pad2(uptime % 60))s",
            "Uptime_sec: \(uptime)", "Maxconn: \(max == Int.max ? 0 : max)", "CurrConns: \(balancer.currentSessions)",
            "CumConns: \(balancer.totalSessions)", "PipesUsed: \(balancer.pipesOpen)",
            "DescriptorExhaustions: \(balancer.descriptorExhaustions)",
            "DroppedLogs: \(balancer.logs.dropped.load(ordering: .relaxed))",
            "Stopping: \(balancer.isStopping ? 1 : 0)",
        ]
        return lines.joined(separator: "\n") + "\n\n"
    }

    private static var hostName: String { GlobalKeywords.systemHostName }

    private func pad2(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }

    private func showServersState(_ only: String?) -> String {
        var lines = ["1", "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port"]
        let backends = balancer.backends
        if let only, !backends.contains(where: { $0.name == only }) { return "Can't find backend.\n" }
        let now = monotonicMilliseconds()
        for (b, backend) in backends.enumerated() where only == nil || backend.name == only {
            for server in backend.servers {
                let awaiting = server.awaitingAddress.load(ordering: .relaxed)
                // HAProxy's bits: 0x01 forced maintenance, 0x08 drain, 0x20 maintenance for want of an address.
                let admin: Int = switch server.admin { case .ready: 0; case .maintenance: awaiting ? 0x20 : 1; case .drain: 8 }
                let configuration = server.configuration
                // HAProxy: a name resolved at run time is the FQDN; an SRV name is the record, and
                // the FQDN the host the record named.
                let name = configuration.resolvers != nil ? configuration.endpoint.host : nil
                let srvRecord = name.flatMap { $0.hasPrefix("_") ? $0 : nil }
                let fqdn = srvRecord == nil ? name ?? "-" : server.dnsTarget.withLock { $0 } ?? "-"
                let check = server.lastCheck
                let checkStatus: Int = switch check.status {
                case .initial: 1; case .layer4OK: 5; case .layer4Timeout: 6; case .layer4Connection: 7
                case .layer6OK: 8; case .layer6Timeout: 9; case .layer6Response: 10
                case .layer7Timeout: 11; case .layer7Response: 12; case .layer7OK: 13; case .layer7Status: 15
                }
                let result = check.status == .initial ? 0 : check.status.passed ? 3 : 2
                let plan = server.checkPlan
                let checkState = plan == nil ? 0 : server.checksEnabled.load(ordering: .relaxed) ? 6 : 2
                lines.append([
                    "\(b + 1)", backend.name, "\(server.ordinal + 1)", server.name, awaiting ? "-" : server.address.ip,
                    "\(server.operational.rawValue)", "\(admin)", "\(server.weight)", "\(server.configuredWeight)",
                    "\((now - server.lastChange.load(ordering: .relaxed)) / 1000)", "\(checkStatus)", "\(result)",
                    "\(server.health.load(ordering: .relaxed))", "\(checkState)", "0", "0", "0", fqdn, "\(server.address.port)",
                    srvRecord ?? "-", "0", "\(plan.map { $0.address(serverAddress: server.address).port } ?? 0)", plan.map { $0.address(serverAddress: server.address).ip } ?? "-", "-", "0",
                ].joined(separator: " "))
            }
        }
        return lines.joined(separator: "\n") + "\n\n"
    }

    private func showSessions() -> String {
        var lines = ["# sessions: \(balancer.currentSessions) open, \(balancer.totalSessions) since start"]
        for backend in balancer.backends {
            for server in backend.servers {
                let current = server.statistics.currentSessions
                if current > 0 { lines.append("be=\(backend.name) srv=\(server.name) sessions=\(current)") }
            }
        }
        return lines.joined(separator: "\n") + "\n\n"
    }

    /// `<backend>/<server>` split at its first slash; nil without one.
    private static func serverPath(_ argument: String?) -> (backend: String, server: String)? {
        guard let argument, let slash = argument.firstIndex(of: "/") else { return nil }
        return (String(argument[..<slash]), String(argument[argument.index(after: slash)...]))
    }

    private func withServer(_ argument: String?, _ body: (BackendState, ServerState) -> Outcome) -> Outcome {
        guard let (backendName, serverName) = Self.serverPath(argument) else { return .reply("Require 'backend/server'.\n") }
        guard let backend = balancer.backend(named: backendName) else { return .reply("No such backend.\n") }
        guard let server = backend.server(named: serverName) else { return .reply("No such server.\n") }
        return body(backend, server)
    }

    private func setWeight(_ text: String, _ backend: BackendState, _ server: ServerState) -> String {
        var value: Int?
        if text.hasSuffix("%") {
            value = Int(text.dropLast()).map { server.configuredWeight * $0 / 100 }
        } else {
            value = Int(text)
        }
        guard let weight = value, (0...256).contains(weight) else {
            return "Weight '\(text)' is not a valid value: expected 0 to 256 (or a percentage of the initial weight).\n"
        }
        backend.setWeight(weight, of: server)
        return "\n"
    }

    private func setServer(_ args: [String]) -> Outcome {
        withServer(args.first) { backend, server in
            let usage = "'set server <srv>' only supports 'agent', 'health', 'state', 'weight', 'addr', 'fqdn', 'check-addr' and 'check-port'.\n"
            guard args.count >= 3 else { return .reply(usage) }
            switch args[1] {
            case "state":
                switch args[2] {
                case "ready": backend.setAdmin(.ready, of: server, reason: Self.byRuntimeAPI)
                case "drain": backend.setAdmin(.drain, of: server, reason: Self.byRuntimeAPI)
                case "maint": backend.setAdmin(.maintenance, of: server, reason: Self.byRuntimeAPI)
                default: return .reply("'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n")
                }
                return .reply("\n")
            case "weight":
                return .reply(setWeight(args[2], backend, server))
            case "addr":
                var port = server.address.port
                if args.count == 5 && args[3] == "port" {
                    guard let p = Int(args[4]), (1...65535).contains(p) else { return .reply("Invalid port '\(args[4])'.\n") }
                    port = p
                } else if args.count != 3 {
                    return .reply("'set server <srv> addr' expects <addr> [port <port>].\n")
                }
                guard let address = SocketAddress(ip: args[2], port: port) else { return .reply("Invalid addr '\(args[2])': expected an IPv4 or IPv6 address.\n") }
                let old = server.address
                backend.setAddress(address, of: server, by: "stats socket command")
                if server.awaitingAddress.exchange(false, ordering: .relaxed) { backend.setAdmin(.ready, of: server, reason: Self.byRuntimeAPI) }
                return .reply("IP changed from '\(old.ip)' to '\(address.ip)'" + (old.port != port ? ", port changed from '\(old.port)' to '\(port)'" : "") + " by 'stats socket command'\n")
            case "health":
                switch args[2] {
                case "up": backend.setOperational(.running, of: server, reason: Self.byRuntimeAPI)
                case "down": backend.setOperational(.stopped, of: server, reason: Self.byRuntimeAPI)
                case "stopping": backend.setOperational(.stopping, of: server, reason: Self.byRuntimeAPI)
                default: return .reply("'set server <srv> health' expects 'up', 'stopping', or 'down'.\n")
                }
                return .reply("\n")
            case "fqdn":
                guard args.count == 3 else { return .reply("'set server <srv> fqdn' expects a FQDN.\n") }
                return .reply(balancer.setFQDN(args[2], of: server, in: backend))
            case "agent", "check-addr", "check-port", "ssl", "agent-addr", "agent-port", "agent-send":
                return .reply("'set server <srv> \(args[1])' is not supported by Sluice.\n")
            default:
                return .reply(usage)
            }
        }
    }

    private func waitDrained(_ args: [String]) -> Outcome {
        withServer(args.first) { backend, server in
            var timeoutMs: Int64 = 10_000
            var shutdownAfter = false
            var i = 1
            while i < args.count {
                switch args[i] {
                case "timeout":
                    guard i + 1 < args.count, case .success(let d) = ValueParser.time(args[i + 1]) else {
                        return .reply("'wait-drained' expects 'timeout <time>' such as 30s.\n")
                    }
                    timeoutMs = d.milliseconds
                    i += 2
                case "shutdown-after":
                    shutdownAfter = true
                    i += 1
                default:
                    return .reply("'wait-drained <bk>/<srv> [timeout <time>] [shutdown-after]': unexpected '\(args[i])'.\n")
                }
            }
            return .waitDrained(DrainWait(backend: backend, server: server, deadline: monotonicMilliseconds() + timeoutMs, shutdownAfter: shutdownAfter))
        }
    }
}

extension StatsSocket.Level {
    /// Whether this level may run a command that needs `required`.
    func permits(_ required: StatsSocket.Level) -> Bool {
        func rank(_ l: StatsSocket.Level) -> Int { l == .user ? 0 : l == .operator ? 1 : 2 }
        return rank(self) >= rank(required)
    }
}

extension StringProtocol {
    func trimmingBlanks() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" || f == "\n" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" || l == "\n" { s = s.dropLast() }
        return String(s)
    }
}
