import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// HAProxy's server-state file: what `show servers state` printed before a restart (an operator's
/// reload script saves it), applied when the balancer starts, before any traffic, as HAProxy's
/// `load-server-state-from-file` does. A line that does not parse, or names a backend or server
/// that is not configured, is reported and skipped; a bad file never stops the start.
enum ServerStateFile {
    /// One server's saved state (version 1 of the format).
    struct Entry: Equatable {
        var backend: String
        var server: String
        /// `srv_addr`: the address it had ("-" when none), for `init-addr last`.
        var address: String
        /// `srv_fqdn`: the host name it was configured with or resolved by; nil for "-" or a file
        /// without the field.
        var host: String? = nil
        var operational: OperationalState
        /// HAProxy's `srv_admin_state` bits, the inherited ones removed.
        var admin: Int
        var userWeight: Int
        var configuredWeight: Int
        var secondsSinceChange: Int64
        var checkHealth: Int
        var checkState: Int
        /// `srv_check_port` and `srv_check_addr` when set (`set server … check-port|check-addr`, or
        /// `port`/`addr` on the server line); nil for "0" and "-", or a file without them.
        var checkPort: Int? = nil
        var checkAddress: SocketAddress? = nil
    }

    /// `srv_admin_state` bits (HAProxy's SRV_ADMF_*).
    static let forcedMaintenance = 0x01, configuredMaintenance = 0x04, forcedDrain = 0x08
    /// `srv_check_state` bits (HAProxy's CHK_ST_*).
    static let checkConfigured = 0x02, checkEnabled = 0x04

    /// Reads a file's text: its entries, and a reason for every line skipped (`path:line: …`).
    static func parse(_ text: String, path: String) -> (entries: [Entry], problems: [String]) {
        var entries: [Entry] = []
        var problems: [String] = []
        var sawVersion = false
        for (index, raw) in text.lines.enumerated() {
            let line = raw.trimmingCharacters(in: " \t")
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard sawVersion else {
                guard line == "1" else {
                    problems.append("\(path):\(index + 1): version '\(line)' is not supported (expected 1, as 'show servers state' writes)")
                    return ([], problems)
                }
                sawVersion = true
                continue
            }
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            // be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight
            // srv_iweight srv_time_since_last_change srv_check_status srv_check_result
            // srv_check_health srv_check_state srv_agent_state … (HAProxy 2.x writes 25 fields).
            guard f.count >= 15 else {
                problems.append("\(path):\(index + 1): \(f.count) fields where a server line has at least 15")
                continue
            }
            let admin = (Int(f[6]) ?? -1) & ~(0x02 | 0x10 | 0x20 | 0x40)  // inherited and resolver bits, FQDN change
            guard let op = Int(f[5]).flatMap({ UInt8(exactly: $0) }).flatMap(OperationalState.init(rawValue:)),
                  [0, forcedMaintenance, configuredMaintenance, configuredMaintenance | forcedMaintenance,
                   configuredMaintenance | forcedDrain, forcedDrain].contains(admin),
                  let userWeight = Int(f[7]), (0...256).contains(userWeight), let configuredWeight = Int(f[8]), (0...256).contains(configuredWeight),
                  let since = Int64(f[9]), let health = Int(f[12]), let checkState = Int(f[13]) else {
                problems.append("\(path):\(index + 1): a value is out of range (op state '\(f[5])', admin state '\(f[6])', weights '\(f[7])'/'\(f[8])')")
                continue
            }
            // srv_check_port and srv_check_addr: fields 22 and 23, when the file has them. Ones equal
            // to the server's own port and address (fields 19 and 5) follow the server: earlier Sluice
            // versions wrote where checks went rather than what was set, and pinning those would keep
            // checks on an address that DNS or a reload later moves the server away from.
            let checkPort = f.count > 21 ? Int(f[21]) : 0
            let checkAddress = f.count > 22 && f[22] != "-" ? SocketAddress(ip: f[22], port: 0) : nil
            guard let checkPort, (0...65535).contains(checkPort), f.count <= 22 || f[22] == "-" || checkAddress != nil else {
                problems.append("\(path):\(index + 1): the check port '\(f[21])' or address '\(f.count > 22 ? f[22] : "-")' is not valid")
                continue
            }
            entries.append(Entry(backend: f[1], server: f[3], address: f[4], host: f.count > 17 && f[17] != "-" ? f[17] : nil, operational: op, admin: admin, userWeight: userWeight, configuredWeight: configuredWeight,
                                 secondsSinceChange: since, checkHealth: health, checkState: checkState,
                                 checkPort: checkPort == 0 || (f.count > 18 && f[18] == f[21]) ? nil : checkPort,
                                 checkAddress: checkAddress.flatMap { f[22] == f[4] ? nil : $0 }))
        }
        if !sawVersion && problems.isEmpty { problems.append("\(path): empty (no version line)") }
        return (entries, problems)
    }

    /// Where `backend` reads its states; nil when it reads none.
    static func path(for backend: Backend, _ global: Global) -> String? {
        func located(_ name: String) -> String {
            name.hasPrefix("/") ? name : global.serverStateBase.map { $0.hasSuffix("/") ? $0 + name : $0 + "/" + name } ?? name
        }
        switch backend.serverStateSource {
        case .none: return nil
        case .global: return global.serverStateFile.map(located)
        case .local(let name): return located(name ?? backend.name)
        }
    }

    /// A server's saved address (`srv_addr`) and the host name it belonged to (`srv_fqdn`).
    struct SavedAddress: Equatable {
        var address: String
        var host: String?
    }

    /// The addresses saved for each backend's servers (backend → server → address), for
    /// `init-addr last`. Unreadable files and lines are skipped here; `apply` reports them.
    static func savedAddresses(_ configuration: Configuration) -> [String: [String: SavedAddress]] {
        var files: [String: [Entry]] = [:]
        var out: [String: [String: SavedAddress]] = [:]
        for backend in configuration.backends {
            guard let path = path(for: backend, configuration.global) else { continue }
            if files[path] == nil { files[path] = (try? Parser.readFile(path).get()).map { parse($0, path: path).entries } ?? [] }
            for entry in files[path] ?? [] where entry.backend == backend.name && entry.address != "-" {
                out[backend.name, default: [:]][entry.server] = SavedAddress(address: entry.address, host: entry.host)
            }
        }
        return out
    }

    /// Applies the saved states to the configured servers of every backend that loads them, as
    /// HAProxy's `srv_state_srv_update`. Returns the notices for the operator (lines skipped,
    /// files missing).
    static func apply(_ configuration: Configuration, to backends: [String: BackendState], now: Int64 = monotonicMilliseconds()) -> [String] {
        var notices: [String] = []
        var files: [String: [Entry]] = [:]
        for backend in configuration.backends {
            guard let path = path(for: backend, configuration.global) else {
                if backend.serverStateSource == .global {
                    notices.append("backend '\(backend.name)': 'load-server-state-from-file global' without a global 'server-state-file'; no state loaded")
                }
                continue
            }
            if files[path] == nil {
                switch Parser.readFile(path) {
                case .success(let text):
                    let (entries, problems) = parse(text, path: path)
                    files[path] = entries
                    notices += problems
                case .failure(let error):
                    files[path] = []
                    notices.append("server-state file '\(path)': \(error.reason); no state loaded from it")
                }
            }
            guard let state = backends[backend.name] else { continue }
            for entry in files[path] ?? [] where entry.backend == backend.name {
                guard let server = state.server(named: entry.server), let configured = backend.servers.first(where: { $0.name == entry.server }) else {
                    notices.append("server-state file '\(path)': no server '\(entry.server)' in backend '\(backend.name)'; its state is skipped")
                    continue
                }
                if let notice = apply(entry, to: server, configured: configured, in: state, now: now) {
                    notices.append("server-state file '\(path)': \(backend.name)/\(entry.server): \(notice)")
                }
            }
        }
        return notices
    }

    /// Returns what could not be applied, if anything.
    private static func apply(_ e: Entry, to server: ServerState, configured: Server, in backend: BackendState, now: Int64) -> String? {
        // Health: only a checked server has one to restore (one without checks is UP whenever it is
        // not in maintenance, before and after).
        if let plan = server.checkPlan {
            let top = plan.rise + plan.fall - 1
            var health = e.checkHealth
            var state = e.operational
            switch e.operational {
            case .stopped: health = 0
            case .starting:
                // As HAProxy's srv_state_srv_update: coming up, so DOWN with the health it had.
                if plan.rise == 1 { (health, state) = (top, .running) } else {
                    if health < 1 || health >= plan.rise { health = plan.rise - 1 }
                    state = .stopped
                }
            case .stopping:
                // Soft-stopped (NOLB) as HAProxy restores it, its health kept below the top.
                if plan.fall == 1 { (health, state) = (0, .stopped) } else if health < plan.rise || health > top - 1 { health = plan.rise }
            case .running: health = top
            }
            server.health.store(health, ordering: .relaxed)
            if server.operational != state { backend.setOperational(state, of: server) }
            if e.checkState & checkConfigured != 0 && e.checkState & checkEnabled == 0 { server.checksEnabled.store(false, ordering: .relaxed) }
        }
        // Admin state: a change of `disabled` in the configuration wins; otherwise the saved state.
        let disabled = configured.isDisabled
        if (e.admin & configuredMaintenance != 0) == disabled {
            if e.admin & forcedMaintenance != 0 && !disabled {
                backend.applyAdmin(.maintenance, of: server, reason: nil)
            } else if e.admin & forcedMaintenance == 0 && disabled {
                backend.applyAdmin(.ready, of: server, reason: nil)  // at start: no warm-up, as HAProxy
            }
        }
        // Drain survives unless it only came from a configured weight of 0 that is now positive.
        if server.admin != .maintenance && e.admin & forcedDrain != 0 && (e.configuredWeight > 0 || configured.weight == 0) {
            backend.setAdmin(.drain, of: server)
        }
        // The weight set at run time, unless the configured weight changed meanwhile.
        if e.configuredWeight == configured.weight { backend.setWeight(e.userWeight, of: server) }
        server.lastChange.store(now - e.secondsSinceChange * 1000, ordering: .relaxed)
        // Where checks go, as HAProxy: the saved check port and address, on a checked server.
        if e.checkPort != nil || e.checkAddress != nil {
            guard server.checkPlan != nil else { return "health checks are not enabled on this server; its check port and address are not restored" }
            server.checkPlanStorage.withLock { plan in
                if let address = e.checkAddress { plan?.fixedAddress = address }
                if let port = e.checkPort { plan?.port = port }
            }
        }
        return nil
    }
}

private extension Substring {
    func trimmingCharacters(in set: String) -> Substring {
        var s = self
        while let c = s.first, set.contains(c) { s = s.dropFirst() }
        while let c = s.last, set.contains(c) { s = s.dropLast() }
        return s
    }
}

/// Keeps the server-state files current while Sluice runs (beyond HAProxy, which only reads them):
/// once a second it compares every server's admin state, health, weight and check switch with
/// what it last wrote, and rewrites a file whose servers changed (a temporary file renamed over
/// it), and once more at stop. So a restart — or a crash — does not put a drained server back in
/// rotation. The files' directories are opened at start, before `chroot`.
final class ServerStateWriter: @unchecked Sendable {
    private struct Target {
        let directory: CInt
        let name: String
        let path: String
        /// The backends whose lines it holds; nil: every backend (the global file).
        let backends: Set<String>?
        var written: [String]?
        var failed = false
    }

    private var targets: [Target]
    private let render: (String?) -> String
    private let fingerprint: () -> [String: [String]]
    private let report: (String) -> Void
    private let stopping = Atomic<Bool>(false)
    private var thread: OSThread?

    /// Nil when no backend loads a state file. `render(backend)` is `show servers state [backend]`;
    /// `fingerprint()` the state that matters, as text per backend.
    init?(_ configuration: Configuration, render: @escaping (String?) -> String, fingerprint: @escaping () -> [String: [String]],
          report: @escaping (String) -> Void) {
        var everyBackend: Set<String> = []
        var someBackends: [String: Set<String>] = [:]
        for backend in configuration.backends {
            guard let path = ServerStateFile.path(for: backend, configuration.global) else { continue }
            if backend.serverStateSource == .global { everyBackend.insert(path) } else { someBackends[path, default: []].insert(backend.name) }
        }
        var targets: [Target] = []
        for path in everyBackend.union(someBackends.keys).sorted() {
            let backends = everyBackend.contains(path) ? nil : someBackends[path]
            let slash = path.lastIndex(of: "/")
            let directory = slash.map { path[..<$0].isEmpty ? "/" : String(path[..<$0]) } ?? "."
            let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else {
                report("server-state file '\(path)': cannot open its directory (\(SystemError(code: errno, call: "open").reason)); states will not be saved")
                continue
            }
            targets.append(Target(directory: fd, name: slash.map { String(path[path.index(after: $0)...]) } ?? path, path: path, backends: backends))
        }
        guard !targets.isEmpty else { return nil }
        self.targets = targets
        self.render = render
        self.fingerprint = fingerprint
        self.report = report
    }

    deinit { for t in targets { closeDescriptor(t.directory) } }

    func start() throws(SystemError) {
        thread = try OSThread.spawn("sluice-state") { [self] in
            var ticks = 0
            while !stopping.load(ordering: .acquiring) {
                if ticks % 10 == 0 { saveChanged() }
                ticks += 1
                usleep(100_000)
            }
        }
    }

    /// Stops the thread and saves what changed since its last pass.
    func stop() {
        stopping.store(true, ordering: .releasing)
        thread?.join()
        thread = nil
        saveChanged()
    }

    private func saveChanged() {
        let now = fingerprint()
        for t in targets.indices {
            let state = (targets[t].backends.map { Array($0) } ?? Array(now.keys)).sorted().flatMap { now[$0] ?? [] }
            guard state != targets[t].written else { continue }
            let text = targets[t].backends.map { names in
                // One backend's lines under one header: the version and header of the first render.
                let parts = names.sorted().map { render($0).split(separator: "\n", omittingEmptySubsequences: false) }
                return (parts.first.map { Array($0.prefix(2)) } ?? []).joined(separator: "\n") + "\n"
                    + parts.flatMap { $0.dropFirst(2).filter { !$0.isEmpty } }.map { $0 + "\n" }.joined()
            } ?? render(nil)
            if write(text, to: targets[t]) {
                targets[t].written = state
                targets[t].failed = false
            } else {
                targets[t].written = nil
            }
        }
    }

    private func write(_ text: String, to target: Target) -> Bool {
        let temporary = ".\(target.name).tmp-\(getpid())"
        let fd = openat(target.directory, temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        var ok = fd >= 0
        if ok {
            let bytes = Array(text.utf8)
            ok = bytes.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if n < 0 { if errno == EINTR { continue }; return false }
                    offset += n
                }
                return true
            }
            ok = fsync(fd) == 0 && ok
            closeDescriptor(fd)
            ok = ok && renameat(target.directory, temporary, target.directory, target.name) == 0
            if !ok { unlinkat(target.directory, temporary, 0) }
        }
        if !ok, !target.failed, let t = targets.firstIndex(where: { $0.path == target.path }) {
            targets[t].failed = true
            report("server-state file '\(target.path)': cannot save the servers' states (\(SystemError(code: errno, call: "write").reason)); will try again at the next change")
        }
        return ok
    }
}
