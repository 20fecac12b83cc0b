import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Every integration suite runs inside this one, one test at a time: they share the loopback
/// port space (a "closed" port picked by one test must not be reused by another's listener) and
/// the process's descriptor budget.
@Suite(.serialized) enum Loopback {}

/// The test process is a host program that writes to sockets and pipes whose peers may be gone
/// (children's stdin, reset clients): it ignores SIGPIPE, as the `sluice` command does. Sluice
/// itself no longer does that for the process (it blocks the signal on its own threads).
let pipeSignalIgnored: Void = { _ = signal(SIGPIPE, SIG_IGN) }()
