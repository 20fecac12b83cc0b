import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An event loop: readiness of registered descriptors (edge-triggered: a descriptor is reported
/// when it becomes ready; the handler drains it and tracks readiness itself), timers, and a wakeup
/// for other threads. One per thread; everything but `wake()` and `stop()` runs on that thread.
///
/// Backends: `EpollReactor` (epoll) and `URingReactor` (io_uring multishot poll). Both deliver
/// `EPOLL*` bits, so the forwarding code above them is the same.
protocol Reactor: AnyObject {
    /// The loop's clock (monotonic milliseconds), refreshed once per turn.
    var now: Int64 { get }
    /// Watches a descriptor for `events` (`EPOLL*` bits), reported with `token`.
    func register(_ fd: CInt, token: UInt64, events: UInt32) throws(SystemError)
    /// Stops watching a descriptor the caller is about to close. epoll forgets closed descriptors
    /// by itself; an io_uring poll holds a reference to the file, so it must be cancelled or the
    /// socket would stay open.
    func unwatch(_ fd: CInt, token: UInt64)
    /// Calls `handleTimer(token:)` at or after `deadline` (monotonic milliseconds).
    func arm(at deadline: Int64, token: UInt64)
    /// Interrupts the wait from any thread.
    func wake()
    /// Makes `run` return after the current turn. Any thread.
    func stop()
    /// Runs the loop on the calling thread until `stop()`.
    func run(_ handler: some ReactorHandler)
}

/// Which reactor backend runs the reactors (`io-engine` in `global`, a Sluice extension).
public enum IOEngine: String, Hashable, Sendable, CaseIterable {
    /// Readiness through `epoll(7)`, then `splice(2)` and `recv`/`send` calls.
    case epoll
    /// Completions through `io_uring(7)`: fewer system calls per event (the default where the kernel allows it).
    case ioUring = "io_uring"

    /// Whether this kernel lets the process use the engine (io_uring may be disabled by sysctl
    /// `kernel.io_uring_disabled` or a seccomp filter).
    public var isAvailable: Bool { self == .epoll || URingReactor.isAvailable }

    /// The engine used when the configuration names none: io_uring where the kernel allows it
    /// (bench/ measured it cheaper per new connection and per small request, and even on bulk
    /// within the noise; see the README), else epoll.
    public static var preferred: IOEngine { URingReactor.isAvailable ? .ioUring : .epoll }
}

/// What a reactor calls back into. One handler per reactor, on the reactor's thread only.
protocol ReactorHandler: AnyObject {
    /// A registered descriptor is ready. `events` holds `EPOLL*` bits.
    func handleEvent(token: UInt64, events: UInt32)
    /// A timer armed with `Reactor.arm(at:token:)` is due. Timers are never cancelled: the handler
    /// checks whether the token still means something (tokens carry a generation).
    func handleTimer(token: UInt64)
    /// Another thread called `wake()`: run queued work.
    func handleWakeup()
    /// Called once per loop turn after events and timers, before waiting again. Returns true when
    /// work is left over (e.g. a listener not drained, to be fair to sessions), so the next wait
    /// does not block.
    func endOfTurn() -> Bool
}

/// Milliseconds on the monotonic clock. Read once per loop turn and shared by everything in it.
@inline(__always)
func monotonicMilliseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// What every backend shares: the timer heap, the eventfd other threads wake the loop with, and
/// the stop flag. Everything but `wake()` and `stop()` runs on the reactor's thread.
final class ReactorCore {
    let wakeupFD: Descriptor
    @exclusivity(unchecked) private var timers = TimerHeap()
    private let stopRequested = Atomic<Bool>(false)
    /// `busy-polling`: every wait polls (timeout 0) instead of sleeping.
    private let busyPolling: Bool

    init(busyPolling: Bool = false) throws(SystemError) {
        wakeupFD = Descriptor(taking: try syscallBlocking("eventfd") { CShims_eventfd_nonblock() })
        self.busyPolling = busyPolling
    }

    var isStopping: Bool { stopRequested.load(ordering: .acquiring) }

    func arm(at deadline: Int64, token: UInt64) {
        timers.push(.init(deadline: deadline, token: token))
    }

    /// Any thread. The corresponding system call is `write(2)` on an eventfd.
    func wake() {
        var one: UInt64 = 1
        _ = write(wakeupFD.rawValue, &one, 8)
    }

    /// Any thread.
    func stop() {
        stopRequested.store(true, ordering: .releasing)
        wake()
    }

    /// Consumes a wakeup and lets the handler run what other threads queued.
    func wakeupArrived(_ handler: some ReactorHandler) {
        var value: UInt64 = 0
        _ = read(wakeupFD.rawValue, &value, 8)
        handler.handleWakeup()
    }

    /// How long the next wait may block, in milliseconds: 0 when work is pending or with
    /// `busy-polling`, -1 for no limit.
    func waitTimeout(moreWork: Bool) -> CInt {
        if moreWork || busyPolling { return 0 }
        guard let next = timers.nextDeadline else { return -1 }
        return CInt(clamping: max(0, next - monotonicMilliseconds()))
    }

    /// Fires every timer due at `now`.
    func fireTimers(now: Int64, _ handler: some ReactorHandler) {
        while let due = timers.popDue(now: now) {
            handler.handleTimer(token: due.token)
        }
    }
}

/// A min-heap of deadlines. Entries are never removed before they are due; a handler that no
/// longer cares ignores the token. This keeps re-arming off the data path: a session only pushes
/// a new entry when its deadline moves earlier.
struct TimerHeap {
    struct Entry {
        var deadline: Int64
        var token: UInt64
    }
    private var heap: [Entry] = []

    var nextDeadline: Int64? { heap.first?.deadline }

    mutating func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if heap[parent].deadline <= heap[child].deadline { break }
            heap.swapAt(parent, child)
            child = parent
        }
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    mutating func popDue(now: Int64) -> Entry? {
        guard let first = heap.first, first.deadline <= now else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                let right = left + 1
                var smallest = parent
                if left < heap.count && heap[left].deadline < heap[smallest].deadline { smallest = left }
                if right < heap.count && heap[right].deadline < heap[smallest].deadline { smallest = right }
                if smallest == parent { break }
                heap.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return first
    }
}
