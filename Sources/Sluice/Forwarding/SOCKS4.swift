#if canImport(Glibc)
import Glibc
#endif

/// The SOCKS4 handshake with an upstream proxy (`socks4 <addr>:<port>` on a server, and
/// `check-via-socks4` for its checks), as HAProxy 2.6's `conn_send_socks4_proxy_request` and
/// `conn_recv_socks4_proxy_response` do it: once the TCP connection to the proxy is made, a CONNECT
/// request for the server's address with the user ID "HAProxy"; then the proxy's 8-byte reply,
/// peeked until it is whole (nothing of what follows is read), and consumed when it grants (code 90).
/// Only then do a PROXY header and the client's bytes go through the tunnel.
enum SOCKS4 {
    /// Why a handshake failed, in HAProxy's words (its `CO_ER_SOCKS4_*` messages), which a check
    /// reports as its SOCKERR information.
    enum Failure: Error, Equatable {
        case write, read, denied, aborted

        var message: String {
            switch self {
            case .write: "SOCKS4 Proxy write error during handshake"
            case .read: "SOCKS4 Proxy read error during handshake"
            case .denied: "SOCKS4 Proxy deny the request"
            case .aborted: "SOCKS4 Proxy handshake aborted by server"
            }
        }

        /// As a connect failure of the session (retried like a refused connect).
        var asConnectError: SystemError {
            SystemError(code: self == .denied ? ECONNREFUSED : ECONNRESET, call: message)
        }
    }

    /// The reply's length: version, code, port, address.
    static let replyLength = 8

    /// VN 4, CD 1 (CONNECT), the port and IPv4 address in network order, the user ID and its NUL.
    /// An address that is not IPv4 is sent as 0.0.0.0, as HAProxy's `is_inet_addr` gives it.
    static func request(for destination: SocketAddress) -> [UInt8] {
        let port = UInt16(truncatingIfNeeded: destination.port)
        let ip = destination.family == AF_INET ? destination.ipBytes : [0, 0, 0, 0]
        return [4, 1, UInt8(port >> 8), UInt8(port & 0xFF)] + ip + Array("HAProxy".utf8) + [0]
    }

    /// Sends the request on a freshly connected socket: a few bytes into an empty send buffer go in
    /// one call; anything less is a write failure.
    static func sendRequest(_ fd: CInt, for destination: SocketAddress) throws(Failure) {
        let bytes = request(for: destination)
        let sent = bytes.withUnsafeBytes { try? Socket.send(fd, from: $0) }
        guard case .processed(let n)? = sent, n == bytes.count else { throw .write }
    }

    /// Reads the reply once readable: true when the proxy granted the connection (the 8 bytes are
    /// consumed, what follows is the server's), false while it is incomplete.
    static func readReply(_ fd: CInt) throws(Failure) -> Bool {
        var reply = [UInt8](repeating: 0, count: replyLength)
        let peeked: IOResult<Int>
        do {
            peeked = try reply.withUnsafeMutableBytes { buffer throws(SystemError) in try Socket.receive(fd, into: buffer, peek: true) }
        } catch {
            throw .aborted
        }
        guard case .processed(let n) = peeked else { return false }  // not readable after all
        if n == 0 { throw .read }  // the proxy hung up
        if n < replyLength { return false }
        guard reply[1] == 90 else { throw .denied }
        let consumed = reply.withUnsafeMutableBytes { try? Socket.receive(fd, into: $0) }
        guard case .processed(replyLength)? = consumed else { throw .read }
        return true
    }
}
