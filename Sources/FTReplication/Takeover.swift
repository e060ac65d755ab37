import FTStack
import FTWire

/// The gratuitous ARP burst a node sends when it goes live, so the switch
/// and the hosts learn where the appliance's MAC and IP now are.
struct GARPBurst {
    var left = 0
    var next: Nanos = 0
    /// While a backup watches us, a GARP is safe only until it could have
    /// given up on us: failoverTimeout after the last message it must have
    /// received to be able to take over (welcome, go-live entry, in-sync
    /// confirmation). A GARP from a process resumed after a pause later than
    /// that could pull the MAC back from the new primary.
    var until: Nanos = .max
}

// Failure detection and takeover: watching the peer (heartbeats, silence,
// a closed channel), claiming the next epoch from the arbiter, going live
// with a go-live entry, and announcing it with gratuitous ARP.
extension ReplicationCore {
    var watchesPeer: Bool {
        switch mode {
        case .protected, .backup, .syncing, .handingOver, .joining: return true
        // Taking a handover: the old primary follows on the channel and must
        // keep hearing from us while the arbiter answers, or it takes over.
        case .claiming: return handoverClaim
        default: return false
        }
    }

    /// The failure-detection part of `tick`.
    func watchPeer(now: Nanos, _ a: inout [Action]) {
        if peerConnected && !watchesPeer && since(lastHeard, now) >= config.failoverTimeout {
            // A peer connected but the handshake (hello/welcome) never came:
            // drop it, or this node would refuse every later peer for good.
            a.append(.log(.warning, "peer connected but silent for \(Double(since(lastHeard, now)) / 1e6) ms in mode \(mode); closing the channel"))
            a.append(.closePeer(reason: "handshake timed out"))
            peerConnected = false
        }
        if case .backup(let t?) = state, now >= t {
            state = .backup(takeoverAt: nil)
            peerFailed("log channel closed and the primary silent for the failure timeout", now: now, &a)
        }
        if peerConnected && watchesPeer {
            if since(lastHeard, now) >= config.failoverTimeout {
                peerFailed("no message from the peer for \(Double(since(lastHeard, now)) / 1e6) ms", now: now, &a)
            } else if since(lastSent, now) >= config.heartbeat {
                send(.heartbeat, now: now, &a)
            }
        }
    }

    func peerFailed(_ why: String, now: Nanos, _ a: inout [Action]) {
        a.append(.log(.warning, "peer failed: \(why)"))
        if peerConnected { a.append(.closePeer(reason: why)); peerConnected = false }
        switch mode {
        case .backup:
            if diverged {
                state = .stopped
                a.append(.exit(code: 4, reason: "primary failed but this backup's state diverged; refusing to go live"))
                return
            }
            if !inSync {
                // Joined by state transfer and the primary never said it caught
                // up: it was still releasing output we may not hold, and it goes
                // on alone without claiming. Taking over here would be a split
                // brain; our state is partial, so only a fresh join can follow.
                state = .stopped
                a.append(.exit(code: 3, reason: "primary lost before this backup caught up (join incomplete); restart it to join again"))
                return
            }
            state = .claiming(epoch: epoch + 1)
            a.append(.log(.notice, "claiming epoch \(epoch + 1) to take over at log index \(replica.appliedIndex)"))
            claim(epoch + 1, now: now, &a)
        case .protected, .handingOver:
            state = .claiming(epoch: epoch + 1)
            a.append(.log(.notice, "claiming epoch \(epoch + 1) to continue without backup (\(gate.heldFrames) frames held)"))
            claim(epoch + 1, now: now, &a)
        case .syncing:
            dropJoiningBackup(why, &a)
        case .joining:
            snapshotFailed("primary went silent during state transfer", now: now, &a)
        default:
            break
        }
    }

    /// `claimed` is ours (Health.swift has the claim and the answers).
    func won(epoch claimed: UInt64, detail: String, now: Nanos, _ a: inout [Action]) {
        epoch = claimed
        nextEpochCheck = now + config.failoverTimeout / 2
        let handover = handoverClaim
        handoverClaim = false
        if role == .primary && claimed == config.firstEpoch && replica.appliedIndex == 0 {
            if config.startAlone {
                state = .alone
                a.append(.log(.notice, "claimed epoch \(claimed); serving alone until a backup joins"))
                startGARP(now: now, &a)
            } else {
                state = .waitingForPeer
                a.append(.log(.notice, "claimed epoch 1; waiting for the backup before serving"))
            }
            if let h = pendingHello, peerConnected {
                pendingHello = nil
                helloTaken = false
                handle(.hello(h), now: now, &a)
            }
            return
        }
        clock.resume(lastLogged: replica.lastTime, localNow: now)
        if role == .backup && handover && peerConnected {
            // Planned switchover: the old primary follows us on the same channel.
            role = .primary
            state = .protected
            standby.reset()  // the old primary forwards what its TAP still gets
            gate.restart(ackedIndex: replica.appliedIndex)
            lastDigestAt = now
            append(LogEntry(index: replica.appliedIndex + 1, epoch: epoch, time: clock.stamp(localNow: now),
                            kind: .goLive, payload: [0]), now: now, &a)
            flush(now: now, &a)
            switchovers += 1
            a.append(.log(.notice, "PRIMARY in epoch \(epoch) at log index \(replica.appliedIndex) by planned switchover; protected"))
            startGARP(now: now, &a)
            // Health may have changed while the claim was in flight.
            evaluateHealth(now: now, &a)
        } else if role == .backup {
            // Takeover: first entry of the new epoch retransmits unacknowledged data at once.
            role = .primary
            state = .alone
            takeovers += 1
            append(LogEntry(index: replica.appliedIndex + 1, epoch: epoch, time: clock.stamp(localNow: now),
                            kind: .goLive, payload: [1]), now: now, &a)
            a.append(.log(.notice, "LIVE in epoch \(epoch) at log index \(replica.appliedIndex) (took over from the primary)"))
            startGARP(now: now, &a)
            applyStandbyFrames(now: now, &a)
        } else {
            // The primary lost its backup: release what was held and go on alone.
            state = .alone
            takeovers += 1
            var n = 0
            for f in gate.unholdAll() { release(f, &a); n += 1 }
            a.append(.log(.notice, "alone in epoch \(epoch): backup lost, \(n) held frames released"))
        }
    }

    func startGARP(now: Nanos, _ a: inout [Action]) {
        garp.left = faults.breaks(.skipGARP) ? 0 : config.garpCount
        if garp.left > 0 {
            a.append(.log(.notice, "gratuitous ARP: \(garp.left) x \(replica.stack.config.ip) is-at \(replica.stack.config.mac), every \(config.garpInterval / nsPerMs) ms (epoch \(epoch))"))
        }
        garp.next = now
        garp.until = protectsOutput ? now + config.failoverTimeout - config.failoverTimeout / 64 : .max
        tick(now: now, &a)
    }

    /// The GARP part of `tick`.
    func tickGARP(now: Nanos, _ a: inout [Action]) {
        if garp.left > 0 && now >= garp.next && isLive && now >= garp.until {
            garp.left = 0  // too late: our backup may have replaced us (see GARPBurst.until)
        }
        if garp.left > 0 && now >= garp.next && isLive {
            a.append(.emit(OutputFrame(frame: ARPPacket.gratuitous(mac: replica.stack.config.mac, ip: replica.stack.config.ip),
                                       index: 0, time: clock.last)))
            garp.left -= 1
            garp.next = now + config.garpInterval
        }
    }
}

extension ReplicationCore {
    /// Go-live after a takeover: log and apply what the standby kept and the
    /// old primary's log does not cover (StandbyBuffer.swift has the rule),
    /// after the GARP, so replies follow the MAC's move.
    func applyStandbyFrames(now: Nanos, _ a: inout [Action]) {
        let frames = standby.takeAll(now: now)
        guard !frames.isEmpty else { return }
        var applied = 0, old = 0
        for (f, trusted) in frames {
            if replica.stack.isOldData(f) {
                old += 1
                a.append(.log(.debug, "standby buffer: skipped (data already received) \(frameSummary(f))"))
                continue
            }
            a.append(.log(.debug, "standby buffer: applying \(frameSummary(f))"))
            tapFrame(f, checksumTrusted: trusted, now: now, &a)
            applied += 1
        }
        standbyApplied += UInt64(applied)
        standbySkippedOld += UInt64(old)
        a.append(.log(.notice, "applied \(applied) frames the old primary never logged from the standby buffer (\(old) skipped as data already received)"))
    }
}
