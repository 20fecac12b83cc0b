#if canImport(Glibc)
import Glibc
#endif
import CShims

/// A joinable POSIX thread running one closure: reactors get a thread each, not a task, because
/// they block in `epoll_wait`.
struct OSThread: @unchecked Sendable {
    // pthread_t is a plain integer handle; joined once by its creator.
    private let handle: pthread_t

    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// `name` (at most 15 bytes: the kernel's limit) is what `top -H`, `ps -L` and debuggers show.
    /// The thread starts with SIGPIPE blocked and its name set: both are in place when `spawn` returns.
    static func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) -> OSThread {
        var handle = pthread_t()
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        // `splice(2)` and `write(2)` to a socket whose peer is gone raise SIGPIPE in the calling
        // thread. Blocked, it stays pending and the call returns EPIPE, so the host program's own
        // SIGPIPE disposition is left as it set it. A new thread inherits the creator's mask: the
        // signal is blocked here around the creation, then the creator's mask is put back.
        var pipeSignal = sigset_t(), previous = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeSignal, &previous)
        let rc = pthread_create(&handle, nil, { arg in
            guard let arg else { return nil }
            Unmanaged<Box>.fromOpaque(arg).takeRetainedValue().body()
            return nil
        }, box)
        pthread_sigmask(SIG_SETMASK, &previous, nil)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw SystemError(code: rc, call: "pthread_create")
        }
        _ = CShims_set_thread_name(handle, name)
        return OSThread(handle: handle)
    }

    /// Lets the thread's resources go when it ends, for a thread nobody joins.
    func detach() {
        _ = pthread_detach(handle)
    }

    func join() {
        _ = pthread_join(handle, nil)
    }
}
