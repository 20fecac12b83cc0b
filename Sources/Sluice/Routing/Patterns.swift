/// A value a sample fetch returns (HAProxy's sample types: boolean, integer, IP, string, binary).
enum Sample {
    case bool(Bool)
    case int(Int64)
    case ip(IPAddress)
    case string([UInt8])
    case binary([UInt8])

    /// The bytes string-like matching sees: strings and binaries as they are; integers in decimal
    /// and addresses in text, as HAProxy casts them.
    var bytes: [UInt8] {
        switch self {
        case .string(let b), .binary(let b): b
        case .int(let v): Array(String(v).utf8)
        case .bool(let v): Array((v ? "1" : "0").utf8)
        case .ip(let a): Array(a.description.utf8)
        }
    }

    /// The sample cast to a string where HAProxy casts it (a log line, a `%[…]` name, a capture):
    /// as `bytes`, but a binary ends at its first NUL (HAProxy's `c_bin2str`).
    var text: [UInt8] {
        if case .binary(let b) = self, let nul = b.firstIndex(of: 0) { return Array(b[..<nul]) }
        return bytes
    }

    var integer: Int64? {
        switch self {
        case .int(let v): v
        case .bool(let v): v ? 1 : 0
        case .string(let b): Int64(String(decoding: b, as: UTF8.self))
        case .ip, .binary: nil
        }
    }
}

/// `-m <method>`: how an ACL compares a sample with its patterns (HAProxy section 7.1).
enum MatchMethod: String, Sendable, Hashable {
    case found, bool, int, ip, bin, len, str, sub, reg, beg, end, dir, dom
}

/// An integer pattern: a value, a range `lo:hi` (either side may be omitted), or an operator
/// (`eq ge gt le lt`) applied to a value. Matching only applies to non-negative values.
struct IntegerPattern: Sendable, Hashable {
    var low: Int64
    var high: Int64

    func matches(_ v: Int64) -> Bool { v >= low && v <= high }
}

/// The patterns of one ACL line, compiled for their method. Immutable once built; shared by every
/// reactor thread.
final class PatternSet: Sendable {
    let method: MatchMethod
    /// `str`/`bin`: exact values; `exactFolded` holds those given after `-i`, lower-cased.
    private let exact: Set<[UInt8]>
    /// `exact` when it is small: compared in turn, which is cheaper than hashing the sample.
    private let fewExact: [[UInt8]]?
    private let exactFolded: Set<[UInt8]>
    /// `beg`/`end`/`sub`/`dir`/`dom`: scanned in order (as HAProxy's lists).
    private let strings: [(bytes: [UInt8], ignoreCase: Bool)]
    private let regexes: [POSIXRegex]
    private let integers: [IntegerPattern]
    private let networks4: IntervalSet<UInt32>
    private let networks6: IntervalSet<UInt128>

    struct Builder {
        var method: MatchMethod
        var exact: Set<[UInt8]> = []
        var exactFolded: Set<[UInt8]> = []
        var strings: [(bytes: [UInt8], ignoreCase: Bool)] = []
        var regexes: [POSIXRegex] = []
        var integers: [IntegerPattern] = []
        var ranges4: [(UInt32, UInt32)] = []
        var ranges6: [(UInt128, UInt128)] = []
        /// `eq`/`ge`/`gt`/`le`/`lt` before integer patterns.
        var integerOperator = "eq"
        /// Integers are versions `major.minor` (`req.ssl_ver`).
        var dottedVersions = false

        init(method: MatchMethod) { self.method = method }

        /// Adds one pattern; returns why it is not valid for the method.
        mutating func add(_ text: String, ignoreCase: Bool) -> String? {
            switch method {
            case .found, .bool:
                return "'-m \(method.rawValue)' takes no pattern, but '\(text)' was given"
            case .int, .len:
                if ["eq", "ge", "gt", "le", "lt"].contains(text) {
                    integerOperator = text
                    return nil
                }
                guard let pattern = integerPattern(text) else {
                    return dottedVersions ? "'\(text)' is not a version (MAJOR.MINOR) or a range of them" : "'\(text)' is not an integer or a range 'low:high'"
                }
                integers.append(pattern)
            case .ip:
                let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
                guard let address = IPAddress(parts[0]) else {
                    return "'\(text)' is not an IP address or network (host names are not resolved in patterns; use addresses)"
                }
                guard let network = IPNetwork(text) else {
                    if case .v4 = address { return "'\(text)': bad netmask '\(parts[1])'" }
                    return "'\(text)': an IPv6 netmask is a bit count 0-128"
                }
                switch network.address {
                case .v4(let a): ranges4.append(IntervalSet<UInt32>.network(a, bits: network.bits))
                case .v6(let a): ranges6.append(IntervalSet<UInt128>.network(a, bits: network.bits))
                }
            case .bin:
                guard let bytes = Self.hex(text) else { return "'\(text)' is not an even number of hexadecimal digits" }
                exact.insert(bytes)
            case .str:
                if ignoreCase { exactFolded.insert(Self.lower(Array(text.utf8))) } else { exact.insert(Array(text.utf8)) }
            case .beg, .end, .sub, .dir, .dom:
                let bytes = Array(text.utf8)
                strings.append((ignoreCase ? Self.lower(bytes) : bytes, ignoreCase))
            case .reg:
                guard let regex = POSIXRegex(text, ignoreCase: ignoreCase) else { return "'\(text)' is not a valid regular expression" }
                regexes.append(regex)
            }
            return nil
        }

        private func integerPattern(_ text: String) -> IntegerPattern? {
            func value(_ s: Substring) -> Int64? {
                if dottedVersions {
                    let parts = s.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
                    guard let major = Int64(parts[0]), major >= 0 else { return nil }
                    guard parts.count == 2 else { return major << 16 }
                    guard let minor = Int64(parts[1]), (0...0xFFFF).contains(minor) else { return nil }
                    return major << 16 | minor
                }
                return Int64(s)
            }
            if text.contains(":") {
                let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                let low = parts[0].isEmpty ? Int64.min : value(parts[0])
                let high = parts[1].isEmpty ? Int64.max : value(parts[1])
                guard let low, let high, low <= high else { return nil }
                return IntegerPattern(low: low, high: high)
            }
            guard let v = value(Substring(text)) else { return nil }
            switch integerOperator {
            case "ge": return IntegerPattern(low: v, high: .max)
            case "gt": return v == .max ? IntegerPattern(low: 1, high: 0) : IntegerPattern(low: v + 1, high: .max)
            case "le": return IntegerPattern(low: .min, high: v)
            case "lt": return v == .min ? IntegerPattern(low: 1, high: 0) : IntegerPattern(low: .min, high: v - 1)
            default: return IntegerPattern(low: v, high: v)
            }
        }

        static func hex(_ text: String) -> [UInt8]? {
            let digits = Array(text.utf8)
            guard digits.count % 2 == 0 else { return nil }
            var out: [UInt8] = []
            out.reserveCapacity(digits.count / 2)
            var i = 0
            while i < digits.count {
                guard let h = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
                out.append(h)
                i += 2
            }
            return out
        }

        static func lower(_ b: [UInt8]) -> [UInt8] { b.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 } }
    }

    init(_ b: Builder) {
        method = b.method
        exact = b.exact
        fewExact = b.exact.count <= 8 ? Array(b.exact) : nil
        exactFolded = b.exactFolded
        strings = b.strings
        regexes = b.regexes
        integers = b.integers
        networks4 = IntervalSet(b.ranges4)
        networks6 = IntervalSet(b.ranges6)
    }

    /// Whether the sample matches any pattern.
    func matches(_ sample: Sample) -> Bool {
        switch method {
        case .found:
            return true
        case .bool:
            return (sample.integer ?? 0) != 0
        case .int:
            guard let v = sample.integer else { return false }
            return matches(integer: v)
        case .len:
            let length = Int64(sample.bytes.count)
            return integers.contains { $0.matches(length) }
        case .ip:
            let address: IPAddress
            switch sample {
            case .ip(let a): address = a
            case .string(let b), .binary(let b):
                guard let a = IPAddress(String(decoding: b, as: UTF8.self)) else { return false }
                address = a
            default: return false
            }
            return matches(address: address)
        case .str, .bin, .reg, .beg, .end, .sub, .dir, .dom:
            return matches(bytes: sample.bytes)
        }
    }

    /// `-m int` (and `len`) on an integer.
    func matches(integer v: Int64) -> Bool { integers.contains { $0.matches(v) } }

    /// `-m ip` on an address: an IPv4 address also matches IPv6 networks as `::ffff:a.b.c.d`, and
    /// an IPv4-mapped IPv6 address IPv4 networks.
    func matches(address: IPAddress) -> Bool {
        switch address {
        case .v4(let a):
            return networks4.contains(a) || (!networks6.isEmpty && networks6.contains(address.asV6))
        case .v6(let a):
            if networks6.contains(a) { return true }
            if let v4 = address.embeddedV4 { return networks4.contains(v4) }
            return false
        }
    }

    /// The string methods (`str bin reg beg end sub dir dom`) on a sample's bytes.
    func matches(bytes: [UInt8]) -> Bool {
        switch method {
        case .str, .bin:
            if fewExact.map({ $0.contains(bytes) }) ?? exact.contains(bytes) { return true }
            return !exactFolded.isEmpty && exactFolded.contains(Builder.lower(bytes))
        case .reg:
            return regexes.contains { $0.matches(bytes) }
        case .beg, .end, .sub, .dir, .dom:
            let folded = strings.contains { $0.ignoreCase } ? Builder.lower(bytes) : bytes
            return strings.contains { pattern in
                let subject = pattern.ignoreCase ? folded : bytes
                return Self.match(method, subject, pattern.bytes)
            }
        case .found, .bool, .int, .len, .ip:
            return false
        }
    }

    private static func match(_ method: MatchMethod, _ s: [UInt8], _ p: [UInt8]) -> Bool {
        switch method {
        case .beg: return s.starts(with: p)
        case .end: return s.count >= p.count && s.suffix(p.count).elementsEqual(p)
        case .sub: return p.isEmpty || occurrences(of: p, in: s, delimiters: nil)
        case .dir: return occurrences(of: trim(p, "/"), in: s, delimiters: Set("/".utf8))
        case .dom: return occurrences(of: trim(p, "./:?"), in: s, delimiters: Set("./:?".utf8))
        default: return false
        }
    }

    private static func trim(_ p: [UInt8], _ delimiters: String) -> ArraySlice<UInt8> {
        let set = Set(delimiters.utf8)
        var slice = p[...]
        while let f = slice.first, set.contains(f) { slice = slice.dropFirst() }
        while let l = slice.last, set.contains(l) { slice = slice.dropLast() }
        return slice
    }

    /// Whether `p` occurs in `s`; with delimiters, only where it is bounded by a delimiter or an end.
    private static func occurrences(of p: some Collection<UInt8>, in s: [UInt8], delimiters: Set<UInt8>?) -> Bool {
        let needle = Array(p)
        guard !needle.isEmpty, needle.count <= s.count else { return false }
        for start in 0...(s.count - needle.count) where s[start] == needle[0] {
            guard s[start..<start + needle.count].elementsEqual(needle) else { continue }
            guard let delimiters else { return true }
            let end = start + needle.count
            if (start == 0 || delimiters.contains(s[start - 1])) && (end == s.count || delimiters.contains(s[end])) { return true }
        }
        return false
    }
}

/// For the micro-benchmarks (bench/Benchmarks/Routing): an IP pattern list as `src -f` compiles it.
@_spi(Benchmarks) public struct NetworkListProbe: Sendable {
    private let set: PatternSet

    /// nil when a line is not a network.
    public init?(_ networks: [String]) {
        var builder = PatternSet.Builder(method: .ip)
        for n in networks where builder.add(n, ignoreCase: false) != nil { return nil }
        set = PatternSet(builder)
    }

    /// Whether an address (host byte order) is in one of the networks.
    public func contains(ipv4 address: UInt32) -> Bool { set.matches(.ip(.v4(address))) }
}
