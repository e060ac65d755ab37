/// The interface every arbiter backend implements (the file backend lives in
/// the platform layer; the simulator has an in-memory one). The replication
/// core never calls it directly: it emits `Action.claimEpoch` and receives
/// `arbiterAnswered`, so claims can be slow or fail without blocking the core.
/// Decides which node may go live in an epoch: an atomic test-and-set per
/// epoch. Exactly one claimant of an epoch wins.
public protocol Arbiter: AnyObject {
    var description: String { get }
    /// Claims `epoch` for `node`. Returns whether this node won, and a detail for the log.
    func claim(epoch: UInt64, node: String) -> (won: Bool, detail: String)
}

