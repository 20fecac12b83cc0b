import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where a session came from, for the fetches that ask: its frontend, its bind's shared state,
/// the reactor thread and the process. The balancer keeps these objects alive while sessions run.
struct SessionOrigin {
    let frontend: Unmanaged<FrontendState>
    let bind: Unmanaged<BindState>?
    let thread: Int
    let process: Unmanaged<ProcessState>
}

/// The frontends by name, for `fe_conn(<frontend>)`: the rules are compiled before a reload
/// creates the frontends they may name, so the names are looked up when evaluated. Weak: a
/// frontend's routing holds the directory, and a frontend holds its routing.
final class FrontendDirectory: Sendable {
    private final class Entry: @unchecked Sendable {
        weak var frontend: FrontendState?
        init(_ frontend: FrontendState) { self.frontend = frontend }
    }

    private let frontends = Mutex<[String: Entry]>([:])

    init() {}

    func publish(_ all: [String: FrontendState]) { frontends.withLock { $0 = all.mapValues(Entry.init) } }

    subscript(name: String) -> FrontendState? { frontends.withLock { $0[name]?.frontend } }
}

extension FrontendRouting {
    func sample(_ fetch: SessionFetch, _ c: SessionContext) -> Sample? {
        let origin = c.origin
        switch fetch {
        case .frontendConnections(let name?):
            return frontends[name].map { .int(Int64($0.currentConnections.load(ordering: .relaxed))) }
        case .frontendConnections(nil):
            return origin.map { .int(Int64($0.frontend.takeUnretainedValue().currentConnections.load(ordering: .relaxed))) }
        case .bindConnections: return origin?.bind.map { .int(Int64($0.takeUnretainedValue().current.load(ordering: .relaxed))) }
        case .bindID: return origin?.bind.map { .int(Int64($0.takeUnretainedValue().id)) }
        case .frontendID: return origin.map { .int(Int64($0.frontend.takeUnretainedValue().id.load(ordering: .relaxed))) }
        case .defaultBackend: return namedDefault ? defaultBackend.map { .string(Array($0.name.utf8)) } : nil
        case .stopping: return .bool(origin?.process.takeUnretainedValue().stopping.load(ordering: .relaxed) ?? false)
        case .thread: return origin.map { .int(Int64($0.thread)) }
        case .random(let range): return .int(Int64((UInt64(UInt32.random(in: .min ... .max)) * range) >> 32))
        case .date(let offset, let unitsPerSecond):
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            return .int(Int64(now.tv_sec) * unitsPerSecond + Int64(now.tv_nsec) / (1_000_000_000 / unitsPerSecond) + offset)
        case .dateMicroseconds:
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            return .int(Int64(now.tv_nsec) / 1_000)
        case .uuid: return .string(Array(Self.uuid().utf8))
        case .tcpInfo(let field, let microseconds):
            var values = [UInt32](repeating: 0, count: SessionFetch.TCPInfoField.allCases.count)
            guard CShims_tcp_info(c.client, &values) == 0 else { return nil }
            let value = Int64(values[field.rawValue])
            return .int((field == .rtt || field == .rttVariance) && !microseconds ? value / 1_000 : value)
        case .receivedProxyHeader: return .bool(c.receivedProxyHeader)
        case .priorityClass: return .int(Int64(c.priority.classValue))
        case .priorityOffset: return .int(Int64(c.priority.offsetMs))
        case .proxyAuthority: return c.proxyAuthority.map { .string($0) }
        case .proxyUniqueID: return c.proxyUniqueID.map { .string($0) }
        case .uniqueID:
            guard let log = c.log, let origin else { return nil }
            return log.uniqueID(for: c, frontend: origin.frontend.takeUnretainedValue(), process: origin.process.takeUnretainedValue()).map { .string($0) }
        case .connectionAddress(let destination, let port):
            guard let address = destination ? c.connectionDestination : c.connectionSource, !address.isUnix else { return nil }
            return port ? .int(Int64(address.port)) : .ip(IPAddress(address))
        }
    }

    /// A version 4 UUID in RFC 4122's text, lower case as HAProxy writes it.
    static func uuid() -> String {
        var bytes = (0..<16).map { _ in UInt8.random(in: 0 ... 255) }
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        let hex = bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }
        return [0..<4, 4..<6, 6..<8, 8..<10, 10..<16].map { hex[$0].joined() }.joined(separator: "-")
    }
}
