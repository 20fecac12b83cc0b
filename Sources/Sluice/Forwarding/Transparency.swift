import CShims
#if canImport(Glibc)
import Glibc
#endif

/// Transparent proxying: the addresses a server connection uses when they are the client's.

extension SocketAddress {
    /// A server address as HAProxy's `assign_server_address` reads it at connect: the wildcard
    /// address (`server s 0.0.0.0:8080`) stands for the address the client asked for, port 0
    /// (`server s 10.0.0.1`) for its port — the destination before NAT, or as a PROXY header or
    /// `set-dst` gave it.
    ///
    /// - Throws: `ELOOP` when a wildcard server would take the client back to the listener it came
    ///   through (it asked for this proxy itself: no NAT sent it here), where HAProxy would loop
    ///   until its connection limit.
    func resolved(client fd: CInt, context: SessionContext?) throws(SystemError) -> SocketAddress {
        guard port == 0 || isWildcard, !isUnix else { return self }
        let listener = try? Socket.localAddress(fd)  // read once: the fallback and the loop guard
        guard let asked = context?.destination ?? Socket.originalDestination(fd) ?? listener else { return self }
        var address = isWildcard ? asked.with(port: port) : self  // the family comes with the address
        if port == 0 { address = address.with(port: asked.port) }
        if isWildcard, let listener, address == listener {
            throw SystemError(code: ELOOP, call: "connect", operand: "\(address) (server \(self) is the address the client asked for, and it asked for this proxy)")
        }
        return address
    }
}

/// `usesrc`: the source address a forwarded connection presents to its server (full transparent
/// proxying). Health checks never present one: they leave from `source`'s own address.
extension SourceBinding {
    /// The address to bind before connecting for the client on `fd` (nil without `usesrc`): the
    /// client's as rules and logs see it — a PROXY header's or `set-src`'s when there was one, as
    /// HAProxy's stream source.
    ///
    /// - Throws: when the client's address cannot be read (it has gone).
    func presentedAddress(client fd: CInt, context: SessionContext?) throws(SystemError) -> SocketAddress? {
        guard let presented else { return nil }
        if case .address(let fixed) = presented { return fixed }
        let client: SocketAddress
        if let adopted = context?.source { client = adopted } else { client = try Socket.peerAddress(fd) }
        return presented == .clientIP ? client.with(port: 0) : client
    }
}

extension Configuration {
    /// Why forwarded connections cannot present foreign addresses (`usesrc`), for a warning at start
    /// (HAProxy's: "Some options which require full privileges might not work well"); nil when no
    /// backend uses `usesrc` or the process may set `IP_TRANSPARENT`. Without it, binding falls back
    /// to `IP_FREEBIND`, and servers' replies to a foreign address never reach this process.
    var transparencyProblem: String? {
        guard backends.contains(where: { $0.source?.presented != nil || $0.servers.contains { $0.source?.presented != nil } }) else { return nil }
        guard let code = Socket.transparencyRefusal() else { return nil }
        return "'usesrc': this process may not set IP_TRANSPARENT (\(SystemError(code: code, call: "setsockopt").reason)); it needs CAP_NET_ADMIN or CAP_NET_RAW, else servers' replies to client addresses never reach Sluice"
    }
}
