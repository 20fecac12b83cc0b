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

    /// `add server` refusals HAProxy 2.6 gives as bare sentences (`cli_err` before it parses the
    /// server); the others end with a newline.
    static let bareAddServerRefusals: Set<String> = ["No such backend.", "Backend must use a dynamic load balancing to support dynamic servers."]

    /// The reason events give for a change made here (HAProxy's words in its logs).
    static let byRuntimeAPI = "stats socket command"

    /// Reads and runs one command (one `;`-separated part of a request line).
    func execute(_ command: String, level: StatsSocket.Level) -> Outcome {
        execute(RuntimeCommand.parse(command, level: level))
    }

    func execute(_ command: RuntimeCommand) -> Outcome {
        switch command {
        case .reply(let text): return .reply(text)
        case .prompt: return .togglePrompt
        case .quit: return .quit
        case .showInfo: return .reply(showInfo())
        case .showStat(let request):
            let snapshot = balancer.statistics()
            var selection = StatSelection(hideDown: request.hideDown, hideMaintenance: request.hideMaintenance)
            if let proxy = request.proxy {
                // HAProxy: a proxy of that name, else the number; 0 (no number) is no proxy.
                let id = snapshot.frontends.first { $0.name == proxy }?.id ?? snapshot.backends.first { $0.name == proxy }?.id
                    ?? RuntimeCommand.atoi(proxy)
                guard id != 0 else { return .reply("No such proxy.\n") }
                selection.scope = .init(proxy: id, types: request.types, server: request.server)
            }
            let fields = StatsCSV.fields(snapshot, selecting: selection)
            switch request.format {
            case .json: return .reply(StatsTyped.json(fields) + "\n")
            case .typed: return .reply(StatsTyped.typed(fields))
            case .csv: return .reply(([StatsCSV.header] + fields.map(StatsCSV.render)).joined(separator: "\n") + "\n")
            }
        case .showServersState(let backend): return .reply(showServersState(backend))
        case .showResolvers(let section):
            return .reply(balancer.resolversReport(section) ?? (section == nil ? "" : "Can't find that resolvers section\n"))
        case .showBackends: return .reply((["# name"] + balancer.backends.map(\.name)).joined(separator: "\n") + "\n")
        case .showSessions: return .reply(showSessions())
        case .showTable(let name, let selection): return .reply(showTable(name, selection))
        case .clearTable(let name, let selection): return .reply(clearTable(name, selection))
        case .server(let path, let action):
            guard let path else { return .reply(RuntimeCommand.requireServer) }
            guard let backend = balancer.backend(named: path.backend) else { return .reply("No such backend.\n") }
            guard let server = backend.server(named: path.server) else { return .reply("No such server.\n") }
            switch action {
            case .failure(let refusal): return .reply(refusal.text)
            case .success(let action): return run(action, on: server, in: backend)
            }
        case .addServer(let path, let server):
            do {
                try balancer.addServer(server, to: path.backend)
                return .reply("New server registered.\n")
            } catch {
                // HAProxy answers its first checks (the backend, its algorithm) with a bare
                // sentence, and what fails later with an alert line, which ends with a newline.
                return .reply(error.message + (Self.bareAddServerRefusals.contains(error.message) ? "" : "\n"))
            }
        case .deleteServer(let path):
            do {
                try balancer.removeServer(named: path.server, from: path.backend)
                return .reply("Server deleted.")  // HAProxy's answers here are bare sentences
            } catch {
                return .reply(error.message)
            }
        case .setMaxConnections(let frontend, let value):
            guard balancer.frontendState(named: frontend) != nil else { return .reply("No such frontend.\n") }
            switch value {
            case .failure(let refusal): return .reply(refusal.text)
            case .success(let value):
                try? balancer.setMaxConnections(value, ofFrontend: frontend)
                return .reply("")
            }
        case .reload:
            do {
                let notices = try balancer.reloadFromSource()
                return .reply((["Reload complete."] + notices).joined(separator: "\n") + "\n")
            } catch {
                return .reply("Reload failed; the running configuration is unchanged:\n\(error.message)\n")
            }
        }
    }

    private func run(_ action: RuntimeCommand.ServerAction, on server: ServerState, in backend: BackendState) -> Outcome {
        switch action {
        case .getWeight: return .reply("\(server.weight) (initial \(server.configuredWeight))\n")
        case .setWeight(let weight):
            backend.setWeight(weight.resolve(configured: server.configuredWeight), of: server)
        case .setAdmin(let admin):
            let state: AdminState = switch admin { case .ready: .ready; case .drain: .drain; case .maintenance: .maintenance }
            backend.setAdminAnnounced(state, of: server, reason: Self.byRuntimeAPI)
        case .setHealth(let health):
            let state: OperationalState = switch health { case .up: .running; case .stopping: .stopping; case .down: .stopped }
            backend.setHealth(state, of: server, reason: Self.byRuntimeAPI)
        case .setAddress(let ip, let port):
            let old = server.address
            guard let address = SocketAddress(ip: ip, port: port ?? old.port) else { return .reply(RuntimeCommand.invalidAddress(ip).text) }
            // HAProxy's words (`srv_update_addr_port`), without the address or port changing.
            if old.isUnix { return .reply("Update for the current server address family is only supported through configuration file by '\(Self.byRuntimeAPI)'\n") }
            let awaiting = server.awaitingAddress.load(ordering: .relaxed)
            // HAProxy's report: what changed, or that nothing needed to.
            var report = [address.ip == old.ip && !awaiting ? "no need to change the addr" : "IP changed from '\(old.ip)' to '\(ip)'"]
            if let port { report.append(port == old.port ? "no need to change the port" : "port changed from '\(old.port)' to '\(port)'") }
            if address != old || awaiting {
                backend.setAddress(address, of: server, by: Self.byRuntimeAPI)
                if server.awaitingAddress.exchange(false, ordering: .relaxed) { backend.setAdmin(.ready, of: server, reason: Self.byRuntimeAPI) }
            }
            return .reply(report.joined(separator: ", ") + " by '\(Self.byRuntimeAPI)'\n")
        case .setFQDN(let name): return .reply(balancer.setFQDN(name, of: server, in: backend))
        case .setCheckTarget(let address, let port):
            // HAProxy 2.6's `srv_update_check_addr_port`, its checks in its order and its words (which
            // carry no newline of their own: the answer ends with the one that ends every answer).
            guard server.checkPlan != nil, server.checksEnabled.load(ordering: .relaxed) else {
                return .reply("health checks are not enabled on this server")
            }
            let ip = address.flatMap { SocketAddress(ip: $0, port: 0) }
            if let address, ip == nil { return .reply("invalid addr '\(address)'") }
            var newPort: Int?
            if let port {
                guard let p = Int(port) else { return .reply("provided port is not an integer") }
                guard (0...65535).contains(p) else { return .reply("provided port is invalid") }
                // A server without a port of its own (the client's destination port) needs one to check.
                if p == 0 && server.address.port == 0 { return .reply("can't unset 'port' since MAPPORTS is in use") }
                newPort = p
            }
            server.checkPlanStorage.withLock { plan in
                if let ip { plan?.fixedAddress = ip }
                if let newPort { plan?.port = newPort == 0 ? nil : newPort }
            }
        case .setHealthChecks(let enabled):
            guard server.checkPlan != nil else {
                // HAProxy's words; disabling what is not there is no error.
                return .reply(enabled ? "Health check was not configured on this server, cannot enable.\n" : "")
            }
            balancer.setHealthChecks(enabled: enabled, of: server, in: backend)
        case .setAgentChecks(let enabled):
            // HAProxy's words; disabling what is not there is no error.
            guard server.agentPlan != nil else { return .reply(enabled ? "Agent was not configured on this server, cannot enable.\n" : "") }
            balancer.setAgentChecks(enabled: enabled, of: server)
        case .setAgentHealth(let up):
            guard server.agentPlan != nil, server.agentEnabled.load(ordering: .relaxed) else { return .reply("agent checks are not enabled on this server.\n") }
            // As HAProxy: the agent's health, and the server's state with it, whatever the health check says.
            server.agentHealth.store(up ? 1 : 0, ordering: .relaxed)
            backend.setOperational(up ? .running : .stopped, of: server, reason: Self.byRuntimeAPI)
        case .shutdownSessions: balancer.shutdownSessions(of: server)
        case .waitDrained(let timeoutMs, let shutdownAfter):
            return .waitDrained(DrainWait(backend: backend, server: server, deadline: monotonicMilliseconds() + timeoutMs, shutdownAfter: shutdownAfter))
        }
        return .reply("")
    }

    // MARK: Commands

    private func showInfo() -> String {
        let uptime = (monotonicMilliseconds() - balancer.startedAt) / 1000
        let max = balancer.maxSessions
        let rates = balancer.processRates
        var lines = [
            "Name: Sluice", "Version: \(version)", "Nbthread: \(balancer.configuration.global.threads)", "Nbproc: 1",
            "Process_num: 1", "Pid: \(getpid())",
            // As HAProxy: `node` defaults to the host name, `description` to nothing.
            "node: \(balancer.configuration.global.nodeName)", "description: \(balancer.configuration.global.description ?? "")",
            "Uptime: \(uptime / 86400)d \(uptime % 86400 / 3600)h\(pad2(uptime % 3600 / 60))m\(pad2(uptime % 60))s",
            "Uptime_sec: \(uptime)", "Maxconn: \(max == Int.max ? 0 : max)", "CurrConns: \(balancer.currentSessions)",
            "CumConns: \(balancer.totalSessions)", "PipesUsed: \(balancer.pipesOpen)",
            "DescriptorExhaustions: \(balancer.descriptorExhaustions)",
            "DroppedLogs: \(balancer.logs.dropped.load(ordering: .relaxed))",
            "Stopping: \(balancer.isStopping ? 1 : 0)",
        ]
        // HAProxy's names; a rate is counted only under its limit (`maxconnrate`, `maxsessrate`).
        if let connections = rates.connections { lines.append("ConnRate: \(connections)") }
        lines.append("ConnRateLimit: \(rates.connectionLimit)")
        if let sessions = rates.sessions { lines.append("SessRate: \(sessions)") }
        lines.append("SessRateLimit: \(rates.sessionLimit)")
        return lines.joined(separator: "\n") + "\n"
    }

    private func pad2(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }

    private func showServersState(_ only: String?) -> String {
        var lines = ["1", "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port"]
        let backends = balancer.backends
        if let only, !backends.contains(where: { $0.name == only }) { return "Can't find backend.\n" }
        let now = monotonicMilliseconds()
        for backend in backends where only == nil || backend.name == only {
            for server in backend.servers {
                let awaiting = server.awaitingAddress.load(ordering: .relaxed)
                let configuration = server.configuration
                // HAProxy's bits: 0x01 forced maintenance, 0x08 drain, 0x20 maintenance for want of an
                // address, and 0x04 for a server the configuration says `disabled` (kept all its
                // life, as HAProxy keeps SRV_ADMF_CMAINT: the state file tells a configuration change).
                let maintenance = server.admin == .maintenance
                let forced: Int = switch server.admin { case .ready: 0; case .maintenance: awaiting ? 0x20 : 1; case .drain: 8 }
                let admin = (configuration.isDisabled ? 4 : 0) | forced
                // HAProxy: a server named by a host name shows it as its FQDN (resolved at start or
                // by the resolvers); an SRV name is the record, and the FQDN the host it named.
                let host = configuration.endpoint.host
                let name = host.flatMap { SocketAddress(ip: $0, port: 0) == nil ? $0 : nil }
                let srvRecord = name.flatMap { $0.hasPrefix("_") ? $0 : nil }
                let fqdn = srvRecord == nil ? name ?? "-" : server.dnsTarget.withLock { $0 } ?? "-"
                let check = server.lastCheck
                // HAProxy 2.6's `enum healthcheck_status` (check-t.h), seen as 6 for L4OK from 2.6.12.
                let checkStatus: Int = switch check.status {
                case .initial: 1; case .checked: 3; case .layer4OK: 6; case .layer4Timeout: 7; case .layer4Connection: 8; case .socketError: 5
                case .layer6OK: 9; case .layer6Timeout: 10; case .layer6Response: 11
                case .layer7Timeout: 12; case .layer7Response: 13; case .layer7OK: 15; case .layer7OKConditional: 16; case .layer7Status: 17
                case .processError: 18; case .processTimeout: 19; case .processOK: 20
                }
                // CHK_RES_*: failed 2, passed 3, conditionally passed 4.
                let result = check.status == .initial ? 0 : check.status == .layer7OKConditional ? 4 : check.status.passed ? 3 : 2
                let plan = server.checkPlan
                // CHK_ST_*: configured 0x02, enabled 0x04, and paused 0x08: HAProxy pauses a checked
                // server's checks while it is in maintenance, and marks a `disabled` server without
                // checks paused for good (`enable server` leaves the mark).
                let paused = plan != nil ? maintenance : configuration.isDisabled
                let checkState = (plan == nil ? 0 : server.checksEnabled.load(ordering: .relaxed) ? 6 : 2) | (paused ? 8 : 0)
                // In maintenance HAProxy's server is STOPPED with a health of 0; one without checks
                // shows the default `rise` (2) it starts with, or 0 once maintenance zeroed it (a
                // `disabled` one, or one put in maintenance at run time, even after it left it).
                let operational = maintenance ? 0 : Int(server.operational.rawValue)
                let zeroed = configuration.isDisabled || server.health.load(ordering: .relaxed) == 0
                let health = maintenance ? 0 : plan == nil ? (zeroed ? 0 : ServerCheck().rise) : server.health.load(ordering: .relaxed)
                // HAProxy's CHK_ST_* bits of the agent: configured 0x02, enabled 0x04, agent 0x10.
                let agent = server.agentPlan
                let agentState = agent == nil ? 0 : server.agentEnabled.load(ordering: .relaxed) ? 0x16 : 0x12
                lines.append([
                    "\(backend.id)", backend.name, "\(server.id)", server.name, awaiting || server.address.isUnix ? "-" : server.address.ip,  // HAProxy's dump_server_addr: "-" for a UNIX socket
                    "\(operational)", "\(admin)", "\(server.weight)", "\(server.configuredWeight)",
                    "\((now - server.lastChange.load(ordering: .relaxed)) / 1000)", "\(checkStatus)", "\(result)",
                    "\(health)", "\(checkState)", "\(agentState)", "0", "0", fqdn, "\(server.address.port)",
                    srvRecord ?? "-", "0", "\(plan?.port ?? 0)", plan?.fixedAddress?.ip ?? "-", agent?.fixedAddress?.ip ?? "-", "\(agent?.port ?? 0)",
                ].joined(separator: " "))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func showSessions() -> String {
        var lines = ["# sessions: \(balancer.currentSessions) open, \(balancer.totalSessions) since start"]
        for backend in balancer.backends {
            for server in backend.servers {
                let current = server.statistics.currentSessions
                if current > 0 { lines.append("be=\(backend.name) srv=\(server.name) sessions=\(current)") }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
