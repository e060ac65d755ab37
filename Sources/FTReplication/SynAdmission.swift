import FTStack
import FTWire

/// Admission of TCP SYNs before they are logged: what keeps a spoofed SYN
/// flood (issue 13) from denying service.
///
/// SYN cookies keep the stack's state bounded under a flood, but every SYN
/// is still a log entry: the primary reads, logs, applies and ships it, the
/// backup decodes and applies it, and a full-rate `hping3 --flood` (100,000
/// to 200,000 SYNs/s) outran that, so the TAP's kernel queue overflowed and
/// dropped the real clients' frames with the flood's. Shedding a SYN costs a
/// header check instead.
///
/// This is a node-local decision, like a frame lost on the wire before the
/// TAP: a shed SYN never reaches the log, so both replicas still apply the
/// same log. It only reads the stack (which connections exist), never
/// changes it. Order of preference:
///
/// 1. **Known sources** (always admitted): addresses that sent a segment of
///    one of the stack's connections in the last `knownFor`: a completed
///    handshake or data. A spoofed source never receives our SYN-ACK, so it
///    can never become known.
/// 2. **Retransmitted SYNs** (up to `rate` per second): the same source
///    address, port and initial sequence number as a SYN shed in the last
///    `rememberFor`. A real client resends its SYN after 1 s, 3 s, 7 s...;
///    a random-source flood never repeats one.
/// 3. **Other SYNs** (up to `rate` per second, a token bucket).
///
/// Everything else passes untouched (ACKs, data, RSTs, other protocols).
/// Memory is bounded: 4,096 known sources and a table of 2^20 shed-SYN
/// fingerprints (8 MiB, allocated at the first shed SYN), both
/// direct-mapped with a fixed hash, so an entry may be overwritten early by
/// another (a real client then waits for its next retransmission).
public struct SynAdmission {
    public struct Config: Sendable, Equatable {
        /// SYNs per second from sources not known admitted into the log (and
        /// as many retransmitted ones); 0: every SYN is admitted.
        public var rate: Int = 5000
        /// How long a source counts as known after its last segment of a connection.
        public var knownFor: Nanos = 120_000 * nsPerMs
        /// How long a shed SYN is remembered for its retransmission.
        public var rememberFor: Nanos = 10_000 * nsPerMs
        public init() {}
    }

    public let config: Config
    /// SYNs shed (not logged), and SYNs admitted by each rule.
    public private(set) var shed: UInt64 = 0
    public private(set) var admittedKnown: UInt64 = 0
    public private(set) var admittedRetransmitted: UInt64 = 0
    public private(set) var admittedNew: UInt64 = 0

    var newSources: TokenBucket
    var retransmits: TokenBucket
    /// Known sources: address and local time last seen, by slot.
    var knownIP: [UInt32]
    var knownAt: [Nanos]
    /// Shed SYNs: fingerprint (high 44 bits) and coarse time (low 20 bits, ~2^27 ns units), by slot.
    var shedPrints: [UInt64] = []

    static let knownSlots = 4096
    static let shedSlots = 1 << 20
    static let timeBits: UInt64 = 20
    static let timeUnitShift: UInt64 = 27  // ~134 ms

    public init(config: Config = Config()) {
        self.config = config
        let burst = Int64(max(config.rate, 1))
        newSources = TokenBucket(rate: Int64(config.rate), burst: burst)
        retransmits = TokenBucket(rate: Int64(config.rate), burst: burst)
        knownIP = [UInt32](repeating: 0, count: Self.knownSlots)
        knownAt = [Nanos](repeating: 0, count: Self.knownSlots)
    }

    /// Whether frame `f`, read from the TAP at local time `now` by a node
    /// that logs its input, may be logged. Only SYNs (SYN without ACK) to
    /// `stack`'s address can be shed; every other frame is admitted, and a
    /// TCP segment of an existing connection marks its source as known.
    public mutating func admit(_ f: [UInt8], stack: Stack, now: Nanos) -> Bool {
        guard config.rate > 0, let seg = SynAdmission.tcpSegment(f), seg.dst == stack.config.ip.raw else { return true }
        let syn = seg.flags & 0x02 != 0, ack = seg.flags & 0x10 != 0, rst = seg.flags & 0x04 != 0
        if !syn {
            if ack && !rst { noteSegment(seg, stack: stack, now: now) }
            return true
        }
        if ack { return true }  // a SYN-ACK: the stack answers it, never opens a connection
        if isKnown(seg.src, now: now) { admittedKnown += 1; return true }
        let print = fingerprint(seg)
        if wasShed(print, now: now) && retransmits.take(now: now) { admittedRetransmitted += 1; return true }
        if newSources.take(now: now) { admittedNew += 1; return true }
        remember(print, now: now)
        shed += 1
        return false
    }

    // MARK: Parts

    struct Segment { var src: UInt32; var dst: UInt32; var srcPort: UInt16; var dstPort: UInt16; var seq: UInt32; var flags: UInt8 }

    /// The TCP header fields of an unfragmented IPv4 TCP frame, nil for anything else.
    static func tcpSegment(_ f: [UInt8]) -> Segment? {
        guard f.count >= 14 + 20 + 20, f.readBE16(12) == EtherType.ipv4, f[14] >> 4 == 4, f[14 + 9] == 6 else { return nil }
        guard f.readBE16(14 + 6) & 0x3FFF == 0 else { return nil }  // a fragment: the stack decides
        let t = 14 + Int(f[14] & 0x0F) * 4
        guard t >= 34, f.count >= t + 20 else { return nil }
        return Segment(src: f.readBE32(14 + 12), dst: f.readBE32(14 + 16), srcPort: f.readBE16(t), dstPort: f.readBE16(t + 2),
                       seq: f.readBE32(t + 4), flags: f[t + 13])
    }

    /// A fixed mix (splitmix64's finalizer): the same on every run and node.
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    func fingerprint(_ s: Segment) -> UInt64 {
        SynAdmission.mix(UInt64(s.src) << 32 | UInt64(s.srcPort) << 16 | UInt64(s.dstPort)) ^ SynAdmission.mix(UInt64(s.seq))
    }

    mutating func noteSegment(_ s: Segment, stack: Stack, now: Nanos) {
        let slot = Int(SynAdmission.mix(UInt64(s.src)) % UInt64(Self.knownSlots))
        // Seen within the last second: nothing to refresh (keeps the stack lookup off most segments).
        if knownIP[slot] == s.src && knownAt[slot] != 0 && now &- knownAt[slot] < 1000 * nsPerMs { return }
        guard stack.hasConnection(remoteIP: s.src, remotePort: s.srcPort, localPort: s.dstPort) else { return }
        knownIP[slot] = s.src
        knownAt[slot] = max(now, 1)
    }

    func isKnown(_ ip: UInt32, now: Nanos) -> Bool {
        let slot = Int(SynAdmission.mix(UInt64(ip)) % UInt64(Self.knownSlots))
        return knownIP[slot] == ip && knownAt[slot] != 0 && now &- knownAt[slot] <= config.knownFor
    }

    func timeUnit(_ now: Nanos) -> UInt64 { (now >> Self.timeUnitShift) & ((1 << Self.timeBits) - 1) }

    func wasShed(_ print: UInt64, now: Nanos) -> Bool {
        guard !shedPrints.isEmpty else { return false }
        let e = shedPrints[Int(print % UInt64(Self.shedSlots))]
        guard e != 0, e >> Self.timeBits == print >> Self.timeBits else { return false }
        let age = (timeUnit(now) &- (e & ((1 << Self.timeBits) - 1))) & ((1 << Self.timeBits) - 1)
        return age <= config.rememberFor >> Self.timeUnitShift
    }

    mutating func remember(_ print: UInt64, now: Nanos) {
        if shedPrints.isEmpty { shedPrints = [UInt64](repeating: 0, count: Self.shedSlots) }
        shedPrints[Int(print % UInt64(Self.shedSlots))] = (print >> Self.timeBits) << Self.timeBits | timeUnit(now)
    }
}

/// `rate` tokens per second, at most `burst` saved; one token per admission.
struct TokenBucket {
    let rate: Int64
    let burst: Int64
    /// Tokens, in units of 1/1e9 token (so that nanoseconds times rate stay integral).
    var level: Int64
    var last: Nanos = 0

    init(rate: Int64, burst: Int64) {
        self.rate = rate; self.burst = burst
        level = burst * 1_000_000_000
    }

    mutating func take(now: Nanos) -> Bool {
        if now > last {
            let dt = Int64(min(now - last, 10_000 * nsPerMs))
            level = min(burst * 1_000_000_000, level + dt * rate)
            last = now
        }
        guard level >= 1_000_000_000 else { return false }
        level -= 1_000_000_000
        return true
    }
}
