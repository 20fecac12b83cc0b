#if canImport(Glibc)
import Glibc
#endif

/// An IP address as ACLs and stick tables see it: IPv4 kept as 32 bits, IPv6 as 128.
enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(UInt32)
    case v6(UInt128)

    /// Parses `a.b.c.d` (and the abbreviated forms HAProxy accepts, `127.1` = 127.0.0.1, through
    /// `inet_aton`) or an IPv6 address.
    init?(_ text: some StringProtocol) {
        let string = String(text)
        var v4 = in_addr()
        if !string.contains(":") {
            guard !string.isEmpty, string.allSatisfy({ $0.isNumber || $0 == "." }), inet_aton(string, &v4) != 0 else { return nil }
            self = .v4(UInt32(bigEndian: v4.s_addr))
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, string, &v6) == 1 else { return nil }
        self = .v6(withUnsafeBytes(of: v6) { Self.load128($0) })
    }

    var isV4: Bool {
        if case .v4 = self { true } else { false }
    }

    init(_ address: SocketAddress) {
        // Straight from the sockaddr: every `src`/`dst` test and stick key reads it (no array).
        self = address.withSockaddr { pointer, _ in
            let raw = UnsafeRawPointer(pointer)
            if address.family == AF_INET {
                return .v4(UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!, as: UInt32.self)))
            }
            let offset = MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!
            return .v6(Self.load128(UnsafeRawBufferPointer(start: raw + offset, count: 16)))
        }
    }

    /// Reads 16 bytes in network order.
    static func load128(_ raw: UnsafeRawBufferPointer) -> UInt128 {
        let high = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        let low = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        return UInt128(high) << 64 | UInt128(low)
    }

    /// The IPv4 address an IPv6 one carries, in the three forms HAProxy matches against IPv4
    /// patterns: `::ffff:a.b.c.d`, `::a.b.c.d` and `2002:a.b.c.d::`.
    var embeddedV4: UInt32? {
        guard case .v6(let a) = self else { return nil }
        if a >> 32 == 0xFFFF || (a >> 32 == 0 && a > 1) { return UInt32(truncatingIfNeeded: a) }
        if a >> 112 == 0x2002 && UInt64(truncatingIfNeeded: a) == 0 && UInt16(truncatingIfNeeded: a >> 64) == 0 {
            return UInt32(truncatingIfNeeded: a >> 80)
        }
        return nil
    }

    /// This address as IPv6 (IPv4 mapped as `::ffff:a.b.c.d`), as HAProxy compares an IPv4 sample
    /// with an IPv6 pattern.
    var asV6: UInt128 {
        switch self {
        case .v4(let a): UInt128(0xFFFF) << 32 | UInt128(a)
        case .v6(let a): a
        }
    }

    var description: String {
        switch self {
        case .v4(let a):
            return "\(a >> 24).\(a >> 16 & 0xFF).\(a >> 8 & 0xFF).\(a & 0xFF)"
        case .v6(let a):
            var raw = in6_addr()
            withUnsafeMutableBytes(of: &raw) { p in
                p.storeBytes(of: UInt64(truncatingIfNeeded: a >> 64).bigEndian, toByteOffset: 0, as: UInt64.self)
                p.storeBytes(of: UInt64(truncatingIfNeeded: a).bigEndian, toByteOffset: 8, as: UInt64.self)
            }
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count))
            return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}

/// A set of networks, looked up in O(log n): overlapping and adjacent networks are merged into
/// disjoint sorted intervals at build time, and a lookup is one binary search. (An ACL only asks
/// whether an address is in any of its networks, so the union answers it exactly.)
struct IntervalSet<Value: FixedWidthInteger & UnsignedInteger & Sendable>: Sendable {
    private(set) var lows: [Value] = []
    private(set) var highs: [Value] = []

    init(_ ranges: [(Value, Value)]) {
        for (low, high) in ranges.sorted(by: { $0.0 < $1.0 }) {
            if let last = highs.last, low <= last || (last != .max && low == last + 1) {
                highs[highs.count - 1] = max(last, high)
            } else {
                lows.append(low)
                highs.append(high)
            }
        }
    }

    /// The network `address/bits` as an inclusive range.
    static func network(_ address: Value, bits: Int) -> (Value, Value) {
        let hostBits = Value.bitWidth - bits
        let mask: Value = hostBits >= Value.bitWidth ? 0 : ~Value(0) << hostBits
        return (address & mask, address | ~mask)
    }

    var isEmpty: Bool { lows.isEmpty }
    var count: Int { lows.count }

    func contains(_ value: Value) -> Bool {
        // The last interval whose low is <= value.
        var low = 0, high = lows.count
        while low < high {
            let mid = (low + high) / 2
            if lows[mid] <= value { low = mid + 1 } else { high = mid }
        }
        return low > 0 && value <= highs[low - 1]
    }
}

/// One network, `address[/bits]` (IPv4 also with a dotted mask), as `resolve-net` lists them.
struct IPNetwork: Hashable, Sendable {
    let address: IPAddress
    let bits: Int

    init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        let width = if case .v4 = address { 32 } else { 128 }
        var bits = width
        if parts.count == 2 {
            if let b = Int(parts[1]), (0...width).contains(b) {
                bits = b
            } else if width == 32, case .v4(let m)? = IPAddress(parts[1]), (~m & (~m &+ 1)) == 0 {
                bits = m.nonzeroBitCount
            } else {
                return nil
            }
        }
        self.address = address
        self.bits = bits
    }

    func contains(_ candidate: IPAddress) -> Bool {
        switch (address, candidate) {
        case (.v4(let n), .v4(let a)):
            let (low, high) = IntervalSet<UInt32>.network(n, bits: bits)
            return (low...high).contains(a)
        case (.v6(let n), .v6(let a)):
            let (low, high) = IntervalSet<UInt128>.network(n, bits: bits)
            return (low...high).contains(a)
        default:
            return false
        }
    }
}
