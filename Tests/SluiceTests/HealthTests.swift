import Testing
@testable import Sluice

/// The health state machine and the HTTP verdicts, without sockets.
struct HealthCounterTests {
    @Test func startsUpButTheFirstFailureTakesItDown() {
        var c = HealthCounter(rise: 2, fall: 3)
        #expect(c.isUp)
        #expect(c.failure() == .wentDown)
        #expect(c.operational == .stopped)
    }

    @Test func fromFullHealthItTakesFallFailuresToGoDown() {
        var c = HealthCounter(rise: 2, fall: 3)
        #expect(c.success() == nil)  // already up: back to full health
        #expect(c.operational == .running)
        #expect(c.failure() == nil)
        #expect(c.operational == .running, "UP 2/3 is still running, as in HAProxy")
        #expect(c.progress == "2/3")
        #expect(c.failure() == nil)
        #expect(c.failure() == .wentDown)
        #expect(c.value == 0)
    }

    @Test func fromDownItTakesRiseSuccessesToComeUp() {
        var c = HealthCounter(rise: 3, fall: 2, value: 0)
        #expect(c.success() == nil)
        #expect(c.operational == .stopped, "DOWN 1/3 is still stopped, as in HAProxy")
        #expect(c.progress == "1/3")
        #expect(c.success() == nil)
        #expect(c.success() == .wentUp)
        #expect(c.operational == .running)
        #expect(c.value == c.top)
    }

    @Test func aSuccessDuringAFallRestoresFullHealth() {
        var c = HealthCounter(rise: 2, fall: 3, value: 4)
        _ = c.failure()
        _ = c.failure()
        #expect(c.value == 2)
        #expect(c.success() == nil)
        #expect(c.value == 4)
    }

    @Test func suddenDeathLeavesOneFailureAndMarkDownActsAtOnce() {
        var c = HealthCounter(rise: 2, fall: 3, value: 4)
        c.suddenDeath()
        #expect(c.isUp)
        #expect(c.failure() == .wentDown)
        var d = HealthCounter(rise: 2, fall: 3, value: 4)
        #expect(d.markDown() == .wentDown)
        #expect(d.markDown() == nil)
    }
}

struct HTTPVerdictTests {
    static func judge(_ reply: String, complete: Bool = true, _ expectation: HTTPExpectation? = nil, regex: String? = nil) -> CheckResult? {
        CheckProtocol.judgeHTTP(Array(reply.utf8), complete: complete, expectation: expectation, regex: regex.flatMap { POSIXRegex($0) })
    }

    @Test func anyTwoOrThreeHundredPassesByDefault() {
        #expect(Self.judge("HTTP/1.1 200 OK\r\n\r\n")?.status == .layer7OK)
        #expect(Self.judge("HTTP/1.0 302 Found\r\n", complete: false)?.status == .layer7OK)
        let failed = Self.judge("HTTP/1.1 503 Service Unavailable\r\n\r\n")
        #expect(failed == CheckResult(status: .layer7Status, code: 503, info: "Service Unavailable"))
        #expect(failed?.description == "reason: Layer7 wrong status, code: 503, info: \"Service Unavailable\", check duration: 0ms")
    }

    @Test func statusListsRangesAndNegation() {
        let expect = HTTPExpectation.status([200...200, 404...404], negated: false)
        #expect(Self.judge("HTTP/1.1 404 Not Found\r\n", expect)?.status == .layer7OK)
        #expect(Self.judge("HTTP/1.1 204 No Content\r\n", expect)?.status == .layer7Status)
        #expect(Self.judge("HTTP/1.1 500 Oops\r\n", .status([500...599], negated: true))?.status == .layer7Status)
        #expect(Self.judge("HTTP/1.1 301 Moved\r\n", .statusRegex("^3", negated: false), regex: "^3")?.status == .layer7OK)
    }

    @Test func bodyExpectationsWaitForTheWholeReply() {
        let expect = HTTPExpectation.string("ready", negated: false)
        #expect(Self.judge("HTTP/1.1 200 OK\r\n\r\nrea", complete: false, expect) == nil)
        #expect(Self.judge("HTTP/1.1 200 OK\r\n\r\nready\n", expect)?.status == .layer7OK)
        #expect(Self.judge("HTTP/1.1 200 OK\r\n\r\nbooting\n", expect)?.status == .layer7Response)
        #expect(Self.judge("HTTP/1.1 200 OK\r\n\r\nstate=up\n", .stringRegex("state=(up|ok)", negated: false), regex: "state=(up|ok)")?.status == .layer7OK)
    }

    /// `http-check disable-on-404` on a server that is up: a 404 is HAProxy's conditional pass,
    /// whatever the expectation; other codes, and a 404 without it, are judged as usual.
    @Test func aFourOhFourUnderDisableOn404IsAConditionalPass() {
        func judge(_ reply: String, _ expectation: HTTPExpectation? = nil) -> CheckResult? {
            CheckProtocol.judgeHTTP(Array(reply.utf8), complete: true, expectation: expectation, regex: nil, conditional404: true)
        }
        #expect(judge("HTTP/1.1 404 Not Found\r\n\r\n")?.status == .layer7OKConditional)
        #expect(judge("HTTP/1.1 404 Not Found\r\n\r\n", .status([200...200], negated: false))?.status == .layer7OKConditional)
        #expect(judge("HTTP/1.1 200 OK\r\n\r\n")?.status == .layer7OK)
        #expect(judge("HTTP/1.1 503 Busy\r\n\r\n")?.status == .layer7Status)
        #expect(Self.judge("HTTP/1.1 404 Not Found\r\n\r\n")?.status == .layer7Status)
        #expect(CheckResult.Status.layer7OKConditional.passed && CheckResult.Status.layer7OKConditional.rawValue == "L7OKC")
    }

    @Test func truncatedOrForeignRepliesAreInvalid() {
        #expect(Self.judge("HTTP/1.1 20", complete: false) == nil)
        #expect(Self.judge("HTTP/1.1 20")?.status == .layer7Response)
        #expect(Self.judge("")?.info == "empty response")
        #expect(Self.judge("+PONG\r\n")?.status == .layer7Response)
    }

    @Test func requestCarriesMethodURIVersionHeadersAndClose() throws {
        var http = HTTPCheck()
        http.method = "GET"
        http.uri = "/alive"
        http.version = "HTTP/1.1"
        http.headers = [("Host", "api.local")]
        guard case .http(let request, _, _, _, _) = try CheckProtocol.make(.http(http)).get() else {
            Issue.record("expected an HTTP check")
            return
        }
        #expect(String(decoding: request, as: UTF8.self) == "GET /alive HTTP/1.1\r\nhost: api.local\r\nconnection: close\r\n\r\n")
    }
}
