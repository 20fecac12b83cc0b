/// Work another thread asks of a worker.
enum WorkerCommand: Sendable {
    /// Stop accepting; exit once the last session ends, or close what remains after
    /// `hardStopAfterMs` (`hard-stop-after`) when set.
    case stopGracefully(hardStopAfterMs: Int64?)
    /// Close every session now and exit.
    case stopNow
    /// Close the sessions of one server (`on-marked-down shutdown-sessions`, runtime API).
    case shutdownSessions(ServerState)
    /// `observe layer4` counted `error-limit` failures for a server; for the worker running checks.
    case observedFailure(ServerState)
    /// A reload: start accepting on new listeners, close removed ones (their sessions go on),
    /// and know kept ones by their new keys (old key → new).
    case updateListeners(add: [Worker.Listener], removeKeys: Set<String>, renamed: [String: String])
    /// A reload: the servers to check, for the worker running checks.
    case configureChecks([(BackendState, Backend)], node: String)
    /// `disable|enable health` (or `… agent`) on a server, for the worker running checks.
    case checksToggled(ServerState, agent: Bool)
    /// A server's `slowstart` ramp began outside checks (it left maintenance), for the worker
    /// running checks, which steps ramps.
    case warmUp(BackendState, ServerState)
    /// A queued session (by token) was given a slot of this server.
    case dequeued(UInt64, ServerState, BackendState)
}
