import Synchronization

/// Whoever owns a waiting session: told, from any thread, when a server slot was claimed for it.
protocol SessionWaker: AnyObject, Sendable {
    /// The session `token` now holds a slot of `server` and should connect; if it is gone, the
    /// owner releases the slot (`BackendState.releaseSlot`).
    func dequeued(_ token: UInt64, to server: ServerState, of backend: BackendState)
}

/// A session's place in a queue (`set-priority-class`, `set-priority-offset`), as HAProxy 2.6
/// orders its queues: lower classes first, then within a class the earliest arrival plus offset.
struct QueuePriority: Sendable, Equatable {
    /// -2047...2047 (HAProxy's `queue_limit_class`).
    private(set) var classValue: Int32 = 0
    /// -524287...524287 ms (`queue_limit_offset`): negative serves the session as if it had come
    /// that much earlier.
    private(set) var offsetMs: Int32 = 0

    mutating func setClass(_ value: Int64) { classValue = Int32(min(max(value, -0x7FF), 0x7FF)) }
    mutating func setOffset(_ value: Int64) { offsetMs = Int32(min(max(value, -0x7FFFF), 0x7FFFF)) }
}

/// A session waiting for a server slot.
struct QueuedSession: Sendable {
    let waker: any SessionWaker
    let token: UInt64
    /// Monotonic milliseconds when it started waiting.
    let since: Int64
    /// Its priority class, and its arrival plus its offset: what orders the queue.
    let priorityClass: Int32
    let key: Int64
    /// `force-persist` sent it to its server: it stays in that server's queue when the server goes
    /// DOWN or into maintenance, even with `option redispatch` (HAProxy's SF_FORCE_PRST).
    let forced: Bool

    init(waker: any SessionWaker, token: UInt64, since: Int64, priority: QueuePriority, forced: Bool = false) {
        self.waker = waker
        self.token = token
        self.since = since
        self.forced = forced
        priorityClass = priority.classValue
        key = since + Int64(priority.offsetMs)
    }

    /// Served before `other`: a lower class, or the same class and an earlier key; FIFO on a tie.
    func precedes(_ other: QueuedSession) -> Bool {
        priorityClass != other.priorityClass ? priorityClass < other.priorityClass : key < other.key
    }
}

/// A backend's waiting sessions, as HAProxy keeps them: the backend's own queue (sessions that any
/// server may take) and one per server (sessions bound to that server, here by `balance source`).
/// Each is ordered by priority (FIFO without `set-priority-*`); a freed slot goes to the first
/// session that may use it.
struct Queues {
    var backend: [QueuedSession] = []
    /// Keyed by `ServerState.ordinal`.
    var servers: [Int: [QueuedSession]] = [:]

    func count(of server: ServerState) -> Int { servers[server.ordinal]?.count ?? 0 }

    /// Where `entry` goes in `list`: after every session it does not precede. Returns how many are
    /// ahead of it (its `%sq`/`%bq`).
    static func insert(_ entry: QueuedSession, into list: inout [QueuedSession]) -> Int {
        var at = list.count
        while at > 0 && entry.precedes(list[at - 1]) { at -= 1 }
        list.insert(entry, at: at)
        return at
    }
}

extension BackendState {
    /// Where a session goes next.
    enum Assignment {
        /// A slot of this server is the session's: connect (and release it when done).
        case server(ServerState)
        /// Every usable server is at its `maxconn`: the session waits; its waker is called.
        /// `ahead`: sessions already waiting in the queue it joined (`%sq` or `%bq` of its log line).
        case queued(ahead: Int, inServerQueue: Bool)
        /// No server is usable at all.
        case unavailable
    }

    /// Chooses a server for a session and claims a slot on it, or queues the session (HAProxy's
    /// assign_server_and_queue). `preferred` (a retry's server) is taken when it has a free slot.
    /// `direct`: `preferred` was assigned outright (`use-server`, `persist rdp-cookie`): taken whatever its weight,
    /// and when it is full the session waits in its own queue (up to its `maxqueue`; beyond, it
    /// goes to the algorithm with `redispatch`, else it is refused, as HAProxy). `persistent`: a
    /// direct `preferred` is taken whatever its state (`option persist`, `force-persist`).
    func assign(preferring preferred: ServerState?, direct: Bool = false, persistent: Bool = false, redispatch: Bool = false, avoiding: UInt64, hash: UInt32,
                waker: any SessionWaker, token: UInt64, priority: QueuePriority = QueuePriority(), now: Int64) -> Assignment {
        // The limits as they are with this session counted in the backend's load (HAProxy's
        // `beconn` counts it from its assignment), computed once: the picks and the dispatch after
        // queueing use the same. When that load raises a `minconn` limit, the dispatch gives the
        // new slot to the oldest waiting session (HAProxy waits until a session ends).
        let budget = slotBudget(placing: 1)
        if direct, let preferred, persistent || preferred.takesDirectSessions {
            if preferred.claimSlot(budget) { return .server(preferred) }
            let ahead: Int? = queues.withLock { q in
                let count = q.count(of: preferred)
                guard count < preferred.maxQueueStorage.load(ordering: .relaxed) else { return nil }
                let entry = QueuedSession(waker: waker, token: token, since: now, priority: priority, forced: persistent && !redispatch)
                let ahead = Queues.insert(entry, into: &q.servers[preferred.ordinal, default: []])
                preferred.queueMax.store(max(preferred.queueMax.load(ordering: .relaxed), count + 1), ordering: .relaxed)
                queuedCount.wrappingAdd(1, ordering: .relaxed)
                return ahead
            }
            if let ahead {
                dispatch(budget: budget)  // a slot may have been freed meanwhile
                return .queued(ahead: ahead, inServerQueue: true)
            }
            guard redispatch else { return .unavailable }
        }
        if let preferred, preferred.isUsable, preferred.claimSlot(budget) { return .server(preferred) }
        // With sessions waiting in the backend's queue, round-robin and first know every server is
        // full: the session waits behind them (HAProxy's assign_server), so a limit that grew
        // serves the oldest first.
        let behindOthers = !budget.isFixed && queues.withLock { !$0.backend.isEmpty } && current.value.algorithm.queuesBehindWaiting
        let chosen = behindOthers ? nil : pick(avoiding: avoiding, hash: hash, budget: budget) ?? (avoiding != 0 ? pick(hash: hash, budget: budget) : nil)
        if let chosen, chosen.claimSlot(budget) { return .server(chosen) }
        let entry = QueuedSession(waker: waker, token: token, since: now, priority: priority)
        let queued: (ahead: Int, inServerQueue: Bool)? = queues.withLock { q in
            let position: (Int, Bool)
            if let chosen, chosen.isUsable, q.count(of: chosen) < chosen.maxQueueStorage.load(ordering: .relaxed) {
                // Bound to its server (source hashing): wait for that server, up to its maxqueue.
                position = (Queues.insert(entry, into: &q.servers[chosen.ordinal, default: []]), true)
                chosen.queueMax.store(max(chosen.queueMax.load(ordering: .relaxed), q.count(of: chosen)), ordering: .relaxed)
            } else if chosen != nil || servers.contains(where: { $0.isUsable }) {
                // Any server will do (or the bound one's queue is full: HAProxy redispatches).
                position = (Queues.insert(entry, into: &q.backend), false)
                queueMax.store(max(queueMax.load(ordering: .relaxed), q.backend.count), ordering: .relaxed)
            } else {
                return nil
            }
            queuedCount.wrappingAdd(1, ordering: .relaxed)
            return position
        }
        guard let queued else { return .unavailable }
        // A slot may have been freed between the pick and the queueing: hand it on now.
        dispatch(budget: budget)
        return .queued(ahead: queued.ahead, inServerQueue: queued.inServerQueue)
    }

    /// Gives a session's slot back and hands it to the oldest session waiting for it.
    func releaseSlot(of server: ServerState) {
        server.releaseSlot()
        // The leaving session still counts in the backend's load, as in HAProxy's, which frees a
        // session after it passes its slot on.
        if queuedCount.load(ordering: .relaxed) > 0 { dispatch(preferring: server, budget: slotBudget(placing: 1)) }
    }

    /// Hands free slots to waiting sessions until none can be served: first the sessions waiting
    /// for `preferring` (or any server with a queue), then the backend's queue, oldest first.
    /// `budget`: the servers' limits (nil: as they are now).
    func dispatch(preferring freed: ServerState? = nil, budget: SlotBudget? = nil) {
        let budget = budget ?? slotBudget(placing: 0)
        while true {
            let next: (QueuedSession, ServerState)? = queues.withLock { q in
                guard !q.servers.isEmpty || !q.backend.isEmpty else { return nil }
                // The first head (by priority, else age) among the server queues whose server has a free slot, and the
                // backend queue's head with the server the algorithm picks.
                var best: (head: QueuedSession, server: ServerState, fromServerQueue: Bool)?
                let candidates = freed.map { [$0] } ?? servers
                // A server's own queue holds sessions bound to it (by `balance source`, or assigned
                // outright whatever the server's weight). As HAProxy's process_srv_queue, a slot
                // it frees serves that queue whatever its state: a server DOWN or in maintenance
                // still serves the sessions left waiting for it (persistence, or no redispatch).
                for server in candidates {
                    if let head = q.servers[server.ordinal]?.first, server.hasFreeSlot(budget), best.map({ head.precedes($0.head) }) ?? true {
                        best = (head, server, true)
                    }
                }
                if let head = q.backend.first, best.map({ head.precedes($0.head) }) ?? true, let server = pickWithFreeSlot(budget) {
                    best = (head, server, false)
                }
                guard let best, best.server.claimSlot(budget) else { return nil }
                let entry: QueuedSession
                if best.fromServerQueue {
                    entry = q.servers[best.server.ordinal, default: []].removeFirst()
                    if q.servers[best.server.ordinal]?.isEmpty == true { q.servers[best.server.ordinal] = nil }
                } else {
                    entry = q.backend.removeFirst()
                }
                queuedCount.wrappingSubtract(1, ordering: .relaxed)
                return (entry, best.server)
            }
            guard let (entry, server) = next else { return }
            let waited = max(0, Int(monotonicMilliseconds() - entry.since))
            server.dequeuedSessions.wrappingAdd(1, ordering: .relaxed)
            server.dequeuedWaitMs.wrappingAdd(waited, ordering: .relaxed)
            queueTime.observe(Int64(waited))
            entry.waker.dequeued(entry.token, to: server, of: self)
        }
    }

    /// A server for a session of the backend's queue: the algorithm's choice, or (when that one is
    /// full, as `source` may choose) the first eligible server with a free slot.
    private func pickWithFreeSlot(_ budget: SlotBudget) -> ServerState? {
        if let server = pick(budget: budget), server.hasFreeSlot(budget) { return server }
        let published = current
        for index in published.value.eligible {
            let server = published.value.servers[Int(index)]
            if server.isUsable && server.hasFreeSlot(budget) { return server }
        }
        return nil
    }

    /// Takes a session out of whichever queue holds it (it timed out, or its client left).
    func removeQueued(_ token: UInt64) {
        queues.withLock { q in
            if let i = q.backend.firstIndex(where: { $0.token == token }) {
                q.backend.remove(at: i)
                queuedCount.wrappingSubtract(1, ordering: .relaxed)
                return
            }
            for (ordinal, list) in q.servers {
                if let i = list.firstIndex(where: { $0.token == token }) {
                    q.servers[ordinal]?.remove(at: i)
                    if q.servers[ordinal]?.isEmpty == true { q.servers[ordinal] = nil }
                    queuedCount.wrappingSubtract(1, ordering: .relaxed)
                    return
                }
            }
        }
    }

    /// A server can no longer be used: with `option redispatch` (and without `option persist`), the
    /// sessions waiting for it move to the backend's queue (oldest first), but for those
    /// `force-persist` sent there, as HAProxy's pendconn_redistribute does. Those left wait for
    /// a slot the server frees, or `timeout queue`.
    /// Returns how many moved (HAProxy's "requeued").
    @discardableResult
    func redistribute(from server: ServerState) -> Int {
        guard settings.redispatch, !settings.persist, queuedCount.load(ordering: .relaxed) > 0 else { return 0 }
        let moved = queues.withLock { q -> Int in
            guard let waiting = q.servers.removeValue(forKey: server.ordinal) else { return 0 }
            let staying = waiting.filter(\.forced)
            for entry in waiting where !entry.forced { _ = Queues.insert(entry, into: &q.backend) }
            if !staying.isEmpty { q.servers[server.ordinal] = staying }
            return waiting.count - staying.count
        }
        if moved > 0 { dispatch() }
        return moved
    }

    /// Sessions waiting now: in the backend's own queue, or in `server`'s.
    func queueLength(of server: ServerState? = nil) -> Int {
        queues.withLock { q in server.map { q.count(of: $0) } ?? q.backend.count }
    }
}

extension BackendState {
    /// What `nbsrv`, `be_conn`, `be_conn_free`, `queue`, `avg_queue` and `connslots` read of this
    /// backend now, computed as HAProxy 2.6's `smp_fetch_*` (backend.c) do.
    func load(_ kind: BackendLoad) -> Int64 {
        let queued = Int64(queuedCount.load(ordering: .relaxed))
        switch kind {
        case .usableServers:
            return Int64(current.value.eligible.count)
        case .queued:
            return queued
        case .sessions:
            return servers.reduce(queued) { $0 + Int64($1.currentSessions.load(ordering: .relaxed)) }
        case .averageQueue:
            let usable = load(.usableServers)
            return usable > 0 ? (queued + usable - 1) / usable : queued * 2
        case .freeConnections:
            let published = current.value
            let budget = slotBudget(placing: 0)
            var free: Int64 = 0
            for index in published.eligible {
                let server = published.servers[Int(index)]
                guard server.maxConnections != nil else { return -1 }  // one unlimited server: HAProxy's -1
                free += Int64(max(0, server.sessionLimit(budget) - server.currentSessions.load(ordering: .relaxed)))
            }
            return free
        case .freeSlots:
            return queues.withLock { q in
                var free: Int64 = 0
                for server in servers where server.admin != .maintenance && server.operational != .stopped {
                    let queueLimit = server.maxQueueStorage.load(ordering: .relaxed)
                    guard let limit = server.maxConnections, queueLimit != Int.max else { return -1 }
                    free += Int64(limit - server.currentSessions.load(ordering: .relaxed)) + Int64(queueLimit - q.count(of: server))
                }
                return free
            }
        }
    }
}
