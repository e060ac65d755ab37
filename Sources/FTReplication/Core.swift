import FTStack
import FTWire

/// The replication protocol of one node as a pure state machine: inputs are
/// TAP frames, channel bytes, peer connect/close, arbiter answers, operator
/// requests and the local monotonic time; outputs are `Action`s. It owns the
/// replica. `role` starts as configured and changes on takeover (backup →
/// primary) and on a planned switchover (both ways).
///
/// This file is the mode machine; its rules live beside it:
/// `OutputGate.swift` (the output rule: acknowledgements, the ack lease, release, backpressure),
/// `Takeover.swift` (failure detection, claiming an epoch, going live, GARP),
/// `StateTransfer.swift` (a backup joining a running primary),
/// `Switchover.swift` (planned handover), `PeerChannel.swift` (messages),
/// `Faults.swift` (test fault hooks and sabotage switches).
public final class ReplicationCore {
    /// What the node is doing, with the data that matters only in that mode.
    /// `mode` is its public projection.
    enum State {
        case waitingForPeer
        /// The snapshot being received, once it began.
        case joining(SnapshotDownload?)
        case syncing
        case protected
        case handingOver
        /// `takeoverAt`: the channel to our primary closed; take over at this
        /// time (local), once every lease the primary could hold has expired.
        case backup(takeoverAt: Nanos?)
        case claiming(epoch: UInt64)
        case alone
        case stopped

        var mode: Mode {
            switch self {
            case .waitingForPeer: return .waitingForPeer
            case .joining: return .joining
            case .syncing: return .syncing
            case .protected: return .protected
            case .handingOver: return .handingOver
            case .backup: return .backup
            case .claiming(let e): return .claiming(epoch: e)
            case .alone: return .alone
            case .stopped: return .stopped
            }
        }
    }

    public let config: ReplicationConfig
    public let replica: Replica
    public let configDigest: UInt64
    public internal(set) var role: Role
    var state: State
    public var mode: Mode { state.mode }
    public internal(set) var epoch: UInt64 = 0
    public internal(set) var clock = LogClock()

    // Leader side.
    var decoder = ChannelDecoder()
    var sendBatch: [LogEntry] = []
    /// Encoded bytes in `sendBatch`: the loop ships early when it grows
    /// (`NodeLoopConfig.shipBytes`), since with TAP offloads one frame may be 64 KiB.
    public internal(set) var sendBatchBytes = 0
    /// Held frames and unacknowledged entries: the output rule.
    var gate: OutputGate
    var lastDigestAt: Nanos = 0
    var lastDigestIndex: UInt64 = 0

    // Follower side.
    var ackDue = false
    /// Entries received and not yet applied (PeerChannel.swift: acknowledged on receipt).
    var received: [LogEntry] = []
    public internal(set) var diverged = false
    public internal(set) var digestChecks: UInt64 = 0
    public internal(set) var divergences: UInt64 = 0
    /// The primary confirmed this follower holds everything whose output it
    /// released: set by a plain welcome (or, after a state transfer, by the
    /// welcome sent when the primary leaves `syncing`) and on handing over.
    /// Only an in-sync follower may take over.
    public internal(set) var inSync = false
    /// The backup told us its state diverged (`diverged` message): it will
    /// not take over, so this primary is not protected whatever its mode says.
    public internal(set) var backupDiverged = false
    /// The peer's hello on this channel was handled (a second one is ignored).
    var helloTaken = false

    // Both.
    var peerConnected = false
    var lastHeard: Nanos = 0
    var lastSent: Nanos = 0
    var garp = GARPBurst()
    var faults: Faults
    public internal(set) var ignoredFrames: UInt64 = 0
    public internal(set) var discardedWhileNotLive: UInt64 = 0
    /// Frames a former primary read on its TAP after handing over and passed
    /// to the new primary (the switch still sent them to its port).
    public internal(set) var forwardedFrames: UInt64 = 0
    /// What a standby keeps of the frames reaching its TAP, for go-live (StandbyBuffer.swift).
    public internal(set) var standby: StandbyBuffer
    /// Frames from the standby buffer logged at go-live, and those skipped
    /// there as data the log already held.
    public internal(set) var standbyApplied: UInt64 = 0
    public internal(set) var standbySkippedOld: UInt64 = 0
    var forwardUntil: Nanos = 0
    var checkpoints = FIFO<(index: UInt64, digest: UInt64)>()
    public internal(set) var takeovers: UInt64 = 0
    public internal(set) var switchovers: UInt64 = 0
    public internal(set) var joinsServed: UInt64 = 0

    // Health and the arbiter (Health.swift).
    /// This node's own health (its tracked links and checks): node-local.
    public internal(set) var healthy = true
    public internal(set) var healthReason = ""
    /// The peer's health as it last reported it (nil: not reported yet).
    public internal(set) var peerHealthy: Bool? = nil
    /// A claim that waits for this node to be healthy again.
    var claimDeferred = false
    /// The claim in progress follows a handover entry (planned switchover),
    /// not a failure: the old primary stays on the channel as our backup.
    var handoverClaim = false
    /// A backup's hello that arrived while this fresh primary claimed epoch 1.
    var pendingHello: ChannelMessage.Hello? = nil
    /// A claim the arbiter could not answer, retried at this time.
    var claimRetryAt: Nanos? = nil
    var claimFailures = 0
    /// Claims the arbiter could not answer (unreachable, I/O errors).
    public internal(set) var arbiterUnavailable: UInt64 = 0
    /// A node serving without a backup re-checks its epoch at this time.
    var nextEpochCheck: Nanos = 0
    var epochCheckInFlight = false
    /// The alone node's lease (Ownership.swift).
    var ownership = OwnershipLease()

    public init(config: ReplicationConfig, stack: Stack) {
        self.config = config
        self.replica = Replica(stack: stack)
        var w = ByteWriter()
        stack.config.encode(into: &w)
        stack.encodeState(into: &w)  // services and ports are part of the empty state
        configDigest = SipHash24.hash(k0: 1, k1: 2, w.bytes)
        role = config.role
        gate = OutputGate(config: config)
        standby = StandbyBuffer(window: config.effectiveStandbyWindow, maxBytes: config.standbyMaxBytes)
        faults = Faults(plan: config.fault, sabotage: config.sabotage)
        switch config.role {
        case .solo: state = .alone; epoch = 1
        case .primary, .backup: state = .waitingForPeer
        }
    }

    /// First actions after start: the primary claims epoch 1 so that two
    /// nodes started as primary cannot both serve.
    public func start(now: Nanos, _ a: inout [Action]) {
        clock.resume(lastLogged: 0, localNow: now)
        lastHeard = now; lastSent = now
        switch role {
        case .solo:
            a.append(.log(.notice, "solo: live, no replication"))
            startGARP(now: now, &a)
        case .primary:
            state = .claiming(epoch: config.firstEpoch)
            ownership.claimAskedAt = now  // a leasing arbiter's bound counts from here (Ownership.swift)
            a.append(.claimEpoch(config.firstEpoch))
        case .backup:
            a.append(.log(.info, "backup: connecting to its peer"))
        }
    }

    /// True when the platform should read frames from the TAP and pass them in.
    /// False under backpressure (the kernel queue and TCP absorb it).
    public var wantsTapInput: Bool {
        switch mode {
        case .alone: return true
        case .protected, .syncing: return gate.admitsInput
        default: return false
        }
    }

    /// True when frames arriving on the TAP should be read and discarded
    /// (a backup's TAP never drives its replica).
    /// While claiming, a backup taking over keeps reading into its standby
    /// buffer (order is kept either way); with the buffer off, or taking a
    /// planned handover (the old primary forwards what it gets), it leaves
    /// what arrives in the kernel's queue, to read it once live.
    public var drainsTap: Bool {
        if case .claiming = state { return role == .backup && standby.isOn && !handoverClaim }
        return !isLive
    }

    /// A standby keeps frames for go-live: a backup following the log or
    /// claiming to take over (not a planned handover).
    var keepsStandbyFrames: Bool {
        guard role == .backup, standby.isOn else { return false }
        switch state {
        case .backup: return true
        case .claiming: return !handoverClaim
        default: return false
        }
    }

    /// The node may emit frames.
    public var isLive: Bool {
        switch mode {
        case .alone, .protected, .syncing, .handingOver: return true
        default: return false
        }
    }
    /// The node leads the log (assigns indexes) and the output rule applies.
    var protectsOutput: Bool { mode == .protected || mode == .handingOver }
    /// Entries are streamed to a follower.
    var streams: Bool { mode == .protected || mode == .handingOver || mode == .syncing }
    /// The node takes input from its TAP (or forwarded by its former primary).
    var takesInput: Bool { mode == .alone || mode == .protected || mode == .syncing }

    public var ackedIndex: UInt64 { gate.ackedIndex }
    /// Entries sent to the backup and not yet acknowledged.
    public var lagEntries: Int { gate.lagEntries }
    public var lagBytes: Int { gate.lagBytes }
    /// Frames produced and held by the output rule.
    public var heldFrames: Int { gate.heldFrames }
    public var isPeerConnected: Bool { peerConnected }

    // MARK: - Input and output

    /// A frame read from the TAP. `checksumTrusted`: read with offloads and
    /// marked NEEDS_CSUM or DATA_VALID by the kernel (`EntryKind.offloadFrame`).
    public func tapFrame(_ f: [UInt8], checksumTrusted: Bool = false, now: Nanos, _ a: inout [Action]) {
        guard takesInput else {
            // Right after a planned switchover the switch may still deliver
            // frames for the appliance here, until the new primary's GARP
            // moves the MAC: pass them on instead of losing them. The
            // channel's `forward` carries no offload flag, so a partial
            // checksum is completed first.
            if shouldForward(f, now: now) {
                forwardedFrames += 1
                send(.forward(frame: checksumTrusted ? TransportChecksum.completed(f) : f), now: now, &a)
                return
            }
            // Our own MAC as source: the primary's frames (its GARPs), not input.
            if keepsStandbyFrames, MACAddress(bytes: f, at: 6) != replica.stack.config.mac,
               replica.stack.classify(f) == .accept {
                standby.arrived(f, trusted: checksumTrusted, unicastToUs: MACAddress(bytes: f, at: 0) == replica.stack.config.mac, now: now)
                return
            }
            discardedWhileNotLive += 1; return
        }
        guard replica.stack.classify(f) == .accept else { ignoredFrames += 1; return }
        if ownershipLapsed(now: now, &a) { return }  // alone under an expired arbiter lease (Ownership.swift)
        let entry = LogEntry(index: replica.appliedIndex + 1, epoch: epoch, time: clock.stamp(localNow: now),
                             kind: checksumTrusted ? .offloadFrame : .frame, payload: f)
        append(entry, now: now, &a)
        if mode == .protected, let why = faults.unackedCrash(f, entry: entry.index) {
            flush(now: now, &a)
            a.append(.crash(why))
        }
    }

    /// Applies a new entry as leader: to the replica, to the channel, outputs held or released.
    func append(_ entry: LogEntry, now: Nanos, _ a: inout [Action]) {
        var out = Frames()
        do { try replica.apply(entry, out: &out) } catch {
            fatal("cannot apply own entry: \(error)", &a); return
        }
        noteCheckpoint(entry)
        a.append(.applied(entry, outputs: out.frames))
        // Held frames are recorded with their entry (protectsOutput implies streams).
        let hold = protectsOutput && !faults.breaks(.releaseWithoutAck)
        if streams {
            sendBatch.append(entry)
            sendBatchBytes += entry.encodedSize
            let held = hold ? OutputFrame.of(out, index: entry.index, time: entry.time, producedAt: now) : []
            gate.streamed(index: entry.index, bytes: entry.encodedSize, now: now, held: held)
        }
        if !hold {
            for o in OutputFrame.of(out, index: entry.index, time: entry.time) { release(o, &a) }
        }
    }

    // MARK: - Time

    /// Fires due work: stack timers (as logged ticks), heartbeats, failure
    /// detection, GARP repeats, digest checks.
    public func tick(now: Nanos, _ a: inout [Action]) {
        if ownershipLapsed(now: now, &a) { return }  // before anything here can emit
        if isLive && mode != .handingOver, let d = replica.stack.nextDeadline, clock.toLocal(d) <= now {
            let t = clock.stamp(localNow: now)
            if d <= t { append(LogEntry(index: replica.appliedIndex + 1, epoch: epoch, time: t, kind: .tick), now: now, &a) }
        }
        tickGARP(now: now, &a)
        watchPeer(now: now, &a)
        tickArbiter(now: now, &a)
        if mode == .protected && replica.appliedIndex != lastDigestIndex && since(lastDigestAt, now) >= config.digestInterval {
            flush(now: now, &a)
            lastDigestAt = now
            lastDigestIndex = replica.appliedIndex
            send(.digest(index: replica.appliedIndex, value: replica.digest), now: now, &a)
        }
    }

    /// When `tick` next has work, in local time.
    public func nextWakeup(now: Nanos) -> Nanos? {
        var w: Nanos? = nil
        func consider(_ x: Nanos) { w = w.map { min($0, x) } ?? x }
        if isLive && mode != .handingOver, let d = replica.stack.nextDeadline { consider(clock.toLocal(d)) }
        if garp.left > 0 && isLive { consider(garp.next) }
        if peerConnected && watchesPeer {
            consider(lastHeard + config.failoverTimeout)
            consider(lastSent + config.heartbeat)
        }
        if case .backup(let t?) = state { consider(t) }
        if peerConnected && !watchesPeer { consider(lastHeard + config.failoverTimeout) }
        if mode == .protected && replica.appliedIndex != lastDigestIndex { consider(lastDigestAt + config.digestInterval) }
        arbiterWakeup(&w)
        return w
    }

    /// Sends what was batched during this loop iteration (entries, ack).
    public func flush(now: Nanos, _ a: inout [Action]) {
        applyReceived(now: now, &a)
        if !sendBatch.isEmpty {
            // Each message within the channel's payload limit (the receiver
            // refuses larger ones).
            var start = 0, bytes = 4
            for (i, e) in sendBatch.enumerated() {
                if bytes + e.encodedSize > ChannelCodec.maxPayload && i > start {
                    send(.entries(Array(sendBatch[start..<i])), now: now, &a)
                    start = i; bytes = 4
                }
                bytes += e.encodedSize
            }
            send(.entries(start == 0 ? sendBatch : Array(sendBatch[start...])), now: now, &a)
            sendBatch.removeAll(keepingCapacity: true)
            sendBatchBytes = 0
        }
        if ackDue {
            ackDue = false
            send(.ack(index: replica.appliedIndex), now: now, &a)
        }
    }

    func send(_ m: ChannelMessage, now: Nanos, _ a: inout [Action]) {
        var bytes: [UInt8] = []
        ChannelCodec.encode(m, into: &bytes)
        a.append(.send(bytes))
        lastSent = now
    }

    // MARK: - Checkpoints

    func noteCheckpoint(_ e: LogEntry) {
        guard config.checkpointEvery > 0,
              e.index % config.checkpointEvery == 0 || e.kind == .goLive || e.kind == .handover else { return }
        checkpoints.append((e.index, replica.digest))
    }

    /// The digest taken right after entry `index` was applied, if one was due.
    public func takeCheckpoint(index: UInt64) -> UInt64? {
        while let c = checkpoints.first, c.index < index { _ = checkpoints.popFirst() }
        guard let c = checkpoints.first, c.index == index else { return nil }
        _ = checkpoints.popFirst()
        return c.digest
    }

    func fatal(_ why: String, _ a: inout [Action]) {
        state = .stopped
        a.append(.exit(code: 5, reason: why))
    }
}
