// Role and mode changes of a node, derived in one place from the core's state
// after each step of the loop (NodeDriver calls `RoleWatch.observe`). The
// daemon turns them into --notify-script runs, log fields, metrics and
// systemd status; the simulator sees the same events. They describe the node
// to its operator: they never feed back into replicated state.

/// What an operator's hook is told (`FTAP_EVENT`).
public enum RoleEvent: String, Sendable, CaseIterable, CustomStringConvertible {
    /// This node became the live primary (serving). A primary that loses its
    /// backup claims the next epoch and goes on: that is `alone`, not a new `primary`.
    case primary
    /// This node follows a primary as its backup.
    case backup
    /// Serving without a backup (output released at once).
    case alone
    /// Serving with an in-sync backup: the pair is protected.
    case protected
    /// Another node holds a higher epoch: this node stops (exit 2).
    case lostEpoch = "lost-epoch"
    /// This node's state diverged from its primary's (exit 4).
    case diverged
    /// The process is stopping (any exit).
    case stopping
    /// This node's own health checks pass again / fail.
    case healthy, unhealthy

    public var description: String { rawValue }
}

/// One change, with the position of the log when it happened.
public struct RoleChange: Equatable, Sendable {
    public var event: RoleEvent
    public var epoch: UInt64
    public var index: UInt64
    /// Mode after the change (for logs and status).
    public var mode: Mode
    public init(event: RoleEvent, epoch: UInt64, index: UInt64, mode: Mode) {
        self.event = event; self.epoch = epoch; self.index = index; self.mode = mode
    }
}

/// Compares the core's state with what it saw last and names the changes.
/// Pure: state in, events out.
public struct RoleWatch: Sendable {
    enum Position: Equatable { case none, primary, backup }
    var position = Position.none
    var servingMode: Mode? = nil
    var healthy = true
    var diverged = false
    var stopped = false

    public init() {}

    public mutating func observe(_ core: ReplicationCore, exitCode: Int32?) -> [RoleChange] {
        var events: [RoleEvent] = []
        if core.healthy != healthy {
            healthy = core.healthy
            events.append(healthy ? .healthy : .unhealthy)
        }
        if !stopped {
            // While a claim is in flight the node keeps the position it had:
            // a primary that lost its backup stays primary, a backup taking
            // over is still the backup until the arbiter answers.
            var now: Position = core.isLive ? .primary : core.mode == .backup ? .backup : .none
            if case .claiming = core.mode { now = position }
            if now != position {
                position = now
                switch now {
                case .primary: events.append(.primary)
                case .backup: events.append(.backup); servingMode = nil
                case .none: servingMode = nil
                }
            }
            if core.isLive {
                let m: Mode? = core.mode == .alone ? .alone : core.mode == .protected && !core.backupDiverged ? .protected : servingMode
                if m != servingMode {
                    servingMode = m
                    if m == .alone { events.append(.alone) }
                    if m == .protected { events.append(.protected) }
                }
            }
        }
        if core.diverged && !diverged {
            diverged = true
            events.append(.diverged)
        }
        if let code = exitCode, !stopped {
            stopped = true
            if code == 2 { events.append(.lostEpoch) }
            events.append(.stopping)
        }
        return events.map { RoleChange(event: $0, epoch: core.epoch, index: core.replica.appliedIndex, mode: core.mode) }
    }
}
