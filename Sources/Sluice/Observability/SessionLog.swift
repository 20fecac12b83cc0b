#if canImport(Glibc)
import Glibc
#endif

/// Why a session ended, as the first letter of HAProxy's termination state.
enum TerminationCause: UInt8 {
    /// `-`: ended normally (each side closed its half).
    case normal = 0x2D
    /// `C`: the client aborted (reset, or closed while waiting under `option abortonclose`).
    case client = 0x43
    /// `S`: the server aborted, refused the connection, or no server was available.
    case server = 0x53
    /// `c`: `timeout client` (or the inspect delay without a complete PROXY header).
    case clientTimeout = 0x63
    /// `s`: `timeout server`, `timeout connect`, `timeout queue`.
    case serverTimeout = 0x73
    /// `P`: the proxy refused it (`tcp-request … reject`, a bad PROXY header).
    case proxy = 0x50
    /// `R`: a resource ran out (descriptors).
    case resource = 0x52
    /// `K`: killed by the administrator (`shutdown sessions`, a hard stop).
    case killed = 0x4B
}

/// What a session's `log-format` (or `option tcplog`) line needs beyond what forwarding keeps: the
/// client's address, when it came, and the timers of its way to a server. Allocated only for
/// frontends that log with a format (one pointer in the session otherwise).
final class SessionLog {
    let route: LogRoute
    let peer: SocketAddress?
    /// Monotonic and wall-clock time of the accept.
    let acceptedAt: Int64
    let acceptedSeconds: Int
    let acceptedMillis: Int
    /// When the session was given a backend, its first connect began, its server connection was
    /// established (monotonic ms; -1: not yet). Only the session's reactor touches them.
    @exclusivity(unchecked) var routedAt: Int64 = -1
    @exclusivity(unchecked) var connectStartedAt: Int64 = -1
    @exclusivity(unchecked) var connectedAt: Int64 = -1
    /// Its place when it joined the server's queue or the backend's (`%sq`, `%bq`; the queues are
    /// FIFO); 0 when it never waited.
    @exclusivity(unchecked) var serverQueuePosition = 0
    @exclusivity(unchecked) var backendQueuePosition = 0
    /// `%rc` says `+` once the session went to another server (`option redispatch`).
    @exclusivity(unchecked) var redispatched = false
    /// The line was written when the server connection was established (`option logasap`).
    @exclusivity(unchecked) var written = false
    /// `%rt`: the process's session counter when it was accepted.
    let serial: Int
    /// The session's unique ID (`unique-id-format`) once something asked for it: HAProxy builds it
    /// once, at the first need, and every later use sees the same bytes.
    @exclusivity(unchecked) private(set) var uniqueID: [UInt8]?
    /// `so_name` and the session's origin (`fe_conn`, `thread` …) for the format's samples when the
    /// session has no rules context.
    let bindName: [UInt8]?
    let origin: SessionOrigin?

    /// HAProxy counts the session itself among those processed up to its turn: the first in a
    /// queue logs 1.
    func queued(ahead: Int, inServerQueue: Bool) {
        if inServerQueue { serverQueuePosition = ahead + 1 } else { backendQueuePosition = ahead + 1 }
    }

    init(route: LogRoute, peer: SocketAddress?, bindName: [UInt8]?, origin: SessionOrigin?, serial: Int, now: Int64) {
        self.route = route
        self.peer = peer
        self.bindName = bindName
        self.origin = origin
        self.serial = serial
        acceptedAt = now
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        acceptedSeconds = Int(time.tv_sec)
        acceptedMillis = Int(time.tv_nsec / 1_000_000)
    }

    /// HAProxy's `UNIQUEID_LEN` (128) less its terminating NUL.
    static let uniqueIDLimit = 127

    /// The session's unique ID, built now in its frontend's `unique-id-format` if it was not yet
    /// (HAProxy's `stream_generate_unique_id`): the variables say what they say at this moment, the
    /// termination state `--` before the end. Nil when the frontend has no format.
    func uniqueID(_ session: Session, frontend: FrontendState, process: ProcessState, now: Int64,
                  end: TerminationCause = .normal, phase: UInt8 = 0x2D, atConnect: Bool = true) -> [UInt8]? {
        if let uniqueID { return uniqueID }
        guard let format = route.uniqueIDFormat else { return nil }
        var clock = LogClock()
        let id = Array(line(format, session, frontend: frontend, end: end, phase: phase, now: now, asap: false, atConnect: atConnect,
                            process: process, clock: &clock).prefix(Self.uniqueIDLimit))
        uniqueID = id
        return id
    }

    /// The unique ID asked for by a rule (`unique-id`), before the session has a server: what the
    /// format can say then is the client's side.
    func uniqueID(for context: SessionContext, frontend: FrontendState, process: ProcessState) -> [UInt8]? {
        if let uniqueID { return uniqueID }
        var session = Session()
        session.client = context.client
        session.context = context
        session.state = .inspecting
        return uniqueID(session, frontend: frontend, process: process, now: context.now)
    }

    /// The first connect attempt (retries and redispatches count into Tc).
    func connectStarting(now: Int64) {
        if connectStartedAt < 0 { connectStartedAt = now }
    }

    /// The session's line in its frontend's `log-format` (or `option tcplog`), as HAProxy 2.6's
    /// `sess_build_logline` writes each variable in a tcp proxy. `asap`: written when the server
    /// connection was established (`option logasap`): `%Tt`, `%Tu` and `%B` get HAProxy's `+`.
    /// `atConnect`: written as the server connection is established, not at the end.
    func line(_ format: LogFormat, _ session: Session, frontend: FrontendState, end: TerminationCause, phase: UInt8, now: Int64,
              asap: Bool, atConnect: Bool, process: ProcessState, clock: inout LogClock) -> [UInt8] {
        // Before rules chose a backend HAProxy names the frontend; a server that was tried is
        // named even if it refused (`<NOSRV>`: none was ever chosen).
        let backend = routedAt >= 0 ? session.backendRef?.takeUnretainedValue() : nil
        let server = session.serverRef?.takeUnretainedValue()
        // At the end, its own slot (held while it had a server connection) is not counted in
        // `%bc`/`%sc`: HAProxy has released it.
        let own = session.server >= 0 && !atConnect ? 1 : 0
        let total = Int(now - acceptedAt)
        // Looked up once per line, when the format names them.
        lazy var context = session.context ?? {
            let c = SessionContext(client: session.client, bindName: bindName, routing: nil, now: now, peer: peer)
            c.origin = origin
            c.log = self
            return c
        }()
        lazy var serverSide = session.server >= 0 ? try? Socket.localAddress(session.server) : nil
        var line = LineBuilder()
        var lastIsSpace = true
        for item in format.items {
            switch item {
            case .separator:
                if !lastIsSpace { line.append(byte: 0x20) }
                lastIsSpace = true
                continue
            case .text(let bytes):
                line.append(bytes)
            case .sample(let expression, let flags):
                var text: [UInt8] = []
                if let evaluator = route.evaluator {
                    context.final = true
                    switch evaluator.sample(expression, context) {
                    case .value(let s, _): text = s.text
                    case .values(let list): text = list.first?.text ?? []
                    case .none: break
                    }
                }
                line.append(text: text, flags)
            case .variable(let variable, let flags):
                switch variable {
                // A PROXY header's addresses when the client sent one (`accept-proxy`), as HAProxy.
                case .ci: line.append(ipOf: session.context?.source ?? peer, flags)
                case .cp: line.append(portOf: session.context?.source ?? peer, flags, listener: session.bindLimit?.takeUnretainedValue().id)
                case .fi: line.append(ipOf: frontendAddress(session), flags)
                case .fp: line.append(portOf: frontendAddress(session), flags, listener: session.bindLimit?.takeUnretainedValue().id)
                case .bi: line.append(ipOf: serverSide, flags)
                case .bp: line.append(portOf: serverSide, flags)
                case .si: line.append(ipOf: session.server >= 0 ? server?.address : nil, flags)
                case .sp: line.append(portOf: session.server >= 0 ? server?.address : nil, flags)
                case .t: clock.acceptDate(acceptedSeconds, millis: acceptedMillis, into: &line)
                case .T: LogClock.date(acceptedSeconds, local: false, into: &line)
                case .Tl: LogClock.date(acceptedSeconds, local: true, into: &line)
                case .Ts: flags.contains(.hex) ? line.append(hex: UInt64(acceptedSeconds), width: 4) : line.append(acceptedSeconds)
                case .ms: flags.contains(.hex) ? line.append(hex: UInt64(acceptedMillis), width: 2) : line.append(acceptedMillis, width: 3)
                case .f: line.append(text: frontend.nameBytes, flags)
                case .ft:
                    if flags.contains(.quote) { line.append(byte: 0x22) }
                    line.append(frontend.nameBytes)
                    if flags.contains(.quote) { line.append(byte: 0x22) }
                case .b: line.append(text: backend?.nameBytes ?? frontend.nameBytes, flags)
                case .s: line.append(text: server?.name.utf8 ?? "<NOSRV>".utf8, flags)
                case .sslc, .sslv: line.append(text: [UInt8](), flags)  // no TLS termination
                case .ID: line.append(text: uniqueID ?? [], flags)
                case .H: line.append(text: LogClock.hostName, flags)
                case .pid: flags.contains(.hex) ? line.append(hex: UInt64(getpid()), width: 4) : line.append(Int(getpid()))
                case .rt: flags.contains(.hex) ? line.append(hex: UInt64(serial), width: 4) : line.append(serial)
                case .lc:
                    let count = frontend.logCount.load(ordering: .relaxed)
                    flags.contains(.hex) ? line.append(hex: UInt64(count), width: 4) : line.append(count)
                case .Th: line.append(0)  // no handshake before the session (no TLS; a PROXY header counts in Tt)
                case .Tw: line.append(connectStartedAt >= 0 && routedAt >= 0 ? Int(connectStartedAt - routedAt) : -1)
                case .Tc: line.append(connectedAt >= 0 ? Int(connectedAt - connectStartedAt) : -1)
                case .Td: line.append(connectedAt >= 0 ? Int(now - connectedAt) : -1)
                case .Tt, .Tu:
                    if asap { line.append(byte: 0x2B) }
                    line.append(total)
                case .ST: line.append(0)
                case .B:
                    if asap { line.append(byte: 0x2B) }
                    line.append(session.toClient.total)
                case .U: line.append(session.toServer.total)
                case .ts, .tsc:
                    line.append(byte: end.rawValue)
                    line.append(byte: end == .normal && phase == 0x44 ? 0x2D : phase)
                    if variable == .tsc { line.append("--") }
                case .ac: line.append(process.currentConnections.load(ordering: .relaxed))
                case .fc: line.append(frontend.currentConnections.load(ordering: .relaxed))
                case .bc:
                    var sessions = (backend?.queuedCount.load(ordering: .relaxed) ?? 0) - own
                    for s in backend?.servers ?? [] { sessions += s.currentSessions.load(ordering: .relaxed) }
                    line.append(max(0, sessions))
                case .sc: line.append(max(0, (server?.currentSessions.load(ordering: .relaxed) ?? 0) - own))
                case .rc:
                    if redispatched { line.append(byte: 0x2B) }
                    line.append(session.policy.backend.retries - session.retriesLeft)
                case .sq: line.append(serverQueuePosition)
                case .bq: line.append(backendQueuePosition)
                case .hr, .hrl:
                    // `tcp-request content capture` slots, as HAProxy writes request header captures.
                    let slots = session.context?.routing?.rules.requestCaptures ?? 0
                    guard slots > 0 else { continue }
                    let captured = session.context?.captures ?? []
                    let quoted = flags.contains(.quote)
                    if variable == .hr {
                        if quoted { line.append(byte: 0x22) }
                        line.append(byte: 0x7B)
                        for slot in 0..<slots {
                            if slot > 0 { line.append(byte: 0x7C) }
                            if slot < captured.count, let value = captured[slot] { line.append(captured: value) }
                        }
                        line.append(byte: 0x7D)
                        if quoted { line.append(byte: 0x22) }
                    } else {
                        for slot in 0..<slots {
                            if slot > 0 { line.append(byte: 0x20) }
                            if quoted { line.append(byte: 0x22) }
                            if slot < captured.count, let value = captured[slot] { line.append(captured: value) } else if !quoted { line.append(byte: 0x2D) }
                            if quoted { line.append(byte: 0x22) }
                        }
                    }
                case .hs, .hsl: continue  // no response captures at Layer 4: nothing, not even '-'
                }
            }
            lastIsSpace = false
        }
        return line.bytes
    }

    /// The address the client reached (`%fi`/`%fp`): a PROXY header's destination, else the
    /// connection's as HAProxy reads it (`SO_ORIGINAL_DST` first: behind a netfilter REDIRECT, the
    /// address the client asked for).
    private func frontendAddress(_ session: Session) -> SocketAddress? {
        if let context = session.context { return context.destination }
        guard session.client >= 0 else { return nil }
        return Socket.originalDestination(session.client) ?? (try? Socket.localAddress(session.client))
    }

    /// Without `option tcplog`, HAProxy logs a TCP session once, at accept.
    static func connectLine(peer: SocketAddress?, local: SocketAddress?, listener: Int, frontend: String) -> [UInt8] {
        var line = LineBuilder()
        if peer?.isUnix == true {
            // HAProxy's words: "UNIX socket, only the destination is known".
            line.append("Connect to unix:"); line.append(listener)
            line.append(" ("); line.append(frontend); line.append("/TCP)")
            return line.bytes
        }
        line.append("Connect from ")
        if let peer { line.append(address: peer) } else { line.append("unknown") }
        line.append(" to ")
        if let local { line.append(address: local) } else { line.append("unknown") }
        line.append(" ("); line.append(frontend); line.append("/TCP)")
        return line.bytes
    }
}

extension Session.State {
    /// The second letter of HAProxy's termination state: where the session was when it ended.
    var terminationPhase: UInt8 {
        switch self {
        case .inspecting, .free: 0x52  // R: waiting for the client's data (rules, PROXY header)
        case .queued: 0x51  // Q
        case .connecting, .retryWait, .descriptorWait: 0x43  // C
        case .established: 0x44  // D
        }
    }
}

extension LogRing {
    /// A new session of a frontend that logs. Without a format, HAProxy's line is written now;
    /// with one, the returned state collects what its line needs.
    func sessionStarted(_ route: LogRoute, client: CInt, peer: SocketAddress?, local: SocketAddress?, bindName: [UInt8]?, origin: SessionOrigin,
                        frontend: String, serial: Int, now: Int64) -> SessionLog? {
        if route.format == nil && route.logging != nil {
            // HAProxy names the address the client asked for (`SO_ORIGINAL_DST` behind a REDIRECT).
            let reached = local?.isUnix == true ? local : Socket.originalDestination(client) ?? local ?? (try? Socket.localAddress(client))
            log(route, level: 6, bytes: SessionLog.connectLine(peer: peer, local: reached, listener: origin.bind?.takeUnretainedValue().id ?? 0, frontend: frontend))
        }
        guard route.format != nil || route.uniqueIDFormat != nil else { return nil }
        let samples = route.format?.hasSamples == true || route.uniqueIDFormat?.hasSamples == true
        return SessionLog(route: route, peer: peer, bindName: samples ? bindName : nil, origin: samples ? origin : nil, serial: serial, now: now)
    }

    /// The server connection is established: the line is written now under `option logasap` (or
    /// a format that waits for nothing), with the termination state `--`, as HAProxy.
    func sessionConnected(_ log: SessionLog, _ session: Session, frontend: FrontendState, process: ProcessState, now: Int64) {
        log.connectedAt = now
        guard log.route.logsAtConnect else { return }
        write(log, session, cause: .normal, phase: 0x2D, atConnect: true, frontend: frontend, process: process, now: now)
        log.written = true
    }

    /// The line of a session that ends now, unless it was written at connect, or `option
    /// dontlognull` leaves out sessions whose client sent nothing (whatever ended them, as
    /// HAProxy). Called before its server slot is released (releasing it hands it to a queued
    /// session at once): `%ac`/`%fc` count the session, `%bc`/`%sc` do not — HAProxy's counts at
    /// that moment, before its queue moves.
    /// `phase`: the termination state's second letter when not the session's state's.
    func sessionEnded(_ log: SessionLog, _ session: Session, cause: TerminationCause, phase: UInt8? = nil, frontend: FrontendState,
                      process: ProcessState, now: Int64) {
        guard !log.written, let logging = log.route.logging, !(logging.dontLogNull && session.toServer.total == 0) else { return }
        write(log, session, cause: cause, phase: phase ?? session.state.terminationPhase, atConnect: false, frontend: frontend, process: process, now: now)
    }

    private func write(_ log: SessionLog, _ session: Session, cause: TerminationCause, phase: UInt8, atConnect: Bool, frontend: FrontendState,
                       process: ProcessState, now: Int64) {
        guard let logging = log.route.logging, let format = log.route.format else { return }
        // HAProxy's `strm_log`: an error, a timeout, a retry or a redispatch is not normal.
        let retried = session.policy.backend.retries != session.retriesLeft
        let failed = cause != .normal || retried || log.redispatched
        if logging.dontLogNormal && !failed { return }
        // `set-log-level`: this level, whatever `log-separate-errors` says, or no line (`silent`).
        let override = session.context?.logLevel ?? 0
        if override < 0 { return }
        // HAProxy's `strm_log` builds the unique ID now if nothing asked for it before.
        _ = log.uniqueID(session, frontend: frontend, process: process, now: now, end: cause, phase: phase, atConnect: atConnect)
        let line = log.line(format, session, frontend: frontend, end: cause, phase: phase, now: now,
                            asap: logging.logAsap, atConnect: atConnect, process: process, clock: &clock)
        frontend.logCount.wrappingAdd(1, ordering: .relaxed)
        self.log(log.route, level: override > 0 ? Int(override) - 1 : logging.separateErrors && failed ? 3 : 6, bytes: line)
    }
}

extension SessionContext.CloseReason {
    /// Refused by a rule or for its PROXY header: the proxy ended it; a socket error: the client.
    var terminationCause: TerminationCause {
        if case .clientError = self { return .client }
        return .proxy
    }
}
