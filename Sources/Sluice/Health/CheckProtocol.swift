/// What a check sends and how it judges the reply: plain bytes in, verdict out, no sockets.
enum CheckProtocol: Sendable {
    /// `check` alone: a completed connect passes.
    case connect
    /// `option httpchk`: one request, then judge the status line (or body, for string expectations).
    /// `stateAt`: with `http-check send-state`, where `x-haproxy-server-state` goes (built for each
    /// check): after the configured headers, before `content-length` and `connection`, as HAProxy.
    /// `disableOn404`: a 404 from a server that is up is a conditional pass (NOLB).
    case http(request: [UInt8], expectation: HTTPExpectation?, regex: POSIXRegex?, stateAt: Int?, disableOn404: Bool)
    /// `option tcp-check`: sends and expectations in order.
    case tcp([TCPStep])
    /// `agent-check`: `agent-send`, then one line of the agent's words (`AgentReply`).
    case agent(send: [UInt8])
    /// `option external-check`: a program, no connection (`ExternalCheckProcess`).
    case external(ExternalCheck)

    enum TCPStep: Sendable {
        case send([UInt8])
        /// `option ssl-hello-chk`'s ClientHello, which carries the time it is sent.
        case sendClientHello
        case expect(TCPMatcher, negated: Bool, report: ExpectReport)
        /// A protocol check's judgment of the reply; `step` is HAProxy's number for the rule.
        case judge(ReplyJudge, step: Int)
    }

    /// HAProxy's additions to the results of a plain `tcp-check` ruleset (not a protocol check):
    /// where a connection failed (check.c's `chk_report_conn_err`), and the pass of a ruleset that
    /// ends with its own connect rule (tcpcheck.c).
    struct RulesetWords: Sendable {
        /// After a failed connection's reason: " at initial connection step of tcp-check" for the
        /// implicit connect, else " at step <n> of tcp-check (connect[ port <p>])[ comment: '<c>']".
        let connectFailure: String
        /// "(tcp-check)" when the ruleset is an explicit connect and nothing after it.
        let passInfo: String?

        init?(_ kind: HealthCheck) {
            guard case .tcp(let rules) = kind else { return nil }
            var comment: String?
            for (index, rule) in rules.enumerated() {
                switch rule {
                case .comment(let text): comment = text
                case .connect(let port, _, _):
                    connectFailure = " at step \(index + 1) of tcp-check (connect\(port.map { " port \($0)" } ?? ""))" + (comment.map { " comment: '\($0)'" } ?? "")
                    let rest = rules[(index + 1)...].contains { if case .comment = $0 { false } else { true } }
                    passInfo = rest ? nil : "(tcp-check)"
                    return
                default:
                    connectFailure = " at initial connection step of tcp-check"
                    passInfo = nil
                    return
                }
            }
            connectFailure = " at initial connection step of tcp-check"
            passInfo = nil
        }
    }

    /// How HAProxy words a failed expectation: its rule's step number (every configured rule counts,
    /// `connect` and `comment` included), the comment attached to it, and the pattern as its two
    /// messages show it (tcpcheck.c for a mismatch, check.c for a timeout).
    struct ExpectReport: Sendable {
        let step: Int
        let comment: String?
        /// After "TCPCHK did not match content": ` '+PONG'`, ` (binary)`, ` (regex)`, ` (binary regex)`.
        let mismatch: String
        /// Inside "(expect …)": `string '+PONG'`, `binary '<the bytes>'`, `regex`, `binary regex`.
        let timeout: String

        var mismatchSuffix: String { " at step \(step)" + (comment.map { " comment: \($0)" } ?? "") }
        /// With HAProxy's leading blank (its message is an error's text, empty here, then this).
        var timeoutInfo: String { " at step \(step) of tcp-check (expect \(timeout))" + (comment.map { " comment: '\($0)'" } ?? "") }
    }

    enum TCPMatcher: Sendable {
        case bytes([UInt8])
        case regex(POSIXRegex)
        /// `rbinary`: the regex on the reply in upper-case hexadecimal.
        case hexRegex(POSIXRegex)

        /// Two upper-case hexadecimal digits a byte, as HAProxy's `dump_binary`.
        static func hex(_ data: [UInt8]) -> [UInt8] {
            let digits = Array("0123456789ABCDEF".utf8)
            return data.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }
        }

        func matches(_ data: [UInt8]) -> Bool {
            switch self {
            case .bytes(let needle): data.firstRange(of: needle) != nil
            case .regex(let regex): regex.matches(data)
            case .hexRegex(let regex): regex.matches(Self.hex(data))
            }
        }
    }

    /// How much reply a check keeps before judging: enough for status lines, headers and a short body.
    static let maxReply = 16 * 1024

    /// Builds the protocol for a backend's check; nil and a message when a regex does not compile.
    static func make(_ check: HealthCheck) -> Result<CheckProtocol, SluiceError> {
        switch check {
        case .tcpConnect:
            return .success(.connect)
        case .external(let check):
            return .success(.external(check))
        case .http(let http):
            // As HAProxy 2.6 writes it (its HTX to HTTP/1): header names in lower case, then the
            // body's length, then `connection: close` for HTTP/1.1 unless a header set one.
            var request = "\(http.method) \(http.uri) \(http.version)\r\n"
            for header in http.headers { request += "\(header.name.lowercased()): \(header.value)\r\n" }
            let stateAt = http.sendsState ? request.utf8.count : nil
            if !http.body.isEmpty { request += "content-length: \(http.body.utf8.count)\r\n" }
            if http.version == "HTTP/1.1" && !http.headers.contains(where: { $0.name.lowercased() == "connection" }) {
                request += "connection: close\r\n"
            }
            request += "\r\n" + http.body
            var regex: POSIXRegex?
            switch http.expect {
            case .statusRegex(let pattern, _), .stringRegex(let pattern, _):
                guard let compiled = POSIXRegex(pattern) else { return .failure(SluiceError("http-check expect: invalid regular expression '\(pattern)'")) }
                regex = compiled
            default: break
            }
            return .success(.http(request: Array(request.utf8), expectation: http.expect, regex: regex, stateAt: stateAt,
                                  disableOn404: http.disableOn404))
        case .tcp(let rules):
            var steps: [TCPStep] = []
            // HAProxy's comment rule (check_proxy_tcpcheck): a comment goes to the next connect, or
            // to the next run of rules of one kind (sends, or expects), and ends when the kind changes.
            var comment: String?
            var previous = "comment"
            for (index, rule) in rules.enumerated() {
                let kind: String
                switch rule {
                case .comment: kind = "comment"
                case .connect: kind = "connect"
                case .send: kind = "send"
                default: kind = "expect"
                }
                if kind != previous && previous != "comment" { comment = nil }
                previous = kind
                func report(_ mismatch: String, _ timeout: String) -> ExpectReport {
                    ExpectReport(step: index + 1, comment: comment, mismatch: mismatch, timeout: timeout)
                }
                switch rule {
                case .comment(let text): comment = text
                case .connect: comment = nil  // only as the first rule; its port is applied to the check address
                case .send(let bytes): steps.append(.send(bytes))
                case .expectString(let s, let negated):
                    steps.append(.expect(.bytes(Array(s.utf8)), negated: negated, report: report(" '\(s)'", "string '\(s)'")))
                case .expectBinary(let b, let negated):
                    steps.append(.expect(.bytes(b), negated: negated, report: report(" (binary)", "binary '\(String(decoding: b, as: UTF8.self))'")))
                case .expectRegex(let pattern, let negated):
                    guard let regex = POSIXRegex(pattern) else { return .failure(SluiceError("tcp-check expect: invalid regular expression '\(pattern)'")) }
                    steps.append(.expect(.regex(regex), negated: negated, report: report(" (regex)", "regex")))
                case .expectBinaryRegex(let pattern, let negated):
                    guard let regex = POSIXRegex(pattern) else { return .failure(SluiceError("tcp-check expect: invalid regular expression '\(pattern)'")) }
                    steps.append(.expect(.hexRegex(regex), negated: negated, report: report(" (binary regex)", "binary regex")))
                }
            }
            return .success(.tcp(steps))
        case .protocolCheck(let check):
            return .success(.tcp(check.steps))
        }
    }

    /// Judges an HTTP reply. `complete` is true once the server closed or the reply filled `maxReply`.
    /// Returns nil while more bytes are needed.
    /// `conditional404`: the server is up and `http-check disable-on-404` is on, so a 404 is
    /// HAProxy's conditional pass whatever the expectation says.
    static func judgeHTTP(_ reply: [UInt8], complete: Bool, expectation: HTTPExpectation?, regex: POSIXRegex?, conditional404: Bool = false) -> CheckResult? {
        guard let lineEnd = reply.firstIndex(of: UInt8(ascii: "\n")) else {
            return complete ? CheckResult(status: .layer7Response, info: reply.isEmpty ? "empty response" : "no status line") : nil
        }
        let line = String(decoding: reply[..<lineEnd], as: UTF8.self).trimmingSuffix("\r")
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let code = Int(parts[1]), (100...999).contains(code) else {
            return CheckResult(status: .layer7Response, info: "invalid status line")
        }
        let phrase = parts.count > 2 ? String(parts[2]) : ""
        // HAProxy 2.6 gives the reason phrase of a failure only: a pass has no info (`last_chk`, logs).
        func verdict(_ pass: Bool, failing: CheckResult.Status = .layer7Status) -> CheckResult {
            pass ? CheckResult(status: .layer7OK, code: code, info: "") : CheckResult(status: failing, code: code, info: phrase)
        }
        if conditional404 && code == 404 { return CheckResult(status: .layer7OKConditional, code: code, info: phrase) }
        switch expectation {
        case nil:
            return verdict((200...399).contains(code))
        case .status(let ranges, let negated):
            return verdict(ranges.contains { $0.contains(code) } != negated)
        case .statusRegex(_, let negated):
            return verdict((regex?.matches(Array(String(code).utf8)) ?? false) != negated)
        case .string(let needle, let negated):
            guard complete else { return nil }
            return verdict((body(reply).firstRange(of: Array(needle.utf8)) != nil) != negated, failing: .layer7Response)
        case .stringRegex(_, let negated):
            guard complete else { return nil }
            return verdict((regex?.matches(body(reply)) ?? false) != negated, failing: .layer7Response)
        }
    }

    private static func body(_ reply: [UInt8]) -> [UInt8] {
        guard let end = reply.firstRange(of: Array("\r\n\r\n".utf8)) else { return [] }
        return Array(reply[end.upperBound...])
    }
}

extension String {
    init(format2 byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self.init([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }

    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
