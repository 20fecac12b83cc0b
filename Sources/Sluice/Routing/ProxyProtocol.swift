#if canImport(Glibc)
import Glibc
#endif

/// Reading the PROXY protocol (HAProxy's proxy-protocol.txt) from clients: `bind … accept-proxy`
/// and `tcp-request connection expect-proxy layer4`. `ProxyHeader` writes it.
enum ProxyProtocol {
    /// v2's 12-byte signature.
    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// A header read from a client (`accept-proxy`).
    struct Received: Equatable {
        /// Bytes the header takes (consumed before anything is forwarded).
        var length: Int
        /// The addresses it carries; nil for v2 `LOCAL`, v1 `UNKNOWN` and address families other
        /// than TCP over IPv4/IPv6 (the connection's own addresses stay).
        var source: SocketAddress?
        var destination: SocketAddress?
        /// v2's PP2_TYPE_AUTHORITY (`fc_pp_authority`, passed on by `proxy-v2-options authority`).
        var authority: [UInt8]?
        /// v2's PP2_TYPE_UNIQUE_ID (`fc_pp_unique_id`).
        var uniqueID: [UInt8]?
    }

    /// v2's TLV types that Sluice reads or writes (proxy-protocol.txt 2.2).
    enum TLVType: UInt8 {
        case alpn = 0x01, authority = 0x02, crc32c = 0x03, noop = 0x04, uniqueID = 0x05, ssl = 0x20, netns = 0x30
    }

    /// HAProxy's limits on the TLVs it keeps: longer ones make the header invalid.
    static let authorityLimit = 255
    static let uniqueIDLimit = 128

    enum Parse: Equatable {
        case header(Received)
        case incomplete
        case invalid(String)
    }

    /// v1's longest line (proxy-protocol.txt 2.1: 107 bytes with CRLF).
    static let v1Limit = 107

    /// Parses the PROXY header at the start of `data` (v1 or v2, told apart by their first bytes),
    /// strictly: anything not a header of either version is invalid as soon as a byte shows it.
    static func parse(_ data: UnsafeRawBufferPointer) -> Parse {
        let v1Prefix = Array("PROXY ".utf8)
        if let first = data.first, first == UInt8(ascii: "P") {
            for (i, b) in v1Prefix.enumerated() where i < data.count && data[i] != b { return .invalid("not a PROXY header") }
            return parseV1(data)
        }
        for (i, b) in signature.enumerated() where i < data.count && data[i] != b { return .invalid("not a PROXY header") }
        if data.count < 16 { return .incomplete }
        return parseV2(data)
    }

    private static func parseV1(_ data: UnsafeRawBufferPointer) -> Parse {
        let limit = min(data.count, v1Limit)
        guard let lf = (0..<limit).first(where: { data[$0] == 0x0A }) else {
            return data.count >= v1Limit ? .invalid("v1 header longer than 107 bytes") : .incomplete
        }
        guard lf > 0, data[lf - 1] == 0x0D else { return .invalid("v1 header does not end with CRLF") }
        let line = String(decoding: UnsafeRawBufferPointer(rebasing: data[0..<(lf - 1)]), as: UTF8.self)
        let fields = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        if fields.count >= 2 && fields[1] == "UNKNOWN" { return .header(Received(length: lf + 1)) }
        guard fields.count == 6, fields[1] == "TCP4" || fields[1] == "TCP6" else { return .invalid("v1 header '\(line)' is malformed") }
        let v6 = fields[1] == "TCP6"
        func port(_ s: String) -> Int? {
            guard let p = Int(s), (0...65535).contains(p), s == String(p) else { return nil }
            return p
        }
        guard fields[2].contains(":") == v6, fields[3].contains(":") == v6,
              let sp = port(fields[4]), let dp = port(fields[5]),
              let source = SocketAddress(ip: fields[2], port: sp), let destination = SocketAddress(ip: fields[3], port: dp) else {
            return .invalid("v1 header '\(line)' has bad addresses or ports")
        }
        return .header(Received(length: lf + 1, source: source, destination: destination))
    }

    private static func parseV2(_ data: UnsafeRawBufferPointer) -> Parse {
        let versionCommand = data[12]
        guard versionCommand >> 4 == 2 else { return .invalid("v2 header with version \(versionCommand >> 4)") }
        let command = versionCommand & 0x0F
        guard command <= 1 else { return .invalid("v2 header with command \(command)") }
        let family = data[13]
        let length = Int(data[14]) << 8 | Int(data[15])
        let total = 16 + length
        guard data.count >= total else { return total > 16 + 65_535 ? .invalid("v2 header too long") : .incomplete }
        if command == 0 { return .header(Received(length: total)) }  // LOCAL: the sender's own connection
        func port(_ at: Int) -> Int { Int(data[at]) << 8 | Int(data[at + 1]) }
        switch family {
        case 0x11:  // TCP over IPv4
            guard length >= 12 else { return .invalid("v2 TCP4 address block of \(length) bytes") }
            let s = (16..<20).map { String(data[$0]) }.joined(separator: "."), d = (20..<24).map { String(data[$0]) }.joined(separator: ".")
            guard let source = SocketAddress(ip: s, port: port(24)), let destination = SocketAddress(ip: d, port: port(26)) else {
                return .invalid("v2 TCP4 addresses did not parse")
            }
            return withTLVs(data, from: 28, Received(length: total, source: source, destination: destination))
        case 0x21:  // TCP over IPv6
            guard length >= 36 else { return .invalid("v2 TCP6 address block of \(length) bytes") }
            let s = IPAddress.v6(IPAddress.load128(UnsafeRawBufferPointer(rebasing: data[16..<32]))).description
            let d = IPAddress.v6(IPAddress.load128(UnsafeRawBufferPointer(rebasing: data[32..<48]))).description
            guard let source = SocketAddress(ip: s, port: port(48)), let destination = SocketAddress(ip: d, port: port(50)) else {
                return .invalid("v2 TCP6 addresses did not parse")
            }
            return withTLVs(data, from: 52, Received(length: total, source: source, destination: destination))
        case 0x00, 0x12, 0x22, 0x31, 0x32:
            // UNSPEC, UDP, UNIX: accepted, and the connection's own addresses stay (as HAProxy).
            return .header(Received(length: total))
        default:
            return .invalid("v2 header with address family/protocol 0x\(String(family, radix: 16))")
        }
    }

    /// The TLVs after a TCP address block, checked as HAProxy 2.6's `conn_recv_proxy` checks them:
    /// each must fit in the header, a CRC32c must be 4 bytes and match, an authority or a unique ID
    /// must fit HAProxy's limits; other types are skipped.
    private static func withTLVs(_ data: UnsafeRawBufferPointer, from start: Int, _ header: Received) -> Parse {
        var received = header
        var at = start
        while at < header.length {
            guard at + 3 <= header.length else { return .invalid("v2 header with a truncated TLV at byte \(at)") }
            let length = Int(data[at + 1]) << 8 | Int(data[at + 2])
            let value = at + 3..<at + 3 + length
            guard value.upperBound <= header.length else { return .invalid("v2 TLV 0x\(String(data[at], radix: 16)) of \(length) bytes overruns the header") }
            switch TLVType(rawValue: data[at]) {
            case .crc32c?:
                guard length == 4 else { return .invalid("v2 CRC32c TLV of \(length) bytes") }
                let sent = value.reduce(UInt32(0)) { $0 << 8 | UInt32(data[$1]) }
                var crc = CRC32C()
                for i in 0..<header.length { crc.add(value.contains(i) ? 0 : data[i]) }
                guard crc.value == sent else { return .invalid("v2 header whose CRC32c does not match") }
            case .authority?:
                guard length <= authorityLimit else { return .invalid("v2 authority TLV of \(length) bytes (at most \(authorityLimit))") }
                received.authority = Array(UnsafeRawBufferPointer(rebasing: data[value]))
            case .uniqueID?:
                guard length <= uniqueIDLimit else { return .invalid("v2 unique ID TLV of \(length) bytes (at most \(uniqueIDLimit))") }
                received.uniqueID = Array(UnsafeRawBufferPointer(rebasing: data[value]))
            default:
                break
            }
            at = value.upperBound
        }
        return .header(received)
    }
}

/// CRC-32C (Castagnoli, reflected, as HAProxy's `hash_crc32c` and the PROXY protocol's CRC32c TLV).
struct CRC32C {
    private static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }
    private var state: UInt32 = 0xFFFF_FFFF

    mutating func add(_ byte: UInt8) {
        state = (state >> 8) ^ Self.table[Int((state ^ UInt32(byte)) & 0xFF)]
    }

    var value: UInt32 { state ^ 0xFFFF_FFFF }

    static func of(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc = CRC32C()
        for b in bytes { crc.add(b) }
        return crc.value
    }
}
