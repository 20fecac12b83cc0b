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

/// What `option tcplog` needs of a session beyond what forwarding keeps: the client's address, when
/// it came, and the timers of its way to a server. Allocated only for frontends that log with
/// `option tcplog` (one pointer in the session otherwise).
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

    /// HAProxy counts the session itself among those processed up to its turn: the first in a
    /// queue logs 1.
    func queued(ahead: Int, inServerQueue: Bool) {
        if inServerQueue { serverQueuePosition = ahead + 1 } else { backendQueuePosition = ahead + 1 }
    }

    init(route: LogRoute, peer: SocketAddress?, now: Int64) {
        self.route = route
        self.peer = peer
        acceptedAt = now
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        acceptedSeconds = Int(time.tv_sec)
        acceptedMillis = Int(time.tv_nsec / 1_000_000)
    }

    /// The first connect attempt (retries and redispatches count into Tc).
    func connectStarting(now: Int64) {
        if connectStartedAt < 0 { connectStartedAt = now }
    }

    /// HAProxy's TCP log line: `%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq`.
    func tcplogLine(frontend: String, backend: String?, server: String?, end: TerminationCause, phase: UInt8, now: Int64,
                    bytesToClient: Int, counts: (process: Int, frontend: Int, backend: Int, server: Int), retries: Int,
                    client address: SocketAddress? = nil, clock: inout LogClock) -> [UInt8] {
        let tw = connectStartedAt >= 0 && routedAt >= 0 ? connectStartedAt - routedAt : -1
        let tc = connectedAt >= 0 ? connectedAt - connectStartedAt : -1
        var line = LineBuilder()
        // A PROXY header's source when the client sent one (`accept-proxy`), as HAProxy.
        if let client = address ?? peer { line.append(address: client) } else { line.append("-:-") }
        line.append(" [")
        clock.acceptDate(acceptedSeconds, millis: acceptedMillis, into: &line)
        line.append("] "); line.append(frontend); line.append(byte: 0x20)
        line.append(backend ?? frontend); line.append(byte: 0x2F); line.append(server ?? "<NOSRV>"); line.append(byte: 0x20)
        line.append(Int(tw)); line.append(byte: 0x2F); line.append(Int(tc)); line.append(byte: 0x2F); line.append(Int(now - acceptedAt))
        line.append(byte: 0x20); line.append(bytesToClient); line.append(byte: 0x20)
        line.append(byte: end.rawValue); line.append(byte: end == .normal && phase == 0x44 ? 0x2D : phase); line.append(byte: 0x20)
        line.append(counts.process); line.append(byte: 0x2F); line.append(counts.frontend); line.append(byte: 0x2F)
        line.append(counts.backend); line.append(byte: 0x2F); line.append(counts.server); line.append(byte: 0x2F)
        line.append(retries); line.append(byte: 0x20); line.append(serverQueuePosition); line.append(byte: 0x2F); line.append(backendQueuePosition)
        return line.bytes
    }

    /// Without `option tcplog`, HAProxy logs a TCP session once, at accept.
    static func connectLine(peer: SocketAddress?, local: SocketAddress?, frontend: String) -> [UInt8] {
        var line = LineBuilder()
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

extension Session {
    /// Which side's inactivity timeout ended an established session (the earlier deadline).
    var timedOutSide: TerminationCause {
        let due = inactivityDeadlines
        return due.client <= due.server ? .clientTimeout : .serverTimeout
    }
}

extension LogRing {
    /// A new session of a frontend that logs. Without `option tcplog`, HAProxy's line is written
    /// now; with it, the returned state collects what the line at the end needs.
    func sessionStarted(_ route: LogRoute, client: CInt, peer: SocketAddress?, local: SocketAddress?, frontend: String, now: Int64) -> SessionLog? {
        guard let logging = route.logging else { return nil }
        if logging.style == .tcplog { return SessionLog(route: route, peer: peer, now: now) }
        log(route, level: 6, bytes: SessionLog.connectLine(peer: peer, local: local ?? (try? Socket.localAddress(client)), frontend: frontend))
        return nil
    }

    /// The tcplog line of a session that ends now, unless `option dontlognull` leaves out sessions
    /// whose client sent nothing (whatever ended them, as HAProxy). Called before its server slot
    /// is released (releasing it hands it to a queued session at once): `%ac`/`%fc` count the
    /// session, `%bc`/`%sc` do not — HAProxy's counts at that moment, before its queue moves.
    func sessionEnded(_ log: SessionLog, _ session: Session, cause: TerminationCause, frontend: FrontendState,
                      process: ProcessState, now: Int64) {
        guard let logging = log.route.logging, !(logging.dontLogNull && session.toServer.total == 0) else { return }
        // Before rules chose a backend HAProxy names the frontend; a server that was tried is
        // named even if it refused (`<NOSRV>`: none was ever chosen).
        let backend = log.routedAt >= 0 ? session.backendRef?.takeUnretainedValue() : nil
        let server = session.serverRef?.takeUnretainedValue()
        // Its own slot (held while it had a server connection) is not counted.
        let own = session.server >= 0 ? 1 : 0
        var backendSessions = (backend?.queuedCount.load(ordering: .relaxed) ?? 0) - own
        for s in backend?.servers ?? [] { backendSessions += s.currentSessions.load(ordering: .relaxed) }
        let line = log.tcplogLine(
            frontend: frontend.name, backend: backend?.name, server: server?.name, end: cause,
            phase: session.state.terminationPhase, now: now, bytesToClient: session.toClient.total,
            counts: (process.currentConnections.load(ordering: .relaxed), frontend.currentConnections.load(ordering: .relaxed),
                     max(0, backendSessions), max(0, (server?.currentSessions.load(ordering: .relaxed) ?? 0) - own)),
            retries: session.policy.backend.retries - session.retriesLeft, client: session.context?.source, clock: &clock)
        self.log(log.route, level: 6, bytes: line)
    }
}

extension SessionContext.CloseReason {
    /// Refused by a rule or for its PROXY header: the proxy ended it; a socket error: the client.
    var terminationCause: TerminationCause {
        if case .clientError = self { return .client }
        return .proxy
    }
}
