// Telling a dead primary from a reset channel.
//
// A backup whose log channel was reset (ECONNRESET) cannot tell from the
// reset alone whether the primary's process died (its kernel answers RST
// when the process exits with unread data in its socket) or the network
// reset a channel whose primary is alive (a middlebox, an expired
// conntrack entry, a forged RST), possibly paused and about to release
// output it was acknowledged for. The first allows an immediate takeover,
// the second only once every lease the primary holds has run out
// (`ReplicationCore.peerDown`). So the loop asks the primary's kernel: it
// connects to the primary's listening port. A refused connection means no
// process listens there any more: the primary process is gone and emits
// nothing, and the backup takes over at once. A connection that opens
// means the process is alive (its kernel completes handshakes even while
// it is stopped): the backup waits out the lease. Silence, too.

import FTStack

extension ReplicationCore {
    /// A backup waits to take over once the primary's leases have run out
    /// (its channel ended without proof that the primary is gone).
    public var takeoverPending: Bool {
        if case .backup(takeoverAt: .some) = state { return true }
        return false
    }

    /// The primary's kernel refused a connection to its listening port while
    /// a takeover was pending: its process is gone, take over now.
    public func peerProcessGone(_ why: String, now: Nanos, _ a: inout [Action]) {
        guard takeoverPending else { return }
        state = .backup(takeoverAt: nil)
        peerFailed("log channel reset and \(why)", now: now, &a)
    }
}
