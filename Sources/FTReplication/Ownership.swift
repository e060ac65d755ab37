import FTStack

// An alone node's proof that it still owns its epoch, for arbiters that grant
// ownership under a lease (etcd; `ReplicationConfig.ownershipBound`). The file
// arbiter has no bound and none of this applies.
//
// The arbiter refuses every claim of a higher epoch while the node's lease
// lives; the lease begins after the node *asked* (a claim grants a fresh
// lease, a check renews it), and lasts at least the TTL from then on the
// store's clock. So a node that asked at local time t and got `won` or
// `current` may emit without a backup until t + bound, where bound =
// TTL·(1−ρ)/(1+ρ) − δ is shorter than the lease on any clocks whose rates are
// within ρ of real time (δ covers the loop's reaction). Past that, with no
// newer proof, it stops (exit 2) BEFORE another node can be granted the next
// epoch. The timing argument is in ARCHITECTURE.md ("The etcd arbiter").
//
// A node that emits only with a backup (protected, backup, handing over) is
// covered by the output rule and gives the lease up (`releaseOwnership`), so
// a takeover after its death need not wait the lease out.

struct OwnershipLease {
    /// Local time at which the claim in flight was asked for.
    var claimAskedAt: Nanos = 0
    /// Local time at which the check in flight was asked for.
    var checkAskedAt: Nanos = 0
    /// The node may emit without a backup until this local time.
    var provenUntil: Nanos? = nil
    /// The arbiter holds a lease for this node that was not released yet.
    var held = false
}

extension ReplicationCore {
    /// How often a node serving alone re-checks its epoch (and renews its lease).
    var epochCheckInterval: Nanos {
        guard let b = config.ownershipBound else { return config.failoverTimeout / 2 }
        return max(1 * nsPerMs, min(config.failoverTimeout / 2, b / 4))
    }

    /// A claim was won: the lease began after `claimAskedAt`.
    func ownershipWon(now: Nanos) {
        guard let b = config.ownershipBound else { return }
        ownership.provenUntil = ownership.claimAskedAt + b
        ownership.held = true
        nextEpochCheck = min(nextEpochCheck, now + epochCheckInterval)
    }

    /// A check answered `current`: the lease was renewed after `checkAskedAt`.
    func ownershipProven() {
        guard let b = config.ownershipBound, ownership.held else { return }
        ownership.provenUntil = max(ownership.provenUntil ?? 0, ownership.checkAskedAt + b)
    }

    /// The lease part of `tick`: give the lease up once it is not needed,
    /// stop serving once it is no longer proven.
    func tickOwnership(now: Nanos, _ a: inout [Action]) {
        guard let b = config.ownershipBound, ownership.held else { return }
        if case .claiming = mode { return }
        if mode == .stopped { return }
        guard checksEpoch else {
            ownership = OwnershipLease(claimAskedAt: ownership.claimAskedAt, checkAskedAt: ownership.checkAskedAt)
            a.append(.releaseOwnership(epoch))
            return
        }
        _ = ownershipLapsed(now: now, &a)
    }

    /// Stops the node (exit 2) if it emits without a backup and its
    /// ownership is no longer proven at `now`. Called before anything that
    /// can emit (a TAP frame's entry, `tick`), so that no frame leaves after
    /// the bound even when the loop resumes late (the deadline wakeup may
    /// come after a long iteration or a pause).
    func ownershipLapsed(now: Nanos, _ a: inout [Action]) -> Bool {
        guard let b = config.ownershipBound, ownership.held, checksEpoch else { return false }
        let until = ownership.provenUntil ?? 0
        guard now >= until else { return false }
        state = .stopped
        let n = gate.discardHeld()
        a.append(.exit(code: 2, reason: "lost epoch \(epoch): serving without a backup, this node could not renew its arbiter lease "
            + "for \((now - (until - b)) / nsPerMs) ms (bound \(b / nsPerMs) ms); stopping before another node can be granted "
            + "epoch \(epoch + 1); \(n) held frames discarded, emitting nothing"))
        return true
    }

    func ownershipWakeup(_ c: (Nanos) -> Void) {
        guard config.ownershipBound != nil, ownership.held, mode != .stopped else { return }
        if case .claiming = mode { return }
        c(checksEpoch ? (ownership.provenUntil ?? 0) : 0)
    }
}
