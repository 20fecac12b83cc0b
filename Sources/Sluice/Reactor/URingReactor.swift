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
    private var polls: [UInt64: (fd: CInt, events: UInt32)] = [:]
    /// Polls queued and not yet submitted. Their requests name the descriptor by number, so one
    /// whose descriptor is closed before the submission is submitted first: otherwise the number,
    /// reused by the next accept, would carry the dead session's poll, and the kernel would keep
    /// that new socket open after its own session closed it (the poll holds a file reference).
    private var unsubmitted: Set<UInt64> = []
    private let batch = 256
    private let data: UnsafeMutablePointer<UInt64>
    private let results: UnsafeMutablePointer<Int32>
    private let flags: UnsafeMutablePointer<UInt32>
    /// User data of completions nobody waits for (poll removals).
    private static let ignoredToken: UInt64 = .max - 1
    private static let wakeupToken: UInt64 = .max

    private(set) var now: Int64 = monotonicMilliseconds()

    /// Whether this kernel lets the process create an io_uring (it may be disabled by sysctl or seccomp).
    static var isAvailable: Bool { CShims_uring_probe() == 1 }

    init(entries: UInt32 = 4096) throws(SystemError) {
        var error: CInt = 0
        var used: CInt = 0
        guard let ring = CShims_uring_create(entries, &error, &used) else {
            throw SystemError(code: -error, call: "io_uring_queue_init")
        }
        self.ring = ring
        self.setupFlags = used
        do {
            core = try ReactorCore()
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
        _ = CShims_uring_poll_remove(ring, token, Self.ignoredToken)
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
            while true {
                let n = Int(CShims_uring_reap(ring, data, results, flags, UInt32(batch)))
                if n == 0 { break }
                for i in 0..<n {
                    let token = data[i]
                    let result = results[i]
                    if token == Self.ignoredToken { continue }
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
                if n < batch { break }
            }
            core.fireTimers(now: now, handler)
            moreWork = handler.endOfTurn()
        }
    }
}
