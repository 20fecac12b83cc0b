// swift-tools-version:6.1
// A program that embeds Sluice: `swift run --package-path examples/Embedded Embedded`.
import PackageDescription

let package = Package(
    name: "Embedded",
    dependencies: [
        // The name keeps the reference stable whatever the checkout directory is called.
        .package(name: "Sluice", path: "../.."),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        .executableTarget(
            name: "Embedded",
            dependencies: [
                .product(name: "Sluice", package: "Sluice"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ]
)
