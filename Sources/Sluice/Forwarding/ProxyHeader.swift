/// The PROXY protocol header a server receives before the client's bytes (`send-proxy`,
/// `send-proxy-v2`), as HAProxy's proxy-protocol.txt specifies and HAProxy 2.6's
/// `make_proxy_line` writes it: the client's address and the address it connected to, so that the
/// server sees the real client behind the balancer, then in v2 the TLVs `proxy-v2-options` asks for.
enum ProxyHeader {
    static let signature = ProxyProtocol.signature

    /// What v2 carries after the addresses, and the values only a session has.
    struct Extras {
        var options: ProxyV2Options = []
        /// The client's own v2 authority (`accept-proxy`), for `authority`.
        var authority: [UInt8]?
        /// The session's unique ID, for `unique-id`; nil for a health check (no session: no TLV).
        var uniqueID: [UInt8]?
    }

    /// The header for a session's server: the client's addresses, from its own PROXY header
    /// (`accept-proxy`, kept in `context`) or rules (`set-src`…) when there are, else from its socket.
    /// `uniqueID` is asked for only with `proxy-v2-options unique-id` (building it may cost a line).
    static func forClient(_ client: CInt, context: SessionContext?, version: ProxyProtocolVersion,
                          options: ProxyV2Options = [], uniqueID: @autoclosure () -> [UInt8]? = nil) throws -> [UInt8] {
        let extras = Extras(options: options, authority: context?.proxyAuthority, uniqueID: options.contains(.uniqueID) ? uniqueID() ?? [] : nil)
        return bytes(version, source: try context?.source ?? Socket.peerAddress(client),
                     destination: try context?.destination ?? Socket.localAddress(client), extras: extras)
    }

    /// The header for a connection from `source` to `destination`; nil addresses (a health
    /// check's v2 header) make v1's `UNKNOWN` and v2's LOCAL command. As HAProxy, an IPv4 address
    /// beside an IPv6 one (rules may set either) is written as IPv4-mapped IPv6. A UNIX socket on
    /// either side counts as unknown too (HAProxy's `make_proxy_line_v1`/`_v2`).
    static func bytes(_ version: ProxyProtocolVersion, source: SocketAddress?, destination: SocketAddress?, extras: Extras = Extras()) -> [UInt8] {
        let addresses = source.flatMap { s in destination.flatMap { d in s.isUnix || d.isUnix ? nil : (s, d) } }
        let mixed = addresses.map { $0.0.family != $0.1.family } ?? false
        let pair = addresses.map { mixed ? ($0.0.ipv6Mapped, $0.1.ipv6Mapped) : $0 }
        let v6 = pair.map { $0.0.family == AF_INET6 } ?? false
        guard version == .v2 else {
            guard let (s, d) = pair else { return Array("PROXY UNKNOWN\r\n".utf8) }
            return Array("PROXY \(v6 ? "TCP6" : "TCP4") \(s.ip) \(d.ip) \(s.port) \(d.port)\r\n".utf8)
        }
        var header = signature
        if let (s, d) = pair {
            header += [0x21, v6 ? 0x21 : 0x11, 0, 0]  // version 2 PROXY, TCP over IPv6 / IPv4, length later
            header += s.ipBytes
            header += d.ipBytes
            header += [UInt8(s.port >> 8), UInt8(s.port & 0xFF), UInt8(d.port >> 8), UInt8(d.port & 0xFF)]
        } else {
            header += [0x20, 0x00, 0, 0]  // version 2 LOCAL, AF_UNSPEC: the proxy's own connection
        }
        // HAProxy's order: CRC32c (zero until the end), ALPN (TLS only), authority, unique ID, SSL.
        var crcAt: Int?
        if extras.options.contains(.crc32c) {
            crcAt = header.count + 3
            appendTLV(.crc32c, [0, 0, 0, 0], to: &header)
        }
        if extras.options.contains(.authority), let authority = extras.authority { appendTLV(.authority, authority, to: &header) }
        if let uniqueID = extras.uniqueID { appendTLV(.uniqueID, uniqueID, to: &header) }
        // Client flags 0 (not TLS: Sluice terminates none), verify result 0, no sub-TLVs.
        if extras.options.contains(.ssl) { appendTLV(.ssl, [0, 0, 0, 0, 0], to: &header) }
        let length = header.count - 16
        header[14] = UInt8(length >> 8)
        header[15] = UInt8(length & 0xFF)
        if let crcAt {
            let crc = CRC32C.of(header)
            header.replaceSubrange(crcAt..<crcAt + 4, with: [UInt8(crc >> 24), UInt8((crc >> 16) & 0xFF), UInt8((crc >> 8) & 0xFF), UInt8(crc & 0xFF)])
        }
        return header
    }

    private static func appendTLV(_ type: ProxyProtocol.TLVType, _ value: [UInt8], to header: inout [UInt8]) {
        header += [type.rawValue, UInt8(value.count >> 8), UInt8(value.count & 0xFF)]
        header += value
    }
}

#if canImport(Glibc)
import Glibc
#endif
