import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A counter a stick table keeps per key (`store <type>`), and the fetches that read it.
enum StickData: UInt8, Hashable, Sendable {
    case connectionsCurrent, connectionsTotal, connectionRate
    case sessionsTotal, sessionRate
    case gpc0, gpc0Rate
    /// Bytes from the client (`bytes_in_*`) and to it (`bytes_out_*`) while tracked.
    case bytesInTotal, bytesInRate, bytesOutTotal, bytesOutRate
    /// The server a `stick` rule stored for the key (its id, `ServerState.id`).
    case serverID
    /// Fetch-only: whether the counter slot tracks an entry (`sc0_tracked`).
    case tracked
    /// Fetch-only actions on gpc0 (`sc0_inc_gpc0`, `sc0_clr_gpc0`): return the new (old) value.
    case incrementGPC0, clearGPC0
    /// General purpose tag 0: an unsigned 32-bit value `sc-set-gpt0` sets (`sc0_get_gpt0`).
    case gpt0

    /// The type's name in `store` and `show table` (`conn_cur`).
    var name: String {
        switch self {
        case .connectionsCurrent: "conn_cur"
        case .connectionsTotal: "conn_cnt"
        case .connectionRate: "conn_rate"
        case .sessionsTotal: "sess_cnt"
        case .sessionRate: "sess_rate"
        case .gpc0: "gpc0"
        case .gpc0Rate: "gpc0_rate"
        case .bytesInTotal: "bytes_in_cnt"
        case .bytesInRate: "bytes_in_rate"
        case .bytesOutTotal: "bytes_out_cnt"
        case .bytesOutRate: "bytes_out_rate"
        case .serverID: "server_id"
        case .tracked: "tracked"
        case .incrementGPC0: "inc_gpc0"
        case .clearGPC0: "clr_gpc0"
        case .gpt0: "gpt0"
        }
    }

    init?(fetchSuffix: String) {
        switch fetchSuffix {
        case "conn_cur": self = .connectionsCurrent
        case "conn_cnt": self = .connectionsTotal
        case "conn_rate": self = .connectionRate
        case "sess_cnt": self = .sessionsTotal
        case "sess_rate": self = .sessionRate
        case "gpc0", "get_gpc0": self = .gpc0
        case "gpc0_rate": self = .gpc0Rate
        case "bytes_in_cnt": self = .bytesInTotal
        case "bytes_in_rate": self = .bytesInRate
        case "bytes_out_cnt": self = .bytesOutTotal
        case "bytes_out_rate": self = .bytesOutRate
        case "tracked": self = .tracked
        case "inc_gpc0": self = .incrementGPC0
        case "clr_gpc0": self = .clearGPC0
        case "gpt0", "get_gpt0": self = .gpt0
        default: return nil
        }
    }

    /// The stored type a fetch of this data needs.
    var stored: StickData {
        switch self {
        case .incrementGPC0, .clearGPC0: .gpc0
        default: self
        }
    }

    var isRate: Bool { [.connectionRate, .sessionRate, .gpc0Rate, .bytesInRate, .bytesOutRate].contains(self) }

    /// Whether the table counts bytes (then tracked sessions report their transfers).
    static let byteTypes: [StickData] = [.bytesInTotal, .bytesInRate, .bytesOutTotal, .bytesOutRate]
}

/// `stick-table type … size … expire … store …`, as declared.
public struct StickTableSpec: Hashable, Sendable {
    /// `type`: what the table's keys are.
    public enum KeyType: Hashable, Sendable {
        /// `type ip`.
        case ipv4
        /// `type ipv6`.
        case ipv6
        /// `type integer`.
        case integer
        /// `type string [len <n>]`: keys are cut to `length` bytes.
        case string(length: Int)
        /// `type binary [len <n>]`: keys are blocks of exactly `length` bytes, cut or padded with
        /// zeros, as HAProxy stores them.
        case binary(length: Int)
    }
    /// The proxy that declares it; tables are named after their proxy.
    public var name: String
    /// `type`.
    public var keyType: KeyType
    /// `size`: entries at most; the least recently used unreferenced entry makes room.
    public var size: Int
    /// `expire`: an entry untouched this long is removed. Nil: never (as HAProxy, when `expire` is unset).
    public var expire: Duration?
    /// The stored counters; rates with their period in milliseconds.
    var stored: [StickData: Int64] = [:]
    /// `nopurge`: a full table keeps its entries; new keys are not stored.
    public var noPurge = false
}

/// The sliding-window rate HAProxy keeps (its `freq_ctr` over a period): the events of the current
/// period plus the previous period's weighted by how much of it the window still covers. Shared by
/// every thread without a lock: an event is one atomic add; the thread that finds the period over
/// rotates it, marking the period start for the three stores it takes (HAProxy's `freq_ctr` does
/// the same), and a thread that meets the mark yields until it is gone.
struct SharedRate: ~Copyable {
    /// Monotonic milliseconds when the current period began; -1 while a thread rotates it.
    private let start = Atomic<Int64>(0)
    private let current = Atomic<Int64>(0)
    private let previous = Atomic<Int64>(0)

    init() {}

    func add(_ n: Int64, now: Int64, period: Int64) {
        rotate(now: now, period: period)
        current.wrappingAdd(n, ordering: .relaxed)
    }

    func rate(now: Int64, period: Int64) -> Int64 {
        while true {
            let s = start.load(ordering: .acquiring)
            guard s >= 0 else { sched_yield(); continue }
            var c = current.load(ordering: .relaxed), p = previous.load(ordering: .relaxed)
            guard start.load(ordering: .acquiring) == s else { continue }
            // The rotation `rotate` would do now, on copies.
            let elapsed = max(0, now - s)
            var periodStart = s
            if elapsed >= period {
                p = elapsed >= 2 * period ? 0 : c
                c = 0
                periodStart = now - elapsed % period
            }
            let remaining = period - max(0, now - periodStart)
            return c + (p * remaining + period - 1) / period
        }
    }

    private func rotate(now: Int64, period: Int64) {
        while true {
            let s = start.load(ordering: .acquiring)
            guard s >= 0 else { sched_yield(); continue }
            let elapsed = now - s
            guard elapsed >= period else { return }
            guard start.compareExchange(expected: s, desired: -1, ordering: .acquiring).exchanged else { continue }
            let ended = current.exchange(0, ordering: .relaxed)
            previous.store(elapsed >= 2 * period ? 0 : ended, ordering: .relaxed)
            start.store(now - elapsed % period, ordering: .releasing)
            return
        }
    }
}

/// A key of a stick table, converted to the table's type.
enum StickKey: Hashable, Sendable, CustomStringConvertible {
    case ip(IPAddress)
    case integer(Int64)
    case string([UInt8])
    case binary([UInt8])

    /// The sample as the table's key, or nil when it does not convert (an IPv6 client in an IPv4
    /// table, as HAProxy skips it).
    init?(_ sample: Sample, for type: StickTableSpec.KeyType) {
        switch type {
        case .ipv4:
            guard case .ip(let a) = sample else { return nil }
            switch a {
            case .v4: self = .ip(a)
            case .v6: guard let v4 = a.embeddedV4 else { return nil }; self = .ip(.v4(v4))
            }
        case .ipv6:
            guard case .ip(let a) = sample else { return nil }
            self = .ip(.v6(a.asV6))
        case .integer:
            guard let v = sample.integer else { return nil }
            self = .integer(v)
        case .string(let length):
            self = .string(Array(sample.bytes.prefix(length)))
        case .binary(let length):
            // HAProxy's casts to binary: integers as 8 bytes and addresses as 4 or 16, in network order.
            let block: [UInt8]
            switch sample {
            case .string(let b), .binary(let b): block = b
            case .int(let v): block = withUnsafeBytes(of: v.bigEndian, Array.init)
            case .bool(let v): block = withUnsafeBytes(of: Int64(v ? 1 : 0).bigEndian, Array.init)
            case .ip(.v4(let a)): block = withUnsafeBytes(of: a.bigEndian, Array.init)
            case .ip(.v6(let a)): block = withUnsafeBytes(of: a.bigEndian, Array.init)
            }
            self = .binary(Array(block.prefix(length)) + Array(repeating: 0, count: max(0, length - block.count)))
        }
    }

    /// A cheap hash for a thread's cache of entries (multiplicative; Swift's seeded `Hasher`
    /// guards dictionaries against chosen keys, which a direct-mapped cache does not need).
    var cacheHash: UInt64 {
        let mixed: UInt64
        switch self {
        case .ip(.v4(let a)): mixed = UInt64(a)
        case .ip(.v6(let a)): mixed = UInt64(truncatingIfNeeded: a) ^ UInt64(truncatingIfNeeded: a >> 64) &* 31
        case .integer(let v): mixed = UInt64(bitPattern: v)
        case .string(let bytes), .binary(let bytes): mixed = bytes.reduce(0xCBF2_9CE4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 }
        }
        return mixed &* 0x9E37_79B9_7F4A_7C15
    }

    var description: String {
        switch self {
        case .ip(let a): a.description
        case .integer(let v): String(v)
        case .string(let b): String(decoding: b, as: UTF8.self)
        case .binary(let b): b.map { String(format2: $0) }.joined().uppercased()  // HAProxy's `show table`
        }
    }
}

/// One key's counters. Every counter is atomic, so sessions on any thread count into it without a
/// lock; `references` also says whether the entry is still in its table.
final class StickEntry: Sendable {
    let key: StickKey
    /// Sessions tracking the entry (and short pins by `stick` rules and `src_*` fetches); -1 once
    /// the entry has left its table, after which nobody can pin it again.
    let references = Atomic<Int>(0)
    /// Monotonic milliseconds of the last tracking: the entry expires `expire` after it, and the
    /// least recently used entry makes room.
    let lastUsed: Atomic<Int64>
    let connectionsCurrent = Atomic<Int64>(0)
    let connectionsTotal = Atomic<Int64>(0)
    let connectionRate = SharedRate()
    let sessionsTotal = Atomic<Int64>(0)
    let sessionRate = SharedRate()
    let gpc0 = Atomic<Int64>(0)
    let gpc0Rate = SharedRate()
    let gpt0 = Atomic<Int64>(0)
    /// The server a `stick` rule stored (its id; 0: none), and its name (HAProxy's `server_key`).
    let serverID = Atomic<Int64>(0)
    let serverKey = Mutex<String?>(nil)
    let bytesIn = Atomic<Int64>(0)
    let bytesInRate = SharedRate()
    let bytesOut = Atomic<Int64>(0)
    let bytesOutRate = SharedRate()

    init(key: StickKey, now: Int64) {
        self.key = key
        lastUsed = Atomic(now)
    }

    /// Holds the entry so that it cannot leave its table; false when it has left, or has expired
    /// (then the table replaces it under its lock).
    func pin(now: Int64, expireMs: Int64) -> Bool {
        var held = references.load(ordering: .relaxed)
        while true {
            if held < 0 { return false }
            if held == 0 && expired(now: now, expireMs: expireMs) { return false }
            let (exchanged, found) = references.compareExchange(expected: held, desired: held + 1, ordering: .acquiring)
            if exchanged { return true }
            held = found
        }
    }

    /// Lets go of a pin; `touch` counts it as a use (tracking does, reading does not).
    func unpin(now: Int64, touch: Bool) {
        if touch { lastUsed.store(now, ordering: .relaxed) }
        references.wrappingSubtract(1, ordering: .releasing)
    }

    /// Takes the entry out of its table if nobody holds it (the table's lock is held).
    func retire() -> Bool { references.compareExchange(expected: 0, desired: -1, ordering: .acquiringAndReleasing).exchanged }

    func expired(now: Int64, expireMs: Int64) -> Bool {
        expireMs != .max && lastUsed.load(ordering: .relaxed) + expireMs <= now
    }
}

/// A stick table shared by every reactor thread. Counting needs no lock: each thread finds the
/// entries it uses again in a cache of its own, pins one with a compare-and-swap and counts with
/// atomic adds. A key new to a thread takes its shard's mutex (one of 16 from 4,096 entries) for a
/// dictionary lookup, and for an insertion when the key is new to the table. `size` is a hard
/// limit: a new key takes the place of the least recently used entry no session tracks, or is not
/// tracked when every entry is in use (HAProxy's behaviour).
final class StickTable: Sendable {
    let spec: StickTableSpec
    /// `spec.keyType`, read on every key made for the table.
    let keyType: StickTableSpec.KeyType
    private let shards: [Locked]
    private let expireMs: Int64
    private let periods: Periods
    /// The stored types, a bit each (read on every `sc*_`/`src_*` fetch: no hashing).
    private let storedTypes: UInt32
    /// Whether this table stores any byte counter (then the sessions it tracks report their transfers).
    let countsBytes: Bool
    /// Each thread's entries by key (`pthread_getspecific`); the table owns the caches.
    private let cacheKey: pthread_key_t?
    private let caches = Mutex<[LocalCache]>([])

    typealias Handle = StickEntry

    /// The rate periods of the stored types, read on every count.
    struct Periods: Sendable {
        var connection, session, gpc0, bytesIn, bytesOut: Int64?
    }

    /// A thread's way to its entries without the shard lock; only that thread uses it. Direct
    /// mapped: a key's slot holds the entry last found for a key of that slot.
    final class LocalCache: @unchecked Sendable {
        private var slots: [StickEntry?]
        private let shift: UInt64

        init(size: Int) {
            var bits = 4
            while 1 << bits < size && bits < 12 { bits += 1 }
            slots = Array(repeating: nil, count: 1 << bits)
            shift = UInt64(64 - bits)
        }

        subscript(key: StickKey) -> StickEntry? {
            get {
                guard let entry = slots[Int(truncatingIfNeeded: key.cacheHash >> shift)], entry.key == key else { return nil }
                return entry
            }
            set { slots[Int(truncatingIfNeeded: key.cacheHash >> shift)] = newValue }
        }
    }

    /// One shard behind its mutex (a class: a `Mutex` cannot sit in an array by value).
    final class Locked: Sendable {
        let mutex: Mutex<Shard>
        init(_ shard: Shard) { mutex = Mutex(shard) }
        func withLock<R>(_ body: (inout Shard) -> R) -> R { mutex.withLock { body(&$0) } }
    }

    /// A shard's entries and their use order: a list kept sorted by `linkedAt`. Uses do not move an
    /// entry (they only store `lastUsed`); making room moves the entries used since they were
    /// linked to their place first, so the entry it takes is the least recently used one.
    struct Shard {
        var index: [StickKey: Int32] = [:]
        var slots: [Slot] = []
        var freeSlots: [Int32] = []
        var newest: Int32 = -1
        var oldest: Int32 = -1
        let capacity: Int

        init(capacity: Int) { self.capacity = capacity }
    }

    struct Slot {
        var entry: StickEntry?
        var linkedAt: Int64 = 0
        var newer: Int32 = -1
        var older: Int32 = -1
    }

    init(_ spec: StickTableSpec) {
        self.spec = spec
        keyType = spec.keyType
        let count = spec.size >= 4096 ? 16 : 1
        shards = (0..<count).map { _ in Locked(Shard(capacity: max(1, spec.size / count))) }
        expireMs = spec.expire?.milliseconds ?? .max
        storedTypes = spec.stored.keys.reduce(0) { $0 | 1 << $1.rawValue }
        countsBytes = StickData.byteTypes.contains { spec.stored[$0] != nil }
        periods = Periods(connection: spec.stored[.connectionRate], session: spec.stored[.sessionRate], gpc0: spec.stored[.gpc0Rate],
                          bytesIn: spec.stored[.bytesInRate], bytesOut: spec.stored[.bytesOutRate])
        var key = pthread_key_t()
        cacheKey = pthread_key_create(&key, nil) == 0 ? key : nil
    }

    deinit {
        if let cacheKey { pthread_key_delete(cacheKey) }
    }

    /// This thread's cache (made on its first use of the table), unretained: the table owns it.
    private var local: Unmanaged<LocalCache>? {
        guard let cacheKey else { return nil }
        if let p = pthread_getspecific(cacheKey) { return Unmanaged<LocalCache>.fromOpaque(p) }
        let cache = LocalCache(size: spec.size)
        caches.withLock { $0.append(cache) }
        pthread_setspecific(cacheKey, Unmanaged.passUnretained(cache).toOpaque())
        return .passUnretained(cache)
    }

    private func shard(of key: StickKey) -> Int { shards.count == 1 ? 0 : Int(UInt(bitPattern: key.hashValue) % UInt(shards.count)) }

    /// `key`'s entry, pinned: from this thread's cache, or under the shard's lock (created when
    /// `create`, making room as needed). Nil when absent and not created, or when the table is full.
    private func pinned(_ key: StickKey, now: Int64, create: Bool) -> StickEntry? {
        guard let cache = local else { return shards[shard(of: key)].withLock { find(&$0, key, now: now, create: create) } }
        return cache._withUnsafeGuaranteedRef { cache in
            if let entry = cache[key] {
                if entry.pin(now: now, expireMs: expireMs) { return entry }
                cache[key] = nil
            }
            guard let entry = shards[shard(of: key)].withLock({ find(&$0, key, now: now, create: create) }) else { return nil }
            cache[key] = entry
            return entry
        }
    }

    /// Starts tracking `key` for a connection: the entry (created if needed) counts one more current
    /// and total connection. Nil when the table is full of tracked entries.
    func track(_ key: StickKey, now: Int64) -> Handle? {
        guard let entry = pinned(key, now: now, create: true) else { return nil }
        entry.lastUsed.store(now, ordering: .relaxed)
        entry.connectionsCurrent.wrappingAdd(1, ordering: .relaxed)
        entry.connectionsTotal.wrappingAdd(1, ordering: .relaxed)
        if let period = periods.connection { entry.connectionRate.add(1, now: now, period: period) }
        return entry
    }

    /// The connection became a session (it passed the connection rules).
    func countSession(_ entry: Handle, now: Int64) {
        entry.sessionsTotal.wrappingAdd(1, ordering: .relaxed)
        if let period = periods.session { entry.sessionRate.add(1, now: now, period: period) }
    }

    /// The tracking connection ended.
    func release(_ entry: Handle, now: Int64) {
        entry.connectionsCurrent.wrappingSubtract(1, ordering: .relaxed)
        entry.unpin(now: now, touch: true)
    }

    /// A counter of a tracked entry (applying `inc_gpc0`/`clr_gpc0`); nil when the table does not
    /// store that type.
    func read(_ entry: Handle, _ data: StickData, now: Int64) -> Int64? {
        guard data == .tracked || stores(data) else { return nil }
        return value(entry, data, now: now)
    }

    /// Whether the table stores what a fetch of `data` reads.
    func stores(_ data: StickData) -> Bool { storedTypes & 1 << data.stored.rawValue != 0 }

    /// A counter of `key`'s entry without tracking it; 0 when there is no entry (HAProxy's `src_*`).
    func read(_ key: StickKey, _ data: StickData, now: Int64) -> Int64? {
        guard stores(data) else { return nil }
        guard let entry = pinned(key, now: now, create: data == .incrementGPC0) else { return 0 }
        defer { entry.unpin(now: now, touch: false) }
        return value(entry, data, now: now)
    }

    /// `stick match`: the server stored for `key`, if any (0 is none).
    func server(for key: StickKey, now: Int64) -> Int64? {
        guard let entry = pinned(key, now: now, create: false) else { return nil }
        defer { entry.unpin(now: now, touch: false) }
        let id = entry.serverID.load(ordering: .relaxed)
        return id > 0 ? id : nil
    }

    /// `stick store-request` (and `stick on`): `key` sticks to `server` from now on; false when the
    /// table is full (`nopurge`, or every entry tracked).
    @discardableResult
    func store(_ key: StickKey, server: Int64, name: String, now: Int64) -> Bool {
        guard let entry = pinned(key, now: now, create: true) else { return false }
        entry.serverID.store(server, ordering: .relaxed)
        entry.serverKey.withLock { if $0 != name { $0 = name } }  // a session of a sticky client: its own server, no copy
        entry.unpin(now: now, touch: true)
        return true
    }


    /// Bytes a tracked session moved: `received` from the client, `sent` to it.
    func addBytes(_ entry: Handle, received: Int, sent: Int, now: Int64) {
        entry.bytesIn.wrappingAdd(Int64(received), ordering: .relaxed)
        entry.bytesOut.wrappingAdd(Int64(sent), ordering: .relaxed)
        if let period = periods.bytesIn, received > 0 { entry.bytesInRate.add(Int64(received), now: now, period: period) }
        if let period = periods.bytesOut, sent > 0 { entry.bytesOutRate.add(Int64(sent), now: now, period: period) }
    }

    /// `sc-set-gpt0`: the tag, as HAProxy's unsigned 32 bits; nothing when the table has none.
    func setGPT0(_ entry: Handle, _ value: Int64) {
        guard stores(.gpt0) else { return }
        entry.gpt0.store(value & 0xFFFF_FFFF, ordering: .relaxed)
    }

    /// `sc-inc-gpc0`: one more on gpc0 (and gpc0_rate).
    func incrementGPC0(_ entry: Handle, now: Int64) {
        _ = read(entry, .incrementGPC0, now: now)
    }

    private func value(_ e: StickEntry, _ data: StickData, now: Int64) -> Int64 {
        switch data {
        case .connectionsCurrent: return e.connectionsCurrent.load(ordering: .relaxed)
        case .connectionsTotal: return e.connectionsTotal.load(ordering: .relaxed)
        case .connectionRate: return e.connectionRate.rate(now: now, period: periods.connection ?? 1)
        case .sessionsTotal: return e.sessionsTotal.load(ordering: .relaxed)
        case .sessionRate: return e.sessionRate.rate(now: now, period: periods.session ?? 1)
        case .gpc0: return e.gpc0.load(ordering: .relaxed)
        case .gpt0: return e.gpt0.load(ordering: .relaxed)
        case .gpc0Rate: return e.gpc0Rate.rate(now: now, period: periods.gpc0 ?? 1)
        case .bytesInTotal: return e.bytesIn.load(ordering: .relaxed)
        case .bytesInRate: return e.bytesInRate.rate(now: now, period: periods.bytesIn ?? 1)
        case .bytesOutTotal: return e.bytesOut.load(ordering: .relaxed)
        case .bytesOutRate: return e.bytesOutRate.rate(now: now, period: periods.bytesOut ?? 1)
        case .serverID: return e.serverID.load(ordering: .relaxed)
        case .tracked: return 1
        case .incrementGPC0:
            if let period = periods.gpc0 { e.gpc0Rate.add(1, now: now, period: period) }
            return e.gpc0.wrappingAdd(1, ordering: .relaxed).newValue
        case .clearGPC0:
            return e.gpc0.exchange(0, ordering: .relaxed)
        }
    }

    // MARK: Under a shard's lock

    /// The live entry of `key`, pinned; created when `create` (making room as needed).
    private func find(_ shard: inout Shard, _ key: StickKey, now: Int64, create: Bool) -> StickEntry? {
        if let slot = shard.index[key], let entry = shard.slots[Int(slot)].entry {
            // Pinning fails only for an expired entry nobody holds (a thread without the lock may
            // pin it meanwhile: then it is alive after all).
            while true {
                if entry.pin(now: now, expireMs: expireMs) { return entry }
                if entry.retire() { remove(&shard, slot); break }
            }
        }
        guard create else { return nil }
        if shard.index.count >= shard.capacity {
            guard !spec.noPurge, makeRoom(&shard) else { return nil }
        }
        let entry = StickEntry(key: key, now: now)
        _ = entry.pin(now: now, expireMs: expireMs)
        let slot: Int32
        if let free = shard.freeSlots.popLast() {
            slot = free
            shard.slots[Int(slot)] = Slot(entry: entry)
        } else {
            slot = Int32(shard.slots.count)
            shard.slots.append(Slot(entry: entry))
        }
        shard.index[key] = slot
        link(&shard, slot, at: now)
        return entry
    }

    /// Removes the least recently used entry nobody holds; false when every entry is held.
    private func makeRoom(_ shard: inout Shard) -> Bool {
        var cursor = shard.oldest
        var budget = 2 * shard.index.count + 2
        while cursor >= 0 && budget > 0 {
            budget -= 1
            let slot = shard.slots[Int(cursor)]
            guard let entry = slot.entry else { return false }
            let used = entry.lastUsed.load(ordering: .relaxed)
            if used > slot.linkedAt {
                // Used since it was linked: to its place by that use, then go on from whichever
                // of it and the next entry is older.
                let next = slot.newer
                unlink(&shard, cursor)
                link(&shard, cursor, at: used)
                cursor = next >= 0 && shard.slots[Int(next)].linkedAt <= used ? next : cursor
                continue
            }
            if entry.retire() {
                remove(&shard, cursor)
                return true
            }
            cursor = slot.newer
        }
        return false
    }

    /// Links `slot` into the use order at `time` (from the newest end: uses are recent).
    private func link(_ shard: inout Shard, _ slot: Int32, at time: Int64) {
        shard.slots[Int(slot)].linkedAt = time
        var before = shard.newest
        while before >= 0 && shard.slots[Int(before)].linkedAt > time { before = shard.slots[Int(before)].older }
        let after = before >= 0 ? shard.slots[Int(before)].newer : shard.oldest
        shard.slots[Int(slot)].older = before
        shard.slots[Int(slot)].newer = after
        if before >= 0 { shard.slots[Int(before)].newer = slot } else { shard.oldest = slot }
        if after >= 0 { shard.slots[Int(after)].older = slot } else { shard.newest = slot }
    }

    private func unlink(_ shard: inout Shard, _ slot: Int32) {
        let s = shard.slots[Int(slot)]
        if s.older >= 0 { shard.slots[Int(s.older)].newer = s.newer } else { shard.oldest = s.newer }
        if s.newer >= 0 { shard.slots[Int(s.newer)].older = s.older } else { shard.newest = s.older }
    }

    /// Drops a retired entry's slot (threads that cached it find it retired and let it go).
    private func remove(_ shard: inout Shard, _ slot: Int32) {
        unlink(&shard, slot)
        if let key = shard.slots[Int(slot)].entry?.key { shard.index[key] = nil }
        shard.slots[Int(slot)] = Slot()
        shard.freeSlots.append(slot)
    }

    // MARK: Runtime API

    /// One entry as `show table` reports it.
    struct Row {
        /// Stands for HAProxy's entry address in `show table` (shard and slot).
        var id: Int
        var key: StickKey
        var references: Int
        var expiresInMs: Int64?
        var values: [(StickData, Int64)]
        /// The stored server's name, where the table stores servers.
        var serverKey: String?
    }

    /// Live entries (expired ones that no session tracks are dropped on the way).
    func rows(now: Int64) -> [Row] {
        // HAProxy's data-type order (its STKTABLE_DT_* numbering).
        let order = [StickData.serverID, .gpt0, .gpc0, .gpc0Rate, .connectionsTotal, .connectionRate, .connectionsCurrent, .sessionsTotal, .sessionRate,
                     .bytesInTotal, .bytesInRate, .bytesOutTotal, .bytesOutRate]
            .filter { spec.stored[$0] != nil }
        var rows: [Row] = []
        for s in shards.indices {
            shards[s].withLock { shard in
                for (key, slot) in shard.index {
                    guard let e = shard.slots[Int(slot)].entry else { continue }
                    let held = e.references.load(ordering: .relaxed)
                    if held == 0 && e.expired(now: now, expireMs: expireMs) && e.retire() {
                        remove(&shard, slot)
                        continue
                    }
                    let expiresIn = expireMs == .max ? nil : max(0, e.lastUsed.load(ordering: .relaxed) + expireMs - now)
                    rows.append(Row(id: 0x1000 + s << 24 | Int(slot) * 0x40, key: key, references: max(0, held), expiresInMs: expiresIn,
                                    values: order.map { ($0, value(e, $0, now: now)) }, serverKey: e.serverKey.withLock { $0 }))
                }
            }
        }
        return rows
    }

    /// `clear table`: removes the entries (of `key` only, when given) that no session tracks.
    /// Returns how many were removed.
    @discardableResult
    func clear(key: StickKey?) -> Int {
        var removed = 0
        for s in shards.indices {
            shards[s].withLock { shard in
                let slots = key.map { shard.index[$0].map { [$0] } ?? [] } ?? Array(shard.index.values)
                for slot in slots where shard.slots[Int(slot)].entry?.retire() == true {
                    remove(&shard, slot)
                    removed += 1
                }
            }
        }
        return removed
    }

    var entryCount: Int { shards.reduce(0) { $0 + $1.withLock { $0.index.count } } }
}
