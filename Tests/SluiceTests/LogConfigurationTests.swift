import Testing
@testable import Sluice

/// `log` lines as HAProxy 2.6 reads them: targets, formats, levels, inheritance, and every mistake
/// told with its line.
struct LogConfigurationTests {
    static func frontendLogging(_ text: String) throws -> SessionLogging? {
        try Configuration.parse(text, file: "t.cfg").configuration.frontends.first?.logging
    }

    static let proxies = """
        frontend fe
          bind :80
          default_backend be
        backend be
          server a 127.0.0.1:8080
        """

    @Test func targetsFormatsAndLevelsAreReadAsHAProxyDoes() throws {
        let logging = try #require(try Self.frontendLogging("""
            global
              log 127.0.0.1 local0
              log [::1]:1514 len 200 format rfc5424 user info err
              log stdout format raw daemon
              log fd@2 local7 debug
              log unix@/run/log.sock local2
              log /dev/log local1 notice
              log udp@10.0.0.1:5140 format short local3
              log ::1:2514 local4
            defaults
              log global
            \(Self.proxies)
            """))
        let t = logging.targets
        #expect(t.map(\.destination) == [.udp(ip: "127.0.0.1", port: 514), .udp(ip: "::1", port: 1514), .standardOutput, .standardError,
                                         .unixDatagram(path: "/run/log.sock"), .unixDatagram(path: "/dev/log"), .udp(ip: "10.0.0.1", port: 5140),
                                         .udp(ip: "::1", port: 2514)])
        #expect(t.map(\.format) == [.local, .rfc5424, .raw, .local, .local, .local, .short, .local])
        #expect(t.map(\.facility) == [16, 1, 3, 23, 18, 17, 19, 20])
        #expect(t.map(\.maxLevel) == [7, 6, 7, 7, 7, 5, 7, 7])
        #expect(t[1].minLevel == 3 && t[1].maxLength == 200 && t[0].maxLength == 1024)
        #expect(logging.style == .connect && !logging.dontLogNull && logging.tag == "sluice")
    }

    @Test func proxiesInheritChooseOrDropTheirTargets() throws {
        let global = """
            global
              log 127.0.0.1:514 local0
              log-tag edge
            """
        // `log global` in defaults reaches every proxy; `no log` drops it.
        #expect(try Self.frontendLogging("\(global)\ndefaults\n  log global\nfrontend fe\n  no log\n  bind :80\n  default_backend be\nbackend be\n  server a 127.0.0.1:8080\n") == nil)
        // The proxy's own lines follow the global ones; its tag and options apply.
        let mixed = try #require(try Self.frontendLogging("""
            \(global)
            frontend fe
              log global
              log 10.0.0.9 local5 warning
              log-tag fe-tag
              option tcplog
              option dontlognull
              bind :80
              default_backend be
            backend be
              server a 127.0.0.1:8080
            """))
        #expect(mixed.targets.map(\.destination) == [.udp(ip: "127.0.0.1", port: 514), .udp(ip: "10.0.0.9", port: 514)])
        #expect(mixed.tag == "fe-tag" && mixed.style == .tcplog && mixed.dontLogNull)
        // No `log` at all: no logging, whatever the options.
        #expect(try Self.frontendLogging("frontend fe\n  option tcplog\n  bind :80\n  default_backend be\nbackend be\n  server a 127.0.0.1:8080\n") == nil)
        // The global tag, and `log-send-hostname` making rfc3164 the default format (not a chosen one).
        let named = try #require(try Self.frontendLogging("""
            global
              log 127.0.0.1 local0
              log 127.0.0.1 format raw local0
              log-send-hostname lb-1
              log-tag edge
            defaults
              log global
            \(Self.proxies)
            """))
        #expect(named.targets.map(\.format) == [.rfc3164, .raw] && named.tag == "edge")
        let parsed = try Configuration.parse("global\n  log-send-hostname lb-1\n", file: "t.cfg")
        #expect(parsed.configuration.global.logHostname == "lb-1")
    }

    @Test func everyMistakeIsToldWithItsLine() {
        let cases: [(String, String)] = [
            ("log ring@buf local0", "t.cfg:2: error: [global] 'log': 'ring@buf': ring buffers and stream (TCP) log servers are not supported"),
            ("log 127.0.0.1 len 50 local0", "t.cfg:2: error: [global] 'log': 'len 50': the length must be 80 to 65535"),
            ("log 127.0.0.1 format json local0", "t.cfg:2: error: [global] 'log': 'format json' is not a format"),
            ("log 127.0.0.1 local9", "t.cfg:2: error: [global] 'log': 'local9' is not a facility"),
            ("log 127.0.0.1 local0 loud", "t.cfg:2: error: [global] 'log': 'loud' is not a level"),
            ("log 127.0.0.1 local0 info err crit", "t.cfg:2: error: [global] 'log': unexpected 'crit' after the levels"),
            ("log syslog.example.com local0", "t.cfg:2: error: [global] 'log': 'syslog.example.com' is not an IP address"),
            ("log 127.0.0.1:70000 local0", "t.cfg:2: error: [global] 'log': '127.0.0.1:70000': the port must be 1 to 65535"),
            ("log 127.0.0.1 sample 1:2 local0", "t.cfg:2: error: [global] 'log': 'sample' (sending one log in n) is not supported"),
            ("log fd@3 local0", "t.cfg:2: error: [global] 'log': 'fd@3': only fd@1 (stdout) and fd@2 (stderr) are supported"),
            ("log 127.0.0.1", "t.cfg:2: error: [global] 'log': expected 'log <address>"),
        ]
        for (line, expected) in cases {
            let errors = ParserTests.errors("global\n  \(line)\n\(Self.proxies)\n")
            #expect(errors.count == 1 && errors[0].hasPrefix(expected), "\(line): \(errors)")
        }
        let negated = ParserTests.errors("defaults\n  option tcplog\nfrontend fe\n  no option tcplog\n  bind :80\n  default_backend be\nbackend be\n  server a 127.0.0.1:8080\n")
        #expect(negated.count == 1 && negated[0].contains("t.cfg:4:") && negated[0].contains("negation is not supported for option 'tcplog'"), "\(negated)")
        let global = ParserTests.errors("frontend fe\n  log global extra\n  bind :80\n  default_backend be\nbackend be\n  server a 127.0.0.1:8080\n")
        #expect(global.count == 1 && global[0].contains("t.cfg:2:"), "\(global)")
        // HAProxy 2.6: "sample fetch <req.payload(0,1)]> may not be reliably used here because it needs 'request buffer'".
        let content = ParserTests.errors("frontend fe\n  bind :80\n  log-format \"%[req.ssl_sni] %[src]\"\n  default_backend be\nbackend be\n  server a 127.0.0.1:8080\n")
        #expect(content.count == 1 && content[0].contains("t.cfg:3:") && content[0].contains("may not be reliably used here"), "\(content)")
    }

    /// HAProxy's fallback: `option httplog` in a tcp proxy logs as `option tcplog`, with its warning.
    @Test func httplogInATCPProxyFallsBackToTcplog() throws {
        let parsed = try Configuration.parse("""
            global
              log 127.0.0.1 local0
            defaults
              mode tcp
              log global
              option httplog
            \(Self.proxies)
            """, file: "t.cfg")
        #expect(parsed.configuration.frontends.first?.logging?.style == .tcplog)
        let warnings = parsed.warnings.filter { $0.keyword == "option httplog" }.map(\.description)
        #expect(warnings == ["t.cfg:6: warning: 'option httplog': not usable with frontend 'fe' (needs 'mode http'); falling back to 'option tcplog', as HAProxy"])
    }

    /// `log-format`: the last of it, `option tcplog` and `option httplog` wins (one format per
    /// proxy, as HAProxy); its variables, flags and samples compile; the options around it.
    @Test func logFormatsCompileAndReplaceEachOther() throws {
        func logging(_ lines: String, defaults: String = "") throws -> SessionLogging? {
            try Self.frontendLogging("global\n  log 127.0.0.1 local0\ndefaults\n  log global\n\(defaults)\nfrontend fe\n\(lines)\n  bind :80\n  default_backend be\nbackend be\n  server a 127.0.0.1:8080\n")
        }
        let custom = try #require(try logging("  option tcplog\n  log-format \"%ci %{+Q}b %[src,lower] %%\"\n  option logasap\n  option log-separate-errors\n  option dontlog-normal"))
        guard case .format(let format) = custom.style else { Issue.record("no format: \(custom.style)"); return }
        #expect(format.text == "%ci %{+Q}b %[src,lower] %%" && format.hasSamples && !format.waitsForEnd)
        #expect(format.items.count == 7)  // ci, separator, b, separator, sample, separator, "%"
        #expect(custom.logAsap && custom.separateErrors && custom.dontLogNormal)
        #expect(try logging("  log-format %ci\n  option tcplog")?.style == .tcplog)
        #expect(try logging("  option httplog\n  log-format %ci")?.style != .tcplog)
        // Inherited from defaults, replaced by the proxy's own line.
        #expect(try logging("", defaults: "  log-format %ci\\ %Tt")?.style != .tcplog)
        #expect(try logging("  option tcplog", defaults: "  log-format %ci")?.style == .tcplog)
        #expect(LogFormat.tcplog.waitsForEnd && !LogFormat.tcplog.hasSamples)
    }

    @Test func logFormatMistakesAreToldAsHAProxyTellsThem() throws {
        let cases: [(String, String)] = [
            ("%ci\\ %zz", "t.cfg:3: error: [frontend 'fe'] 'log-format': no such format variable 'zz'. If you wanted to emit the '%' character verbatim, you need to use '%%'"),
            ("%r", "'log-format': format variable 'r' is reserved for HTTP mode"),
            ("100%\\ done", "unexpected variable name near ' ' at position 4 line : '100% done'. Maybe you want to write a single '%', use the syntax '%%'"),
            ("%{+Q}", "parse argument modifier without variable name near '%{+Q}'"),
            ("%[src", "missing ']' after 'src'"),
            ("%[nosuchfetch]", "failed to parse sample expression <nosuchfetch>"),
            ("%ci %b", "expects only one argument, don't forget to escape spaces"),
        ]
        for (format, expected) in cases {
            let errors = ParserTests.errors("frontend fe\n  bind :80\n  log-format \(format)\n  default_backend be\nbackend be\n  server a 127.0.0.1:8080\n")
            #expect(errors.count == 1 && errors[0].contains(expected), "\(format): \(errors)")
        }
        // Backends ignore it (with HAProxy's warning); a defaults' format replaced is said.
        let parsed = try Configuration.parse("""
            defaults
              option tcplog
              log-format %ci
            frontend fe
              bind :80
              default_backend be
            backend be
              log-format %ci
              option logasap
              option tcplog
              option dontlognull
              server a 127.0.0.1:8080
            """, file: "t.cfg")
        #expect(parsed.warnings.map(\.description).filter { $0.contains("log") } == [
            "t.cfg:3: warning: [defaults] 'log-format': overrides the previous 'option tcplog' in the defaults section (as HAProxy)",
            "t.cfg:8: warning: [backend 'be'] 'log-format': ignored in a backend: sessions are logged in their frontend's format (as HAProxy)",
            "t.cfg:9: warning: [backend 'be'] 'option logasap': ignored in a backend: it applies to the frontends that log sessions (as HAProxy)",
            "t.cfg:10: warning: [backend 'be'] 'option tcplog': ignored in a backend: it applies to the frontends that log sessions (as HAProxy)",
            "t.cfg:11: warning: [backend 'be'] 'option dontlognull': ignored in a backend: it applies to the frontends that log sessions (as HAProxy)",
            "t.cfg:3: warning: [frontend 'fe'] log format ignored for frontend 'fe' since it has no log address (as HAProxy)",
        ])
    }

    /// HAProxy's `lf_text_len` and `lf_ip`: quoting, RFC 5424 escapes, `-` for nothing, hexadecimal.
    @Test func valuesAreWrittenWithTheirFlags() throws {
        func text(_ value: String, _ flags: LogFormat.Flags) -> String {
            var line = LineBuilder()
            line.append(text: Array(value.utf8), flags)
            return String(decoding: line.bytes, as: UTF8.self)
        }
        #expect(text("a\"b\\c]d", [.mandatory, .escape]) == #"a\"b\\c\]d"#)
        #expect(text("x", [.mandatory, .quote]) == #""x""#)
        #expect(text("", [.mandatory]) == "-" && text("", [.mandatory, .quote]) == #""""# && text("", []) == "")
        var line = LineBuilder()
        let address = try SocketAddress.resolve(host: "10.1.2.254", port: 443)
        line.append(ipOf: address, [.hex]); line.append(byte: 0x20)
        line.append(portOf: address, [.hex]); line.append(byte: 0x20)
        line.append(ipOf: address, [.quote]); line.append(byte: 0x20)
        line.append(hex: 0xABC, width: 4)
        #expect(String(decoding: line.bytes, as: UTF8.self) == #"0A0102FE 01BB "10.1.2.254" 0ABC"#)
    }

    /// A ring that the writer does not empty keeps `ringCapacity` lines and counts the rest:
    /// logging never waits.
    @Test func aFullRingDropsAndCounts() throws {
        let sink = LogSink()
        let route = try #require(sink.route([LogTarget(destination: .standardError, facility: 16)], tag: "t"))
        let ring = sink.makeRing()
        for n in 0..<(LogSink.ringCapacity + 5) { ring.log(route, level: 6, "line \(n)") }
        #expect(sink.dropped.load(ordering: .relaxed) == 5)
    }
}
