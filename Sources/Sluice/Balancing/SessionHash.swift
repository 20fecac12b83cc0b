import Synchronization

/// `balance hash <expr>`: the sample a session is hashed on, evaluated with the routing's fetches
/// when the session is routed (so content fetches see the bytes already inspected, if any).
struct HashKey: Sendable {
    let expression: SampleExpression
    private let evaluator: FrontendRouting

    /// Sessions whose sample could not be fetched are spread by this counter instead (HAProxy falls
    /// back to round-robin).
    private static let rotating = Atomic<UInt32>(0)

    init(expression: SampleExpression, backend: String) {
        self.expression = expression
        evaluator = FrontendRouting(rules: .empty, frontendName: backend, defaultBackend: nil, backends: [:], tables: [:])
    }

    func hash(_ context: SessionContext) -> UInt32 {
        context.final = true
        switch evaluator.sample(expression, context) {
        case .value(let s, _): return SourceHash.hash(s.bytes)
        case .values(let list) where !list.isEmpty: return SourceHash.hash(list[0].bytes)
        default: return UInt32(truncatingIfNeeded: Maglev.mix(UInt64(Self.rotating.wrappingAdd(1, ordering: .relaxed).oldValue)))
        }
    }
}

extension BackendSettings {
    /// The hash a new session picks its server with (`balance source`: the client's address;
    /// `balance hash <expr>`: the sample). 0 for the other algorithms, which do not read it.
    func sessionHash(_ context: SessionContext?, client: CInt, now: Int64) -> UInt32 {
        switch balance {
        case .source:
            guard let peer = context?.source ?? (try? Socket.peerAddress(client)) else { return 0 }
            return SourceHash.hash(peer.ipBytes)
        case .hash:
            guard let hashKey else { return 0 }
            return hashKey.hash(context ?? SessionContext(client: client, bindName: nil, routing: nil, now: now))
        default:
            return 0
        }
    }
}
