import FTWire
import FTStack
import FTServices

// The one appliance every test talks to, and the one client that talks to it.
// Tests that need a second host or a foreign address spell it out locally.

public let applianceMAC = MACAddress("02:00:00:00:00:10")!
/// The appliance's address with its prefix, as `StackConfig` takes it.
public let applianceIP = IPv4Interface("10.0.0.100/24")!
/// The appliance's bare address (`applianceIP.address`).
public let applianceAddress: IPv4Address = applianceIP.address

public let clientMAC = MACAddress("02:00:00:00:00:01")!
public let clientIP = IPv4Address(10, 0, 0, 1)
/// The source port of replication tests' client connections.
public let clientPort: UInt16 = 40000

public let counterPort: UInt16 = 7000
public let udpCounterPort: UInt16 = 7001
public let echoPort: UInt16 = 7
public let discardPort: UInt16 = 9
/// The services of the appliance under test, on the ports above.
public let applianceServices = ["counter:7000", "udp-counter:7001", "echo:7", "discard:9"]

public let ms: Nanos = 1_000_000
public let sec: Nanos = 1_000_000_000

/// The appliance's stack configuration (default limits and ISN key).
public func applianceConfig() -> StackConfig {
    StackConfig(mac: applianceMAC, interface: applianceIP)
}

/// A fresh appliance stack; both cores of a pair must be built alike.
public func makeStack(_ config: StackConfig = applianceConfig(), services: [String] = applianceServices) -> Stack {
    try! Appliance.make(config: config, services: services.map { try! ServiceSpec.parse($0) })
}
