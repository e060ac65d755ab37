import FTStack
import FTWire

// What the node loop (NodeDriver.swift) asks of a platform: the `NodeIO`
// protocol, one method per system call, and the values those calls return.
// FTPlatform implements it with real system calls, FTSim with its simulated
// world; neither decides anything the driver decides.

/// How a log-channel connection ended, as the read that saw the end reports it.
public enum ChannelEnd: Sendable, Equatable, CustomStringConvertible {
    /// End of stream: the peer's kernel sent FIN (the peer process closed the
    /// channel or exited).
    case eof
    /// ECONNRESET: an RST arrived. The peer's kernel sends one when the peer
    /// process dies with unread data in its socket, but the network can reset
    /// a connection whose peer is alive (see PeerProbe.swift).
    case reset
    /// Any other error on our side (ETIMEDOUT, EHOSTUNREACH, ...).
    case error(String)

    /// The peer process ended the connection itself: only a FIN proves it
    /// (it closed the channel on its way to claiming an epoch, or exited), so
    /// only then may a backup take over at once (`ReplicationCore.peerDown`).
    /// A reset is not proof; the loop asks the peer's kernel (`PeerProbe.swift`).
    public var peerClosed: Bool { self == .eof }

    public var description: String {
        switch self {
        case .eof: return "peer closed the connection"
        case .reset: return "Connection reset by peer"
        case .error(let s): return s
        }
    }
}

/// The outcome of one read on the log channel.
public enum ChannelRead {
    case data(ArraySlice<UInt8>)
    case wouldBlock
    case ended(ChannelEnd)
}

/// The outcome of a connect in progress.
public enum ConnectOutcome: Equatable {
    case pending
    case connected
    /// ECONNREFUSED: the peer host answered that nothing listens on the port.
    case refused
    case failed(String)
}

/// What the probe of the peer's port has learned (see PeerProbe.swift).
public enum ProbeStatus: Equatable {
    case pending
    /// ECONNREFUSED: nothing listens on the port.
    case refused
    /// The connection completed, then was reset before any byte or FIN: a
    /// listening socket closed with our connection in its accept queue (the
    /// process was exiting while its kernel completed our handshake).
    case resetAfterConnect
    /// The process answered (bytes or an orderly close): it is alive.
    case answered
    case failed(String)
}

/// The outcome of one TAP read.
public enum TapRead {
    /// `checksumTrusted`: read with offloads, transport checksum partial or
    /// verified by the kernel (logged as `EntryKind.offloadFrame`).
    case frame([UInt8], checksumTrusted: Bool = false)
    case empty
    case failed(String)
}

/// An arbiter request as the platform performs it.
public enum ArbiterCall<Answer: Equatable>: Equatable {
    /// Answered at once.
    case answered(Answer)
    /// The answer comes later (`NodeDriver.arbiterAnswered`/`epochChecked`);
    /// the loop goes on meanwhile (heartbeats, the channel, timers).
    case pending
}

/// What the poll found ready, for one loop iteration.
public struct Readiness: Equatable {
    /// A connection is waiting on the listening socket.
    public var listen = false
    /// The channel that was polled has an event (readable, connect finished, error).
    public var channel = false
    /// The channel is writable (its pending output can be flushed).
    public var channelWritable = false
    /// The TAP has frames.
    public var tap = false
    /// The probe connection to the peer's port has an event (see PeerProbe.swift).
    public var probe = false
    /// One of the accepted connections still authenticating has an event.
    public var pending = false
    public init(listen: Bool = false, channel: Bool = false, channelWritable: Bool = false, tap: Bool = false,
                probe: Bool = false, pending: Bool = false) {
        self.listen = listen; self.channel = channel; self.channelWritable = channelWritable; self.tap = tap
        self.probe = probe; self.pending = pending
    }
}

/// What to poll for next, and until when.
public struct PollPlan: Equatable {
    /// Poll the TAP for input.
    public var tap: Bool
    /// Poll the channel for writability (connect in progress or output pending).
    public var channelWrite: Bool
    /// Poll the probe connection (a connect in progress).
    public var probe: Bool
    /// Accepted connections still authenticating: poll each for input.
    public var pending: [Int] = []
    /// Local time at which to wake up at the latest.
    public var wakeAt: Nanos
    /// The same as a poll(2) timeout in milliseconds (at most 1000).
    public var timeoutMs: Int
}

/// The system calls the node loop needs. Every method is one call (or one
/// simulated call); none decides anything.
public protocol NodeIO: AnyObject {
    /// True when this process can no longer act (killed, or the simulation
    /// ended): the driver stops at once.
    var halted: Bool { get }
    func readTap() -> TapRead
    func writeTap(_ frame: OutputFrame)
    /// A frame the backup's replica produced and the output rule suppressed.
    func shadow(_ frame: OutputFrame)
    /// Starts connecting to the configured peer; false if that failed at once.
    func connect() -> Bool
    /// The connect in progress, once the channel polled ready.
    func connectOutcome() -> ConnectOutcome
    /// Starts a second, short-lived connection to the peer's port, to learn
    /// whether its process still listens; false if that failed at once.
    func startProbe() -> Bool
    /// What the probe has learned so far, once it polled ready.
    func probeStatus() -> ProbeStatus
    func closeProbe()
    /// Accepts one pending connection; returns its handle, nil if none.
    func accept() -> Int?
    /// Writes `bytes` to an accepted connection we do not keep, then closes it.
    func refuse(_ connection: Int, sending bytes: [UInt8])
    /// Makes an accepted connection the log channel.
    func adopt(_ connection: Int)
    /// One read from an accepted connection that is still authenticating.
    func readPending(_ connection: Int, max: Int) -> ChannelRead
    /// Writes to an accepted connection that is still authenticating; returns the byte count.
    func writePending(_ connection: Int, _ bytes: ArraySlice<UInt8>) -> Int
    /// `count` bytes from the system's secure random source (handshake nonces).
    func randomBytes(_ count: Int) -> [UInt8]
    func readChannel(max: Int) -> ChannelRead
    /// Writes as much as the channel takes now; returns the byte count (0 if it would block).
    func writeChannel(_ bytes: ArraySlice<UInt8>) -> Int
    func closeChannel()
    func claim(epoch: UInt64) -> ArbiterCall<ArbiterAnswer>
    /// Asks whether an epoch above `epoch` was claimed.
    func checkEpoch(_ epoch: UInt64) -> ArbiterCall<EpochCheck>
    /// Gives up the arbiter's lease on `epoch` (fire and forget; default: nothing).
    func releaseOwnership(epoch: UInt64)
    func applied(_ entry: LogEntry, outputs: [[UInt8]])
    func snapshotSent(index: UInt64, bytes: Int)
    func log(_ level: LogLevel, _ message: String)
    /// The core decided this process must exit.
    func exit(code: Int32, reason: String)
    /// A test fault hook fired: die at once, like SIGKILL.
    func crash(_ why: String)
    /// Once a minute: a status line.
    func logStats()
    /// Hook: the point in the iteration where operator requests (POST
    /// /switchover) are taken, through `NodeDriver.requestSwitchover`.
    func serviceOperator(_ driver: NodeDriver, now: Nanos)
    /// Hooks around the core's handling of channel bytes (measurements, checkers).
    func willHandleChannelBytes(_ bytes: ArraySlice<UInt8>)
    func didHandleChannelBytes(_ bytes: ArraySlice<UInt8>, actions: ArraySlice<Action>)
    /// The node's role or mode changed (RoleEvents.swift): for the operator only.
    func roleChanged(_ change: RoleChange)
}

extension NodeIO {
    public func releaseOwnership(epoch: UInt64) {}
    public func logStats() {}
    public func serviceOperator(_ driver: NodeDriver, now: Nanos) {}
    public func willHandleChannelBytes(_ bytes: ArraySlice<UInt8>) {}
    public func didHandleChannelBytes(_ bytes: ArraySlice<UInt8>, actions: ArraySlice<Action>) {}
    public func roleChanged(_ change: RoleChange) {}
}
