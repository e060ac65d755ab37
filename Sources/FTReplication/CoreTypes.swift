import FTStack
import FTWire

/// A FIFO with amortized O(1) pops (also used by the simulator).
public struct FIFO<T> {
    private var items: [T] = []
    private var head = 0
    public init() {}
    public var count: Int { items.count - head }
    public var isEmpty: Bool { count == 0 }
    public var first: T? { head < items.count ? items[head] : nil }
    public mutating func append(_ x: T) { items.append(x) }
    public mutating func popFirst() -> T? {
        guard head < items.count else { return nil }
        let x = items[head]
        head += 1
        if head == items.count { items.removeAll(keepingCapacity: true); head = 0 }
        else if head > 4096 && head * 2 > items.count { items.removeFirst(head); head = 0 }
        return x
    }
    public mutating func replaceFirst(_ x: T) { items[head] = x }
    public mutating func removeAll() { items.removeAll(); head = 0 }
    public var all: ArraySlice<T> { items[head...] }
}

public enum Role: String, Sendable, CaseIterable {
    case solo, primary, backup
}

/// Timing and bounds of the replication protocol.
public struct ReplicationConfig: Sendable {
    public var role: Role
    public var nodeName: String
    /// Send a heartbeat when nothing else was sent for this long.
    public var heartbeat: Nanos = 50 * nsPerMs
    /// Suspect the peer after this long without hearing from it.
    public var failoverTimeout: Nanos = 500 * nsPerMs
    public var garpCount: Int = 3
    public var garpInterval: Nanos = 100 * nsPerMs
    /// The primary stops reading its TAP while this many entries or bytes are unacknowledged.
    public var maxLagEntries: Int = 4096
    public var maxLagBytes: Int = 8 << 20
    /// The primary sends its state digest at most this often.
    public var digestInterval: Nanos = 1000 * nsPerMs
    /// Test-only fault injection (see `FaultPlan`).
    public var fault: FaultPlan? = nil
    /// A primary serves alone at once instead of waiting for its backup; a
    /// backup may join later by state transfer.
    public var startAlone = false
    /// The epoch a primary claims when it starts (1; `--new-pair` on an
    /// arbiter with history: the next free one, see Startup.swift).
    public var firstEpoch: UInt64 = 1
    /// The identity of this node's arbiter store (`Arbiter.identity`), compared at hello.
    public var arbiterIdentity = ""
    /// `Arbiter.ownershipBound` (etcd's lease): a node serving without a
    /// backup stops once it could not prove its epoch for this long. nil: no lease.
    public var ownershipBound: Nanos? = nil
    /// Size of the chunks a snapshot is streamed in.
    public var snapshotChunkBytes: Int = 256 * 1024
    /// Record the state digest after every entry whose index is a multiple of
    /// this, and after go-live and handover entries (0: never). Taken right
    /// after the entry is applied; `takeCheckpoint` hands them to a recorder.
    public var checkpointEvery: UInt64 = 0
    /// How long a standby keeps the frames that reach its own TAP
    /// (`StandbyBuffer`); nil: the failover timeout plus one second; 0: off.
    public var standbyWindow: Nanos? = nil
    /// At most this many bytes of them.
    public var standbyMaxBytes: Int = 8 << 20
    public var effectiveStandbyWindow: Nanos { standbyWindow ?? failoverTimeout + 1000 * nsPerMs }
    /// Simulator-only: deliberately break one rule, to prove the checkers catch it.
    /// The command line never sets this.
    public var sabotage: Set<Sabotage> = []
    public init(role: Role, nodeName: String) { self.role = role; self.nodeName = nodeName }
}

/// What a node is doing, as seen from outside (`ReplicationCore.mode`).
public enum Mode: Equatable, Sendable, CustomStringConvertible {
    /// Primary: waiting for its backup. Backup: connecting, waiting for welcome.
    case waitingForPeer
    /// Backup: receiving a snapshot of the running primary's state.
    case joining
    /// Primary live while a joining backup restores a snapshot and catches
    /// up: output is released at once (the pair is not protected yet).
    case syncing
    /// Primary with an in-sync backup: the output rule holds.
    case protected
    /// Primary handing its role to the backup on request: takes no input,
    /// waits for the backup to acknowledge everything, then hands over.
    case handingOver
    /// Following the primary's log; emits nothing.
    case backup
    /// Asked the arbiter for `epoch`; emits nothing until it answers.
    case claiming(epoch: UInt64)
    /// Live without a backup (solo, or after a takeover): output is released at once.
    case alone
    /// Stopped for good (lost the epoch, diverged, fatal error).
    case stopped
    public var description: String {
        switch self {
        case .waitingForPeer: return "waiting-for-peer"
        case .joining: return "joining"
        case .syncing: return "syncing"
        case .handingOver: return "handing-over"
        case .protected: return "protected"
        case .backup: return "backup"
        case .claiming(let e): return "claiming-epoch-\(e)"
        case .alone: return "alone"
        case .stopped: return "stopped"
        }
    }
}

public enum LogLevel: Sendable { case debug, info, notice, warning, error }

/// A frame the replica produced, with the log entry that produced it
/// (index 0 for frames the node makes itself, such as gratuitous ARP).
public struct OutputFrame: Sendable, Equatable {
    public var frame: [UInt8]
    public var index: UInt64
    /// Log time of the producing entry.
    public var time: Nanos
    /// Local time at which the frame was produced (to measure how long the output rule held it).
    public var producedAt: Nanos = 0
    /// Non-zero for a TCP super-segment (see `Frames`): the payload bytes per
    /// segment the kernel (TSO) or `TCPSegmentation.split` cuts it into.
    public var segmentSize: Int = 0
    public init(frame: [UInt8], index: UInt64, time: Nanos, producedAt: Nanos = 0, segmentSize: Int = 0) {
        self.frame = frame; self.index = index; self.time = time; self.producedAt = producedAt
        self.segmentSize = segmentSize
    }

    /// The outputs of applying entry `index` (log time `time`).
    public static func of(_ out: Frames, index: UInt64, time: Nanos, producedAt: Nanos = 0) -> [OutputFrame] {
        out.indices.map { OutputFrame(frame: out[$0], index: index, time: time, producedAt: producedAt,
                                      segmentSize: out.segmentSize(at: $0)) }
    }
}

/// What the core asks the platform to do.
public enum Action: Sendable {
    /// Write this frame to the TAP.
    case emit(OutputFrame)
    /// A frame the backup's replica produced but did not emit.
    case shadow(OutputFrame)
    /// Append bytes to the peer channel.
    case send([UInt8])
    /// Close the peer channel.
    case closePeer(reason: String)
    /// Claim `epoch` with the arbiter; answer with `arbiterAnswered`.
    case claimEpoch(UInt64)
    /// Ask the arbiter whether an epoch above this one was claimed; answer with `epochChecked`.
    case checkEpoch(UInt64)
    /// This node emits only with a backup now: give up the arbiter's lease on `epoch` (no answer).
    case releaseOwnership(UInt64)
    /// The node must exit with this code.
    case exit(code: Int32, reason: String)
    /// Test fault hook fired: die at once, like SIGKILL.
    case crash(String)
    /// A snapshot of `bytes` at log index `index` was queued for a joining backup.
    case snapshotSent(index: UInt64, bytes: Int)
    /// An entry was applied, with every frame it produced (for recording
    /// and inspection; whether they are emitted is said by emit/shadow).
    case applied(LogEntry, outputs: [[UInt8]])
    case log(LogLevel, String)
}

/// Time elapsed from `t` to `now`, zero if `now` is earlier (callers on
/// one node pass a monotonic clock, but events may be stamped slightly out of order).
@inline(__always) func since(_ t: Nanos, _ now: Nanos) -> Nanos { now >= t ? now - t : 0 }

func hex(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}
