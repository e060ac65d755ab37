import FTReplication
import FTStack

// An etcd-like arbiter store in the simulated world (some seeds,
// `Parameters.arbiterLeaseTTL`): the winner of a claim holds the "alone"
// lease; a check that reaches the store renews it (expiry = arrival + TTL, on
// the store's clock, which is the world's); a claim of another epoch by
// another node is answered `unavailable` while the lease lives; a node that
// emits only with a backup releases it (`releaseOwnership`, arriving after the
// arbiter latency). The nodes run with `ownershipBound` = TTL·0.99/1.01 −
// 100 ms, as with the etcd arbiter, so an alone node that cannot renew for
// that long stops (Ownership.swift); their clocks drift (`clockPPM`).
//
// Invariant (`emit-without-lease`): a process emitting without a backup
// (alone, syncing) holds the store's lease, unexpired, at the moment of the
// write: the node-side bound (Ownership.swift), computed on its own drifting
// clock from the time it asked, always ends before the store's expiry. The
// store sanity check `lease-overlap` (a grant while another live process holds
// a live lease) guards the model itself.

struct SimLease {
    var node: Int
    var uid: Int
    var epoch: UInt64
    var expiry: Nanos
}

extension Simulation {
    static func ownershipBound(ttl: Nanos) -> Nanos {
        Nanos(Double(ttl) * 0.99 / 1.01) - 100 * nsPerMs
    }

    /// The lease that blocks a claim of `epoch` by node `i` now, if any.
    func leaseBlocking(node i: Int) -> SimLease? {
        guard params.arbiterLeaseTTL != nil, let l = aloneLease, l.node != i, now < l.expiry else { return nil }
        return l
    }

    /// A claim of `e` by node `i` was granted: it holds the lease now.
    func leaseGranted(node i: Int, epoch e: UInt64) {
        guard let ttl = params.arbiterLeaseTTL else { return }
        let other = nodes[1 - i]
        if let l = aloneLease, l.node != i, now < l.expiry, other.alive, other.uid == l.uid {
            fail("lease-overlap", "epoch \(e) granted to n\(i) while n\(l.node) holds the alone lease of epoch \(l.epoch) until \(fmtTime(l.expiry))")
        }
        aloneLease = SimLease(node: i, uid: nodes[i].uid, epoch: e, expiry: now + ttl)
    }

    /// A check of `e` by node `i` reached the store (not down, no higher epoch).
    func leaseCheck(node i: Int, epoch e: UInt64) -> EpochCheck {
        guard let ttl = params.arbiterLeaseTTL else { return .current }
        guard var l = aloneLease, l.node == i, l.uid == nodes[i].uid, l.epoch == e, now < l.expiry else {
            count("lease-lost")
            return .unavailable("no live lease for epoch \(e)")
        }
        l.expiry = now + ttl
        aloneLease = l
        return .current
    }

    /// `emit-without-lease`, at every TAP write of node `n`.
    func checkAloneLease(_ n: SimNode) {
        guard params.arbiterLeaseTTL != nil, !options.sabotage.contains(.skipArbiter) else { return }
        let m = n.core.mode
        guard m == .alone || m == .syncing else { return }
        guard let l = aloneLease, l.node == n.id, l.uid == n.uid, l.epoch == n.core.epoch, now < l.expiry else {
            let held = aloneLease.map { "n\($0.node) epoch \($0.epoch) until \(fmtTime($0.expiry))" } ?? "nobody"
            fail("emit-without-lease", "\(n.name) emitted in mode \(m), epoch \(n.core.epoch), without a live lease at the store (held: \(held))")
            return
        }
    }

    func leaseRelease(node i: Int, uid: Int, epoch e: UInt64) {
        guard let l = aloneLease, l.node == i, l.uid == uid, l.epoch == e else { return }
        trace("arbiter", "n\(i) released its lease on epoch \(e)")
        aloneLease = nil
    }
}
