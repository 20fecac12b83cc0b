/// One place a DNS answer offers: an address, and with SRV a port and weight.
struct DNSTarget: Hashable, Sendable {
    var ip: IPAddress
    /// SRV: the record's port; nil: the server line's port.
    var port: Int?
    /// SRV: the record's weight (0...65535); nil for A/AAAA.
    var srvWeight: Int?
    /// SRV: the target host the record names (`show servers state`'s `srv_fqdn`).
    var name: String?

    /// The same place: address and port (a weight change does not move a slot).
    func same(as other: DNSTarget) -> Bool { ip == other.ip && port == other.port }

    /// HAProxy's mapping of an SRV weight to a server weight (never 0, so the server is used).
    var serverWeight: Int? { srvWeight.map { $0 / 256 + 1 } }
}

/// Which servers take which of the addresses an answer offers. Pure, so it is tested alone.
enum AddressAssignment {
    /// A single server's address: its current one while still offered; otherwise the first offered
    /// in `networks` (`resolve-net`), then any, leaving out addresses in `taken` (held by other
    /// servers of the backend, HAProxy's `prevent-dup-ip`). Nil when nothing is left.
    static func pick(current: DNSTarget?, offered: [DNSTarget], networks: [IPNetwork], taken: Set<IPAddress>) -> DNSTarget? {
        if let current, offered.contains(where: { $0.same(as: current) }) { return current }
        let free = offered.filter { !taken.contains($0.ip) }
        return free.first { target in networks.contains { $0.contains(target.ip) } } ?? free.first
    }

    /// A template's slots: each keeps its target while it is offered (or in `kept`, still inside
    /// `hold obsolete`); the other offered targets go, in answer order (`resolve-net` first), to the
    /// slots left, lowest first; slots without one get nil. `leftOut` counts offered targets no slot took.
    static func fill(slots: [DNSTarget?], offered: [DNSTarget], kept: [DNSTarget] = [], networks: [IPNetwork] = []) -> (slots: [DNSTarget?], leftOut: Int) {
        var result: [DNSTarget?] = slots.map { current in
            guard let current else { return nil }
            return (offered + kept).contains { $0.same(as: current) } ? current : nil
        }
        // An offered target keeps its fresh weight in the slot that holds it.
        for s in result.indices { if let held = result[s], let fresh = offered.first(where: { $0.same(as: held) }) { result[s] = fresh } }
        let inNetworks = offered.filter { t in networks.contains { $0.contains(t.ip) } }
        let ordered = inNetworks + offered.filter { t in !inNetworks.contains(t) }
        var leftOut = 0
        var free = result.indices.filter { result[$0] == nil }.makeIterator()
        for target in ordered where !result.contains(where: { $0?.same(as: target) == true }) {
            guard let slot = free.next() else {
                leftOut += 1
                continue
            }
            result[slot] = target
        }
        return (result, leftOut)
    }
}

extension IPAddress {
    /// 4 bytes (IPv4) or 16 (IPv6) in network order, as a DNS record carries them.
    init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4: self = .v4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
        case 16: self = .v6(bytes.withUnsafeBytes { IPAddress.load128($0) })
        default: return nil
        }
    }
}
