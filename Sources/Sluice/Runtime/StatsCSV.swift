/// Which rows `show stat` prints: HAProxy 2.6's selector (`<iid> <type> <sid>`) and its `up` and
/// `no-maint` flags, applied as HAProxy's `stats_dump_proxy_to_buffer` applies them.
struct StatSelection {
    enum RowType: Int { case frontend = 0, backend = 1, server = 2 }
    struct Scope {
        /// A proxy id, or -1 for every proxy.
        var proxy: Int
        /// Bits `1 << RowType` (1 frontends, 2 backends, 4 servers); -1 for all.
        var types: Int
        /// A server id, or -1 for every server.
        var server: Int
    }
    var scope: Scope?
    var hideDown = false
    var hideMaintenance = false

    func includes(proxy: Int, type: RowType) -> Bool {
        guard let scope else { return true }
        return (scope.proxy == -1 || scope.proxy == proxy) && scope.types & (1 << type.rawValue) != 0
    }

    func includes(_ server: ServerSnapshot, of proxy: Int) -> Bool {
        if let scope, !includes(proxy: proxy, type: .server) || (scope.server != -1 && scope.server != server.id) { return false }
        let maintenance = server.admin == .maintenance
        if hideMaintenance && maintenance { return false }
        // `up`: left out in maintenance, or DOWN with no check coming up (HAProxy: stopped, and
        // no check enabled or its health at 0).
        if hideDown && (maintenance || (server.operational == .stopped && (server.check?.health ?? 0) == 0)) { return false }
        return true
    }
}

/// `show stat`: HAProxy 2.6's CSV, one row per frontend, server and backend. Tools read columns by
/// name, so the header is HAProxy's exactly; columns Sluice does not track stay empty, as HAProxy
/// leaves columns that do not apply.
enum StatsCSV {
    static let columns = "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ss"
        .split(separator: ",").map(String.init)

    static var header: String { "# " + columns.joined(separator: ",") }

    /// Where each column sits in the header.
    private static let position: [String: Int] = Dictionary(uniqueKeysWithValues: columns.enumerated().map { ($1, $0) })

    /// Renders `row` (column name → value) in header order; absent columns are empty. Only the
    /// row's own entries are looked up (a server fills about 30 of the 103 columns).
    static func render(_ row: [String: String]) -> String {
        var cells = [String](repeating: "", count: columns.count)
        for (column, value) in row {
            guard let index = position[column] else { preconditionFailure("'\(column)' is not a show stat column") }
            // CSV: a value with a comma or quote is quoted, quotes doubled.
            cells[index] = value.utf8.contains(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") })
                ? "\"" + value.replacingAll("\"", "\"\"") + "\"" : value
        }
        return cells.joined(separator: ",")
    }

    /// Every row, in configuration order: frontends, then each backend's servers and its BACKEND row.
    static func rows(_ snapshot: StatisticsSnapshot) -> [String] {
        fields(snapshot).map(render)
    }

    /// The rows as column name → value (only the columns that have one): what `show stat`, the
    /// statistics page and the Prometheus exporter print.
    static func fields(_ snapshot: StatisticsSnapshot, selecting selection: StatSelection = StatSelection()) -> [[String: String]] {
        var out: [[String: String]] = []
        func add(_ frontend: FrontendStatistics) {
            guard selection.includes(proxy: frontend.id, type: .frontend) else { return }
            out.append([
                "pxname": frontend.name, "svname": "FRONTEND", "scur": "\(frontend.currentSessions)", "smax": "",
                "slim": frontend.sessionLimit.map(String.init) ?? "", "stot": "\(frontend.totalSessions)", "status": "OPEN",
                "pid": "1", "iid": "\(frontend.id)", "sid": "0", "type": "0", "mode": "tcp", "conn_tot": "\(frontend.totalSessions)",
                "dcon": "\(frontend.deniedConnections)", "dreq": "\(frontend.deniedRequests)", "dresp": "\(frontend.deniedResponses)",
                "ereq": "\(frontend.failedRequests)", "dses": "\(frontend.deniedSessions)",
            ])
        }
        func add(_ backend: BackendStatistics) {
            for server in backend.servers where selection.includes(server, of: backend.id) {
                out.append(serverRow(server, backend: backend.name, iid: backend.id))
            }
            guard selection.includes(proxy: backend.id, type: .backend) else { return }
            let totals = backend.totals
            out.append([
                "pxname": backend.name, "svname": "BACKEND", "qcur": "\(backend.queued)", "qmax": "\(backend.maxQueued)",
                "qtime": "\(backend.averageQueueMs)", "ctime": "\(backend.connectTime.meanMs)",
                "ttime": "\(backend.sessionDuration.meanMs)", "scur": "\(totals.currentSessions)", "slim": "\(backend.fullConnections)", "stot": "\(backend.sessionsSinceStart)",
                "bin": "\(totals.bytesIn)", "bout": "\(totals.bytesOut)", "econ": "\(totals.connectErrors)", "eresp": "0", "dresp": "\(totals.deniedResponses)",
                "wretr": "\(totals.retries)", "wredis": "\(totals.redispatches)",
                "status": backend.isUp ? "UP" : "DOWN", "weight": "\(backend.weight)",
                "act": "\(backend.activeServers)", "bck": "\(backend.backupServers)", "chkdown": "\(backend.downTransitions)",
                "pid": "1", "iid": "\(backend.id)", "sid": "0", "lbtot": "\(totals.totalSessions)", "type": "1",
                "lastsess": backend.secondsSinceLastSession.map(String.init) ?? "-1",
                "mode": "tcp", "algo": backend.algorithm.rawValue,
            ])
        }
        // Proxy by proxy in declaration order, as HAProxy: FRONTEND, then servers and BACKEND (a
        // `listen` gives all of them in a row).
        var f = snapshot.frontends.sorted { $0.declaration < $1.declaration }[...]
        var b = snapshot.backends.sorted { $0.declaration < $1.declaration }[...]
        while let next = [f.first?.declaration, b.first?.declaration].compactMap({ $0 }).min() {
            if let frontend = f.first, frontend.declaration == next { add(frontend); f.removeFirst() }
            if let backend = b.first, backend.declaration == next { add(backend); b.removeFirst() }
        }
        return out
    }

    private static func serverRow(_ server: ServerSnapshot, backend: String, iid: Int) -> [String: String] {
        let stats = server.sessions
        var row: [String: String] = [
            "pxname": backend, "svname": server.name, "qcur": "\(server.queued)",
            "qmax": "\(server.maxQueued)", "qtime": "\(server.averageQueueMs)",
            "slim": server.sessionLimit.map(String.init) ?? "",
            "throttle": server.throttlePercent.map(String.init) ?? "",
            "tracked": server.tracked ?? "",
            "qlimit": server.queueLimit.map(String.init) ?? "",
            "scur": "\(stats.currentSessions)", "smax": "\(stats.maxSessions)", "stot": "\(stats.totalSessions)",
            "bin": "\(stats.bytesIn)", "bout": "\(stats.bytesOut)", "dresp": "\(stats.deniedResponses)", "econ": "\(stats.connectErrors)",
            "eresp": "0", "wretr": "\(stats.retries)", "wredis": "\(stats.redispatches)",
            "status": server.status, "weight": "\(server.effectiveWeight)",
            "act": server.isBackup ? "0" : "1", "bck": server.isBackup ? "1" : "0",
            "lastchg": "\(server.secondsSinceLastChange)",
            "pid": "1", "iid": "\(iid)", "sid": "\(server.id)", "lbtot": "\(stats.totalSessions)", "type": "2",
            "lastsess": server.secondsSinceLastSession.map(String.init) ?? "-1",
            "addr": server.address.isUnix ? "unix" : server.address.description,  // HAProxy writes "unix" for a UNIX socket
            "mode": "tcp", "uweight": "\(server.weight)",
        ]
        if let agent = server.agent {
            // An agent's code is 0 once it gave a health word (HAProxy reports codes from L7OK on).
            let code = [.layer7OK, .layer7Status].contains(agent.lastResult.status) ? "0" : ""
            checkFields(agent, prefix: "agent", text: "last_agt", code: code, into: &row)
        }
        if let check = server.check {
            row["chkfail"] = "\(check.failedChecks)"
            row["chkdown"] = "\(check.downTransitions)"
            row["downtime"] = "\(check.downtimeSeconds)"
            checkFields(check, prefix: "check", text: "last_chk", code: check.lastResult.code.map(String.init) ?? "", into: &row)
        }
        return row
    }

    /// A health or agent check's fields (`check_*`/`agent_*`). HAProxy (management.txt, 9.1,
    /// field 36): "If a check is currently running, the last known status will be reported,
    /// prefixed with "* "", and the check's text is cleared when it starts.
    private static func checkFields(_ check: CheckStatistics, prefix: String, text: String, code: String, into row: inout [String: String]) {
        let last = check.lastResult
        row["\(prefix)_status"] = (check.inProgress ? "* " : "") + last.status.rawValue
        row["\(prefix)_code"] = code
        row["\(prefix)_duration"] = last.status == .initial ? "" : "\(last.durationMs)"
        row[text] = check.inProgress ? "" : last.info
        row["\(prefix)_desc"] = last.status.reason
        row["\(prefix)_rise"] = "\(check.rise)"
        row["\(prefix)_fall"] = "\(check.fall)"
        row["\(prefix)_health"] = "\(check.health)"
    }
}

extension String {
    func replacingAll(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
