// Server selection: what every new session pays before its connect. The target is zero
// allocations per pick, whatever the backend's size, weights or state.
import Benchmark
@_spi(Benchmarks) import Sluice

/// A balancer (not started: no socket is opened) whose backend `b` has the servers given.
func backend(_ servers: [(weight: Int, backup: Bool)], allBackups: Bool = false, balance: String = "roundrobin",
             serverOptions: String = "") -> (LoadBalancer, BackendState) {
    var text = "defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\n"
    text += "listen b\n  bind 127.0.0.1:0\n  balance \(balance)\n" + (allBackups ? "  option allbackups\n" : "")
    for (i, s) in servers.enumerated() {
        text += "  server s\(i) 127.0.0.\(1 + i / 60000 % 250):\(1024 + i % 60000) weight \(s.weight)\(s.backup ? " backup" : "") \(serverOptions)\n"
    }
    do {
        let balancer = try LoadBalancer(configuration: Configuration.parse(text).configuration)
        return (balancer, balancer.backend(named: "b")!)
    } catch {
        fatalError("benchmark configuration: \(error)")
    }
}

let pickMetrics: [BenchmarkMetric] = [.wallClock, .instructions, .mallocCountTotal, .retainCount, .releaseCount]

/// Picks `scaledIterations` servers; the balancer stays alive for the whole measurement.
func pickBenchmark(_ name: String, avoiding: UInt64 = 0, _ make: @escaping @Sendable () -> (LoadBalancer, BackendState)) {
    Benchmark(name, configuration: .init(metrics: pickMetrics, scalingFactor: .kilo)) { benchmark, setup in
        let backend = setup.1
        var hash: UInt32 = 0
        for _ in benchmark.scaledIterations {
            hash &+= 2_654_435_761  // a different client address each pick, for `source`
            blackHole(backend.pick(avoiding: avoiding, hash: hash))
        }
    } setup: {
        make()
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration.maxDuration = .seconds(2)

    pickBenchmark("pick roundrobin, 2 equal servers") { backend([(1, false), (1, false), (1, true)]) }
    pickBenchmark("pick roundrobin, weights 5 1 1") { backend([(5, false), (1, false), (1, false)]) }
    pickBenchmark("pick roundrobin, 1000 servers, weights 1-10") {
        backend((0..<1000).map { (1 + $0 % 10, false) })
    }
    pickBenchmark("pick avoiding the server a retry failed on", avoiding: 1) { backend([(1, false), (1, false), (1, false)]) }
    pickBenchmark("pick backup, primaries in maintenance") {
        let (balancer, b) = backend([(1, false), (1, false), (1, true), (1, true)])
        for server in b.servers where !server.isBackup { b.setAdmin(.maintenance, of: server) }
        return (balancer, b)
    }

    // The other algorithms, on the same snapshot: zero allocations too.
    let mixed = (0..<1000).map { (1 + $0 % 10, false) }
    pickBenchmark("pick leastconn, 2 equal servers") { backend([(1, false), (1, false)], balance: "leastconn") }
    pickBenchmark("pick leastconn, 1000 servers, weights 1-10") { backend(mixed, balance: "leastconn") }
    pickBenchmark("pick first, 3 servers with maxconn") { backend([(1, false), (1, false), (1, false)], balance: "first", serverOptions: "maxconn 10") }
    pickBenchmark("pick source, 1000 servers, weights 1-10") { backend(mixed, balance: "source") }
    pickBenchmark("pick source hash-type consistent (Maglev), 1000 servers, weights 1-10") { backend(mixed, balance: "source\n  hash-type consistent") }
    pickBenchmark("pick roundrobin with maxconn, 2 servers") { backend([(1, false), (1, false)], serverOptions: "maxconn 100") }

    // Rebuilding the schedule: what every health change, weight change or drain costs.
    Benchmark("republish, 1000 servers, weights 1-10",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal], scalingFactor: .one)) { benchmark, setup in
        for _ in benchmark.scaledIterations { setup.1.republish() }
    } setup: {
        backend((0..<1000).map { (1 + $0 % 10, false) })
    }
    // With `hash-type consistent`, the rebuild is the Maglev table's fill (65,537 slots).
    Benchmark("republish, 1000 servers, weights 1-10, hash-type consistent (Maglev table)",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal], scalingFactor: .one)) { benchmark, setup in
        for _ in benchmark.scaledIterations { setup.1.republish() }
    } setup: {
        backend((0..<1000).map { (1 + $0 % 10, false) }, balance: "source\n  hash-type consistent")
    }
}
