import CShims
import Logging

/// A session's way from accept to a backend when its frontend has rules or its bind expects a
/// PROXY header: connection rules at once, then the PROXY header, then content rules on the bytes
/// as they arrive, then `use_backend`. The reactor calls `start` at accept and `advance` on every
/// readable event and at the deadline; the bytes are only peeked (`MSG_PEEK`), so they stay in the
/// socket and are forwarded (spliced) like any others once a server is chosen.
extension SessionContext {
    enum Outcome {
        /// Connect to this backend.
        case proceed(BackendState)
        /// Wait for more bytes or the deadline.
        case wait
        /// Close the client: refused by a rule, or a bad PROXY header.
        case close(CloseReason)
    }

    enum CloseReason {
        case deniedConnection
        case deniedSession
        case deniedContent
        /// `silent-drop`: the client's socket is silenced (closing it sends nothing).
        case silentDrop
        case badProxyHeader(String)
        case clientError(SystemError)
    }

    /// Runs `tcp-request connection` rules (with the connection's own addresses, as HAProxy).
    /// `.wait` means the session must be inspected before it goes anywhere.
    func start(acceptProxy: Bool, fallback: BackendState) -> Outcome {
        expectsProxyHeader = acceptProxy
        if let routing {
            switch routing.connectionRules(self) {
            case .reject: return .close(.deniedConnection)
            case .drop: return .close(.silentDrop)
            case .accept, .wait, .closeServer: break  // `close` is a response action only
            }
            if expectsProxyHeader { return .wait }
            if let refused = refusal(routing.sessionRules(self)) { return .close(refused) }
            if !routing.rules.contentRules.isEmpty { return .wait }
            content = UnsafeRawBufferPointer(start: nil, count: 0)
            return .proceed(routing.chooseBackend(self))
        }
        return expectsProxyHeader ? .wait : .proceed(fallback)
    }

    /// Why `tcp-request session` rules close the client, if they do.
    private func refusal(_ decision: FrontendRouting.Decision) -> CloseReason? {
        decision == .reject ? .deniedSession : decision == .drop ? .silentDrop : nil
    }

    /// Looks at what the client has sent so far. `expired`: the inspection delay is over;
    /// `clientEnded`: the client sent FIN (bytes may still wait before it). Either way the rules
    /// then decide on what is there.
    func advance(scratch: UnsafeMutableRawBufferPointer, limit: Int, expired: Bool, clientEnded: Bool, fallback: BackendState) -> Outcome {
        let window = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<min(limit, scratch.count)])
        while true {
            let count: Int, ended: Bool
            do {
                (count, ended) = try Socket.peek(client, into: window, peerEnded: clientEnded)
            } catch {
                return .close(.clientError(error))
            }
            let data = UnsafeRawBufferPointer(rebasing: window[0..<count])
            if expectsProxyHeader {
                switch ProxyProtocol.parse(data) {
                case .incomplete:
                    if ended || expired { return .close(.badProxyHeader(ended ? "the client closed before its PROXY header ended" : "no complete PROXY header in time")) }
                    return .wait
                case .invalid(let why):
                    return .close(.badProxyHeader(why))
                case .header(let header):
                    // Consume exactly the header; what follows stays for the rules and the server.
                    let consumed = try? Socket.receive(client, into: UnsafeMutableRawBufferPointer(rebasing: window[0..<header.length]))
                    guard case .processed(header.length)? = consumed else { return .close(.badProxyHeader("the header could not be consumed")) }
                    if let source = header.source, let destination = header.destination { adopt(source: source, destination: destination) }
                    expectsProxyHeader = false
                    receivedProxyHeader = true
                    proxyAuthority = header.authority
                    proxyUniqueID = header.uniqueID
                    if let routing, let refused = refusal(routing.sessionRules(self)) { return .close(refused) }
                    continue
                }
            }
            guard let routing else { return .proceed(fallback) }
            // Accepted, the data stay for the chosen backend's rules; the worker clears them once it
            // has routed the session, before the scratch buffer is used again.
            return judge(routing, window, count: count, ended: ended, expired: expired) ?? .proceed(routing.chooseBackend(self))
        }
    }

    /// Content rules (a frontend's or a backend's) on the `count` bytes peeked into `window`;
    /// HAProxy's rule: the data are final once the client closed, the buffer is full or the delay
    /// is over. Nil: accepted, the data left in `content`; else `.wait`, or why to close.
    private func judge(_ rules: FrontendRouting, _ window: UnsafeMutableRawBufferPointer, count: Int, ended: Bool, expired: Bool) -> Outcome? {
        content = UnsafeRawBufferPointer(rebasing: window[0..<count])
        final = ended || count >= window.count || expired || rules.rules.inspectDelayMs == 0
        let decision = rules.contentRules(self)
        if decision == .accept || decision == .closeServer { return nil }  // `close` is a response action only
        content = UnsafeRawBufferPointer(start: nil, count: 0)
        return decision == .wait ? .wait : .close(decision == .drop ? .silentDrop : .deniedContent)
    }

    /// A backend's `tcp-request content` rules on the client's bytes so far, as the frontend's are
    /// run (HAProxy's `tcp_inspect_request` for AN_REQ_INSPECT_BE): final once the client closed,
    /// a buffer's worth is there or the backend's `inspect-delay` is over. Nil: accepted (the data
    /// stay in `content` for `use-server` and `stick`); `.wait`, or why to close the client.
    func advanceBackendRules(_ rules: FrontendRouting, scratch: UnsafeMutableRawBufferPointer, limit: Int, expired: Bool,
                             clientEnded: Bool) -> Outcome? {
        let window = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<min(limit, scratch.count)])
        do {
            let (count, ended) = try Socket.peek(client, into: window, peerEnded: clientEnded)
            return judge(rules, window, count: count, ended: ended, expired: expired)
        } catch {
            return .close(.clientError(error))
        }
    }
}

extension FrontendState {
    /// Counts a client closed before it reached a server, where `show stat` reports it.
    func count(_ reason: SessionContext.CloseReason, logger: Logger) {
        switch reason {
        case .deniedConnection: deniedConnections.wrappingAdd(1, ordering: .relaxed)
        case .deniedSession: deniedSessions.wrappingAdd(1, ordering: .relaxed)
        // HAProxy's silent-drop counts a denied request at every stage.
        case .deniedContent, .silentDrop: deniedRequests.wrappingAdd(1, ordering: .relaxed)
        case .badProxyHeader(let why):
            failedRequests.wrappingAdd(1, ordering: .relaxed)
            logger.notice("frontend '\(name)': closing a client without a valid PROXY header: \(why)")
        case .clientError: break
        }
    }
}
