import Synchronization

extension Mutex where Value: AnyObject & Sendable {
    /// Puts `next` in place of the published object and returns the one it replaces, so that the
    /// caller frees it outside the lock (readers take the lock only to copy the reference).
    func replace(with next: Value) -> Value {
        withLock { current in
            defer { current = next }
            return current
        }
    }
}
