import Foundation
import Testing
@testable import Sluice

/// DNS discovery without sockets: the `resolvers` section and `server-template` as read, the DNS
/// wire format both ways (hostile messages included), and which server takes which address.
struct DiscoveryTests {
    // MARK: Configuration

    static let section = """
        resolvers dns
          nameserver ns1 127.0.0.1:53
          nameserver ns2 tcp@[::1]:5353
          resolve_retries 5
          timeout resolve 2s
          timeout retry 500ms
          hold valid 3s
          hold nx 7s
          hold obsolete 4s
          accepted_payload_size 4096

        """

    @Test func resolversSectionIsReadWithHAProxysDefaultsAndRanges() throws {
        let parsed = try Configuration.parse(Self.section + """
            resolvers other
              nameserver a 10.0.0.53
            frontend fe
              bind :80
              default_backend be
            backend be
              server-template web 2-4 app.local:8080 check resolvers dns init-addr none resolve-opts allow-dup-ip,ignore-weight resolve-net 10.0.0.0/8,fd00::/8
              server one one.local:80 resolvers other resolve-prefer ipv4
              server two two.local:80

            """, file: "t.cfg")
        let c = parsed.configuration
        #expect(c.resolvers.map(\.name) == ["dns", "other"])
        let dns = c.resolvers[0]
        #expect(dns.nameservers == [.init(name: "ns1", address: "127.0.0.1", port: 53, overTCP: false),
                                    .init(name: "ns2", address: "::1", port: 5353, overTCP: true)])
        #expect(dns.retries == 5 && dns.resolveTimeout == .seconds(2) && dns.retryTimeout == .milliseconds(500))
        #expect(dns.holdValid == .seconds(3) && dns.holdNX == .seconds(7) && dns.holdObsolete == .seconds(4))
        #expect(dns.holdRefused == .seconds(30) && dns.holdTimeout == .seconds(30) && dns.holdOther == .seconds(30))
        #expect(dns.acceptedPayloadSize == 4096)
        #expect(c.resolvers[1].nameservers.first?.port == 53)
        let servers = try #require(c.backend(named: "be")).servers
        #expect(servers.map(\.name) == ["web2", "web3", "web4", "one", "two"])
        #expect(servers[0].templatePrefix == "web" && servers[3].templatePrefix == nil)
        #expect(servers[0].endpoint == Endpoint(host: "app.local", port: 8080))
        #expect(servers[0].resolvers == "dns" && servers[0].initAddress == [.none] && servers[0].check != nil)
        #expect(servers[0].allowDuplicateAddress && servers[0].ignoreSRVWeight)
        #expect(servers[0].resolveNetworks == ["10.0.0.0/8", "fd00::/8"])
        // HAProxy prefers IPv6 for names its resolvers look up, IPv4 through libc at start.
        #expect(servers[0].preferIPv6 && !servers[3].preferIPv6 && !servers[4].preferIPv6)
    }

    @Test func parseResolvConfAddsTheSystemsNameServersInPlace() throws {
        let text = """
            resolvers sys
              nameserver first 10.0.0.1
              parse-resolv-conf
              nameserver last 10.0.0.9:5353
            frontend fe
              bind :80
              default_backend be
            backend be
              server a a.local:80 resolvers sys

            """
        let resolvConf = "# generated\nsearch example.org\nnameserver 192.0.2.53\nnameserver 2001:db8::53\noptions ndots:2\nnameserver not-an-ip\n"
        let parsed = try Configuration.parse([(file: "t.cfg", text: text)], readFile: { path in
            path == "/etc/resolv.conf" ? .success(resolvConf) : .failure(SystemError(code: ENOENT, call: "open"))
        })
        #expect(parsed.configuration.resolvers.first?.nameservers.map { "\($0.name)=\($0.address):\($0.port)" }
            == ["first=10.0.0.1:53", "192.0.2.53=192.0.2.53:53", "2001:db8::53=2001:db8::53:53", "last=10.0.0.9:5353"])
        // `resolvers default` without such a section: HAProxy's implicit one, from /etc/resolv.conf.
        let implicit = try Configuration.parse([(file: "t.cfg", text: text.replacingOccurrences(of: "a.local:80 resolvers sys", with: "a.local:80 resolvers default"))],
                                               readFile: { _ in .success(resolvConf) })
        #expect(implicit.configuration.resolvers.map(\.name) == ["sys", "default"])
        #expect(implicit.configuration.resolvers.last?.nameservers.map(\.address) == ["192.0.2.53", "2001:db8::53"])
    }

    @Test func discoveryMistakesNameFileLineAndKeywordAllInOneRun() {
        let errors = ParserTests.errors("""
            resolvers empty
              hold valid 10s
            resolvers dns
              nameserver ns1 dns.example:53
              nameserver ns2 127.0.0.1:99999
              hold forever 10s
              timeout resolve 0s
              accepted_payload_size 100
              frobnicate
            frontend fe
              bind :80
              default_backend be
            backend be
              server-template web 5-2 app.local:80
              server-template api x app.local:80
              server a a.local:80 resolvers nowhere
              server b b.local:80 resolvers dns init-addr libc,dns
              server c c.local:80 resolvers dns resolve-opts prevent-dup-ip,frob resolve-net 10.0.0.0/33

            """)
        #expect(errors == [
            "t.cfg:4: error: [resolvers 'dns'] 'nameserver': 'dns.example:53': 'dns.example' is not an IP address (a name server is given by address)",
            "t.cfg:5: error: [resolvers 'dns'] 'nameserver': '127.0.0.1:99999': port '99999' is not 1...65535",
            "t.cfg:6: error: [resolvers 'dns'] 'hold': expected 'hold nx|refused|timeout|other|valid|obsolete <time>'",
            "t.cfg:7: error: [resolvers 'dns'] 'timeout resolve': must be greater than zero",
            "t.cfg:8: error: [resolvers 'dns'] 'accepted_payload_size': accepted_payload_size 100 is outside 512...65535",
            "t.cfg:9: error: [resolvers 'dns'] 'frobnicate': unknown keyword in a resolvers section; Sluice reads nameserver, parse-resolv-conf, resolve_retries, timeout resolve|retry, hold <status> and accepted_payload_size",
            "t.cfg:14: error: [backend 'be'] 'server-template': '5-2' is neither a number of servers (1 or more) nor a range '<low>-<high>' with low <= high",
            "t.cfg:15: error: [backend 'be'] 'server-template': 'x' is neither a number of servers (1 or more) nor a range '<low>-<high>' with low <= high",
            "t.cfg:17: error: [backend 'be'] 'server': 'init-addr libc,dns' for server 'b': 'dns' is not libc, last, none or an IP address",
            "t.cfg:18: error: [backend 'be'] 'server': 'resolve-opts prevent-dup-ip,frob' for server 'c': 'frob' is not allow-dup-ip, prevent-dup-ip or ignore-weight",
            "t.cfg:18: error: [backend 'be'] 'server': 'resolve-net 10.0.0.0/33' for server 'c': '10.0.0.0/33' is not an IPv4 or IPv6 network such as 10.0.0.0/8",
            "t.cfg:1: error: [resolvers 'empty'] 'resolvers': has no nameserver: add 'nameserver <name> <ip>[:port]' or 'parse-resolv-conf'",
            "t.cfg:16: error: [backend 'be'] 'server': 'resolvers nowhere' for server 'a': no resolvers section named 'nowhere'",
        ])
    }

    // MARK: The wire format

    /// A response as a name server would build it, with compression pointers to the question.
    static func response(id: UInt16, name: String, type: DNSRecordType, rcode: UInt8 = 0, truncated: Bool = false,
                         answers: [(type: DNSRecordType, rdata: [UInt8])], additional: [(name: [UInt8], type: DNSRecordType, rdata: [UInt8])] = []) -> [UInt8] {
        var out = DNSMessage.query(id: id, name: name, type: type) ?? []
        out[2] = 0x81 | (truncated ? 0x02 : 0)
        out[3] = 0x80 | rcode
        out[7] = UInt8(answers.count)
        out[11] = UInt8(additional.count)
        for answer in answers {
            out += [0xC0, 12, 0, UInt8(answer.type.rawValue), 0, 1, 0, 0, 0, 60, 0, UInt8(answer.rdata.count)] + answer.rdata
        }
        for extra in additional {
            out += extra.name + [0, UInt8(extra.type.rawValue), 0, 1, 0, 0, 0, 60, 0, UInt8(extra.rdata.count)] + extra.rdata
        }
        return out
    }

    @Test func queriesAreRecursiveWithEDNSWhenAskedAndNamesAreChecked() throws {
        let query = try #require(DNSMessage.query(id: 0x1234, name: "App.Example.", type: .aaaa, payloadSize: 4096))
        #expect(Array(query[0..<12]) == [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1])
        #expect(Array(query[12..<29]) == [3] + Array("App".utf8) + [7] + Array("Example".utf8) + [0, 0, 28, 0, 1])
        #expect(Array(query[29...]) == [0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0])
        #expect(DNSMessage.query(id: 1, name: "a.example", type: .a)?.count == 12 + 11 + 4, "no OPT record at 512")
        #expect(DNSMessage.query(id: 1, name: "a..example", type: .a) == nil)
        #expect(DNSMessage.query(id: 1, name: String(repeating: "x", count: 64) + ".example", type: .a) == nil)
        #expect(DNSMessage.query(id: 1, name: Array(repeating: String(repeating: "x", count: 60), count: 5).joined(separator: "."), type: .a) == nil)
    }

    @Test func answersFollowCNAMEsAndIgnoreOtherNames() throws {
        // app.example CNAME real.example; real.example A 10.0.0.7; other.example A 10.9.9.9.
        var message = DNSMessage.query(id: 7, name: "app.example", type: .a) ?? []
        message[2] = 0x81; message[3] = 0x80; message[7] = 3
        let real: [UInt8] = [4] + Array("real".utf8) + [0xC0, 16]  // "real" + pointer to "example"
        message += [0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, UInt8(real.count)] + real
        let realOffset = message.count - real.count
        message += [0xC0, UInt8(realOffset), 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 7]
        message += [5] + Array("other".utf8) + [0xC0, 16, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 9, 9, 9]
        let response = try DNSMessage.parse(message).get()
        #expect(response.questionName == "app.example" && response.rcode == 0 && !response.truncated)
        #expect(response.addresses(of: "APP.example.", type: .a) == [[10, 0, 0, 7]])
        #expect(response.hasAlias(for: "app.example"))
        #expect(response.addresses(of: "app.example", type: .aaaa).isEmpty)
    }

    @Test func srvAnswersTakeTheirAddressesFromTheAdditionalSection() throws {
        let target: [UInt8] = [2] + Array("t1".utf8) + [0xC0, 20]  // "t1" + a pointer to the question's "x"
        let message = Self.response(id: 9, name: "_a._tcp.x", type: .srv,
                                    answers: [(.srv, [0, 1, 0x02, 0x58, 0x1F, 0x90] + target)],
                                    additional: [([2] + Array("t1".utf8) + [1] + Array("x".utf8) + [0], .a, [127, 0, 0, 5])])
        let response = try DNSMessage.parse(message).get()
        let services = response.services(of: "_a._tcp.x")
        #expect(services.count == 1)
        #expect(services.first?.port == 8080 && services.first?.weight == 600 && services.first?.target == "t1.x")
        #expect(services.first?.addresses == [[127, 0, 0, 5]])
    }

    /// Real answers from dnsmasq (the fuzz target's seeds, made by `Fuzz/DNSAnswer/capture`).
    @Test func realAnswersFromDnsmasqReadAsTheyWereMeant() throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/DNSAnswer/corpus")
        func read(_ name: String) throws -> DNSResponse { try DNSMessage.parse(Array(try Data(contentsOf: corpus.appendingPathComponent(name)))).get() }
        func ips(_ r: DNSResponse, _ name: String, _ type: DNSRecordType) -> Set<String> {
            Set(r.addresses(of: name, type: type).compactMap { IPAddress(bytes: $0)?.description })
        }
        #expect(ips(try read("a-two-addresses"), "app.test", .a) == ["10.0.0.1", "10.0.0.2"])
        #expect(ips(try read("a-edns"), "app.test", .a) == ["10.0.0.1", "10.0.0.2"])
        #expect(ips(try read("aaaa"), "app.test", .aaaa) == ["fd00::1"])
        let cname = try read("cname-to-a")
        #expect(cname.hasAlias(for: "www.test") && ips(cname, "www.test", .a) == ["10.0.0.1", "10.0.0.2"])
        let nodata = try read("nodata")
        #expect(nodata.rcode == 0 && nodata.answers.isEmpty)
        #expect(try read("nxdomain").rcode == 3)
        let srv = try read("srv-with-additional").services(of: "_app._tcp.svc.test")
        #expect(Set(srv.map { "\($0.target):\($0.port) p\($0.priority) w\($0.weight) \($0.addresses.compactMap { IPAddress(bytes: $0)?.description })" })
            == ["t1.test:8080 p0 w100 [\"10.0.0.5\"]", "t2.test:8081 p10 w600 [\"10.0.0.6\"]"])
    }

    @Test func hostileMessagesAreErrorsNeverTraps() throws {
        let good = Self.response(id: 1, name: "a.example", type: .a, answers: [(.a, [10, 0, 0, 1])])
        #expect((try? DNSMessage.parse(good).get())?.answers.count == 1)
        // Every truncation of a good message is refused, not read past its end.
        for length in 0..<good.count {
            #expect((try? DNSMessage.parse(Array(good[0..<length])).get()) == nil, "truncated at \(length)")
        }
        // A pointer to itself, a forward pointer, a label type 01, an A record of 5 bytes, a query.
        var loop = good
        loop[good.count - 16] = 0xC0; loop[good.count - 15] = UInt8(good.count - 16)
        #expect(DNSMessage.parse(loop).failure == .malformed("compression pointer forward"))
        var forward = good
        forward[good.count - 15] = 0xFF
        #expect(DNSMessage.parse(forward).failure != nil)
        var labelType = good
        labelType[12] = 0x40
        #expect(DNSMessage.parse(labelType).failure == .malformed("label type 1"))
        var longA = Self.response(id: 1, name: "a.example", type: .a, answers: [(.a, [10, 0, 0, 1, 9])])
        #expect(DNSMessage.parse(longA).failure == .malformed("A record of 5 bytes"))
        longA[2] = 0x01
        #expect(DNSMessage.parse(longA).failure == .malformed("not a response"))
        // A name of 128 one-byte labels is over 255 bytes.
        var long: [UInt8] = [0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0]
        for _ in 0..<128 { long += [1, 0x61] }
        long += [0, 0, 1, 0, 1]
        #expect(DNSMessage.parse(long).failure == .malformed("name longer than 255 bytes"))
        // A label with a dot or a byte outside printable ASCII (found by the fuzzer: replaced by
        // U+FFFD, such bytes made the text name longer than 255 bytes).
        var dotted = good
        dotted[13] = UInt8(ascii: ".")
        #expect(DNSMessage.parse(dotted).failure == .malformed("a label with a byte a host name cannot have"))
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fuzz/DNSAnswer/corpus/regression-non-ascii-label")
        #expect(DNSMessage.parse(Array(try Data(contentsOf: corpus))).failure == .malformed("a label with a byte a host name cannot have"))
        // Random bytes: any outcome but a trap.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let bytes = (0..<Int.random(in: 0...80, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = DNSMessage.parse(bytes)
        }
    }

    // MARK: Who takes which address

    static func targets(_ ips: String...) -> [DNSTarget] { ips.map { DNSTarget(ip: IPAddress($0)!) } }

    @Test func aServerKeepsItsAddressWhileOfferedAndPrefersResolveNet() {
        let offered = Self.targets("10.0.0.1", "192.168.1.5", "10.0.0.2")
        #expect(AddressAssignment.pick(current: Self.targets("10.0.0.2")[0], offered: offered, networks: [], taken: [])?.ip == IPAddress("10.0.0.2"))
        #expect(AddressAssignment.pick(current: Self.targets("10.9.9.9")[0], offered: offered, networks: [], taken: [])?.ip == IPAddress("10.0.0.1"))
        #expect(AddressAssignment.pick(current: nil, offered: offered, networks: [IPNetwork("192.168.0.0/16")!], taken: [])?.ip == IPAddress("192.168.1.5"))
        // prevent-dup-ip: another server of the backend holds 10.0.0.1.
        #expect(AddressAssignment.pick(current: nil, offered: offered, networks: [], taken: [IPAddress("10.0.0.1")!])?.ip == IPAddress("192.168.1.5"))
        #expect(AddressAssignment.pick(current: nil, offered: Self.targets("10.0.0.1"), networks: [], taken: [IPAddress("10.0.0.1")!]) == nil)
    }

    @Test func templateSlotsKeepTheirAddressesAndFreeSlotsTakeNewOnes() {
        let a = Self.targets("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6")
        // Scale up from two to five: the two keep their slots, three new ones fill the rest in order.
        let up = AddressAssignment.fill(slots: [a[1], nil, a[0], nil, nil], offered: [a[0], a[1], a[2], a[3], a[4]])
        #expect(up.slots == [a[1], a[2], a[0], a[3], a[4]] && up.leftOut == 0)
        // Down to two: the others empty; the survivors do not move.
        let down = AddressAssignment.fill(slots: up.slots, offered: [a[3], a[1]])
        #expect(down.slots == [a[1], nil, nil, a[3], nil])
        // More addresses than slots: what fits, and a count of the rest.
        let over = AddressAssignment.fill(slots: [nil, nil], offered: a)
        #expect(over.slots == [a[0], a[1]] && over.leftOut == 4)
        // hold obsolete: a slot whose address left the answer keeps it while it is in `kept`.
        let held = AddressAssignment.fill(slots: [a[0], a[1]], offered: [a[1], a[2]], kept: [a[0]])
        #expect(held.slots == [a[0], a[1]] && held.leftOut == 1)
        // SRV: the same address on two ports is two places; a new weight stays in its slot.
        let srv = [DNSTarget(ip: a[0].ip, port: 80, srvWeight: 0), DNSTarget(ip: a[0].ip, port: 81, srvWeight: 65535)]
        let filled = AddressAssignment.fill(slots: [nil, DNSTarget(ip: a[0].ip, port: 81, srvWeight: 1)], offered: srv)
        #expect(filled.slots == [srv[0], srv[1]])
        #expect(srv.map(\.serverWeight) == [1, 256])
    }
}

extension Result {
    var failure: Failure? { if case .failure(let e) = self { e } else { nil } }
}
