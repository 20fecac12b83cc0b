/// Fetches read from the running process when a rule or a log line evaluates them: the session's
/// frontend and bind, the client connection's own addresses and kernel counters, the clock,
/// randomness and the process's state (HAProxy 2.6's section 7.3.2 and 7.3.3, Layer 4).
enum SessionFetch: Sendable, Hashable {
    /// `fe_conn([<frontend>])`: current connections of the frontend, this one included.
    case frontendConnections(frontend: String?)
    /// `dst_conn`: current connections of the bind the session came through, this one included.
    case bindConnections
    /// `so_id`: the bind's id (its `id`, else its place among the frontend's binds from 1).
    case bindID
    /// `fe_id`: the frontend's id.
    case frontendID
    /// `fe_defbe`: the frontend's default backend.
    case defaultBackend
    /// `stopping`: the process is stopping (soft stop).
    case stopping
    /// `thread`: the reactor thread evaluating it, from 0.
    case thread
    /// `rand([<range>])`: an integer in 0..<range (2^32 by default).
    case random(range: UInt64)
    /// `date([<offset>][,<unit>])`: the epoch in seconds, milliseconds or microseconds, plus the offset.
    case date(offset: Int64, unitsPerSecond: Int64)
    /// `date_us`: the microseconds within the current second.
    case dateMicroseconds
    /// `uuid([4])`: a random (version 4) UUID.
    case uuid
    /// `fc_rtt`, `fc_rttvar` (`(<unit>)`: ms by default, or us), `fc_unacked`, `fc_sacked`,
    /// `fc_retrans`, `fc_fackets`, `fc_lost`, `fc_reordering`: the kernel's `TCP_INFO` of the
    /// client connection.
    case tcpInfo(TCPInfoField, microseconds: Bool)
    /// `fc_rcvd_proxy`: the client sent a PROXY header.
    case receivedProxyHeader
    /// `fc_pp_authority`, `fc_pp_unique_id`: the authority and unique ID TLVs of the client's v2
    /// PROXY header.
    case proxyAuthority
    case proxyUniqueID
    /// `prio_class`, `prio_offset`: what `set-priority-class|offset` set (0 otherwise).
    case priorityClass
    case priorityOffset
    /// `unique-id`: the session's unique ID in its frontend's `unique-id-format`, built the first
    /// time something asks for it; none without a format, or before the session exists
    /// (`tcp-request connection|session` rules), as HAProxy.
    case uniqueID
    /// `fc_src`, `fc_src_port`, `fc_dst`, `fc_dst_port`: the client connection's own addresses,
    /// whatever a PROXY header said (which `src`/`dst` report).
    case connectionAddress(destination: Bool, port: Bool)

    /// The fields of `TCP_INFO` the `fc_*` fetches read, in `CShims_tcp_info`'s order.
    enum TCPInfoField: Int, Sendable, Hashable, CaseIterable {
        case rtt, rttVariance, unacknowledged, selectivelyAcknowledged, retransmitted, forwardAcknowledged, lost, reordering

        var fetchName: String {
            ["fc_rtt", "fc_rttvar", "fc_unacked", "fc_sacked", "fc_retrans", "fc_fackets", "fc_lost", "fc_reordering"][rawValue]
        }
    }

    var defaultMatch: MatchMethod {
        switch self {
        case .stopping, .receivedProxyHeader: .bool
        case .defaultBackend, .uuid, .proxyAuthority, .proxyUniqueID, .uniqueID: .str
        case .connectionAddress(_, let port): port ? .int : .ip
        default: .int
        }
    }

    /// Parses one of these fetches; nil when `name` is none of them.
    static func parse(_ name: String, _ args: [String]) -> Result<Fetch, ValueError>? {
        func none(_ fetch: SessionFetch) -> Result<Fetch, ValueError> {
            args.isEmpty ? .success(.session(fetch)) : .failure(ValueError("fetch '\(name)' takes no arguments"))
        }
        switch name {
        case "fe_conn":
            guard args.count <= 1 else { return .failure(ValueError("'fe_conn' takes at most one frontend name")) }
            return .success(.session(.frontendConnections(frontend: args.first.flatMap { $0.isEmpty ? nil : $0 })))
        case "dst_conn": return none(.bindConnections)
        case "so_id": return none(.bindID)
        case "fe_id": return none(.frontendID)
        case "fe_defbe": return none(.defaultBackend)
        case "stopping": return none(.stopping)
        case "thread": return none(.thread)
        case "date_us": return none(.dateMicroseconds)
        case "fc_rcvd_proxy": return none(.receivedProxyHeader)
        case "fc_pp_authority": return none(.proxyAuthority)
        case "fc_pp_unique_id": return none(.proxyUniqueID)
        case "unique-id": return none(.uniqueID)
        case "prio_class": return none(.priorityClass)
        case "prio_offset": return none(.priorityOffset)
        case "fc_src", "fc_src_port", "fc_dst", "fc_dst_port":
            return none(.connectionAddress(destination: name.hasPrefix("fc_dst"), port: name.hasSuffix("_port")))
        case "rand":
            guard args.count <= 1 else { return .failure(ValueError("'rand' takes at most a range")) }
            guard let range = args.isEmpty ? UInt64(1) << 32 : UInt64(args[0]), range <= UInt64(1) << 32 else {
                return .failure(ValueError("'rand(\(args[0]))': the range is a whole number from 0 to 4294967296"))
            }
            return .success(.session(.random(range: range)))
        case "date":
            guard args.count <= 2 else { return .failure(ValueError("'date' takes ([<offset>][,<unit>])")) }
            let units: [String: Int64] = ["": 1, "s": 1, "ms": 1_000, "us": 1_000_000]
            let offsetText = args.first ?? ""
            guard let offset = offsetText.isEmpty ? 0 : Int64(offsetText) else {
                return .failure(ValueError("'date': the offset '\(args[0])' is not an integer"))
            }
            guard let unit = units[args.count == 2 ? args[1] : ""] else { return .failure(ValueError("'date': the unit '\(args[1])' is not s, ms or us")) }
            return .success(.session(.date(offset: offset, unitsPerSecond: unit)))
        case "uuid":
            guard args.isEmpty || args == ["4"] else { return .failure(ValueError("'uuid': only version 4 is supported (as in HAProxy)")) }
            return .success(.session(.uuid))
        default:
            guard let field = TCPInfoField.allCases.first(where: { $0.fetchName == name }) else { return nil }
            if field == .rtt || field == .rttVariance {
                guard args.count <= 1, ["", "ms", "us"].contains(args.first ?? "") else { return .failure(ValueError("'\(name)' takes an optional unit, ms or us")) }
                return .success(.session(.tcpInfo(field, microseconds: args.first == "us")))
            }
            return none(.tcpInfo(field, microseconds: false))
        }
    }
}
