// libFuzzer target: the PROXY-protocol header parser behind `bind … accept-proxy`.
// Built and run by scripts/fuzz; seeds in corpus/.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buffer = UnsafeRawBufferPointer(start: data, count: size)
    if case .header(let header) = ProxyProtocol.parse(buffer) {
        precondition(header.length <= size, "a header longer than the input")
    }
    return 0
}
