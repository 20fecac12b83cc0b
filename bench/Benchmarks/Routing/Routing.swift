// Content switching: what a session of a frontend with rules pays before it is routed. An IP
// lookup in a 100,000-network `-f` list (one binary search over merged intervals) and the parse of
// a real ClientHello (curl's, from Fuzz/ClientHello/corpus) for `req.ssl_sni`.
import Benchmark
import Foundation
@_spi(Benchmarks) import Sluice

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration.maxDuration = .seconds(2)
    let metrics: [BenchmarkMetric] = [.wallClock, .instructions, .mallocCountTotal]

    Benchmark("src lookup in 100,000 networks", configuration: .init(metrics: metrics, scalingFactor: .kilo)) { (benchmark: Benchmark, list: NetworkListProbe) in
        var address: UInt32 = 0x0B00_0000
        for _ in benchmark.scaledIterations {
            address &+= 2_654_435_761
            blackHole(list.contains(ipv4: address))
        }
    } setup: {
        var generator = SystemRandomNumberGenerator()
        let networks = (0..<100_000).map { _ in
            let a = UInt32.random(in: 0x0B00_0000...0x6400_0000, using: &generator)
            return "\(a >> 24).\(a >> 16 & 255).\(a >> 8 & 255).\(a & 255)/\(Int.random(in: 16...32, using: &generator))"
        }
        guard let list = NetworkListProbe(networks) else { fatalError("the generated networks did not parse") }
        return list
    }

    Benchmark("req.ssl_sni of curl's ClientHello (517 bytes)", configuration: .init(metrics: metrics, scalingFactor: .kilo)) { (benchmark: Benchmark, hello: [UInt8]) in
        for _ in benchmark.scaledIterations {
            hello.withUnsafeBytes { blackHole(clientHelloServerName($0)) }
        }
    } setup: {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz/ClientHello/corpus/curl-sni-h2").path
        guard let data = FileManager.default.contents(atPath: path) else { fatalError("missing \(path)") }
        return Array(data)
    }
}
