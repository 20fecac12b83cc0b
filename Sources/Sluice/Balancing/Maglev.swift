/// `hash-type consistent`: Google's Maglev lookup table. Each server fills table slots in the
/// order of its own permutation of the table (an offset and a skip from two independent hashes of
/// its *name*), taking turns in proportion to its weight, so:
/// - the table depends only on the set of (name, weight) pairs, not on the order servers are
///   listed or on their positions: two instances with the same servers agree exactly;
/// - when a server leaves (DOWN, drained, removed), its slots go to the others and few other
///   slots move; when it returns it takes back much the same slots.
/// The size is prime (65,537 by default) so that every skip visits every slot.
enum Maglev {
    static let defaultSize = 65_537

    /// The table: for each slot, an index into `names` (whose `weights` are > 0). Empty when no
    /// server has a weight.
    static func table(names: [String], weights: [Int], size: Int = defaultSize) -> [Int32] {
        // Servers in the order of their names: the fill's turns must not follow the listing order.
        let members = names.indices.filter { weights[$0] > 0 }.sorted { names[$0] < names[$1] || (names[$0] == names[$1] && $0 < $1) }
        guard !members.isEmpty else { return [] }
        let divisor = members.map { weights[$0] }.reduce(0) { gcd($0, $1) }
        let turns = members.map { weights[$0] / divisor }
        let offsets = members.map { Int(hash(names[$0], seed: 0x9E37_79B9_7F4A_7C15) % UInt64(size)) }
        let skips = members.map { Int(hash(names[$0], seed: 0xC2B2_AE3D_27D4_EB4F) % UInt64(size - 1)) + 1 }
        var next = [Int](repeating: 0, count: members.count)
        var table = [Int32](repeating: -1, count: size)
        var filled = 0
        while true {
            for m in members.indices {
                for _ in 0..<turns[m] {
                    // The server's next preferred slot that is still empty.
                    var slot = (offsets[m] + next[m] * skips[m]) % size
                    while table[slot] >= 0 {
                        next[m] += 1
                        slot = (offsets[m] + next[m] * skips[m]) % size
                    }
                    table[slot] = Int32(members[m])
                    next[m] += 1
                    filled += 1
                    if filled == size { return table }
                }
            }
        }
    }

    /// 64-bit FNV-1a of the name with a seed, then MurmurHash3's fmix64: stable across processes
    /// and machines (Swift's `Hasher` is seeded per process, so it cannot be used here).
    static func hash(_ name: String, seed: UInt64) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ seed
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return mix(h)
    }

    /// MurmurHash3's 64-bit finaliser: every input bit reaches every output bit.
    static func mix(_ x: UInt64) -> UInt64 {
        var h = x
        h ^= h >> 33
        h = h &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h = h &* 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return h
    }

    private static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
}

/// `hash-balance-factor <f>` (consistent hashing with bounded loads, as HAProxy's
/// `chash_server_is_eligible`): the sessions in flight, this one included, times `f` %, are the
/// slots; each server may hold its weight's share of them (rounded up, at least one), and one that
/// holds its share is passed over — the hash moves on to the next server of the table. The shares
/// add up to at least the sessions in flight, so some server always has room. Off when `f` is 0.
struct BoundedLoad {
    private let factor: Int
    private let totalWeight: Int
    private let slots: Int

    /// (Read in place from the published schedule: a copy of it would retain each of its arrays.)
    init(_ published: BackendState.PublishedSchedule) {
        factor = published.value.balanceFactor
        totalWeight = max(1, published.value.totalWeight)
        guard factor > 0 else { slots = 0; return }
        var served = 0
        for index in published.value.eligible { served += published.value.servers[Int(index)].currentSessions.load(ordering: .relaxed) }
        slots = ((served + 1) * factor + 99) / 100
    }

    func admits(_ server: ServerState) -> Bool {
        guard factor > 0 else { return true }
        let share = max(1, (server.weight * slots + totalWeight - 1) / totalWeight)
        return server.currentSessions.load(ordering: .relaxed) < share
    }
}
