/// The interface every arbiter backend implements (the file backend lives in
/// the platform layer; the simulator has an in-memory one). The replication
/// core never calls it directly: it emits `Action.claimEpoch`/`.checkEpoch`
/// and receives `arbiterAnswered`/`epochChecked`, so claims can be slow or
/// fail without blocking the core or the loop.
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
    /// Whether an epoch above `epoch` was claimed.
    func check(above epoch: UInt64) -> EpochCheck
}
