/// A backend's `tcp-response content` rules and `stick store-response` (HAProxy's
/// `tcp_inspect_response` and `process_store_rules`). From the moment the server connection is
/// established, the client's bytes flow to the server, while the server's stay in its socket,
/// peeked (`MSG_PEEK`), until the rules decide: at once, then on each arrival, at the server's FIN,
/// once a buffer's worth is there, or when `tcp-response inspect-delay` ends (all but the first
/// "arrival" with the data final, as HAProxy's SMP_OPT_FINAL). Nothing of a refused response
/// reaches the client.
extension Worker {
    func inspectResponse(_ i: Int, expired: Bool = false) {
        guard let rules = sessions[i].policy.backend.serverRules, let context = sessions[i].context else {
            sessions[i].inspectsResponse = false
            return forward(i)
        }
        let window = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<min(process.bufferSize, scratch.count)])
        let count: Int, ended: Bool
        do {
            (count, ended) = try Socket.peek(sessions[i].server, into: window, peerEnded: sessions[i].serverEnd != .open)
        } catch {
            // A reset: forwarding reads the error and ends the session as it ends any other.
            sessions[i].inspectsResponse = false
            return forward(i)
        }
        let delay = rules.rules.responseInspectDelayMs
        let final = ended || count >= window.count || delay == 0 || expired || reactor.now >= sessions[i].phaseDeadline
        context.now = reactor.now
        context.inspect(response: UnsafeRawBufferPointer(rebasing: window[0..<count]), final: final)
        let decision = rules.responseRules(context)
        if decision == .accept || decision == .closeServer {
            rules.storeResponse(context, server: server(of: i))  // on the same data, as HAProxy's next analyser
        }
        context.content = UnsafeRawBufferPointer(start: nil, count: 0)  // the scratch buffer is reused
        switch decision {
        case .wait:
            arm(i)
            forward(i)  // the client's bytes go on to the server
        case .accept:
            sessions[i].inspectsResponse = false
            arm(i)
            forward(i)
        case .reject:
            // HAProxy's deny: counted in the frontend's, backend's and server's `dresp`; both
            // sides are closed, and the log's `%B` counts what the server sent (HAProxy had read it).
            frontend(of: i).deniedResponses.wrappingAdd(1, ordering: .relaxed)
            server(of: i).deniedResponses.wrappingAdd(1, ordering: .relaxed)
            sessions[i].toClient.total += count
            close(i, reset: false, cause: .proxy)
        case .drop:
            // `silent-drop` (the client's socket is silenced already): HAProxy counts it in `dreq`
            // and logs it `PR` (its action sets SF_FINST_R, even on a response).
            frontend(of: i).count(.silentDrop, logger: logger)
            sessions[i].toClient.total += count
            close(i, reset: false, cause: .proxy, phase: Session.State.inspecting.terminationPhase)
        case .closeServer:
            closeServer(i, delivering: count)
        }
    }

    /// `tcp-response content close`: the server's connection is reset now, what it had sent when
    /// the rules ran still reaches the client, then the client is closed (HAProxy's ACT_TCP_CLOSE
    /// shuts the server side, NOLINGER, and the response buffer drains). The client is no longer read.
    private func closeServer(_ i: Int, delivering count: Int) {
        var received = 0
        if count > 0, case .processed(let n)? = try? Socket.receive(sessions[i].server, into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<count])) {
            received = n
        }
        let server = server(of: i)
        reactor.unwatch(sessions[i].server, token: token(.server, i))
        Socket.close(sessions[i].server, reset: true)
        sessions[i].server = -1
        backend(of: i).releaseSlot(of: server)
        sessions[i].toServer.releaseResources(into: &pool)
        sessions[i].toServer.held = 0
        sessions[i].toServer.sourceClosed = true
        sessions[i].toServer.finForwarded = true
        if received > 0 {
            sessions[i].toClient.queue(Array(UnsafeRawBufferPointer(rebasing: scratch[0..<received])), capacity: scratch.count)
            sessions[i].account(toServer: 0, fromClient: 0, toClient: 0, fromServer: received, now: reactor.now)
        }
        sessions[i].toClient.sourceClosed = true
        sessions[i].inspectsResponse = false
        arm(i)
        forward(i)
    }
}
