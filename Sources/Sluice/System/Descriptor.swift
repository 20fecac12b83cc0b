#if canImport(Glibc)
import Glibc
#endif

/// An owned file descriptor that is closed exactly once, when the value's life ends.
///
/// Long-lived descriptors (listeners, epoll, eventfd) use this type. Sessions keep raw `CInt`
/// descriptors in their slab because arrays cannot hold move-only values; the slab owns closing.
public struct Descriptor: ~Copyable {
    let rawValue: CInt

    init(taking rawValue: CInt) {
        precondition(rawValue >= 0, "invalid descriptor \(rawValue)")
        self.rawValue = rawValue
    }

    /// Gives up ownership without closing.
    consuming func release() -> CInt {
        let fd = rawValue
        discard self
        return fd
    }

    deinit { closeDescriptor(rawValue) }
}
