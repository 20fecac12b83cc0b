import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An edge-triggered epoll event loop with timers and a cross-thread wakeup.
///
/// Everything but `wake()` and `stop()` runs on the reactor's own thread. Descriptors are registered
/// once for both directions (`EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET`), so the data path never calls
/// `epoll_ctl` again; the handler tracks readiness itself and drains until `EAGAIN`.
final class EpollReactor: Reactor {
    private let epoll: Descriptor
    private let core: ReactorCore
    private let events: UnsafeMutableRawPointer
    /// Events taken per `epoll_wait` (`tune.maxpollevents`).
    private let maxEvents: Int
    /// Token reserved for the eventfd; the handler never sees it.
    static let wakeupToken: UInt64 = .max

    /// The loop's clock, refreshed once per turn.
    @exclusivity(unchecked) private(set) var now: Int64 = monotonicMilliseconds()

    init(maxEvents: Int = Global.defaultPollEvents, busyPolling: Bool = false) throws(SystemError) {
        precondition(maxEvents > 0, "tune.maxpollevents must be positive")
        self.maxEvents = maxEvents
        epoll = Descriptor(taking: try syscallBlocking("epoll_create1") { CShims_epoll_create() })
        core = try ReactorCore(busyPolling: busyPolling)
        events = UnsafeMutableRawPointer.allocate(byteCount: CShims_epoll_event_size() * maxEvents, alignment: 16)
        try register(core.wakeupFD.rawValue, token: Self.wakeupToken, events: CShims_EPOLLIN | CShims_EPOLLET)
    }

    deinit { events.deallocate() }

    /// Registers a descriptor. The corresponding system call is `epoll_ctl(2)` with `EPOLL_CTL_ADD`.
    func register(_ fd: CInt, token: UInt64, events: UInt32) throws(SystemError) {
        _ = try syscallBlocking("epoll_ctl") { CShims_epoll_ctl(epoll.rawValue, CShims_EPOLL_CTL_ADD, fd, events, token) }
    }

    /// Nothing to do: closing a descriptor removes it from epoll.
    func unwatch(_ fd: CInt, token: UInt64) {}

    func arm(at deadline: Int64, token: UInt64) { core.arm(at: deadline, token: token) }
    func wake() { core.wake() }
    func stop() { core.stop() }

    /// Runs the loop on the calling thread until `stop()`.
    func run(_ handler: some ReactorHandler) {
        var moreWork = false
        while !core.isStopping {
            let n = CShims_epoll_wait(epoll.rawValue, events.assumingMemoryBound(to: CShims_epoll_event.self), CInt(maxEvents),
                                      core.waitTimeout(moreWork: moreWork))
            now = monotonicMilliseconds()
            if n < 0 {
                let err = errno
                precondition(err == EINTR, "epoll_wait: \(SystemError(code: err, call: "epoll_wait"))")
                continue
            }
            let list = events.assumingMemoryBound(to: CShims_epoll_event.self)
            for i in 0..<n {
                let token = CShims_epoll_event_data(list, i)
                if token == Self.wakeupToken {
                    core.wakeupArrived(handler)
                } else {
                    handler.handleEvent(token: token, events: CShims_epoll_event_events(list, i))
                }
            }
            core.fireTimers(now: now, handler)
            moreWork = handler.endOfTurn()
        }
    }
}
