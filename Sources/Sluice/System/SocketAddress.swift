import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An IPv4, IPv6 or UNIX socket address. IP addresses are stored as the kernel wants them: in a
/// `sockaddr_in6`, the larger of the two (28 bytes, where a `sockaddr_storage` is 128: sessions,
/// logs and rules copy addresses, and a copy that size is a `memcpy` call). A UNIX address keeps
/// its family there and an index into `UnixSocketPaths`, which holds its `sockaddr_un` (110 bytes)
/// once; its `ip` reads `unix` and its port 0, as HAProxy's `addr_to_str` and `get_host_port`.
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
    ///
    /// A UNIX address from the kernel (a client of a UNIX listener: usually unnamed, and its name
    /// is not kept) is the unnamed one.
    init(storage: sockaddr_in6, length: socklen_t) {
        if storage.sin6_family == sa_family_t(AF_UNIX) {
            self = .unnamedUnix
            return
        }
        self.storage = storage
        self.length = min(length, socklen_t(MemoryLayout<sockaddr_in6>.size))
    }

    /// A UNIX socket: a file at `path`, or a name in Linux's abstract namespace (`abns@name`).
    /// Nil when the name does not fit a `sockaddr_un`.
    public init?(unixPath path: String, abstract: Bool = false) {
        guard let index = UnixSocketPaths.shared.index(of: path, abstract: abstract) else { return nil }
        self.init(unixIndex: index)
    }

    private init(unixIndex index: UInt32) {
        var storage = sockaddr_in6()
        storage.sin6_family = sa_family_t(AF_UNIX)
        storage.sin6_flowinfo = index
        self.storage = storage
        self.length = socklen_t(MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!)  // family, port 0, index
    }

    /// A UNIX client's address.
    static let unnamedUnix = SocketAddress(unixIndex: 0)

    /// Whether this is a UNIX socket address.
    var isUnix: Bool { family == AF_UNIX }

    /// A UNIX address's path or abstract name, and which of the two; nil for an IP address.
    public var unixPath: (path: String, abstract: Bool)? {
        guard isUnix else { return nil }
        let entry = UnixSocketPaths.shared.entry(storage.sin6_flowinfo)
        return (entry.name, entry.abstract)
    }

    /// 0.0.0.0 port 0: `source`'s default, the kernel's choice of address and port.
    static let anyIPv4 = SocketAddress(ip: "0.0.0.0", port: 0)!

    /// 0.0.0.0 or ::, which a listener binds to accept on every address.
    var isWildcard: Bool {
        // Without building `ipBytes`: server connects ask this once per connection.
        withUnsafeBytes(of: storage) { raw in
            family == AF_INET ? raw.load(fromByteOffset: 4, as: UInt32.self) == 0
                : family == AF_INET6 && raw[8..<24].allSatisfy { $0 == 0 }
        }
    }

    /// `AF_INET`, `AF_INET6` or `AF_UNIX`.
    var family: CInt { CInt(storage.sin6_family) }

    /// The port, in host byte order.
    public var port: Int {
        // `sin_port` is where `sin6_port` is: the two bytes after the family, in network order.
        Int(UInt16(bigEndian: storage.sin6_port))
    }

    /// The same address with another port.
    public func with(port: Int) -> SocketAddress {
        if isUnix { return self }
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
        family != AF_INET ? self : SocketAddress(ip: "::ffff:\(ip)", port: port)!
    }

    /// The IP without the port, e.g. `127.0.0.1` or `::1`; `unix` for a UNIX socket, as HAProxy.
    public var ip: String {
        if isUnix { return "unix" }
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

    /// `ip:port`, or `[ip]:port` for IPv6; a UNIX socket's path (`abns@name` for an abstract one,
    /// `unix` for a client's).
    public var description: String {
        if let (path, abstract) = unixPath { return path.isEmpty ? "unix" : abstract ? "abns@\(path)" : path }
        return family == AF_INET6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    /// The IP in network byte order: 4 bytes for IPv4, 16 for IPv6, none for a UNIX socket.
    var ipBytes: [UInt8] {
        if isUnix { return [] }
        return withUnsafeBytes(of: storage) { raw in
            if family == AF_INET {
                return withUnsafeBytes(of: raw.load(as: sockaddr_in.self).sin_addr) { Array($0) }
            }
            return withUnsafeBytes(of: raw.load(as: sockaddr_in6.self).sin6_addr) { Array($0) }
        }
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        if isUnix {
            var entry = UnixSocketPaths.shared.entry(storage.sin6_flowinfo)
            return withUnsafeBytes(of: &entry.address) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), entry.length) }
        }
        return withUnsafeBytes(of: storage) { raw in
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

/// The `sockaddr_un` of every UNIX socket address named, each kept once for the process's life
/// (the configuration names few; a reload's new ones are added), so that a `SocketAddress` stays
/// 28 bytes: it holds the family and an index here. Index 0 is the unnamed address of a UNIX
/// listener's clients.
final class UnixSocketPaths: Sendable {
    static let shared = UnixSocketPaths()

    struct Entry: @unchecked Sendable {
        var address: sockaddr_un
        /// HAProxy passes the whole structure for either kind (`get_addr_len`), so an abstract
        /// name is padded with zeros to 107 bytes: a peer naming it the same way finds it.
        var length: socklen_t
        let name: String
        let abstract: Bool
    }

    private let entries = Mutex<[Entry]>([Entry(address: { var a = sockaddr_un(); a.sun_family = sa_family_t(AF_UNIX); return a }(),
                                                 length: socklen_t(MemoryLayout<sa_family_t>.size), name: "", abstract: false)])

    /// The longest path or abstract name a `sockaddr_un` holds (107 bytes: a path needs its
    /// terminating zero, an abstract name its leading one).
    static let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    func index(of name: String, abstract: Bool) -> UInt32? {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= Self.capacity, !bytes.contains(0) else { return nil }
        return entries.withLock { list in
            if let i = list.firstIndex(where: { $0.name == name && $0.abstract == abstract }) { return UInt32(i) }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: abstract ? [0] + bytes : bytes) }
            list.append(Entry(address: address, length: socklen_t(MemoryLayout<sockaddr_un>.size), name: name, abstract: abstract))
            return UInt32(list.count - 1)
        }
    }

    func entry(_ index: UInt32) -> Entry { entries.withLock { $0[Int(index)] } }
}
