// Fault hooks and sabotage switches: the simulator and the fault tests use
// them to crash the primary at precise points of the output rule, or to
// break a rule on purpose and prove the checkers notice.

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
