import Testing
@testable import Sluice

struct AddressTests {
    @Test(arguments: [
        ("127.0.0.1:80", Endpoint(host: "127.0.0.1", port: 80)),
        ("[::1]:80", Endpoint(host: "::1", port: 80)),
        ("::1:80", Endpoint(host: "::1", port: 80)),
        ("*:80", Endpoint(host: nil, port: 80)),
        (":80", Endpoint(host: nil, port: 80)),
        ("[::]:443", Endpoint(host: "::", port: 443)),
        ("api.internal:8080", Endpoint(host: "api.internal", port: 8080)),
        ("ipv4@1.2.3.4:80", Endpoint(host: "1.2.3.4", port: 80)),
        ("ipv4@:80", Endpoint(host: nil, port: 80)),
        ("ipv6@:80", Endpoint(host: "::", port: 80)),
        ("ipv6@[::1]:80", Endpoint(host: "::1", port: 80)),
    ])
    func endpointFormsHAProxyAccepts(text: String, expected: Endpoint) throws {
        #expect(try ValueParser.endpoint(text, allowZeroPort: false).get() == expected)
    }

    @Test(arguments: [
        ("127.0.0.1", "has no port"),
        ("127.0.0.1:0", "outside 1...65535"),
        ("127.0.0.1:70000", "outside 1...65535"),
        ("127.0.0.1:http", "not a port number"),
        ("300.1.1.1:80", "not a valid IPv4 address"),
        ("[::1:80", "missing ']'"),
        ("[fe80::zz]:80", "not a valid IPv6 address"),
        ("/run/app.sock", "a UNIX socket cannot be used here"),
        ("unix@/run/app.sock", "a UNIX socket cannot be used here"),
        ("fd@3", "address prefixes other than ipv4@, ipv6@, unix@ and abns@"),
        ("ipv4@::1:80", "is not an IPv4 address"),
        ("ipv6@1.2.3.4:80", "is not an IPv6 address"),
        ("1.2.3.4:80-90", "port ranges"),
    ])
    func malformedEndpointsSayWhatIsWrong(text: String, fragment: String) {
        switch ValueParser.endpoint(text, allowZeroPort: false) {
        case .success(let e): Issue.record("'\(text)' parsed as \(e)")
        case .failure(let e): #expect(e.message.contains(fragment), "\(e.message)")
        }
    }

    @Test func socketAddressesRoundTripAndCompare() throws {
        let v4 = try #require(SocketAddress(ip: "127.0.0.1", port: 8080))
        #expect(v4.description == "127.0.0.1:8080")
        #expect(v4.port == 8080)
        let v6 = try #require(SocketAddress(ip: "::1", port: 443))
        #expect(v6.description == "[::1]:443")
        #expect(v4 == SocketAddress(ip: "127.0.0.1", port: 8080))
        #expect(v4 != v4.with(port: 8081))
        #expect(SocketAddress(ip: "localhost", port: 1) == nil)
        #expect(try SocketAddress.resolve(host: "localhost", port: 1).ip == "127.0.0.1")
    }
}
