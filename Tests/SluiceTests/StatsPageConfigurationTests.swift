import Testing
@testable import Sluice

/// HAProxy's statistics proxy: accepted when `mode http` only serves statistics, refused with the
/// reason for anything else.
struct StatsPageConfigurationTests {
    static let tcp = """
        frontend fe
          bind :80
          default_backend be
        backend be
          server a 127.0.0.1:8080

        """

    @Test func aStatsOnlyProxyBecomesAPage() throws {
        let parsed = try Configuration.parse(Self.tcp + """
            listen stats
              mode http
              bind 127.0.0.1:8404
              stats enable
              stats uri /haproxy-stats
              stats realm Our\\ stats
              stats auth admin:one
              stats auth ops:two
              stats refresh 5s
              stats hide-version
              http-request use-service prometheus-exporter if { path /metrics }
            frontend exporter
              mode http
              bind :9101
              http-request use-service prometheus-exporter

            """, file: "t.cfg")
        let pages = parsed.configuration.statsPages
        #expect(pages.map(\.name) == ["stats", "exporter"])
        #expect(pages[0].uri == "/haproxy-stats" && pages[0].prometheusPath == "/metrics" && pages[0].users == ["admin": "one", "ops": "two"])
        #expect(pages[0].refresh == .seconds(5) && pages[0].hideVersion && pages[0].binds.map(\.endpoint.port) == [8404])
        #expect(pages[1].uri == nil && pages[1].prometheusPath == "")
        // Not a frontend or backend of the data path.
        #expect(parsed.configuration.frontends.map(\.name) == ["fe"] && parsed.configuration.backends.map(\.name) == ["be"])
    }

    /// `stats admin`: the conditions such pages use, and never without an authenticated user.
    @Test func adminConditionsAreReadAndNeedAUser() throws {
        func admin(_ lines: String) throws -> (StatsPage.AdminAccess?, [String]) {
            let parsed = try Configuration.parse(Self.tcp + "listen stats\n  mode http\n  bind :8404\n  stats enable\n\(lines)\n", file: "t.cfg")
            return (parsed.configuration.statsPages.first?.admin, parsed.warnings.filter { $0.keyword == "stats admin" }.map(\.description))
        }
        #expect(try admin("  stats auth a:b\n  stats admin if TRUE").0 == .everyone)
        #expect(try admin("  stats auth a:b\n  stats admin unless FALSE").0 == .everyone)
        #expect(try admin("  stats auth a:b\n  stats admin if FALSE").0 == nil)
        #expect(try admin("  stats auth a:b\n  stats admin if LOCALHOST").0 == .from(["127.0.0.0/8"]))
        #expect(try admin("  stats auth a:b\n  stats admin unless { src 10.0.0.0/8 192.168.1.1 }").0 == .notFrom(["10.0.0.0/8", "192.168.1.1"]))
        let (open, warnings) = try admin("  stats admin if TRUE")
        #expect(open == nil && warnings == ["t.cfg:10: warning: [listen 'stats'] 'stats admin': ignored: without 'stats auth' anyone who reaches the page could change servers; Sluice lets only an authenticated user do so"])
    }

    @Test func whatThePageDoesNotDoIsToldWithItsLine() {
        let cases: [(String, String)] = [
            ("  stats enable\n  stats auth a:b\n  stats admin if { path /x }", "t.cfg:11: error: [listen 'stats'] 'stats admin': '{ path /x }': expected 'stats admin if|unless TRUE|FALSE|LOCALHOST|{ src <network>… }'"),
            ("  stats enable\n  stats auth a:b\n  stats admin if { src 10.0.0.300 }", "t.cfg:11: error: [listen 'stats'] 'stats admin': '10.0.0.300' is not an IP address or network"),
            ("  stats enable\n  stats auth a:b\n  stats admin", "t.cfg:11: error: [listen 'stats'] 'stats admin': expected 'stats admin if|unless"),
            ("  stats scope", "t.cfg:9: error: [listen 'stats'] 'stats': 'stats scope' is not a stats page setting"),
            ("  http-request use-service prometheus-exporter if { path_beg /m }", "t.cfg:9: error: [listen 'stats'] 'http-request': the exporter's condition must be 'if { path <path> }'"),
            ("  http-request deny", "t.cfg:9: error: [listen 'stats'] 'http-request': a stats proxy serves only"),
            ("  stats auth nobody", "t.cfg:9: error: [listen 'stats'] 'stats auth': expected '<user>:<password>'"),
        ]
        for (line, expected) in cases {
            let errors = ParserTests.errors(Self.tcp + "listen stats\n  mode http\n  bind :8404\n\(line)\n")
            #expect(errors.count == 1 && errors[0].hasPrefix(expected), "\(line): \(errors)")
        }
        // Any other mode http proxy stays refused.
        let http = ParserTests.errors(Self.tcp + "listen web\n  mode http\n  bind :8080\n  stats enable\n  server w 127.0.0.1:8081\n")
        #expect(http.count == 1 && http[0].contains("rejected: this proxy runs in mode http"), "\(http)")
        let empty = ParserTests.errors(Self.tcp + "listen stats\n  mode http\n  bind :8404\n  stats show-legends\n")
        #expect(empty.count == 1 && empty[0].contains("enables neither the statistics page"), "\(empty)")
    }
}
