/// `/metrics` in the Prometheus text format with HAProxy 2.6's metric names and labels
/// (`haproxy_process_*`, `haproxy_frontend_*{proxy}`, `haproxy_backend_*{proxy}`,
/// `haproxy_server_*{proxy,server}`), so that dashboards made for HAProxy's exporter work
/// unchanged. The values are `show stat`'s and `show info`'s (one source for the three views);
/// a family is written for the rows that have its column (Sluice leaves out columns it does not
/// track, where HAProxy would write 0).
enum PrometheusExporter {
    enum Kind { case frontend, backend, server }

    enum MetricType: String { case gauge, counter }

    /// A `show stat` column as a metric: its name after `haproxy_<kind>_`, type, the kinds that
    /// have it, and a divisor for milliseconds shown in seconds.
    struct Column {
        let column: String
        let name: String
        let type: MetricType
        let kinds: Set<Kind>
        var millis = false
        let help: String
    }

    static let columns: [Column] = [
        Column(column: "qcur", name: "current_queue", type: .gauge, kinds: [.backend, .server], help: "Sessions waiting in the queue."),
        Column(column: "qmax", name: "max_queue", type: .gauge, kinds: [.backend, .server], help: "Most sessions ever waiting in the queue."),
        Column(column: "scur", name: "current_sessions", type: .gauge, kinds: [.frontend, .backend, .server], help: "Current sessions."),
        Column(column: "smax", name: "max_sessions", type: .gauge, kinds: [.frontend, .backend, .server], help: "Most sessions at once."),
        Column(column: "slim", name: "limit_sessions", type: .gauge, kinds: [.frontend, .backend, .server], help: "Configured session limit (maxconn)."),
        Column(column: "stot", name: "sessions_total", type: .counter, kinds: [.frontend, .backend, .server], help: "Sessions since start."),
        Column(column: "bin", name: "bytes_in_total", type: .counter, kinds: [.frontend, .backend, .server], help: "Bytes received from clients."),
        Column(column: "bout", name: "bytes_out_total", type: .counter, kinds: [.frontend, .backend, .server], help: "Bytes sent to clients."),
        Column(column: "dreq", name: "requests_denied_total", type: .counter, kinds: [.frontend, .backend], help: "Sessions refused by tcp-request content rules."),
        Column(column: "dresp", name: "responses_denied_total", type: .counter, kinds: [.frontend, .backend, .server], help: "Responses denied."),
        Column(column: "ereq", name: "request_errors_total", type: .counter, kinds: [.frontend], help: "Clients closed for a missing or bad PROXY header."),
        Column(column: "econ", name: "connection_errors_total", type: .counter, kinds: [.backend, .server], help: "Failed connections to servers."),
        Column(column: "eresp", name: "response_errors_total", type: .counter, kinds: [.backend, .server], help: "Response errors."),
        Column(column: "wretr", name: "retry_warnings_total", type: .counter, kinds: [.backend, .server], help: "Connection retries."),
        Column(column: "wredis", name: "redispatch_warnings_total", type: .counter, kinds: [.backend, .server], help: "Sessions redispatched to another server."),
        Column(column: "weight", name: "weight", type: .gauge, kinds: [.backend, .server], help: "Effective weight."),
        Column(column: "act", name: "active_servers", type: .gauge, kinds: [.backend], help: "Usable active servers."),
        Column(column: "bck", name: "backup_servers", type: .gauge, kinds: [.backend], help: "Usable backup servers."),
        Column(column: "chkfail", name: "check_failures_total", type: .counter, kinds: [.server], help: "Failed health checks."),
        Column(column: "chkdown", name: "check_up_down_total", type: .counter, kinds: [.backend, .server], help: "UP to DOWN transitions."),
        Column(column: "lastchg", name: "check_last_change_seconds", type: .gauge, kinds: [.backend, .server], help: "Seconds since the last state change."),
        Column(column: "downtime", name: "downtime_seconds_total", type: .counter, kinds: [.backend, .server], help: "Seconds spent DOWN."),
        Column(column: "qlimit", name: "queue_limit", type: .gauge, kinds: [.server], help: "Configured queue limit (maxqueue)."),
        Column(column: "throttle", name: "current_throttle", type: .gauge, kinds: [.server], help: "Throttle percentage during slowstart."),
        Column(column: "lbtot", name: "loadbalanced_total", type: .counter, kinds: [.backend, .server], help: "Times a server was chosen."),
        Column(column: "check_code", name: "check_code", type: .gauge, kinds: [.server], help: "Layer-7 code of the last health check."),
        Column(column: "check_duration", name: "check_duration_seconds", type: .gauge, kinds: [.server], millis: true, help: "Duration of the last health check."),
        Column(column: "lastsess", name: "last_session_seconds", type: .gauge, kinds: [.backend, .server], help: "Seconds since the last session (-1: none)."),
        Column(column: "qtime", name: "queue_time_average_seconds", type: .gauge, kinds: [.backend, .server], millis: true, help: "Mean time in the queue."),
        Column(column: "ctime", name: "connect_time_average_seconds", type: .gauge, kinds: [.backend], millis: true, help: "Mean time to connect to a server."),
        Column(column: "ttime", name: "total_time_average_seconds", type: .gauge, kinds: [.backend], millis: true, help: "Mean session length."),
        Column(column: "conn_tot", name: "connections_total", type: .counter, kinds: [.frontend], help: "Connections accepted."),
        Column(column: "dcon", name: "denied_connections_total", type: .counter, kinds: [.frontend], help: "Connections refused by tcp-request connection rules."),
        Column(column: "dses", name: "denied_sessions_total", type: .counter, kinds: [.frontend], help: "Sessions refused by tcp-request session rules."),
        Column(column: "uweight", name: "uweight", type: .gauge, kinds: [.backend, .server], help: "Configured (user) weight."),
    ]

    /// The `state` labels of `haproxy_<kind>_status`, HAProxy's.
    static let proxyStates = ["DOWN", "UP"]
    static let serverStates = ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"]
    static let checkStates = ["HANA", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP", "L7TOUT", "L7RSP", "L7OK",
                              "L7OKC", "L7STS", "PROCERR", "PROCTOUT", "PROCOK"]

    /// `show info` fields as `haproxy_process_*`.
    static let process: [(field: String, name: String, type: MetricType, help: String)] = [
        ("Nbthread", "nbthread", .gauge, "Threads (reactors)."),
        ("Nbproc", "nbproc", .gauge, "Processes."),
        ("Process_num", "relative_process_id", .gauge, "Process number."),
        ("Uptime_sec", "uptime_seconds", .gauge, "Seconds since start."),
        ("Maxconn", "max_connections", .gauge, "Process session limit (0: none)."),
        ("CurrConns", "current_connections", .gauge, "Current sessions."),
        ("CumConns", "connections_total", .counter, "Sessions since start."),
        ("PipesUsed", "pipes_used_total", .counter, "Pipes in use."),
        ("DroppedLogs", "dropped_logs_total", .counter, "Log lines dropped."),
        ("Stopping", "stopping", .gauge, "1 once a stop has begun."),
    ]

    /// The whole page. `info` is `show info`'s text, `rows` `show stat`'s rows as fields.
    /// Sluice's own histograms, per backend, after HAProxy's families.
    static let histograms: [(name: String, help: String, value: KeyPath<BackendStatistics, DurationHistogramSnapshot> & Sendable)] = [
        ("sluice_backend_connect_time_seconds", "Time to establish the server connection (the attempt that succeeded).", \.connectTime),
        ("sluice_backend_session_duration_seconds", "Length of the sessions that reached a server, from accept to close.", \.sessionDuration),
        ("sluice_backend_queue_time_seconds", "Time spent in a queue by the sessions that waited for a server.", \.queueTime),
    ]

    static func render(info: String, rows: [[String: String]], backends: [BackendStatistics], version: String) -> String {
        var out = ""
        var infoFields: [String: String] = [:]
        for line in info.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            infoFields[String(line[..<colon])] = String(line[line.index(after: colon)...].drop { $0 == " " })
        }
        family(&out, "haproxy_process_build_info", .gauge, "Build info.", ["haproxy_process_build_info{version=\"\(escape(version))\"} 1"])
        for metric in process {
            guard let value = infoFields[metric.field] else { continue }
            family(&out, "haproxy_process_\(metric.name)", metric.type, metric.help, ["haproxy_process_\(metric.name) \(value)"])
        }
        for (kind, prefix) in [(Kind.frontend, "haproxy_frontend_"), (.backend, "haproxy_backend_"), (.server, "haproxy_server_")] {
            let kindRows = rows.filter { Self.kind(of: $0) == kind }
            guard !kindRows.isEmpty else { continue }
            // Status first, as HAProxy's order within a kind does not matter to parsers.
            let states = kind == .server ? serverStates : proxyStates
            family(&out, prefix + "status", .gauge, "Current status, per state label value.", kindRows.flatMap { row in
                let current = state(of: row, kind: kind)
                return states.map { "\(prefix)status{\(labels(row, kind)),state=\"\($0)\"} \($0 == current ? 1 : 0)" }
            })
            if kind == .server {
                let checked = kindRows.filter { !($0["check_status"] ?? "").isEmpty }
                if !checked.isEmpty {
                    family(&out, prefix + "check_status", .gauge, "Status of the last health check, per state label value.", checked.flatMap { row in
                        let current = String((row["check_status"] ?? "").trimmingPrefix("* "))
                        return checkStates.map { "\(prefix)check_status{\(labels(row, kind)),state=\"\($0)\"} \($0 == current ? 1 : 0)" }
                    })
                }
            }
            for column in columns where column.kinds.contains(kind) {
                let samples = kindRows.compactMap { row -> String? in
                    guard let text = row[column.column], !text.isEmpty, let value = Double(text) else { return nil }
                    return "\(prefix)\(column.name){\(labels(row, kind))} \(format(column.millis ? value / 1000 : value))"
                }
                if !samples.isEmpty { family(&out, prefix + column.name, column.type, column.help, samples) }
            }
        }
        for histogram in histograms where !backends.isEmpty {
            out += "# HELP \(histogram.name) \(histogram.help)\n# TYPE \(histogram.name) histogram\n"
            for backend in backends {
                let h = backend[keyPath: histogram.value]
                let proxy = "proxy=\"\(escape(backend.name))\""
                for (bound, count) in zip(h.bounds, h.cumulativeCounts) {
                    out += "\(histogram.name)_bucket{\(proxy),le=\"\(format(Double(bound.milliseconds) / 1000))\"} \(count)\n"
                }
                out += "\(histogram.name)_bucket{\(proxy),le=\"+Inf\"} \(h.count)\n"
                out += "\(histogram.name)_sum{\(proxy)} \(format(Double(h.sum.milliseconds) / 1000))\n"
                out += "\(histogram.name)_count{\(proxy)} \(h.count)\n"
            }
        }
        return out
    }

    private static func kind(of row: [String: String]) -> Kind {
        switch row["type"] {
        case "0": .frontend
        case "1": .backend
        default: .server
        }
    }

    private static func labels(_ row: [String: String], _ kind: Kind) -> String {
        let proxy = "proxy=\"\(escape(row["pxname"] ?? ""))\""
        return kind == .server ? proxy + ",server=\"\(escape(row["svname"] ?? ""))\"" : proxy
    }

    /// HAProxy's state label for a row: a frontend is UP while OPEN; a server's transitional
    /// statuses (`UP 1/2`, `DOWN 1/2`) and `no check` count as what they are now.
    private static func state(of row: [String: String], kind: Kind) -> String {
        let status = row["status"] ?? ""
        switch kind {
        case .frontend: return status == "OPEN" ? "UP" : "DOWN"
        case .backend: return status.hasPrefix("UP") ? "UP" : "DOWN"
        case .server:
            if status.hasPrefix("MAINT") { return "MAINT" }
            if status.hasPrefix("DRAIN") { return "DRAIN" }
            if status.hasPrefix("NOLB") { return "NOLB" }
            if status.hasPrefix("DOWN") { return "DOWN" }
            return "UP"
        }
    }

    private static func family(_ out: inout String, _ name: String, _ type: MetricType, _ help: String, _ samples: [String]) {
        out += "# HELP \(name) \(help)\n# TYPE \(name) \(type.rawValue)\n"
        for sample in samples { out += sample + "\n" }
    }

    /// Integers as integers, others with up to 6 decimals (HAProxy's precision).
    private static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        var text = String(Int64((value * 1_000_000).rounded()))
        let negative = text.hasPrefix("-")
        if negative { text.removeFirst() }
        while text.count < 7 { text = "0" + text }
        let split = text.index(text.endIndex, offsetBy: -6)
        return (negative ? "-" : "") + text[..<split] + "." + text[split...]
    }

    /// Label values escape backslash, quote and newline (the text format's rule).
    private static func escape(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}
