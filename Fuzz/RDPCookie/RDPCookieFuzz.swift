// libFuzzer target `RDPCookie`: the RDP cookie reader behind `req.rdp_cookie`, `balance rdp-cookie`
// and `persist rdp-cookie` (a client's X.224 Connection Request). Built (with the others, into one
// binary: Fuzz/Driver.swift) and run by scripts/fuzz; seeds in corpus/.
func fuzzRDPCookie(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buffer = UnsafeRawBufferPointer(start: data, count: size)
    for name in [nil, Array("mstshash".utf8)] {
        if case .value(let range) = RDPCookie.find(buffer, name: name) {
            precondition(range.lowerBound >= 11 && range.upperBound + 2 <= size, "a value outside the request")
        }
    }
    if let token = RDPCookie.routingToken(buffer, name: Array("msts".utf8)) {
        precondition((0...65535).contains(token.port), "a port out of range")
    }
    return 0
}
