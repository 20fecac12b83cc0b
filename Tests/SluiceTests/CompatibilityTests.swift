import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// Configurations as operators write them for HAProxy: boilerplate that has no meaning at Layer 4
/// is accepted with a warning naming the line, keywords HAProxy removed are applied with their
/// modern meaning, and what Sluice cannot do is an error, every one of them in one run.
struct CompatibilityTests {
    /// Debian 12's stock /etc/haproxy/haproxy.cfg with a tcp frontend added (the `user`/`group`
    /// lines name root so that the test does not depend on the machine's accounts).
    static let debianStock = """
        global
        	log /dev/log	local0
        	log /dev/log	local1 notice
        	chroot /var/lib/haproxy
        	stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners
        	stats timeout 30s
        	user root
        	group root
        	daemon
        	ca-base /etc/ssl/certs
        	crt-base /etc/ssl/private
        	ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256
        	ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384
        	ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets

        defaults
        	log	global
        	mode	http
        	option	httplog
        	option	dontlognull
        	timeout connect 5000
        	timeout client  50000
        	timeout server  50000
        	errorfile 400 /etc/haproxy/errors/400.http
        	errorfile 503 /etc/haproxy/errors/503.http

        frontend kube-apiserver
        	bind *:6443
        	mode tcp
        	option tcplog
        	default_backend kube-apiserver

        backend kube-apiserver
        	mode tcp
        	option tcp-check
        	balance roundrobin
        	default-server inter 10s downinter 5s rise 2 fall 2 maxconn 250 maxqueue 256 weight 100
        	server master1 10.0.0.11:6443 check
        	server master2 10.0.0.12:6443 check
        """

    @Test func debianStockConfigurationWithATCPFrontendLoadsWithWarningsOnly() throws {
        let parsed = try Configuration.parse(Self.debianStock, file: "haproxy.cfg")
        let g = parsed.configuration.global
        #expect(g.daemon)
        #expect(g.chroot == "/var/lib/haproxy")
        #expect(g.userID == 0 && g.groupID == 0)
        #expect(g.statsTimeout == .seconds(30))
        #expect(g.statsSockets.first?.level == .admin)
        let backend = try #require(parsed.configuration.backend(named: "kube-apiserver"))
        #expect(backend.servers.map(\.maxConnections) == [250, 250])
        #expect(backend.servers.map(\.maxQueue) == [256, 256])
        let warned = Set(parsed.warnings.compactMap(\.keyword))
        for keyword in ["stats socket", "ssl-default-bind-ciphers", "ssl-default-bind-ciphersuites", "ssl-default-bind-options", "errorfile"] {
            #expect(warned.contains(keyword), "no warning for '\(keyword)'")
        }
        // The bases of TLS files: used by TLS health checks (`check-ssl`), taken silently as HAProxy.
        #expect(!warned.contains("ca-base") && !warned.contains("crt-base"))
        // The frontend's `option tcplog` replaces the defaults' httplog (one format per proxy), and
        // the backend does not log sessions: HAProxy 2.6 says nothing about httplog here either.
        #expect(!warned.contains("option httplog"))
        // The logs go where HAProxy would send them: both /dev/log lines, tcplog, no null sessions.
        #expect(!warned.contains("log") && !warned.contains("option tcplog") && !warned.contains("option dontlognull"))
        let logging = try #require(parsed.configuration.frontends.first?.logging)
        #expect(logging.targets.map(\.destination) == [.unixDatagram(path: "/dev/log"), .unixDatagram(path: "/dev/log")])
        #expect(logging.targets.map(\.facility) == [16, 17] && logging.targets.map(\.maxLevel) == [7, 5])
        #expect(logging.style == .tcplog && logging.dontLogNull && logging.tag == "sluice")
        #expect(backend.logTargets.count == 2)
        // One warning per errorfile line, naming both tcp proxies that ignore it.
        #expect(parsed.warnings.filter { $0.keyword == "errorfile" }.map(\.location.line) == [24, 25])
        #expect(parsed.warnings.first { $0.keyword == "errorfile" }?.message.contains("frontend 'kube-apiserver', backend 'kube-apiserver'") == true)
    }

    @Test func keywordsHAProxyRemovedAreAppliedWithTheirModernMeaning() throws {
        let parsed = try Configuration.parse("""
            global
              nbproc 1
            defaults
              mode tcp
              contimeout 4000
              clitimeout 50s
              srvtimeout 60s
              redispatch
            listen db 127.0.0.1:3306
              server a 10.0.0.1:3306
            """, file: "t.cfg")
        let backend = try #require(parsed.configuration.backend(named: "db"))
        #expect(backend.connectTimeout == .seconds(4))
        #expect(backend.serverTimeout == .seconds(60))
        #expect(backend.redispatch)
        #expect(parsed.configuration.frontends.first?.clientTimeout == .seconds(50))
        #expect(parsed.configuration.frontends.first?.binds.first?.endpoint == Endpoint(host: "127.0.0.1", port: 3306))
        #expect(parsed.warnings.map(\.description).contains("t.cfg:5: warning: [defaults] 'contimeout': removed from HAProxy in 2.1; applied as 'timeout connect'; write that instead"))
        #expect(parsed.warnings.contains { $0.keyword == "nbproc" && $0.message.contains("one process") })
        #expect(parsed.warnings.map(\.description).contains(
            "t.cfg:9: warning: [listen 'db'] 'listen': an address after the name is refused by HAProxy 2.6 (\"please use the 'bind' keyword for listening addresses\"); applied as 'bind 127.0.0.1:3306'; write that instead"))
        #expect(CompatibilityTests.errors("global\n  nbproc 4\n" + ParserTests.valid)
            == ["t.cfg:2: error: [global] 'nbproc': 'nbproc 4': Sluice runs as one process (HAProxy removed 'nbproc' in 2.5); use 'nbthread 4' for more cores"])
    }

    @Test func sectionsSluiceDoesNotReadAreOneWarningOrOneErrorOnTheirHeader() {
        let text = """
            userlist admins
              user admin insecure-password secret
            ring logs
              size 32764
              server syslog 10.0.0.2:514

            """ + ParserTests.valid
        #expect(CompatibilityTests.errors(text) == [
            "t.cfg:3: error: [ring 'logs'] 'ring': section rejected: log rings are not supported yet; its lines are skipped",
        ])
        let parsed = try? Configuration.parse("userlist admins\n  user admin insecure-password x\n" + ParserTests.valid, file: "t.cfg")
        #expect(parsed?.warnings.first?.description == "t.cfg:1: warning: [userlist 'admins'] 'userlist': section accepted and not used: user lists serve HTTP authentication, which needs mode http")
    }

    /// `mailers` and `email-alert` read as HAProxy reads them: every mailer, `timeout mail`, the
    /// proxy's settings inherited from defaults; a partial setting is ignored with HAProxy's
    /// warning, a missing section and bad values are errors on their lines.
    @Test func mailersAndEmailAlertsAreReadAsHAProxyReadsThem() throws {
        let mailers = "mailers ops\n  mailer a 10.0.0.2:25\n  mailer b mail.example.com:587\n  timeout mail 20s\n"
        let text = mailers + "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\n  email-alert mailers ops\n  email-alert from lb@x\n"
            + "backend b\n  email-alert to ops@x\n  email-alert level notice\n  server s 10.0.0.9:80\n"
            + "backend c\n  server s 10.0.0.9:80\n"
        let parsed = try Configuration.parse(text, file: "t.cfg")
        let alert = try #require(parsed.configuration.backend(named: "b")?.emailAlert)
        #expect(alert.mailers.mailers.map(\.name) == ["a", "b"])
        #expect(alert.mailers.mailers[1].endpoint == Endpoint(host: "mail.example.com", port: 587))
        #expect(alert.mailers.timeout == .seconds(20))
        #expect(alert.from == "lb@x" && alert.to == "ops@x" && alert.level == 5 && !alert.myHostname.isEmpty)
        #expect(parsed.configuration.backend(named: "c")?.emailAlert == nil)
        #expect(parsed.warnings.map(\.description).contains { $0.hasPrefix("t.cfg:10: warning: [backend 'c'] 'email-alert': 'email-alert' will be ignored for backend 'c' (the presence any of") })
        let bad = mailers + "mailer x\n  timeout mail\n" + ParserTests.valid.replacingOccurrences(of: "backend ", with: "backend b2\n  email-alert level loud\n  email-alert subject x\n  email-alert mailers none\n  email-alert from a\n  email-alert to b\nbackend ")
        let errors = CompatibilityTests.errors(bad)
        #expect(errors.contains("t.cfg:5: error: [mailers 'ops'] 'mailer': 'mailer' expects <name> and <addr>[:<port>] as arguments"))
        #expect(errors.contains("t.cfg:6: error: [mailers 'ops'] 'timeout': 'timeout mail' expects <time> as argument"))
        #expect(errors.contains { $0.contains("'email-alert': unknown log level 'loud' after 'level'") })
        #expect(errors.contains { $0.contains("'email-alert': unknown argument 'subject'") })
        #expect(errors.contains { $0.contains("Proxy 'b2': unable to find mailers 'none'") })
    }

    /// UNIX-socket binds and servers in HAProxy's forms: `unix@`, a path, `abns@`; `unix-bind`'s
    /// prefix and defaults under a bind's own settings; HAProxy's length limits; TCP-only
    /// parameters on a UNIX socket, and socket-file settings on a TCP one, warn.
    @Test func unixSocketAddressesAndUnixBindAreReadAsHAProxyReadsThem() throws {
        let text = """
            global
              unix-bind prefix /run/lb/ mode 660 group nogroup
            defaults
              mode tcp
              timeout connect 1s
              timeout client 1s
              timeout server 1s
            frontend f
              bind unix@a.sock
              bind /run/abs.sock mode 600 uid 0 tfo
              bind abns@front
              bind 127.0.0.1:9000 mode 600 level admin
              default_backend b
            backend b
              server s unix@/run/app.sock check source 10.0.0.1
              server t /run/app2.sock
              server u abns@app

            """
        let parsed = try Configuration.parse(text, file: "t.cfg")
        let binds = try #require(parsed.configuration.frontends.first?.binds)
        #expect(binds.map(\.endpoint.description) == ["unix@/run/lb/a.sock", "unix@/run/lb//run/abs.sock", "abns@front", "127.0.0.1:9000"])
        #expect(binds[0].unixPermissions == UnixSocketPermissions(mode: 0o660, group: .name("nogroup")))
        #expect(binds[1].unixPermissions == UnixSocketPermissions(mode: 0o600, owner: .id(0), group: .name("nogroup")))
        let servers = try #require(parsed.configuration.backend(named: "b")?.servers)
        #expect(servers.map(\.endpoint.description) == ["unix@/run/app.sock", "unix@/run/app2.sock", "abns@app"])
        let warnings = parsed.warnings.map(\.description)
        #expect(warnings.contains("t.cfg:10: warning: [frontend 'f'] 'bind': 'tfo' applies to TCP listeners only and is ignored on a UNIX socket (as HAProxy)"))
        #expect(warnings.contains("t.cfg:12: warning: [frontend 'f'] 'bind': 'level admin' has no effect: it applies to the runtime API's 'stats socket'"))
        #expect(warnings.contains { $0.hasPrefix("t.cfg:12: warning: [frontend 'f'] 'bind': 'mode', 'uid', 'gid', 'user' and 'group' set a UNIX socket file's permissions; 127.0.0.1:9000 is not one") })
        #expect(warnings.contains("t.cfg:15: warning: [backend 'b'] 'server': server 's' is a UNIX socket: 'source' applies to TCP connections only and is ignored (as HAProxy)"))
        // HAProxy's limits: 107 bytes less the `.<pid>.tmp` room and the prefix for a path, 107 for an abstract name.
        let long = ParserTests.valid.replacingOccurrences(of: "bind :80", with: "bind unix@/\(String(repeating: "p", count: 97))\n  bind abns@\(String(repeating: "n", count: 108))")
        #expect(CompatibilityTests.errors(long) == [
            "t.cfg:2: error: [frontend 'fe'] 'bind': socket path 'unix@/\(String(repeating: "p", count: 97))' too long (max 97)",
            "t.cfg:3: error: [frontend 'fe'] 'bind': socket path 'abns@\(String(repeating: "n", count: 108))' too long (max 107)",
        ])
        #expect(CompatibilityTests.errors(ParserTests.valid.replacingOccurrences(of: "bind :80", with: "bind fd@3")).first?.contains("fd@, sockpair@, udp@") == true)
        // A UNIX address stays 28 bytes: its family and a registry index, equal for equal names.
        let a = try #require(SocketAddress(unixPath: "/run/x.sock")), b = try #require(SocketAddress(unixPath: "x", abstract: true))
        #expect(a == SocketAddress(unixPath: "/run/x.sock") && a != b && MemoryLayout<SocketAddress>.size <= 32)
        #expect(a.description == "/run/x.sock" && b.description == "abns@x" && a.ip == "unix" && a.port == 0 && !a.isWildcard)
        #expect(a.withSockaddr { p, length in p.pointee.sa_family == sa_family_t(AF_UNIX) && length == socklen_t(MemoryLayout<sockaddr_un>.size) })
    }

    /// `option external-check` and `external-check command|path`: read as HAProxy reads them, with
    /// its errors (no global `external-check`, no command, a relative command without a path) and
    /// warnings (a command or path without the option), each on its proxy.
    @Test func externalChecksAreReadWithHAProxysErrorsAndWarnings() throws {
        let head = "defaults\n  mode tcp\n  timeout client 1s\n  timeout server 1s\n  timeout connect 1s\n"
        let good = try Configuration.parse("global\n  external-check\n" + head + "listen l\n  bind 127.0.0.1:81\n  option external-check\n  external-check command chk\n  external-check path /bin\n  server s 10.0.0.1:80 check\n", file: "t.cfg")
        var expected = ExternalCheck(command: "chk", path: "/bin")
        (expected.proxyAddress, expected.proxyPort) = ("127.0.0.1", "81")
        #expect(good.configuration.backend(named: "l")?.healthCheck == .external(expected))
        let bad = head + "backend b\n  option external-check\n  server s 127.0.0.1:1 check\nbackend c\n  external-check command chk\n  external-check path /bin\n  server s 127.0.0.1:1 check\n"
            + "backend d\n  option external-check\n  external-check command rel\n  server s 127.0.0.1:1\n"
        let errors = CompatibilityTests.errors(bad)
        #expect(errors == [
            "t.cfg:6: error: [backend 'b'] 'option external-check': Proxy 'b' : 'option external-check' unable to find required 'global.external-check'.",
            "t.cfg:6: error: [backend 'b'] 'option external-check': Proxy 'b' : 'option external-check' unable to find required 'external-check command'.",
            "t.cfg:13: error: [backend 'd'] 'option external-check': Proxy 'd' : 'option external-check' unable to find required 'global.external-check'.",
            "t.cfg:15: error: [backend 'd'] 'external-check': Proxy 'd': 'external-check command' does not have a leading '/' and 'external-check path' is not set.",
        ])
        let ignored = try Configuration.parse(head + "backend c\n  external-check command /bin/true\n  server s 127.0.0.1:1 check\n", file: "t.cfg")
        #expect(ignored.warnings.map(\.description) .contains("t.cfg:7: warning: [backend 'c'] 'external-check': 'external-check command' will be ignored for backend 'c' (requires 'option external-check')."))
        #expect(ignored.configuration.backend(named: "c")?.healthCheck == .tcpConnect)
    }

    /// `tcp-response content`, `tcp-response inspect-delay` and `stick store-response`, with the
    /// errors and warnings `haproxy -c` gives for the same lines (2.6, checked on each file).
    @Test func responseRulesAreReadWithHAProxysErrorsAndWarnings() throws {
        let head = "defaults\n  mode tcp\n  timeout client 1s\n  timeout server 1s\n  timeout connect 1s\n"
        let frontend = "frontend f\n  bind 127.0.0.1:80\n  default_backend b\n"
        let good = try Configuration.parse(head + frontend + """
            backend b
              stick-table type binary len 32 size 10
              acl serverhello res.ssl_hello_type 2
              tcp-response inspect-delay 2s
              tcp-response content accept if serverhello
              tcp-response content close if { res.payload(0,3) -m str BYE }
              tcp-response content set-var(txn.first) payload(0,1)
              tcp-response content reject if { res.len lt 10 }
              stick store-response res.payload_lv(43,1) if serverhello
              server s 10.0.0.1:443

            """, file: "t.cfg")
        let rules = try #require(good.configuration.backend(named: "b")?.rules)
        #expect(rules.responseRules.count == 4 && rules.responseInspectDelayMs == 2000 && rules.inspectsResponses)
        #expect(rules.stickRules.map { "\($0.response) \($0.stores) \($0.matches)" } == ["true true false"])
        #expect(good.warnings.isEmpty, "\(good.warnings)")
        // An ACL reading the other direction's buffer draws HAProxy's warning (named, anonymous, mixed).
        let odd = try Configuration.parse(head + """
            frontend f
              bind 127.0.0.1:80
              tcp-request inspect-delay 1s
              tcp-request content accept if { res.len gt 0 }
              default_backend b
            backend b
              acl clienthello req.ssl_hello_type 1
              acl x req.len gt 0
              acl x src 1.2.3.4
              tcp-response content reject if clienthello
              tcp-response content accept if x
              server s 10.0.0.1:443

            """, file: "t.cfg")
        #expect(odd.warnings.map(\.description) == [
            "t.cfg:9: warning: [frontend 'f'] 'tcp-request content': anonymous acl will never match in 'tcp-request content' because it uses keyword 'res.len' which is incompatible with 'frontend tcp-request content rule' (as HAProxy warns)",
            "t.cfg:15: warning: [backend 'b'] 'tcp-response content': acl 'clienthello' will never match in 'tcp-response content' because it only involves keywords that are incompatible with 'backend tcp-response content rule' (as HAProxy warns)",
            "t.cfg:16: warning: [backend 'b'] 'tcp-response content': acl 'x' involves keyword 'req.len' which is incompatible with 'backend tcp-response content rule' (as HAProxy warns)",
        ])
        // Where HAProxy refuses, every reason in one run.
        let errors = CompatibilityTests.errors(head + """
            frontend f
              bind 127.0.0.1:80
              tcp-response content accept
              tcp-response inspect-delay 1s
              tcp-request content set-var(txn.a) res.len
              default_backend b
            backend b
              stick-table type integer size 10
              tcp-response content track-sc0 src
              tcp-response content set-dst ipv4(1.2.3.4)
              tcp-response content sc-set-gpt0(0) req.len
              tcp-response content set-nice 5
              tcp-response foo accept
              tcp-response inspect-delay
              stick store-response req.len
              stick on res.len
              server s 10.0.0.1:443

            """)
        #expect(errors == [
            "t.cfg:8: error: [frontend 'f'] 'tcp-response content': is only allowed in 'backend' sections or 'defaults' section with a name (as in HAProxy)",
            "t.cfg:9: error: [frontend 'f'] 'tcp-response inspect-delay': is only allowed in 'backend' sections or 'defaults' section with a name (as in HAProxy)",
            "t.cfg:10: error: [frontend 'f'] 'tcp-request content': fetch method 'res.len' extracts information from 'response buffer', none of which is available here (as HAProxy says)",
            "t.cfg:14: error: [backend 'b'] 'tcp-response content': expects 'accept', 'close', 'reject', 'ot-group', 'set-log-level', 'set-nice', 'sc-inc-gpc(*)', 'sc-inc-gpc0(*)', 'sc-inc-gpc1(*)', 'sc-set-gpt(*)', 'sc-set-gpt0(*)', 'send-spoe-group', 'set-var-fmt(*)', 'set-var(*)', 'unset-var(*)', 'set-mark', 'set-tos', 'silent-drop' (got 'track-sc0'), as HAProxy",
            "t.cfg:15: error: [backend 'b'] 'tcp-response content': expects 'accept', 'close', 'reject', 'ot-group', 'set-log-level', 'set-nice', 'sc-inc-gpc(*)', 'sc-inc-gpc0(*)', 'sc-inc-gpc1(*)', 'sc-set-gpt(*)', 'sc-set-gpt0(*)', 'send-spoe-group', 'set-var-fmt(*)', 'set-var(*)', 'unset-var(*)', 'set-mark', 'set-tos', 'silent-drop' (got 'set-dst'), as HAProxy",
            "t.cfg:16: error: [backend 'b'] 'tcp-response content': fetch method 'req.len' extracts information from 'request buffer', none of which is available here (as HAProxy says)",
            "t.cfg:17: error: [backend 'b'] 'tcp-response content': action 'set-nice' is not supported yet (supported: accept, reject, close, silent-drop, sc-inc-gpc0, sc-set-gpt0, set-var, set-var-fmt, unset-var, set-log-level, set-mark, set-tos)",
            "t.cfg:18: error: [backend 'b'] 'tcp-response': expects 'inspect-delay' or 'content' (got 'foo'), as HAProxy",
            "t.cfg:19: error: [backend 'b'] 'tcp-response inspect-delay': expects a positive delay in milliseconds (as HAProxy)",
            "t.cfg:20: error: [backend 'b'] 'stick store-response': fetch method 'req.len' extracts information from 'request buffer', none of which is available for 'store-response' (as HAProxy says)",
            "t.cfg:21: error: [backend 'b'] 'stick on': fetch method 'res.len' extracts information from 'response buffer', none of which is available during request (as HAProxy says)",
        ])
        // A named defaults section may set the delay for the backends that use it, as HAProxy.
        #expect(CompatibilityTests.errors("defaults D\n  mode tcp\n  timeout client 1s\n  timeout server 1s\n  timeout connect 1s\n  tcp-response inspect-delay 1s\n"
            + frontend + "backend b from D\n  tcp-response content accept\n  server s 10.0.0.1:443\n").isEmpty)
        #expect(CompatibilityTests.errors(head + "  tcp-response inspect-delay 1s\n" + frontend + "backend b\n  server s 10.0.0.1:443\n")
                == ["t.cfg:6: error: [defaults] 'tcp-response inspect-delay': is only allowed in 'backend' sections or 'defaults' section with a name (as in HAProxy)"])
    }

    /// A `peers` section whose only peer is the local one (HAProxy's way to keep stick tables
    /// across a reload) is accepted: Sluice reloads in-process and keeps them. A second balancer
    /// among the peers is refused on its line; a table naming no section is an error.
    @Test func aPeersSectionWithOnlyTheLocalPeerIsAcceptedAndAnotherBalancerRefused() throws {
        let table = "backend sticky\n  stick-table type ip size 1m expire 1h peers local\n"
        let parsed = try Configuration.parse("global\n  localpeer lb1\npeers local\n  peer lb1 127.0.0.1:10000\n" + table + ParserTests.valid, file: "t.cfg")
        #expect(parsed.configuration.stickTables.map(\.name) == ["sticky"])
        #expect(parsed.warnings.map(\.description).contains(
            "t.cfg:3: warning: [peers 'local'] 'peers': only the local peer 'lb1': accepted, as Sluice reloads in-process and keeps its stick tables, which is what HAProxy's local peer is for"))
        // Without `localpeer`, the host name is the local peer's, as in HAProxy (2.x's `server` form too).
        let host = Parser.hostName()
        #expect(CompatibilityTests.errors("peers local\n  bind 127.0.0.1:10000\n  server \(host)\n" + table + ParserTests.valid).isEmpty)
        #expect(CompatibilityTests.errors("global\n  localpeer lb1\npeers local\n  peer lb1 127.0.0.1:10000\n  peer lb2 10.0.0.2:10000\n" + table + ParserTests.valid)
                == ["t.cfg:5: error: [peers 'local'] 'peer': 'lb2' at 10.0.0.2:10000 is another balancer (the local peer is 'lb1', the host name or 'localpeer'): synchronising stick tables between balancers is not supported yet"])
        // As HAProxy: without the local peer the section is removed (a warning), and `disabled`
        // turns it off; either way nothing is synchronised.
        let elsewhere = try Configuration.parse("global\n  localpeer lb1\npeers local\n  peer lb7 10.0.0.7:10000\n" + table + ParserTests.valid, file: "t.cfg")
        #expect(elsewhere.warnings.map(\.description).contains(
            "t.cfg:3: warning: [peers 'local'] 'peers': removing incomplete section 'peers local' (no peer named 'lb1'), as HAProxy does: it synchronises nothing"))
        #expect(CompatibilityTests.errors("global\n  localpeer lb1\npeers local\n  disabled\n  peer lb1 127.0.0.1:1\n  peer lb2 10.0.0.2:1\n" + table + ParserTests.valid).isEmpty)
        #expect(CompatibilityTests.errors("backend sticky\n  stick-table type ip size 1m peers nosuch\n" + ParserTests.valid)
                == ["t.cfg:2: error: [backend 'sticky'] 'stick-table': 'peers nosuch': no peers section named 'nosuch'"])
    }

    /// HAProxy refuses a stick or track key that no cast turns into the table's type: binary data
    /// (a payload) for an address or integer table; a converter's string output, or a string or
    /// binary table, is fine. Each file was checked with `haproxy -c`.
    @Test func aBinaryKeyForAnAddressOrIntegerTableIsRefusedAsByHAProxy() {
        func errors(_ type: String, _ rule: String) -> [String] {
            CompatibilityTests.errors("""
                frontend fe
                  bind 127.0.0.1:9999
                  stick-table type \(type) size 10
                  tcp-request inspect-delay 1s
                  \(rule)
                  default_backend be
                backend be
                  server b 127.0.0.1:80
                """)
        }
        #expect(errors("ip", "tcp-request content track-sc1 req.payload(0,4)")
            == ["t.cfg:5: error: [frontend 'fe'] 'tcp-request content': Proxy 'fe': stick-table 'fe' uses a type incompatible with the 'track-sc1' rule (as HAProxy says: binary data is no address)"])
        #expect(errors("integer", "tcp-request content track-sc0 req.payload_lv(0,1)").count == 1)
        #expect(errors("string len 16", "tcp-request content track-sc0 req.payload(0,4)").isEmpty)
        #expect(errors("ip", "tcp-request content track-sc0 req.payload(0,4),lower").isEmpty)
        let stick = CompatibilityTests.errors("""
            backend be
              stick-table type ipv6 size 10
              stick on req.payload(0,4)
              server b 127.0.0.1:80
            """)
        #expect(stick == ["t.cfg:3: error: [backend 'be'] 'stick': Proxy 'be': type of fetch not usable with type of stick-table 'be' (as HAProxy says: binary data is no address)"])
    }

    @Test func everyUnsupportedServerAndBindParameterIsReportedInOneRun() {
        let errors = CompatibilityTests.errors("""
            frontend fe
              bind 300.1.1.1:80 accept-proxy frob v4v6
              default_backend be
            backend be
              server a 10.0.0.1:99999 check-proto h2 track be/b frob weight 2 ssl
            """)
        #expect(errors == [
            "t.cfg:2: error: [frontend 'fe'] 'bind': '300.1.1.1' is not a valid IPv4 address",
            "t.cfg:2: error: [frontend 'fe'] 'bind': unknown bind parameter 'frob'",
            "t.cfg:5: error: [backend 'be'] 'server': port 99999 in '10.0.0.1:99999' is outside 1...65535",
            "t.cfg:5: error: [backend 'be'] 'server': server parameter 'check-proto' for server 'a' is not supported yet: multiplexer protocols are HTTP",
            "t.cfg:5: error: [backend 'be'] 'server': unknown server parameter 'frob' for server 'a'",
            "t.cfg:5: error: [backend 'be'] 'server': 'ssl' for server 'a': TLS to servers is not supported for forwarded traffic; Sluice forwards the client's bytes untouched (health checks may use TLS: 'check-ssl')",
        ])
    }

    @Test func timeoutsAboveHAProxysMaximumAreErrorsAndMissingOnesAreWarned() throws {
        #expect(CompatibilityTests.errors(ParserTests.valid + "  timeout queue 3000000000\n")
            == ["t.cfg:6: error: [backend 'be'] 'timeout queue': '3000000000' is too long: the maximum is 2147483647 ms (~24.8 days), as in HAProxy"])
        let parsed = try Configuration.parse(ParserTests.valid, file: "t.cfg")
        #expect(parsed.warnings.map(\.description) == [
            "t.cfg:1: warning: [frontend 'fe'] 'frontend': missing timeouts: 'timeout client'. A dead peer would then hold its session forever, as HAProxy warns",
            "t.cfg:4: warning: [backend 'be'] 'backend': missing timeouts: 'timeout connect', 'timeout server'. A dead peer would then hold its session forever (Sluice bounds connect at 5 s), as HAProxy warns",
        ])
    }

    @Test func aRefusedBindDoesNotAlsoReportAMissingBind() {
        #expect(CompatibilityTests.errors("frontend fe\n  bind :443 ssl crt /x.pem\n  default_backend be\nbackend be\n  server a 10.0.0.1:80\n")
            == ["t.cfg:2: error: [frontend 'fe'] 'bind': 'ssl': TLS termination is not supported; Sluice forwards TLS untouched at Layer 4 (terminate it on the servers)",
                "t.cfg:2: error: [frontend 'fe'] 'bind': 'crt': TLS termination is not supported; Sluice forwards TLS untouched at Layer 4 (terminate it on the servers)"])
    }

    @Test func namedDefaultsAndTheirUseWithFrom() throws {
        let c = try Configuration.parse("""
            defaults short
              mode tcp
              timeout server 5s
            defaults long
              mode tcp
              timeout server 1h
            backend a from short
              server s 10.0.0.1:80
            backend b
              server s 10.0.0.1:80
            """).configuration
        #expect(c.backend(named: "a")?.serverTimeout == .seconds(5))
        #expect(c.backend(named: "b")?.serverTimeout == .seconds(3600))
    }

    @Test func serversWithoutAPortUseTheClientsDestinationPort() throws {
        let c = try Configuration.parse(ParserTests.valid + "  server b 10.0.0.2\n  server c 10.0.0.3: check port 8080\n").configuration
        #expect(c.backend(named: "be")?.servers.map(\.endpoint.port) == [80, 0, 0])
        #expect(CompatibilityTests.errors(ParserTests.valid + "  server b 10.0.0.2 check\n")
            == ["t.cfg:6: error: [backend 'be'] 'server': server 'b' has no port, so 'check' needs 'port <n>' (the port to check)"])
    }

    @Test func globalProcessKeywords() throws {
        let g = try Configuration.parse("""
            global
              pidfile /run/sluice.pid
              uid 65534
              gid 65534
              ulimit-n 8192
              cpu-map auto:1/1-2 0-1
              cpu-map 1/3 1
              tune.bufsize 32768
              node lb1
              stats maxconn 5
            """ + "\n" + ParserTests.valid).configuration.global
        #expect(g.pidFile == "/run/sluice.pid")
        #expect(g.userID == 65534 && g.groupID == 65534)
        #expect(g.fileLimit == 8192)
        #expect(CPUMapping.cpus(of: 1, in: g.cpuMap) == [0])
        #expect(CPUMapping.cpus(of: 2, in: g.cpuMap) == [1])
        #expect(CPUMapping.cpus(of: 3, in: g.cpuMap) == [1])
        #expect(CPUMapping.cpus(of: 4, in: g.cpuMap) == nil)
        #expect(g.bufferSize == 32768)
        #expect(g.node == "lb1")
        #expect(g.statsMaxConnections == 5)
        #expect(CompatibilityTests.errors("global\n  user no-such-user-here\n" + ParserTests.valid)
            == ["t.cfg:2: error: [global] 'user': no user named 'no-such-user-here' on this system"])
    }

    /// `tune.maxaccept` as HAProxy 2.6 reads it (checked with `haproxy -c`): 0 means the default, a
    /// negative number no limit, above INT_MAX an error, and a second line keeps the first value.
    @Test func tuneMaxacceptIsReadAsHAProxyReadsIt() throws {
        func parsed(_ lines: String) throws -> (Global, [String]) {
            let p = try Configuration.parse("global\n" + lines + ParserTests.valid, file: "t.cfg")
            return (p.configuration.global, p.warnings.filter { $0.keyword == "tune.maxaccept" }.map(\.description))
        }
        #expect(try parsed("").0.maxAccept == nil)
        #expect(try parsed("  tune.maxaccept 16\n").0.maxAccept == 16)
        #expect(try parsed("  tune.maxaccept -1\n").0.maxAccept == -1)
        let (twice, warnings) = try parsed("  tune.maxaccept 8\n  tune.maxaccept 2\n")
        #expect(twice.maxAccept == 8)
        #expect(warnings == ["t.cfg:3: warning: [global] 'tune.maxaccept': already specified; the first value (8) stays, as in HAProxy"])
        #expect(try parsed("  tune.maxaccept 0\n  tune.maxaccept 2\n").0.maxAccept == 2)
        #expect(CompatibilityTests.errors("global\n  tune.maxaccept 3000000000\n" + ParserTests.valid)
            == ["t.cfg:2: error: [global] 'tune.maxaccept': expects -1 or an integer from 0 to INT_MAX (2147483647)"])
        #expect(CompatibilityTests.errors("global\n  tune.maxaccept many\n" + ParserTests.valid)
            == ["t.cfg:2: error: [global] 'tune.maxaccept': tune.maxaccept 'many' is not a whole number"])
    }

    /// `bind … shards`: `by-thread` and any count from `nbthread` up (HAProxy trims it to the
    /// threads) are Sluice's one socket per reactor; fewer shards than threads are refused, and
    /// HAProxy's range and words for a bad value (checked with `haproxy -c`).
    @Test func bindShardsAreOneSocketPerThreadAsHAProxysByThread() {
        func errors(_ threads: Int, _ shards: String) -> [String] {
            CompatibilityTests.errors("global\n  nbthread \(threads)\nfrontend fe\n  bind :80 shards \(shards)\n  default_backend be\nbackend be\n  server a 127.0.0.1:8080\n")
        }
        for (threads, shards) in [(2, "by-thread"), (2, "2"), (2, "4"), (1, "1"), (1, "64")] {
            #expect(errors(threads, shards).isEmpty, "nbthread \(threads), shards \(shards)")
        }
        #expect(errors(2, "1") == ["t.cfg:4: error: [frontend 'fe'] 'bind': 'shards 1' with nbthread 2 is not supported: Sluice opens one socket per reactor thread, as 'shards by-thread' does (write that, or remove it)"])
        #expect(errors(1, "0") == ["t.cfg:4: error: [frontend 'fe'] 'bind': 'shards': invalid value 0, allowed range is 1..64 or 'by-thread'"])
        #expect(errors(1, "x").count == 1)
    }

    @Test func tuneMaxpolleventsIsReadAsHAProxyReadsIt() throws {
        func parsed(_ lines: String) throws -> (Global, [String]) {
            let p = try Configuration.parse("global\n" + lines + ParserTests.valid, file: "t.cfg")
            return (p.configuration.global, p.warnings.filter { $0.keyword == "tune.maxpollevents" }.map(\.description))
        }
        #expect(ProcessState(try parsed("").0).pollEvents == 256)
        #expect(ProcessState(try parsed("  tune.maxpollevents 16\n").0).pollEvents == 16)
        #expect(ProcessState(try parsed("  tune.maxpollevents -3\n").0).pollEvents == 256)  // HAProxy: <= 0 is the default
        let (twice, warnings) = try parsed("  tune.maxpollevents 8\n  tune.maxpollevents 2\n")
        #expect(twice.maxPollEvents == 8)
        #expect(warnings == ["t.cfg:3: warning: [global] 'tune.maxpollevents': already specified; the first value (8) stays, as in HAProxy"])
        #expect(try parsed("  tune.maxpollevents 0\n  tune.maxpollevents 2\n").0.maxPollEvents == 2)
        #expect(CompatibilityTests.errors("global\n  tune.maxpollevents 2000000\n" + ParserTests.valid)
            == ["t.cfg:2: error: [global] 'tune.maxpollevents': 2000000 events per poll is above 1000000"])
        #expect(CompatibilityTests.errors("global\n  tune.maxpollevents lots\n" + ParserTests.valid)
            == ["t.cfg:2: error: [global] 'tune.maxpollevents': tune.maxpollevents 'lots' is not a whole number"])
    }

    @Test func socketBufferSizesAreReadAsHAProxyReadsThem() throws {
        func parsed(_ lines: String) throws -> (Global, [String]) {
            let p = try Configuration.parse("global\n" + lines + ParserTests.valid, file: "t.cfg")
            return (p.configuration.global, p.warnings.filter { $0.keyword?.hasPrefix("tune.") == true }.map(\.description))
        }
        let all = try parsed("  tune.rcvbuf.client 8192\n  tune.sndbuf.client 4096\n  tune.rcvbuf.server 65536\n  tune.sndbuf.server 0\n").0
        #expect(all.clientBuffers == SocketBufferSizes(receive: 8192, send: 4096))
        #expect(all.serverBuffers == SocketBufferSizes(receive: 65536, send: 0))
        #expect(all.serverBuffers.isSet && !SocketBufferSizes(receive: 0, send: 0).isSet)
        // HAProxy 2.6 keeps the first value, unless it was 0.
        let (twice, warnings) = try parsed("  tune.sndbuf.server 4096\n  tune.sndbuf.server 8192\n")
        #expect(twice.serverBuffers.send == 4096)
        #expect(warnings == ["t.cfg:3: warning: [global] 'tune.sndbuf.server': already specified; the first value (4096) stays, as in HAProxy"])
        #expect(try parsed("  tune.rcvbuf.client 0\n  tune.rcvbuf.client 2048\n").0.clientBuffers.receive == 2048)
        // HAProxy reads these with atol: "64k" is 64 bytes and "-5" a negative size; Sluice refuses both.
        #expect(CompatibilityTests.errors("global\n  tune.rcvbuf.client 64k\n" + ParserTests.valid)
            == ["t.cfg:2: error: [global] 'tune.rcvbuf.client': tune.rcvbuf.client '64k' is not a whole number"])
        #expect(CompatibilityTests.errors("global\n  tune.sndbuf.client -5\n" + ParserTests.valid)
            == ["t.cfg:2: error: [global] 'tune.sndbuf.client': expects a size in bytes from 0 to INT_MAX (2147483647)"])
        #expect(CompatibilityTests.errors("global\n  tune.rcvbuf.server 3000000000\n" + ParserTests.valid)
            == ["t.cfg:2: error: [global] 'tune.rcvbuf.server': expects a size in bytes from 0 to INT_MAX (2147483647)"])
    }

    /// `option redispatch <interval>`, as HAProxy 2.6's `stream_choose_redispatch` counts retries:
    /// every nth when positive, a multiple of `retries + 1 + n` when negative (-1: the last retry),
    /// never for 0 (the other reasons to leave a server still apply).
    @Test func redispatchIntervalPicksTheRetriesThatGoElsewhere() throws {
        func due(_ interval: Int, retries: Int = 3) -> [Int] {
            (1...retries).filter { BackendState.redispatchDue(retry: $0, retries: retries, interval: interval) }
        }
        #expect(due(-1) == [3])
        #expect(due(-2) == [2])
        #expect(due(1) == [1, 2, 3])
        #expect(due(2, retries: 5) == [2, 4])
        #expect(due(0) == [])
        #expect(due(-4) == [])  // 3 + 1 - 4 = 0: none
        func interval(_ line: String) throws -> Int? {
            try Configuration.parse(Self.listen + "  \(line)\n  server a 10.0.0.1:80\n", file: "t.cfg").configuration.backends.first?.redispatchInterval
        }
        #expect(try interval("option redispatch") == -1)
        #expect(try interval("option redispatch 1") == 1)
        #expect(try interval("option redispatch -2") == -2)
        #expect(CompatibilityTests.errors(Self.listen + "  option redispatch often\n  server a 10.0.0.1:80\n")
            == ["t.cfg:3: error: [listen 'l'] 'option redispatch': 'often' is not a whole number (the interval: redispatch every <n>th retry, or the -<n>th from the last)"])
    }

    /// `minconn`/`fullconn` as HAProxy 2.6 reads them: a `minconn` at or above `maxconn` (or
    /// without one) is the fixed limit; `fullconn` defaults to 10 % of the `maxconn` of the
    /// frontends that route to the backend (default_backend, a listen's own, a fixed use_backend).
    @Test func minconnAndFullconnAreReadAsHAProxy() throws {
        func server(_ parameters: String) throws -> Server? {
            try Configuration.parse(Self.listen + "  server a 10.0.0.1:80 \(parameters)\n", file: "t.cfg").configuration.backends.first?.servers.first
        }
        #expect(try server("minconn 2 maxconn 8").map { [$0.minConnections, $0.maxConnections] } == [2, 8])
        #expect(try server("minconn 8 maxconn 2").map { [$0.minConnections, $0.maxConnections] } == [nil, 8])
        #expect(try server("minconn 4").map { [$0.minConnections, $0.maxConnections] } == [nil, 4])
        #expect(try server("maxconn 4 minconn 4").map { [$0.minConnections, $0.maxConnections] } == [nil, 4])
        #expect(try server("maxconn 4").map { [$0.minConnections, $0.maxConnections] } == [nil, 4])
        let c = try Configuration.parse("""
            global
              maxconn 1000
            defaults
              mode tcp
            frontend a
              bind 127.0.0.1:80
              maxconn 95
              use_backend other if { src 10.0.0.0/8 }
              use_backend other if { src 11.0.0.0/8 }
              use_backend %[str(x)]
              default_backend be
            frontend b
              bind 127.0.0.1:81
              default_backend be
            backend be
              server a 10.0.0.1:80 minconn 1 maxconn 5
            backend other
              server a 10.0.0.1:80
            backend fixed
              fullconn 7
              server a 10.0.0.1:80
            listen alone
              bind 127.0.0.1:82
              server a 10.0.0.1:80

            """, file: "t.cfg").configuration
        func full(_ name: String) throws -> Int { c.fullConnections(of: try #require(c.backend(named: name)), unlimited: 10_000) }
        #expect(try full("be") == 110)     // (95 + 1000 + 9) / 10
        #expect(try full("other") == 10)   // a's 95, once
        #expect(try full("fixed") == 7)
        #expect(try full("alone") == 100)  // the global maxconn
        #expect(try Configuration.parse(Self.listen + "  fullconn 0\n  server a 10.0.0.1:80\n", file: "t.cfg").configuration.backends.first?.fullConnections == nil)
        #expect(CompatibilityTests.errors(Self.listen + "  fullconn -5\n  server a 10.0.0.1:80\n").count == 1)
        #expect(CompatibilityTests.errors(Self.listen + "  fullconn\n  server a 10.0.0.1:80\n").count == 1)
    }

    /// `ServerState.sessionLimit`, HAProxy's `srv_dynamic_maxconn`: the ramp between `minconn`
    /// and `maxconn` by the backend's sessions against `fullconn`, and a slow start's share of it.
    @Test func dynamicServerLimitsFollowHAProxysFormula() throws {
        var configuration = Server(name: "s", endpoint: Endpoint(host: "10.0.0.1", port: 80))
        configuration.maxConnections = 100
        configuration.minConnections = 10
        let server = ServerState(name: "s", ordinal: 0, address: SocketAddress(ip: "10.0.0.1", port: 80)!, weight: 1, isBackup: false,
                                 admin: .ready, configuration: configuration)
        func limit(_ sessions: Int, now: Int64 = 1_000) -> Int { server.sessionLimit(SlotBudget(sessions: sessions, full: 1_000, now: now)) }
        #expect(server.hasDynamicLimit)
        #expect(server.sessionLimit(.fixed) == 100)
        #expect([0, 50, 100, 500, 999, 1_000, 5_000].map { limit($0) } == [10, 10, 10, 50, 99, 100, 100])
        // Four seconds into a ten-second slow start: 40 % of that.
        server.slowStartMs.store(10_000, ordering: .relaxed)
        server.rampStart.store(1_000, ordering: .relaxed)
        #expect([limit(500, now: 5_000), limit(5_000, now: 5_000), limit(0, now: 1_000), limit(5_000, now: 11_000)] == [20, 40, 1, 100])
        let plain = ServerState(name: "p", ordinal: 1, address: SocketAddress(ip: "10.0.0.2", port: 80)!, weight: 1, isBackup: false, admin: .ready)
        #expect(!plain.hasDynamicLimit)
        #expect(plain.sessionLimit(SlotBudget(sessions: 5, full: 10, now: 0)) == Int.max)
    }

    /// `agent-check` and its parameters as HAProxy 2.6 takes them, `default-server` included.
    @Test func agentCheckParametersAreReadAsHAProxy() throws {
        func agent(_ lines: String) throws -> AgentCheck? {
            try Configuration.parse(Self.listen + lines, file: "t.cfg").configuration.backends.first?.servers.first?.agent
        }
        #expect(try agent("  server a 10.0.0.1:80 agent-check agent-port 9999\n") == AgentCheck(port: 9999))
        #expect(try agent("  server a 10.0.0.1:80 agent-check agent-port 9999 agent-addr 10.0.0.9 agent-inter 5s agent-send \"hi\\n\"\n")
            == AgentCheck(port: 9999, address: "10.0.0.9", interval: .seconds(5), send: Array("hi\n".utf8)))
        #expect(try agent("  default-server agent-check agent-port 9999\n  server a 10.0.0.1:80\n") == AgentCheck(port: 9999))
        #expect(try agent("  default-server agent-check agent-port 9999\n  server a 10.0.0.1:80 no-agent-check\n") == nil)
        #expect(try agent("  server a 10.0.0.1:80 agent-port 9999\n") == nil)  // the port alone runs no agent, as HAProxy
        #expect(CompatibilityTests.errors(Self.listen + "  server a 10.0.0.1:80 agent-check\n")
            == ["t.cfg:3: error: [listen 'l'] 'server': server 'a' has 'agent-check' but no 'agent-port' (HAProxy: \"does not have agent port\")"])
        #expect(CompatibilityTests.errors(Self.listen + "  server a 10.0.0.1:80 agent-check agent-port 0\n").count == 1)
    }

    /// An agent's line, read as HAProxy's `tcpcheck_agent_expect_reply`: words in any order and
    /// case, separated by blanks or commas; the last of a kind wins; `#` starts the description.
    @Test func agentRepliesAreReadAsHAProxy() throws {
        func line(_ text: String, closed: Bool = false) -> AgentReply.Reading { AgentReply.read(Array(text.utf8), closed: closed) }
        #expect(line("up") == .incomplete)
        #expect(line("up", closed: true) == .truncated)
        #expect(line("up\0\n") == .truncated)
        guard case .line(let reply) = line("75%,DRAIN\tmaxconn:30  Down # backend is shutting down\r\nignored") else {
            Issue.record("no line")
            return
        }
        #expect(reply == AgentReply(health: "Down", admin: .drain, weight: "75%", maxConnections: "30", description: "backend is shutting down"))
        #expect(!reply.healthIsUp)
        guard case .line(let last) = line("drain ready 10% 20% up what maint\n") else { return }
        #expect(last == AgentReply(health: "up", admin: .maintenance, weight: "20%", unknown: "what"))
        #expect(AgentReply.maxConnections("30") == .success(30))
        #expect(AgentReply.maxConnections("0") == .success(nil))
        #expect(AgentReply.maxConnections("") == .failure(.init("Require <maxconn>.")))
        #expect(AgentReply.maxConnections("x") == .failure(.init("maxconn string empty or preceded by garbage")))
        #expect(AgentReply.maxConnections("3x") == .failure(.init("Trailing garbage in maxconn string")))
    }

    @Test func useServerNeedsAConditionAndAServerOfItsOwnProxy() throws {
        let base = Self.listen + "  server a 10.0.0.1:80 weight 0\n  server b 10.0.0.2:80\n"
        let c = try Configuration.parse(base + "  use-server a if { src 10.0.0.0/8 }\n  use-server %[src] unless TRUE\n").configuration
        #expect(c.backends.first { $0.name == "l" }?.rules?.serverRules.count == 2)
        #expect(CompatibilityTests.errors(base + "  use-server a\n")
            == ["t.cfg:5: error: [listen 'l'] 'use-server': requires either 'if' or 'unless' followed by a condition (as in HAProxy)"])
        #expect(CompatibilityTests.errors(base + "  use-server nope if TRUE\n")
            == ["t.cfg:5: error: [listen 'l'] 'use-server': no server named 'nope' in listen 'l'"])
        #expect(CompatibilityTests.errors(base + "  use-server a b if TRUE\n")
            == ["t.cfg:5: error: [listen 'l'] 'use-server': expected 'use-server <server> {if|unless} <condition>'"])
        #expect(CompatibilityTests.errors("frontend f\n  bind 127.0.0.1:81\n  use-server a if TRUE\n  default_backend l\n" + base).first?
            .contains("'use-server': is not allowed in a 'frontend' section") == true)
    }

    @Test func rdpCookieBalanceAndPersistenceAreReadAsHAProxyReadsThem() throws {
        let base = Self.listen + "  server a 10.0.0.1:3389\n"
        func backend(_ lines: String) throws -> Backend? {
            try Configuration.parse(base + lines).configuration.backends.first { $0.name == "l" }
        }
        #expect(try backend("  balance rdp-cookie\n")?.hashExpression?.fetch == .rdpCookie(name: "mstshash"))
        #expect(try backend("  balance rdp-cookie(user)\n")?.hashExpression?.fetch == .rdpCookie(name: "user"))
        #expect(try backend("  persist rdp-cookie\n")?.rdpPersistence == "msts")
        #expect(try backend("  persist rdp-cookie(token)\n")?.rdpPersistence == "token")
        #expect(try Configuration.parse("defaults\n  mode tcp\n  persist rdp-cookie\n" + base).configuration.backends.first?.rdpPersistence == "msts")
        #expect(CompatibilityTests.errors(base + "  balance rdp-cookie()\n")
            == ["t.cfg:4: error: [listen 'l'] 'balance': 'rdp-cookie()': expected rdp-cookie or rdp-cookie(<name>)"])
        #expect(CompatibilityTests.errors(base + "  persist cookie\n")
            == ["t.cfg:4: error: [listen 'l'] 'persist': expected 'persist rdp-cookie' or 'persist rdp-cookie(<name>)' (the only kind HAProxy has)"])
        #expect(CompatibilityTests.errors(base + "  tcp-request content accept if RDP_COOKIE\n  acl u req_rdp_cookie(mstshash) -m beg adm\n").isEmpty)
    }

    @Test func sourceIsReadAsHAProxyWritesIt() throws {
        let base = Self.listen + "  server a 10.0.0.1:3389"
        func backend(_ server: String, _ lines: String = "") throws -> Backend? {
            try Configuration.parse(base + server + "\n" + lines).configuration.backends.first { $0.name == "l" }
        }
        #expect(try backend("", "  source 10.0.0.5\n")?.source == SourceBinding(address: SocketAddress(ip: "10.0.0.5", port: 0)!))
        #expect(try backend("", "  source 10.0.0.5:4000 interface eth1\n")?.source
            == SourceBinding(address: SocketAddress(ip: "10.0.0.5", port: 4000)!, interface: "eth1"))
        #expect(try backend("", "  source 0.0.0.0\n")?.source == nil)
        #expect(try backend(" source [::1]")?.servers.first?.source == SourceBinding(address: SocketAddress(ip: "::1", port: 0)!))
        #expect(try backend(" source ::1:4000")?.servers.first?.source == SourceBinding(address: SocketAddress(ip: "::1", port: 4000)!))
        #expect(!CompatibilityTests.errors(base + " source ::1\n").isEmpty)  // HAProxy: invalid address: ':' in '::1'
        #expect(try backend(" source 10.0.0.6 interface eth2 weight 3")?.servers.first?.source?.interface == "eth2")
        // `usesrc`, in both places, with HAProxy's grammar and its words for mistakes.
        let wildcard = SocketAddress(ip: "0.0.0.0", port: 0)!
        #expect(try backend("", "  source 10.0.0.5 usesrc clientip\n")?.source
            == SourceBinding(address: SocketAddress(ip: "10.0.0.5", port: 0)!, presented: .clientIP))
        #expect(try backend("", "  source 0.0.0.0 usesrc client interface eth1\n")?.source
            == SourceBinding(address: wildcard, interface: "eth1", presented: .client))
        #expect(try backend("", "  source 0.0.0.0 interface eth1 usesrc 10.9.9.9:7000\n")?.source
            == SourceBinding(address: wildcard, interface: "eth1", presented: .address(SocketAddress(ip: "10.9.9.9", port: 7000)!)))
        #expect(try backend(" source 0.0.0.0 usesrc clientip")?.servers.first?.source == SourceBinding(address: wildcard, presented: .clientIP))
        #expect(try backend(" source 10.0.0.6 usesrc client interface eth2")?.servers.first?.source
            == SourceBinding(address: SocketAddress(ip: "10.0.0.6", port: 0)!, interface: "eth2", presented: .client))
        #expect(CompatibilityTests.errors(base + "\n  source 10.0.0.5 usesrc\n")
            == ["t.cfg:4: error: [listen 'l'] 'source': 'usesrc' expects <addr>[:<port>], 'client', or 'clientip' as argument"])
        #expect(CompatibilityTests.errors(base + "\n  source 10.0.0.5 via x\n")
            == ["t.cfg:4: error: [listen 'l'] 'source': 'source' only supports optional keywords 'interface' and 'usesrc'"])
        #expect(CompatibilityTests.errors(base + "\n  source 0.0.0.0 usesrc hdr_ip(x-forwarded-for,-1)\n").first?.contains("HTTP header") == true)
        #expect(CompatibilityTests.errors(base + " usesrc clientip\n")
            == ["t.cfg:3: error: [listen 'l'] 'server': 'usesrc' for server 'a' only allowed after a 'source' statement"])
        // HAProxy 2.6 will not start with both (`user` gives up the privileges IP_TRANSPARENT needs).
        #expect(CompatibilityTests.errors("global\n  uid 65534\n" + base + "\n  source 0.0.0.0 usesrc clientip\n").first?
            .hasPrefix("t.cfg:6: error: [listen 'l'] 'usesrc': 'usesrc' needs full privileges") == true)
        #expect(CompatibilityTests.errors("global\n  uid 0\n" + base + "\n  source 0.0.0.0 usesrc clientip\n").isEmpty)
        #expect(CompatibilityTests.errors(base + " source 10.0.0.5:1000-2000\n").first?.contains("port ranges are not supported yet") == true)
        #expect(CompatibilityTests.errors(base + " source gateway.example\n").first?.contains("a source is a numeric address") == true)
        #expect(CompatibilityTests.errors(base + " interface eth0\n") == ["t.cfg:3: error: [listen 'l'] 'server': 'interface' for server 'a' belongs after 'source <addr>'"])
    }

    @Test func aListenWithDefaultBackendSendsItsConnectionsThere() throws {
        let c = try Configuration.parse("listen l 127.0.0.1:80\n  default_backend be\n  server own 10.0.0.9:80\n" + ParserTests.valid).configuration
        #expect(c.frontends.first { $0.name == "l" }?.defaultBackend == "be")
        #expect(CompatibilityTests.errors("listen l 127.0.0.1:80\n  default_backend nope\n  server own 10.0.0.9:80\n")
            == ["t.cfg:2: error: [listen 'l'] 'default_backend': no backend named 'nope' exists"])
    }

    @Test func trackNeedsACheckedServerNoCheckOfItsOwnAndNoLoop() {
        let base = "backend be\n  server c 10.0.0.1:80 check\n  server n 10.0.0.2:80\n"
        #expect(CompatibilityTests.errors(base + "  server t 10.0.0.3:80 track nope\n")
            == ["t.cfg:4: error: [backend 'be'] 'server': 'track nope': no server 'nope' in backend 'be'"])
        #expect(CompatibilityTests.errors(base + "  server t 10.0.0.3:80 track n\n")
            == ["t.cfg:4: error: [backend 'be'] 'server': 'track n': be/n has no 'check' to follow"])
        #expect(CompatibilityTests.errors(base + "  server t 10.0.0.3:80 track be/c check\n")
            == ["t.cfg:4: error: [backend 'be'] 'server': server 't' cannot both 'check' and 'track be/c' (as in HAProxy)"])
        #expect(CompatibilityTests.errors(base + "  server t 10.0.0.3:80 track u\n  server u 10.0.0.4:80 track t\n").count == 2)
        #expect(CompatibilityTests.errors(base + "  server t 10.0.0.3:80 track be/c\n  server u 10.0.0.4:80 track t\n").isEmpty)
    }

    static func errors(_ text: String) -> [String] { ParserTests.errors(text) }

    /// A listen section as HAProxy 2.6 accepts it (it refuses `listen <name> <address>`).
    static let listen = "listen l\n  bind 127.0.0.1:80\n"
}
