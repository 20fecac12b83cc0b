import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An io_uring event loop: readiness by multishot `IORING_OP_POLL_ADD` (one submission per
/// descriptor for its life, like edge-triggered epoll registered once), submissions batched and
/// flushed with the wait, timers from the same heap as `EpollReactor`.
///
/// Data still moves with inline `splice(2)`/`recv`/`send` when a socket is ready: `IORING_OP_SPLICE`
/// on sockets runs on io-wq threads at half the throughput (measured; see DESIGN.md).
final class URingReactor: Reactor {
    private let ring: OpaquePointer
    private let setupFlags: CInt
    private let core: ReactorCore
    /// Active polls, so one that ends without `IORING_CQE_F_MORE` (the kernel may end a multishot
    /// request, e.g. on overflow) can be armed again. Token → descriptor and events.
    @exclusivity(unchecked) private var polls: [UInt64: (fd: CInt, events: UInt32)] = [:]
    /// Polls queued and not yet submitted. Their requests name the descriptor by number, so one
    /// whose descriptor is closed before the submission is submitted first: otherwise the number,
    /// reused by the next accept, would carry the dead session's poll, and the kernel would keep
    /// that new socket open after its own session closed it (the poll holds a file reference).
    @exclusivity(unchecked) private var unsubmitted: Set<UInt64> = []
    /// Completions copied out of the ring at once.
    private let batch = 256
    /// Completions handled per loop turn (`tune.maxpollevents`); the rest wait for the next turn.
    private let maxEvents: Int
    private let data: UnsafeMutablePointer<UInt64>
    private let results: UnsafeMutablePointer<Int32>
    private let flags: UnsafeMutablePointer<UInt32>
    /// Poll removals in flight: their user data → the token of the poll they remove. The kernel
    /// refuses a removal with EALREADY when it finds the poll in the middle of completing an event
    /// (its task work pending, as `IORING_SETUP_DEFER_TASKRUN` leaves it until the next wait); a
    /// multishot poll then re-arms and lives on, holding its socket open after the session closed
    /// it (measured: a server reset during a transfer left 2 client sockets in 6 open, forever). So
    /// such a removal is sent again until the poll is gone.
    @exclusivity(unchecked) private var removals: [UInt64: UInt64] = [:]
    @exclusivity(unchecked) private var removalSequence: UInt32 = 0
    /// User data of removals: a range session, listener and check tokens do not reach in practice
    /// (a worker token of generation 0x3FFF_FFFF), told apart by `removals` anyway.
    private static let removalBase: UInt64 = 0xFFFF_FFFF_0000_0000
    private static let wakeupToken: UInt64 = .max

    @exclusivity(unchecked) private(set) var now: Int64 = monotonicMilliseconds()

    /// Whether this kernel lets the process create an io_uring (it may be disabled by sysctl or seccomp).
    static var isAvailable: Bool { CShims_uring_probe() == 1 }

    init(entries: UInt32 = 4096, maxEvents: Int = Global.defaultPollEvents, busyPolling: Bool = false) throws(SystemError) {
        precondition(maxEvents > 0, "tune.maxpollevents must be positive")
        self.maxEvents = maxEvents
        var error: CInt = 0
        var used: CInt = 0
        guard let ring = CShims_uring_create(entries, &error, &used) else {
            throw SystemError(code: -error, call: "io_uring_queue_init")
        }
        self.ring = ring
        self.setupFlags = used
        do {
            core = try ReactorCore(busyPolling: busyPolling)
        } catch {
            CShims_uring_destroy(ring)
            throw error
        }
        data = .allocate(capacity: batch)
        results = .allocate(capacity: batch)
        flags = .allocate(capacity: batch)
        try register(core.wakeupFD.rawValue, token: Self.wakeupToken, events: CShims_EPOLLIN)
    }

    deinit {
        CShims_uring_destroy(ring)
        data.deallocate()
        results.deallocate()
        flags.deallocate()
    }

    func register(_ fd: CInt, token: UInt64, events: UInt32) throws(SystemError) {
        // EPOLLET has no meaning for poll requests; multishot poll reports each new readiness.
        let mask = events & ~CShims_EPOLLET
        let r = CShims_uring_poll_multishot(ring, fd, mask, token)
        guard r == 0 else { throw SystemError(code: -r, call: "io_uring poll") }
        polls[token] = (fd, mask)
        unsubmitted.insert(token)
    }

    func unwatch(_ fd: CInt, token: UInt64) {
        guard polls.removeValue(forKey: token) != nil else { return }
        if unsubmitted.contains(token) {
            // Registered and unwatched within one turn (a session refused on its first bytes):
            // submit its poll now, while `fd` still names this session's socket (the caller closes
            // it next), and before the removal. Measured: a removal submitted in the same batch as
            // its poll does not find it, and the poll then keeps the closed socket alive for good.
            _ = CShims_uring_submit_and_wait(ring, 0)
            unsubmitted.removeAll(keepingCapacity: true)
        }
        remove(token)
    }

    /// Queues the removal of the poll whose user data is `token`.
    private func remove(_ token: UInt64) {
        // 1 ... 0xFFFF_FFFE: the last value would make the id the wakeup token's.
        removalSequence = removalSequence >= UInt32.max - 1 ? 1 : removalSequence + 1
        let id = Self.removalBase | UInt64(removalSequence)
        removals[id] = token
        _ = CShims_uring_poll_remove(ring, token, id)
    }

    func arm(at deadline: Int64, token: UInt64) { core.arm(at: deadline, token: token) }
    func wake() { core.wake() }
    func stop() { core.stop() }

    func run(_ handler: some ReactorHandler) {
        let enabled = CShims_uring_enable(ring, setupFlags)
        precondition(enabled == 0, "io_uring enable: \(SystemError(code: -enabled, call: "io_uring_register"))")
        var moreWork = false
        while !core.isStopping {
            let r = CShims_uring_submit_and_wait(ring, core.waitTimeout(moreWork: moreWork))
            unsubmitted.removeAll(keepingCapacity: true)
            precondition(r == 0 || r == -ETIME || r == -EINTR || r == -EAGAIN || r == -EBUSY,
                         "io_uring wait: \(SystemError(code: -r, call: "io_uring_enter"))")
            now = monotonicMilliseconds()
            var taken = 0
            while taken < maxEvents {
                let asked = min(batch, maxEvents - taken)
                let n = Int(CShims_uring_reap(ring, data, results, flags, UInt32(asked)))
                if n == 0 { break }
                taken += n
                for i in 0..<n {
                    let token = data[i]
                    let result = results[i]
                    // Removals' user data sit at the top of the token space: a session's event is
                    // told apart without hashing (a mutating lookup per completion, measured at ~1 %
                    // of the reactor's CPU on small keep-alive requests).
                    if token >= Self.removalBase && token != Self.wakeupToken, let target = removals.removeValue(forKey: token) {
                        // (No removal id is the wakeup token's: see `remove`.)
                        // 0: removed; ENOENT: it had ended; EALREADY: it was completing, try again.
                        if result == -EALREADY { remove(target) }
                        continue
                    }
                    if flags[i] & CShims_IORING_CQE_F_MORE == 0 {
                        // The request ended: removed (ECANCELED/ENOENT), or ended by the kernel.
                        if let poll = polls[token] {
                            _ = CShims_uring_poll_multishot(ring, poll.fd, poll.events, token)
                            unsubmitted.insert(token)
                        }
                    }
                    if result <= 0 { continue }
                    if token == Self.wakeupToken {
                        core.wakeupArrived(handler)
                    } else if polls[token] != nil {
                        handler.handleEvent(token: token, events: UInt32(bitPattern: result))
                    }
                }
                if n < asked { break }
            }
            core.fireTimers(now: now, handler)
            moreWork = handler.endOfTurn()
            if taken == maxEvents && CShims_uring_cq_ready(ring) > 0 { moreWork = true }  // the rest, next turn
        }
        finishRemovals()
    }

    /// After the loop: the removals of the last turn (the last sessions of a graceful stop) are
    /// still queued, and until they complete their polls keep the closed sockets open — for as long
    /// as the ring lives, which in an embedding program is as long as the balancer object. So they
    /// are submitted and waited for here (a bounded number of rounds, resending on EALREADY).
    private func finishRemovals() {
        var rounds = 0
        while !removals.isEmpty && rounds < 100 {
            rounds += 1
            _ = CShims_uring_submit_and_wait(ring, 10)
            unsubmitted.removeAll(keepingCapacity: true)
            while true {
                let n = Int(CShims_uring_reap(ring, data, results, flags, UInt32(batch)))
                for i in 0..<n {
                    guard let target = removals.removeValue(forKey: data[i]) else { continue }
                    if results[i] == -EALREADY { remove(target) }
                }
                if n < batch { break }
            }
        }
    }
}
