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
    }

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
            return .header(Received(length: total, source: source, destination: destination))
        case 0x21:  // TCP over IPv6
            guard length >= 36 else { return .invalid("v2 TCP6 address block of \(length) bytes") }
            let s = IPAddress.v6(IPAddress.load128(UnsafeRawBufferPointer(rebasing: data[16..<32]))).description
            let d = IPAddress.v6(IPAddress.load128(UnsafeRawBufferPointer(rebasing: data[32..<48]))).description
            guard let source = SocketAddress(ip: s, port: port(48)), let destination = SocketAddress(ip: d, port: port(50)) else {
                return .invalid("v2 TCP6 addresses did not parse")
            }
            return .header(Received(length: total, source: source, destination: destination))
        case 0x00, 0x12, 0x22, 0x31, 0x32:
            // UNSPEC, UDP, UNIX: accepted, and the connection's own addresses stay (as HAProxy).
            return .header(Received(length: total))
        default:
            return .invalid("v2 header with address family/protocol 0x\(String(family, radix: 16))")
        }
    }
}
