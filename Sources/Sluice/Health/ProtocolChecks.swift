#if canImport(Glibc)
import Glibc
#endif

/// HAProxy's protocol checks as conversations: the same bytes on the wire (checked against HAProxy
/// 2.6 by the tests) and the same verdicts, statuses and descriptions as its tcpcheck rule sets.
extension ProtocolCheck {
    /// The steps of the conversation.
    /// The steps of the conversation. Judges carry the number HAProxy gives that rule in its own
    /// rule set (its `connect` rule counts), which its messages quote.
    var steps: [CheckProtocol.TCPStep] {
        switch self {
        case .redis:
            // A RESP array, as HAProxy sends it.
            return [.send(Array("*1\r\n$4\r\nPING\r\n".utf8)), .judge(.redisPong, step: 2)]
        case .sslHello:
            return [.sendClientHello, .judge(.sslHello, step: 2)]
        case .smtp(let hello):
            // HAProxy 2.6 ends the conversation with QUIT, and accepts any 2xx reply to it.
            return [.judge(.smtpBanner, step: 2), .send(Array("\(hello)\r\n".utf8)), .judge(.smtpReply, step: 5),
                    .send(Array("QUIT\r\n".utf8)), .judge(.smtpReply, step: 7)]
        case .pgsql(let user):
            // StartupMessage: length, protocol 3.0, "user" and the name, and the terminating NUL.
            let body: [UInt8] = [0, 3, 0, 0] + Array("user".utf8) + [0] + Array(user.utf8) + [0, 0]
            let length = UInt32(4 + body.count)
            return [.send(withUnsafeBytes(of: length.bigEndian, Array.init) + body), .judge(.pgsqlNotError, step: 3),
                    .judge(.pgsqlAuthentication, step: 4)]
        case .mysql(let user?, let post41):
            // A client authentication packet without a password, then COM_QUIT.
            let name = Array(user.utf8) + [0]
            let fields: [UInt8] = post41
                ? [0x00, 0x82, 0x00, 0x00, 0x00, 0x80, 0x00, 0x01, 0x21] + [UInt8](repeating: 0, count: 23) + name + [0]
                : [0x00, 0x80, 0x00, 0x00, 0x01] + name + [0]
            let header: [UInt8] = [UInt8(fields.count & 0xFF), UInt8((fields.count >> 8) & 0xFF), UInt8((fields.count >> 16) & 0xFF), 1]
            return [.send(header + fields + [0x01, 0x00, 0x00, 0x00, 0x01]), .judge(.mysqlHandshake(last: false), step: 3),
                    .judge(.mysqlOK, step: 4)]
        case .mysql(nil, _):
            return [.judge(.mysqlHandshake(last: true), step: 2)]
        case .ldap:
            // bindRequest, messageID 1, LDAPv3, anonymous simple bind.
            return [.send([0x30, 0x0C, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00]), .judge(.ldapBind, step: 2)]
        }
    }

    /// HAProxy's SSLv3 ClientHello: 39 RSA/DH cipher suites, no extensions, the current Unix time
    /// in the random field followed by "HAPROXYSSLCHK\nHAPROXYSSLCHK\n".
    static func clientHello(unixTime: UInt32) -> [UInt8] {
        var hello: [UInt8] = [0x16, 0x03, 0x00, 0x00, 0x79, 0x01, 0x00, 0x00, 0x75, 0x03, 0x00]
        hello += withUnsafeBytes(of: unixTime.bigEndian, Array.init)
        hello += Array("HAPROXYSSLCHK\nHAPROXYSSLCHK\n".utf8)
        hello += [0x00, 0x00, 0x4E]
        for suite in Array(0x01...0x1B) + Array(0x2F...0x3A) { hello += [0x00, UInt8(suite)] }
        hello += [0x01, 0x00]
        return hello
    }
}

/// How a protocol check judges what the server has sent so far, with HAProxy's rules.
enum ReplyJudge: Sendable {
    case redisPong
    case sslHello
    case smtpBanner
    case smtpReply
    case pgsqlNotError
    case pgsqlAuthentication
    /// The server's handshake packet; `last` when nothing follows (`mysql-check` without a user).
    case mysqlHandshake(last: Bool)
    /// The packet after the handshake: OK, or an error such as access denied.
    case mysqlOK
    case ldapBind

    enum Verdict {
        case wait
        /// Satisfied: go on with the next step.
        case next
        case pass(CheckResult)
        case fail(CheckResult)
    }

    /// The status of a failure at this step (HAProxy's error-status), e.g. an empty response.
    var errorStatus: CheckResult.Status {
        switch self {
        case .redisPong, .smtpReply, .pgsqlAuthentication: .layer7Status
        case .sslHello: .layer6Response
        case .smtpBanner, .pgsqlNotError, .mysqlHandshake, .mysqlOK, .ldapBind: .layer7Response
        }
    }

    /// The status a check stuck at this step times out with.
    var timeoutStatus: CheckResult.Status { if case .sslHello = self { .layer6Timeout } else { .layer7Timeout } }

    /// Judges `reply` (everything received since the last send); `complete` once the server closed
    /// or the reply filled the buffer.
    func judge(_ reply: [UInt8], complete: Bool) -> Verdict {
        // HAProxy's min-recv: with it, a mismatch on that many bytes is conclusive.
        func atLeast(_ n: Int) -> Bool { reply.count >= n || complete }
        switch self {
        case .redisPong:
            // A plain string expectation: wait for it until the server closes or the check times out.
            if reply.firstRange(of: Array("+PONG\r\n".utf8)) != nil { return .pass(CheckResult(status: .layer7OK, code: 0, info: "Redis server is ok")) }
            return complete ? .fail(CheckResult(status: .layer7Status, code: 0, info: Self.firstLine(reply))) : .wait
        case .sslHello:
            guard atLeast(5) else { return .wait }
            if let first = reply.first, first == 0x15 || first == 0x16 { return .pass(CheckResult(status: .layer6OK)) }
            return .fail(CheckResult(status: .layer6Response))
        case .smtpBanner, .smtpReply:
            // HAProxy: the banner must match ^[0-9]{3}[ \r] (else L7RSP) and ^2[0-9]{2}[ \r] (else
            // L7STS); the reply to the hello must match ^2[0-9]{2}[- \r] (else L7STS).
            guard atLeast(4) else { return .wait }
            let code = reply.count >= 3 && reply.prefix(3).allSatisfy({ (0x30...0x39).contains($0) })
                ? Int(String(decoding: reply.prefix(3), as: UTF8.self)) : nil
            let separators: [UInt8] = self == .smtpReply ? [0x2D, 0x20, 0x0D] : [0x20, 0x0D]
            let separated = reply.count >= 4 && separators.contains(reply[3])
            let text = Self.firstLine(Array(reply.dropFirst(4).drop { $0 == 0x20 }))
            if self == .smtpBanner && !(code != nil && separated) {
                return .fail(CheckResult(status: .layer7Response, info: Self.firstLine(reply)))
            }
            guard let code, (200...299).contains(code), separated else {
                return .fail(CheckResult(status: .layer7Status, code: code, info: text))
            }
            // HAProxy judges the first line; wait for the last one of a multi-line reply too, so that
            // its remaining lines do not arrive after the next command and pass for its reply.
            if reply[3] == 0x2D && !complete && !Self.smtpReplyEnded(reply) { return .wait }
            return self == .smtpBanner ? .next : .pass(CheckResult(status: .layer7OK, code: code, info: text))
        case .pgsqlNotError:
            guard atLeast(5) else { return .wait }
            if reply.first == UInt8(ascii: "E") {
                return .fail(CheckResult(status: .layer7Response, info: Self.cString(reply.dropFirst(6))))
            }
            return .next
        case .pgsqlAuthentication:
            guard atLeast(9) else { return .wait }
            // 'R', a length of 8, 10 or 12, and authentication code 0 (ok) or 2-6 (a password is asked).
            let ok = reply.count >= 9 && reply[0] == 0x52 && reply[1...3] == [0, 0, 0] && [8, 10, 12].contains(reply[4])
                && reply[5...7] == [0, 0, 0] && [0, 2, 3, 4, 5, 6].contains(reply[8])
            return ok ? .pass(CheckResult(status: .layer7OK, code: 0, info: "PostgreSQL server is ok"))
                : .fail(CheckResult(status: .layer7Status, code: 0, info: "PostgreSQL unknown error"))
        case .mysqlHandshake(let last):
            return Self.mysqlPacket(reply, at: 0, complete: complete, last: last)
        case .mysqlOK:
            guard reply.count >= 3 else { return complete ? .fail(CheckResult(status: .layer7Response)) : .wait }
            let handshake = 4 + Int(reply[0]) + Int(reply[1]) << 8 + Int(reply[2]) << 16
            return Self.mysqlPacket(reply, at: handshake, complete: complete, last: true)
        case .ldapBind:
            guard atLeast(14) else { return .wait }
            let notLDAP = ReplyJudge.Verdict.fail(CheckResult(status: .layer7Response, info: "Not LDAPv3 protocol"))
            guard reply.count >= 14, reply[0] == 0x30 else { return notLDAP }
            var length = reply[1] & 0x80 != 0 ? Int(reply[1] & 0x7F) : 0
            // messageID 1, then bindResponse (0x61)
            guard length <= 2, reply.count >= 2 + length + 4, Array(reply[(2 + length)..<(6 + length)]) == [0x02, 0x01, 0x01, 0x61] else { return notLDAP }
            length += reply[length + 6] & 0x80 != 0 ? Int(reply[length + 6] & 0x7F) : 0
            // ldapResult: ENUMERATED resultCode
            guard length <= 4, reply.count >= 10 + length, Array(reply[(7 + length)..<(9 + length)]) == [0x0A, 0x01] else { return notLDAP }
            let code = Int(reply[9 + length])
            return code == 0 ? .pass(CheckResult(status: .layer7OK, code: 0))
                : .fail(CheckResult(status: .layer7Status, code: code, info: "See RFC: http://tools.ietf.org/html/rfc4511#section-4.1.9"))
        }
    }

    /// A MySQL packet at `offset`: 3 bytes of length, a sequence id, then the payload; 0xFF starts
    /// an error packet (code, then message).
    private static func mysqlPacket(_ reply: [UInt8], at offset: Int, complete: Bool, last: Bool) -> Verdict {
        guard reply.count >= offset + 4 else { return complete ? .fail(CheckResult(status: .layer7Response)) : .wait }
        let length = Int(reply[offset]) + Int(reply[offset + 1]) << 8 + Int(reply[offset + 2]) << 16
        guard reply.count >= offset + 4 + length else { return complete ? .fail(CheckResult(status: .layer7Response)) : .wait }
        if length > 0 && reply[offset + 4] == 0xFF {
            let code = reply.count >= offset + 7 ? Int(reply[offset + 5]) + Int(reply[offset + 6]) << 8 : 0
            return .fail(CheckResult(status: .layer7Status, code: code, info: cString(reply.dropFirst(offset + 7))))
        }
        // As HAProxy: the server's version string from the handshake describes a success.
        // HAProxy 2.6 reports no description for a success (show stat's last_chk is empty).
        return last ? .pass(CheckResult(status: .layer7OK, code: 0)) : .next
    }

    /// The first line, as HAProxy prints a payload: up to CR, LF or NUL.
    private static func firstLine(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix { $0 != 0x0D && $0 != 0x0A && $0 != 0 }, as: UTF8.self)
    }

    /// Whether a multi-line SMTP reply (`250-…` lines) has reached its last line (`250 …`).
    private static func smtpReplyEnded(_ reply: [UInt8]) -> Bool {
        var lineStart = 0
        while let end = reply[lineStart...].firstIndex(of: 0x0A) {
            if end - lineStart >= 4 && reply[lineStart + 3] != 0x2D { return true }
            lineStart = end + 1
        }
        return false
    }

    private static func cString(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
}

extension ReplyJudge: Equatable {}
