import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// `LoadBalancer` as a swift-service-lifecycle `Service`: put it in a `ServiceGroup` next to the
/// program's other services, and the group's graceful shutdown (SIGTERM, say) drains it.
///
/// ```swift
/// let group = ServiceGroup(services: [balancer], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// `run()` starts the balancer, serves until the group shuts down gracefully (then it stops
/// accepting and lets sessions finish, bounded by `hard-stop-after`) or the task is cancelled
/// (then every session is closed at once), and returns once every thread of the balancer has
/// ended. A failed start throws.
extension LoadBalancer: Service {
    /// Starts the balancer and serves until the service group shuts down (see above).
    public func run() async throws {
        try start()
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await waitWithoutBlocking()
            } onGracefulShutdown: { [self] in
                stop(graceful: true)
            }
        } onCancel: { [self] in
            stop(graceful: false)
        }
    }

    /// `wait()` on a thread of its own, so that no task of the cooperative pool blocks on it.
    private func waitWithoutBlocking() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            do {
                try OSThread.spawn("sluice-wait") { [self] in
                    wait()
                    done.resume()
                }.detach()
            } catch {
                // No thread to spare: wait here rather than not at all.
                wait()
                done.resume()
            }
        }
    }
}
