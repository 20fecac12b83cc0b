/// `balance source` with `hash-type map-based`, as HAProxy: each usable server appears in a table
/// as many times as its weight, and a hash of the client's IP address picks the entry. A client
/// keeps its server while the set of usable servers and their weights stay the same.
enum SourceHash {
    /// The table for `weights` (zero: not in it), reduced by the weights' common divisor.
    static func map(weights: [Int]) -> [Int32] {
        let divisor = weights.filter { $0 > 0 }.reduce(0) { gcd($0, $1) }
        guard divisor > 0 else { return [] }
        var table: [Int32] = []
        for (index, weight) in weights.enumerated() where weight > 0 {
            table += repeatElement(Int32(index), count: weight / divisor)
        }
        return table
    }

    /// The server `hash` maps to; when it is not eligible (a session already failed to reach it,
    /// or it went unusable before the table was rebuilt), the next entries in the table.
    static func pick(_ servers: [ServerState], _ table: [Int32], hash: UInt32, _ eligible: (ServerState) -> Bool) -> ServerState? {
        guard !table.isEmpty else { return nil }
        let start = Int(hash % UInt32(table.count))
        for step in 0..<table.count {
            let server = servers[Int(table[(start + step) % table.count])]
            if eligible(server) { return server }
        }
        return nil
    }

    /// A 32-bit hash of an address's bytes: FNV-1a, then a final avalanche (MurmurHash3's fmix32)
    /// so that neighbouring addresses spread over the table.
    static func hash(_ bytes: [UInt8]) -> UInt32 {
        var h: UInt32 = 2_166_136_261
        for b in bytes { h = (h ^ UInt32(b)) &* 16_777_619 }
        h ^= h >> 16
        h = h &* 0x85eb_ca6b
        h ^= h >> 13
        h = h &* 0xc2b2_ae35
        h ^= h >> 16
        return h
    }

    private static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
}
