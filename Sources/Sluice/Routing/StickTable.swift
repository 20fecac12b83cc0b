import Synchronization

/// A counter a stick table keeps per key (`store <type>`), and the fetches that read it.
enum StickData: Hashable, Sendable {
    case connectionsCurrent, connectionsTotal, connectionRate
    case sessionsTotal, sessionRate
    case gpc0, gpc0Rate
    /// Bytes from the client (`bytes_in_*`) and to it (`bytes_out_*`) while tracked.
    case bytesInTotal, bytesInRate, bytesOutTotal, bytesOutRate
    /// The server a `stick` rule stored for the key (its ordinal + 1).
    case serverID
    /// Fetch-only: whether the counter slot tracks an entry (`sc0_tracked`).
    case tracked
    /// Fetch-only actions on gpc0 (`sc0_inc_gpc0`, `sc0_clr_gpc0`): return the new (old) value.
    case incrementGPC0, clearGPC0

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
    public enum KeyType: Hashable, Sendable { case ipv4, ipv6, integer, string(length: Int) }
    /// The proxy that declares it; tables are named after their proxy.
    public var name: String
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
/// period plus the previous period's weighted by how much of it the window still covers.
struct RateCounter {
    var periodStart: Int64 = 0
    var current: Int64 = 0
    var previous: Int64 = 0

    mutating func rotate(now: Int64, period: Int64) {
        let elapsed = now - periodStart
        guard elapsed >= period else { return }
        previous = elapsed >= 2 * period ? 0 : current
        current = 0
        periodStart = now - elapsed % period
    }

    mutating func add(_ n: Int64, now: Int64, period: Int64) {
        rotate(now: now, period: period)
        current += n
    }

    func rate(now: Int64, period: Int64) -> Int64 {
        var copy = self
        copy.rotate(now: now, period: period)
        let remaining = period - (now - copy.periodStart)
        return copy.current + (copy.previous * remaining + period - 1) / period
    }
}

/// A key of a stick table, converted to the table's type.
enum StickKey: Hashable, Sendable, CustomStringConvertible {
    case ip(IPAddress)
    case integer(Int64)
    case string([UInt8])

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
        }
    }

    var description: String {
        switch self {
        case .ip(let a): a.description
        case .integer(let v): String(v)
        case .string(let b): String(decoding: b, as: UTF8.self)
        }
    }
}

/// A stick table shared by every reactor thread. Entries live in shards, each behind its own
/// mutex held only for a handful of loads and stores, so threads rarely meet. `size` is a hard
/// limit: a new key takes the place of the least recently used entry no session tracks, or is not
/// tracked when every entry is in use (HAProxy's behaviour).
final class StickTable: Sendable {
    let spec: StickTableSpec
    private let shards: [Locked]
    private let expireMs: Int64

    struct Handle: Sendable {
        let shard: Int32
        let slot: Int32
    }

    struct Entry {
        var key: StickKey
        var references = 0
        var connectionsCurrent: Int64 = 0
        var connectionsTotal: Int64 = 0
        var connectionRate = RateCounter()
        var sessionsTotal: Int64 = 0
        var sessionRate = RateCounter()
        var gpc0: Int64 = 0
        var gpc0Rate = RateCounter()
        var serverID: Int64 = 0
        var bytesIn: Int64 = 0
        var bytesInRate = RateCounter()
        var bytesOut: Int64 = 0
        var bytesOutRate = RateCounter()
        var expiresAt: Int64 = .max
        // Least-recently-used list, by slot.
        var newer: Int32 = -1
        var older: Int32 = -1
    }

    /// One shard behind its mutex (a class: a `Mutex` cannot sit in an array by value).
    final class Locked: Sendable {
        let mutex: Mutex<Shard>
        init(_ shard: Shard) { mutex = Mutex(shard) }
        func withLock<R>(_ body: (inout Shard) -> R) -> R { mutex.withLock { body(&$0) } }
    }

    struct Shard {
        var index: [StickKey: Int32] = [:]
        var entries: [Entry] = []
        var freeSlots: [Int32] = []
        var newest: Int32 = -1
        var oldest: Int32 = -1
        let capacity: Int

        init(capacity: Int) { self.capacity = capacity }
    }

    init(_ spec: StickTableSpec) {
        self.spec = spec
        let count = spec.size >= 4096 ? 16 : 1
        shards = (0..<count).map { _ in Locked(Shard(capacity: spec.size / count)) }
        expireMs = spec.expire?.milliseconds ?? .max
    }

    private func shard(of key: StickKey) -> Int { shards.count == 1 ? 0 : Int(UInt(bitPattern: key.hashValue) % UInt(shards.count)) }

    /// Starts tracking `key` for a connection: the entry (created if needed) counts one more current
    /// and total connection. Nil when the table is full of tracked entries.
    func track(_ key: StickKey, now: Int64) -> Handle? {
        let s = shard(of: key)
        let period = spec.stored[.connectionRate]
        return shards[s].withLock { shard -> Handle? in
            guard let slot = find(&shard, key, now: now, create: true) else { return nil }
            let i = Int(slot)
            shard.entries[i].references += 1
            shard.entries[i].connectionsCurrent += 1
            shard.entries[i].connectionsTotal += 1
            if let period { shard.entries[i].connectionRate.add(1, now: now, period: period) }
            return Handle(shard: Int32(s), slot: slot)
        }
    }

    /// The connection became a session (it passed the connection rules).
    func countSession(_ handle: Handle, now: Int64) {
        let period = spec.stored[.sessionRate]
        shards[Int(handle.shard)].withLock { shard in
            let i = Int(handle.slot)
            shard.entries[i].sessionsTotal += 1
            if let period { shard.entries[i].sessionRate.add(1, now: now, period: period) }
        }
    }

    /// The tracking connection ended.
    func release(_ handle: Handle, now: Int64) {
        shards[Int(handle.shard)].withLock { shard in
            let i = Int(handle.slot)
            shard.entries[i].references -= 1
            shard.entries[i].connectionsCurrent -= 1
            touch(&shard, handle.slot, now: now)
        }
    }

    /// A counter of a tracked entry (applying `inc_gpc0`/`clr_gpc0`); nil when the table does not
    /// store that type.
    func read(_ handle: Handle, _ data: StickData, now: Int64) -> Int64? {
        guard data == .tracked || spec.stored[data.stored] != nil else { return nil }
        return shards[Int(handle.shard)].withLock { shard in
            Self.value(&shard.entries[Int(handle.slot)], data, spec: spec, now: now)
        }
    }

    /// A counter of `key`'s entry without tracking it; 0 when there is no entry (HAProxy's `src_*`).
    func read(_ key: StickKey, _ data: StickData, now: Int64) -> Int64? {
        guard spec.stored[data.stored] != nil else { return nil }
        return shards[shard(of: key)].withLock { shard in
            let create = data == .incrementGPC0
            guard let slot = find(&shard, key, now: now, create: create) else { return 0 }
            return Self.value(&shard.entries[Int(slot)], data, spec: spec, now: now)
        }
    }

    /// `stick match`: the server stored for `key`, if any (0 is none).
    func server(for key: StickKey, now: Int64) -> Int64? {
        shards[shard(of: key)].withLock { shard in
            guard let slot = find(&shard, key, now: now, create: false) else { return nil }
            let id = shard.entries[Int(slot)].serverID
            return id > 0 ? id : nil
        }
    }

    /// `stick store-request` (and `stick on`): `key` sticks to `server` from now on; false when the
    /// table is full (`nopurge`, or every entry tracked).
    @discardableResult
    func store(_ key: StickKey, server: Int64, now: Int64) -> Bool {
        shards[shard(of: key)].withLock { shard in
            guard let slot = find(&shard, key, now: now, create: true) else { return false }
            shard.entries[Int(slot)].serverID = server
            return true
        }
    }

    /// Whether this table stores any byte counter.
    var countsBytes: Bool { StickData.byteTypes.contains { spec.stored[$0] != nil } }

    /// Bytes a tracked session moved: `received` from the client, `sent` to it.
    func addBytes(_ handle: Handle, received: Int, sent: Int, now: Int64) {
        let inPeriod = spec.stored[.bytesInRate], outPeriod = spec.stored[.bytesOutRate]
        shards[Int(handle.shard)].withLock { shard in
            let i = Int(handle.slot)
            shard.entries[i].bytesIn += Int64(received)
            shard.entries[i].bytesOut += Int64(sent)
            if let inPeriod, received > 0 { shard.entries[i].bytesInRate.add(Int64(received), now: now, period: inPeriod) }
            if let outPeriod, sent > 0 { shard.entries[i].bytesOutRate.add(Int64(sent), now: now, period: outPeriod) }
        }
    }

    /// `sc-inc-gpc0`: one more on gpc0 (and gpc0_rate).
    func incrementGPC0(_ handle: Handle, now: Int64) {
        _ = read(handle, .incrementGPC0, now: now)
    }

    private static func value(_ e: inout Entry, _ data: StickData, spec: StickTableSpec, now: Int64) -> Int64 {
        switch data {
        case .connectionsCurrent: return e.connectionsCurrent
        case .connectionsTotal: return e.connectionsTotal
        case .connectionRate: return e.connectionRate.rate(now: now, period: spec.stored[.connectionRate] ?? 1)
        case .sessionsTotal: return e.sessionsTotal
        case .sessionRate: return e.sessionRate.rate(now: now, period: spec.stored[.sessionRate] ?? 1)
        case .gpc0: return e.gpc0
        case .gpc0Rate: return e.gpc0Rate.rate(now: now, period: spec.stored[.gpc0Rate] ?? 1)
        case .bytesInTotal: return e.bytesIn
        case .bytesInRate: return e.bytesInRate.rate(now: now, period: spec.stored[.bytesInRate] ?? 1)
        case .bytesOutTotal: return e.bytesOut
        case .bytesOutRate: return e.bytesOutRate.rate(now: now, period: spec.stored[.bytesOutRate] ?? 1)
        case .serverID: return e.serverID
        case .tracked: return 1
        case .incrementGPC0:
            e.gpc0 += 1
            if let period = spec.stored[.gpc0Rate] { e.gpc0Rate.add(1, now: now, period: period) }
            return e.gpc0
        case .clearGPC0:
            defer { e.gpc0 = 0 }
            return e.gpc0
        }
    }

    /// The entry of `key`, touched; created when `create` (evicting as needed).
    private func find(_ shard: inout Shard, _ key: StickKey, now: Int64, create: Bool) -> Int32? {
        if let slot = shard.index[key] {
            if shard.entries[Int(slot)].expiresAt > now || shard.entries[Int(slot)].references > 0 {
                // Reading a counter does not refresh an entry (as HAProxy's lookups); tracking does.
                if create { touch(&shard, slot, now: now) }
                return slot
            }
            remove(&shard, slot)  // expired: start afresh
        }
        guard create else { return nil }
        if shard.index.count >= shard.capacity {
            if spec.noPurge { return nil }
            // The least recently used entry that no session tracks (expired ones first, as they are oldest).
            var candidate = shard.oldest
            while candidate >= 0 && shard.entries[Int(candidate)].references > 0 { candidate = shard.entries[Int(candidate)].newer }
            guard candidate >= 0 else { return nil }
            remove(&shard, candidate)
        }
        let slot: Int32
        if let free = shard.freeSlots.popLast() {
            slot = free
            shard.entries[Int(slot)] = Entry(key: key)
        } else {
            slot = Int32(shard.entries.count)
            shard.entries.append(Entry(key: key))
        }
        shard.index[key] = slot
        link(&shard, slot)
        shard.entries[Int(slot)].expiresAt = expireMs == .max ? .max : now + expireMs
        return slot
    }

    private func touch(_ shard: inout Shard, _ slot: Int32, now: Int64) {
        shard.entries[Int(slot)].expiresAt = expireMs == .max ? .max : now + expireMs
        unlink(&shard, slot)
        link(&shard, slot)
    }

    private func link(_ shard: inout Shard, _ slot: Int32) {
        shard.entries[Int(slot)].older = shard.newest
        shard.entries[Int(slot)].newer = -1
        if shard.newest >= 0 { shard.entries[Int(shard.newest)].newer = slot }
        shard.newest = slot
        if shard.oldest < 0 { shard.oldest = slot }
    }

    private func unlink(_ shard: inout Shard, _ slot: Int32) {
        let e = shard.entries[Int(slot)]
        if e.older >= 0 { shard.entries[Int(e.older)].newer = e.newer } else { shard.oldest = e.newer }
        if e.newer >= 0 { shard.entries[Int(e.newer)].older = e.older } else { shard.newest = e.older }
    }

    private func remove(_ shard: inout Shard, _ slot: Int32) {
        unlink(&shard, slot)
        shard.index[shard.entries[Int(slot)].key] = nil
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
    }

    /// Live entries (expired ones that no session tracks are dropped on the way).
    func rows(now: Int64) -> [Row] {
        // HAProxy's data-type order (its STKTABLE_DT_* numbering).
        let order = [StickData.serverID, .gpc0, .gpc0Rate, .connectionsTotal, .connectionRate, .connectionsCurrent, .sessionsTotal, .sessionRate,
                     .bytesInTotal, .bytesInRate, .bytesOutTotal, .bytesOutRate]
            .filter { spec.stored[$0] != nil }
        var rows: [Row] = []
        for s in shards.indices {
            shards[s].withLock { shard in
                for (key, slot) in shard.index {
                    var e = shard.entries[Int(slot)]
                    if e.expiresAt <= now && e.references == 0 {
                        remove(&shard, slot)
                        continue
                    }
                    rows.append(Row(id: 0x1000 + s << 24 | Int(slot) * 0x40, key: key, references: e.references, expiresInMs: e.expiresAt == .max ? nil : e.expiresAt - now,
                                    values: order.map { ($0, Self.value(&e, $0, spec: spec, now: now)) }))
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
                for slot in slots where shard.entries[Int(slot)].references == 0 {
                    remove(&shard, slot)
                    removed += 1
                }
            }
        }
        return removed
    }

    var entryCount: Int { shards.reduce(0) { $0 + $1.withLock { $0.index.count } } }
}
