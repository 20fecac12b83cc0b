import Synchronization
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
    static func rows(frontends: [FrontendState], backends: [BackendState], now: Int64) -> [String] {
        fields(frontends: frontends, backends: backends, now: now).map(render)
    }

    /// The rows as column name → value (only the columns that have one): what `show stat` and the
    /// Prometheus exporter both print.
    static func fields(frontends: [FrontendState], backends: [BackendState], now: Int64) -> [[String: String]] {
        var out: [[String: String]] = []
        for (id, frontend) in frontends.enumerated() {
            let current = frontend.currentConnections.load(ordering: .relaxed)
            let limit = frontend.maxConnections.load(ordering: .relaxed)
            let total = frontend.totalConnections.load(ordering: .relaxed)
            out.append([
                "pxname": frontend.name, "svname": "FRONTEND", "scur": "\(current)", "smax": "",
                "slim": limit == Int.max ? "" : "\(limit)", "stot": "\(total)", "status": "OPEN",
                "pid": "1", "iid": "\(id + 1)", "sid": "0", "type": "0", "mode": "tcp", "conn_tot": "\(total)",
                "dcon": "\(frontend.deniedConnections.load(ordering: .relaxed))", "dreq": "\(frontend.deniedRequests.load(ordering: .relaxed))",
                "ereq": "\(frontend.failedRequests.load(ordering: .relaxed))", "dses": "\(frontend.deniedSessions.load(ordering: .relaxed))",
            ])
        }
        for (b, backend) in backends.enumerated() {
            let servers = backend.servers
            var totals = ServerStatistics(currentSessions: 0, maxSessions: 0, totalSessions: 0, connectErrors: 0,
                                          retries: 0, redispatches: 0, bytesIn: 0, bytesOut: 0)
            var lastSession: Int64 = 0
            for server in servers {
                let stats = server.statistics
                totals.currentSessions += stats.currentSessions
                totals.totalSessions += stats.totalSessions
                totals.connectErrors += stats.connectErrors
                totals.retries += stats.retries
                totals.redispatches += stats.redispatches
                totals.bytesIn += stats.bytesIn
                totals.bytesOut += stats.bytesOut
                lastSession = max(lastSession, server.lastSessionAt.load(ordering: .relaxed))
                out.append(serverRow(server, stats: stats, backend: backend, iid: b + 1, now: now))
            }
            let usable = servers.filter(\.isUsable)
            out.append([
                "pxname": backend.name, "svname": "BACKEND", "qcur": "\(backend.queueLength())",
                "qmax": "\(backend.queueMax.load(ordering: .relaxed))",
                "qtime": "\(averageWait(backend.dequeuedSessions, backend.dequeuedWaitMs))",
                "scur": "\(totals.currentSessions)", "stot": "\(totals.totalSessions)",
                "bin": "\(totals.bytesIn)", "bout": "\(totals.bytesOut)", "econ": "\(totals.connectErrors)", "eresp": "0",
                "wretr": "\(totals.retries)", "wredis": "\(totals.redispatches)",
                "status": usable.isEmpty ? "DOWN" : "UP", "weight": "\(usable.reduce(0) { $0 + $1.weight })",
                "act": "\(usable.filter { !$0.isBackup }.count)", "bck": "\(usable.filter(\.isBackup).count)",
                "chkdown": "\(servers.reduce(0) { $0 + $1.downTransitionCount })",
                "pid": "1", "iid": "\(b + 1)", "sid": "0", "lbtot": "\(totals.totalSessions)", "type": "1",
                "lastsess": lastSession == 0 ? "-1" : "\((now - lastSession) / 1000)",
                "mode": "tcp", "algo": backend.settings.balance.rawValue, "conn_tot": "\(totals.totalSessions)",
            ])
        }
        return out
    }

    /// `qtime`: the mean wait in a queue, in milliseconds, of the sessions that waited.
    private static func averageWait(_ count: borrowing Atomic<Int>, _ total: borrowing Atomic<Int>) -> Int {
        let n = count.load(ordering: .relaxed)
        return n == 0 ? 0 : total.load(ordering: .relaxed) / n
    }

    static func serverRow(_ server: ServerState, stats: ServerStatistics, backend: BackendState, iid: Int, now: Int64) -> [String: String] {
        var row: [String: String] = [
            "pxname": backend.name, "svname": server.name, "qcur": "\(backend.queueLength(of: server))",
            "qmax": "\(server.queueMax.load(ordering: .relaxed))", "qtime": "\(averageWait(server.dequeuedSessions, server.dequeuedWaitMs))",
            "slim": server.maxConnections.map(String.init) ?? "",
            "throttle": server.throttlePercent(now: now).map(String.init) ?? "",
            "tracked": server.configuration.track.map { "\($0.backend ?? backend.name)/\($0.server)" } ?? "",
            "qlimit": server.maxQueueStorage.load(ordering: .relaxed) == Int.max ? "" : "\(server.maxQueueStorage.load(ordering: .relaxed))",
            "scur": "\(stats.currentSessions)", "smax": "\(stats.maxSessions)", "stot": "\(stats.totalSessions)",
            "bin": "\(stats.bytesIn)", "bout": "\(stats.bytesOut)", "dresp": "0", "econ": "\(stats.connectErrors)",
            "eresp": "0", "wretr": "\(stats.retries)", "wredis": "\(stats.redispatches)",
            "status": server.status, "weight": "\(server.effectiveWeight(now: now))",
            "act": server.isBackup ? "0" : "1", "bck": server.isBackup ? "1" : "0",
            "lastchg": "\((now - server.lastChange.load(ordering: .relaxed)) / 1000)",
            "pid": "1", "iid": "\(iid)", "sid": "\(server.ordinal + 1)", "lbtot": "\(stats.totalSessions)", "type": "2",
            "lastsess": server.lastSessionAt.load(ordering: .relaxed) == 0 ? "-1" : "\((now - server.lastSessionAt.load(ordering: .relaxed)) / 1000)",
            "addr": server.address.description, "mode": "tcp", "uweight": "\(server.weight)",
        ]
        if let plan = server.checkPlan, server.checksEnabled.load(ordering: .relaxed) {
            let check = server.lastCheck
            row["chkfail"] = "\(server.failedChecks.load(ordering: .relaxed))"
            row["chkdown"] = "\(server.downTransitionCount)"
            row["downtime"] = "\(server.downtimeSeconds(now: now))"
            row["check_status"] = check.status.rawValue
            row["check_code"] = check.code.map(String.init) ?? ""
            row["check_duration"] = check.status == .initial ? "" : "\(check.durationMs)"
            row["last_chk"] = check.info
            row["check_desc"] = check.status.reason
            row["check_rise"] = "\(plan.rise)"
            row["check_fall"] = "\(plan.fall)"
            row["check_health"] = "\(server.health.load(ordering: .relaxed))"
        }
        return row
    }
}

extension String {
    func replacingAll(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
