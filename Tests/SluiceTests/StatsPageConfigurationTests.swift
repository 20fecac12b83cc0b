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

    /// Real configurations put the statistics proxy under a `defaults` section written for HTTP
    /// proxies: the page takes `timeout http-request` (else `timeout client`), `maxconn` and
    /// `option http-ignore-probes`, and says why each other HTTP setting changes nothing for it.
    @Test func httpDefaultsAreTakenOrIgnoredWithTheirReasonOnAStatsPage() throws {
        let text = """
            defaults
              mode http
              option http-server-close
              option forwardfor except 127.0.0.0/8
              timeout client 30s
              timeout http-request 10s
              timeout http-keep-alive 10s
              errorfile 503 /etc/haproxy/errors/503.http
            frontend fe
              mode tcp
              bind :80
              default_backend be
            backend be
              mode tcp
              server a 127.0.0.1:8080
            listen stats
              bind :8404
              maxconn 10
              stats enable
            listen probes
              bind :8405
              timeout http-request 2s
              no option http-server-close
              option http-ignore-probes
              stats enable

            """
        let parsed = try Configuration.parse(text, file: "t.cfg")
        let pages = parsed.configuration.statsPages
        #expect(pages.map(\.name) == ["stats", "probes"])
        #expect(pages[0].maxConnections == 10 && pages[0].requestTimeout == .seconds(10) && !pages[0].ignoreProbes)
        #expect(pages[1].maxConnections == nil && pages[1].requestTimeout == .seconds(2) && pages[1].ignoreProbes)
        let warnings = parsed.warnings.map(\.description).filter { $0.contains("statistics page") }
        #expect(warnings == [
            "t.cfg:3: warning: [listen 'stats'] 'option http-server-close': ignored by the statistics page: Sluice's statistics page answers one request per connection, then closes it",
            "t.cfg:4: warning: [listen 'stats'] 'option forwardfor': ignored by the statistics page: it concerns what is sent to servers, and a statistics page has none",
            "t.cfg:7: warning: [listen 'stats'] 'timeout http-keep-alive': ignored by the statistics page: Sluice's statistics page answers one request per connection, then closes it",
            "t.cfg:8: warning: [listen 'stats'] 'errorfile': ignored by the statistics page: Sluice's statistics page answers its errors with short bodies of its own",
            "t.cfg:4: warning: [listen 'probes'] 'option forwardfor': ignored by the statistics page: it concerns what is sent to servers, and a statistics page has none",
            "t.cfg:7: warning: [listen 'probes'] 'timeout http-keep-alive': ignored by the statistics page: Sluice's statistics page answers one request per connection, then closes it",
            "t.cfg:8: warning: [listen 'probes'] 'errorfile': ignored by the statistics page: Sluice's statistics page answers its errors with short bodies of its own",
        ], "\(warnings)")
        // Without `timeout http-request`, the client's timeout bounds the request, as in HAProxy.
        let client = try Configuration.parse(text.replacingOccurrences(of: "  timeout http-request 10s\n", with: ""), file: "t.cfg")
        #expect(client.configuration.statsPages.first?.requestTimeout == .seconds(30))
        // A time that is none is an error (HAProxy's too); rules the page would not apply are refused.
        let bad = ParserTests.errors(text.replacingOccurrences(of: "timeout http-request 10s", with: "timeout http-request soon"))
        #expect(bad == ["t.cfg:6: error: [defaults] 'timeout http-request': 'soon' is not a time"], "\(bad)")
        let rules = ParserTests.errors(text.replacingOccurrences(of: "  maxconn 10\n", with: "  tcp-request connection reject if { src 10.0.0.0/8 }\n"))
        #expect(rules.count == 1 && rules[0].contains("a statistics proxy with 'tcp-request' or 'use_backend' rules is not supported"), "\(rules)")
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
