import CShims
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Connecting a session to its server: the choice (or a queue), the connect, the PROXY header and
/// stick stores once established, and retries and redispatches when it fails.
extension Worker {
    /// Connects session `i` to `target` (whose slot the session already holds when `slotHeld`),
    /// or to the server the backend's algorithm assigns, or queues it when every server is at its
    /// `maxconn`.
    func connect(_ i: Int, to target: ServerState?, slotHeld: Bool = false) {
        let backend = backend(of: i)
        let server: ServerState
        if slotHeld, let target {
            server = target
        } else {
            switch backend.assign(preferring: target, direct: sessions[i].direct, persistent: sessions[i].persistent, redispatch: sessions[i].policy.backend.redispatch,
                                  avoiding: sessions[i].triedServers, hash: sessions[i].sourceHash, waker: self, token: token(.client, i),
                                  priority: sessions[i].context?.priority ?? QueuePriority(), now: reactor.now) {
            case .server(let assigned):
                server = assigned
                if assigned !== target { sessions[i].direct = false }  // its server could not take it after all
            case .queued(let ahead, let inServerQueue):
                sessions[i].log?.queued(ahead: ahead, inServerQueue: inServerQueue)
                sessions[i].state = .queued
                sessions[i].queueDeadline = reactor.now + sessions[i].policy.backend.queueTimeoutMs
                arm(i)
                return
            case .unavailable:
                logger.notice("backend '\(backend.name)' has no server available; closing a client of frontend '\(frontend(of: i).name)'")
                close(i, reset: false, cause: .server)
                return
            }
        }
        sessions[i].serverRef = Unmanaged.passUnretained(server)
        sessions[i].connectStartedAt = reactor.now
        sessions[i].log?.connectStarting(now: reactor.now)
        let fd: CInt
        let connected: Bool
        do {
            let address = try server.address.resolved(client: sessions[i].client, context: sessions[i].context)
            let settings = server.connectSettings
            let source = settings.source ?? sessions[i].policy.backend.source
            // `socks4`: the connection goes to the proxy, which is asked for `address` once made.
            sessions[i].socks = settings.socks4 == nil ? .none : .due
            (fd, connected) = try Socket.connect(to: settings.socks4 ?? address, from: source, presenting: source?.presentedAddress(client: sessions[i].client, context: sessions[i].context),
                                                 fastOpen: settings.fastOpen && settings.socks4 == nil && Socket.hasPendingInput(sessions[i].client), buffers: process.serverBuffers,
                                                 userTimeoutMs: settings.userTimeoutMs, keepAlive: sessions[i].policy.backend.keepAlive,
                                                 namespace: settings.namespace)
        } catch {
            backend.releaseSlot(of: server)
            if error.isDescriptorExhaustion {
                // Keep the client and try again shortly, until `timeout queue`.
                process.noteDescriptorExhaustion()
                logExhaustion("backend '\(backend.name)': no descriptor left for a server connection (\(error)); clients wait up to timeout queue")
                sessions[i].state = .descriptorWait
                sessions[i].phaseDeadline = reactor.now + resumeIntervalMs
                for l in listeners.indices where listeners[l].fd >= 0 { pause(l, .descriptors) }
                arm(i)
            } else {
                server.totalSessions.wrappingAdd(1, ordering: .relaxed)
                connectFailed(i, error.on("\(backend.name)/\(server.name) (\(error.operand ?? server.address.description))"), slotHeld: false)
            }
            return
        }
        server.sessionOpened(at: reactor.now)
        sessions[i].server = fd
        sessions[i].state = .connecting
        sessions[i].phaseDeadline = reactor.now + sessions[i].policy.backend.connectTimeoutMs
        do {
            try reactor.register(fd, token: token(.server, i), events: CShims_EPOLLIN | CShims_EPOLLOUT | CShims_EPOLLRDHUP | CShims_EPOLLET)
        } catch {
            logger.error("backend '\(backend.name)': cannot watch a server connection: \(error)")
            close(i, reset: true, cause: .resource)
            return
        }
        if connected {
            sessions[i].serverWritable = true
            transportReady(i)
        } else {
            arm(i)
        }
    }

    /// A connect completed. Writable without an error or hang-up means it succeeded; only then is
    /// `SO_ERROR` not read (one system call less per connection).
    func connectFinished(_ i: Int, failed: Bool) {
        if failed, let code = Socket.pendingError(sessions[i].server) {
            let server = server(of: i)
            connectFailed(i, SystemError(code: code, call: "connect", operand: "\(backend(of: i).name)/\(server.name) (\(server.address))"))
        } else {
            transportReady(i)
        }
    }

    /// The TCP connection is made. Through a `socks4` proxy the request goes now and the session
    /// stays connecting until the grant (`socksReply`); otherwise it is established.
    func transportReady(_ i: Int) {
        guard sessions[i].socks == .due else { return established(i) }
        let server = server(of: i)
        do {
            guard let destination = try? server.address.resolved(client: sessions[i].client, context: sessions[i].context) else {
                return close(i, reset: true, cause: .client)  // the client left: its original destination is gone
            }
            try SOCKS4.sendRequest(sessions[i].server, for: destination)
        } catch {
            return connectFailed(i, error.asConnectError.on("\(backend(of: i).name)/\(server.name) (\(server.address))"))
        }
        sessions[i].socks = .awaitingReply
    }

    /// The `socks4` proxy said something: a grant establishes the session, a refusal or a hang-up
    /// is a failed connect (retried, as HAProxy's `CO_ER_SOCKS4_*`).
    func socksReply(_ i: Int) {
        do {
            guard try SOCKS4.readReply(sessions[i].server) else { return }
        } catch {
            let server = server(of: i)
            return connectFailed(i, error.asConnectError.on("\(backend(of: i).name)/\(server.name) (\(server.address))"))
        }
        sessions[i].socks = .none
        established(i)
    }

    func established(_ i: Int) {
        let server = server(of: i)
        let configuration = server.configuration
        if configuration.observeLayer4 && server.observedErrors.load(ordering: .relaxed) != 0 {
            server.observedErrors.store(0, ordering: .relaxed)
        }
        if let version = configuration.proxyProtocol {
            // `send-proxy(-v2)`: the header goes first, through the same path as bytes the server
            // could not take at once, so a short write needs no special case.
            do {
                let header = try ProxyHeader.forClient(sessions[i].client, context: sessions[i].context, version: version, options: configuration.proxyV2Options,
                                                       uniqueID: sessions[i].log?.uniqueID(sessions[i], frontend: frontend(of: i), process: process, now: reactor.now))
                sessions[i].toServer.queue(header, capacity: scratch.count)
            } catch {
                logger.debug("session \(i): \(error); the client left before its PROXY header was sent")
                close(i, reset: true, cause: .client)
                return
            }
        }
        if let rules = sessions[i].policy.backend.serverRules, let context = sessions[i].context {
            rules.storeSticky(context, server: server)  // `stick store-request` / `stick on`
            if rules.rules.inspectsResponses {
                sessions[i].inspectsResponse = true
                sessions[i].phaseDeadline = reactor.now + rules.rules.responseInspectDelayMs
            }
        }
        sessions[i].state = .established
        if let log = sessions[i].log { logs.sessionConnected(log, sessions[i], frontend: frontend(of: i), process: process, now: reactor.now) }
        backend(of: i).connectTime.observe(reactor.now - sessions[i].connectStartedAt)
        sessions[i].clientActivity = reactor.now
        sessions[i].serverActivity = reactor.now
        arm(i)
        if sessions[i].inspectsResponse { inspectResponse(i) } else { forward(i) }
    }

    /// A connection attempt failed: retry the same server after a pause, or redispatch at once
    /// where HAProxy would (`BackendState.redispatchTarget`).
    func connectFailed(_ i: Int, _ error: SystemError, slotHeld: Bool = true) {
        let backend = backend(of: i)
        let server = server(of: i)
        if server.configuration.observeLayer4 {
            let errors = server.observedErrors.wrappingAdd(1, ordering: .relaxed).newValue
            if errors >= server.configuration.errorLimit {
                server.observedErrors.store(0, ordering: .relaxed)
                toCheckWorker?(.observedFailure(server))
            }
        }
        if sessions[i].server >= 0 {
            reactor.unwatch(sessions[i].server, token: token(.server, i))
            closeDescriptor(sessions[i].server)
            sessions[i].server = -1
        }
        if slotHeld { backend.releaseSlot(of: server) }
        sessions[i].triedServers |= server.avoidanceBit
        guard sessions[i].retriesLeft > 0 else {
            // `econ`, as HAProxy's `failed_conns`: a session whose connect failed for good (its
            // retries count in `wretr`).
            server.connectErrors.wrappingAdd(1, ordering: .relaxed)
            logger.notice("\(error); no retries left, closing the client")
            close(i, reset: false, cause: error.code == ETIMEDOUT ? .serverTimeout : .server)
            return
        }
        sessions[i].retriesLeft -= 1
        let policy = sessions[i].policy.backend
        if let other = backend.redispatchTarget(after: server, direct: sessions[i].direct, policy: policy,
                                                retriesLeft: sessions[i].retriesLeft, avoiding: sessions[i].triedServers) {
            sessions[i].direct = false
            logger.debug("\(error); redispatching to \(backend.name)/\(other.name)")
            server.redispatches.wrappingAdd(1, ordering: .relaxed)
            sessions[i].log?.redispatched = true
            connect(i, to: other)
            return
        }
        logger.debug("\(error); retrying \(backend.name)/\(server.name)")
        server.retries.wrappingAdd(1, ordering: .relaxed)
        sessions[i].state = .retryWait
        sessions[i].phaseDeadline = reactor.now + min(policy.connectTimeoutMs, 1000)
        arm(i)
    }

    func retry(_ i: Int) {
        let previous = sessions[i].serverRef?.takeUnretainedValue()
        // A server that was drained or put in maintenance meanwhile is never retried, unless persistence sent the session there.
        let again = sessions[i].persistent || (sessions[i].direct ? previous?.takesDirectSessions == true : previous?.isUsable == true)
        if !again { sessions[i].direct = false }
        connect(i, to: again ? previous : nil)
    }
}
