import CShims
#if canImport(Glibc)
import Glibc
#endif

/// Socket operations on raw descriptors. Each maps to one system call; the doc line names it.
enum Socket {
    /// A non-blocking listening TCP socket with `SO_REUSEADDR` and, for one socket per reactor,
    /// `SO_REUSEPORT`. The corresponding system calls are `socket(2)`, `bind(2)`, `listen(2)`.
    /// Options of a listening socket, from `bind` parameters.
    struct ListenOptions {
        /// `IPV6_V6ONLY` on an IPv6 listener (`v6only`; `v4v6` clears it).
        var v6Only = true
        /// `TCP_DEFER_ACCEPT`: seconds the kernel waits for the client's first bytes before
        /// handing the connection over (0: off).
        var deferAcceptSeconds = 0
        /// `TCP_FASTOPEN` queue length (0: off).
        var fastOpenQueue = 0
        /// `SO_BINDTODEVICE`.
        var interface: String?
        /// `TCP_MAXSEG` (0: the kernel's).
        var maxSegmentSize = 0
        /// `TCP_USER_TIMEOUT` in milliseconds (0: the kernel's); accepted sockets inherit it.
        var userTimeoutMs = 0
        /// `transparent`: `IP_TRANSPARENT`, to bind an address this host does not own and receive
        /// connections TPROXY diverts to it.
        var transparent = false
    }

    static func listen(on address: SocketAddress, backlog: Int, reusePort: Bool, options: ListenOptions = ListenOptions(),
                       namespace: CInt? = nil) throws(SystemError) -> Descriptor {
        func make() throws(SystemError) -> CInt {
            try syscallBlocking("socket") { CShims_socket_nonblock(address.family, Int32(SOCK_STREAM.rawValue)) }
        }
        // `namespace`: the socket is made there, and binds and accepts there.
        let raw: CInt
        if let namespace { raw = try NetworkNamespace.within(namespace, make) } else { raw = try make() }
        let fd = Descriptor(taking: raw)
        _ = CShims_setsockopt_int(fd.rawValue, SOL_SOCKET, CShims_SO_REUSEADDR, 1)
        if reusePort {
            _ = try syscallBlocking("setsockopt(SO_REUSEPORT)") { CShims_setsockopt_int(fd.rawValue, SOL_SOCKET, CShims_SO_REUSEPORT, 1) }
        }
        // Accepted sockets inherit TCP_NODELAY from the listener (Linux clones the listening
        // socket's options): one setsockopt per listener instead of one per connection.
        setNoDelay(fd.rawValue)
        if address.family == AF_INET6 {
            // `[::]:80` listens on IPv6 only unless `v4v6` says otherwise, as HAProxy on Linux.
            _ = CShims_setsockopt_int(fd.rawValue, Int32(IPPROTO_IPV6), CShims_IPV6_V6ONLY, options.v6Only ? 1 : 0)
        }
        do {
            let tcp = Int32(IPPROTO_TCP)
            if let interface = options.interface {
                _ = try syscallBlocking("setsockopt(SO_BINDTODEVICE)") { CShims_bind_to_device(fd.rawValue, interface) }
            }
            if options.transparent {
                // HAProxy's words: "cannot make listening socket transparent".
                _ = try syscallBlocking("setsockopt(IP_TRANSPARENT) (cannot make listening socket transparent)") { CShims_make_foreign(fd.rawValue, address.family) }
            }
            if options.deferAcceptSeconds > 0 {
                _ = try syscallBlocking("setsockopt(TCP_DEFER_ACCEPT)") { CShims_setsockopt_int(fd.rawValue, tcp, CShims_TCP_DEFER_ACCEPT, Int32(options.deferAcceptSeconds)) }
            }
            if options.fastOpenQueue > 0 {
                _ = try syscallBlocking("setsockopt(TCP_FASTOPEN)") { CShims_setsockopt_int(fd.rawValue, tcp, CShims_TCP_FASTOPEN, Int32(options.fastOpenQueue)) }
            }
            if options.maxSegmentSize > 0 {
                _ = try syscallBlocking("setsockopt(TCP_MAXSEG)") { CShims_setsockopt_int(fd.rawValue, tcp, CShims_TCP_MAXSEG, Int32(options.maxSegmentSize)) }
            }
            if options.userTimeoutMs > 0 {
                _ = try syscallBlocking("setsockopt(TCP_USER_TIMEOUT)") { CShims_setsockopt_int(fd.rawValue, tcp, CShims_TCP_USER_TIMEOUT, Int32(options.userTimeoutMs)) }
            }
            _ = try syscallBlocking("bind") { address.withSockaddr { Glibc.bind(fd.rawValue, $0, $1) } }
            _ = try syscallBlocking("listen") { Glibc.listen(fd.rawValue, Int32(clamping: backlog)) }
        } catch {
            throw error.on(address.description)
        }
        return fd
    }

    /// The address a socket is bound to. The corresponding system call is `getsockname(2)`.
    static func localAddress(_ fd: CInt) throws(SystemError) -> SocketAddress {
        try address(of: fd, "getsockname", getsockname)
    }

    /// The IPv4 destination a client asked for before netfilter's NAT (`REDIRECT`, `DNAT`) rewrote
    /// it, or nil (no conntrack entry, conntrack not loaded, IPv6: HAProxy reads IPv4 only too).
    /// The corresponding system call is `getsockopt(2)` with `SO_ORIGINAL_DST`.
    static func originalDestination(_ fd: CInt) -> SocketAddress? {
        var storage = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let r = withUnsafeMutableBytes(of: &storage) { getsockopt(fd, Int32(IPPROTO_IP), 80 /* SO_ORIGINAL_DST */, $0.baseAddress, &length) }
        guard r == 0, storage.sin6_family == sa_family_t(AF_INET) else { return nil }
        return SocketAddress(storage: storage, length: length)
    }

    /// The address of a connected socket's peer. The corresponding system call is `getpeername(2)`.
    static func peerAddress(_ fd: CInt) throws(SystemError) -> SocketAddress {
        try address(of: fd, "getpeername", getpeername)
    }

    private static func address(of fd: CInt, _ call: StaticString,
                                _ get: (CInt, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> CInt) throws(SystemError) -> SocketAddress {
        var storage = sockaddr_in6()  // room for an IPv4 or IPv6 address, all a SocketAddress holds
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        _ = try syscallBlocking(call) {
            withUnsafeMutableBytes(of: &storage) { raw in
                get(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length)
            }
        }
        return SocketAddress(storage: storage, length: length)
    }

    /// Accepts one pending connection as a non-blocking socket, or `.wouldBlock` when there is none.
    /// The corresponding system call is `accept4(2)`.
    @inline(__always)
    static func accept(_ listener: CInt) throws(SystemError) -> IOResult<CInt> {
        try syscall("accept4") { CShims_accept4_nonblock(listener) }
    }

    /// `accept`, also returning the client's address (no `getpeername` later).
    static func accept(_ listener: CInt, peer: inout SocketAddress?) throws(SystemError) -> IOResult<CInt> {
        var storage = sockaddr_in6()  // room for an IPv4 or IPv6 address, all a SocketAddress holds
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let result = try syscall("accept4") {
            withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { CShims_accept4_nonblock_peer(listener, $0, &length) } }
        }
        peer = SocketAddress(storage: storage, length: length)
        return result
    }

    /// Starts a non-blocking connect. Returns the socket and whether the connection is already
    /// established (loopback sometimes is). The corresponding system calls are `socket(2)`, `connect(2)`.
    /// `source`: bound (and tied to its interface) before connecting.
    /// `presenting`: the source address to bind instead of `source`'s own, one this host need not
    /// own (`usesrc`: transparent proxying).
    /// `fastOpen`: `TCP_FASTOPEN_CONNECT`; connect then returns at once and the first write sends
    /// the SYN, with the data once the server has given a cookie.
    static func connect(to address: SocketAddress, from source: SourceBinding? = nil, presenting foreign: SocketAddress? = nil,
                        fastOpen: Bool = false, buffers: SocketBufferSizes = SocketBufferSizes(),
                        userTimeoutMs: Int = 0, keepAlive: KeepAliveSettings = KeepAliveSettings(),
                        namespace: CInt? = nil) throws(SystemError) -> (fd: CInt, connected: Bool) {
        func make() throws(SystemError) -> CInt {
            try syscallBlocking("socket") { CShims_socket_nonblock(address.family, Int32(SOCK_STREAM.rawValue)) }
        }
        // `namespace`: the socket is made there (the connect then happens in it).
        let fd: CInt
        if let namespace { fd = try NetworkNamespace.within(namespace, make) } else { fd = try make() }
        if address.isUnix {
            // No TCP options, no source address: a UNIX socket has neither (HAProxy's `uxst` connect).
            if buffers.isSet { setBufferSizes(fd, buffers) }
            return try finishConnect(fd, to: address)
        }
        setNoDelay(fd)
        // `option srvtcpka` before connect, as HAProxy: on loopback the handshake completes inside
        // connect(), and the server may see the connection before a later setsockopt.
        if keepAlive.enabled { setKeepAlive(fd, keepAlive) }
        if buffers.isSet { setBufferSizes(fd, buffers) }  // before connect: the receive size sets the window scale
        if userTimeoutMs > 0 { _ = CShims_setsockopt_int(fd, Int32(IPPROTO_TCP), CShims_TCP_USER_TIMEOUT, Int32(clamping: userTimeoutMs)) }
        if fastOpen { _ = CShims_setsockopt_int(fd, Int32(IPPROTO_TCP), CShims_TCP_FASTOPEN_CONNECT, 1) }
        if let source {
            do {
                try bind(fd, to: source, presenting: foreign)
            } catch {
                closeDescriptor(fd)
                throw error
            }
        }
        return try finishConnect(fd, to: address)
    }

    private static func finishConnect(_ fd: CInt, to address: SocketAddress) throws(SystemError) -> (fd: CInt, connected: Bool) {
        let r = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        if r == 0 { return (fd, true) }
        let err = errno
        if err == EINPROGRESS || err == EINTR { return (fd, false) }
        // Any other error fails the attempt (retried or redispatched), EAGAIN included: a UNIX
        // listener whose backlog is full answers it where TCP would wait, and HAProxy fails it too.
        closeDescriptor(fd)
        throw SystemError(code: err, call: "connect", operand: address.description)
    }

    /// `source <addr>[:<port>] [usesrc …] [interface <name>]`. The corresponding system calls are
    /// `setsockopt(2)` (`SO_BINDTODEVICE`, `IP_TRANSPARENT`, `SO_REUSEADDR`, `IP_BIND_ADDRESS_NO_PORT`)
    /// and `bind(2)`.
    private static func bind(_ fd: CInt, to source: SourceBinding, presenting foreign: SocketAddress?) throws(SystemError) {
        if let device = source.interface {
            guard CShims_bind_to_device(fd, device) == 0 else { throw SystemError(code: errno, call: "setsockopt(SO_BINDTODEVICE)", operand: device) }
        }
        if let foreign {
            // As HAProxy's `tcp_bind_socket`: foreign, then `SO_REUSEADDR` (`usesrc client` shares
            // the client's own address and port), then bind.
            guard CShims_make_foreign(fd, foreign.family) == 0 else {
                throw SystemError(code: errno, call: "setsockopt(IP_TRANSPARENT)", operand: "tproxy source \(foreign)")
            }
            _ = CShims_setsockopt_int(fd, SOL_SOCKET, CShims_SO_REUSEADDR, 1)
            if foreign.port == 0 { _ = CShims_setsockopt_int(fd, Int32(IPPROTO_IP), CShims_IP_BIND_ADDRESS_NO_PORT, 1) }
            guard foreign.withSockaddr({ Glibc.bind(fd, $0, $1) }) == 0 else {
                throw SystemError(code: errno, call: "bind", operand: "tproxy source \(foreign)")
            }
            return
        }
        if source.address.isWildcard && source.address.port == 0 { return }
        if source.address.port == 0 { _ = CShims_setsockopt_int(fd, Int32(IPPROTO_IP), CShims_IP_BIND_ADDRESS_NO_PORT, 1) }
        guard source.address.withSockaddr({ Glibc.bind(fd, $0, $1) }) == 0 else {
            throw SystemError(code: errno, call: "bind", operand: source.address.description)
        }
    }

    /// A non-blocking UDP socket connected to `address` (so only its datagrams arrive, and an ICMP
    /// refusal shows as `ECONNREFUSED`). The corresponding system calls are `socket(2)`, `connect(2)`.
    static func connectedDatagram(to address: SocketAddress) throws(SystemError) -> CInt {
        let fd = try syscallBlocking("socket") { CShims_socket_nonblock(address.family, Int32(SOCK_DGRAM.rawValue)) }
        guard address.withSockaddr({ Glibc.connect(fd, $0, $1) }) == 0 else {
            let err = errno
            closeDescriptor(fd)
            throw SystemError(code: err, call: "connect", operand: address.description)
        }
        return fd
    }

    /// The error `IP_TRANSPARENT` gets in this process (`EPERM` without `CAP_NET_ADMIN` or
    /// `CAP_NET_RAW`), or nil when it may set it. The corresponding system call is `setsockopt(2)`.
    static func transparencyRefusal() -> CInt? {
        let fd = CShims_socket_nonblock(AF_INET, Int32(SOCK_STREAM.rawValue))
        guard fd >= 0 else { return errno }
        defer { closeDescriptor(fd) }
        return CShims_setsockopt_int(fd, Int32(IPPROTO_IP), CShims_IP_TRANSPARENT, 1) == 0 ? nil : errno
    }

    /// Whether the client has sent bytes not read yet. The corresponding system call is `ioctl(2)`
    /// with `FIONREAD`.
    static func hasPendingInput(_ fd: CInt) -> Bool {
        var count: CInt = 0
        return CShims_pending_input(fd, &count) == 0 && count > 0
    }

    /// The pending error of a socket (the outcome of a non-blocking connect), or nil.
    /// The corresponding system call is `getsockopt(2)` with `SO_ERROR`.
    static func pendingError(_ fd: CInt) -> CInt? {
        var value: CInt = 0
        if CShims_getsockopt_int(fd, SOL_SOCKET, CShims_SO_ERROR, &value) < 0 { return errno }
        return value == 0 ? nil : value
    }

    static func setNoDelay(_ fd: CInt) {
        _ = CShims_setsockopt_int(fd, Int32(IPPROTO_TCP), CShims_TCP_NODELAY, 1)
    }

    /// `SO_RCVBUF`/`SO_SNDBUF` where a size is set (the kernel doubles the value for its bookkeeping
    /// and clamps it to `net.core.rmem_max`/`wmem_max`, as for HAProxy).
    static func setBufferSizes(_ fd: CInt, _ sizes: SocketBufferSizes) {
        if let n = sizes.receive, n > 0 { _ = CShims_setsockopt_int(fd, SOL_SOCKET, Int32(SO_RCVBUF), Int32(n)) }
        if let n = sizes.send, n > 0 { _ = CShims_setsockopt_int(fd, SOL_SOCKET, Int32(SO_SNDBUF), Int32(n)) }
    }

    /// Turns TCP keep-alive probes on (`SO_KEEPALIVE`) with the timing given in whole seconds
    /// (0 keeps the kernel's `net.ipv4.tcp_keepalive_*`).
    static func setKeepAlive(_ fd: CInt, _ k: KeepAliveSettings) {
        let tcp = Int32(IPPROTO_TCP)
        _ = CShims_setsockopt_int(fd, SOL_SOCKET, CShims_SO_KEEPALIVE, 1)
        if k.idle > 0 { _ = CShims_setsockopt_int(fd, tcp, CShims_TCP_KEEPIDLE, k.idle) }
        if k.interval > 0 { _ = CShims_setsockopt_int(fd, tcp, CShims_TCP_KEEPINTVL, k.interval) }
        if k.count > 0 { _ = CShims_setsockopt_int(fd, tcp, CShims_TCP_KEEPCNT, k.count) }
    }

    /// Sends our FIN. The corresponding system call is `shutdown(2)` with `SHUT_WR`.
    static func shutdownWrite(_ fd: CInt) {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Closes so that the peer sees a reset rather than a FIN, to propagate a reset.
    static func closeWithReset(_ fd: CInt) {
        _ = CShims_set_linger_zero(fd)
        closeDescriptor(fd)
    }

    /// Closes with a reset (`reset`) or a FIN. `discardUnread`: first drop what the peer sent and
    /// nobody read, up to HAProxy's 16 KiB buffer — the kernel answers a close with unread input
    /// by a reset, where HAProxy, which had read those bytes into its buffer, sends a FIN (a
    /// client whose server could not be reached sees the same close from both). The system calls
    /// are `recv(2)` and `close(2)`.
    static func close(_ fd: CInt, reset: Bool, discardUnread: Bool = false) {
        if reset { return closeWithReset(fd) }
        if discardUnread {
            withUnsafeTemporaryAllocation(byteCount: 16_384, alignment: 16) { _ = recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        }
        closeDescriptor(fd)
    }

    /// Reads into `buffer`; `.processed(0)` is end of stream. The corresponding system call is `recv(2)`.
    @inline(__always)
    static func receive(_ fd: CInt, into buffer: UnsafeMutableRawBufferPointer, peek: Bool = false) throws(SystemError) -> IOResult<Int> {
        try syscall("recv") { recv(fd, buffer.baseAddress, buffer.count, peek ? Int32(MSG_PEEK) : 0) }
    }

    /// What content inspection sees of a socket: the bytes queued, copied into `window` but left
    /// in the socket (`MSG_PEEK`), and whether the peer has ended (`peerEnded`, as epoll said, or a
    /// peek of nothing at end of stream).
    static func peek(_ fd: CInt, into window: UnsafeMutableRawBufferPointer, peerEnded: Bool) throws(SystemError) -> (count: Int, ended: Bool) {
        guard case .processed(let n) = try receive(fd, into: window, peek: true) else { return (0, peerEnded) }
        return (n, peerEnded || n == 0)
    }

    /// Writes from `buffer` without raising `SIGPIPE`. The corresponding system call is `send(2)`.
    @inline(__always)
    static func send(_ fd: CInt, from buffer: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try syscall("send") { Glibc.send(fd, buffer.baseAddress, buffer.count, CShims_MSG_NOSIGNAL) }
    }
}

/// `option clitcpka`/`srvtcpka` and their timings, compact for the session slab.
struct KeepAliveSettings: Sendable {
    var enabled = false
    /// Seconds; 0: the kernel's default.
    var idle: Int32 = 0
    var interval: Int32 = 0
    var count: Int32 = 0

    init() {}

    init(_ keepAlive: TCPKeepAlive?) {
        guard let keepAlive else { return }
        enabled = true
        idle = keepAlive.idle.map { Int32(clamping: $0.components.seconds) } ?? 0
        interval = keepAlive.interval.map { Int32(clamping: $0.components.seconds) } ?? 0
        count = keepAlive.count.map { Int32($0) } ?? 0
    }
}
