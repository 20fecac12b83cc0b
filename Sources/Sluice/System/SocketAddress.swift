import CShims
#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 socket address, stored as the kernel wants it: in a `sockaddr_in6`, the larger
/// of the two (28 bytes, where a `sockaddr_storage` is 128: sessions, logs and rules copy addresses,
/// and a copy that size is a `memcpy` call).
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    private var storage: sockaddr_in6
    /// The length of the valid part of `storage`.
    let length: socklen_t

    /// An address from a numeric IP literal (`127.0.0.1`, `::1`) and a port; nil if `ip` is not one.
    public init?(ip: String, port: Int) {
        precondition((0...65535).contains(port), "port \(port) is outside 0...65535")
        var storage = sockaddr_in6()
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, ip, &v4) == 1 {
            withUnsafeMutableBytes(of: &storage) { raw in
                let sin = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                sin.pointee.sin_family = sa_family_t(AF_INET)
                sin.pointee.sin_port = in_port_t(UInt16(port).bigEndian)
                sin.pointee.sin_addr = v4
            }
            self.storage = storage
            self.length = socklen_t(MemoryLayout<sockaddr_in>.size)
        } else if inet_pton(AF_INET6, ip, &v6) == 1 {
            withUnsafeMutableBytes(of: &storage) { raw in
                let sin6 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                sin6.pointee.sin6_port = in_port_t(UInt16(port).bigEndian)
                sin6.pointee.sin6_addr = v6
            }
            self.storage = storage
            self.length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            return nil
        }
    }

    /// Resolves a host name or IP literal, preferring IPv4 as HAProxy does at start-up.
    ///
    /// The corresponding library call is `getaddrinfo(3)`; it may block, so call it at
    /// configuration time only.
    public static func resolve(host: String, port: Int, preferIPv6: Bool = false) throws(SystemError) -> SocketAddress {
        if let numeric = SocketAddress(ip: host, port: port) { return numeric }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &result)
        guard rc == 0, let first = result else {
            throw SystemError(code: ENOENT, call: "getaddrinfo", operand: "\(host) (\(String(cString: gai_strerror(rc))))")
        }
        defer { freeaddrinfo(result) }
        var chosen: UnsafeMutablePointer<addrinfo>? = nil
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            let preferred = preferIPv6 ? AF_INET6 : AF_INET
            if entry.pointee.ai_family == preferred { chosen = entry; break }
            if chosen == nil && (entry.pointee.ai_family == AF_INET6 || entry.pointee.ai_family == AF_INET) { chosen = entry }
            cursor = entry.pointee.ai_next
        }
        guard let entry = chosen, let sa = entry.pointee.ai_addr else {
            throw SystemError(code: EAFNOSUPPORT, call: "getaddrinfo", operand: host)
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        if entry.pointee.ai_family == AF_INET {
            var a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            inet_ntop(AF_INET, &a, &text, socklen_t(text.count))
        } else {
            var a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            inet_ntop(AF_INET6, &a, &text, socklen_t(text.count))
        }
        let ip = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let address = SocketAddress(ip: ip, port: port) else {
            throw SystemError(code: EAFNOSUPPORT, call: "getaddrinfo", operand: host)
        }
        return address
    }

    /// The address the kernel filled in, e.g. by `getsockname` or `accept4` given a `sockaddr_in6`
    /// (room for either family).
    init(storage: sockaddr_in6, length: socklen_t) {
        self.storage = storage
        self.length = min(length, socklen_t(MemoryLayout<sockaddr_in6>.size))
    }

    /// 0.0.0.0 port 0: `source`'s default, the kernel's choice of address and port.
    static let anyIPv4 = SocketAddress(ip: "0.0.0.0", port: 0)!

    /// 0.0.0.0 or ::, which a listener binds to accept on every address.
    var isWildcard: Bool {
        // Without building `ipBytes`: server connects ask this once per connection.
        withUnsafeBytes(of: storage) { raw in
            family == AF_INET ? raw.load(fromByteOffset: 4, as: UInt32.self) == 0
                : raw[8..<24].allSatisfy { $0 == 0 }
        }
    }

    /// `AF_INET` or `AF_INET6`.
    var family: CInt { CInt(storage.sin6_family) }

    /// The port, in host byte order.
    public var port: Int {
        // `sin_port` is where `sin6_port` is: the two bytes after the family, in network order.
        Int(UInt16(bigEndian: storage.sin6_port))
    }

    /// The same address with another port.
    public func with(port: Int) -> SocketAddress {
        var copy = self
        withUnsafeMutableBytes(of: &copy.storage) { raw in
            if family == AF_INET {
                raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_port = in_port_t(UInt16(port).bigEndian)
            } else {
                raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_port = in_port_t(UInt16(port).bigEndian)
            }
        }
        return copy
    }

    /// An IPv4 address as IPv4-mapped IPv6 (`::ffff:a.b.c.d`, same port); IPv6 unchanged.
    var ipv6Mapped: SocketAddress {
        family == AF_INET6 ? self : SocketAddress(ip: "::ffff:\(ip)", port: port)!
    }

    /// The IP without the port, e.g. `127.0.0.1` or `::1`.
    public var ip: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        withUnsafeBytes(of: storage) { raw in
            if family == AF_INET {
                var a = raw.load(as: sockaddr_in.self).sin_addr
                _ = inet_ntop(AF_INET, &a, &text, socklen_t(text.count))
            } else {
                var a = raw.load(as: sockaddr_in6.self).sin6_addr
                _ = inet_ntop(AF_INET6, &a, &text, socklen_t(text.count))
            }
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `ip:port`, or `[ip]:port` for IPv6.
    public var description: String { family == AF_INET6 ? "[\(ip)]:\(port)" : "\(ip):\(port)" }

    /// The IP in network byte order: 4 bytes for IPv4, 16 for IPv6.
    var ipBytes: [UInt8] {
        withUnsafeBytes(of: storage) { raw in
            if family == AF_INET {
                return withUnsafeBytes(of: raw.load(as: sockaddr_in.self).sin_addr) { Array($0) }
            }
            return withUnsafeBytes(of: raw.load(as: sockaddr_in6.self).sin6_addr) { Array($0) }
        }
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafeBytes(of: storage) { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool {
        a.length == b.length && withUnsafeBytes(of: a.storage) { ra in
            withUnsafeBytes(of: b.storage) { rb in ra.prefix(Int(a.length)).elementsEqual(rb.prefix(Int(b.length))) }
        }
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes(of: storage) { hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: $0.prefix(Int(length)))) }
    }
}
