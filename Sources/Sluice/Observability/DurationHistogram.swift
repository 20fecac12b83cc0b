import Synchronization

/// Durations counted in fixed buckets, as a Prometheus histogram: reactors add with one relaxed
/// atomic increment for the bucket and one for the sum (no lock, no allocation); a scrape reads
/// them all. Millisecond resolution: the reactors' clock.
final class DurationHistogram: @unchecked Sendable {
    /// Upper bounds in milliseconds (the last bucket, +Inf, has none): 1 ms to an hour.
    static let boundsMs: [Int64] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000, 1_800_000, 3_600_000]

    /// `boundsMs.count + 1` counters, each observation in exactly one (they are summed when read).
    private let buckets: UnsafeMutablePointer<Atomic<Int>>
    private let sumMs = Atomic<Int>(0)

    init() {
        buckets = .allocate(capacity: Self.boundsMs.count + 1)
        for i in 0...Self.boundsMs.count { (buckets + i).initialize(to: Atomic(0)) }
    }

    deinit {
        buckets.deinitialize(count: Self.boundsMs.count + 1)
        buckets.deallocate()
    }

    func observe(_ ms: Int64) {
        let value = max(0, ms)
        var i = 0
        while i < Self.boundsMs.count && value > Self.boundsMs[i] { i += 1 }
        buckets[i].wrappingAdd(1, ordering: .relaxed)
        sumMs.wrappingAdd(Int(value), ordering: .relaxed)
    }

    var snapshot: DurationHistogramSnapshot {
        var cumulative: [Int] = []
        var total = 0
        for i in 0...Self.boundsMs.count {
            total += buckets[i].load(ordering: .relaxed)
            cumulative.append(total)
        }
        return DurationHistogramSnapshot(bounds: Self.boundsMs.map { .milliseconds($0) }, cumulativeCounts: cumulative,
                                         sum: .milliseconds(sumMs.load(ordering: .relaxed)))
    }
}

/// A histogram of durations at one instant, as Prometheus reads one.
public struct DurationHistogramSnapshot: Hashable, Sendable {
    /// The buckets' upper bounds, in increasing order; a last bucket without a bound (+Inf) follows.
    public var bounds: [Duration]
    /// Observations at or below each bound, then all of them (`bounds.count + 1` values).
    public var cumulativeCounts: [Int]
    /// The observed durations added up.
    public var sum: Duration

    /// How many durations were observed.
    public var count: Int { cumulativeCounts.last ?? 0 }

    /// The mean in whole milliseconds (0 without observations): `show stat`'s `ctime`/`ttime`.
    var meanMs: Int64 { count == 0 ? 0 : sum.milliseconds / Int64(count) }
}
