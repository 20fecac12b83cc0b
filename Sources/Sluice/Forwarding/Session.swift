#if canImport(Glibc)
import Glibc
#endif

/// One direction of a session: bytes read from one socket and written to the other.
///
/// Bytes wait in a pipe (zero copy) or, when no pipe can be had, in a small heap buffer.
/// `held` is what the pipe or buffer holds now: reads happen only when it is zero, so an
/// `EAGAIN` from socket→pipe always means the socket is empty, never that the pipe is full.
struct Direction {
    var pipe: Pipe?
    /// Fallback when no pipe is available: a `copyBufferSize` buffer, freed with the session.
    var buffer: UnsafeMutableRawPointer?
    var bufferOffset = 0
    /// Bytes waiting in `pipe` or `buffer`.
    var held = 0
    /// The source sent FIN.
    var sourceClosed = false
    /// We sent FIN to the destination after everything before it was written.
    var finForwarded = false
    /// Bytes written to the destination since the session began.
    var total = 0

    var isDone: Bool { finForwarded }

    static let copyBufferSize = 16 * 1024
    /// Reads per direction per pass. One read then one write, and the session yields to the rest of
    /// the loop: bulk flows stop starving other sessions, and bytes accumulate meanwhile, so each
    /// splice moves more (measured: fewer, larger splices cost less kernel CPU per byte).
    static let readsPerPass = 1

    mutating func releaseResources(into pool: inout PipePool) {
        if let pipe {
            // A pipe that still holds bytes would leak them into the next session: close it instead.
            if held == 0 { pool.give(pipe) } else { pool.discard(pipe) }
            self.pipe = nil
        }
        if let buffer {
            buffer.deallocate()
            self.buffer = nil
        }
    }
}

/// What a pump pass ended with.
enum PumpResult {
    /// Nothing more to do until the next readiness event.
    case waiting
    /// The source may have more, but this pass used its read budget: come back next turn
    /// (edge-triggered epoll will not signal again for bytes already queued).
    case yielded
    /// A socket failed (reset, or the destination went away). `reset` asks to pass the reset on.
    case failed(SystemError)
}

extension Direction {
    /// Moves bytes from `source` to `destination` until either would block, the source ends, or an
    /// error occurs. Readiness flags are cleared on `EAGAIN` and set again by epoll events.
    ///
    /// `moved` receives the bytes written to `destination` in this pass (for counters and activity).
    mutating func pump(from source: CInt, readable: inout Bool, to destination: CInt, writable: inout Bool,
                       pool: inout PipePool, spliceAllowed: Bool, moved: inout Int, read: inout Int) -> PumpResult {
        var reads = Self.readsPerPass
        while true {
            if held > 0 {
                guard writable else { return .waiting }
                let result: IOResult<Int>
                do {
                    if let pipe {
                        result = try splice(from: pipe.readEnd, to: destination, length: held, more: false)
                    } else {
                        result = try Socket.send(destination, from: UnsafeRawBufferPointer(start: buffer! + bufferOffset, count: held))
                    }
                } catch {
                    return .failed(error)
                }
                switch result {
                case .wouldBlock:
                    writable = false
                    return .waiting
                case .processed(let n):
                    held -= n
                    bufferOffset += n
                    moved += n
                    total += n
                }
                continue
            }
            // Empty: give the pipe back so idle sessions hold none.
            if let pipe {
                pool.give(pipe)
                self.pipe = nil
            }
            bufferOffset = 0
            if sourceClosed {
                if !finForwarded {
                    Socket.shutdownWrite(destination)
                    finForwarded = true
                }
                return .waiting
            }
            guard readable else { return .waiting }
            guard reads > 0 else { return .yielded }
            reads -= 1
            if pipe == nil && buffer == nil {
                if spliceAllowed, let fresh = pool.take() {
                    pipe = fresh
                } else {
                    buffer = UnsafeMutableRawPointer.allocate(byteCount: Self.copyBufferSize, alignment: 64)
                }
            }
            let result: IOResult<Int>
            do {
                if let pipe {
                    result = try splice(from: source, to: pipe.writeEnd, length: pipe.capacity, more: false)
                } else {
                    result = try Socket.receive(source, into: UnsafeMutableRawBufferPointer(start: buffer!, count: Self.copyBufferSize))
                }
            } catch {
                return .failed(error)
            }
            switch result {
            case .wouldBlock:
                readable = false
            case .processed(0):
                sourceClosed = true
            case .processed(let n):
                held = n
                read += n
            }
        }
    }
}

/// What a session keeps of its frontend's and backend's configuration when it starts, so that a
/// reload changes policy for new sessions only and the data path reads no shared state.
struct SessionPolicy {
    var retries = 0
    var redispatch = false
    var connectTimeoutMs: Int64 = 0
    var queueTimeoutMs: Int64 = 0
    /// Idle limits; 0 means none. The `-fin` ones are 0 when unset.
    var clientTimeoutMs: Int64 = 0
    var clientFinTimeoutMs: Int64 = 0
    var serverTimeoutMs: Int64 = 0
    var serverFinTimeoutMs: Int64 = 0
    var tunnelTimeoutMs: Int64 = 0

    init() {}

    init(_ frontend: FrontendState.FrontendPolicy, _ backend: BackendSettings) {
        retries = backend.retries
        redispatch = backend.redispatch
        connectTimeoutMs = backend.connectTimeoutMs
        queueTimeoutMs = backend.queueTimeoutMs
        clientTimeoutMs = frontend.clientTimeoutMs
        clientFinTimeoutMs = frontend.clientFinTimeoutMs
        serverTimeoutMs = backend.serverTimeoutMs
        serverFinTimeoutMs = backend.serverFinTimeoutMs
        tunnelTimeoutMs = backend.tunnelTimeoutMs
    }
}

/// A client connection and its server connection, kept in the reactor's slab by index.
///
/// Plain data: references to the frontend, backend and server are unmanaged (those objects live
/// as long as the balancer, which keeps every one it ever created), so the slab is a flat array
/// and a session costs no reference counting on the data path. The worker owns the descriptors
/// and closes them.
struct Session {
    enum State: UInt8 {
        case free
        /// Waiting for a non-blocking connect to finish.
        case connecting
        /// Waiting before retrying the same server (HAProxy waits min(timeout connect, 1 s)).
        case retryWait
        /// No descriptor was left for the server socket; retrying until `timeout queue`.
        case descriptorWait
        case established
    }

    /// Bumped when the slot is reused, so stale epoll events and timers are recognised.
    var generation: UInt32 = 0
    var state: State = .free
    var client: CInt = -1
    var server: CInt = -1
    var frontendRef: Unmanaged<FrontendState>?
    var backendRef: Unmanaged<BackendState>?
    /// The server chosen (and, after a failure, the one last tried); nil before the first choice.
    var serverRef: Unmanaged<ServerState>?
    var policy = SessionPolicy()
    /// Connection attempts left after the current one (`retries`).
    var retriesLeft = 0
    /// Servers this session failed to reach, a bit per server index (the first 64).
    var triedServers: UInt64 = 0

    var toServer = Direction()
    var toClient = Direction()
    var clientReadable = false
    var clientWritable = false
    var serverReadable = false
    var serverWritable = false

    /// Monotonic milliseconds of the last byte moved on each side.
    var clientActivity: Int64 = 0
    var serverActivity: Int64 = 0
    /// When the current phase (connect, retry wait, descriptor wait) must end.
    var phaseDeadline: Int64 = 0
    /// When the queue wait for a descriptor ends (`timeout queue`).
    var queueDeadline: Int64 = 0
    /// The earliest timer pushed for this session that has not fired yet; `Int64.max` when none.
    var armedDeadline: Int64 = .max

    var isFinished: Bool { toServer.isDone && toClient.isDone }
    /// One direction has closed: the `-fin` timeouts apply.
    var isHalfClosed: Bool { toServer.sourceClosed || toClient.sourceClosed }
}
