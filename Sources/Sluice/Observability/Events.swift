import Synchronization

/// Something that changed in a running balancer, for an embedding program (`LoadBalancer.events`).
public enum BalancerEvent: Sendable, Equatable {
    /// Health checks (or a followed server, or `set server health`) changed a server's state;
    /// `reason` is the check's verdict when a check decided.
    case serverHealth(backend: String, server: String, from: OperationalState, to: OperationalState, reason: String?)
    /// The admin state changed: the runtime API, the library, DNS resolution, a state file.
    case serverAdmin(backend: String, server: String, from: AdminState, to: AdminState, reason: String?)
    /// The weight changed (`set server … weight`, the library, a reload).
    case serverWeight(backend: String, server: String, from: Int, to: Int)
    /// `by`: what changed it (`stats socket command`, `dns/ns1`, `DNS additional record` …).
    case serverAddress(backend: String, server: String, from: String, to: String, by: String)
    /// `add server` (or `LoadBalancer.addServer`): the server exists, in maintenance.
    case serverAdded(backend: String, server: String)
    /// `del server` (or `LoadBalancer.removeServer`).
    case serverRemoved(backend: String, server: String)
    /// A reload was applied, with its notices for the operator.
    case reloaded(notices: [String])
    /// A reload was refused; the running configuration is unchanged.
    case reloadFailed(reason: String)
    /// A frontend stopped accepting: new connections wait in the kernel's backlog until a session
    /// ends (or descriptors free up). At most one a second per frontend is announced.
    case acceptingPaused(frontend: String, limit: AcceptLimit)
    /// The frontend accepts again, after the pause announced before.
    case acceptingResumed(frontend: String, afterMs: Int)
    /// Sessions waited past `timeout queue` without a server slot and were closed: at most one
    /// event a second per backend, `sessions` counting those closed since the previous one.
    case queueTimedOut(backend: String, sessions: Int)
}

/// The limit that made a frontend stop accepting.
public enum AcceptLimit: String, Sendable, Equatable {
    /// The global `maxconn`: the process holds as many sessions as it may.
    case process
    /// The frontend's `maxconn`.
    case frontend
    /// A `bind … maxconn`.
    case bind
    /// `rate-limit sessions`: the frontend accepted as many sessions as it may this second.
    case sessionRate
    /// The global `maxconnrate` or `maxsessrate`: the process accepted as many as it may this second.
    case processRate
    /// No descriptor left for a new connection (the process's or the system's limit).
    case descriptors
}

/// Hands events to every subscriber without ever waiting: each subscriber has a bounded buffer
/// that keeps the newest events, and what a slow subscriber misses is counted, so a reactor, the
/// check runner or the resolver never waits for an embedding program.
final class EventHub: Sendable {
    private let subscribers = Mutex<[UInt64: AsyncStream<BalancerEvent>.Continuation]>([:])
    private let nextID = Atomic<UInt64>(0)
    /// Whether anyone listens: publishers skip building events otherwise.
    private let listening = Atomic<Int>(0)
    /// Events a subscriber's full buffer dropped (the oldest ones).
    let dropped = Atomic<Int>(0)

    var hasSubscribers: Bool { listening.load(ordering: .relaxed) > 0 }

    func subscribe(bufferingNewest limit: Int) -> AsyncStream<BalancerEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: BalancerEvent.self, bufferingPolicy: .bufferingNewest(max(1, limit)))
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        subscribers.withLock { $0[id] = continuation }
        listening.add(1, ordering: .relaxed)
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            if subscribers.withLock({ $0.removeValue(forKey: id) }) != nil { listening.subtract(1, ordering: .relaxed) }
        }
        return stream
    }

    func publish(_ event: @autoclosure () -> BalancerEvent) {
        guard hasSubscribers else { return }
        let event = event()
        for continuation in subscribers.withLock({ Array($0.values) }) {
            if case .dropped = continuation.yield(event) { dropped.add(1, ordering: .relaxed) }
        }
    }

    /// Ends every subscriber's sequence (the balancer stopped).
    func finish() {
        for continuation in subscribers.withLock({ Array($0.values) }) { continuation.finish() }
    }
}
