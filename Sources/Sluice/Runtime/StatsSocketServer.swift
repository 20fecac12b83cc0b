import CShims
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The `stats socket` listeners: UNIX sockets answering the runtime API, on one thread of their
/// own so that a slow or hostile client never touches forwarding.
///
/// As HAProxy: one request line per connection unless the client sends `prompt` (interactive mode,
/// `quit` to leave); several commands on one line are separated by `;`. Each command's answer is
/// followed by an empty line, and in interactive mode by the prompt `> ` after it.
final class StatsSocketServer: @unchecked Sendable {
    // Mutable state is touched only by the server's thread, after `start()`; `stop()` joins it.
    private struct Listener {
        let fd: CInt
        let address: StatsSocket.Address
        let level: StatsSocket.Level
    }

    private struct Connection {
        let fd: CInt
        let level: StatsSocket.Level
        var input: [UInt8] = []
        var output: [UInt8] = []
        var pending: [String] = []
        var prompt = false
        var wait: RuntimeAPI.DrainWait?
        var closeWhenFlushed = false
        var peerClosed = false
        /// Monotonic ms after which a closing connection is dropped even if the peer keeps sending;
        /// 0 while open. Closing lingers (our FIN first, then reading until theirs) so that unread
        /// input does not turn our close into a reset that eats the reply.
        var lingerUntil: Int64 = 0
        /// Monotonic ms of the last byte read or written.
        var lastActivity = monotonicMilliseconds()
    }

    /// Longest request line; longer input is answered with an error and the connection closed.
    static let maxLine = 16 * 1024
    /// `stats maxconn`: connections served at once; more wait in the listeners' backlog.
    private let maxConnections: Int
    /// `stats timeout`: an idle connection (nothing asked, nothing to send) is closed after this.
    private let idleTimeoutMs: Int64

    private let api: RuntimeAPI
    private let logger: Logger
    private var listeners: [Listener] = []
    private var wake: [CInt] = [-1, -1]
    private var thread: OSThread?

    init(sockets: [StatsSocket], api: RuntimeAPI, logger: Logger, maxConnections: Int = 10, idleTimeout: Duration = .seconds(10)) throws(SluiceError) {
        self.api = api
        self.logger = logger
        self.maxConnections = maxConnections
        self.idleTimeoutMs = idleTimeout.milliseconds
        for socket in sockets {
            do {
                let fd: CInt
                switch socket.address {
                case .unix(let path): fd = try Self.listen(socket, path: path)
                case .tcp(let endpoint): fd = try Self.listen(endpoint)
                }
                listeners.append(Listener(fd: fd, address: socket.address, level: socket.level))
            } catch {
                closeListeners()
                throw error
            }
        }
    }

    /// Binds a UNIX socket (`Socket.listenUnix`: at a temporary name, renamed over the path once it
    /// listens), refusing a path where a live process still answers: two balancers must not share
    /// one runtime API. A stale file is replaced.
    private static func listen(_ socket: StatsSocket, path: String) throws(SluiceError) -> CInt {
        guard let address = SocketAddress(unixPath: path) else {
            throw SluiceError("stats socket \(path): path too long for a UNIX socket (at most \(UnixSocketPaths.capacity) bytes)")
        }
        if access(path, F_OK) == 0 {
            let probe = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let live = address.withSockaddr { Glibc.connect(probe, $0, $1) } == 0
            closeDescriptor(probe)
            if live { throw SluiceError("stats socket \(path) is in use by a running process; stop it or choose another path") }
        }
        do {
            let ids = try UnixSocketPermissions(owner: socket.owner, group: socket.group).ids()
            return try Socket.listenUnix(address, backlog: 16, owner: ids.owner, group: ids.group, mode: socket.mode).release()
        } catch let error as SluiceError {
            throw SluiceError("stats socket \(path): \(error.message)")
        } catch {
            throw SluiceError("stats socket: \(error)")
        }
    }

    /// A TCP socket (`stats socket ipv4@127.0.0.1:9999`), as HAProxy's.
    private static func listen(_ endpoint: Endpoint) throws(SluiceError) -> CInt {
        do {
            let address = try SocketAddress.resolve(host: endpoint.host ?? "0.0.0.0", port: endpoint.port)
            return try Socket.listen(on: address, backlog: 16, reusePort: false).release()
        } catch {
            throw SluiceError("stats socket \(endpoint): \(error)")
        }
    }

    func start() throws(SluiceError) {
        guard pipe(&wake) == 0 else { throw SluiceError("stats socket: cannot create a wakeup pipe: \(SystemError(code: errno, call: "pipe"))") }
        do {
            thread = try OSThread.spawn("sluice-cli") { [self] in self.loop() }
        } catch {
            throw SluiceError("stats socket: cannot start its thread: \(error)")
        }
        for l in listeners { logger.info("runtime API listening on \(l.address) (level \(l.level.rawValue))") }
    }

    /// Stops serving, closes every connection and removes the socket files.
    /// Stops the thread and removes the socket files. Safe to call more than once and from
    /// several threads at once: the first caller joins the thread; the others wait for it.
    func stop() {
        stopping.withLock { _ in
            if let thread {
                var b: UInt8 = 1
                _ = write(wake[1], &b, 1)
                thread.join()
                self.thread = nil
                closeDescriptor(wake[0])
                closeDescriptor(wake[1])
            }
            closeListeners()
        }
    }

    /// Serialises `stop()`: held while the thread is joined.
    private let stopping = Mutex(())

    private func closeListeners() {
        for l in listeners {
            closeDescriptor(l.fd)
            if case .unix(let path) = l.address { unlink(path) }
        }
        listeners.removeAll()
    }

    // MARK: The loop

    private func loop() {
        var connections: [Connection] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var fds = [pollfd(fd: wake[0], events: Int16(POLLIN), revents: 0)]
            // At `stats maxconn`, new clients wait in the backlog until a connection ends.
            let accepting = connections.count < maxConnections
            for l in listeners { fds.append(pollfd(fd: l.fd, events: accepting ? Int16(POLLIN) : 0, revents: 0)) }
            for c in connections {
                var events = Int16(0)
                if !c.peerClosed && c.wait == nil && (!c.closeWhenFlushed || c.lingerUntil > 0) { events |= Int16(POLLIN) }
                if !c.output.isEmpty { events |= Int16(POLLOUT) }
                fds.append(pollfd(fd: c.fd, events: events, revents: 0))
            }
            let waiting = connections.contains { $0.wait != nil || $0.lingerUntil > 0 }
            let now = monotonicMilliseconds()
            let idleDue = connections.map { $0.lastActivity + idleTimeoutMs - now }.min().map { max(0, min($0, Int64(Int32.max))) }
            let timeout = waiting ? min(50, idleDue ?? 50) : idleDue ?? -1
            if poll(&fds, nfds_t(fds.count), Int32(timeout)) < 0 && errno != EINTR { break }
            if fds[0].revents != 0 { break }
            for (k, l) in listeners.enumerated() where fds[1 + k].revents != 0 {
                while true {
                    let fd = CShims_accept4_nonblock(l.fd)
                    if fd < 0 { break }
                    connections.append(Connection(fd: fd, level: l.level))
                    if connections.count >= maxConnections { break }
                }
            }
            let base = 1 + listeners.count
            var next: [Connection] = []
            for (index, var c) in connections.enumerated() {
                let events = base + index < fds.count ? fds[base + index].revents : 0
                if events & Int16(POLLIN | POLLHUP | POLLERR) != 0 && !c.peerClosed {
                    let n = buffer.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, 0) }
                    if n > 0 {
                        c.lastActivity = monotonicMilliseconds()
                        if c.lingerUntil == 0 { c.input += buffer[0..<n] }  // lingering: discard
                    } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                        c.peerClosed = true
                    }
                }
                if c.lingerUntil > 0 {
                    if c.peerClosed || monotonicMilliseconds() >= c.lingerUntil {
                        closeDescriptor(c.fd)
                    } else {
                        next.append(c)
                    }
                    continue
                }
                serve(&c)
                if c.wait == nil && c.pending.isEmpty && c.output.isEmpty && !c.closeWhenFlushed
                    && monotonicMilliseconds() - c.lastActivity >= idleTimeoutMs {
                    c.closeWhenFlushed = true  // `stats timeout`: idle too long
                }
                if !c.output.isEmpty {
                    c.lastActivity = monotonicMilliseconds()
                    let n = c.output.withUnsafeBytes { send(c.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if n > 0 { c.output.removeFirst(n) } else if n < 0 && errno != EAGAIN && errno != EINTR { c.output.removeAll(); c.closeWhenFlushed = true }
                }
                let idle = c.pending.isEmpty && c.wait == nil
                if c.output.isEmpty && ((c.closeWhenFlushed && idle) || (c.peerClosed && idle && !hasLine(c))) {
                    if c.peerClosed {
                        closeDescriptor(c.fd)
                    } else {
                        shutdown(c.fd, Int32(SHUT_WR))
                        c.lingerUntil = monotonicMilliseconds() + 1000
                        next.append(c)
                    }
                } else {
                    next.append(c)
                }
            }
            connections = next
        }
        for c in connections { closeDescriptor(c.fd) }
    }

    private func hasLine(_ c: Connection) -> Bool { c.input.contains(UInt8(ascii: "\n")) }

    /// Runs what the connection has asked for, as far as it can without waiting.
    private func serve(_ c: inout Connection) {
        while true {
            if let wait = c.wait {
                guard let reply = check(wait) else { return }
                c.output += Array(reply.utf8)
                c.wait = nil
                endOfCommand(&c)
                if c.pending.isEmpty { endOfLine(&c) }
            }
            if let command = c.pending.first {
                c.pending.removeFirst()
                switch api.execute(command, level: c.level) {
                case .reply(let text): c.output += Array(text.utf8)
                case .togglePrompt: c.prompt.toggle()
                case .quit:
                    c.pending.removeAll()
                    c.closeWhenFlushed = true
                    return
                case .waitDrained(let wait): c.wait = wait
                }
                if c.wait == nil { endOfCommand(&c) }
                if c.pending.isEmpty && c.wait == nil { endOfLine(&c) }
                continue
            }
            if c.closeWhenFlushed { return }
            guard let newline = c.input.firstIndex(of: UInt8(ascii: "\n")) else {
                if c.input.count > Self.maxLine {
                    c.output += Array("Line too long: requests are limited to \(Self.maxLine) bytes.\n".utf8)
                    c.input.removeAll()
                    c.closeWhenFlushed = true
                } else if c.peerClosed && !c.input.isEmpty {
                    // A last line without a newline still counts, as with `echo -n cmd | socat`.
                    c.input.append(UInt8(ascii: "\n"))
                    continue
                }
                return
            }
            guard newline <= Self.maxLine else {
                c.output += Array("Line too long: requests are limited to \(Self.maxLine) bytes.\n".utf8)
                c.input.removeAll()
                c.closeWhenFlushed = true
                return
            }
            let line = String(decoding: c.input[..<newline], as: UTF8.self)
            c.input.removeSubrange(...newline)
            c.pending = RuntimeCommand.split(line)
            if c.pending.isEmpty {
                if c.prompt { c.output += Array("> ".utf8) }  // an empty line: a new prompt
                endOfLine(&c)
            }
        }
    }

    /// After each command's output, as HAProxy's CLI: an empty line, then in interactive mode
    /// the prompt ("\n> "), so a reader knows where each answer ends.
    private func endOfCommand(_ c: inout Connection) {
        c.output += Array((c.prompt ? "\n> " : "\n").utf8)
    }

    /// After a request line: the connection closes unless in interactive mode, as HAProxy.
    private func endOfLine(_ c: inout Connection) {
        if !c.prompt { c.closeWhenFlushed = true }
    }

    /// The answer to a `wait-drained`, or nil while it must keep waiting.
    private func check(_ wait: RuntimeAPI.DrainWait) -> String? {
        let name = "\(wait.backend.name)/\(wait.server.name)"
        let remaining = wait.server.statistics.currentSessions
        if remaining == 0 { return "Server \(name) is drained: 0 sessions.\n" }
        guard monotonicMilliseconds() >= wait.deadline else { return nil }
        if wait.shutdownAfter {
            api.balancer.shutdownSessions(of: wait.server)
            return "Server \(name) still had \(remaining) session(s) at the timeout; they were shut down.\n"
        }
        return "Server \(name) still has \(remaining) session(s) at the timeout.\n"
    }
}
