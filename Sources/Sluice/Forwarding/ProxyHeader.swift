/// The PROXY protocol header a server receives before the client's bytes (`send-proxy`,
/// `send-proxy-v2`), as HAProxy's proxy-protocol.txt specifies: the client's address and the
/// address it connected to, so that the server sees the real client behind the balancer.
enum ProxyHeader {
    /// The largest header built: v1's longest line is 107 bytes, v2 with IPv6 is 52.
    static let maxSize = 108

    static let signature = ProxyProtocol.signature

    /// v2's LOCAL command: the connection was made by the proxy itself (a health check), no addresses.
    static let localCommand: [UInt8] = signature + [0x20, 0x00, 0x00, 0x00]

    /// The header for a session's server: the client's addresses, from its own PROXY header
    /// (`accept-proxy`, kept in `context`) when it sent one, else from its socket.
    static func forClient(_ client: CInt, context: SessionContext?, version: ProxyProtocolVersion) throws -> [UInt8] {
        bytes(version, source: try context?.source ?? Socket.peerAddress(client),
              destination: try context?.destination ?? Socket.localAddress(client))
    }

    /// The header for a connection from `source` to `destination` (the client's peer and local
    /// addresses). Addresses of different families (which one socket never has) are sent as
    /// `UNKNOWN` (v1) or `AF_UNSPEC` (v2), which the specification allows.
    static func bytes(_ version: ProxyProtocolVersion, source: SocketAddress, destination: SocketAddress) -> [UInt8] {
        let sameFamily = source.family == destination.family
        let v6 = source.family != AF_INET
        switch version {
        case .v1:
            guard sameFamily else { return Array("PROXY UNKNOWN\r\n".utf8) }
            return Array("PROXY \(v6 ? "TCP6" : "TCP4") \(source.ip) \(destination.ip) \(source.port) \(destination.port)\r\n".utf8)
        case .v2:
            var header = signature
            header.append(0x21)  // version 2, command PROXY
            guard sameFamily else {
                header += [0x00, 0x00, 0x00]  // AF_UNSPEC, no address block
                return header
            }
            header.append(v6 ? 0x21 : 0x11)  // TCP over IPv6 / IPv4
            let length = v6 ? 36 : 12
            header += [UInt8(length >> 8), UInt8(length & 0xFF)]
            header += source.ipBytes
            header += destination.ipBytes
            header += [UInt8(source.port >> 8), UInt8(source.port & 0xFF), UInt8(destination.port >> 8), UInt8(destination.port & 0xFF)]
            return header
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
