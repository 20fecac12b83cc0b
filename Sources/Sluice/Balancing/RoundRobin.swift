/// Smooth weighted round-robin: the sequence that nginx popularised, where weights 5,1,1 give
/// a a b a c a a rather than a a a a a b c, so that no server receives a burst.
///
/// The sequence is computed once per snapshot (whenever a server's state or weight changes);
/// picking is then an index into it.
enum RoundRobin {
    /// The schedule of `weights` (indices into the input), one full cycle long.
    /// Weights are first divided by their greatest common divisor to keep the cycle short.
    /// Zero weights never appear.
    static func schedule(weights: [Int]) -> [Int32] {
        let divisor = weights.filter { $0 > 0 }.reduce(0, gcd)
        guard divisor > 0 else { return [] }
        let w = weights.map { $0 / divisor }
        let total = w.reduce(0, +)
        var current = [Int](repeating: 0, count: w.count)
        var out: [Int32] = []
        out.reserveCapacity(total)
        for _ in 0..<total {
            var best = -1
            for i in w.indices where w[i] > 0 {
                current[i] += w[i]
                if best < 0 || current[i] > current[best] { best = i }
            }
            current[best] -= total
            out.append(Int32(best))
        }
        return out
    }

    private static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
}
