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
/// frames are two subsequences of nearly one sequence (either side may miss
/// frames: a full TAP queue, a lost mirror copy; and the two paths may
/// reorder frames slightly, measured: two clients on two CPUs), and a frame
/// is identified by its bytes (a hash; equal frames are matched oldest
/// first). Each side waits for the other in its own queue:
/// - a kept frame whose bytes match a waiting logged frame is covered by the
///   log: that logged frame is retired, and so is every waiting logged frame
///   more than `horizon` older (its copy never came);
/// - a logged frame that matches a kept frame retires that frame, and every
///   kept frame that arrived more than `horizon` before it (the primary
///   never got those; the client retransmits them).
/// Frames closer than `horizon` wait for their match: a slight reordering
/// loses nothing. What stays kept is what the log does not cover yet. At
/// go-live, after every log entry is applied, the new primary logs and
/// applies it.
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
    struct Kept { var frame: [UInt8]; var hash: UInt64; var at: Nanos; var trusted: Bool }
    struct Logged { var hash: UInt64; var at: Nanos }

    /// Keep frames this long (0: the buffer is off).
    public var window: Nanos
    public var maxBytes: Int
    public var maxLogged = 8192
    /// How far the mirror's path and the primary's may reorder frames.
    public var horizon: Nanos = 20_000_000

    private var kept = Ring<Kept>()
    private var logged = Ring<Logged>()
    public private(set) var bytes = 0
    public var count: Int { kept.liveCount }
    public var waitingLogged: Int { logged.liveCount }

    /// Frames kept (accepted by the stack) since start.
    public private(set) var received: UInt64 = 0
    /// Kept frames unicast to the appliance's MAC: copies of client traffic
    /// (mirrored or flooded), as opposed to broadcasts every node sees.
    public private(set) var clientFrames: UInt64 = 0
    public private(set) var lastClientFrameAt: Nanos? = nil
    /// When the last frame of any kind arrived: while none arrives (no
    /// mirror, no flood) `wasLogged` has nothing to match and skips hashing.
    private var lastArrivalAt: Nanos? = nil
    /// Kept frames found in the log (either arrival order).
    public private(set) var matched: UInt64 = 0
    /// Kept frames retired because frames that arrived well after them were
    /// logged (the primary never had them).
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

    /// A frame's identity for matching: its length and first `hashedPrefix`
    /// bytes, which hold the Ethernet, IP and TCP/UDP headers (IP ID,
    /// sequence and acknowledgment numbers, checksum): two different frames
    /// a client sent share them only if it repeated a datagram byte for
    /// byte. Hashing whole frames cost the backup 30 % of its CPU in a bulk
    /// transfer of 64 KiB super-frames (perf, issue 14). `wasLogged`
    /// still compares kept frames byte for byte.
    static let hashedPrefix = 128
    static func hash(_ f: [UInt8]) -> UInt64 {
        SipHash24.hash(k0: 0x7374_616e_6462_7900, k1: UInt64(f.count), Array(f.prefix(hashedPrefix)))
    }

    /// A frame the stack accepts arrived on the standby's TAP (`trusted`:
    /// its transport checksum was left to or checked by the kernel, see
    /// `EntryKind.offloadFrame`).
    public mutating func arrived(_ f: [UInt8], trusted: Bool = false, unicastToUs: Bool, now: Nanos) {
        guard isOn else { return }
        received += 1
        lastArrivalAt = now
        if unicastToUs { clientFrames += 1; lastClientFrameAt = now }
        let h = Self.hash(f)
        if let i = logged.firstIndex(where: { $0.hash == h }) {
            let at = logged[i].at, horizon = horizon
            logged.retire(i)
            matched += 1
            _ = logged.dropFront { $0.at + horizon < at }
            return
        }
        kept.append(Kept(frame: f, hash: h, at: now, trusted: trusted))
        bytes += f.count
        prune(now: now)
    }

    /// The standby applied a frame entry from the primary's log.
    public mutating func wasLogged(_ f: [UInt8], now: Nanos) {
        // Without copies arriving there is nothing to match: hashing every
        // applied frame cost a backup 3 % of its CPU under a UDP load
        // (perf, issue 14). A copy that arrives later than its logged
        // frame, in the first moments of a mirror, stays kept and is applied
        // again at a takeover: a duplicate, which TCP and the request-id
        // services absorb.
        guard isOn, let last = lastArrivalAt, since(last, now) <= window else { return }
        let h = Self.hash(f)
        if let i = kept.firstIndex(where: { $0.hash == h && $0.frame == f }) {
            let at = kept[i].at, horizon = horizon
            bytes -= kept[i].frame.count
            kept.retire(i)
            matched += 1
            let stale = kept.dropFront { $0.at + horizon < at }
            unlogged += UInt64(stale.count)
            bytes -= stale.bytes
            return
        }
        let window = window
        logged.append(Logged(hash: h, at: now))
        if logged.liveCount > maxLogged { _ = logged.dropFront(max: logged.liveCount - maxLogged) { _ in true } }
        _ = logged.dropFront { since($0.at, now) > window }
    }

    mutating func prune(now: Nanos) {
        let window = window
        var excess = bytes - maxBytes
        let gone = kept.dropFront { k in
            guard excess > 0 || since(k.at, now) > window else { return false }
            excess -= k.frame.count
            return true
        }
        bytes -= gone.bytes
        expired += UInt64(gone.count)
    }

    /// Everything kept and not covered by the log, oldest first, within the
    /// time bound; the buffer is empty afterwards.
    public mutating func takeAll(now: Nanos) -> [(frame: [UInt8], trusted: Bool)] {
        prune(now: now)
        let out = kept.live.map { (frame: $0.frame, trusted: $0.trusted) }
        handedOver += UInt64(out.count)
        reset()
        return out
    }

    /// Forget everything (the log restarted from a snapshot, a handover).
    public mutating func reset() {
        lastArrivalAt = nil
        kept = Ring()
        logged = Ring()
        bytes = 0
    }

    /// How recent a copy of client traffic must be for `/status` and
    /// `/metrics` to say the standby receives it.
    public static let clientFramesRecent: Nanos = 2_000_000_000

    /// A copy of client traffic arrived within `recent` of `now`.
    public func receivingClientFrames(now: Nanos, recent: Nanos = StandbyBuffer.clientFramesRecent) -> Bool {
        guard let t = lastClientFrameAt else { return false }
        return since(t, now) <= recent
    }
}

/// Sizes of frames, for `Ring.dropFront`'s report.
protocol FrameSized { var size: Int { get } }
extension StandbyBuffer.Kept: FrameSized { var size: Int { frame.count } }
extension StandbyBuffer.Logged: FrameSized { var size: Int { 0 } }

/// A FIFO whose items can be retired in place (matched out of order);
/// retired items are skipped and freed once they reach the front. O(1)
/// amortized when matches happen at or near the front, the common case.
struct Ring<T: FrameSized> {
    private var items: [T] = []
    private var retired: [Bool] = []
    private var head = 0
    private(set) var liveCount = 0

    mutating func append(_ x: T) { items.append(x); retired.append(false); liveCount += 1 }
    subscript(i: Int) -> T { items[i] }

    func firstIndex(where p: (T) -> Bool) -> Int? {
        var i = head
        while i < items.count {
            if !retired[i] && p(items[i]) { return i }
            i += 1
        }
        return nil
    }

    mutating func retire(_ i: Int) {
        guard !retired[i] else { return }
        retired[i] = true
        liveCount -= 1
        skipRetired()
    }

    /// Drops live items from the front while `p` holds (at most `max`),
    /// skipping retired ones; returns how many live items and bytes went.
    mutating func dropFront(max: Int = .max, _ p: (T) -> Bool) -> (count: Int, bytes: Int) {
        var n = 0, b = 0
        while head < items.count, n < max {
            if retired[head] { head += 1; continue }
            guard p(items[head]) else { break }
            n += 1; b += items[head].size
            retired[head] = true
            liveCount -= 1
            head += 1
        }
        skipRetired()
        return (n, b)
    }

    var live: [T] { (head..<items.count).filter { !retired[$0] }.map { items[$0] } }

    private mutating func skipRetired() {
        while head < items.count && retired[head] { head += 1 }
        if head == items.count {
            items.removeAll(keepingCapacity: true); retired.removeAll(keepingCapacity: true); head = 0
        } else if head > 4096 && head * 2 > items.count {
            items.removeFirst(head); retired.removeFirst(head); head = 0
        }
    }
}
