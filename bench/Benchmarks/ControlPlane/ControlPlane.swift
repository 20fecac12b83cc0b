// The control plane's costs that grow with the configuration: parsing a large config (start-up
// and every reload) and rendering `show stat` (what monitoring polls every few seconds).
import Benchmark
@_spi(Benchmarks) import Sluice

/// A configuration with one frontend and `servers` servers spread over `backends` backends,
/// each with the keywords a production line carries.
func largeConfiguration(servers: Int, backends: Int) -> String {
    var text = """
    global
      maxconn 20000
      stats socket /tmp/sluice-bench.sock level admin
    defaults
      mode tcp
      timeout connect 5s
      timeout client 30s
      timeout server 30s
      retries 3
      option redispatch
    frontend fe
      bind 127.0.0.1:8080
      default_backend b0

    """
    for b in 0..<backends {
        text += "backend b\(b)\n  balance roundrobin\n  option httpchk GET /alive\n  http-check expect status 200\n"
        for s in 0..<servers / backends {
            let n = b * (servers / backends) + s
            text += "  server app\(n) 10.\(n / 65536 % 256).\(n / 256 % 256).\(n % 256):8080 check inter 2s fastinter 500ms rise 2 fall 3 weight \(1 + n % 10)\(s == 0 ? " backup" : "")\n"
        }
    }
    return text
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration.maxDuration = .seconds(3)
    let metrics: [BenchmarkMetric] = [.wallClock, .instructions, .mallocCountTotal, .peakMemoryResident]

    let text = largeConfiguration(servers: 1000, backends: 10)
    Benchmark("parse a 1000-server configuration", configuration: .init(metrics: metrics)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try Configuration.parse(text, file: "large.cfg"))
        }
    }

    Benchmark("build a balancer from it (resolve, schedules)", configuration: .init(metrics: metrics)) { benchmark, configuration in
        for _ in benchmark.scaledIterations {
            blackHole(try LoadBalancer(configuration: configuration))
        }
    } setup: {
        try Configuration.parse(text, file: "large.cfg").configuration
    }

    Benchmark("show stat, 1000 servers", configuration: .init(metrics: metrics)) { benchmark, balancer in
        for _ in benchmark.scaledIterations {
            blackHole(balancer.runtimeReply("show stat"))
        }
    } setup: {
        try LoadBalancer(configuration: Configuration.parse(text, file: "large.cfg").configuration)
    }

    Benchmark("show servers state, 1000 servers", configuration: .init(metrics: metrics)) { benchmark, balancer in
        for _ in benchmark.scaledIterations {
            blackHole(balancer.runtimeReply("show servers state"))
        }
    } setup: {
        try LoadBalancer(configuration: Configuration.parse(text, file: "large.cfg").configuration)
    }
}
