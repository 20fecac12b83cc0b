// libFuzzer target `ProxyHeader`: the PROXY-protocol header parser behind `bind … accept-proxy`.
// Built (with the others, into one binary: Fuzz/Driver.swift) and run by scripts/fuzz; seeds in corpus/.
func fuzzProxyHeader(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buffer = UnsafeRawBufferPointer(start: data, count: size)
    if case .header(let header) = ProxyProtocol.parse(buffer) {
        precondition(header.length <= size, "a header longer than the input")
    }
    return 0
}
