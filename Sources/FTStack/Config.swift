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
    /// Embryonic (SYN-RECEIVED) connections kept; beyond them a SYN gets a
    /// stateless SYN cookie (RFC 4987) instead of a connection.
    public var synBacklog: Int = 256
    public var sendBufferBytes: Int = 256 * 1024
    public var receiveBufferBytes: Int = 256 * 1024
    /// Our window-scale shift (RFC 7323), offered when the peer offers one.
    public var windowScale: UInt8 = 7
    /// Enough to hold a full default window of 536-byte segments.
    public var maxOutOfOrderSegments: Int = 512
    /// RFC 6298 bounds. RFC 6298 (2.4) suggests a 1 s minimum; we keep
    /// 200 ms, Linux's TCP_RTO_MIN, on purpose: the peers on a LAN are
    /// mostly Linux, whose delayed ACKs (up to 200 ms, TCP_DELACK_MAX) an
    /// RTO below that would mistake for loss, and a lower floor buys little
    /// now that tail losses are found by the loss probe (2 * SRTT + 2 ms)
    /// and SACK recovery rather than by the RTO.
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
    /// Keepalive (RFC 1122 4.2.3.6), off when 0: after this much log time
    /// without a segment from the peer, probe it every `keepaliveInterval`;
    /// `keepaliveProbes` unanswered probes reset the connection.
    public var keepaliveIdle: Nanos = 0
    public var keepaliveInterval: Nanos = 75_000 * nsPerMs
    public var keepaliveProbes: Int = 9
    /// A connection that hears nothing from its peer for this long is reset
    /// (off when 0): an idle limit for peers that vanished without a FIN.
    public var idleTimeout: Nanos = 0
    /// How long the peer may keep its window closed while we have data for
    /// it, answering our probes, before the connection is reset (RFC 6429
    /// allows a sender to abort a connection stuck in persist). 0: forever,
    /// as RFC 1122 4.2.2.17 otherwise asks.
    public var zeroWindowTimeout: Nanos = 120_000 * nsPerMs
    /// Connections (all states but TIME-WAIT) one source address may hold;
    /// its SYNs beyond it get RST. 0: no limit.
    public var maxConnectionsPerSource: Int = 0
    /// The smallest path MTU an ICMP "fragmentation needed" (RFC 1191) may
    /// lower a connection to, as Linux's min_pmtu (552): below it the
    /// message is ignored, so forged ICMP cannot shrink segments to nothing.
    public var minPathMTU: Int = 552
    /// TCP segmentation offload: the most payload bytes one emitted frame
    /// may carry as a super-segment (`Frames`), cut into segments by the
    /// kernel (TSO) or by `TCPSegmentation.split`. 0: every frame is one
    /// segment. The daemon sets it unless `--no-offload`; it changes the
    /// frames the stack emits, so both replicas must agree on it.
    public var tsoMaxBytes: Int = 0
    /// The largest `tsoMaxBytes`: an IPv4 datagram of 65,535 bytes less
    /// the largest IP and TCP headers.
    public static let tsoLimit = 65535 - 20 - 60
    /// Simulator-only sabotage: mixed into ISNs, so a node whose salt differs
    /// derives ISNs from something outside the log. Always 0 in the daemon.
    public var sabotageISNSalt: UInt64 = 0

    public init(mac: MACAddress, interface: IPv4Interface) {
        self.mac = mac; self.interface = interface
    }
    /// Delayed-ACK timeout: Linux's TCP_DELACK_MIN (40 ms), well under the
    /// 500 ms of RFC 1122 4.2.3.2. A constant, not configuration: it does
    /// not change the stream, only when a lone segment's ACK goes out.
    public static let delayedAck: Nanos = 40 * nsPerMs

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
            && a.keepaliveIdle == b.keepaliveIdle && a.keepaliveInterval == b.keepaliveInterval
            && a.keepaliveProbes == b.keepaliveProbes && a.idleTimeout == b.idleTimeout
            && a.zeroWindowTimeout == b.zeroWindowTimeout && a.maxConnectionsPerSource == b.maxConnectionsPerSource
            && a.minPathMTU == b.minPathMTU && a.tsoMaxBytes == b.tsoMaxBytes
    }
}

// MARK: - Encoding

/// One schema for the configuration, three readers of it: `encode` (the
/// canonical bytes: the config digest two nodes compare, and the block a
/// recording replays from), `decode`, and `text` (key=value for people).
/// Every field but `sabotageISNSalt` is in it: that one is simulator-only,
/// always 0 in the daemon, and kept out so a sabotaged node still joins.
protocol ConfigCoder {
    associatedtype Failure: Error
    mutating func field(_ name: String, _ v: inout MACAddress) throws(Failure)
    mutating func field(_ name: String, _ v: inout IPv4Interface) throws(Failure)
    mutating func field(_ name: String, _ v: inout Int) throws(Failure)
    mutating func field(_ name: String, _ v: inout UInt8) throws(Failure)
    mutating func field(_ name: String, _ v: inout Nanos) throws(Failure)
    mutating func field(_ name: String, _ v: inout (UInt64, UInt64)) throws(Failure)
}

extension StackConfig {
    /// Version of the layout below. Bump it with any change to `schema`
    /// (ConfigSchemaTests holds the golden hash that notices).
    /// Version 2 appends keepalive, idle and zero-window limits, the
    /// per-source connection limit and the minimum path MTU.
    /// Version 3 appends the TCP segmentation offload limit.
    public static let encodingVersion: UInt8 = 3

    mutating func schema<C: ConfigCoder>(_ c: inout C) throws(C.Failure) {
        try c.field("mac", &mac); try c.field("ip", &interface); try c.field("mtu", &mtu)
        try c.field("isn-key", &isnKey)
        try c.field("max-connections", &maxConnections); try c.field("syn-backlog", &synBacklog)
        try c.field("send-buffer", &sendBufferBytes); try c.field("recv-buffer", &receiveBufferBytes)
        try c.field("window-scale", &windowScale); try c.field("max-ooo-segments", &maxOutOfOrderSegments)
        try c.field("rto-initial-ns", &rtoInitial); try c.field("rto-min-ns", &rtoMin); try c.field("rto-max-ns", &rtoMax)
        try c.field("max-retransmits", &maxRetransmits); try c.field("synack-retries", &synAckRetries)
        try c.field("msl-ns", &msl); try c.field("fin-wait2-timeout-ns", &finWait2Timeout); try c.field("ttl", &ttl)
        // Version 2.
        try c.field("keepalive-idle-ns", &keepaliveIdle); try c.field("keepalive-interval-ns", &keepaliveInterval)
        try c.field("keepalive-probes", &keepaliveProbes); try c.field("idle-timeout-ns", &idleTimeout)
        try c.field("zero-window-timeout-ns", &zeroWindowTimeout)
        try c.field("max-conns-per-source", &maxConnectionsPerSource); try c.field("min-path-mtu", &minPathMTU)
        // Version 3.
        try c.field("tso-max-bytes", &tsoMaxBytes)
    }

    /// Canonical encoding (no version byte; see `encodingVersion`).
    public func encode(into w: inout ByteWriter) {
        var copy = self
        copy.schema(&w)
    }

    public enum DecodeFailure: Error, CustomStringConvertible, Equatable {
        case invalid(field: String, value: String)
        public var description: String {
            switch self {
            case let .invalid(f, v): return "stack configuration has an invalid \(f) (\(v))"
            }
        }
    }

    /// Reads what `encode` wrote; values the stack cannot run with are refused.
    public static func decode(_ r: inout ByteReader) throws -> StackConfig {
        var c = StackConfig(mac: .zero, interface: IPv4Interface(address: .any, prefixLength: 0))
        try c.schema(&r)
        func check(_ ok: Bool, _ name: String, _ v: some CustomStringConvertible) throws {
            guard ok else { throw DecodeFailure.invalid(field: name, value: v.description) }
        }
        try check((0...32).contains(c.interface.prefixLength), "ip prefix length", c.interface.prefixLength)
        try check((68...65535).contains(c.mtu), "mtu", c.mtu)
        try check(c.windowScale <= 14, "window-scale", c.windowScale)
        try check((68...c.mtu).contains(c.minPathMTU), "min-path-mtu", c.minPathMTU)
        try check((0...StackConfig.tsoLimit).contains(c.tsoMaxBytes), "tso-max-bytes", c.tsoMaxBytes)
        try check(c.keepaliveIdle == 0 || c.keepaliveInterval > 0, "keepalive-interval-ns", c.keepaliveInterval)
        for (name, v) in [("max-connections", c.maxConnections), ("syn-backlog", c.synBacklog),
                          ("send-buffer", c.sendBufferBytes), ("recv-buffer", c.receiveBufferBytes),
                          ("max-ooo-segments", c.maxOutOfOrderSegments), ("max-retransmits", c.maxRetransmits),
                          ("synack-retries", c.synAckRetries), ("keepalive-probes", c.keepaliveProbes),
                          ("max-conns-per-source", c.maxConnectionsPerSource)] {
            try check(v >= 0, name, v)
        }
        return c
    }

    /// `name=value` pairs in schema order, for people (and tools that grep).
    public var text: [(String, String)] {
        var t = ConfigText()
        var copy = self
        copy.schema(&t)
        return t.pairs
    }
}

extension ByteWriter: ConfigCoder {
    mutating func field(_ name: String, _ v: inout MACAddress) { u64(v.raw) }
    mutating func field(_ name: String, _ v: inout IPv4Interface) { u32(v.address.raw); int(v.prefixLength) }
    mutating func field(_ name: String, _ v: inout Int) { int(v) }
    mutating func field(_ name: String, _ v: inout UInt8) { u8(v) }
    mutating func field(_ name: String, _ v: inout Nanos) { u64(v) }
    mutating func field(_ name: String, _ v: inout (UInt64, UInt64)) { u64(v.0); u64(v.1) }
}

extension ByteReader: ConfigCoder {
    mutating func field(_ name: String, _ v: inout MACAddress) throws { v = MACAddress(raw: try u64()) }
    mutating func field(_ name: String, _ v: inout IPv4Interface) throws {
        v = IPv4Interface(address: IPv4Address(raw: try u32()), prefixLength: try int())
    }
    mutating func field(_ name: String, _ v: inout Int) throws { v = try int() }
    mutating func field(_ name: String, _ v: inout UInt8) throws { v = try u8() }
    mutating func field(_ name: String, _ v: inout Nanos) throws { v = try u64() }
    mutating func field(_ name: String, _ v: inout (UInt64, UInt64)) throws { v = (try u64(), try u64()) }
}

struct ConfigText: ConfigCoder {
    typealias Failure = Never
    var pairs: [(String, String)] = []
    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
    mutating func field(_ name: String, _ v: inout MACAddress) { pairs.append((name, v.description)) }
    mutating func field(_ name: String, _ v: inout IPv4Interface) { pairs.append((name, v.description)) }
    mutating func field(_ name: String, _ v: inout Int) { pairs.append((name, String(v))) }
    mutating func field(_ name: String, _ v: inout UInt8) { pairs.append((name, String(v))) }
    mutating func field(_ name: String, _ v: inout Nanos) { pairs.append((name, String(v))) }
    mutating func field(_ name: String, _ v: inout (UInt64, UInt64)) { pairs.append((name, Self.hex(v.0) + Self.hex(v.1))) }
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
    /// Retransmissions of holes chosen from the peer's SACK blocks (RFC 6675).
    public var tcpSACKRetransmits: UInt64 = 0
    /// Retransmissions found lost again and resent (RFC 8985 rule by sequence).
    public var tcpLostRetransmits: UInt64 = 0
    /// Tail loss probes sent (RFC 8985 section 7).
    public var tcpLossProbes: UInt64 = 0
    /// Holes declared lost when RACK's reordering window passed (RFC 8985 6.2).
    public var tcpReorderTimeouts: UInt64 = 0
    /// SYN-ACKs sent with a SYN cookie because the SYN backlog was full (RFC 4987).
    public var tcpSynCookiesSent: UInt64 = 0
    /// Connections created from a valid cookie ACK.
    public var tcpSynCookiesAccepted: UInt64 = 0
    /// ACKs sent by the delayed-ACK timer (RFC 1122 4.2.3.2).
    public var tcpDelayedAcks: UInt64 = 0
    /// ICMP "fragmentation needed" that lowered a connection's MSS (RFC 1191).
    public var tcpPMTUUpdates: UInt64 = 0
    /// ICMP errors dropped: no matching connection, sequence outside the
    /// unacknowledged data, an MTU below the floor, or a type we do not use.
    public var icmpErrorsIgnored: UInt64 = 0
    /// Segments dropped by PAWS (RFC 7323 section 5): an old timestamp.
    public var tcpPAWSDropped: UInt64 = 0
    /// Keepalive probes sent (RFC 1122 4.2.3.6).
    public var tcpKeepaliveProbes: UInt64 = 0
    /// Connections reset by the keepalive, the idle limit or the zero-window limit.
    public var tcpKeepaliveResets: UInt64 = 0
    public var tcpIdleResets: UInt64 = 0
    public var tcpZeroWindowResets: UInt64 = 0
    /// SYNs refused because their source holds `maxConnectionsPerSource`.
    public var tcpSourceLimited: UInt64 = 0
    /// Losses after which the path model (`PathModel`: two bandwidth-delay
    /// products) kept more of cwnd than the loss-based decrease would have.
    public var tcpLossWindowHeld: UInt64 = 0

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
        ("tcp_ooo_dropped", \.tcpOutOfOrderDropped), ("tcp_sack_retransmits", \.tcpSACKRetransmits),
        ("tcp_lost_retransmits", \.tcpLostRetransmits), ("tcp_loss_probes", \.tcpLossProbes),
        ("tcp_reorder_timeouts", \.tcpReorderTimeouts), ("tcp_delayed_acks", \.tcpDelayedAcks),
        ("tcp_syncookies_sent", \.tcpSynCookiesSent), ("tcp_syncookies_accepted", \.tcpSynCookiesAccepted),
        ("tcp_pmtu_updates", \.tcpPMTUUpdates), ("icmp_errors_ignored", \.icmpErrorsIgnored),
        ("tcp_paws_dropped", \.tcpPAWSDropped), ("tcp_keepalive_probes", \.tcpKeepaliveProbes),
        ("tcp_keepalive_resets", \.tcpKeepaliveResets), ("tcp_idle_resets", \.tcpIdleResets),
        ("tcp_zero_window_resets", \.tcpZeroWindowResets), ("tcp_source_limited", \.tcpSourceLimited),
        ("tcp_loss_window_held", \.tcpLossWindowHeld),
    ]

    /// Name/value pairs in the order of `fields`.
    public var all: [(String, UInt64)] { Self.fields.map { ($0.0, self[keyPath: $0.1]) } }
}
