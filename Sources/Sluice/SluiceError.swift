/// An error from the balancer's public API, with a sentence naming what failed.
public struct SluiceError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, in a sentence for the operator.
    public let message: String
    /// An error saying `message`.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}
