import FTStack

/// The interface every arbiter backend implements (the file and etcd backends
/// live in the platform layer; the simulator has an in-memory one). The
/// replication core never calls it directly: it emits `Action.claimEpoch`/
/// `.checkEpoch`/`.releaseOwnership` and receives `arbiterAnswered`/
/// `epochChecked`, so calls can be slow or fail without blocking the core or
/// the loop.
/// Decides which node may go live in an epoch: an atomic test-and-set per
/// epoch. Exactly one claimant of an epoch wins.
public protocol Arbiter: AnyObject {
    var description: String { get }
    /// Names this store: two nodes that report different identities do not
    /// share an arbiter, and could both win the same epoch.
    var identity: String { get }
    /// Claims `epoch` for `node`: won, lost (someone else holds it) or
    /// unavailable (the store did not answer; says nothing about the owner).
    func claim(epoch: UInt64, node: String) -> ArbiterAnswer
    /// Whether an epoch above `epoch` was claimed. With an ownership bound,
    /// `.current` also proves this node still holds its lease.
    func check(above epoch: UInt64) -> EpochCheck
    /// Whether any epoch was ever claimed, for a starting node deciding how
    /// to start (Startup.swift): `.current` if none, `.superseded` with the
    /// highest one otherwise. Unlike `check`, it proves no ownership.
    func history() -> EpochCheck
    /// A store that grants ownership under a lease (etcd): a node that won a
    /// claim, or whose check answered `.current`, may emit without a backup
    /// for at most this long after it *asked* (see ARCHITECTURE.md, "The etcd
    /// arbiter"). nil: no lease (the file arbiter); the node serves on until
    /// a higher epoch is seen.
    var ownershipBound: Nanos? { get }
    /// This node no longer emits without a backup (it is protected, or a
    /// backup): give up the lease so another node's claim need not wait it out.
    func releaseOwnership()
}

extension Arbiter {
    /// Enough for a store without leases, whose `check` is a plain read.
    public func history() -> EpochCheck { check(above: 0) }
    public var ownershipBound: Nanos? { nil }
    public func releaseOwnership() {}
}
