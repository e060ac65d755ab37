import FTStack
import FTWire

/// What a standby (a backup following the primary) keeps of the frames that
/// reach its own TAP, so that on a takeover it can apply what the dead
/// primary never logged: the request in flight when the primary died, and
/// the client's retransmissions while the backup waited to take over.
///
/// Where the copies come from: the switch mirrors the frames it sends to the
/// primary's port to the standby's port (`scripts/netns.sh mirror`, SPAN on a
/// managed switch), or floods them when the primary's port went down (a
/// cable pull). Without either, a standby sees only broadcasts.
///
/// The matching rule. The primary logs, in order, the frames it reads from
/// its TAP that the stack accepts (`Stack.classify`). The mirror delivers the
/// frames the switch sends to the primary's port in the same order, and the
/// standby keeps those the stack accepts. So the logged frames and the kept
/// frames are two subsequences of one sequence (either side may miss frames:
/// a full TAP queue, a lost mirror copy), and a frame is identified by its
/// bytes (a hash; equal frames are matched in order). Each side waits for the
/// other in its own queue:
/// - a kept frame whose bytes match the oldest such waiting logged frame is
///   covered by the log: it and every older waiting logged frame are dropped
///   (the copies of those never came);
/// - a logged frame that matches a kept frame drops that frame and every kept
///   frame before it (the primary never got those; the client retransmits).
/// What stays kept is what the log does not cover yet. At go-live, after
/// every log entry is applied, the new primary logs and applies it.
///
/// When the rule errs, it errs toward duplicates (a copy that came after the
/// go-live, a hash-equal retransmission), and a duplicate is harmless: a TCP
/// segment at or below RCV.NXT is only acknowledged (and go-live skips whole
/// old data segments altogether, `Stack.isOldData`, so no burst of duplicate
/// ACKs reaches the client), udp-counter answers a repeated request id from
/// its cache, ARP is idempotent. A frame it drops by mistake is one the
/// client retransmits, as it would with no buffer at all.
///
/// Bounds: kept frames older than `window`, or beyond `maxBytes`, are
/// dropped oldest first; logged frames wait at most `window` and `maxLogged`.
/// Times are node-local; nothing here is replicated. The decision it feeds
/// (which frames the new primary logs) is recorded by the log itself.
public struct StandbyBuffer {
    struct Kept { var frame: [UInt8]; var hash: UInt64; var at: Nanos }
    struct Logged { var hash: UInt64; var at: Nanos }

    /// Keep frames this long (0: the buffer is off).
    public var window: Nanos
    public var maxBytes: Int
    public var maxLogged = 8192

    private var kept = FIFO<Kept>()
    private var logged = FIFO<Logged>()
    public private(set) var bytes = 0

    /// Frames kept (accepted by the stack) since start.
    public private(set) var received: UInt64 = 0
    /// Kept frames unicast to the appliance's MAC: copies of client traffic
    /// (mirrored or flooded), as opposed to broadcasts every node sees.
    public private(set) var clientFrames: UInt64 = 0
    public private(set) var lastClientFrameAt: Nanos? = nil
    /// Kept frames found in the log (either arrival order).
    public private(set) var matched: UInt64 = 0
    /// Kept frames dropped because a later frame was logged first (the primary never had them).
    public private(set) var unlogged: UInt64 = 0
    /// Kept frames dropped by the time or byte bound.
    public private(set) var expired: UInt64 = 0
    /// Frames handed to go-live.
    public private(set) var handedOver: UInt64 = 0

    public init(window: Nanos, maxBytes: Int) {
        self.window = window
        self.maxBytes = maxBytes
    }

    public var isOn: Bool { window > 0 && maxBytes > 0 }
    public var count: Int { kept.count }
    public var waitingLogged: Int { logged.count }

    static func hash(_ f: [UInt8]) -> UInt64 { SipHash24.hash(k0: 0x7374_616e_6462_7900, k1: UInt64(f.count), f) }

    /// A frame the stack accepts arrived on the standby's TAP.
    public mutating func arrived(_ f: [UInt8], unicastToUs: Bool, now: Nanos) {
        guard isOn else { return }
        received += 1
        if unicastToUs { clientFrames += 1; lastClientFrameAt = now }
        let h = Self.hash(f)
        if let i = logged.all.firstIndex(where: { $0.hash == h }) {
            for _ in logged.all.startIndex...i { _ = logged.popFirst() }
            matched += 1
            return
        }
        kept.append(Kept(frame: f, hash: h, at: now))
        bytes += f.count
        prune(now: now)
    }

    /// The standby applied a frame entry from the primary's log.
    public mutating func wasLogged(_ f: [UInt8], now: Nanos) {
        guard isOn else { return }
        let h = Self.hash(f)
        if let i = kept.all.firstIndex(where: { $0.hash == h && $0.frame == f }) {
            let before = i - kept.all.startIndex
            for _ in 0..<before { if let k = kept.popFirst() { bytes -= k.frame.count } }
            if let k = kept.popFirst() { bytes -= k.frame.count }
            unlogged += UInt64(before)
            matched += 1
            return
        }
        logged.append(Logged(hash: h, at: now))
        while logged.count > maxLogged { _ = logged.popFirst() }
        while let l = logged.first, since(l.at, now) > window { _ = logged.popFirst() }
    }

    mutating func prune(now: Nanos) {
        while let k = kept.first, bytes > maxBytes || since(k.at, now) > window {
            _ = kept.popFirst()
            bytes -= k.frame.count
            expired += 1
        }
    }

    /// Everything kept and not covered by the log, oldest first, within the
    /// time bound; the buffer is empty afterwards.
    public mutating func takeAll(now: Nanos) -> [[UInt8]] {
        prune(now: now)
        let out = kept.all.map(\.frame)
        handedOver += UInt64(out.count)
        reset()
        return out
    }

    /// Forget everything (the log restarted from a snapshot, a handover).
    public mutating func reset() {
        kept.removeAll()
        logged.removeAll()
        bytes = 0
    }

    /// A copy of client traffic arrived within `recent` of `now`.
    public func receivingClientFrames(now: Nanos, recent: Nanos) -> Bool {
        guard let t = lastClientFrameAt else { return false }
        return since(t, now) <= recent
    }
}
