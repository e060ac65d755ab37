import FTStack

/// What the arbiter said to a claim.
public enum ArbiterAnswer: Sendable, Equatable {
    /// This node owns the epoch now.
    case won(String)
    /// Another node claimed it first.
    case lost(String)
    /// No answer (I/O error, unreachable store, timeout): says nothing about
    /// who owns the epoch, so the claim is retried and never ends the node.
    case unavailable(String)
}

/// What the arbiter said when a node serving alone re-checked its epoch.
public enum EpochCheck: Sendable, Equatable {
    /// No epoch above ours was claimed.
    case current
    /// `epoch` (above ours) was claimed: we no longer own the service.
    case superseded(epoch: UInt64, detail: String)
    case unavailable(String)
}

// Health and honest arbiter outcomes.
//
// Health is a node-local fact (tracked links, a check script) that reaches the
// replicated state only through decisions the log already records (a handover
// entry, a go-live entry). The rules:
//
// | situation                                             | decision                                 |
// |-------------------------------------------------------|------------------------------------------|
// | a node is unhealthy                                   | it never claims an epoch (it waits until healthy) |
// | protected primary unhealthy, in-sync backup healthy    | the primary hands over (planned switchover) |
// | primary loses its backup while unhealthy               | it does not claim (holds its output)     |
// | both unhealthy                                        | the current primary stays                |
// | operator switchover to a backup that reports unhealthy | refused                                  |
// | a node serving alone becomes healthy again             | it sends gratuitous ARP again            |
//
// The arbiter answers won, lost or unavailable. Unavailable is retried with
// backoff and never by itself ends a node. A node serving without a backup
// re-checks its epoch every half failover timeout and stops (exit 2) as soon
// as a higher epoch exists; with a leasing arbiter (etcd) also once it could
// not renew its lease for the arbiter's bound (Ownership.swift).
extension ReplicationCore {
    /// This node's health changed (from the platform's link and script tracking).
    public func setHealth(_ h: Bool, reason: String, now: Nanos, _ a: inout [Action]) {
        guard h != healthy || reason != healthReason else { return }
        let changed = h != healthy
        healthy = h
        healthReason = reason
        guard changed else { return }
        a.append(.log(h ? .notice : .warning, h ? "this node is healthy again (\(reason))" : "this node is UNHEALTHY: \(reason)"))
        if peerConnected && handshakeDone { send(.health(healthy: h, reason: reason), now: now, &a) }
        // A node serving without a backup that could replace it announces
        // itself again when its links come back: gratuitous ARPs it sent while
        // its uplink was down never reached the switch, which may still send
        // the appliance's frames to the other port. (With a backup watching,
        // a GARP is safe only inside the cut-off of `GARPBurst.until`.)
        if h && (mode == .alone || mode == .syncing) { startGARP(now: now, &a) }
        evaluateHealth(now: now, &a)
    }

    /// The channel's handshake completed (hello answered by welcome).
    var handshakeDone: Bool {
        switch mode {
        case .protected, .syncing, .handingOver, .backup, .joining: return true
        default: return false
        }
    }

    func peerHealth(_ h: Bool, reason: String, now: Nanos, _ a: inout [Action]) {
        let before = peerHealthy
        peerHealthy = h
        if before != h {
            a.append(.log(h ? .info : .warning, "peer reports itself \(h ? "healthy" : "UNHEALTHY")\(reason.isEmpty ? "" : ": \(reason)")"))
        }
        evaluateHealth(now: now, &a)
    }

    /// Applies the health rules after a change on either side.
    func evaluateHealth(now: Nanos, _ a: inout [Action]) {
        if !healthy && peerHealthy == true && role == .primary && mode == .protected {
            a.append(.log(.notice, "this primary is unhealthy and its backup healthy: handing over"))
            _ = requestSwitchover(now: now, &a)
        }
        if healthy, claimDeferred, case .claiming(let e) = state {
            a.append(.log(.notice, "healthy again: claiming epoch \(e) now"))
            claim(e, now: now, &a)
        }
    }

    /// Sends our health to the peer (after the handshake).
    func announceHealth(now: Nanos, _ a: inout [Action]) {
        send(.health(healthy: healthy, reason: healthReason), now: now, &a)
    }

    /// Asks the arbiter for `e`, unless this node is unhealthy.
    func claim(_ e: UInt64, now: Nanos, _ a: inout [Action]) {
        if faults.breaks(.skipArbiter) {
            arbiterAnswered(epoch: e, answer: .won("SABOTAGE: arbiter skipped"), now: now, &a)
            return
        }
        claimRetryAt = nil
        if !healthy && handoverClaim && peerConnected {
            // Handed the primary role while unhealthy: hand the service back
            // at once. Closing the channel lets the old primary (in sync,
            // healthy) take over; this node claims later and, losing, stops.
            handoverClaim = false
            a.append(.log(.warning, "received a handover while unhealthy (\(healthReason)); closing the channel so the old primary takes the service back"))
            a.append(.closePeer(reason: "unhealthy: cannot take the handover"))
            peerConnected = false
        }
        if !healthy {
            if !claimDeferred {
                a.append(.log(.warning, "not claiming epoch \(e): this node is unhealthy (\(healthReason)); it claims when healthy again"))
            }
            claimDeferred = true
            return
        }
        claimDeferred = false
        ownership.claimAskedAt = now
        a.append(.claimEpoch(e))
    }

    /// The arbiter's answer to `claimEpoch`.
    public func arbiterAnswered(epoch claimed: UInt64, answer: ArbiterAnswer, now: Nanos, _ a: inout [Action]) {
        guard case .claiming(let e) = state, e == claimed else { return }
        switch answer {
        case .won(let detail):
            claimFailures = 0
            won(epoch: claimed, detail: detail, now: now, &a)
            ownershipWon(now: now)
        case .lost(let detail):
            state = .stopped
            let n = gate.discardHeld()
            a.append(.exit(code: 2, reason: "lost epoch \(claimed) to another node (\(detail)); \(n) held frames discarded, emitting nothing"))
        case .unavailable(let detail):
            arbiterUnavailable += 1
            claimFailures += 1
            // 50 ms, doubling, at most the failover timeout.
            let backoff = min(config.failoverTimeout, (50 * nsPerMs) << Nanos(min(claimFailures - 1, 10)))
            claimRetryAt = now + backoff
            a.append(.log(.warning, "arbiter unavailable for epoch \(claimed) (\(detail)); retrying in \(backoff / nsPerMs) ms (attempt \(claimFailures))"))
        }
    }

    /// The old two-outcome form (tests, the simulator's sabotage path).
    public func arbiterAnswered(epoch claimed: UInt64, won: Bool, detail: String, now: Nanos, _ a: inout [Action]) {
        arbiterAnswered(epoch: claimed, answer: won ? .won(detail) : .lost(detail), now: now, &a)
    }

    /// The arbiter's answer to `checkEpoch`.
    public func epochChecked(_ answer: EpochCheck, now: Nanos, _ a: inout [Action]) {
        epochCheckInFlight = false
        switch answer {
        case .current:
            ownershipProven()
        case .superseded(let e, let detail):
            guard isLive, e > epoch else { return }
            state = .stopped
            a.append(.exit(code: 2, reason: "epoch \(e) was claimed by another node (\(detail)) while this node served epoch \(epoch) alone; stopping, emitting nothing"))
        case .unavailable(let detail):
            arbiterUnavailable += 1
            let proof = ownership.provenUntil.map { $0 > now ? " for at most \(($0 - now) / nsPerMs) ms" : "" } ?? ""
            a.append(.log(.warning, "arbiter unavailable for the epoch check (\(detail)); serving on in epoch \(epoch)\(proof)"))
        }
    }

    /// Serving without a backup: re-check the epoch at least every half failover timeout.
    var checksEpoch: Bool {
        config.role != .solo && (mode == .alone || mode == .syncing) && !faults.breaks(.skipArbiter)
    }

    /// The health and arbiter part of `tick`.
    func tickArbiter(now: Nanos, _ a: inout [Action]) {
        if let r = claimRetryAt, now >= r, case .claiming(let e) = state {
            claimRetryAt = nil
            claim(e, now: now, &a)
        }
        if checksEpoch && !epochCheckInFlight && now >= nextEpochCheck {
            epochCheckInFlight = true
            nextEpochCheck = now + epochCheckInterval
            ownership.checkAskedAt = now
            a.append(.checkEpoch(epoch))
        }
        tickOwnership(now: now, &a)
    }

    func arbiterWakeup(_ w: inout Nanos?) {
        func c(_ x: Nanos) { w = w.map { min($0, x) } ?? x }
        if let r = claimRetryAt, case .claiming = state { c(r) }
        if checksEpoch && !epochCheckInFlight { c(nextEpochCheck) }
        ownershipWakeup(c)
    }
}
