import Logging
import Synchronization

/// Process-wide limits and counters, shared by every reactor.
final class ProcessState: Sendable {
    /// `maxconn` in global; `Int.max` when unset.
    let maxConnections: Int
    let currentConnections = Atomic<Int>(0)
    let totalConnections = Atomic<Int>(0)
    /// `maxpipes`: pipes open at once (pooled ones included).
    let maxPipes: Int
    let pipesOpen = Atomic<Int>(0)
    let pipeSize: Int
    let noSplice: Bool
    /// Times accept or connect found no descriptor left (EMFILE/ENFILE).
    let descriptorExhaustions = Atomic<Int>(0)

    init(_ global: Global) {
        maxConnections = global.maxConnections ?? Int.max
        maxPipes = global.maxPipes ?? (global.maxConnections.map { max($0 / 4, 16) } ?? 1024)
        pipeSize = global.pipeSize
        noSplice = global.noSplice
    }

    func reservePipe() -> Bool {
        let now = pipesOpen.wrappingAdd(1, ordering: .relaxed).newValue
        if now > maxPipes {
            pipesOpen.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func releasePipe() { pipesOpen.wrappingSubtract(1, ordering: .relaxed) }

    func noteDescriptorExhaustion() { descriptorExhaustions.wrappingAdd(1, ordering: .relaxed) }
}

/// A frontend's shared state: its limits, counters and backend.
final class FrontendState: Sendable {
    let name: String
    let backend: BackendState
    /// `maxconn` of the frontend; `Int.max` when unset.
    let maxConnections: Int
    let currentConnections = Atomic<Int>(0)
    let totalConnections = Atomic<Int>(0)
    let maxSeen = Atomic<Int>(0)
    /// 0 means no limit.
    let clientTimeoutMs: Int64
    let clientFinTimeoutMs: Int64

    init(_ frontend: Frontend, backend: BackendState) {
        name = frontend.name
        self.backend = backend
        maxConnections = frontend.maxConnections ?? Int.max
        clientTimeoutMs = frontend.clientTimeout?.milliseconds ?? 0
        clientFinTimeoutMs = frontend.clientFinTimeout?.milliseconds ?? clientTimeoutMs
    }
}
