import CShims
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Accepting: each listener's backlog taken a batch per turn, paused at a limit (its connections
/// wait in the kernel's backlog) and retried while paused.
extension Worker {
    func accept(from l: Int) {
        guard listeners[l].fd >= 0, !listeners[l].paused else { return }
        let frontend = listeners[l].frontend
        let limit = listeners[l].limit
        let bind = listeners[l].bind
        // Rules and logs read the client's address: take it from accept4 rather than getpeername later.
        let wantsPeer = bind.acceptProxy || frontend.wantsPeer
        var peer: SocketAddress?
        for _ in 0..<process.acceptBatch {
            if let refused = process.admit(frontend, limit) {
                pause(l, refused)
                return
            }
            let fd: CInt
            do {
                switch try wantsPeer ? Socket.accept(listeners[l].fd, peer: &peer) : Socket.accept(listeners[l].fd) {
                case .wouldBlock:
                    process.release(frontend, limit)
                    listeners.resumed(l, now: reactor.now)
                    return
                case .processed(let accepted):
                    fd = accepted
                    listeners.resumed(l, now: reactor.now)
                }
            } catch {
                process.release(frontend, limit)
                if error.isDescriptorExhaustion || error.code == ENOBUFS || error.code == ENOMEM {
                    // The connection stays in the kernel's backlog; existing sessions go on.
                    process.noteDescriptorExhaustion()
                    logExhaustion("accept on frontend '\(frontend.name)': \(error); pausing accepts until descriptors free up")
                    pause(l, .descriptors)
                    return
                }
                continue  // ECONNABORTED, EPROTO …: that client is gone, the next may not be
            }
            startSession(client: fd, frontend: frontend, limit: limit, bind: bind, peer: peer)
        }
        if !pendingAccepts.contains(l) { pendingAccepts.append(l) }
    }

    /// Stops accepting on a listener; its connections wait in the kernel backlog.
    func pause(_ l: Int, _ limit: AcceptLimit) {
        listeners.pause(l, limit, now: reactor.now)
        // A slot may free on another thread, or a descriptor anywhere: look again soon.
        if !resumeTimerArmed {
            resumeTimerArmed = true
            reactor.arm(at: reactor.now + resumeIntervalMs, token: Self.resumeTimer)
        }
    }

    func resumeListeners() {
        guard listeners.pausedCount > 0 else { return }
        for l in listeners.retryPaused() {
            accept(from: l)  // edge-triggered: the backlog will not signal again by itself
        }
    }

    func closeListener(_ l: Int) {
        guard let fd = listeners.close(l, now: reactor.now) else { return }
        reactor.unwatch(fd, token: Token(.listener, index: l).raw)
        closeDescriptor(fd)
    }

    func closeListeners() {
        for l in listeners.indices { closeListener(l) }
        pendingAccepts.removeAll()
    }

    /// Out of descriptors: give back the pooled pipes (two descriptors each) before anything else,
    /// then log, once a second at most.
    func logExhaustion(_ message: @autoclosure () -> String) {
        pool.drain()
        // Once a second at most: at the limit, every accept attempt would log.
        if reactor.now - lastExhaustionLog >= 1000 {
            lastExhaustionLog = reactor.now
            logger.warning("\(message())")
        }
    }
}

extension Worker {
    /// A session waiting for its backend's `tcp-request content` rules: on each arrival from the
    /// client, at its FIN and when the backend's `inspect-delay` ends.
    func inspectBackendRules(_ i: Int, expired: Bool = false) {
        guard let rules = sessions[i].policy.backend.serverRules, let context = sessions[i].context else { return }
        context.now = reactor.now
        let outcome = context.advanceBackendRules(rules, scratch: scratch, limit: process.bufferSize,
                                                  expired: expired || reactor.now >= sessions[i].phaseDeadline,
                                                  clientEnded: sessions[i].clientEnd != .open)
        switch outcome {
        case .wait?:
            arm(i)
        case .close(let reason)?:
            frontend(of: i).count(reason, logger: logger)  // in the frontend's dreq, as HAProxy
            close(i, reset: false, cause: reason.terminationCause)
        case .proceed?, nil:
            sessions[i].state = .connecting
            sessions[i].inspectsBackendRules = false
            chooseServer(i)
        }
    }
}
