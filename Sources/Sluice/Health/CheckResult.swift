/// The outcome of one health check, in HAProxy's vocabulary (`check_status` in `show stat`).
public struct CheckResult: Hashable, Sendable, CustomStringConvertible {
    public enum Status: String, Hashable, Sendable {
        /// Not checked yet.
        case initial = "INI"
        case layer4OK = "L4OK"
        case layer4Timeout = "L4TOUT"
        case layer4Connection = "L4CON"
        case layer6OK = "L6OK"
        case layer6Timeout = "L6TOUT"
        case layer6Response = "L6RSP"
        case layer7OK = "L7OK"
        case layer7Status = "L7STS"
        case layer7Response = "L7RSP"
        case layer7Timeout = "L7TOUT"

        /// HAProxy's sentence for the status, used in transition logs.
        public var reason: String {
            switch self {
            case .initial: "Initializing"
            case .layer4OK: "Layer4 check passed"
            case .layer4Timeout: "Layer4 timeout"
            case .layer4Connection: "Layer4 connection problem"
            case .layer6OK: "Layer6 check passed"
            case .layer6Timeout: "Layer6 timeout"
            case .layer6Response: "Layer6 invalid response"
            case .layer7OK: "Layer7 check passed"
            case .layer7Status: "Layer7 wrong status"
            case .layer7Response: "Layer7 invalid response"
            case .layer7Timeout: "Layer7 timeout"
            }
        }

        public var passed: Bool { self == .layer4OK || self == .layer6OK || self == .layer7OK }
    }

    public var status: Status
    /// The HTTP status code, for HTTP checks that got one.
    public var code: Int?
    /// Details: the errno sentence, the HTTP reason phrase, the tcp-check step that failed.
    public var info: String
    /// Milliseconds from connect to verdict.
    public var durationMs: Int64

    public init(status: Status, code: Int? = nil, info: String = "", durationMs: Int64 = 0) {
        self.status = status
        self.code = code
        self.info = info
        self.durationMs = durationMs
    }

    /// `reason: Layer7 wrong status, code: 503, info: "Service Unavailable", check duration: 1ms`
    public var description: String {
        var text = "reason: \(status.reason)"
        if let code { text += ", code: \(code)" }
        if !info.isEmpty { text += ", info: \"\(info)\"" }
        return text + ", check duration: \(durationMs)ms"
    }
}
