import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

extension Loopback {
/// PROXY protocol v2 TLVs both ways and `unique-id-format`, side by side with HAProxy 2.6: what a
/// server receives with `proxy-v2-options`, what `fc_pp_authority`/`fc_pp_unique_id` read from a
/// client's header, the unique ID in rules, logs and the header, and the headers a bad TLV makes
/// invalid.
@Suite struct ProxyProtocolTLVTests {
    /// A client's v2 header from 10.0.0.1:1234 to 10.0.0.2:443 with `tlvs` after the addresses.
    static func clientHeader(_ tlvs: [(UInt8, [UInt8])]) -> [UInt8] {
        var body: [UInt8] = [10, 0, 0, 1, 10, 0, 0, 2, 0x04, 0xD2, 0x01, 0xBB]
        for (type, value) in tlvs { body += [type, UInt8(value.count >> 8), UInt8(value.count & 0xFF)] + value }
        return ProxyProtocol.signature + [0x21, 0x11, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
    }

    static func config(port: Int, server: Int, log: Int) -> String {
        """
        global
          log 127.0.0.1:\(log) format raw local0 info
        \(tcpDefaults(client: "5s", server: "5s"))
        frontend f
          bind 127.0.0.1:\(port) accept-proxy
          log global
          unique-id-format %{+X}o\\ %ci:%cp_%fi_%[var(sess.v)]_%b_%ts
          tcp-request content set-var(sess.v) str(hello)
          tcp-request content set-var(sess.u) unique-id
          log-format "id=%ID u=%[var(sess.u)] a=%[fc_pp_authority] p=%[fc_pp_unique_id] same=%[unique-id]"
          default_backend b
        backend b
          server a 127.0.0.1:\(server) send-proxy-v2 proxy-v2-options crc32c,unique-id,ssl,authority,cert-cn

        """
    }

    /// What the server receives and what is logged, for one proxy.
    static func run(haproxy: Bool) throws -> (received: [UInt8], log: String) {
        let capture = try CaptureServer()
        let logs = try SyslogReceiver()
        defer { logs.stop() }
        let contender = try Contender(haproxy: haproxy) { config(port: $0, server: capture.port, log: logs.port) }
        defer { contender.stop() }
        let client = try Net.connect(contender.port)
        defer { close(client) }
        try Net.sendAll(client, clientHeader([(0x02, Array("example.com".utf8)), (0x05, Array("upstream-42".utf8))]) + Array("payload".utf8))
        shutdown(client, Int32(SHUT_WR))
        let server = try capture.accept()
        var received: [UInt8] = []
        while !received.reversed().starts(with: Array("payload".utf8).reversed()) { received += try Net.read(server, count: 1) }
        close(server)
        _ = try? Net.readToEnd(client)
        return (received, try logs.wait(for: 1).joined())
    }

    /// `proxy-v2-options crc32c,unique-id,ssl,authority,cert-cn`: the same bytes as HAProxy's (the
    /// addresses come from the client's own header, so nothing differs between the runs), a
    /// checksum that verifies, the client's authority passed on, the unique ID built once and the
    /// same in the rule's variable, the header and the log line; `cert-cn` adds nothing without TLS.
    @Test func theV2OptionsAndTheUniqueIDAreHAProxys() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let theirs = try Self.run(haproxy: true)
        let ours = try Self.run(haproxy: false)
        #expect(ours.received == theirs.received, "ours \(ours.received.map { String($0, radix: 16) }) theirs \(theirs.received.map { String($0, radix: 16) })")
        #expect(ours.log == theirs.log)
        let id = "0A000001:04D2_0A000002_hello_f_--"
        #expect(ours.log.contains("id=\(id) u=\(id) a=example.com p=upstream-42 same=\(id)"), "\(ours.log)")
        let parsed = ours.received.withUnsafeBytes { ProxyProtocol.parse($0) }
        guard case .header(let header) = parsed else { Issue.record("the server's header did not parse: \(parsed)"); return }
        #expect(header.authority == Array("example.com".utf8))
        #expect(header.uniqueID == Array(id.utf8))
        #expect(header.source == SocketAddress(ip: "10.0.0.1", port: 1234))
        // The SSL TLV: type 0x20, 5 bytes, client flags 0 and verify 0 (not TLS).
        #expect(ours.received[(header.length - 8)..<header.length].elementsEqual([0x20, 0, 5, 0, 0, 0, 0, 0]))
    }

    /// A client header whose TLVs HAProxy refuses (checksum off by one bit, a CRC32c of 3 bytes,
    /// a TLV running past the header, an authority of 256 bytes) is refused by Sluice too: the
    /// server never sees the session; a good one with an unknown TLV type goes through.
    @Test func clientHeadersWithBadTLVsAreRefusedLikeHAProxy() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        var good = Self.clientHeader([(0x03, [0, 0, 0, 0]), (0xE0, [1, 2, 3])])
        let crc = CRC32C.of(good)
        good.replaceSubrange(31..<35, with: [UInt8(crc >> 24), UInt8((crc >> 16) & 0xFF), UInt8((crc >> 8) & 0xFF), UInt8(crc & 0xFF)])
        var flipped = good
        flipped[34] ^= 1
        var overrun = Self.clientHeader([(0x02, Array("a".utf8))])
        overrun[overrun.count - 2] = 9  // the authority claims 9 bytes, 1 follows
        let cases: [(String, [UInt8], Bool)] = [
            ("good", good, true), ("checksum", flipped, false), ("short CRC32c", Self.clientHeader([(0x03, [0, 0, 0])]), false),
            ("overrun", overrun, false), ("long authority", Self.clientHeader([(0x02, [UInt8](repeating: 0x61, count: 256))]), false),
            ("long unique ID", Self.clientHeader([(0x05, [UInt8](repeating: 0x61, count: 129))]), false),
        ]
        let echo = try TestServer(.echo)
        defer { echo.stop() }
        for haproxy in [true, false] {
            let contender = try Contender(haproxy: haproxy) {
                "\(tcpDefaults(client: "2s", server: "2s"))listen l\n  bind 127.0.0.1:\($0) accept-proxy\n  server e 127.0.0.1:\(echo.port)\n"
            }
            defer { contender.stop() }
            let listener = contender.port
            for (name, header, passes) in cases {
                let client = try Net.connect(listener)
                defer { close(client) }
                try Net.sendAll(client, header + Array("ping".utf8))
                shutdown(client, Int32(SHUT_WR))
                let answer = (try? Net.readToEnd(client)) ?? []
                #expect(answer == (passes ? Array("ping".utf8) : []), "\(haproxy ? "haproxy" : "sluice"): \(name)")
            }
        }
    }
}
}
