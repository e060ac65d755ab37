import FTStack
import FTWire

// The node loop, once, for the daemon, the simulator and anything else that
// runs a node: everything `ftap run`'s poll loop decides, with the system
// calls left to a `NodeIO`. FTPlatform implements `NodeIO` with poll(2),
// read/write, sockets and the arbiter's files; FTSim implements it with its
// simulated network, TAP queues and arbiter store. Neither decides anything
// the driver decides: when to connect, which connection to keep, how many
// TAP frames to read per wakeup and when to ship the batch to the backup,
// which channel endings count as the peer having closed, how long to sleep,
// and in which order the core's actions are carried out.

/// Fixed parameters of the loop.
public struct NodeLoopConfig: Sendable {
    /// A backup waiting for its primary retries the connection this often.
    public var connectRetry: Nanos = 200 * nsPerMs
    /// At most this many TAP frames per wakeup, so timers and the channel are served fairly.
    public var tapBatch = 256
    /// Ship the entry batch to the backup every this many TAP frames, so it
    /// can acknowledge (and output be released) before the whole batch is read.
    public var shipEvery = 32
    /// ... or as soon as the batch holds this many bytes: with TAP offloads
    /// a frame may be a 64 KiB super-frame, and 32 of them would hold 2 MiB
    /// (and the output that waits for their acknowledgment) back.
    public var shipBytes = 128 * 1024
    /// One channel read takes at most this many bytes.
    public var readBuffer = 1 << 18
    /// The longest poll sleep.
    public var maxSleepMs = 1000
    /// Interval of the status line.
    public var statsInterval: Nanos = 60_000 * nsPerMs
    /// A peer address is configured (a backup connects to it).
    public var canConnect = true
    /// A log-channel connection that has not authenticated by then is closed.
    public var handshakeTimeout: Nanos = 1000 * nsPerMs
    /// At most this many accepted connections authenticate at once; a newer
    /// one closes the oldest (never the authenticated channel).
    public var maxPendingPeers = 4
    /// SYNs shed before logging under a flood (SynAdmission.swift).
    public var synAdmission = SynAdmission.Config()
    public init() {}
}

/// The state of the log channel as the loop sees it.
public enum ChannelState: Equatable, Sendable { case none, connecting, open }

/// Where the current iteration stands.
enum LoopStep { case idle, start, event, afterChannel, tap, afterTick }

/// Result of driving the loop.
public enum LoopProgress: Equatable {
    /// The iteration finished; call `plan` and wait.
    case completed
    /// The node exited or was halted.
    case stopped
}

/// One node's loop around its `ReplicationCore` (see the file comment).
public final class NodeDriver {
    public let core: ReplicationCore
    public let config: NodeLoopConfig
    public internal(set) var channel: ChannelState = .none
    public private(set) var exitCode: Int32? = nil
    /// The epoch claimed and not answered yet.
    public private(set) var claimInFlight: UInt64? = nil
    /// An epoch check not answered yet.
    public private(set) var checkInFlight: UInt64? = nil
    /// A probe of the peer's port is in progress (see PeerProbe.swift).
    public private(set) var probing = false
    var out: [UInt8] = []
    var outHead = 0
    var nextConnectAt: Nanos = 0
    var lastStats: Nanos = 0
    var step = LoopStep.idle
    var pending: [Action] = []
    var pendingIndex = 0
    var iterNow: Nanos = 0
    var iterReady = Readiness()
    var stalled = false
    // The channel's security (ChannelAuth.swift).
    let keys: ChannelKeys
    /// The open channel's security layer (authenticating, or established).
    var secure: SecureChannel? = nil
    /// Until when the channel we connected may take to authenticate.
    var channelDeadline: Nanos = 0
    /// Accepted connections still authenticating, oldest first.
    var pendingPeers: [PendingPeer] = []
    /// Refusals logged at warning level since `since`, and those kept quiet.
    var refusals: (since: Nanos, logged: Int, quiet: Int) = (0, 0, 0)
    /// Role and mode changes, observed once each step of the loop ends.
    var roleWatch = RoleWatch()
    /// Which SYNs read from the TAP are logged (node-local; SynAdmission.swift).
    public internal(set) var synAdmission: SynAdmission

    /// `keys`: derived from the pair's shared secret; the channel is
    /// authenticated and encrypted with them.
    public init(core: ReplicationCore, config: NodeLoopConfig = NodeLoopConfig(), keys: ChannelKeys) {
        self.core = core; self.config = config; self.keys = keys
        synAdmission = SynAdmission(config: config.synAdmission)
    }

    /// Bytes queued for the channel and not yet written.
    public var channelBacklog: Int { out.count - outHead }

    // MARK: The loop

    /// The node starts: the core's first actions (a primary claims epoch 1).
    public func start(now: Nanos, _ io: NodeIO) -> LoopProgress {
        lastStats = now
        iterNow = now
        core.start(now: now, &pending)
        step = .start
        return run(io)
    }

    /// The top of the loop: connects if due, then says what to poll and for how long.
    public func plan(now: Nanos, _ io: NodeIO) -> PollPlan {
        let waiting = core.role == .backup && core.mode == .waitingForPeer && channel == .none && config.canConnect
        if waiting && now >= nextConnectAt {
            nextConnectAt = now + config.connectRetry
            if io.connect() { channel = .connecting; out.removeAll(); outHead = 0 }
        }
        var wake = core.nextWakeup(now: now)
        if waiting && channel == .none { wake = min(wake ?? nextConnectAt, nextConnectAt) }
        if let d = handshakeDeadline { wake = min(wake ?? d, d) }
        var ms = config.maxSleepMs
        if let w = wake {
            ms = w <= now ? 0 : Int(min(Nanos(config.maxSleepMs), (w - now + nsPerMs - 1) / nsPerMs))
        }
        return PollPlan(tap: core.wantsTapInput || core.drainsTap,
                        channelWrite: channel == .connecting || (channel == .open && channelBacklog > 0),
                        probe: probing, pending: pendingPeers.map(\.connection),
                        wakeAt: now + Nanos(ms) * nsPerMs, timeoutMs: ms)
    }

    /// SIGHUP: a status line. SIGTERM/SIGINT: a clean stop with status 0.
    public func signal(terminate: Bool, number: Int32, _ io: NodeIO) {
        if !terminate { io.logStats(); return }
        io.log(.notice, "received signal \(number): shutting down")
        exitCode = 0
        observeRole(io)
    }

    /// Tells the platform what changed in the node's role or mode (one place).
    func observeRole(_ io: NodeIO) {
        for c in roleWatch.observe(core, exitCode: exitCode) { io.roleChanged(c) }
    }

    /// One iteration after poll returned: accept, read the channel, operator
    /// requests, perform; read the TAP; timers; ship; flush the channel.
    public func iterate(now: Nanos, ready: Readiness, _ io: NodeIO) -> LoopProgress {
        precondition(step == .idle, "iterate while an iteration is in progress")
        guard exitCode == nil, !io.halted else { return .stopped }
        iterNow = now
        iterReady = ready
        expireHandshakes(io)
        if ready.listen { acceptPeer(io) }
        if ready.pending || ready.listen { servicePending(io) }
        if ready.channel && channel != .none { serviceChannel(io) }
        if probing && (ready.probe || !core.takeoverPending) { serviceProbe(io) }
        if io.halted || exitCode != nil { return .stopped }
        io.serviceOperator(self, now: now)
        step = .afterChannel
        return run(io)
    }

    /// The arbiter answered the claim in flight (between iterations).
    public func arbiterAnswered(_ answer: ArbiterAnswer, now: Nanos, _ io: NodeIO) -> LoopProgress {
        guard let e = claimInFlight else { return .completed }
        claimInFlight = nil
        return event(now: now, io) { core.arbiterAnswered(epoch: e, answer: answer, now: now, &pending) }
    }

    /// The arbiter answered the epoch check in flight (between iterations).
    public func epochChecked(_ answer: EpochCheck, now: Nanos, _ io: NodeIO) -> LoopProgress {
        guard checkInFlight != nil else { return .completed }
        checkInFlight = nil
        return event(now: now, io) { core.epochChecked(answer, now: now, &pending) }
    }

    /// This node's health changed (between iterations).
    public func healthChanged(_ healthy: Bool, reason: String, now: Nanos, _ io: NodeIO) -> LoopProgress {
        event(now: now, io) { core.setHealth(healthy, reason: reason, now: now, &pending) }
    }

    /// Runs an outside event through the core and performs what it decided.
    func event(now: Nanos, _ io: NodeIO, _ body: () -> Void) -> LoopProgress {
        precondition(step == .idle, "an event while an iteration is in progress")
        guard exitCode == nil, !io.halted else { return .stopped }
        iterNow = now
        body()
        step = .event
        return run(io)
    }

    /// Operator request (POST /switchover), taken during `serviceOperator`.
    public func requestSwitchover(now: Nanos) -> String? {
        core.requestSwitchover(now: now, &pending)
    }

    /// Runs the iteration from where it stands until it ends or blocks.
    func run(_ io: NodeIO) -> LoopProgress {
        let progress = runSteps(io)
        observeRole(io)
        return progress
    }

    func runSteps(_ io: NodeIO) -> LoopProgress {
        while true {
            if io.halted || exitCode != nil { step = .idle; return .stopped }
            if stalled { stalled = false; step = .idle; return .stopped }
            switch step {
            case .idle:
                return .completed
            case .start:
                guard perform(io) else { continue }
                step = .idle
            case .event:
                guard perform(io) else { continue }
                flushChannel(io)
                step = .idle
            case .afterChannel:
                guard perform(io) else { continue }
                step = .tap
            case .tap:
                if iterReady.tap { readTap(io) }
                if io.halted || exitCode != nil { continue }
                core.tick(now: iterNow, &pending)
                core.flush(now: iterNow, &pending)
                step = .afterTick
            case .afterTick:
                guard perform(io) else { continue }
                flushChannel(io)
                if iterNow >= lastStats + config.statsInterval { io.logStats(); lastStats = iterNow }
                step = .idle
            }
        }
    }

    // MARK: TAP

    func readTap(_ io: NodeIO) {
        var shed = 0
        for n in 1...config.tapBatch {
            if n % config.shipEvery == 0 || core.sendBatchBytes >= config.shipBytes {
                core.flush(now: iterNow, &pending)
                guard perform(io) else { return }
                flushChannel(io)
            }
            var f: [UInt8], trusted = false
            while true {
                switch io.readTap() {
                case .frame(let x, let t): f = x; trusted = t
                case .empty: return
                case .failed(let why):
                    io.log(.error, "TAP read failed: \(why)")
                    exitCode = 1; io.exit(code: 1, reason: "TAP read failed: \(why)")
                    return
                }
                // A SYN shed under a flood is dropped like a frame lost before
                // the TAP (SynAdmission.swift). It costs a header check, so it
                // does not count against the batch: up to 8 batches' worth are
                // read per wakeup, so the kernel's queue keeps room for real clients.
                guard core.takesInput, !synAdmission.admit(f, stack: core.replica.stack, now: iterNow) else { break }
                shed += 1
                if shed >= 8 * config.tapBatch { return }
            }
            core.tapFrame(f, checksumTrusted: trusted, now: iterNow, &pending)
            // A node that is not live only drains (or forwards) what arrives.
            if !core.isLive { continue }
            if !pending.isEmpty { guard perform(io) else { return } }
            if !core.wantsTapInput { return }
        }
    }

    // MARK: Channel

    func serviceChannel(_ io: NodeIO) {
        if channel == .connecting {
            switch io.connectOutcome() {
            case .pending:
                return
            case .refused:
                io.log(.debug, "connect to the peer failed: connection refused")
                io.closeChannel()
                channel = .none
            case .failed(let why):
                io.log(.debug, "connect to the peer failed: \(why)")
                io.closeChannel()
                channel = .none
            case .connected:
                channel = .open
                out.removeAll(); outHead = 0
                startHandshake(io)
            }
            return
        }
        while channel == .open {
            switch io.readChannel(max: config.readBuffer) {
            case .data(let bytes):
                guard let plain = unseal(bytes, io) else { return }
                if !plain.isEmpty { deliver(plain, io) }
                if io.halted || channel != .open { return }
                if bytes.count < config.readBuffer { break }
                continue
            case .wouldBlock:
                break
            case .ended(let end) where secure?.isEstablished != true:
                io.log(.warning, "log channel closed before the peer authenticated: \(end) (a node with another secret or protocol version closes the connection; see its log)")
                dropChannel(io)
            case .ended(let end):
                io.log(.info, "log channel: \(end)")
                dropChannel(io)
                core.peerDown(reason: end.description, peerClosed: end.peerClosed, now: iterNow, &pending)
                if end == .reset && core.takeoverPending && config.canConnect && !probing {
                    probing = io.startProbe()
                    if probing {
                        io.log(.info, "asking the primary's kernel whether its process is alive (connecting to its port)")
                        serviceProbe(io)  // a local peer may refuse at once
                    }
                }
            }
            break
        }
        if channel == .open && iterReady.channelWritable { flushChannel(io) }
    }

    /// The probe of the peer's port resolved, or is no longer needed.
    func serviceProbe(_ io: NodeIO) {
        let status = core.takeoverPending ? io.probeStatus() : .failed("takeover no longer pending")
        if status == .pending { return }
        io.closeProbe()
        probing = false
        switch status {
        case .refused:
            core.peerProcessGone("the primary's port refuses connections (its process is gone)", now: iterNow, &pending)
        case .resetAfterConnect:
            core.peerProcessGone("the primary's listening socket closed under our connection (its process exited)", now: iterNow, &pending)
        case .answered:
            io.log(.notice, "the primary's process is alive (it answered on its port): taking over only once its lease has run out")
        case .failed(let why):
            io.log(.info, "probe of the primary's port: \(why); taking over once its lease has run out")
        case .pending:
            break
        }
    }

    /// Writes pending channel output as far as the socket takes it.
    public func flushChannel(_ io: NodeIO) {
        while channel == .open && outHead < out.count {
            let n = io.writeChannel(out[outHead...])
            if n <= 0 { break }  // would block; errors surface on the next read
            outHead += n
        }
        if outHead == out.count { out.removeAll(keepingCapacity: true); outHead = 0 }
    }

    func dropChannel(_ io: NodeIO) {
        if channel != .none { io.closeChannel() }
        channel = .none
        secure = nil
        out.removeAll(); outHead = 0
    }

    /// Closes the channel on shutdown, after writing what is pending.
    public func shutdown(_ io: NodeIO) {
        flushChannel(io)
        dropChannel(io)
        for p in pendingPeers { io.refuse(p.connection, sending: []) }
        pendingPeers.removeAll()
        if probing { io.closeProbe(); probing = false }
        observeRole(io)
    }

    // MARK: Actions

    /// Performs pending actions in order. False when the node exited or was halted.
    func perform(_ io: NodeIO) -> Bool {
        while pendingIndex < pending.count {
            let a = pending[pendingIndex]
            pendingIndex += 1
            switch a {
            case .emit(let o):
                io.writeTap(o)
            case .shadow(let o):
                io.shadow(o)
            case .send(let bytes):
                // Only an authenticated channel carries the core's messages (sealed).
                if channel == .open && secure?.isEstablished == true { secure!.seal(bytes, into: &out) }
            case .closePeer(let reason):
                flushChannel(io)
                io.log(.info, "closing the log channel: \(reason)")
                dropChannel(io)
            case .claimEpoch(let e):
                switch io.claim(epoch: e) {
                case .answered(let answer):
                    core.arbiterAnswered(epoch: e, answer: answer, now: iterNow, &pending)
                case .pending:
                    claimInFlight = e
                }
            case .checkEpoch(let e):
                switch io.checkEpoch(e) {
                case .answered(let answer):
                    core.epochChecked(answer, now: iterNow, &pending)
                case .pending:
                    checkInFlight = e
                }
            case .releaseOwnership(let e):
                io.releaseOwnership(epoch: e)
            case .exit(let code, let reason):
                exitCode = code
                pending.removeAll(); pendingIndex = 0
                io.exit(code: code, reason: reason)
                return false
            case .crash(let why):
                flushChannel(io)
                io.crash(why)
                stalled = !io.halted  // a platform whose crash returns stops this loop anyway
                return false
            case .snapshotSent(let index, let bytes):
                io.snapshotSent(index: index, bytes: bytes)
            case .applied(let e, let outputs):
                io.applied(e, outputs: outputs)
            case .log(let level, let msg):
                io.log(level, msg)
            }
            if io.halted { return false }
        }
        pending.removeAll(keepingCapacity: true)
        pendingIndex = 0
        return true
    }
}
