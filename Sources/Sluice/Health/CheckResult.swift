/// The outcome of one health check, in HAProxy's vocabulary (`check_status` in `show stat`).
public struct CheckResult: Hashable, Sendable, CustomStringConvertible {
    /// HAProxy's check statuses that Layer-4 checks produce, by their `show stat` codes.
    public enum Status: String, Hashable, Sendable {
        /// Not checked yet.
        case initial = "INI"
        /// The connection was accepted (a plain TCP check passed).
        case layer4OK = "L4OK"
        /// The connection was not established in time.
        case layer4Timeout = "L4TOUT"
        /// The connection was refused or failed.
        case layer4Connection = "L4CON"
        /// The connection failed at once, inside `connect(2)` (a UNIX socket that is missing or
        /// refuses, no route, no descriptor): HAProxy's "I/O error" before a connection attempt.
        case socketError = "SOCKERR"
        /// A TLS hello check passed.
        case layer6OK = "L6OK"
        /// The TLS hello got no answer in time.
        case layer6Timeout = "L6TOUT"
        /// The TLS hello's answer was not TLS.
        case layer6Response = "L6RSP"
        /// The protocol check passed.
        case layer7OK = "L7OK"
        /// An HTTP check answered 404 under `http-check disable-on-404`: the server is UP but
        /// soft-stopped (NOLB).
        case layer7OKConditional = "L7OKC"
        /// The server answered with a failing status (an HTTP 503, a MySQL error …).
        case layer7Status = "L7STS"
        /// The answer was not what the protocol says (or did not match `expect`).
        case layer7Response = "L7RSP"
        /// The answer did not come in time.
        case layer7Timeout = "L7TOUT"
        /// An agent answered without a health word: nothing to change.
        case checked = "CHECKED"
        /// An external check's program exited with 0.
        case processOK = "PROCOK"
        /// An external check's program exited with another status, or a signal ended it.
        case processError = "PROCERR"
        /// An external check's program had not exited in time (it is sent SIGTERM).
        case processTimeout = "PROCTOUT"

        /// HAProxy's sentence for the status, used in transition logs.
        public var reason: String {
            switch self {
            case .initial: "Initializing"
            case .layer4OK: "Layer4 check passed"
            case .layer4Timeout: "Layer4 timeout"
            case .layer4Connection: "Layer4 connection problem"
            case .socketError: "Socket error"
            case .layer6OK: "Layer6 check passed"
            case .layer6Timeout: "Layer6 timeout"
            case .layer6Response: "Layer6 invalid response"
            case .layer7OK: "Layer7 check passed"
            case .layer7OKConditional: "Layer7 check conditionally passed"
            case .layer7Status: "Layer7 wrong status"
            case .layer7Response: "Layer7 invalid response"
            case .layer7Timeout: "Layer7 timeout"
            case .checked: "No status change"
            case .processOK: "External check passed"
            case .processError: "External check error"
            case .processTimeout: "External check timeout"
            }
        }

        /// Whether the check passed.
        public var passed: Bool { self == .layer4OK || self == .layer6OK || self == .layer7OK || self == .layer7OKConditional || self == .processOK }
    }

    /// The verdict.
    public var status: Status
    /// The HTTP status code, for HTTP checks that got one; an external check's exit status.
    public var code: Int?
    /// Details: the errno sentence, the HTTP reason phrase, the tcp-check step that failed.
    public var info: String
    /// Milliseconds from connect to verdict.
    public var durationMs: Int64

    /// A result as a check, `set server health` or a test reports it.
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

/// A server's latest check result and whether the next one is under way, kept together.
struct CheckProgress {
    var last = CheckResult(status: .initial)
    var running = false
}
