import FTWire

// Sequence-number arithmetic modulo 2^32 (RFC 9293 3.4).
@inline(__always) func seqLT(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) < 0 }
@inline(__always) func seqLE(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) <= 0 }
@inline(__always) func seqGT(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) > 0 }
@inline(__always) func seqGE(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) >= 0 }
@inline(__always) func seqDiff(_ a: UInt32, _ b: UInt32) -> Int { Int(Int32(bitPattern: a &- b)) }

public enum TCPState: UInt8, Sendable, CustomStringConvertible {
    case synReceived = 1, established, finWait1, finWait2, closeWait, closing, lastAck, timeWait
    public var description: String {
        switch self {
        case .synReceived: return "SYN-RECEIVED"
        case .established: return "ESTABLISHED"
        case .finWait1: return "FIN-WAIT-1"
        case .finWait2: return "FIN-WAIT-2"
        case .closeWait: return "CLOSE-WAIT"
        case .closing: return "CLOSING"
        case .lastAck: return "LAST-ACK"
        case .timeWait: return "TIME-WAIT"
        }
    }
}

/// The key of a connection: the remote endpoint and our local port (our IP is fixed).
public struct ConnKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var remote: Endpoint
    public var localPort: UInt16
    public init(remote: Endpoint, localPort: UInt16) { self.remote = remote; self.localPort = localPort }
    public static func < (a: ConnKey, b: ConnKey) -> Bool {
        (a.remote.ip, a.remote.port, a.localPort) < (b.remote.ip, b.remote.port, b.localPort)
    }
    public var description: String { "\(remote) -> :\(localPort)" }
}

/// A byte FIFO that drops from the front in amortized O(1).
struct ByteQueue {
    private(set) var storage: [UInt8] = []
    private(set) var head = 0
    var count: Int { storage.count - head }
    var isEmpty: Bool { count == 0 }
    mutating func append<C: Collection>(contentsOf c: C) where C.Element == UInt8 { storage.append(contentsOf: c) }
    func slice(from offset: Int, length: Int) -> ArraySlice<UInt8> {
        storage[(head + offset)..<(head + offset + length)]
    }
    var all: ArraySlice<UInt8> { storage[head...] }
    mutating func drop(_ n: Int) {
        head += n
        if head >= storage.count {
            storage.removeAll(keepingCapacity: true); head = 0
        } else if head >= 65536 && head * 2 >= storage.count {
            storage.removeFirst(head); head = 0
        }
    }
    mutating func removeAll() { storage.removeAll(); head = 0 }
}

/// An out-of-order segment held until the gap before it fills.
struct OOOSegment {
    var seq: UInt32
    var data: [UInt8]
    var fin: Bool
    var end: UInt32 { seq &+ UInt32(data.count) &+ (fin ? 1 : 0) }
}

/// A range of sequence space the peer reported holding (a SACK block, RFC
/// 2018) above SND.UNA: the sender's scoreboard (RFC 6675) is a sorted,
/// non-overlapping list of these.
struct SeqRange: Equatable {
    var left: UInt32
    var right: UInt32
    var count: Int { seqDiff(right, left) }
}

/// Transmission control block (RFC 9293 3.3.1) plus RFC 6298 / 5681 state.
final class TCB {
    let id: ConnectionID
    let key: ConnKey
    var state: TCPState
    var peerMAC: MACAddress

    // Send side. `sendBuf[0]` has sequence number `bufSeq`.
    let iss: UInt32
    var sndUna: UInt32
    var sndNxt: UInt32
    var sndMax: UInt32          // highest sequence number sent + 1 (sndNxt rewinds on timeout)
    var sndWnd: Int = 0         // peer's window in bytes (already scaled)
    var maxSndWnd: Int = 0
    var sndWl1: UInt32 = 0
    var sndWl2: UInt32 = 0
    var sndScale: UInt8 = 0
    var rcvScale: UInt8 = 0
    /// The peer offered SACK (RFC 2018): our ACKs carry SACK blocks for the
    /// out-of-order queue, and the peer's SACK blocks fill `sacked`.
    var sackOK = false
    /// RFC 6675 scoreboard: what the peer SACKed above SND.UNA, sorted by
    /// sequence, non-overlapping, at most `maxScoreboardRanges` entries.
    var sacked: [SeqRange] = []
    /// RFC 6675 HighRxt: the highest sequence number retransmitted in this
    /// recovery (holes below it were retransmitted once already).
    var highRxt: UInt32 = 0
    /// Lost-retransmission detection: SND.MAX when the last hole was
    /// retransmitted. Data above it, SACKed while holes below `highRxt` are
    /// still missing, was sent after those retransmissions and overtook
    /// them: they were lost too (the RACK idea, RFC 8985, by sequence).
    var rxtSndMax: UInt32 = 0
    /// Tail loss probe (RFC 8985 section 7) deadline.
    var tlpDeadline: Nanos? = nil
    /// Recovery-timer resends since the last ACK that brought news.
    var recoveryResends = 0
    /// SND.MAX when a tail loss probe went out and has not been answered by
    /// a cumulative ACK (RFC 8985 TLPRxtOut/TLPHighRxt, simplified).
    var tlpHigh: UInt32? = nil
    static let maxScoreboardRanges = 64
    /// The largest cwnd (and path-model BDP) the stack keeps.
    static let maxCwnd = 64 * 1024 * 1024
    /// The peer offered timestamps (RFC 7323): every segment carries them.
    var tsOK = false
    /// TS.Recent: the TSval we echo.
    var tsRecent: UInt32 = 0
    /// The acknowledgement number of our last segment (Last.ACK.sent).
    var lastAckSent: UInt32 = 0
    /// In-order segments received and not yet acknowledged (delayed ACK).
    var unackedSegments = 0
    /// In-order data segments still to be acknowledged at once (quick-ACK
    /// mode at the start of a connection) before delayed ACKs begin.
    var quickAcks = 16
    /// Delayed-ACK deadline (RFC 1122 4.2.3.2, RFC 5681 4.2).
    var delAckDeadline: Nanos? = nil
    /// The start of the out-of-order run most recently added to: its block
    /// goes first in our SACK option (RFC 2018 section 4).
    var lastOOOSeq: UInt32? = nil
    var sendMSS: Int
    var sendBuf = ByteQueue()
    var bufSeq: UInt32
    var finQueued = false       // the service closed its side

    // Receive side. `rcvBuf` holds in-order bytes the service has not consumed.
    let irs: UInt32
    var rcvNxt: UInt32
    var rcvBuf = ByteQueue()
    var rcvAdvEdge: UInt32      // right edge of the window we advertised
    var lastAdvWindow: Int = 0
    var ooo: [OOOSegment] = []
    var peerFin = false
    var peerCloseNotified = false
    var serviceOpened = false
    var serviceClosed = false
    var ackNeeded = false

    // Retransmission (RFC 6298).
    var rto: Nanos
    var srtt: Nanos = 0
    var rttvar: Nanos = 0
    var hasRTT = false
    var rtoDeadline: Nanos? = nil
    var retries = 0
    var rttSeq: UInt32? = nil
    var rttStart: Nanos = 0

    // Congestion control (RFC 5681 with NewReno recovery, RFC 6582).
    var cwnd: Int
    var ssthresh: Int = Int(Int32.max)
    var dupAcks = 0
    var inRecovery = false
    var recover: UInt32 = 0
    /// Delivery rate and minimum RTT: where a loss leaves cwnd (`PathModel`).
    var path = PathModel()

    // Zero-window probing and other timers.
    var persistDeadline: Nanos? = nil
    var persistBackoff = 0
    var persistUnanswered = 0
    var timeWaitDeadline: Nanos? = nil
    var finWait2Deadline: Nanos? = nil
    /// When the peer's window closed with data waiting (the zero-window limit).
    var zeroWindowSince: Nanos? = nil

    // Idle resources: keepalive and the idle limit (RFC 1122 4.2.3.6), PAWS age.
    /// Stack time of the last acceptable segment from the peer.
    var lastHeard: Nanos = 0
    /// Keepalive probes sent since the peer was last heard.
    var keepaliveSent = 0
    /// When the keepalive or idle limit must next be looked at.
    var idleDeadline: Nanos? = nil
    /// Stack time TS.Recent was last set (RFC 7323 5.5: invalid after 24 days).
    var tsRecentTime: Nanos = 0

    init(id: ConnectionID, key: ConnKey, peerMAC: MACAddress, iss: UInt32, irs: UInt32, sendMSS: Int, rto: Nanos) {
        self.id = id; self.key = key; self.peerMAC = peerMAC
        self.state = .synReceived
        self.iss = iss; sndUna = iss; sndNxt = iss &+ 1; sndMax = iss &+ 1; bufSeq = iss &+ 1
        self.irs = irs; rcvNxt = irs &+ 1; rcvAdvEdge = irs &+ 1
        self.sendMSS = sendMSS; self.rto = rto
        cwnd = 10 * sendMSS
    }

    var deadline: Nanos? {
        // Without an array literal: this runs for every connection on every
        // loop iteration (Stack.nextDeadline), and the literal allocated
        // (measured: a quarter of the primary's CPU under a SYN flood, with
        // 256 connections in SYN-RECEIVED).
        var d = Nanos.max
        if let x = rtoDeadline, x < d { d = x }
        if let x = persistDeadline, x < d { d = x }
        if let x = timeWaitDeadline, x < d { d = x }
        if let x = finWait2Deadline, x < d { d = x }
        if let x = tlpDeadline, x < d { d = x }
        if let x = delAckDeadline, x < d { d = x }
        if let x = idleDeadline, x < d { d = x }
        return d == .max ? nil : d
    }
    /// Sequence number of our FIN, if the service closed (it follows all data).
    var finSeq: UInt32? { finQueued ? bufSeq &+ UInt32(sendBuf.count) : nil }
    var finAcked: Bool { if let f = finSeq { return seqGT(sndUna, f) }; return false }
    var outstanding: Int { seqDiff(sndMax, sndUna) }
    /// Bytes the scoreboard says the peer holds above SND.UNA.
    var sackedBytes: Int { sacked.reduce(0) { $0 + $1.count } }
    /// Option bytes on a data segment: timestamps (12) and, while we hold
    /// out-of-order data, the SACK blocks (4 + 8n).
    var dataOptionBytes: Int { tsOK ? 12 : 0 }
    /// Payload bytes that fit a segment of SMSS with our options (RFC 6691:
    /// the MSS does not count options, so they come out of the payload).
    var segmentPayloadMax: Int { max(1, sendMSS - dataOptionBytes) }
    var unsentBytes: Int { sendBuf.count - max(0, seqDiff(sndNxt, bufSeq)) }
}

/// A read-only view of a connection, for status output and tests.
public struct ConnectionInfo: Sendable, Equatable {
    public var id: ConnectionID
    public var key: ConnKey
    public var state: TCPState
    public var sndUna: UInt32
    public var sndNxt: UInt32
    public var rcvNxt: UInt32
    public var sendQueued: Int
    public var receiveQueued: Int
    public var peerWindow: Int
    public var rto: Nanos
    /// Congestion and path state, for `/connections` (the daemon's `ss -ti`).
    public var cwnd: Int = 0
    public var ssthresh: Int = 0
    public var inRecovery = false
    public var outstanding = 0
    public var srtt: Nanos = 0
    public var minRTT: Nanos = 0
    /// The path model's bandwidth (bytes per second) and bandwidth-delay product.
    public var deliveryRate: UInt64 = 0
    public var bdp = 0
    public var sackedBytes = 0
    public var outOfOrderSegments = 0
}
