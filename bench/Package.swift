// swift-tools-version: 6.1
// Micro-benchmarks of the hot paths that are not I/O (ordo-one/benchmark). A package of its own so
// that building and testing Sluice never builds the benchmark harness:
//   bench/run micro          (or: cd bench && swift package benchmark)
import PackageDescription

// SwiftPM names a path dependency after its folder, which is whatever the checkout is called.
let sluice = String(Context.packageDirectory.split(separator: "/").dropLast().last ?? "main").lowercased()

let package = Package(
    name: "SluiceBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The benchmark plugin finds targets whose folder sits in `Benchmarks/`.
        .executableTarget(
            name: "Selection",
            dependencies: [.product(name: "Sluice", package: sluice), .product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/Selection",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "Routing",
            dependencies: [.product(name: "Sluice", package: sluice), .product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/Routing",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "ControlPlane",
            dependencies: [.product(name: "Sluice", package: sluice), .product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/ControlPlane",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
