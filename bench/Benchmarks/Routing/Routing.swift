// Content switching: what a session of a frontend with rules pays before it is routed. The whole
// rule path of one session with the rule set `bench/bulk.py` measures against HAProxy (10 ACLs, a
// tracked stick-table entry, `use_backend` rules), an IP lookup in a 100,000-network `-f` list (one
// binary search over merged intervals) and the parse of a real ClientHello (curl's, from
// Fuzz/ClientHello/corpus) for `req.ssl_sni`.
import Benchmark
import Foundation
@_spi(Benchmarks) import Sluice

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration.maxDuration = .seconds(2)
    let metrics: [BenchmarkMetric] = [.wallClock, .instructions, .mallocCountTotal]

    Benchmark("rules of bench/bulk.py's RULE_SET, one session", configuration: .init(metrics: metrics, scalingFactor: .kilo)) { (benchmark: Benchmark, setup: (LoadBalancer, RouteProbe)) in
        for _ in benchmark.scaledIterations {
            blackHole(setup.1.run())
        }
    } setup: {
        let bulk = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("bulk.py").path
        guard let script = FileManager.default.contents(atPath: bulk).map({ String(decoding: $0, as: UTF8.self) }),
              let start = script.range(of: "RULE_SET = \"\"\""), let end = script.range(of: "\"\"\"", range: start.upperBound..<script.endIndex) else {
            fatalError("no RULE_SET in \(bulk)")
        }
        let text = "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\nfrontend fe\n  bind 127.0.0.1:8080\n"
            + script[start.upperBound..<end.lowerBound] + "  default_backend be\nbackend be\n  server s1 127.0.0.1:9\nbackend spare\n  server s1 127.0.0.1:9\n"
        do {
            let balancer = try LoadBalancer(configuration: Configuration.parse(text).configuration)
            guard let probe = RouteProbe(balancer, frontend: "fe", source: "127.0.0.1", port: 40_000, destinationPort: 8080), probe.run() == "be" else {
                fatalError("the rules did not route to 'be'")
            }
            return (balancer, probe)
        } catch {
            fatalError("benchmark configuration: \(error)")
        }
    }

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
