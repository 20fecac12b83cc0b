// One libFuzzer binary for every target in Fuzz/: they share most of their sources (the
// configuration's types), so scripts/fuzz compiles them once instead of once per target.
// SLUICE_FUZZ_TARGET names the target a run feeds (the folder's name).
#if canImport(Glibc)
import Glibc
#endif

let targets: [String: @Sendable (UnsafePointer<UInt8>, Int) -> CInt] = [
    "CheckReply": fuzzCheckReply, "ClientHello": fuzzClientHello, "Configuration": fuzzConfiguration,
    "DNSAnswer": fuzzDNSAnswer, "MQTT": fuzzMQTT, "ProxyHeader": fuzzProxyHeader, "RDPCookie": fuzzRDPCookie, "RuntimeCommand": fuzzRuntimeCommand,
]

let chosen: @Sendable (UnsafePointer<UInt8>, Int) -> CInt = {
    let name = getenv("SLUICE_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = targets[name] else {
        fatalError("SLUICE_FUZZ_TARGET must name one of \(targets.keys.sorted().joined(separator: ", ")); it is '\(name)'")
    }
    return target
}()

/// Before the first input: statics a target builds lazily (its fixed judges, compiled regexes) are
/// made here, where LeakSanitizer does not count them as an input's leak.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    let warmUp: [UInt8] = [0, 0]
    _ = warmUp.withUnsafeBufferPointer { chosen($0.baseAddress!, $0.count) }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt { chosen(data, size) }

/// The configuration names the reactor engine; the reactors themselves are not built into the
/// fuzz binary, so the type stands alone here (the same cases as `Reactor/Reactor.swift`).
public enum IOEngine: String, Hashable, Sendable, CaseIterable {
    case epoll
    case ioUring = "io_uring"
}
