#if canImport(Glibc)
import Glibc
#endif

/// A runtime-API command line, read: which command, at which level, with its arguments checked.
/// Reading needs no running balancer (`Fuzz/RuntimeCommand` feeds it any bytes); `RuntimeAPI`
/// looks the names up and acts. HAProxy answers an unknown backend or server before a bad
/// argument, so a command on a server carries its arguments' refusal instead of being one.
enum RuntimeCommand: Sendable {
    /// Answered without the balancer: help, an unknown command, a permission or a syntax refusal.
    case reply(String)
    case prompt
    case quit
    case showInfo
    case showStat(StatRequest)
    case showServersState(backend: String?)
    case showResolvers(section: String?)
    case showBackends
    case showSessions
    /// The words after the table name are read against the table's types (`TableSelection`).
    case showTable(name: String?, selection: ArraySlice<String>)
    case clearTable(name: String?, selection: ArraySlice<String>)
    /// A command on one server: `path` is nil without a `<backend>/<server>` argument.
    case server(ServerPath?, Result<ServerAction, Refusal>)
    case addServer(ServerPath, Server)
    case deleteServer(ServerPath)
    case setMaxConnections(frontend: String, Result<Int, Refusal>)
    case reload

    enum StatFormat: Sendable { case csv, typed, json }

    /// `show stat [domain proxy] [{<iid>|<proxy>} <type> <sid>] [typed|json] [up|no-maint]`, read
    /// as HAProxy 2.6 reads it (`cli_parse_show_stat`): three words after the domain are the
    /// selector, whatever they are; other words are flags, and unknown ones are skipped.
    struct StatRequest: Sendable, Equatable {
        var format = StatFormat.csv
        /// The proxy selector as written (a name, or a number, `-1` for every proxy), the object
        /// types (1 frontends, 2 backends, 4 servers, ORed; -1 all) and the server id (-1 all).
        var proxy: String?
        var types = -1
        var server = -1
        /// `up`: servers DOWN and not coming up, or in maintenance, are left out.
        var hideDown = false
        /// `no-maint`: servers in maintenance are left out.
        var hideMaintenance = false
    }

    /// What a command does to the server it names.
    enum ServerAction: Sendable, Equatable {
        case getWeight
        case setWeight(Weight)
        case setAdmin(Admin)
        case setHealth(Health)
        /// `set server … addr <ip> [port <p>]`: `ip` is a valid address; nil port keeps the server's.
        case setAddress(ip: String, port: Int?)
        case setFQDN(String)
        /// `set server … check-addr <ip> [port <p>]` / `check-port <p>`: the words as given, checked
        /// against the server in HAProxy's order (checks enabled, then the address, then the port).
        case setCheckTarget(address: String?, port: String?)
        case setHealthChecks(enabled: Bool)
        /// `disable agent` / `enable agent`.
        case setAgentChecks(enabled: Bool)
        /// `set server … agent up|down`: the agent's verdict, forced.
        case setAgentHealth(up: Bool)
        case shutdownSessions
        case waitDrained(timeoutMs: Int64, shutdownAfter: Bool)
    }

    enum Admin: Sendable { case ready, drain, maintenance }
    enum Health: Sendable { case up, stopping, down }

    /// `<w>` (0–256) or `<w>%` of the configured weight, read and refused as HAProxy 2.6's
    /// `server_parse_weight_change_request` does, word for word (some of its sentences end with a
    /// newline, some do not).
    struct Weight: Sendable, Equatable {
        let value: Int
        let percent: Bool

        static func parse(_ text: String) -> Result<Weight, Refusal> {
            guard !text.isEmpty else { return .failure(Refusal("Require <weight> or <weight%>.\n")) }
            var rest = Substring(text.drop { $0 == " " || $0 == "\t" })
            let negative = rest.first == "-"
            if rest.first == "-" || rest.first == "+" { rest = rest.dropFirst() }
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty else { return .failure(Refusal("Empty weight string empty or preceded by garbage")) }
            let magnitude = Int(digits.prefix(12)) ?? Int.max
            let value = negative ? -magnitude : magnitude
            rest = rest.dropFirst(digits.count)
            if rest == "%" {
                return value < 0 ? .failure(Refusal("Relative weight must be positive.\n")) : .success(Weight(value: min(value, 25600), percent: true))
            }
            guard (0...256).contains(value) else { return .failure(Refusal("Absolute weight can only be between 0 and 256 inclusive.\n")) }
            guard rest.isEmpty else { return .failure(Refusal("Trailing garbage in weight string")) }
            return .success(Weight(value: value, percent: false))
        }

        /// The weight for a server configured with `configured` (a percentage caps at 256).
        func resolve(configured: Int) -> Int {
            percent ? min(256, configured * value / 100) : value
        }
    }

    /// A reply that refuses the command, as the caller reads it (ends with a newline).
    struct Refusal: Error, Sendable, Equatable {
        let text: String
        init(_ text: String) { self.text = text }
    }

    /// `<backend>/<server>`, split at the first slash.
    struct ServerPath: Sendable, Equatable {
        let backend: String
        let server: String

        init?(_ argument: String?) {
            guard let argument, let slash = argument.firstIndex(of: "/") else { return nil }
            backend = String(argument[..<slash])
            server = String(argument[argument.index(after: slash)...])
        }
    }

    static let permissionDenied = "Permission denied\n"
    static let requireServer = "Require 'backend/server'.\n"

    /// The commands, their level and HAProxy-style help line.
    static let commands: [(words: [String], level: StatsSocket.Level, help: String)] = ([
        ("help", .user, "help                                    : this message"),
        ("prompt", .user, "prompt                                  : toggle interactive mode with prompt"),
        ("quit", .user, "quit                                    : disconnect"),
        ("show info", .user, "show info                               : report information about the running process"),
        ("show stat", .user, "show stat [{<iid>|<proxy>} <type> <sid>] [typed|json] [up|no-maint] : report counters for each proxy and server (CSV, typed or JSON)"),
        ("show servers state", .user, "show servers state [<backend>]          : dump volatile server information"),
        ("show resolvers", .user, "show resolvers [<resolvers section id>] : dumps counters from all resolvers section and associated name servers"),
        ("show backend", .user, "show backend                            : list backends in the current running config"),
        ("show sess", .user, "show sess                               : report a summary of the sessions"),
        ("show table", .user, "show table [<name>] [data.<type> <op> <v>]* | [key <k>] : report table usage stats or dump a table's contents"),
        ("clear table", .operator, "clear table <name> [data.<type> <op> <v>]* | [key <k>] : remove entries from a table"),
        ("get weight", .user, "get weight <bk>/<srv>                   : report a server's current weight"),
        ("wait-drained", .operator, "wait-drained <bk>/<srv> [timeout <t>] [shutdown-after] : wait until a server has no session (Sluice extension)"),
        ("set weight", .admin, "set weight <bk>/<srv> (<w>|<w>%)        : change a server's weight (deprecated)"),
        ("set server", .admin, "set server <bk>/<srv> state|weight|addr|health|fqdn|check-addr|check-port : change a server's state, weight, address or check target"),
        ("add server", .admin, "add server <bk>/<srv> <addr>[:<port>] [params] : create a new server (in maintenance)"),
        ("del server", .admin, "del server <bk>/<srv>                   : remove a server in maintenance without sessions"),
        ("disable server", .admin, "disable server <bk>/<srv>               : disable a server for maintenance (use 'set server' instead)"),
        ("enable server", .admin, "enable server <bk>/<srv>                : enable a disabled server (use 'set server' instead)"),
        ("disable health", .admin, "disable health <bk>/<srv>               : disable health checks"),
        ("enable health", .admin, "enable health <bk>/<srv>                : enable health checks"),
        ("disable agent", .admin, "disable agent <bk>/<srv>                : disable agent checks"),
        ("enable agent", .admin, "enable agent <bk>/<srv>                 : enable agent checks"),
        ("shutdown sessions server", .admin, "shutdown sessions server <bk>/<srv>     : kill sessions on a server"),
        ("set maxconn frontend", .admin, "set maxconn frontend <frontend> <value>  : change a frontend's maxconn setting"),
        ("reload", .admin, "reload                                  : re-read the configuration files (Sluice: in-process, nothing dropped)"),
    ] as [(String, StatsSocket.Level, String)]).map { (words: $0.0.split(separator: " ").map(String.init), level: $0.1, help: $0.2) }

    /// `show stat`'s words after the command (see `StatRequest`).
    static func statRequest(_ words: [String]) -> RuntimeCommand {
        var args = words[...]
        if args.first == "domain" {
            switch args.dropFirst().first {
            case "proxy": args = args.dropFirst(2)
            case "resolvers": return .reply("Sluice gives the resolvers' counters with 'show resolvers', not 'show stat domain resolvers'.\n")
            default: return .reply("Invalid statistics domain.\n")
            }
        }
        var request = StatRequest()
        if args.count >= 3 {
            let selector = Array(args.prefix(3))
            request.proxy = selector[0]
            request.types = atoi(selector[1])
            request.server = atoi(selector[2])
            args = args.dropFirst(3)
        }
        for word in args {
            switch word {
            case "typed": request.format = .typed
            case "json": request.format = .json
            case "up": request.hideDown = true
            case "no-maint": request.hideMaintenance = true
            case "desc": return .reply("Sluice does not print the fields' descriptions ('desc'); the typed and JSON forms are otherwise HAProxy's.\n")
            default: break  // HAProxy skips words it does not know
            }
        }
        return .showStat(request)
    }

    /// C's `atoi`, which HAProxy reads these numbers with: an optional sign and the digits that
    /// follow, 0 when there are none ("abc" → 0, "3x" → 3).
    static func atoi(_ text: String) -> Int {
        var digits = Substring(text.drop { $0 == " " || $0 == "\t" })
        var sign = 1
        if let first = digits.first, first == "-" || first == "+" {
            sign = first == "-" ? -1 : 1
            digits = digits.dropFirst()
        }
        var value = 0
        for c in digits {
            guard let d = c.wholeNumberValue, c.isASCII else { break }
            value = value &* 10 &+ d
            if value > Int(Int32.max) { break }
        }
        return sign * value
    }

    /// Splits a request line into commands (`;` separates them, as HAProxy).
    static func split(_ line: String) -> [String] {
        line.split(separator: ";").map { $0.trimmingBlanks() }.filter { !$0.isEmpty }
    }

    /// Reads one command (one `;`-separated part of a line) for a client at `level`.
    static func parse(_ command: String, level: StatsSocket.Level) -> RuntimeCommand {
        let words = command.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard !words.isEmpty else { return .reply("") }
        guard let known = commands.first(where: { words.starts(with: $0.words) }) else { return .reply(unknown(words[0])) }
        guard level.permits(known.level) else { return .reply(permissionDenied) }
        let args = Array(words.dropFirst(known.words.count))
        switch known.words.joined(separator: " ") {
        case "help":
            return .reply("The following commands are valid at this level:\n"
                + commands.filter { level.permits($0.level) }.map { "  " + $0.help }.joined(separator: "\n") + "\n")
        case "prompt": return .prompt
        case "quit": return .quit
        case "show info": return .showInfo
        case "show stat": return statRequest(args)
        case "show servers state": return .showServersState(backend: args.first)
        case "show resolvers": return .showResolvers(section: args.first)
        case "show backend": return .showBackends
        case "show sess": return .showSessions
        case "show table": return .showTable(name: args.first, selection: args.dropFirst())
        case "clear table": return .clearTable(name: args.first, selection: args.dropFirst())
        case "get weight": return .server(ServerPath(args.first), .success(.getWeight))
        case "set weight":
            guard let path = args.first else { return .reply(requireServer) }
            return .server(ServerPath(path), weight(args.count > 1 ? args[1] : ""))
        case "set server": return .server(ServerPath(args.first), serverChange(args))
        case "add server":
            guard let path = ServerPath(args.first), !path.server.isEmpty else { return .reply(String(requireServer.dropLast())) }  // bare, as HAProxy's here
            switch Server.dynamic(name: path.server, arguments: Array(args.dropFirst())) {
            case .failure(let error): return .reply(error.message + "\n")
            case .success(let server): return .addServer(path, server)
            }
        case "del server":
            guard let path = ServerPath(args.first) else { return .reply(String(requireServer.dropLast())) }
            return .deleteServer(path)
        case "disable server": return .server(ServerPath(args.first), .success(.setAdmin(.maintenance)))
        case "enable server": return .server(ServerPath(args.first), .success(.setAdmin(.ready)))
        case "disable health": return .server(ServerPath(args.first), .success(.setHealthChecks(enabled: false)))
        case "enable health": return .server(ServerPath(args.first), .success(.setHealthChecks(enabled: true)))
        case "disable agent": return .server(ServerPath(args.first), .success(.setAgentChecks(enabled: false)))
        case "enable agent": return .server(ServerPath(args.first), .success(.setAgentChecks(enabled: true)))
        case "shutdown sessions server": return .server(ServerPath(args.first), .success(.shutdownSessions))
        case "set maxconn frontend":
            // HAProxy 2.6's order and words: the name, the frontend, then the value. It reads the value
            // with `atoi` (a word is 0) and ignores more words; Sluice refuses both.
            guard let name = args.first else { return .reply("A frontend name is expected.\n") }
            guard args.count <= 2 else { return .setMaxConnections(frontend: name, .failure(Refusal("'set maxconn frontend' expects <frontend> <value>.\n"))) }
            guard args.count == 2, let value = Int(args[1]) else { return .setMaxConnections(frontend: name, .failure(Refusal("Integer value expected.\n"))) }
            guard value >= 0 else { return .setMaxConnections(frontend: name, .failure(Refusal("Value out of range.\n"))) }
            return .setMaxConnections(frontend: name, .success(value))
        case "wait-drained": return .server(ServerPath(args.first), waitDrained(args.dropFirst()))
        case "reload": return .reload
        default: preconditionFailure("runtime command '\(known.words)' has no parser")
        }
    }

    private static func unknown(_ first: String) -> String {
        var matches = commands.filter { $0.words[0].hasPrefix(first) || $0.words.contains(first) }
        if matches.isEmpty { matches = commands }
        return "Unknown command, but maybe one of the following ones is a better match:\n"
            + matches.prefix(8).map { "  " + $0.help }.joined(separator: "\n") + "\n"
    }

    private static func weight(_ text: String) -> Result<ServerAction, Refusal> {
        Weight.parse(text).map { .setWeight($0) }
    }

    /// `set server <bk>/<srv> state|weight|addr|health|fqdn|check-addr|check-port …`.
    private static func serverChange(_ args: [String]) -> Result<ServerAction, Refusal> {
        let usage = Refusal("'set server <srv>' only supports 'agent', 'health', 'state', 'weight', 'addr', 'fqdn', 'check-addr' and 'check-port'.\n")
        if args.count == 2 && args[1] == "check-port" { return .failure(Refusal("set server <b>/<s> check-port requires a port.\n")) }
        if args.count == 2 && args[1] == "check-addr" {
            return .failure(Refusal("set server <b>/<s> check-addr requires an address and optionally a port.\n"))
        }
        guard args.count >= 3 else { return .failure(usage) }
        switch args[1] {
        case "state":
            switch args[2] {
            case "ready": return .success(.setAdmin(.ready))
            case "drain": return .success(.setAdmin(.drain))
            case "maint": return .success(.setAdmin(.maintenance))
            default: return .failure(Refusal("'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n"))
            }
        case "weight": return weight(args[2])
        case "addr":
            var port: Int?
            if args.count == 5 && args[3] == "port" {
                guard let p = Int(args[4]), (1...65535).contains(p) else { return .failure(Refusal("Invalid port '\(args[4])'.\n")) }
                port = p
            } else if args.count != 3 {
                return .failure(Refusal("'set server <srv> addr' expects <addr> [port <port>].\n"))
            }
            guard SocketAddress(ip: args[2], port: port ?? 1) != nil else { return .failure(invalidAddress(args[2])) }
            return .success(.setAddress(ip: args[2], port: port))
        case "health":
            switch args[2] {
            case "up": return .success(.setHealth(.up))
            case "down": return .success(.setHealth(.down))
            case "stopping": return .success(.setHealth(.stopping))
            default: return .failure(Refusal("'set server <srv> health' expects 'up', 'stopping', or 'down'.\n"))
            }
        case "fqdn":
            guard args.count == 3 else { return .failure(Refusal("'set server <srv> fqdn' expects a FQDN.\n")) }
            return .success(.setFQDN(args[2]))
        case "check-port":
            guard args.count == 3 else { return .failure(Refusal("'set server <srv> check-port' expects <port>.\n")) }
            return .success(.setCheckTarget(address: nil, port: args[2]))
        case "check-addr":
            // HAProxy ignores words after the address that are not `port <p>`; Sluice refuses them.
            if args.count == 5 && args[3] == "port" { return .success(.setCheckTarget(address: args[2], port: args[4])) }
            guard args.count == 3 else { return .failure(Refusal("'set server <srv> check-addr' expects <addr> [port <port>].\n")) }
            return .success(.setCheckTarget(address: args[2], port: nil))
        case "agent":
            switch args[2] {
            case "up": return .success(.setAgentHealth(up: true))
            case "down": return .success(.setAgentHealth(up: false))
            default: return .failure(Refusal("'set server <srv> agent' expects 'up' or 'down'.\n"))
            }
        case "ssl", "agent-addr", "agent-port", "agent-send":
            return .failure(Refusal("'set server <srv> \(args[1])' is not supported by Sluice.\n"))
        default:
            return .failure(usage)
        }
    }

    static func invalidAddress(_ text: String) -> Refusal {
        Refusal("Invalid addr '\(text)' by 'stats socket command'\n")  // HAProxy's words
    }

    /// `wait-drained <bk>/<srv> [timeout <time>] [shutdown-after]`; 10 s by default.
    private static func waitDrained(_ args: ArraySlice<String>) -> Result<ServerAction, Refusal> {
        var timeoutMs: Int64 = 10_000
        var shutdownAfter = false
        var rest = args
        while let word = rest.popFirst() {
            switch word {
            case "timeout":
                guard let text = rest.popFirst(), case .success(let d) = ValueParser.time(text) else {
                    return .failure(Refusal("'wait-drained' expects 'timeout <time>' such as 30s.\n"))
                }
                timeoutMs = d.milliseconds
            case "shutdown-after":
                shutdownAfter = true
            default:
                return .failure(Refusal("'wait-drained <bk>/<srv> [timeout <time>] [shutdown-after]': unexpected '\(word)'.\n"))
            }
        }
        return .success(.waitDrained(timeoutMs: timeoutMs, shutdownAfter: shutdownAfter))
    }
}

/// What follows a table's name in `show table` / `clear table`: `key <k>`, or `data.<type> <op> <v>`
/// filters, read against the table's key type and stored data.
struct TableSelection: Sendable {
    var key: StickKey?
    var filters: [(data: StickData, op: String, value: Int64)] = []

    static func parse(_ args: ArraySlice<String>, keyType: StickTableSpec.KeyType, stored: (StickData) -> Bool) -> Result<TableSelection, RuntimeCommand.Refusal> {
        let onlyKeyOrData = RuntimeCommand.Refusal("Optional argument only supports \"data.<store_data_type>\" and key <key>\n")
        var selection = TableSelection()
        var rest = args
        while let word = rest.popFirst() {
            if word == "key" {
                guard let text = rest.popFirst(), selection.filters.isEmpty else { return .failure(onlyKeyOrData) }
                let sample: Sample
                switch keyType {
                case .ipv4, .ipv6:
                    guard let address = IPAddress(text) else { return .failure(RuntimeCommand.Refusal("Invalid key\n")) }
                    sample = .ip(address)
                case .integer:
                    guard let v = Int64(text) else { return .failure(RuntimeCommand.Refusal("Invalid key\n")) }
                    sample = .int(v)
                case .string: sample = .string(Array(text.utf8))
                case .binary: return .failure(RuntimeCommand.Refusal("Invalid key\n"))  // refused before, with HAProxy's words
                }
                guard let key = StickKey(sample, for: keyType) else { return .failure(RuntimeCommand.Refusal("Invalid key\n")) }
                selection.key = key
            } else if word.hasPrefix("data.") {
                guard rest.count >= 2, let data = StickData(fetchSuffix: String(word.dropFirst(5))), stored(data) else {
                    return .failure(RuntimeCommand.Refusal("Data type not stored in this table\n"))
                }
                let op = rest.removeFirst()
                guard ["eq", "ne", "le", "ge", "lt", "gt"].contains(op) else {
                    return .failure(RuntimeCommand.Refusal("Require a valid filter operator (eq, ne, le, ge, lt, gt)\n"))
                }
                guard let value = Int64(rest.removeFirst()) else { return .failure(RuntimeCommand.Refusal("Require a valid integer value to compare against\n")) }
                selection.filters.append((data, op, value))
            } else {
                return .failure(onlyKeyOrData)
            }
        }
        return .success(selection)
    }

    func matches(_ key: StickKey, _ values: [(StickData, Int64)]) -> Bool {
        if let wanted = self.key, key != wanted { return false }
        return filters.allSatisfy { filter in
            guard let v = values.first(where: { $0.0 == filter.data })?.1 else { return false }
            switch filter.op {
            case "eq": return v == filter.value
            case "ne": return v != filter.value
            case "le": return v <= filter.value
            case "ge": return v >= filter.value
            case "lt": return v < filter.value
            default: return v > filter.value
            }
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
    /// Without spaces, tabs and line ends at either end ("\r\n" is one `Character` in Swift).
    func trimmingBlanks() -> String {
        func blank(_ c: Character) -> Bool { c == " " || c == "\t" || c == "\r" || c == "\n" || c == "\r\n" }
        var s = Substring(self)
        while let f = s.first, blank(f) { s = s.dropFirst() }
        while let l = s.last, blank(l) { s = s.dropLast() }
        return String(s)
    }
}
