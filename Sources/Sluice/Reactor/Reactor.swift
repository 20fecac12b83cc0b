#if canImport(Glibc)
import Glibc
#endif

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

/// A min-heap of deadlines. Entries are never removed before they are due; a handler that no
/// longer cares ignores the token. This keeps re-arming off the data path: a session only pushes
/// a new entry when its deadline moves earlier.
struct TimerHeap {
    struct Entry {
        var deadline: Int64
        var token: UInt64
    }
    private var heap: [Entry] = []

    var count: Int { heap.count }
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
