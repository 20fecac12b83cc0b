// libFuzzer target `DNSAnswer`: the DNS answer parser of Sluice's resolver (`resolvers` sections), and what
// the resolver reads from a parsed answer. Built (with the others, into one binary: Fuzz/Driver.swift) and run by scripts/fuzz; seeds in corpus/
// (real dnsmasq answers, made by Fuzz/DNSAnswer/capture).
func fuzzDNSAnswer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard case .success(let response) = DNSMessage.parse(bytes) else { return 0 }
    precondition(response.questionName.utf8.count <= DNSMessage.maxNameLength, "a name over 255 bytes")
    for type in [DNSRecordType.a, .aaaa] {
        for address in response.addresses(of: response.questionName, type: type) {
            precondition(address.count == (type == .a ? 4 : 16), "an address of \(address.count) bytes")
        }
    }
    for service in response.services(of: response.questionName) {
        precondition(service.addresses.allSatisfy { $0.count == 4 || $0.count == 16 }, "an SRV address of the wrong size")
    }
    _ = response.hasAlias(for: response.questionName)
    return 0
}
