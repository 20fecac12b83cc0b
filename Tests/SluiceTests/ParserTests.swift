import Foundation
import Testing
@testable import Sluice

/// Reading the HAProxy subset: what loads, and what each mistake is told.
struct ParserTests {
    static let reference = """
        # The reference topology: two API servers and a backup, checked with GET /alive.
        global
          maxconn 20000
          nbthread 2
          stats socket /run/sluice.sock mode 660 level admin
          hard-stop-after 30s
          tune.pipesize 262144
          maxpipes 500

        defaults
          mode tcp
          timeout connect 5s
          timeout client 30s
          timeout server 30s
          retries 3
          option redispatch

        frontend api
          bind 127.0.0.1:8080
          bind [::1]:8080 backlog 512
          maxconn 1000
          timeout client-fin 5s
          default_backend api

        backend api
          balance roundrobin
          option httpchk GET /alive HTTP/1.1
          http-check send hdr Host api.local
          http-check expect status 200-299
          default-server inter 3s fall 2
          server server01 127.0.0.1:8081 check port 8081
          server server02 127.0.0.1:8082 check port 8082 weight 2
          server backup01 127.0.0.1:8083 check port 8083 backup
          timeout tunnel 1h

        listen redis
          bind :6380
          option tcp-check
          tcp-check send "PING\\r\\n"
          tcp-check expect string +PONG
          server r1 localhost:6379 check inter 500ms rise 1
        """

    @Test func referenceConfigurationLoadsWithHAProxyDefaultsAndValues() throws {
        let parsed = try Configuration.parse(Self.reference, file: "ref.cfg")
        let c = parsed.configuration
        #expect(parsed.warnings.isEmpty)
        #expect(c.global.maxConnections == 20000)
        #expect(c.global.threads == 2)
        #expect(c.global.statsSockets == [StatsSocket(path: "/run/sluice.sock", mode: 0o660, level: .admin)])
        #expect(c.global.hardStopAfter == .seconds(30))
        #expect(c.global.pipeSize == 262144)
        #expect(c.global.maxPipes == 500)

        #expect(c.frontends.map(\.name) == ["api", "redis"])
        let api = c.frontends[0]
        #expect(api.binds == [Bind(endpoint: Endpoint(host: "127.0.0.1", port: 8080)), Bind(endpoint: Endpoint(host: "::1", port: 8080), backlog: 512)])
        #expect(api.maxConnections == 1000)
        #expect(api.clientTimeout == .seconds(30))
        #expect(api.clientFinTimeout == .seconds(5))
        #expect(api.defaultBackend == "api")

        let backend = try #require(c.backend(named: "api"))
        #expect(backend.retries == 3)
        #expect(backend.redispatch)
        #expect(!backend.allBackups)
        #expect(backend.connectTimeout == .seconds(5))
        #expect(backend.tunnelTimeout == .seconds(3600))
        #expect(backend.servers.map(\.name) == ["server01", "server02", "backup01"])
        #expect(backend.servers.map(\.weight) == [1, 2, 1])
        #expect(backend.servers.map(\.isBackup) == [false, false, true])
        let check = try #require(backend.servers[0].check)
        #expect(check.port == 8081)
        #expect(check.interval == .seconds(3))
        #expect(check.fall == 2)
        #expect(check.rise == 2)
        guard case .http(let http) = backend.healthCheck else {
            Issue.record("expected an HTTP check, got \(backend.healthCheck)")
            return
        }
        #expect(http.method == "GET" && http.uri == "/alive" && http.version == "HTTP/1.1")
        #expect(http.headers.map(\.name) == ["Host"] && http.headers.map(\.value) == ["api.local"])
        #expect(http.expect == .status([200...299], negated: false))

        let redisFront = c.frontends[1]
        #expect(redisFront.binds == [Bind(endpoint: Endpoint(host: nil, port: 6380))])
        #expect(redisFront.defaultBackend == "redis")
        let redis = try #require(c.backend(named: "redis"))
        #expect(redis.healthCheck == .tcp([.send(Array("PING\r\n".utf8)), .expectString("+PONG", negated: false)]))
        #expect(redis.servers[0].endpoint == Endpoint(host: "localhost", port: 6379))
        #expect(redis.servers[0].check?.interval == .milliseconds(500))
        #expect(redis.servers[0].check?.rise == 1)
    }

    /// Parses `text`, expecting failure, and returns the error lines.
    static func errors(_ text: String) -> [String] {
        do {
            _ = try Configuration.parse(text, file: "t.cfg")
            return []
        } catch {
            return error.errors.map(\.description)
        }
    }

    static let valid = """
        frontend fe
          bind :80
          default_backend be
        backend be
          server a 10.0.0.1:80

        """

    /// `stats socket` takes HAProxy's TCP form too; a UNIX file's permissions mean nothing there.
    @Test func statsSocketsAreUNIXPathsOrTCPAddresses() throws {
        let parsed = try Configuration.parse("""
            global
              stats socket unix@/run/a.sock level user
              stats socket ipv4@127.0.0.1:9999 level admin
              stats socket *:1999 mode 600 level operator
              stats socket unix@relative.sock
            listen fe
              bind :80
              server s 127.0.0.1:8080

            """, file: "t.cfg")
        #expect(parsed.configuration.global.statsSockets.map(\.address) == [
            .unix(path: "/run/a.sock"), .tcp(Endpoint(host: "127.0.0.1", port: 9999)), .tcp(Endpoint(host: nil, port: 1999)), .unix(path: "relative.sock"),
        ])
        #expect(parsed.configuration.global.statsSockets.map(\.level) == [.user, .admin, .operator, .operator])
        #expect(parsed.warnings.map(\.description).filter { $0.contains("stats socket") } == ["t.cfg:4: warning: [global] 'stats socket': 'mode 600' has no effect on a TCP socket (it sets a UNIX socket file's permissions)"])
        let errors = Self.errors("global\n  stats socket 127.0.0.1\nlisten fe\n  bind :80\n  server s 127.0.0.1:8080\n")
        #expect(errors.count == 1 && errors[0].hasPrefix("t.cfg:2: error: [global] 'stats socket': "), "\(errors)")
    }

    /// HAProxy 2.2's `http-check connect` and `send … body`, in the one-exchange form Sluice checks
    /// with; `disable-on-404` without `option httpchk` warns as HAProxy does.
    @Test func httpCheckConnectBodyAndDisableOn404AreRead() throws {
        func backend(_ lines: String) -> String {
            "defaults\n  timeout client 1s\n  timeout server 1s\n  timeout connect 1s\nlisten fe\n  bind :80\n\(lines)\n  server s 127.0.0.1:8080 check\n"
        }
        let parsed = try Configuration.parse(backend("""
              option httpchk
              http-check connect default port 8008 addr 127.0.0.2 linger
              http-check send meth POST uri /health body ping
              http-check disable-on-404
            """), file: "t.cfg")
        let check = try #require(parsed.configuration.backends.first?.healthCheck.httpCheck)
        #expect(check.connect == HTTPCheck.Connect(port: 8008, address: "127.0.0.2", socks: .server))
        #expect(check.body == "ping" && check.method == "POST" && check.disableOn404)
        #expect(Self.errors(backend("  option httpchk\n  http-check connect\n  http-check send uri /\n  http-check connect port 81"))
                == ["t.cfg:10: error: [listen 'fe'] 'http-check connect': a second connection in one check (several exchanges) is not supported yet; Sluice checks with one request"])
        // `connect ssl`: every server's checks use TLS, with the connect's SNI and ALPN.
        let tls = try Configuration.parse("backend b\n  option httpchk\n  http-check connect ssl sni api.test alpn h2\n  server s 127.0.0.1:6443 check verify none\n")
        #expect(tls.configuration.backends.first?.servers.first?.check?.tls?.sni == "api.test")
        #expect(tls.configuration.backends.first?.servers.first?.check?.tls?.alpn == "h2")
        #expect(tls.configuration.backends.first?.servers.first?.check?.tls?.verify == false)
        let tcp = try Configuration.parse(backend("  option tcp-check\n  http-check disable-on-404"), file: "t.cfg")
        #expect(tcp.warnings.map(\.description).contains("t.cfg:5: warning: [listen 'fe'] 'http-check disable-on-404': will be ignored for listen 'fe' (requires 'option httpchk'), as HAProxy warns"))
    }

    @Test func unknownKeywordNamesFileLineSectionAndKeyword() {
        #expect(Self.errors(Self.valid + "  frobnicate 1\n") == ["t.cfg:6: error: [backend 'be'] 'frobnicate': unknown keyword in a 'backend' section"])
    }

    @Test func windowsLineEndingsReadAsHAProxyReadsThem() throws {
        // A file saved with CRLF: HAProxy reads it; Swift keeps "\r\n" as one character.
        let crlf = (Self.valid + "  frobnicate 1\n").replacingOccurrences(of: "\n", with: "\r\n")
        #expect(Self.errors(crlf) == ["t.cfg:6: error: [backend 'be'] 'frobnicate': unknown keyword in a 'backend' section"])
        _ = try Configuration.parse(Self.valid.replacingOccurrences(of: "\n", with: "\r\n"), file: "t.cfg")
    }

    /// HAProxy 2.6 ignores, with a warning, a backend's keyword in a frontend and a frontend's in a
    /// backend (`haproxy -c` passes), but refuses servers in a frontend and anything misplaced in
    /// defaults or global. So does Sluice, and an ignored keyword changes nothing.
    @Test func keywordInTheWrongSectionIsIgnoredOrRefusedAsHAProxyDoes() throws {
        let misplaced = """
            frontend fe
              bind :80
              balance source
              timeout server 1s
              option redispatch
              default_backend be
            backend be
              bind :81
              timeout client 2s
              maxconn 5
              server a 10.0.0.1:80

            """
        let parsed = try Configuration.parse(misplaced, file: "t.cfg")
        #expect(parsed.warnings.map(\.description).filter { $0.contains("capability") } == [
            "t.cfg:3: warning: [frontend 'fe'] 'balance': ignored because frontend 'fe' has no backend capability (as HAProxy)",
            "t.cfg:4: warning: [frontend 'fe'] 'timeout server': ignored because frontend 'fe' has no backend capability (as HAProxy)",
            "t.cfg:5: warning: [frontend 'fe'] 'option redispatch': ignored because frontend 'fe' has no backend capability (as HAProxy)",
            "t.cfg:8: warning: [backend 'be'] 'bind': ignored because backend 'be' has no frontend capability (as HAProxy)",
            "t.cfg:9: warning: [backend 'be'] 'timeout client': ignored because backend 'be' has no frontend capability (as HAProxy)",
            "t.cfg:10: warning: [backend 'be'] 'maxconn': ignored because backend 'be' has no frontend capability (as HAProxy); maybe you want a server's 'maxconn'",
        ])
        let c = parsed.configuration
        #expect(c.frontends.map { $0.binds.count } == [1])
        #expect(c.backends.first?.balance == .roundRobin)
        #expect(c.backends.first?.serverTimeout == nil && c.backends.first?.redispatch == false)
        #expect(c.frontends.first?.clientTimeout == nil)
        #expect(Self.errors("global\n  balance roundrobin\n" + Self.valid) == ["t.cfg:2: error: [global] 'balance': is not allowed in the 'global' section (it belongs in defaults, backend, listen)"])
        #expect(Self.errors("defaults\n  bind :81\n" + Self.valid) == ["t.cfg:2: error: [defaults] 'bind': is not allowed in a 'defaults' section (it belongs in frontend, listen)"])
        #expect(Self.errors("frontend f2\n  bind :82\n  server b 10.0.0.2:80\n  default_backend be\n" + Self.valid)
            == ["t.cfg:3: error: [frontend 'f2'] 'server': is not allowed in a 'frontend' section (it belongs in backend, listen)"])
        #expect(Self.errors(Self.valid + "  tcp-request connection reject\n")
            == ["t.cfg:6: error: [backend 'be'] 'tcp-request connection': is not allowed because backend 'be' is not a frontend (as in HAProxy)"])
    }

    @Test func ioEngineIsLeftToTheDefaultUnlessNamed() throws {
        #expect(try Configuration.parse(Self.valid, file: "t.cfg").configuration.global.ioEngine == nil)
        #expect(try Configuration.parse("global\n  io-engine epoll\n" + Self.valid, file: "t.cfg").configuration.global.ioEngine == .epoll)
        #expect(try Configuration.parse("global\n  io-engine io_uring\n" + Self.valid, file: "t.cfg").configuration.global.ioEngine == .ioUring)
        #expect(Self.errors("global\n  io-engine kqueue\n" + Self.valid)
            == ["t.cfg:2: error: [global] 'io-engine': 'kqueue' is not an engine; expected epoll or io_uring (a Sluice extension)"])
    }

    @Test func serverWithoutAddress() {
        #expect(Self.errors(Self.valid + "  server b\n") == ["t.cfg:6: error: [backend 'be'] 'server': server 'b' has no address: expected 'server b <address>:<port> [params]'"])
    }

    @Test func portOutOfRange() {
        #expect(Self.errors(Self.valid + "  server b 10.0.0.2:65536\n") == ["t.cfg:6: error: [backend 'be'] 'server': port 65536 in '10.0.0.2:65536' is outside 1...65535"])
    }

    @Test func badTimeUnit() {
        #expect(Self.errors(Self.valid + "  timeout connect 5x\n") == ["t.cfg:6: error: [backend 'be'] 'timeout connect': bad time unit 'x' in '5x': use us, ms, s, m, h or d (no unit means ms)"])
    }

    @Test func duplicateProxyNamePointsAtTheFirst() {
        let errors = Self.errors(Self.valid + "backend be\n  server c 10.0.0.3:80\n")
        #expect(errors == ["t.cfg:6: error: [backend 'be'] 'backend': duplicate proxy name 'be': a backend of that name is at t.cfg:4"])
    }

    @Test func frontendAndBackendMayShareAName() throws {
        _ = try Configuration.parse("frontend app\n  bind :80\n  default_backend app\nbackend app\n  server a 10.0.0.1:80\n")
    }

    @Test func proxiesAndServersAreNumberedAsHAProxyNumbersThem() throws {
        // HAProxy 2.6: explicit ids stay; the others take the first free number from a cursor that
        // moves one past every proxy (server) in declaration order. The statistics proxy counts.
        let parsed = try Configuration.parse("""
            listen stats
              mode http
              bind :8404
              http-request use-service prometheus-exporter if { path /metrics }
            frontend fe
              bind :80
              default_backend be
            backend be
              id 1
              server s1 10.0.0.1:80
              server s2 10.0.0.2:80 id 1
              server s3 10.0.0.3:80
            listen li
              bind :81
              server a 10.0.0.4:80
            """, file: "t.cfg").configuration
        #expect(parsed.frontends.map { "\($0.name)=\($0.id ?? 0)" } == ["fe=3", "li=5"])
        #expect(parsed.backends.map { "\($0.name)=\($0.id ?? 0)" } == ["be=1", "li=5"])
        #expect(parsed.backends[0].servers.map { $0.id ?? 0 } == [2, 1, 4])
        #expect(Numbering.assign([nil, 3, nil, nil, 1, nil]) == [2, 3, 4, 5, 1, 7])  // the cursor passes the explicit 1 too
        #expect(Numbering.firstFree([1, 2, 4]) == 3)
        // Built in Swift without ids: frontends, then the backends; a listen's halves share one.
        let built = Configuration(frontends: [Frontend(name: "li", binds: [], defaultBackend: "li"),
                                              Frontend(name: "fe", binds: [], defaultBackend: "be")],
                                  backends: [Backend(name: "be", servers: [Server(name: "x", endpoint: Endpoint(host: "10.0.0.1", port: 80))]),
                                             Backend(name: "li", servers: [])]).numbered()
        #expect(built.frontends.map(\.id) == [1, 2] && built.backends.map(\.id) == [3, 1] && built.backends[0].servers[0].id == 1)
    }

    @Test func idsMustBeUniqueWithHAProxysWords() {
        #expect(Self.errors(Self.valid + "  id 7\nlisten li\n  id 7\n  bind :81\n  server b 10.0.0.2:80\n") == [
            "t.cfg:8: error: [listen 'li'] 'id': proxy li reuses same custom id as backend be (declared at t.cfg:4)"])
        #expect(Self.errors(Self.valid + "  server b 10.0.0.2:80 id 4\n  server c 10.0.0.3:80 id 4\n") == [
            "t.cfg:7: error: [backend 'be'] 'server': 'id': custom id 4 already used at t.cfg:6 ('server b')"])
        #expect(Self.errors(Self.valid + "  default-server id 2\n") == [
            "t.cfg:6: error: [backend 'be'] 'default-server': 'id' names one server: it is not accepted on 'default-server'"])
        #expect(Self.errors(Self.valid + "  id 0\n") == ["t.cfg:6: error: [backend 'be'] 'id': id 0 is outside 1...2147483647"])
    }

    /// As HAProxy: a frontend may have `use_backend` rules and no `default_backend` (what no rule
    /// routes is closed), or neither (a warning: every connection is closed).
    @Test func aFrontendMayGoWithoutADefaultBackend() throws {
        let text = "frontend fe\n  bind :80\n  use_backend be\nfrontend bare\n  bind :81\nbackend be\n  server s 127.0.0.1:8080\n"
        let parsed = try Configuration.parse(text, file: "t.cfg")
        #expect(parsed.configuration.frontends.map(\.defaultBackend) == [nil, nil])
        #expect(parsed.warnings.map(\.description).filter { $0.contains("default_backend") }
                == ["t.cfg:4: warning: [frontend 'bare'] 'frontend': has neither 'default_backend' nor 'use_backend': every connection is closed at once (as in HAProxy)"])
    }

    @Test func defaultBackendNamingAMissingBackend() {
        #expect(Self.errors("frontend fe\n  bind :80\n  default_backend nope\n") == ["t.cfg:3: error: [frontend 'fe'] 'default_backend': no backend named 'nope' exists"])
    }

    /// Valid in HAProxy (kind starts its balancer with an empty backend and writes the servers
    /// later): a warning that says what happens meanwhile.
    @Test func backendWithNoServersUsedByAFrontend() throws {
        let parsed = try Configuration.parse("frontend fe\n  bind :80\n  default_backend be\nbackend be\n  balance roundrobin\n", file: "t.cfg")
        #expect(parsed.warnings.map(\.description).filter { $0.contains("'server' line") }
            == ["t.cfg:3: warning: [frontend 'fe'] 'default_backend': backend 'be' (at t.cfg:4) has no 'server' line: every connection to it is closed at once until servers are added (by a reload, or the runtime API's 'add server')"])
    }

    @Test func aProxyThatWouldRunInModeHTTPIsRejectedOnceWithTheReason() {
        let errors = Self.errors("defaults\n  mode http\n" + Self.valid)
        #expect(errors == [
            "t.cfg:3: error: [frontend 'fe'] 'mode http': rejected: this proxy runs in mode http (set at t.cfg:2), and Sluice is a Layer-4 (TCP) balancer; add 'mode tcp' to it. HTTP routing, header rewriting and cookies need an HTTP proxy in front of or behind Sluice",
            "t.cfg:6: error: [backend 'be'] 'mode http': rejected: this proxy runs in mode http (set at t.cfg:2), and Sluice is a Layer-4 (TCP) balancer; add 'mode tcp' to it. HTTP routing, header rewriting and cookies need an HTTP proxy in front of or behind Sluice",
        ])
    }

    /// A backend that only holds a stick table forwards nothing, so the mode http it inherits is
    /// no reason to refuse it; one with servers, or with HTTP lines of its own, still is.
    @Test func aTableHolderBackendMayInheritModeHTTP() throws {
        let text = """
            defaults
              mode http
              option forwardfor
              timeout client 5s
              timeout server 5s
              timeout connect 1s
            frontend fe
              mode tcp
              bind :80
              tcp-request connection track-sc0 src table per_ip
              default_backend be
            backend be
              mode tcp
              server a 127.0.0.1:8080
            backend per_ip
              stick-table type ip size 1m expire 1h store conn_rate(10s)

            """
        let parsed = try Configuration.parse(text, file: "t.cfg")
        #expect(parsed.configuration.backends.map(\.name).contains("per_ip"))
        let own = Self.errors(text + "  option httpclose\n")
        #expect(own.count == 1 && own[0].hasPrefix("t.cfg:15: error: [backend 'per_ip'] 'mode http': rejected"), "\(own)")
    }

    @Test func httpOnlyKeywordsInATCPProxyAreIgnoredWithHAProxysWarningOncePerLine() throws {
        let parsed = try Configuration.parse("defaults\n  mode http\n  option forwardfor\n"
            + Self.valid.replacingOccurrences(of: "  bind :80\n", with: "  bind :80\n  mode tcp\n  http-request deny\n")
                .replacingOccurrences(of: "backend be\n", with: "backend be\n  mode tcp\n"), file: "t.cfg")
        let http = parsed.warnings.map(\.description).filter { $0.contains("HTTP mode") }
        #expect(http == [
            "t.cfg:3: warning: 'option forwardfor': ignored for frontend 'fe', backend 'be': it requires HTTP mode, and these proxies run in mode tcp (as HAProxy does)",
            "t.cfg:7: warning: 'http-request': ignored for frontend 'fe': it requires HTTP mode, and this proxy runs in mode tcp (as HAProxy does)",
        ])
        // `no option` in the proxy takes the inherited option back: no warning for that proxy.
        let cleared = try Configuration.parse("defaults\n  option forwardfor\n" + Self.valid + "  no option forwardfor\n", file: "t.cfg")
        #expect(cleared.warnings.map(\.description).filter { $0.contains("HTTP mode") }
            == ["t.cfg:2: warning: 'option forwardfor': ignored for frontend 'fe': it requires HTTP mode, and this proxy runs in mode tcp (as HAProxy does)"])
    }

    @Test func everyErrorIsReportedNotOnlyTheFirst() {
        let errors = Self.errors("""
            global
              nbthread zero
            frontend fe
              bind :80
              option frob
              default_backend be
            backend be
              server a 10.0.0.1:80 weight 300
              server b 10.0.0.2:80 frob
            """)
        #expect(errors.count == 4)
        #expect(errors[0].hasPrefix("t.cfg:2:") && errors[0].contains("nbthread 'zero' is not a whole number"))
        #expect(errors[1] == "t.cfg:5: error: [frontend 'fe'] 'option frob': unknown option")
        #expect(errors[2] == "t.cfg:8: error: [backend 'be'] 'server': weight 300 for server 'a' is outside 0...256")
        #expect(errors[3] == "t.cfg:9: error: [backend 'be'] 'server': unknown server parameter 'frob' for server 'b'")
    }

    @Test func unsupportedButValidHAProxyKeywordsSaySoInsteadOfBeingIgnored() {
        #expect(Self.errors(Self.valid + "  balance hash hdr(host)\n").first?.contains("fetch 'hdr' is not supported") == true)
        #expect(Self.errors(Self.valid + "  balance random(0)\n") == ["t.cfg:6: error: [backend 'be'] 'balance': 'random(0)': expected random(<draws>) with 1 to 100 draws"])
        #expect(Self.errors(Self.valid + "  server b 10.0.0.2:80 check-proto h2\n") == ["t.cfg:6: error: [backend 'be'] 'server': server parameter 'check-proto' for server 'b' is not supported yet: multiplexer protocols are HTTP"])
        #expect(Self.errors(Self.valid + "  server b 10.0.0.2:80 namespace *\n") == ["t.cfg:6: error: [backend 'be'] 'server': 'namespace *' for server 'b' (the namespace each client's PROXY header names) is not supported yet; name one"])
        // `socks4` is read now; its address needs a port, as HAProxy's.
        #expect(Self.errors(Self.valid + "  server b 10.0.0.2:80 socks4 127.0.0.1\n") == ["t.cfg:6: error: [backend 'be'] 'server': 'socks4 127.0.0.1' for server 'b': missing port specification in '127.0.0.1' (as HAProxy)"])
        #expect(Self.errors(Self.valid + "  server b 10.0.0.2:80 socks4 127.0.0.1:1080 check-via-socks4\n").isEmpty)
    }

    /// What HAProxy 2.6 accepts in a tcp-mode file and Sluice now does too (each line passes
    /// `haproxy -c`): a Layer 7 hash falls back to round-robin with a warning, as in HAProxy;
    /// pollers, schedulers and Lua or variable sizes have no meaning for Sluice (a warning says
    /// why); HTTP-only keywords are ignored in tcp mode, as HAProxy does.
    @Test func haproxysTCPModeLeniencyIsKept() throws {
        let l7 = try Configuration.parse("defaults\n  balance url_param user\n" + Self.valid, file: "t.cfg")
        #expect(l7.configuration.backends.first?.balance == .roundRobin)
        #expect(l7.warnings.map(\.description).contains("t.cfg:2: warning: [defaults] 'balance': 'url_param user' is a Layer 7 hash, which needs 'mode http': round-robin is used instead, as HAProxy falls back to"))
        let globals = ["noepoll", "nopoll", "nogetaddrinfo", "tune.idletimer 1000", "tune.recv_enough 10000", "tune.listener.multi-queue on",
                       "tune.runqueue-depth 100", "tune.sched.low-latency on", "tune.lua.maxmem 10", "tune.vars.global-max-size 1000"]
        let parsed = try Configuration.parse("global\n" + globals.map { "  \($0)\n" }.joined() + Self.valid, file: "t.cfg")
        let warned = Set(parsed.warnings.filter { $0.description.contains("has no effect") }.compactMap(\.keyword))
        #expect(warned == Set(globals.map { String($0.split(separator: " ")[0]) }))
        let http = try Configuration.parse("defaults\n  retry-on conn-failure\n  dynamic-cookie-key k\n" + Self.valid, file: "t.cfg")
        #expect(http.warnings.filter { $0.description.contains("requires HTTP mode") }.count == 2)
        #expect(try Configuration.parse("global\n  max-spread-checks 250ms\n" + Self.valid, file: "t.cfg").configuration.global.maxSpreadChecks == .milliseconds(250))
    }

    @Test func serverStickinessAndUserTimeoutAreRead() throws {
        let c = try Configuration.parse("""
            frontend fe
              bind :80
              default_backend be
            backend be
              default-server non-stick tcp-ut 2s no-agent-check no-tfo
              server a 10.0.0.1:80
              server b 10.0.0.2:80 stick tcp-ut 500ms

            """, file: "t.cfg").configuration
        let servers = try #require(c.backends.first?.servers)
        #expect(servers.map(\.nonStick) == [true, false])
        #expect(servers.map(\.userTimeout) == [.seconds(2), .milliseconds(500)])
        #expect(Self.errors("backend be\n  server a 10.0.0.1:80 tcp-ut 0\n").first?.contains("'tcp-ut' for server 'a' must be greater than zero") == true)
    }

    @Test func harmlessLayer7LeftoversAreWarningsNamingTheLine() throws {
        let parsed = try Configuration.parse("defaults\n  option httpclose\n  timeout http-request 5s\n" + Self.valid, file: "t.cfg")
        #expect(parsed.warnings.map(\.description).filter { $0.contains("HTTP") } == [
            "t.cfg:2: warning: 'option httpclose': ignored for frontend 'fe', backend 'be': it requires HTTP mode, and these proxies run in mode tcp (as HAProxy does)",
            "t.cfg:3: warning: 'timeout http-request': ignored for frontend 'fe', backend 'be': it requires HTTP mode, and these proxies run in mode tcp (as HAProxy does)",
        ])
    }

    @Test func defaultsApplyToLaterProxiesAndANewDefaultsSectionResets() throws {
        let c = try Configuration.parse("""
            defaults
              timeout server 7s
              retries 5
            backend one
              server a 10.0.0.1:80
            defaults
              timeout connect 1s
            backend two
              server a 10.0.0.1:80
            """).configuration
        #expect(c.backend(named: "one")?.serverTimeout == .seconds(7))
        #expect(c.backend(named: "one")?.retries == 5)
        #expect(c.backend(named: "two")?.serverTimeout == nil)
        #expect(c.backend(named: "two")?.retries == 3)
        #expect(c.backend(named: "two")?.connectTimeout == .seconds(1))
    }

    @Test func passiveHealthAndSessionShutdownParameters() throws {
        let c = try Configuration.parse(Self.valid.replacingOccurrences(of: "server a 10.0.0.1:80",
            with: "server a 10.0.0.1:80 check observe layer4 error-limit 5 on-error mark-down on-marked-down shutdown-sessions on-marked-up shutdown-backup-sessions")).configuration
        let server = try #require(c.backend(named: "be")?.servers.first)
        #expect(server.observeLayer4)
        #expect(server.errorLimit == 5)
        #expect(server.onError == .markDown)
        #expect(server.shutdownSessionsWhenDown)
        #expect(server.shutdownBackupSessionsWhenUp)
        #expect(Self.errors(Self.valid + "  server b 10.0.0.2:80 observe layer7\n") == ["t.cfg:6: error: [backend 'be'] 'server': 'observe layer7' for server 'b' needs HTTP; Sluice observes layer4 only"])
        #expect(Self.errors(Self.valid + "  tcp-check send x\n  tcp-check connect port 1\n") == ["t.cfg:7: error: [backend 'be'] 'tcp-check connect': is supported only as the first tcp-check rule (one connection per check)"])
    }

    @Test func timeUnitsFollowHAProxy() throws {
        let cases: [(String, Duration)] = [("250", .milliseconds(250)), ("250ms", .milliseconds(250)), ("100us", .microseconds(100)),
                                           ("3s", .seconds(3)), ("2m", .seconds(120)), ("1h", .seconds(3600)), ("1d", .seconds(86400))]
        for (text, expected) in cases {
            #expect(try ValueParser.time(text).get() == expected)
        }
        #expect(throws: ValueError.self) { try ValueParser.time("s").get() }
    }

    @Test func quotingEscapingAndCommentsFollowHAProxy() throws {
        let env: (String) -> String? = { $0 == "PORT" ? "8080" : nil }
        #expect(try Tokenizer.words("  server a 10.0.0.1:80 # a comment", environment: env) == ["server", "a", "10.0.0.1:80"])
        #expect(try Tokenizer.words(#"tcp-check send "PING\r\n""#, environment: env) == ["tcp-check", "send", "PING\r\n"])
        #expect(try Tokenizer.words(#"x 'single $PORT \n' "double $PORT" "${PORT}x""#, environment: env) == ["x", #"single $PORT \n"#, "double 8080", "8080x"])
        #expect(try Tokenizer.words(##"a\ b c\#d"##, environment: env) == ["a b", "c#d"])
        #expect(try Tokenizer.words(#"pre"quoted part"post"#, environment: env) == ["prequoted partpost"])
        #expect(try Tokenizer.words(#"hex \x41\x42"#, environment: env) == ["hex", "AB"])
        #expect(throws: Tokenizer.Failure.unterminatedQuote("\"")) { try Tokenizer.words(#"a "unterminated"#, environment: env) }
        #expect(Self.errors(Self.valid + #"  server b "10.0.0.2:80"# + "\n") == ["t.cfg:6: error: [backend 'be'] unterminated double quote"])
    }
}
