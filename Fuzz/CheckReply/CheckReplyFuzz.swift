// libFuzzer target `CheckReply`: what a server answers a health check, judged as the check runner judges it —
// the HTTP status line and body (`option httpchk`, `http-check expect`), the `tcp-check expect`
// matchers and every protocol check's reply (Redis, SSL hello, SMTP, PostgreSQL, MySQL, LDAP).
// The first byte chooses the judge, the second where the reply is cut as if it arrived in two
// reads; the rest is the reply. A judge may wait for more bytes, but a complete reply (the server
// closed, or the buffer is full) always gets a verdict. Nothing traps, nothing reads past the reply.
// Built (with the others, into one binary: Fuzz/Driver.swift) and run by scripts/fuzz; seeds in corpus/ (replies of real servers, see capture).
func fuzzCheckReply(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let reply = Array(input.dropFirst(2).prefix(CheckProtocol.maxReply))
    let cut = reply.isEmpty ? 0 : Int(input[1]) % (reply.count + 1)
    let judges = Judge.all
    let judge = judges[Int(input[0]) % judges.count]
    _ = judge.run(Array(reply.prefix(cut)), complete: false)
    _ = judge.run(reply, complete: false)
    precondition(judge.run(reply, complete: true), "\(judge) waits for more after the server closed")
    return 0
}

/// The regular expressions the judges use, held in a plain array: in the judges' enums the
/// references share their words with the case tags, where LeakSanitizer does not see them.
let regexes = ["^2[0-9]{2}$", "\"status\": *\"(up|ok)\"", "^role:master"].map { POSIXRegex($0)! }

/// One way of judging a reply; `run` says whether it reached a verdict.
enum Judge: CustomStringConvertible {
    case http(HTTPExpectation?, POSIXRegex?)
    case tcp(CheckProtocol.TCPMatcher)
    case reply(ReplyJudge)

    static let all: [Judge] = {
        var judges: [Judge] = [
            .http(nil, nil), .http(.status([200...299, 304...304], negated: false), nil),
            .http(.status([500...599], negated: true), nil),
            .http(.statusRegex("^2[0-9]{2}$", negated: false), regexes[0]),
            .http(.string("alive", negated: false), nil), .http(.string("maintenance", negated: true), nil),
            .http(.stringRegex("\"status\": *\"(up|ok)\"", negated: false), regexes[1]),
            .tcp(.bytes(Array("+PONG".utf8))), .tcp(.regex(regexes[2])),
        ]
        let protocols: [ReplyJudge] = [.redisPong, .sslHello, .smtpBanner, .smtpReply, .pgsqlNotError, .pgsqlAuthentication,
                                       .mysqlHandshake(last: true), .mysqlHandshake(last: false), .mysqlOK, .ldapBind]
        judges += protocols.map { .reply($0) }
        return judges
    }()

    func run(_ reply: [UInt8], complete: Bool) -> Bool {
        switch self {
        case .http(let expectation, let regex):
            return CheckProtocol.judgeHTTP(reply, complete: complete, expectation: expectation, regex: regex) != nil
        case .tcp(let matcher):
            _ = matcher.matches(reply)
            return true
        case .reply(let judge):
            if case .wait = judge.judge(reply, complete: complete) { return false }
            return true
        }
    }

    var description: String {
        switch self {
        case .http(let e, _): "http \(String(describing: e))"
        case .tcp(let m): "tcp-check \(m)"
        case .reply(let j): "\(j)"
        }
    }
}
