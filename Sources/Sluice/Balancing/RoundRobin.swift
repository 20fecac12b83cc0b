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
        // Only servers with a weight take part: `members` holds their input indices, `w` their
        // reduced weights, both in input order so that ties go to the earlier server.
        let members = weights.indices.filter { weights[$0] > 0 }
        let w = members.map { weights[$0] / divisor }
        let total = w.reduce(0, +)
        var out = [Int32](repeating: 0, count: total)
        // One full cycle is total × members steps: unchecked buffers keep a 1,000-server backend
        // with mixed weights in milliseconds.
        var current = [Int](repeating: 0, count: w.count)
        current.withUnsafeMutableBufferPointer { current in
            w.withUnsafeBufferPointer { w in
                for step in 0..<total {
                    var best = 0
                    current[0] += w[0]
                    for i in 1..<w.count {
                        current[i] += w[i]
                        if current[i] > current[best] { best = i }
                    }
                    current[best] -= total
                    out[step] = Int32(members[best])
                }
            }
        }
        return out
    }

    private static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
}
