// swift-tools-version:6.0
// The target graph mirrors the architecture (see ARCHITECTURE.md):
//   FTWire (pure wire formats) -> FTStack (pure deterministic TCP/IPv4)
//   -> FTServices (pure services) -> FTReplication (pure log + replica)
//   -> FTPlatform (syscalls: TAP, netlink, sockets, clock) -> ftap (CLI)
// The pure targets import neither Foundation nor the platform target.
import PackageDescription

let package = Package(
    name: "ftap",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ftap", targets: ["ftap"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .target(name: "FTWire"),
        .target(name: "FTStack", dependencies: ["FTWire"]),
        .target(name: "FTServices", dependencies: ["FTWire", "FTStack"]),
        .target(name: "FTReplication", dependencies: ["FTWire", "FTStack", "FTServices"]),
        .systemLibrary(name: "CNetlink", path: "CShims/CNetlink", pkgConfig: "libnl-route-3.0",
                       providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        .target(name: "CShims", path: "CShims/ftshims"),
        .target(name: "FTPlatform", dependencies: [
            "FTWire", "FTStack", "FTServices", "FTReplication", "CShims", "CNetlink",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "ftap", dependencies: [
            "FTPlatform", "FTReplication", "FTServices", "FTStack", "FTWire",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "FTWireTests", dependencies: ["FTWire"]),
        .testTarget(name: "FTStackTests", dependencies: ["FTWire", "FTStack", "FTServices", "FTReplication"]),
        .testTarget(name: "FTServicesTests", dependencies: ["FTWire", "FTStack", "FTServices"]),
    ],
    swiftLanguageModes: [.v5]
)
