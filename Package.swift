// swift-tools-version:6.0
// The target graph mirrors the architecture (see ARCHITECTURE.md):
//   FTWire (pure wire formats) -> FTStack (pure deterministic TCP/IPv4)
//   -> FTServices (pure services) -> FTReplication (pure log + replica)
//   -> FTPlatform (syscalls: TAP, netlink, libpcap, sockets, clock) -> ftap (CLI)
//   FTSim (pure) runs the whole pair on simulated time for `ftap sim`.
// The pure targets import neither Foundation nor the platform target.
import PackageDescription

// Release builds drop Swift's dynamic exclusivity checks in the pure targets
// (debug builds and the tests keep them): in a bulk echo they were 10-17 %
// of each node's CPU (perf: swift_beginAccess, AccessSet::insert).
let releaseSpeed: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "ftap",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ftap", targets: ["ftap"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        // HKDF, HMAC and ChaChaPoly for the authenticated, encrypted log channel.
        // Deterministic given keys and nonces, so the pure FTReplication may use it.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // The `--config` file format (TOML; see ARCHITECTURE.md, "Configuration").
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        // Deque (the kv service's lists) and Heap (its expiry queue): pure and deterministic.
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        .target(name: "FTWire", swiftSettings: releaseSpeed),
        .target(name: "FTStack", dependencies: ["FTWire"], swiftSettings: releaseSpeed),
        .target(name: "FTServices", dependencies: [
            "FTWire", "FTStack", .product(name: "DequeModule", package: "swift-collections"),
            .product(name: "HeapModule", package: "swift-collections"),
        ], swiftSettings: releaseSpeed),
        .target(name: "FTReplication", dependencies: [
            "FTWire", "FTStack", "FTServices", .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: releaseSpeed),
        .systemLibrary(name: "CNetlink", path: "CShims/CNetlink", pkgConfig: "libnl-route-3.0",
                       providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        .systemLibrary(name: "CPcap", path: "CShims/CPcap", pkgConfig: "libpcap",
                       providers: [.apt(["libpcap-dev"])]),
        .target(name: "CShims", path: "CShims/ftshims"),
        // Deterministic simulation of a whole replicated pair plus clients (pure).
        .target(name: "FTSim", dependencies: ["FTWire", "FTStack", "FTServices", "FTReplication"]),
        .target(name: "FTPlatform", dependencies: [
            "FTWire", "FTStack", "FTServices", "FTReplication", "CShims", "CNetlink", "CPcap",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        .executableTarget(name: "ftap", dependencies: [
            "FTPlatform", "FTReplication", "FTServices", "FTStack", "FTWire", "FTSim", "CPcap",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "TOMLKit", package: "TOMLKit"),
        ], plugins: ["BuildInfoPlugin"]),
        // Embeds the git commit in the binary at build time (`ftap --version`,
        // ftap_build_info): runs scripts/build-info.sh before every build.
        .plugin(name: "BuildInfoPlugin", capability: .buildTool(), path: "Plugins/BuildInfoPlugin"),
        // Shared by the test targets: the appliance's addresses, frame builders,
        // and the two-core replication harness. It imports XCTest.
        .target(name: "FTTestSupport", dependencies: ["FTWire", "FTStack", "FTServices", "FTReplication"],
                path: "Tests/FTTestSupport"),
        .testTarget(name: "FTWireTests", dependencies: ["FTWire"]),
        .testTarget(name: "FTStackTests", dependencies: ["FTWire", "FTStack", "FTServices", "FTReplication", "FTTestSupport"]),
        .testTarget(name: "FTServicesTests", dependencies: ["FTWire", "FTStack", "FTServices", "FTTestSupport"]),
        .testTarget(name: "FTReplicationTests", dependencies: ["FTWire", "FTStack", "FTServices", "FTReplication", "FTTestSupport"]),
        .testTarget(name: "FTSimTests", dependencies: ["FTWire", "FTStack", "FTServices", "FTReplication", "FTSim"]),
    ],
    swiftLanguageModes: [.v5]
)
