import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// Health checks over TLS (`check-ssl`, `http-check connect ssl`) against nginx's TLS servers, and
/// the same configuration in HAProxy 2.6: every server's verdict, code and reason must agree.
extension Loopback {
@Suite struct TLSCheckTests {
    /// nginx over TLS: `/healthz` answers 200, `/down` 503.
    static func httpsServer(_ certificate: TLSCertificate) throws -> RealServer {
        try Nginx.start("nginx-https-checks") { port, _ in
            """
                listen 127.0.0.1:\(port) ssl;
                ssl_certificate \(certificate.certificate);
                ssl_certificate_key \(certificate.key);
                location = /healthz { default_type text/plain; return 200 "ok\\n"; }
                location = /down { return 503; }
            """
        }
    }

    /// The kubeadm HA guide's checks (`check check-ssl verify none`, and its newer `http-check
    /// connect ssl` form), verification by CA file, `ca-base`, `verifyhost` and `check-sni`, and
    /// the failures: a server without TLS, one that never answers the ClientHello, an unknown CA,
    /// a wrong name, a failing status. The expected rows are what HAProxy 2.6.12 reports.
    @Test func httpsAndTLSChecksReportWhatHAProxyReports() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let certificate = try TLSCertificate(), stranger = try TLSCertificate()
        let https = try Self.httpsServer(certificate)
        defer { https.stop() }
        // Plain HTTP: nginx answers a ClientHello with a 400 and closes.
        let plain = try Nginx.start("nginx-plain-http") { port, _ in
            "    listen 127.0.0.1:\(port);\n    location / { default_type text/plain; return 200 \"plain\\n\"; }"
        }
        let silent = try TestServer(.silent)
        defer { plain.stop(); silent.stop() }
        // A server that wants the PROXY header first, then TLS (nginx `ssl proxy_protocol`).
        let proxied = try Nginx.start("nginx-proxy-protocol-tls") { port, _ in
            """
                listen 127.0.0.1:\(port) ssl proxy_protocol;
                ssl_certificate \(certificate.certificate);
                ssl_certificate_key \(certificate.key);
                location = /healthz { default_type text/plain; return 200 "ok\\n"; }
            """
        }
        defer { proxied.stop() }
        let a = "127.0.0.1:\(https.port)", p = "127.0.0.1:\(plain.port)", s = "127.0.0.1:\(silent.port)"
        let caDirectory = (certificate.certificate as NSString).deletingLastPathComponent
        let (proxy, haproxy, sockets) = try Loopback.RuntimeAPITests.sideBySide { port, socket in
            """
            global
              stats socket \(socket) level admin
              ca-base \(caDirectory)
            defaults
              mode tcp
              timeout connect 1s
              timeout client 5s
              timeout server 5s
              default-server inter 200ms rise 1 fall 1
            frontend fe
              bind 127.0.0.1:\(port)
              default_backend https
            backend https
              option httpchk GET /healthz
              http-check expect status 200
              server ok \(a) check check-ssl verify none
              server plain \(p) check check-ssl verify none
              server silent \(s) check check-ssl verify none
              server ca \(a) check check-ssl ca-file \(certificate.certificate)
              server cabase \(a) check check-ssl ca-file cert.pem
              server wrongca \(a) check check-ssl ca-file \(stranger.certificate)
              server host \(a) check check-ssl ca-file \(certificate.certificate) verifyhost sluice-test
              server wronghost \(a) check check-ssl ca-file \(certificate.certificate) verifyhost nope.test
              server sni \(a) check check-ssl ca-file \(certificate.certificate) check-sni nope.test
              server proxied 127.0.0.1:\(proxied.port) check check-ssl verify none send-proxy check-send-proxy
            backend down
              option httpchk GET /down
              server s \(a) check check-ssl verify none
            backend handshake
              server ok \(a) check check-ssl verify none
              server plain \(p) check check-ssl verify none
            backend kubeadm
              option httpchk
              http-check connect ssl
              http-check send meth GET uri /healthz
              http-check expect status 200
              server ok \(a) check verify none

            """
        }
        defer { proxy.stop(); haproxy.stop() }
        let expected = [
            "https/ok UP L7OK 200 -", "https/plain DOWN L6RSP - SSL handshake failure", "https/silent DOWN L6TOUT - -",
            "https/ca UP L7OK 200 -", "https/cabase UP L7OK 200 -", "https/wrongca DOWN L6RSP - SSL handshake failure",
            "https/host UP L7OK 200 -",
            "https/wronghost DOWN L6RSP - Server presented an SSL certificate different from the configured one",
            "https/sni DOWN L6RSP - Server presented an SSL certificate different from the expected one",
            "https/proxied UP L7OK 200 -",
            "down/s DOWN L7STS 503 Service Temporarily Unavailable",
            "handshake/ok UP L6OK - -", "handshake/plain DOWN L6RSP - SSL handshake failure",
            "kubeadm/ok UP L7OK 200 -",
        ]
        for (name, socket) in [("Sluice", sockets[0]), ("HAProxy 2.6", sockets[1])] {
            var seen: [String] = []
            do {
                try eventually("\(name): every check ended as HAProxy's did") {
                    seen = try StatsClient.showStat(socket).filter { !["FRONTEND", "BACKEND"].contains($0["svname"]) }.map { row in
                        let value = { (key: String) in row[key].flatMap { $0.isEmpty ? nil : $0 } ?? "-" }
                        // A check in progress is shown with "* " before the last one's status.
                        let status = value("check_status").replacingOccurrences(of: "* ", with: "")
                        return "\(value("pxname"))/\(value("svname")) \(value("status")) \(status) \(value("check_code")) \(value("last_chk"))"
                    }
                    return seen == expected
                }
            } catch {
                Issue.record("\(name): \(seen)")
                throw error
            }
        }
    }

    /// A configuration built in code skips the parser's loading of TLS files: a CA file that does
    /// not load then fails every check of its server with the reason (it must not pass or be skipped).
    @Test func aLibraryConfigurationWhoseCAFileDoesNotLoadFailsItsChecks() throws {
        let certificate = try TLSCertificate()
        let https = try Self.httpsServer(certificate)
        defer { https.stop() }
        var parsed = try Configuration.parse("""
            defaults
              mode tcp
              timeout connect 1s
              timeout client 5s
              timeout server 5s
            frontend fe
              bind 127.0.0.1:0
              default_backend be
            backend be
              option httpchk GET /healthz
              server good 127.0.0.1:\(https.port) check check-ssl verify none inter 100ms rise 1 fall 1
              server gone 127.0.0.1:\(https.port) check check-ssl verify none inter 100ms rise 1 fall 1
            """)
        var tls = try #require(parsed.configuration.backends[0].servers[1].check?.tls)
        tls.verify = true
        tls.caFile = "/nonexistent/ca.pem"
        parsed.configuration.backends[0].servers[1].check?.tls = tls
        let balancer = try LoadBalancer(configuration: parsed.configuration)
        try balancer.start()
        defer { balancer.stop() }
        let servers = try #require(balancer.backend(named: "be")?.servers)
        try eventually("good UP by L7OK, gone DOWN by L6RSP") {
            servers[0].lastCheck.status == .layer7OK && servers[1].lastCheck.status == .layer6Response && !servers[1].operational.isUp
        }
        #expect(servers[1].lastCheck.info.hasPrefix("cannot load the CA file /nonexistent/ca.pem"), "\(servers[1].lastCheck)")
    }

    /// What `sluice -c` says, as HAProxy: verification is the default and needs a CA file; a file
    /// that does not load is an error on its server's line; TLS words on plain checks warn.
    @Test func checkTLSConfigurationErrorsAreHAProxys() throws {
        func diagnostics(_ server: String, global: String = "") -> [String] {
            let text = "global\n\(global)\nbackend b\n  option httpchk\n  server s 127.0.0.1:6443 \(server)\n"
            do {
                let parsed = try Configuration.parse(text)
                return parsed.warnings.filter { !$0.message.hasPrefix("missing timeouts") }.map { "\($0.location.line): warning: \($0.message)" }
            } catch let error as ConfigurationError {
                return error.diagnostics.map { "\($0.location.line): \($0.severity == .error ? "error" : "warning"): \($0.message)" }
            } catch {
                return ["\(error)"]
            }
        }
        let verifyDefault = diagnostics("check check-ssl")
        #expect(verifyDefault.contains { $0.hasPrefix("5: error: 's': verify is enabled by default but no CA file specified.") }, "\(verifyDefault)")
        #expect(diagnostics("check check-ssl", global: "  ssl-server-verify none").isEmpty)
        #expect(diagnostics("check check-ssl verify none").isEmpty)
        let missing = diagnostics("check check-ssl ca-file /nonexistent/ca.pem")
        #expect(missing.contains { $0.hasPrefix("5: error: 's': cannot load the CA file /nonexistent/ca.pem") }, "\(missing)")
        let plain = diagnostics("check verify none")
        #expect(plain.contains { $0.hasPrefix("5: warning: 'verify' has no effect where the checks are plain") }, "\(plain)")
        let traffic = diagnostics("check ssl verify none")
        #expect(traffic.contains { $0.contains("error: 'ssl' for server 's': TLS to servers is not supported for forwarded traffic") }, "\(traffic)")
        let bounds = try Configuration.parse("backend b\n  server s 127.0.0.1:6443 check check-ssl verify none no-sslv3 no-tlsv10 no-tlsv12\n")
        let tls = bounds.configuration.backends.first?.servers.first?.check?.tls
        #expect(tls?.minVersion == .tlsv11 && tls?.maxVersion == .tlsv11, "HAProxy's rule: up to the first version off above the lowest on")
        // `alpn` on the server line wins over the default's; `check-alpn` over both.
        let alpn = try Configuration.parse("backend b\n  default-server alpn h2\n  server s 127.0.0.1:6443 check check-ssl verify none alpn http/1.1\n  server t 127.0.0.1:6443 check check-ssl verify none check-alpn h2 alpn http/1.1\n")
        #expect(alpn.configuration.backends.first?.servers.map { $0.check?.tls?.alpn } == ["http/1.1", "h2"])
    }
}
}
