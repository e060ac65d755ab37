import FTWire

/// Nanoseconds on the log's monotonic clock. The stack never reads a clock:
/// every input carries the time at which the primary logged it.
public typealias Nanos = UInt64
public let nsPerMs: Nanos = 1_000_000

/// Configuration of the deterministic stack. Both replicas must use the same
/// values (including the ISN key), or their states diverge.
public struct StackConfig: Sendable, Equatable {
    public var mac: MACAddress
    public var interface: IPv4Interface
    public var mtu: Int = 1500
    /// RFC 6528 secret. Shared by both nodes through configuration.
    public var isnKey: (UInt64, UInt64) = (0x6674_6170_2d69_736e, 0x6b65_792d_6465_6674)
    public var maxConnections: Int = 4096
    public var synBacklog: Int = 256
    public var sendBufferBytes: Int = 256 * 1024
    public var receiveBufferBytes: Int = 256 * 1024
    /// Our window-scale shift (RFC 7323), offered when the peer offers one.
    public var windowScale: UInt8 = 7
    /// Enough to hold a full default window of 536-byte segments.
    public var maxOutOfOrderSegments: Int = 512
    /// RFC 6298 bounds. RFC 6298 suggests a 1 s minimum; like Linux we use
    /// 200 ms so recovery on a LAN is not dominated by the floor.
    public var rtoInitial: Nanos = 1000 * nsPerMs
    public var rtoMin: Nanos = 200 * nsPerMs
    public var rtoMax: Nanos = 60_000 * nsPerMs
    /// Consecutive retransmissions of one segment before the connection is reset.
    public var maxRetransmits: Int = 10
    public var synAckRetries: Int = 5
    /// TIME-WAIT lasts 2 * MSL.
    public var msl: Nanos = 30_000 * nsPerMs
    public var finWait2Timeout: Nanos = 60_000 * nsPerMs
    public var ttl: UInt8 = 64
    /// Simulator-only sabotage: mixed into ISNs, so a node whose salt differs
    /// derives ISNs from something outside the log. Always 0 in the daemon.
    public var sabotageISNSalt: UInt64 = 0

    public init(mac: MACAddress, interface: IPv4Interface) {
        self.mac = mac; self.interface = interface
    }
    public var ip: IPv4Address { interface.address }
    public var mss: Int { mtu - 40 }

    public static func == (a: StackConfig, b: StackConfig) -> Bool {
        a.mac == b.mac && a.interface == b.interface && a.mtu == b.mtu && a.isnKey == b.isnKey
            && a.maxConnections == b.maxConnections && a.synBacklog == b.synBacklog
            && a.sendBufferBytes == b.sendBufferBytes && a.receiveBufferBytes == b.receiveBufferBytes
            && a.windowScale == b.windowScale && a.maxOutOfOrderSegments == b.maxOutOfOrderSegments
            && a.rtoInitial == b.rtoInitial && a.rtoMin == b.rtoMin && a.rtoMax == b.rtoMax
            && a.maxRetransmits == b.maxRetransmits && a.synAckRetries == b.synAckRetries
            && a.msl == b.msl && a.finWait2Timeout == b.finWait2Timeout && a.ttl == b.ttl
            && a.sabotageISNSalt == b.sabotageISNSalt
    }

    /// Canonical encoding, used to compare two nodes' configuration.
    public func encode(into w: inout ByteWriter) {
        w.u64(mac.raw); w.u32(interface.address.raw); w.int(interface.prefixLength); w.int(mtu)
        w.u64(isnKey.0); w.u64(isnKey.1); w.int(maxConnections); w.int(synBacklog)
        w.int(sendBufferBytes); w.int(receiveBufferBytes); w.u8(windowScale); w.int(maxOutOfOrderSegments)
        w.u64(rtoInitial); w.u64(rtoMin); w.u64(rtoMax); w.int(maxRetransmits); w.int(synAckRetries)
        w.u64(msl); w.u64(finWait2Timeout); w.u8(ttl)
    }
}

/// Counters kept by the stack. They are part of the replicated state (they
/// are a function of the log), so both replicas count the same.
public struct StackCounters: Equatable, Sendable {
    public var framesIn: UInt64 = 0
    public var framesOut: UInt64 = 0
    public var malformed: UInt64 = 0
    public var badChecksum: UInt64 = 0
    public var ipFragmentsDropped: UInt64 = 0
    public var ipOptionsDropped: UInt64 = 0
    public var notForUs: UInt64 = 0
    public var arpRepliesSent: UInt64 = 0
    public var icmpEchoReplies: UInt64 = 0
    public var udpIn: UInt64 = 0
    public var udpNoPort: UInt64 = 0
    public var tcpSegmentsIn: UInt64 = 0
    public var tcpSegmentsOut: UInt64 = 0
    public var tcpRetransmits: UInt64 = 0
    public var tcpFastRetransmits: UInt64 = 0
    public var tcpTimeouts: UInt64 = 0
    public var tcpZeroWindowProbes: UInt64 = 0
    public var tcpResetsSent: UInt64 = 0
    public var tcpResetsReceived: UInt64 = 0
    public var tcpChallengeAcks: UInt64 = 0
    public var tcpConnectionsAccepted: UInt64 = 0
    public var tcpConnectionsRefused: UInt64 = 0
    public var tcpOutOfOrderQueued: UInt64 = 0
    public var tcpOutOfOrderDropped: UInt64 = 0

    public init() {}

    /// Every counter with its name, in a fixed order: the order of logs,
    /// metrics, the digest and snapshots.
    public static let fields: [(String, WritableKeyPath<StackCounters, UInt64>)] = [
        ("frames_in", \.framesIn), ("frames_out", \.framesOut), ("malformed", \.malformed),
        ("bad_checksum", \.badChecksum), ("ip_fragments_dropped", \.ipFragmentsDropped),
        ("ip_options_dropped", \.ipOptionsDropped), ("not_for_us", \.notForUs),
        ("arp_replies", \.arpRepliesSent), ("icmp_echo_replies", \.icmpEchoReplies),
        ("udp_in", \.udpIn), ("udp_no_port", \.udpNoPort),
        ("tcp_segments_in", \.tcpSegmentsIn), ("tcp_segments_out", \.tcpSegmentsOut),
        ("tcp_retransmits", \.tcpRetransmits), ("tcp_fast_retransmits", \.tcpFastRetransmits),
        ("tcp_timeouts", \.tcpTimeouts), ("tcp_zero_window_probes", \.tcpZeroWindowProbes),
        ("tcp_resets_sent", \.tcpResetsSent), ("tcp_resets_received", \.tcpResetsReceived),
        ("tcp_challenge_acks", \.tcpChallengeAcks), ("tcp_accepted", \.tcpConnectionsAccepted),
        ("tcp_refused", \.tcpConnectionsRefused), ("tcp_ooo_queued", \.tcpOutOfOrderQueued),
        ("tcp_ooo_dropped", \.tcpOutOfOrderDropped),
    ]

    /// Name/value pairs in the order of `fields`.
    public var all: [(String, UInt64)] { Self.fields.map { ($0.0, self[keyPath: $0.1]) } }
}
