import Testing
@testable import Sluice

/// The inactivity deadlines of a connected session, without sockets: which of a side's timeouts
/// runs (HAProxy 2.6's read and write timeouts per side), and what its expiry means.
/// `Loopback.TimeoutTests` runs the same cases through HAProxy and Sluice.
struct SessionTimeoutTests {
    static func session(client: Int64 = 1000, server: Int64 = 5000, clientFin: Int64 = 0, serverFin: Int64 = 0, tunnel: Int64 = 0) -> Session {
        var s = Session()
        s.state = .established
        s.policy.clientTimeoutMs = client
        s.policy.clientFinTimeoutMs = clientFin
        s.policy.backend.serverTimeoutMs = server
        s.policy.backend.serverFinTimeoutMs = serverFin
        s.policy.backend.tunnelTimeoutMs = tunnel
        s.clientActivity = 100
        s.serverActivity = 200
        return s
    }

    @Test func eachSideReadRunsItsOwnTimeoutFromItsLastActivity() {
        let s = Self.session()
        #expect(s.inactivityDeadlines.client == 1100)
        #expect(s.inactivityDeadlines.server == 5200)
        #expect(s.deadline == 1100)
        #expect(s.expiry(ofClient: true, now: 1099) == .none)
        #expect(s.expiry(ofClient: true, now: 1100) == .read)
        #expect(s.expiry(ofClient: false, now: 1100) == .none)
    }

    /// The client sent FIN (or timed out): nothing is read from it and nothing waits for it, so
    /// only the server's timeout runs — not the client's, nor `client-fin`.
    @Test func aSideNeitherReadNorOwedBytesHasNoTimeout() {
        var s = Self.session(clientFin: 50)
        s.toServer.sourceClosed = true
        #expect(s.inactivityDeadlines.client == .max)
        #expect(s.deadline == 5200)
    }

    @Test func bytesWaitingForASideThatIsNotReadRunItsWriteTimeout() {
        var s = Self.session()
        s.toServer.sourceClosed = true
        s.toClient.held = 10
        s.clientActivity = 300
        #expect(s.inactivityDeadlines.client == 1300)
        #expect(s.expiry(ofClient: true, now: 1300) == .write)
        // Read and owed bytes: the same timeout, and a write timeout when it passes.
        s.toServer.sourceClosed = false
        #expect(s.expiry(ofClient: true, now: 1300) == .write)
    }

    /// `client-fin` replaces `timeout client` once the client was sent the server's FIN, not when
    /// the server's FIN is only read; `server-fin` likewise.
    @Test func aFinTimeoutAppliesToASideOnceItWasSentAFin() {
        var s = Self.session(clientFin: 200, serverFin: 300)
        s.toClient.sourceClosed = true
        #expect(s.inactivityDeadlines.client == 1100)
        #expect(s.inactivityDeadlines.server == .max)
        s.toClient.finForwarded = true
        #expect(s.inactivityDeadlines.client == 300)
        #expect(s.expiry(ofClient: true, now: 300) == .read)

        var t = Self.session(clientFin: 200, serverFin: 300)
        t.toServer.sourceClosed = true
        t.toServer.finForwarded = true
        #expect(t.inactivityDeadlines.server == 500)
        #expect(t.inactivityDeadlines.client == .max)
    }

    @Test func tunnelReplacesBothTimeoutsButNotTheFinTimeouts() {
        var s = Self.session(clientFin: 200, tunnel: 60_000)
        #expect(s.inactivityDeadlines.client == 60_100)
        #expect(s.inactivityDeadlines.server == 60_200)
        s.toClient.sourceClosed = true
        s.toClient.finForwarded = true
        #expect(s.inactivityDeadlines.client == 300)
    }

    @Test func noTimeoutConfiguredMeansNoDeadline() {
        var s = Self.session(client: 0, server: 0)
        s.toClient.held = 5
        #expect(s.inactivityDeadlines.client == .max)
        #expect(s.inactivityDeadlines.server == .max)
        #expect(s.expiry(ofClient: true, now: .max - 1) == .none)
    }
}
