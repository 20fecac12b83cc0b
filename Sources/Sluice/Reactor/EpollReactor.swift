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
    private let wakeupFD: Descriptor
    private let events: UnsafeMutableRawPointer
    private let maxEvents = 256
    private var timers = TimerHeap()
    private let stopRequested = Atomic<Bool>(false)
    /// Token reserved for the eventfd; the handler never sees it.
    static let wakeupToken: UInt64 = .max

    /// The loop's clock, refreshed once per turn.
    private(set) var now: Int64 = monotonicMilliseconds()

    init() throws(SystemError) {
        epoll = Descriptor(taking: try syscallBlocking("epoll_create1") { CShims_epoll_create() })
        wakeupFD = Descriptor(taking: try syscallBlocking("eventfd") { CShims_eventfd_nonblock() })
        events = UnsafeMutableRawPointer.allocate(byteCount: CShims_epoll_event_size() * maxEvents, alignment: 16)
        try register(wakeupFD.rawValue, token: Self.wakeupToken, events: CShims_EPOLLIN | CShims_EPOLLET)
    }

    deinit { events.deallocate() }

    /// Registers a descriptor. The corresponding system call is `epoll_ctl(2)` with `EPOLL_CTL_ADD`.
    func register(_ fd: CInt, token: UInt64, events: UInt32) throws(SystemError) {
        _ = try syscallBlocking("epoll_ctl") { CShims_epoll_ctl(epoll.rawValue, CShims_EPOLL_CTL_ADD, fd, events, token) }
    }

    /// Nothing to do: closing a descriptor removes it from epoll.
    func unwatch(_ fd: CInt, token: UInt64) {}

    /// Calls `handleTimer(token:)` at or after `deadline` (monotonic milliseconds).
    func arm(at deadline: Int64, token: UInt64) {
        timers.push(.init(deadline: deadline, token: token))
    }

    /// Interrupts `epoll_wait` from any thread. The corresponding system call is `write(2)` on an eventfd.
    func wake() {
        var one: UInt64 = 1
        _ = write(wakeupFD.rawValue, &one, 8)
    }

    /// Makes `run` return after the current turn. Any thread.
    func stop() {
        stopRequested.store(true, ordering: .releasing)
        wake()
    }

    /// Runs the loop on the calling thread until `stop()`.
    func run(_ handler: some ReactorHandler) {
        var moreWork = false
        while !stopRequested.load(ordering: .acquiring) {
            var timeout: CInt = -1
            if moreWork {
                timeout = 0
            } else if let next = timers.nextDeadline {
                timeout = CInt(clamping: max(0, next - monotonicMilliseconds()))
            }
            let n = CShims_epoll_wait(epoll.rawValue, events.assumingMemoryBound(to: CShims_epoll_event.self), CInt(maxEvents), timeout)
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
                    var value: UInt64 = 0
                    _ = read(wakeupFD.rawValue, &value, 8)
                    handler.handleWakeup()
                } else {
                    handler.handleEvent(token: token, events: CShims_epoll_event_events(list, i))
                }
            }
            while let due = timers.popDue(now: now) {
                handler.handleTimer(token: due.token)
            }
            moreWork = handler.endOfTurn()
        }
    }
}
