// How a node starts (issue 16): with the same flags every time, so that a
// service manager can restart it after any failure. `--role primary` is the
// preference for a fresh pair, not an order:
//
// * a fresh arbiter (no epoch ever claimed): nobody ever served, so the
//   preferred primary claims epoch 1 and the backup waits for it (as before);
// * an arbiter that shows earlier epochs: the pair has a history and the
//   state lives (if anywhere) in the other node's process. This node has no
//   state (a process starts empty), so it must not serve: serving would
//   discard everything a live-but-unreachable peer holds. It follows: it
//   connects to its peer and joins it by state transfer, retrying for as long
//   as it takes and saying why;
// * `--new-pair` (the operator's explicit cold start after both nodes died):
//   claim the next free epoch and serve alone with an empty state; the other
//   node, restarted with its usual flags, then joins it.
//
// Pure: the arbiter's answer in, the configuration out. The platform asks the
// arbiter once before the loop starts (retrying while it is unavailable).

/// What the node does first.
public enum StartupPlan: Equatable, Sendable, CustomStringConvertible {
    /// Run as configured: solo serves; a primary claims epoch 1 on a fresh
    /// arbiter; a backup waits for its primary.
    case asConfigured
    /// Join the peer as backup whatever the role says; `reason` is for the
    /// operator (log, /status).
    case follow(reason: String)
    /// `--new-pair`: claim `epoch` and serve alone with an empty state.
    case newPair(epoch: UInt64)

    public var description: String {
        switch self {
        case .asConfigured: return "as configured"
        case .follow(let r): return "follow the peer: \(r)"
        case .newPair(let e): return "new pair in epoch \(e)"
        }
    }
}

public enum Startup {
    /// `arbiter`: the answer to "was any epoch above 0 claimed?"
    /// (`Arbiter.check(above: 0)`); nil when the node has no arbiter (solo).
    /// Unavailable answers are retried by the caller; here they are an error.
    public static func decide(role: Role, newPair: Bool, arbiter: EpochCheck?) -> StartupPlan {
        guard role != .solo, let arbiter else { return .asConfigured }
        switch arbiter {
        case .current:
            // Fresh arbiter: nobody ever served.
            return newPair ? .newPair(epoch: 1) : .asConfigured
        case .superseded(let highest, let detail):
            if newPair { return .newPair(epoch: highest + 1) }
            return .follow(reason: "the arbiter shows epoch \(highest) (\(detail)) and this node has no state: it joins its peer "
                           + "as backup and does not serve on its own; if both nodes died, start one with --new-pair")
        case .unavailable:
            preconditionFailure("Startup.decide needs an arbiter answer; retry while it is unavailable")
        }
    }

    /// The core's configuration for `plan`.
    public static func apply(_ plan: StartupPlan, to c: ReplicationConfig) -> ReplicationConfig {
        var c = c
        switch plan {
        case .asConfigured:
            break
        case .follow:
            c.role = .backup
        case .newPair(let e):
            c.role = .primary
            c.firstEpoch = e
            c.startAlone = true
        }
        return c
    }
}

/// Refusals that say "no primary here (yet)" rather than "you may not join":
/// a node that has not joined yet keeps retrying after them instead of
/// exiting. Two nodes that both follow (a cold restart) meet this way.
public enum TransientRefusal {
    public static let notPrimary = "this node is a backup itself"
    public static let busy = "this node already has a peer connected"
    public static let all = [notPrimary, busy]
}
