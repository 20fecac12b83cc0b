/// An error from the balancer's public API, with a sentence naming what failed.
public struct SluiceError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
