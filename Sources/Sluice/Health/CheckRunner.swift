import CShims
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Runs every server's health checks on one reactor, without blocking it: each check is a
/// non-blocking connection with its own deadline, at most one per server at a time.
///
/// Confined to the reactor's thread. Other threads reach it through `WorkerCommand`s.
final class CheckRunner {
    /// One checked server and its check in progress.
    struct Target {
        /// A server's health check, or its agent check (`agent-check`).
        enum Role { case health, agent }
        let role: Role
        let backend: BackendState
        let server: ServerState
        let plan: CheckPlan
        let proto: CheckProtocol
        /// A plain tcp-check ruleset's words for connection failures and a connect-only pass.
        var rulesetWords: CheckProtocol.RulesetWords? = nil
        /// `timeout check`: once connected, the rest of the check must finish within it; 0 = unset.
        let checkTimeoutMs: Int64
        /// `timeout connect`, which bounds the connect when `timeout check` is set.
        let connectTimeoutMs: Int64
        /// `option log-health-checks`: every change of the result or the health is logged.
        let logsEveryChange: Bool
        /// `check-ssl`: the server's TLS settings, loaded (or why they would not load: each check
        /// then fails, L6RSP); nil for plain checks (and agents).
        let tlsContext: Result<TLSClientContext, SluiceError>?
        var counter: HealthCounter
        var nextAt: Int64
        // The probe in progress.
        var generation: UInt32 = 0
        var fd: CInt = -1
        var connected = false
        /// The TLS session over `fd`; `connected` waits for its handshake, which HAProxy counts
        /// in the connection (its timeout is the connect's, L6TOUT).
        var tls: TLSClient?
        var started: Int64 = 0
        var deadline: Int64 = 0
        var out: [UInt8] = []
        var outOffset = 0
        var reply: [UInt8] = []
        var step = 0
        var peerClosed = false
        /// What a protocol check's last judgment said of a success.
        var success: CheckResult?
        /// `check-via-socks4`: the address to ask the server's `socks4` proxy for, until the
        /// request is sent; then `socksAwaiting` until it grants.
        var socksDestination: SocketAddress?
        var socksAwaiting = false
    }

    /// Epoll and timer tokens of checks use `Token.Kind.worker` with indices from here on.
    static let firstIndex = 1024
    /// The timer that rebuilds schedules while servers ramp up (`slowstart`).
    static let rampIndex = firstIndex - 1

    /// Servers in a slow start, and whether the ramp timer is armed.
    private var ramping: [(BackendState, ServerState)] = []
    private var rampArmed = false

    /// As HAProxy, the weight is raised in twenty steps over the slow start (at most every 100 ms).
    private func armRamp() {
        guard !rampArmed, !ramping.isEmpty else { return }
        let step = ramping.map { max($0.1.slowStartMs.load(ordering: .relaxed) / 20, 100) }.min() ?? 1000
        rampArmed = true
        reactor.arm(at: reactor.now + step, token: Token(.worker, index: Self.rampIndex).raw)
    }

    /// A ramp that began elsewhere (a server leaving maintenance): stepped with the others.
    func warmUp(_ server: ServerState, of backend: BackendState) {
        if !ramping.contains(where: { $0.1 === server }) { ramping.append((backend, server)) }
        armRamp()
    }

    private func rampTick() {
        let now = reactor.now
        for (backend, _) in ramping { backend.republish() }
        ramping.removeAll { pair in
            let server = pair.1
            let done = now - server.rampStart.load(ordering: .relaxed) >= server.slowStartMs.load(ordering: .relaxed) || !server.isUsable
            if done { server.rampStart.store(0, ordering: .relaxed) }
            return done
        }
        armRamp()
    }

    var targets: [Target] = []
    let reactor: any Reactor
    /// Probe generations come from one counter, so a token of an abandoned probe (whose poll
    /// removal may still be in flight) is never reused by a later one.
    private var nextGeneration: UInt32 = 0
    /// Where replies are read before they join a probe's `reply`: one buffer for every check.
    private var readBuffer = [UInt8](repeating: 0, count: 4096)
    private let logger: Logger
    private let spreadPercent: Int
    /// `tune.rcvbuf.server`/`tune.sndbuf.server`, which HAProxy applies to its checks too.
    private let serverBuffers: SocketBufferSizes
    /// `max-spread-checks` in milliseconds (`Int64.max`: none).
    private let maxSpreadMs: Int64
    /// `pp2-never-send-local`.
    private let neverSendLocal: Bool
    private let broadcast: @Sendable (WorkerCommand) -> Void

    init(reactor: any Reactor, spreadChecks: Int, maxSpread: Duration? = nil, neverSendLocal: Bool = false,
         serverBuffers: SocketBufferSizes = SocketBufferSizes(), logger: Logger, broadcast: @escaping @Sendable (WorkerCommand) -> Void) {
        self.maxSpreadMs = maxSpread?.milliseconds ?? .max
        self.neverSendLocal = neverSendLocal
        self.reactor = reactor
        self.logger = logger
        self.spreadPercent = spreadChecks
        self.serverBuffers = serverBuffers
        self.broadcast = broadcast
    }

    /// `node` (global), for `http-check send-state`.
    private var node = ""

    /// Sets the servers to check (at start and on each reload). A server that was already checked
    /// keeps its health; checks in progress are abandoned and every check is scheduled anew.
    func configure(_ backends: [(BackendState, Backend)], node: String = GlobalKeywords.systemHostName) {
        self.node = node
        var previous: [ObjectIdentifier: HealthCounter] = [:]
        for t in targets.indices {
            if targets[t].role == .health { previous[ObjectIdentifier(targets[t].server)] = targets[t].counter }
            abandon(t)
        }
        targets.removeAll()
        // Servers with the same TLS settings share one context (a CA bundle is loaded once).
        var contexts: [CheckTLS: TLSClientContext] = [:]
        for (state, config) in backends {
            // The protocol was validated when the configuration was resolved.
            guard case .success(let proto) = CheckProtocol.make(config.healthCheck) else { continue }
            for server in state.servers {
                if let agent = server.agentPlan {
                    targets.append(Target(
                        role: .agent, backend: state, server: server, plan: agent, proto: .agent(send: server.configuration.agent?.send ?? []),
                        checkTimeoutMs: config.checkTimeout?.milliseconds ?? 0, connectTimeoutMs: config.effectiveConnectTimeout.milliseconds,
                        logsEveryChange: config.logHealthChecks, tlsContext: nil,
                        counter: HealthCounter(rise: 1, fall: 1, value: server.agentHealth.load(ordering: .relaxed)), nextAt: 0))
                }
                guard let plan = server.checkPlan else { continue }
                // A new server starts at `rise` (UP), or where a server-state file put it.
                var counter = HealthCounter(rise: plan.rise, fall: plan.fall, value: min(max(server.health.load(ordering: .relaxed), 0), plan.rise + plan.fall - 1))
                if let old = previous[ObjectIdentifier(server)] {
                    counter = HealthCounter(rise: plan.rise, fall: plan.fall, value: old.isUp ? plan.rise + plan.fall - 1 : 0)
                }
                var tlsContext: Result<TLSClientContext, SluiceError>?
                if let tls = server.configuration.check?.tls {
                    if let shared = contexts[tls] {
                        tlsContext = .success(shared)
                    } else {
                        do {
                            let context = try TLSClientContext(tls)
                            contexts[tls] = context
                            tlsContext = .success(context)
                        } catch {
                            // The files loaded when the configuration was checked; they may have gone since.
                            logger.error("backend '\(state.name)' server '\(server.name)': TLS for its checks: \(error); its checks fail until a reload")
                            tlsContext = .failure(error)
                        }
                    }
                }
                targets.append(Target(
                    role: .health, backend: state, server: server, plan: plan, proto: proto,
                    checkTimeoutMs: config.checkTimeout?.milliseconds ?? 0,
                    connectTimeoutMs: config.effectiveConnectTimeout.milliseconds,
                    logsEveryChange: config.logHealthChecks, tlsContext: tlsContext, counter: counter, nextAt: 0))
                targets[targets.count - 1].rulesetWords = CheckProtocol.RulesetWords(config.healthCheck)
            }
        }
        if started { start() }
    }

    /// `disable health` / `enable health`: stop or resume one server's checks.
    func toggled(_ server: ServerState, agent: Bool = false) {
        let role: Target.Role = agent ? .agent : .health
        guard let t = targets.firstIndex(where: { $0.server === server && $0.role == role }) else { return }
        abandon(t)
        let enabled = agent ? server.agentEnabled.load(ordering: .relaxed) : server.checksEnabled.load(ordering: .relaxed)
        if enabled {
            targets[t].nextAt = reactor.now
            reactor.arm(at: targets[t].nextAt, token: token(t))
        } else {
            schedule(t)
        }
    }

    /// Drops a check in progress without a verdict.
    private func abandon(_ t: Int) {
        closeProbe(t)
        setRunning(t, false)
        bumpGeneration(t)
    }

    /// Closes the probe's TLS session and socket, if any.
    private func closeProbe(_ t: Int) {
        targets[t].tls?.close()
        targets[t].tls = nil
        if targets[t].fd >= 0 {
            reactor.unwatch(targets[t].fd, token: token(t))
            if case .external = targets[t].proto { ExternalCheckProcess.release(targets[t].fd) } else { closeDescriptor(targets[t].fd) }
            targets[t].fd = -1
        }
    }

    /// Whether a probe of `t` runs now (`check_status`'s or `agent_status`'s "* ").
    private func setRunning(_ t: Int, _ running: Bool) {
        let server = targets[t].server
        switch targets[t].role {
        case .health: server.checkStorage.withLock { $0.running = running }
        case .agent: server.agentStorage.withLock { $0.running = running }
        }
    }

    private func bumpGeneration(_ t: Int) {
        nextGeneration &+= 1
        targets[t].generation = nextGeneration
    }

    private var started = false

    var isEmpty: Bool { targets.isEmpty }

    /// Schedules the first checks, spread over the first interval (at most one second, and at most
    /// `max-spread-checks`) so that many servers are not checked in the same instant.
    func start() {
        started = true
        let now = reactor.now
        for t in targets.indices {
            let window = min(targets[t].plan.intervalMs, 1000, maxSpreadMs)
            targets[t].nextAt = now + window * Int64(t) / Int64(max(targets.count, 1))
            reactor.arm(at: targets[t].nextAt, token: token(t))
        }
    }

    /// Closes checks in progress (at shutdown).
    func stop() {
        for t in targets.indices { abandon(t) }
    }

    func token(_ t: Int) -> UInt64 {
        Token(.worker, index: Self.firstIndex + t, generation: targets[t].generation).raw
    }

    // MARK: Events

    func handleTimer(index: Int) {
        if index == Self.rampIndex {
            rampArmed = false
            rampTick()
            return
        }
        let t = index - Self.firstIndex
        guard targets.indices.contains(t) else { return }
        let now = reactor.now
        if targets[t].fd >= 0 {
            if now >= targets[t].deadline {
                if case .external = targets[t].proto { return processTimedOut(t) }
                var info = ""
                var status = CheckResult.Status.layer7Timeout
                if targets[t].connected, case .tcp(let steps) = targets[t].proto, targets[t].step < steps.count {
                    switch steps[targets[t].step] {
                    case .expect(_, _, let report): info = report.timeoutInfo
                    case .judge(let judge, _): status = judge.timeoutStatus
                    default: break
                    }
                }
                if !targets[t].connected && targets[t].tls == nil { info = connectFailure(t, "") }
                finish(t, CheckResult(status: targets[t].connected ? status : targets[t].tls != nil ? .layer6Timeout : .layer4Timeout, info: info))
            }
        } else if now >= targets[t].nextAt {
            begin(t)
        }
    }

    func handleEvent(index: Int, generation: UInt32, events: UInt32) {
        let t = index - Self.firstIndex
        guard targets.indices.contains(t), targets[t].fd >= 0, targets[t].generation & 0x3FFF_FFFF == generation else { return }
        if case .external = targets[t].proto { return processExited(t) }
        if targets[t].socksAwaiting {
            // The proxy's answer, as HAProxy reports a failed one: SOCKERR with its reason.
            do {
                guard try SOCKS4.readReply(targets[t].fd) else { return }
            } catch {
                return finish(t, CheckResult(status: .socketError, info: connectFailure(t, error.message)))
            }
            targets[t].socksAwaiting = false
            return transportConnected(t)
        }
        if targets[t].tls != nil && !targets[t].connected {
            handshake(t)
            return
        }
        if !targets[t].connected {
            guard events & (CShims_EPOLLOUT | CShims_EPOLLERR | CShims_EPOLLHUP) != 0 else { return }
            if let code = Socket.pendingError(targets[t].fd) {
                finish(t, CheckResult(status: .layer4Connection, info: connectFailure(t, String(cString: strerror(code)))))
                return
            }
            transportConnected(t)
            return
        }
        talk(t)
    }

    /// A failed connection's reason as HAProxy gives it, with a tcp-check ruleset's step after it.
    private func connectFailure(_ t: Int, _ reason: String) -> String {
        reason + (targets[t].rulesetWords?.connectFailure ?? "")
    }

    /// `observe layer4` reached `error-limit` on traffic: apply the server's `on-error` action.
    func observedFailure(of observed: ServerState) {
        guard let t = targets.firstIndex(where: { $0.server === observed && $0.role == .health }) else { return }
        let server = targets[t].server
        let reason = CheckResult(status: .layer4Connection, info: "\(server.configuration.errorLimit) consecutive connection errors on traffic (observe layer4)")
        switch server.configuration.onError {
        case .fastInterval:
            break
        case .failCheck:
            record(t, reason)
        case .suddenDeath:
            targets[t].counter.suddenDeath()
            publish(t, transition: nil, reason)
        case .markDown:
            let transition = targets[t].counter.markDown()
            publish(t, transition: transition, reason)
        }
        // In every case, check again soon (HAProxy switches to fastinter).
        if targets[t].fd < 0 {
            targets[t].nextAt = min(targets[t].nextAt, reactor.now + targets[t].plan.fastIntervalMs)
            reactor.arm(at: targets[t].nextAt, token: token(t))
        }
    }

    // MARK: One check

    private func begin(_ t: Int) {
        let server = targets[t].server
        // Maintenance and `disable health` stop health checks, `disable agent` agent checks (which
        // go on in maintenance: an agent may end it). Look again later in case that changes.
        let paused = targets[t].role == .health
            ? server.admin == .maintenance || !server.checksEnabled.load(ordering: .relaxed)
            : !server.agentEnabled.load(ordering: .relaxed)
        if paused {
            schedule(t)
            return
        }
        bumpGeneration(t)
        setRunning(t, true)
        targets[t].started = reactor.now
        targets[t].connected = false
        targets[t].out = []
        targets[t].outOffset = 0
        targets[t].reply = []
        targets[t].step = 0
        targets[t].success = nil
        targets[t].peerClosed = false
        targets[t].socksDestination = nil
        targets[t].socksAwaiting = false
        let whole = targets[t].plan.intervalMs
        // HAProxy: without `timeout check`, `inter` bounds the whole check; with it, the connect is
        // bounded by min(timeout connect, inter) and the rest by `timeout check`.
        targets[t].deadline = reactor.now + (targets[t].checkTimeoutMs > 0 ? min(targets[t].connectTimeoutMs, whole) : whole)
        if case .external(let check) = targets[t].proto { return startProcess(t, check) }  // the same deadline, as HAProxy's
        let fd: CInt
        let done: Bool
        do {
            // The server's plan as it is now: `set server … check-addr|check-port` changes it.
            let settings = server.connectSettings
            let plan = (targets[t].role == .health ? server.checkPlan : server.agentPlan) ?? targets[t].plan
            let destination = plan.address(serverAddress: server.address)
            // `check-via-socks4` (or a connect rule's `via-socks4`): through the server's proxy,
            // asked for the check's destination (never an agent check's, as HAProxy).
            let proxy = plan.viaSOCKS ? settings.socks4 : nil
            targets[t].socksDestination = proxy == nil ? nil : destination
            (fd, done) = try Socket.connect(to: proxy ?? destination,
                                            from: settings.source ?? targets[t].backend.settings.source, buffers: serverBuffers,
                                            userTimeoutMs: settings.userTimeoutMs, namespace: settings.namespace)
        } catch {
            // Failed inside connect(2), not after it: HAProxy's SOCKERR (`chk_report_conn_err`
            // without CO_FL_WAIT_L4_CONN), where a refusal that comes back later is L4CON.
            finish(t, CheckResult(status: .socketError, info: connectFailure(t, error.reason)))
            return
        }
        targets[t].fd = fd
        do {
            try reactor.register(fd, token: token(t), events: CShims_EPOLLIN | CShims_EPOLLOUT | CShims_EPOLLRDHUP | CShims_EPOLLET)
        } catch {
            finish(t, CheckResult(status: .layer4Connection, info: error.reason))
            return
        }
        reactor.arm(at: targets[t].deadline, token: token(t))
        if done { transportConnected(t) }
    }

    /// The TCP connection is made: the check starts, or first its SOCKS4 handshake or its TLS one.
    private func transportConnected(_ t: Int) {
        if let destination = targets[t].socksDestination {
            do {
                try SOCKS4.sendRequest(targets[t].fd, for: destination)
            } catch {
                return finish(t, CheckResult(status: .socketError, info: connectFailure(t, error.message)))
            }
            targets[t].socksDestination = nil
            targets[t].socksAwaiting = true
            return
        }
        let context: TLSClientContext
        switch targets[t].tlsContext {
        case nil: return connected(t)
        case .failure(let error)?: return finish(t, CheckResult(status: .layer6Response, info: error.message))
        case .success(let loaded)?: context = loaded
        }
        // `check-send-proxy`: the PROXY header precedes the ClientHello, in the clear, as HAProxy
        // sends it (a few bytes on a fresh socket: one send takes them).
        let header = proxyHeader(t)
        if !header.isEmpty { _ = try? header.withUnsafeBytes { try Socket.send(targets[t].fd, from: $0) } }
        guard let tls = TLSClient(context, fd: targets[t].fd) else {
            return finish(t, CheckResult(status: .layer6Response, info: "cannot start a TLS session"))
        }
        targets[t].tls = tls
        handshake(t)
    }

    /// Advances the TLS handshake; failures are HAProxy's L6RSP with its words for the cause.
    private func handshake(_ t: Int) {
        guard let tls = targets[t].tls else { return }
        do {
            if try tls.handshake() { connected(t) }
        } catch {
            finish(t, CheckResult(status: .layer6Response, info: error.failure.info))
        }
    }

    private func connected(_ t: Int) {
        targets[t].connected = true
        if targets[t].checkTimeoutMs > 0 {
            targets[t].deadline = reactor.now + targets[t].checkTimeoutMs
            reactor.arm(at: targets[t].deadline, token: token(t))
        }
        // `check-send-proxy`: the server expects a PROXY header on every connection, checks included
        // (not its agent's, as HAProxy).
        targets[t].out = targets[t].role == .health && targets[t].tls == nil ? proxyHeader(t) : []
        switch targets[t].proto {
        case .http(let request, _, _, let stateAt, _):
            targets[t].out += stateAt.map { ServerStateHeader.insert(into: request, at: $0, targets[t].server, of: targets[t].backend, node: node, now: reactor.now) } ?? request
        case .agent(let send):
            targets[t].out += send
        case .tcp(let steps) where !steps.isEmpty:
            break
        case .connect, .tcp, .external:  // (an external check makes no connection)
            // A connect check passes once connected; the header, if any, goes out first (a few
            // bytes on a fresh socket: one send takes them), as HAProxy does.
            if !targets[t].out.isEmpty { _ = targets[t].out.withUnsafeBytes { send(t, $0) } }
            // Over TLS the handshake is what passed: HAProxy's L6OK.
            finish(t, targets[t].tls == nil ? CheckResult(status: .layer4OK, info: targets[t].rulesetWords?.passInfo ?? "") : CheckResult(status: .layer6OK))
            return
        }
        talk(t)
    }

    /// Writes to the probe's connection, through its TLS session if it has one; nil on a failure.
    private func send(_ t: Int, _ bytes: UnsafeRawBufferPointer) -> IOResult<Int>? {
        if let tls = targets[t].tls { return tls.send(from: bytes) }
        return try? Socket.send(targets[t].fd, from: bytes)
    }

    /// Reads from the probe's connection, through its TLS session if it has one; nil on a failure.
    private func receive(_ t: Int, _ buffer: UnsafeMutableRawBufferPointer) -> IOResult<Int>? {
        if let tls = targets[t].tls { return tls.receive(into: buffer) }
        return try? Socket.receive(targets[t].fd, into: buffer)
    }

    /// HAProxy 2.6's header on a check connection (`Server.checksSendProxy` says when): v1 names
    /// the check connection's own addresses; v2 sends the LOCAL command (no addresses), as its
    /// `pp2-never-send-local` note describes, unless that option asks for the PROXY command with
    /// the check connection's addresses. The server's `proxy-v2-options` apply (no unique ID: a
    /// check is no session).
    private func proxyHeader(_ t: Int) -> [UInt8] {
        let server = targets[t].server.configuration
        switch targets[t].plan.connectHeader {
        case .never: return []
        case .server: guard server.checksSendProxy else { return [] }
        case .always: break
        }
        let version = server.proxyProtocol ?? .v1  // `check-send-proxy` alone: HAProxy's v1
        let extras = ProxyHeader.Extras(options: server.proxyV2Options)
        if version == .v2 && !neverSendLocal { return ProxyHeader.bytes(.v2, source: nil, destination: nil, extras: extras) }
        guard let local = try? Socket.localAddress(targets[t].fd), let remote = try? Socket.peerAddress(targets[t].fd) else { return [] }
        return ProxyHeader.bytes(version, source: local, destination: remote, extras: extras)
    }

    /// Sends what is queued, reads what arrived, and judges when it can.
    private func talk(_ t: Int) {
        while true {
            if case .tcp(let steps) = targets[t].proto {
                // Queue every send up to the next expectation. As in HAProxy, a send starts a new
                // exchange: expectations before it saw the reply so far; those after see what follows.
                while targets[t].step < steps.count {
                    switch steps[targets[t].step] {
                    case .send(let bytes): targets[t].out += bytes
                    case .sendClientHello: targets[t].out += ProtocolCheck.clientHello(unixTime: UInt32(truncatingIfNeeded: time(nil)))
                    default: break
                    }
                    guard steps[targets[t].step].isSend else { break }
                    targets[t].reply.removeAll()
                    targets[t].step += 1
                }
            }
            if targets[t].outOffset < targets[t].out.count {
                let result = targets[t].out[targets[t].outOffset...].withUnsafeBytes { send(t, $0) }
                switch result {
                case .processed(let n)?: targets[t].outOffset += n
                case .wouldBlock?: break
                case nil:
                    finish(t, CheckResult(status: .layer7Response, info: "connection closed while sending"))
                    return
                }
            }
            var progressed = false
            while targets[t].reply.count < CheckProtocol.maxReply && !targets[t].peerClosed {
                let result = readBuffer.withUnsafeMutableBytes { receive(t, $0) }
                switch result {
                case .processed(0)?, nil: targets[t].peerClosed = true
                case .processed(let n)?: targets[t].reply += readBuffer[0..<n]; progressed = true
                case .wouldBlock?: break
                }
                if case .wouldBlock? = result { break }
            }
            let complete = targets[t].peerClosed || targets[t].reply.count >= CheckProtocol.maxReply
            switch targets[t].proto {
            case .connect, .external:
                return
            case .agent:
                switch AgentReply.read(targets[t].reply, closed: complete) {
                case .incomplete: return
                case .truncated: finishAgent(t, nil)
                case .line(let reply): finishAgent(t, reply)
                }
                return
            case .http(_, let expectation, let regex, _, let disableOn404):
                let conditional404 = disableOn404 && targets[t].server.operational.isUp
                if let verdict = CheckProtocol.judgeHTTP(targets[t].reply, complete: complete, expectation: expectation, regex: regex, conditional404: conditional404) {
                    finish(t, verdict)
                }
                return
            case .tcp(let steps):
                guard targets[t].step < steps.count else {
                    finish(t, targets[t].success ?? CheckResult(status: .layer7OK, info: "(tcp-check)"))
                    return
                }
                if case .judge(let judge, let step) = steps[targets[t].step] {
                    if targets[t].reply.isEmpty && complete {
                        finish(t, CheckResult(status: judge.errorStatus, code: judge.errorStatus == .layer7Status ? 0 : nil,
                                              info: "TCPCHK got an empty response at step \(step)"))
                        return
                    }
                    switch judge.judge(targets[t].reply, complete: complete) {
                    case .wait: return
                    case .next: targets[t].step += 1
                    case .pass(let result):
                        targets[t].success = result
                        targets[t].step += 1
                    case .fail(let result):
                        finish(t, result)
                        return
                    }
                    continue
                }
                guard case .expect(let matcher, let negated, let report) = steps[targets[t].step] else { continue }
                let matched = matcher.matches(targets[t].reply)
                if negated ? (!matched && (complete || progressed)) : matched {
                    targets[t].step += 1
                    continue  // next sends or expectations
                }
                if negated && matched || complete {
                    // HAProxy's words (tcpcheck_expect_onerror_message).
                    finish(t, CheckResult(status: .layer7Response, info: (negated ? "TCPCHK matched unwanted content" : "TCPCHK did not match content") + report.mismatch + report.mismatchSuffix))
                }
                return
            }
        }
    }

    /// An agent's line (nil: it closed before ending one, and the previous verdict stands, as in
    /// HAProxy) takes effect, then ends the probe.
    private func finishAgent(_ t: Int, _ reply: AgentReply?) {
        let server = targets[t].server
        // An agent disabled while its check ran: the answer is ignored whole, as HAProxy.
        guard server.agentEnabled.load(ordering: .relaxed) else { return finish(t, CheckResult(status: .checked, info: "agent disabled")) }
        let result = reply?.apply(to: server, of: targets[t].backend)
            ?? CheckResult(status: server.agentStorage.withLock { $0.last.status }, info: "Ignoring incomplete line from agent")
        finish(t, result)
    }

    /// Ends the probe: closes its socket, records the result, schedules the next one.
    func finish(_ t: Int, _ result: CheckResult) {
        closeProbe(t)
        bumpGeneration(t)  // late events and timers of this probe no longer match
        var result = result
        result.durationMs = reactor.now - targets[t].started
        record(t, result)
        schedule(t)
    }

    private func schedule(_ t: Int) {
        var interval = targets[t].plan.interval(for: targets[t].counter)
        if spreadPercent > 0 {
            let spread = interval * Int64(spreadPercent) / 100
            interval += Int64.random(in: -spread...spread)
        }
        targets[t].nextAt = reactor.now + max(interval, 1)
        reactor.arm(at: targets[t].nextAt, token: token(t))
    }

    /// Applies a result to the health counter and publishes any change.
    private func record(_ t: Int, _ result: CheckResult) {
        let server = targets[t].server
        if targets[t].role == .agent {
            recordAgent(t, result)
            return
        }
        let previous = server.checkStorage.withLock { check in
            // A probe still runs when a failure observed on traffic is recorded (`on-error fail-check`).
            defer { check = CheckProgress(last: result, running: targets[t].fd >= 0) }
            return check.last.status
        }
        // The runtime API may have set the health since the last check (`set server … health`).
        let plan = targets[t].plan
        targets[t].counter = HealthCounter(rise: plan.rise, fall: plan.fall, value: min(max(server.health.load(ordering: .relaxed), 0), plan.rise + plan.fall - 1))
        let health = targets[t].counter.value
        let transition: HealthCounter.Transition?
        if result.status.passed {
            transition = targets[t].counter.success()
        } else {
            server.failedChecks.wrappingAdd(1, ordering: .relaxed)
            transition = targets[t].counter.failure()
        }
        if targets[t].logsEveryChange && (result.status != previous || targets[t].counter.value != health) {
            logCheck(t, result)
        }
        publish(t, transition: transition, result)
    }

    /// `option log-health-checks`: HAProxy's line for a check whose result or effect changed.
    private func logCheck(_ t: Int, _ result: CheckResult) {
        let server = targets[t].server, counter = targets[t].counter
        let state = counter.isUp ? (server.weight > 0 ? "UP" : "DRAIN") : "DOWN"
        let line = "\(targets[t].role == .agent ? "Agent" : "Health") check for \(server.isBackup ? "backup " : "")server \(targets[t].backend.name)/\(server.name) \(result.status == .layer7OKConditional ? "conditionally " : "")\(result.status.passed ? "succeeded" : "failed"), \(result), status: \(counter.progress) \(state)."
        logger.warning("\(line)")
        targets[t].backend.announce(level: 5, line, mailLevel: 6)
    }

    private func publish(_ t: Int, transition: HealthCounter.Transition?, _ result: CheckResult) {
        let server = targets[t].server
        server.health.store(targets[t].counter.value, ordering: .relaxed)
        let before = server.operational
        // HAProxy's check_notify_*: DOWN once the counter says so; a conditional pass (a 404 with
        // `http-check disable-on-404`) soft-stops an UP server, a pass brings it back; a failure
        // that leaves it UP changes nothing, NOLB included.
        var after: OperationalState
        if !targets[t].counter.isUp {
            after = .stopped
        } else if result.status == .layer7OKConditional {
            after = server.admin == .maintenance ? before : .stopping
        } else if result.status.passed || !before.isUp {
            after = .running
        } else {
            after = before
        }
        var transition = transition
        if server.agentPlan != nil {
            // An agent that said down keeps the server DOWN whatever its checks say (HAProxy's
            // check_notify_success), and a change is what the server's state did.
            if server.agentHoldsDown && after.isUp && !before.isUp { after = before }
            transition = before.isUp == after.isUp ? nil : after.isUp ? .wentUp : .wentDown
        }
        change(t, from: before, to: after, transition: transition, result)
    }

    /// Records an agent check's result: `down`, `fail` or `stopped` (L7STS) take the server DOWN;
    /// `up` (L7OK) brings it UP if its health check agrees and it is not in maintenance; anything
    /// else (no health word, the agent unreachable or silent) changes no health (HAProxy 2.6).
    private func recordAgent(_ t: Int, _ result: CheckResult) {
        let server = targets[t].server
        let previous = server.agentStorage.withLock { agent in
            defer { agent = CheckProgress(last: result, running: false) }
            return agent.last.status
        }
        // The runtime API may have forced the agent's health since the last answer.
        targets[t].counter = HealthCounter(rise: 1, fall: 1, value: server.agentHealth.load(ordering: .relaxed))
        let health = targets[t].counter.value
        switch result.status {
        case .layer7OK: _ = targets[t].counter.success()
        case .layer7Status: _ = targets[t].counter.failure()
        default: break
        }
        server.agentHealth.store(targets[t].counter.value, ordering: .relaxed)
        if targets[t].logsEveryChange && (result.status != previous || targets[t].counter.value != health) {
            logCheck(t, result)
        }
        let before = server.operational
        var after = before
        if result.status == .layer7Status {
            after = .stopped
        } else if result.status == .layer7OK && server.admin != .maintenance {
            let checked = server.checkPlan.flatMap { plan in
                server.checksEnabled.load(ordering: .relaxed) ? HealthCounter(rise: plan.rise, fall: plan.fall, value: server.health.load(ordering: .relaxed)) : nil
            }
            // Only the health checks move a server out of NOLB (HAProxy's check_notify_success).
            if (checked?.isUp ?? true) && before != .stopping { after = .running }
        }
        let transition: HealthCounter.Transition? = before.isUp == after.isUp ? nil : after.isUp ? .wentUp : .wentDown
        change(t, from: before, to: after, transition: transition, result)
    }

    /// Applies a server's new health state, and logs and announces a transition.
    private func change(_ t: Int, from before: OperationalState, to after: OperationalState, transition: HealthCounter.Transition?, _ result: CheckResult) {
        let backend = targets[t].backend
        let server = targets[t].server
        if before != after {
            if !before.isUp && after.isUp && server.slowStartMs.load(ordering: .relaxed) > 0 {
                // Back UP: `slowstart` ramps the weight from here (the schedule is rebuilt as it grows).
                server.rampStart.store(reactor.now, ordering: .relaxed)
                warmUp(server, of: backend)
            }
            backend.setOperational(after, of: server, reason: "\(result)")
        }
        let soft = transition == nil && before != after && before.isUp && after.isUp
        guard transition != nil || soft else { return }
        // With `option log-health-checks` the check's line already gave the reason (as HAProxy).
        let reason = targets[t].logsEveryChange ? "" : ", \(result)"
        if soft {
            // Into NOLB and out of it (HAProxy's srv_update_status words).
            server.lastChange.store(reactor.now, ordering: .relaxed)
            let verb = after == .stopping ? "is stopping" : "is UP"
            let line = "\(server.isBackup ? "Backup " : "")Server \(backend.name)/\(server.name) \(verb)\(reason)\(backend.serversStatus(after: server, down: false))"
            logger.notice("\(line)")
            backend.announce(level: 5, line, mailLevel: after == .stopping ? nil : 5)  // HAProxy mails UP, not "is stopping"
        }
        guard let transition else { return }
        server.lastChange.store(reactor.now, ordering: .relaxed)
        switch transition {
        case .wentDown:
            server.downTransitions.wrappingAdd(1, ordering: .relaxed)
            server.downSince.store(reactor.now, ordering: .relaxed)
            let down = "\(server.isBackup ? "Backup " : "")Server \(backend.name)/\(server.name) is DOWN\(reason)\(backend.serversStatus(after: server, down: true))"
            logger.warning("\(down)")
            backend.announce(level: 1, down, mailLevel: before == .stopping ? 5 : 1)  // a paused server's fall is a notice (HAProxy)
            if backend.hasNoUsableServer {
                logger.error("\(backend.settings.proxyType) '\(backend.name)' has no server available!")
                backend.announceNoServer()
            }
            if server.configuration.shutdownSessionsWhenDown {
                broadcast(.shutdownSessions(server))
            }
        case .wentUp:
            let since = server.downSince.exchange(0, ordering: .relaxed)
            if since > 0 { server.downtimeMs.wrappingAdd(reactor.now - since, ordering: .relaxed) }
            let up = "\(server.isBackup ? "Backup " : "")Server \(backend.name)/\(server.name) is UP\(reason)\(backend.serversStatus(after: server, down: false))"
            logger.notice("\(up)")
            backend.announce(level: 5, up, mailLevel: 5)
            if server.configuration.shutdownBackupSessionsWhenUp && !server.isBackup {
                for backup in backend.servers where backup.isBackup {
                    broadcast(.shutdownSessions(backup))
                }
            }
        }
    }
}

extension CheckProtocol.TCPStep {
    var isSend: Bool {
        switch self {
        case .send, .sendClientHello: true
        case .expect, .judge: false
        }
    }
}
