import FTWire

// Fault hooks and sabotage switches, in one place. The simulator and the
// fault tests use them to crash the primary at precise points of the output
// rule, or to break a rule on purpose and prove the checkers notice. The
// protocol code consults `Faults` at named points; the decisions (which
// frame counts, when a hook fires) are made here.

/// Test-only: make the primary crash at a precise point, counted in frames
/// carrying TCP or UDP payload (the requests and replies a test controls).
public struct FaultPlan: Sendable, Equatable, CustomStringConvertible {
    public enum Point: String, Sendable, CaseIterable {
        /// Right after the Nth reply frame with payload was written to the TAP.
        case afterRelease = "after-release"
        /// Right before the Nth reply frame with payload would be written (its entry is acknowledged).
        case beforeRelease = "before-release"
        /// Right after the Nth inbound frame with payload was logged and sent to the backup, before its ack.
        case unacked = "unacked"
        /// Not a crash: flip one byte in the first chunk of the Nth snapshot sent to a joining backup.
        case corruptSnapshot = "corrupt-snapshot"
    }
    public var point: Point
    public var count: Int
    public init(point: Point, count: Int) { self.point = point; self.count = count }
    /// `POINT:N`, e.g. `after-release:5`.
    public init?(_ text: String) {
        let p = text.split(separator: ":")
        guard p.count == 2, let pt = Point(rawValue: String(p[0])), let n = Int(p[1]), n > 0 else { return nil }
        point = pt; count = n
    }
    public var description: String { "\(point.rawValue):\(count)" }
}

/// Rules the simulator can break on purpose (see `ftap sim --list-sabotage`).
public enum Sabotage: String, Sendable, CaseIterable, Hashable {
    /// Release output without waiting for the backup's acknowledgement.
    case releaseWithoutAck = "release-without-ack"
    /// Go live without claiming the epoch from the arbiter.
    case skipArbiter = "skip-arbiter"
    /// Derive ISNs from something outside the log (a per-node salt).
    case isnOutsideLog = "isn-outside-log"
    /// Do not send gratuitous ARP when going live.
    case skipGARP = "skip-garp"
}

/// The fault plan and sabotage switches of one core, consulted at named
/// points. Each `*Crash` hook returns the reason to crash with when its
/// fault fires (the caller appends `.crash`), nil otherwise.
struct Faults {
    let plan: FaultPlan?
    let sabotage: Set<Sabotage>
    /// Frames with payload seen so far at the plan's point (only one point is ever armed).
    private var count = 0
    private var snapshotsSent = 0

    init(plan: FaultPlan?, sabotage: Set<Sabotage>) { self.plan = plan; self.sabotage = sabotage }

    /// The simulator asked to break this rule.
    func breaks(_ s: Sabotage) -> Bool { sabotage.contains(s) }

    /// Counts a frame with payload at `point`; true when it is the Nth.
    private mutating func reached(_ point: FaultPlan.Point, _ frame: [UInt8]) -> Bool {
        guard let fp = plan, fp.point == point, carriesPayload(frame) else { return false }
        count += 1
        return count == fp.count
    }

    /// A protected primary logged and sent inbound `frame` as `entry`, not yet acknowledged.
    mutating func unackedCrash(_ frame: [UInt8], entry: UInt64) -> String? {
        reached(.unacked, frame) ? "fault hook \(plan!): inbound entry \(entry) sent, not yet acknowledged" : nil
    }

    /// `frame` is about to be written to the TAP.
    mutating func beforeReleaseCrash(_ frame: [UInt8]) -> String? {
        reached(.beforeRelease, frame) ? "fault hook \(plan!): reply acknowledged by the backup, not yet released" : nil
    }

    /// `frame` was just written to the TAP.
    mutating func afterReleaseCrash(_ frame: [UInt8]) -> String? {
        reached(.afterRelease, frame) ? "fault hook \(plan!): reply released" : nil
    }

    /// A snapshot is about to be sent to a joining backup: true when its
    /// first chunk must be corrupted (counts every snapshot sent).
    mutating func corruptSnapshot() -> Bool {
        snapshotsSent += 1
        return plan.map { $0.point == .corruptSnapshot && $0.count == snapshotsSent } ?? false
    }
}

/// The frame carries TCP or UDP payload (a request or reply a test controls).
func carriesPayload(_ f: [UInt8]) -> Bool {
    guard let ip = try? IPv4Header.parse(f, at: 14) else { return false }
    if ip.proto == IPProtocol.tcp, let t = try? TCPHeader.parse(f, ip: ip, verifyChecksum: false) { return !t.payload.isEmpty }
    if ip.proto == IPProtocol.udp { return ip.payload.count > 8 }
    return false
}
