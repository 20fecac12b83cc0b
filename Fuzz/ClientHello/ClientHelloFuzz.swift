// libFuzzer target `ClientHello`: the TLS ClientHello parsers behind req.ssl_sni, req.ssl_alpn, req.ssl_ver and
// req.ssl_hello_type. Built (with the others, into one binary: Fuzz/Driver.swift) and run by scripts/fuzz; seeds in corpus/ (real hellos, see capture).
func fuzzClientHello(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buffer = UnsafeRawBufferPointer(start: data, count: size)
    if case .value(let hello) = TLSInspection.clientHello(buffer) {
        // A value must be made of bytes that arrived: a name is never longer than the input.
        precondition((hello.serverName?.count ?? 0) < size && hello.protocols.allSatisfy { $0.count < size })
    }
    _ = TLSInspection.helloType(buffer)
    _ = TLSInspection.version(buffer)
    return 0
}
