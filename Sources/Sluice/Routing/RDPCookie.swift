#if canImport(Glibc)
import Glibc
#endif

/// The cookie an RDP client puts in its first packet (an X.224 Connection Request, whose 11-byte
/// header is followed by `Cookie: <name>=<value>\r\n`): `mstshash=<user>` from the client,
/// `msts=<address>.<port>.0000` as a connection broker's routing token. Read as HAProxy 2.6 reads
/// it (`req.rdp_cookie`, `balance rdp-cookie`, `persist rdp-cookie`).
enum RDPCookie {
    enum Outcome: Equatable {
        /// Where the value lies in the data.
        case value(Range<Int>)
        /// No such cookie (or not an RDP request).
        case none
        /// The data end before the answer is known: more may come.
        case incomplete
    }

    /// The value of the cookie `name` (any name when nil or empty) in `data`.
    static func find(_ data: UnsafeRawBufferPointer, name: [UInt8]?) -> Outcome {
        let prefix = Array("cookie:".utf8)
        var i = 11  // the TPKT and X.224 headers
        guard data.count > i + prefix.count else { return .incomplete }
        for (k, c) in prefix.enumerated() where lower(data[i + k]) != c { return .none }
        i += prefix.count
        while i < data.count && data[i] == UInt8(ascii: " ") { i += 1 }
        if let name, !name.isEmpty {
            guard data.count - i > name.count else { return .incomplete }
            guard data[i + name.count] == UInt8(ascii: "=") else { return .none }
            for (k, c) in name.enumerated() where lower(data[i + k]) != lower(c) { return .none }
            i += name.count + 1
        } else {
            while i < data.count && data[i] != UInt8(ascii: "=") {
                if data[i] == UInt8(ascii: "\r") || data[i] == UInt8(ascii: "\n") { return .none }
                i += 1
            }
            guard i < data.count else { return .incomplete }
            i += 1
        }
        let start = i
        while i < data.count && data[i] != UInt8(ascii: "\r") { i += 1 }
        guard data.count - i >= 2 else { return .incomplete }
        guard data[i + 1] == UInt8(ascii: "\n") else { return .none }
        return .value(start..<i)
    }

    /// `persist rdp-cookie`: the IPv4 address and port a routing token names (`<address>.<port>.…`:
    /// the address as the decimal of its four bytes read in memory order, the port byte-swapped,
    /// as HAProxy reads them on a little-endian host), or nil.
    static func routingToken(_ data: UnsafeRawBufferPointer, name: [UInt8]) -> (ip: String, port: Int)? {
        guard case .value(let range) = find(data, name: name) else { return nil }
        let fields = data[range].split(separator: UInt8(ascii: "."), maxSplits: 2, omittingEmptySubsequences: false)
        guard fields.count == 3, let address = UInt32(String(decoding: fields[0], as: UTF8.self)),
              let port = UInt16(String(decoding: fields[1], as: UTF8.self)) else { return nil }
        let ip = [address & 0xFF, address >> 8 & 0xFF, address >> 16 & 0xFF, address >> 24].map(String.init).joined(separator: ".")
        return (ip, Int(port.byteSwapped))
    }

    private static func lower(_ c: UInt8) -> UInt8 { c >= 65 && c <= 90 ? c + 32 : c }
}
