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
        let name: String
        let body: () -> Void
        init(_ name: String, _ body: @escaping () -> Void) { (self.name, self.body) = (name, body) }
    }

    /// `name` (at most 15 bytes: the kernel's limit) is what `top -H`, `ps -L` and debuggers show.
    static func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) -> OSThread {
        var handle = pthread_t()
        let box = Unmanaged.passRetained(Box(name, body)).toOpaque()
        let rc = pthread_create(&handle, nil, { arg in
            guard let arg else { return nil }
            // `splice(2)` and `write(2)` to a socket whose peer is gone raise SIGPIPE in the
            // calling thread. Blocked here, it stays pending and the call returns EPIPE, so the
            // host program's own SIGPIPE disposition is left as it set it.
            var pipeSignal = sigset_t()
            sigemptyset(&pipeSignal)
            sigaddset(&pipeSignal, SIGPIPE)
            pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
            let box = Unmanaged<Box>.fromOpaque(arg).takeRetainedValue()
            _ = CShims_set_thread_name(box.name)
            box.body()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw SystemError(code: rc, call: "pthread_create")
        }
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
