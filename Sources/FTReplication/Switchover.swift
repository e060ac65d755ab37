import FTStack
import FTWire

// Planned switchover: the operator asks a protected primary to hand its role
// to the in-sync backup. The primary stops taking input (`handingOver`),
// waits until the backup acknowledged everything and no frame is held, then
// logs a handover entry and follows as backup. The backup, on applying that
// entry, claims the next epoch and leads on the same channel. For a while the
// old primary forwards frames the switch still sends to its port.
extension ReplicationCore {
    /// Operator request: hand the primary role to the in-sync backup. Returns
    /// an error message when the pair cannot switch now.
    public func requestSwitchover(now: Nanos, _ a: inout [Action]) -> String? {
        guard role == .primary, mode == .protected else {
            return "switchover needs a protected primary (this node is \(role), \(mode))"
        }
        guard peerHealthy != false else {
            return "the backup reports itself unhealthy; not handing over to it"
        }
        state = .handingOver
        a.append(.log(.notice, "switchover requested: input paused until the backup has acknowledged index \(replica.appliedIndex)"))
        flush(now: now, &a)
        tryHandover(now: now, &a)
        return nil
    }

    func tryHandover(now: Nanos, _ a: inout [Action]) {
        guard mode == .handingOver, gate.heldFrames == 0, ackedIndex == replica.appliedIndex else { return }
        let e = LogEntry(index: replica.appliedIndex + 1, epoch: epoch, time: clock.stamp(localNow: now), kind: .handover)
        append(e, now: now, &a)
        flush(now: now, &a)
        role = .backup
        state = .backup(takeoverAt: nil)
        inSync = true
        forwardUntil = now + config.failoverTimeout
        gate.forgetEntries()  // a handover entry produces no frames
        garp.left = 0
        switchovers += 1
        a.append(.log(.notice, "handed over at log index \(e.index) (epoch \(epoch)); now following as backup"))
    }

    /// The backup applied a handover entry: claim the next epoch and lead.
    func takeHandover(now: Nanos, _ a: inout [Action]) {
        guard mode == .backup else { return }
        flush(now: now, &a)  // acknowledge the handover entry before leading
        state = .claiming(epoch: epoch + 1)
        handoverClaim = true
        a.append(.log(.notice, "handover received at log index \(replica.appliedIndex): claiming epoch \(epoch + 1)"))
        claim(epoch + 1, now: now, &a)
    }

    /// A former primary that just handed over passes on frames for the
    /// appliance that still reach its TAP, while the channel is up and
    /// within failoverTimeout of the handover.
    func shouldForward(_ f: [UInt8], now: Nanos) -> Bool {
        guard mode == Mode.backup, peerConnected, now < forwardUntil, f.count >= 14 else { return false }
        let unicastToUs: Bool = MACAddress(bytes: f, at: 0) == replica.stack.config.mac
        guard unicastToUs else { return false }
        return replica.stack.classify(f) == FrameDisposition.accept
    }
}
