#if canImport(Glibc)
import Glibc
#endif
import CShims

/// One direction of a session: bytes read from one socket and written to the other.
///
/// Two ways to move bytes, chosen per direction by what flows:
/// - **copy** (the start): `recv` into the reactor's scratch buffer and `send` at once. For small
///   messages this is two system calls and no pipe, and a short `recv` proves the socket drained
///   (TCP copies everything queued), so no `EAGAIN` read follows.
/// - **splice**, once a `recv` fills the scratch buffer (a bulk flow): bytes wait in a pipe taken
///   from the pool only while in flight. Reads happen only into an empty pipe, so an `EAGAIN` from
///   socket→pipe always means the socket is empty, never that the pipe is full.
/// What a destination cannot take at once waits in a per-direction buffer (`leftover`).
struct Direction {
    var pipe: Pipe?
    /// Bytes a `send` could not take, allocated on first need and freed with the session.
    var leftover: UnsafeMutableRawPointer?
    var leftoverOffset = 0
    /// Bytes waiting in `pipe` or `leftover`.
    var held = 0
    /// A `recv` filled the scratch buffer: this direction carries bulk and splices from now on.
    var bulk = false
    /// Nothing more is read from the source: it sent FIN, or its inactivity timeout shut it (as
    /// HAProxy's read timeout does). The destination gets a FIN once `held` is written.
    var sourceClosed = false
    /// We sent FIN to the destination after everything before it was written.
    var finForwarded = false
    /// Bytes written to the destination since the session began.
    var total = 0

    var isDone: Bool { finForwarded }

    /// Reads per direction per pass. One read then one write, and the session yields to the rest of
    /// the loop: bulk flows stop starving other sessions, and bytes accumulate meanwhile, so each
    /// splice moves more (measured: fewer, larger splices cost less kernel CPU per byte).
    static let readsPerPass = 1

    /// Queues bytes to be written before anything read from the source (the PROXY header).
    mutating func queue(_ bytes: [UInt8], capacity: Int) {
        precondition(held == 0 && pipe == nil && bytes.count <= capacity, "queueing \(bytes.count) bytes behind \(held) in flight")
        let buffer = leftover ?? UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        leftover = buffer
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress.unsafelyUnwrapped, byteCount: $0.count) }
        leftoverOffset = 0
        held = bytes.count
    }

    mutating func releaseResources(into pool: inout PipePool) {
        if let pipe {
            // A pipe that still holds bytes would leak them into the next session: close it instead.
            if held == 0 { pool.give(pipe) } else { pool.discard(pipe) }
            self.pipe = nil
        }
        if let leftover {
            leftover.deallocate()
            self.leftover = nil
        }
    }
}

/// What epoll said about the peer's end of a connection.
enum PeerEnd: UInt8, Comparable {
    case open
    /// The peer sent FIN (RDHUP, or HUP once both ways are shut), without an error.
    case finished
    /// An error is pending (ERR: a reset, an unreachable peer).
    case failed

    init(events: UInt32) {
        if events & CShims_EPOLLERR != 0 {
            self = .failed
        } else if events & (CShims_EPOLLRDHUP | CShims_EPOLLHUP) != 0 {
            self = .finished
        } else {
            self = .open
        }
    }

    static func < (a: PeerEnd, b: PeerEnd) -> Bool { a.rawValue < b.rawValue }
}

/// What a pump pass ended with.
enum PumpResult {
    /// Nothing more to do until the next readiness event.
    case waiting
    /// The source may have more, but this pass used its read budget: come back next turn
    /// (edge-triggered epoll will not signal again for bytes already queued).
    case yielded
    /// A socket failed (reset, or the destination went away).
    case failed(SystemError)
}

extension Direction {
    /// Moves bytes from `source` to `destination` until either would block, the source ends, the
    /// read budget is spent, or an error occurs. Readiness flags are cleared on `EAGAIN` (or a
    /// short `recv`) and set again by epoll events. `sourceEnd` is what epoll said about the
    /// source's peer: once it sent FIN, a short `recv` took everything before the FIN, so the
    /// source has ended without another `recv` to read the 0; after an error a short `recv`
    /// proves nothing and the next one reports the error.
    /// `otherDone`: the session closes after this pass once this direction ends (the opposite
    /// direction has finished, or the destination is closed hard under `option nolinger`), and
    /// `close` ends the connection: no `shutdown` call is needed.
    ///
    /// `moved` receives the bytes written to `destination`, `read` those read from `source`.
    mutating func pump(from source: CInt, readable: inout Bool, sourceEnd: PeerEnd, to destination: CInt,
                       writable: inout Bool, otherDone: Bool, pool: inout PipePool, spliceAllowed: Bool,
                       scratch: UnsafeMutableRawBufferPointer, moved: inout Int, read: inout Int) -> PumpResult {
        var reads = Self.readsPerPass
        while true {
            if held > 0 {
                guard writable else { return .waiting }
                let result: IOResult<Int>
                do {
                    if let pipe {
                        result = try splice(from: pipe.readEnd, to: destination, length: held, more: false)
                    } else if let leftover {
                        result = try Socket.send(destination, from: UnsafeRawBufferPointer(start: leftover + leftoverOffset, count: held))
                    } else {
                        preconditionFailure("\(held) bytes held with neither a pipe nor a buffer")
                    }
                } catch {
                    return .failed(error)
                }
                switch result {
                case .wouldBlock:
                    writable = false
                    return .waiting
                case .processed(let n):
                    held -= n
                    leftoverOffset += n
                    moved += n
                    total += n
                }
                continue
            }
            // Empty: give the pipe back so idle sessions hold none.
            if let pipe {
                pool.give(pipe)
                self.pipe = nil
            }
            leftoverOffset = 0
            if sourceClosed {
                if !finForwarded {
                    if !otherDone { Socket.shutdownWrite(destination) }
                    finForwarded = true
                }
                return .waiting
            }
            guard readable else { return .waiting }
            guard reads > 0 else { return .yielded }
            reads -= 1
            if bulk && spliceAllowed && pipe == nil {
                pipe = pool.take()  // nil at `maxpipes` or without descriptors: copy instead
            }
            if bulk && spliceAllowed, let pipe {
                let result: IOResult<Int>
                do {
                    result = try splice(from: source, to: pipe.writeEnd, length: pipe.capacity, more: false)
                } catch {
                    return .failed(error)
                }
                switch result {
                case .wouldBlock: readable = false
                case .processed(0): sourceClosed = true
                case .processed(let n):
                    held = n
                    read += n
                }
                continue
            }
            // Copy: recv into the scratch buffer, send at once, keep what the destination refuses.
            let received: Int
            do {
                switch try Socket.receive(source, into: scratch) {
                case .wouldBlock:
                    readable = false
                    continue
                case .processed(0):
                    sourceClosed = true
                    continue
                case .processed(let n):
                    received = n
                }
            } catch {
                return .failed(error)
            }
            read += received
            if received == scratch.count {
                bulk = true
            } else {
                switch sourceEnd {
                case .open: readable = false  // a short TCP recv took everything queued
                case .finished: sourceClosed = true  // … and the FIN was queued behind it
                case .failed: break
                }
            }
            var sent = 0
            if writable {
                do {
                    switch try Socket.send(destination, from: UnsafeRawBufferPointer(rebasing: scratch[0..<received])) {
                    case .processed(let n): sent = n
                    case .wouldBlock: writable = false
                    }
                } catch {
                    return .failed(error)
                }
            }
            moved += sent
            total += sent
            if sent < received {
                let rest = received - sent
                // `leftover` has the scratch buffer's size (`tune.bufsize`).
                let buffer = leftover ?? UnsafeMutableRawPointer.allocate(byteCount: scratch.count, alignment: 64)
                leftover = buffer
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: scratch[sent..<received]).baseAddress.unsafelyUnwrapped, byteCount: rest)
                held = rest
                writable = false
            }
        }
    }
}

/// What a session keeps of its frontend's and backend's configuration when it starts, so that a
/// reload changes policy for new sessions only and the data path reads no shared state.
struct SessionPolicy {
    /// Retries, redispatch and the server-side timeouts.
    var backend = BackendSettings()
    /// 0 means no limit.
    var clientTimeoutMs: Int64 = 0
    /// 0: unset (the client timeout applies).
    var clientFinTimeoutMs: Int64 = 0
    /// `option nolinger` on the frontend.
    var clientNoLinger = false
    /// `option independent-streams` on the frontend.
    var clientIndependent = false

    init() {}

    init(_ frontend: FrontendState.FrontendPolicy, _ backend: BackendSettings) {
        self.backend = backend
        clientTimeoutMs = frontend.clientTimeoutMs
        clientFinTimeoutMs = frontend.clientFinTimeoutMs
        clientNoLinger = frontend.noLinger
        clientIndependent = frontend.independentStreams
    }
}

/// A client connection and its server connection, kept in the reactor's slab by index.
///
/// Plain data: references to the frontend, backend and server are unmanaged (those objects live
/// as long as the balancer, which keeps every one it ever created), so the slab is a flat array
/// and a session costs no reference counting on the data path. The worker owns the descriptors
/// and closes them.
struct Session {
    enum State: UInt8 {
        case free
        /// Waiting for a non-blocking connect to finish.
        case connecting
        /// Waiting before retrying the same server (HAProxy waits min(timeout connect, 1 s)).
        case retryWait
        /// No descriptor was left for the server socket; retrying until `timeout queue`.
        case descriptorWait
        /// Every server is at its `maxconn`: waiting in a queue until `timeout queue`.
        case queued
        /// Waiting for the client's PROXY header or for content rules to decide (`tcp-request
        /// inspect-delay`); no server yet.
        case inspecting
        case established
    }

    /// Bumped when the slot is reused, so stale epoll events and timers are recognised.
    var generation: UInt32 = 0
    var state: State = .free
    var client: CInt = -1
    var server: CInt = -1
    var frontendRef: Unmanaged<FrontendState>?
    /// The bind the client came through: its sessions and `maxconn` (kept alive by the worker's
    /// listener entry, which stays in its array even once closed).
    var bindLimit: Unmanaged<BindState>?
    var backendRef: Unmanaged<BackendState>?
    /// The server chosen (and, after a failure, the one last tried); nil before the first choice.
    var serverRef: Unmanaged<ServerState>?
    /// Rules' state (addresses from a PROXY header, tracked stick-table entries); nil for sessions
    /// of frontends without rules, which pay one pointer for it.
    var context: SessionContext?
    /// What `option tcplog` records of the session; nil when its frontend does not log so.
    var log: SessionLog?
    var policy = SessionPolicy()
    /// Connection attempts left after the current one (`retries`).
    var retriesLeft = 0
    /// Servers this session failed to reach, a bit per server index (the first 64).
    var triedServers: UInt64 = 0
    /// `balance source`: the hash of the client's address.
    var sourceHash: UInt32 = 0
    /// The server was assigned outright (`use-server`, `persist rdp-cookie`): retries stay with it
    /// (see `BackendState.redispatchTarget`).
    var direct = false
    /// Its rules' server is taken whatever its state (`option persist`, `force-persist`).
    var persistent = false
    /// Established, with the server's data held in its socket until the backend's `tcp-response`
    /// rules decide (`phaseDeadline`: the end of `tcp-response inspect-delay`); the client's
    /// bytes flow meanwhile.
    var inspectsResponse = false
    /// Inspecting, for its backend's `tcp-request content` rules (the frontend's have decided).
    var inspectsBackendRules = false
    /// Where a connect through the server's `socks4` proxy stands (still `.connecting` throughout).
    var socks: SOCKSPhase = .none
    enum SOCKSPhase: UInt8 {
        case none
        /// Connecting to the proxy: the request goes once connected.
        case due
        /// The request is sent: waiting for the proxy's grant.
        case awaitingReply
    }
    /// The first inactivity timeout that shut a side while the session went on (`c`/`s`, else
    /// `-`): it is what the session's log reports at its end, as HAProxy's first error.
    var timedOut = TerminationCause.normal

    var toServer = Direction()
    var toClient = Direction()
    var clientReadable = false
    var clientWritable = false
    var serverReadable = false
    var serverWritable = false
    /// What epoll reported about each peer's end.
    var clientEnd = PeerEnd.open
    var serverEnd = PeerEnd.open

    /// Monotonic milliseconds of the last byte moved on each side.
    /// When it was accepted, and when its current connection attempt began (monotonic ms): the
    /// backend's session-duration and connect-time histograms.
    var startedAt: Int64 = 0
    var connectStartedAt: Int64 = 0
    var clientActivity: Int64 = 0
    var serverActivity: Int64 = 0
    /// When the current phase (connect, retry wait, descriptor wait, response inspection) must end.
    var phaseDeadline: Int64 = 0
    /// When the queue wait for a descriptor ends (`timeout queue`).
    var queueDeadline: Int64 = 0
    /// The earliest timer pushed for this session that has not fired yet; `Int64.max` when none.
    var armedDeadline: Int64 = .max

    var isFinished: Bool { toServer.isDone && toClient.isDone }
    /// One direction has closed: deadlines may move earlier (a `-fin` timeout, or a side no longer
    /// read that has bytes waiting for it).
    var isHalfClosed: Bool { toServer.sourceClosed || toClient.sourceClosed }
}

extension Session {
    mutating func pumpToServer(pool: inout PipePool, splice: Bool, scratch: UnsafeMutableRawBufferPointer,
                               moved: inout Int, read: inout Int) -> PumpResult {
        // With `nolinger` a shut side is closed at once (with a reset) instead of half-closed.
        toServer.pump(from: client, readable: &clientReadable, sourceEnd: clientEnd, to: server, writable: &serverWritable,
                      otherDone: toClient.isDone || policy.backend.noLinger,
                      pool: &pool, spliceAllowed: splice, scratch: scratch, moved: &moved, read: &read)
    }

    mutating func pumpToClient(pool: inout PipePool, splice: Bool, scratch: UnsafeMutableRawBufferPointer,
                               moved: inout Int, read: inout Int) -> PumpResult {
        toClient.pump(from: server, readable: &serverReadable, sourceEnd: serverEnd, to: client, writable: &clientWritable,
                      otherDone: toServer.isDone || policy.clientNoLinger,
                      pool: &pool, spliceAllowed: splice, scratch: scratch, moved: &moved, read: &read)
    }
}

extension Session {
    /// Records what a pump pass moved: each side's activity (bytes read from it, and bytes written
    /// to it unless `option independent-streams`: then only what it sends proves it alive), the
    /// server's byte counters, and the stick-table counters (what the client sent, not a PROXY
    /// header added for the server, and what it was sent).
    mutating func account(toServer: Int, fromClient: Int, toClient: Int, fromServer: Int, now: Int64) {
        if fromClient > 0 || (toClient > 0 && !policy.clientIndependent) { clientActivity = now }
        if fromServer > 0 || (toServer > 0 && !policy.backend.independentStreams) { serverActivity = now }
        if toServer + toClient > 0, let ref = serverRef {
            ref._withUnsafeGuaranteedRef { server in
                if toServer > 0 { server.bytesIn.wrappingAdd(toServer, ordering: .relaxed) }
                if toClient > 0 { server.bytesOut.wrappingAdd(toClient, ordering: .relaxed) }
            }
        }
        if fromClient + toClient > 0, let context, context.countsBytes { context.addBytes(received: fromClient, sent: toClient, now: now) }
    }

    /// When the session must be looked at next: the end of its connect/retry/queue phase, or the
    /// moment one side has been idle for its timeout (see `inactivityDeadlines`).
    var deadline: Int64 {
        switch state {
        case .free: return .max
        case .connecting, .retryWait: return phaseDeadline
        case .inspecting: return policy.clientTimeoutMs > 0 ? min(phaseDeadline, clientActivity + policy.clientTimeoutMs) : phaseDeadline
        case .descriptorWait: return min(phaseDeadline, queueDeadline)
        case .queued: return queueDeadline
        case .established:
            let due = inactivityDeadlines
            return inspectsResponse ? min(due.client, due.server, phaseDeadline) : min(due.client, due.server)
        }
    }

    /// When each side's inactivity timeout runs out (`Int64.max`: never), as HAProxy 2.6 keeps
    /// them: a side has a read timeout while it is read and a write timeout while bytes wait for
    /// it, both `timeout client`/`server` (`tunnel` once connected), the read timeout becoming
    /// `client-fin`/`server-fin` once that side was sent a FIN. What expired is told by
    /// `expiry(of:)`.
    var inactivityDeadlines: (client: Int64, server: Int64) {
        let client = Self.inactivityDeadline(
            activity: clientActivity, limit: inactivityLimit(client: true), finLimit: policy.clientFinTimeoutMs,
            read: !toServer.sourceClosed, sentFin: toClient.finForwarded, waiting: toClient.held > 0)
        let server = Self.inactivityDeadline(
            activity: serverActivity, limit: inactivityLimit(client: false), finLimit: policy.backend.serverFinTimeoutMs,
            read: !toClient.sourceClosed, sentFin: toServer.finForwarded, waiting: toServer.held > 0)
        return (client, server)
    }

    /// A side's timeout before any FIN: `timeout tunnel` when set, else `timeout client`/`server`.
    private func inactivityLimit(client: Bool) -> Int64 {
        let tunnel = policy.backend.tunnelTimeoutMs
        return tunnel > 0 ? tunnel : client ? policy.clientTimeoutMs : policy.backend.serverTimeoutMs
    }

    private static func inactivityDeadline(activity: Int64, limit: Int64, finLimit: Int64, read: Bool, sentFin: Bool, waiting: Bool) -> Int64 {
        var due = Int64.max
        let readLimit = sentFin && finLimit > 0 ? finLimit : limit
        if read && readLimit > 0 { due = activity + readLimit }
        if waiting && limit > 0 { due = min(due, activity + limit) }
        return due
    }

    /// What an expired inactivity timeout of a side means: bytes waited for it (a write timeout:
    /// the session is aborted), or it sent nothing (a read timeout: it is no longer read, and the
    /// other side is sent a FIN once what it was owed is written).
    enum Expiry { case none, read, write }

    func expiry(ofClient client: Bool, now: Int64) -> Expiry {
        let due = inactivityDeadlines
        guard (client ? due.client : due.server) <= now else { return .none }
        let toSide = client ? toClient : toServer
        let limit = inactivityLimit(client: client)
        let activity = client ? clientActivity : serverActivity
        return toSide.held > 0 && limit > 0 && activity + limit <= now ? .write : .read
    }
}
