import CShims
#if canImport(Glibc)
import Glibc
#endif

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
