extension Worker {
    struct Listener: Sendable {
        var fd: CInt
        let frontend: FrontendState
        /// Frontend and configured address, to match listeners across reloads.
        var key: String
        /// The bind's sessions, `maxconn` and id, shared with the other reactors' listeners for the
        /// same address.
        let limit: BindState
        let bind: BindTraits
        var paused = false
        /// Taken off pause to see whether its limit moved; its frontend still counts it paused
        /// until it accepts a connection or finds its backlog empty (`resumed`). If it pauses
        /// again first, nothing is announced: the frontend never stopped being full.
        var retrying = false
    }

    /// What a bind line tells its sessions: its name (`so_name`) and `accept-proxy`.
    struct BindTraits: Sendable {
        /// `name`, as `so_name` samples it.
        let name: [UInt8]?
        let acceptProxy: Bool
        /// The bound address when it is a specific one (not a wildcard): a session's destination
        /// without `getsockname`.
        let address: SocketAddress?
    }
}

/// A worker's listeners and their pause state, and what their frontends hear of it: a listener
/// pauses when a limit refuses a connection (it waits in the kernel's backlog), is retried while
/// paused, and its frontend hears of a resumption only once it accepts again. The worker owns
/// the descriptors' registration and the accepting itself.
struct ListenerSet {
    private var all: [Worker.Listener]
    /// How many are paused now.
    private(set) var pausedCount = 0

    init(_ listeners: [Worker.Listener]) { all = listeners }

    var indices: Range<Int> { all.indices }
    subscript(l: Int) -> Worker.Listener { all[l] }

    /// Adds a listener; returns its index (its token's).
    mutating func append(_ listener: Worker.Listener) -> Int {
        all.append(listener)
        return all.count - 1
    }

    /// A reload renamed frontends: listeners keep matching their configuration.
    mutating func rename(_ renamed: [String: String]) {
        for l in all.indices { if let key = renamed[all[l].key] { all[l].key = key } }
    }

    /// Stops listener `l` accepting because `limit` refused a connection. Its frontend hears of it
    /// unless the listener was being retried (then it never stopped being paused for it).
    mutating func pause(_ l: Int, _ limit: AcceptLimit, now: Int64) {
        guard !all[l].paused else { return }
        all[l].paused = true
        pausedCount += 1
        if all[l].retrying {
            all[l].retrying = false  // still full: it stays paused for its frontend
        } else {
            all[l].frontend.listenerPaused(limit, now: now)
        }
    }

    /// Takes every paused listener off pause to be tried again; returns them. Their frontends hear
    /// of it once each accepts again (`resumed`): the worker retries every 20 ms while a limit may
    /// have moved on another thread, mostly to find it has not.
    mutating func retryPaused() -> [Int] {
        var retried: [Int] = []
        for l in all.indices where all[l].paused {
            all[l].paused = false
            all[l].retrying = true
            pausedCount -= 1
            retried.append(l)
        }
        return retried
    }

    /// Listener `l` accepts again (a connection, or an empty backlog): if it was being retried,
    /// its frontend now hears that it resumed.
    mutating func resumed(_ l: Int, now: Int64) {
        guard all[l].retrying else { return }
        all[l].retrying = false
        all[l].frontend.listenerResumed(now: now)
    }

    /// Forgets listener `l`'s descriptor, which the caller closes, and returns it (nil when already
    /// closed). A closed listener is no longer paused for its frontend either.
    mutating func close(_ l: Int, now: Int64) -> CInt? {
        guard all[l].fd >= 0 else { return nil }
        let fd = all[l].fd
        all[l].fd = -1
        if all[l].paused {
            all[l].paused = false
            pausedCount -= 1
            all[l].frontend.listenerResumed(now: now)
        }
        resumed(l, now: now)
        return fd
    }
}
