import FTStack
import FTWire

/// A FIFO with amortized O(1) pops.
struct FIFO<T> {
    private var items: [T] = []
    private var head = 0
    var count: Int { items.count - head }
    var isEmpty: Bool { count == 0 }
    var first: T? { head < items.count ? items[head] : nil }
    mutating func append(_ x: T) { items.append(x) }
    mutating func popFirst() -> T? {
        guard head < items.count else { return nil }
        let x = items[head]
        head += 1
        if head == items.count { items.removeAll(keepingCapacity: true); head = 0 }
        else if head > 4096 && head * 2 > items.count { items.removeFirst(head); head = 0 }
        return x
    }
    mutating func removeAll() { items.removeAll(); head = 0 }
    var all: ArraySlice<T> { items[head...] }
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
    /// Simulator-only: deliberately break one rule, to prove the checkers catch it.
    /// The command line never sets this.
    public var sabotage: Set<Sabotage> = []
    public init(role: Role, nodeName: String) { self.role = role; self.nodeName = nodeName }
}

/// Test-only: make the primary crash at a precise point, counted in frames
/// carrying TCP or UDP payload (the requests and replies a test controls).
public struct FaultPlan: Sendable, Equatable, CustomStringConvertible {
    public enum Point: String, Sendable, CaseIterable {
        /// Right after the Nth reply frame with payload was written to the TAP.
        case afterRelease = "after-release"
        /// Right before the Nth reply frame with payload would be written (its entry is acknowledged).
        case beforeRelease = "before-release"
        /// Right after the Nth inbound frame with payload was logged and sent to the backup, before its ack.
        case unacked = "unacked"
    }
    public var point: Point
    public var count: Int
    public init(point: Point, count: Int) { self.point = point; self.count = count }
    /// `POINT:N`, e.g. `after-release:5`.
    public init?(_ text: String) {
        let p = text.split(separator: ":")
        guard p.count == 2, let pt = Point(rawValue: String(p[0])), let n = Int(p[1]), n > 0 else { return nil }
        point = pt; count = n
    }
    public var description: String { "\(point.rawValue):\(count)" }
}

/// Rules the simulator can break on purpose (see `ftap sim --list-sabotage`).
public enum Sabotage: String, Sendable, CaseIterable, Hashable {
    /// Release output without waiting for the backup's acknowledgement.
    case releaseWithoutAck = "release-without-ack"
    /// Go live without claiming the epoch from the arbiter.
    case skipArbiter = "skip-arbiter"
    /// Derive ISNs from something outside the log (a per-node salt).
    case isnOutsideLog = "isn-outside-log"
    /// Do not send gratuitous ARP when going live.
    case skipGARP = "skip-garp"
}

public enum Mode: Equatable, Sendable, CustomStringConvertible {
    /// Primary: waiting for its backup. Backup: connecting, waiting for welcome.
    case waitingForPeer
    /// Primary with an in-sync backup: the output rule holds.
    case protected
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
    public init(frame: [UInt8], index: UInt64, time: Nanos, producedAt: Nanos = 0) {
        self.frame = frame; self.index = index; self.time = time; self.producedAt = producedAt
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
    /// The node must exit with this code.
    case exit(code: Int32, reason: String)
    /// Test fault hook fired: die at once, like SIGKILL.
    case crash(String)
    /// An entry was applied, with every frame it produced (for recording
    /// and inspection; whether they are emitted is said by emit/shadow).
    case applied(LogEntry, outputs: [[UInt8]])
    case log(LogLevel, String)
}

/// The replication protocol of one node as a pure state machine: inputs are
/// TAP frames, channel bytes, peer connect/close, arbiter answers and the
/// local monotonic time; outputs are `Action`s. It owns the replica.
public final class ReplicationCore {
    public let config: ReplicationConfig
    public let replica: Replica
    public let configDigest: UInt64
    public private(set) var mode: Mode
    public private(set) var epoch: UInt64 = 0
    public private(set) var clock = LogClock()

    // Primary side.
    var peerReady = false
    var decoder = ChannelDecoder()
    var sendBatch: [LogEntry] = []
    var held = FIFO<OutputFrame>()
    var unacked = FIFO<(index: UInt64, bytes: Int)>()
    var unackedBytes = 0
    public private(set) var ackedIndex: UInt64 = 0
    var lastDigestAt: Nanos = 0
    var lastDigestIndex: UInt64 = 0

    // Backup side.
    var ackDue = false
    public private(set) var diverged = false
    public private(set) var digestChecks: UInt64 = 0

    // Both.
    var peerConnected = false
    var lastHeard: Nanos = 0
    var lastSent: Nanos = 0
    var garpLeft = 0
    var garpNext: Nanos = 0
    var faultCount = 0
    public private(set) var ignoredFrames: UInt64 = 0
    public private(set) var discardedWhileNotLive: UInt64 = 0
    public private(set) var takeovers: UInt64 = 0

    public init(config: ReplicationConfig, stack: Stack) {
        self.config = config
        self.replica = Replica(stack: stack)
        var w = ByteWriter()
        stack.config.encode(into: &w)
        stack.encodeState(into: &w)  // services and ports are part of the empty state
        configDigest = SipHash24.hash(k0: 1, k1: 2, w.bytes)
        switch config.role {
        case .solo: mode = .alone; epoch = 1
        case .primary: mode = .waitingForPeer
        case .backup: mode = .waitingForPeer
        }
    }

    /// First actions after start: the primary claims epoch 1 so that two
    /// nodes started as primary cannot both serve.
    public func start(now: Nanos, _ a: inout [Action]) {
        clock.resume(lastLogged: 0, localNow: now)
        lastHeard = now; lastSent = now
        switch config.role {
        case .solo:
            a.append(.log(.notice, "solo: live, no replication"))
            startGARP(now: now, &a)
        case .primary:
            mode = .claiming(epoch: 1)
            a.append(.claimEpoch(1))
        case .backup:
            a.append(.log(.info, "backup: connecting to primary"))
        }
    }

    /// True when the platform should read frames from the TAP and pass them in.
    /// False under backpressure (the kernel queue and TCP absorb it).
    public var wantsTapInput: Bool {
        switch mode {
        case .alone: return true
        case .protected: return unacked.count < config.maxLagEntries && unackedBytes < config.maxLagBytes
        default: return false
        }
    }

    /// True when frames arriving on the TAP should be read and discarded
    /// (a backup's TAP never drives its replica).
    public var drainsTap: Bool {
        switch mode {
        case .alone, .protected: return false
        default: return true
        }
    }

    public var isLive: Bool { mode == .alone || mode == .protected }
    /// Entries sent to the backup and not yet acknowledged.
    public var lagEntries: Int { unacked.count }
    public var lagBytes: Int { unackedBytes }
    /// Frames produced and held by the output rule.
    public var heldFrames: Int { held.count }
    public var isPeerConnected: Bool { peerConnected }
    public private(set) var divergences: UInt64 = 0

    // MARK: - TAP input

    public func tapFrame(_ f: [UInt8], now: Nanos, _ a: inout [Action]) {
        guard isLive else { discardedWhileNotLive += 1; return }
        guard replica.stack.classify(f) == .accept else { ignoredFrames += 1; return }
        let entry = LogEntry(index: replica.appliedIndex + 1, epoch: epoch, time: clock.stamp(localNow: now),
                             kind: .frame, payload: f)
        append(entry, now: now, &a)
        if mode == .protected, let fp = config.fault, fp.point == .unacked, carriesPayload(f) {
            faultCount += 1
            if faultCount == fp.count {
                flush(now: now, &a)
                a.append(.crash("fault hook \(fp): inbound entry \(entry.index) sent, not yet acknowledged"))
            }
        }
    }

    /// Applies a new entry as leader: to the replica, to the channel, outputs held or released.
    func append(_ entry: LogEntry, now: Nanos, _ a: inout [Action]) {
        var out: [[UInt8]] = []
        do { try replica.apply(entry, out: &out) } catch {
            fatal("cannot apply own entry: \(error)", &a); return
        }
        a.append(.applied(entry, outputs: out))
        if mode == .protected {
            sendBatch.append(entry)
            unacked.append((entry.index, entry.encodedSize))
            unackedBytes += entry.encodedSize
            if config.sabotage.contains(.releaseWithoutAck) {
                for f in out { release(OutputFrame(frame: f, index: entry.index, time: entry.time), &a) }
            } else {
                for f in out { held.append(OutputFrame(frame: f, index: entry.index, time: entry.time, producedAt: now)) }
            }
        } else {
            for f in out { release(OutputFrame(frame: f, index: entry.index, time: entry.time), &a) }
        }
    }

    func release(_ f: OutputFrame, _ a: inout [Action]) {
        let hook = config.fault.flatMap { fp -> FaultPlan? in
            (fp.point == .afterRelease || fp.point == .beforeRelease) && carriesPayload(f.frame) ? fp : nil
        }
        if let fp = hook {
            faultCount += 1
            if faultCount == fp.count && fp.point == .beforeRelease {
                a.append(.crash("fault hook \(fp): reply acknowledged by the backup, not yet released"))
                return
            }
        }
        a.append(.emit(f))
        if let fp = hook, faultCount == fp.count, fp.point == .afterRelease {
            a.append(.crash("fault hook \(fp): reply released"))
        }
    }

    func carriesPayload(_ f: [UInt8]) -> Bool {
        guard let ip = try? IPv4Header.parse(f, at: 14) else { return false }
        if ip.proto == IPProtocol.tcp, let t = try? TCPHeader.parse(f, ip: ip, verifyChecksum: false) { return !t.payload.isEmpty }
        if ip.proto == IPProtocol.udp { return ip.payload.count > 8 }
        return false
    }

    // MARK: - Time

    /// Fires due work: stack timers (as logged ticks), heartbeats, failure
    /// detection, GARP repeats, digest checks.
    public func tick(now: Nanos, _ a: inout [Action]) {
        if isLive, let d = replica.stack.nextDeadline, clock.toLocal(d) <= now {
            let t = clock.stamp(localNow: now)
            if d <= t { append(LogEntry(index: replica.appliedIndex + 1, epoch: epoch, time: t, kind: .tick), now: now, &a) }
        }
        if garpLeft > 0 && now >= garpNext && isLive {
            a.append(.emit(OutputFrame(frame: ARPPacket.gratuitous(mac: replica.stack.config.mac, ip: replica.stack.config.ip),
                                       index: 0, time: clock.last)))
            garpLeft -= 1
            garpNext = now + config.garpInterval
        }
        if peerConnected && (mode == .protected || mode == .backup) {
            if now - lastHeard >= config.failoverTimeout {
                peerFailed("no message from the peer for \(Double(now - lastHeard) / 1e6) ms", now: now, &a)
            } else if now - lastSent >= config.heartbeat {
                send(.heartbeat, now: now, &a)
            }
        }
        if mode == .protected && replica.appliedIndex != lastDigestIndex && now - lastDigestAt >= config.digestInterval {
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
        if isLive, let d = replica.stack.nextDeadline { consider(clock.toLocal(d)) }
        if garpLeft > 0 && isLive { consider(garpNext) }
        if peerConnected && (mode == .protected || mode == .backup) {
            consider(lastHeard + config.failoverTimeout)
            consider(lastSent + config.heartbeat)
        }
        if mode == .protected && replica.appliedIndex != lastDigestIndex { consider(lastDigestAt + config.digestInterval) }
        return w
    }

    /// Sends what was batched during this loop iteration (entries, ack).
    public func flush(now: Nanos, _ a: inout [Action]) {
        if !sendBatch.isEmpty {
            send(.entries(sendBatch), now: now, &a)
            sendBatch.removeAll(keepingCapacity: true)
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

    // MARK: - Peer channel

    /// A channel to the peer is up (the backup connected, or we connected to the primary).
    public func peerUp(now: Nanos, _ a: inout [Action]) {
        peerConnected = true
        decoder = ChannelDecoder()
        lastHeard = now
        if config.role == .backup && mode == .waitingForPeer {
            send(.hello(.init(node: config.nodeName, role: "backup", configDigest: configDigest,
                              appliedIndex: replica.appliedIndex, epoch: epoch)), now: now, &a)
        }
    }

    /// The channel closed or failed.
    public func peerDown(reason: String, now: Nanos, _ a: inout [Action]) {
        guard peerConnected else { return }
        peerConnected = false
        switch mode {
        case .protected, .backup:
            peerFailed("log channel closed: \(reason)", now: now, &a)
        case .waitingForPeer where config.role == .backup:
            a.append(.log(.warning, "connection to primary lost before joining: \(reason)"))
        default:
            a.append(.log(.info, "peer channel closed: \(reason)"))
        }
    }

    public func peerBytes(_ bytes: ArraySlice<UInt8>, now: Nanos, _ a: inout [Action]) {
        guard peerConnected else { return }
        lastHeard = now
        decoder.feed(bytes)
        while peerConnected {
            let m: ChannelMessage?
            do { m = try decoder.next() } catch {
                a.append(.log(.error, "rejecting peer: \(error)"))
                a.append(.closePeer(reason: "\(error)"))
                peerDown(reason: "\(error)", now: now, &a)
                return
            }
            guard let m else { break }
            handle(m, now: now, &a)
        }
    }

    func handle(_ m: ChannelMessage, now: Nanos, _ a: inout [Action]) {
        switch (m, config.role) {
        case (.hello(let h), .primary), (.hello(let h), .solo):
            let refusal: String?
            if config.role == .solo {
                refusal = "this node runs solo and takes no backup"
            } else if h.configDigest != configDigest {
                refusal = "appliance configuration differs (MAC, IP, services, ISN key or stack limits must match)"
            } else if mode != .waitingForPeer {
                refusal = "primary is running \(mode) at log index \(replica.appliedIndex); a backup joining a running primary needs state transfer, which this version does not support"
            } else if h.appliedIndex != 0 {
                refusal = "backup has state (index \(h.appliedIndex)); start it fresh"
            } else { refusal = nil }
            if let r = refusal {
                a.append(.log(.warning, "refusing backup \(h.node): \(r)"))
                send(.reject(reason: r), now: now, &a)
                a.append(.closePeer(reason: "refused"))
                peerConnected = false
                return
            }
            send(.welcome(epoch: epoch), now: now, &a)
            mode = .protected
            a.append(.log(.notice, "backup \(h.node) joined at epoch \(epoch): protected, serving"))
            startGARP(now: now, &a)
        case (.welcome(let e), .backup):
            guard mode == .waitingForPeer else { return }
            epoch = e
            mode = .backup
            a.append(.log(.notice, "joined primary as backup at epoch \(e)"))
        case (.reject(let r), .backup):
            mode = .stopped
            a.append(.exit(code: 3, reason: "primary refused this backup: \(r)"))
        case (.entries(let es), .backup):
            guard mode == .backup else { return }
            for e in es {
                var out: [[UInt8]] = []
                do { try replica.apply(e, out: &out) } catch {
                    fatal("log from primary is inconsistent: \(error)", &a); return
                }
                a.append(.applied(e, outputs: out))
                for f in out { a.append(.shadow(OutputFrame(frame: f, index: e.index, time: e.time))) }
            }
            ackDue = true
        case (.ack(let i), .primary):
            guard mode == .protected else { return }
            acknowledge(i, &a)
        case (.digest(let i, let v), .backup):
            digestChecks += 1
            if i == replica.appliedIndex {
                let mine = replica.digest
                if mine != v {
                    diverged = true
                    divergences += 1
                    a.append(.log(.error, "DIVERGENCE at index \(i): primary digest \(hex(v)), backup \(hex(mine)); this backup will refuse to go live"))
                }
            } else {
                a.append(.log(.warning, "digest for index \(i) arrived at index \(replica.appliedIndex); not compared"))
            }
        case (.heartbeat, _):
            break
        default:
            a.append(.log(.warning, "unexpected message \(m.type) from peer in mode \(mode)"))
        }
    }

    func acknowledge(_ index: UInt64, _ a: inout [Action]) {
        guard index > ackedIndex else { return }
        ackedIndex = min(index, replica.appliedIndex)
        while let u = unacked.first, u.index <= ackedIndex {
            _ = unacked.popFirst()
            unackedBytes -= u.bytes
        }
        // The output rule: release only what the acknowledged entries produced.
        while let h = held.first, h.index <= ackedIndex {
            _ = held.popFirst()
            release(h, &a)
            if case .crash = a.last { return }
        }
    }

    // MARK: - Failure handling and takeover

    func peerFailed(_ why: String, now: Nanos, _ a: inout [Action]) {
        a.append(.log(.warning, "peer failed: \(why)"))
        if peerConnected { a.append(.closePeer(reason: why)); peerConnected = false }
        switch mode {
        case .backup:
            if diverged {
                mode = .stopped
                a.append(.exit(code: 4, reason: "primary failed but this backup's state diverged; refusing to go live"))
                return
            }
            mode = .claiming(epoch: epoch + 1)
            a.append(.log(.notice, "claiming epoch \(epoch + 1) to take over at log index \(replica.appliedIndex)"))
            claim(epoch + 1, now: now, &a)
        case .protected:
            mode = .claiming(epoch: epoch + 1)
            a.append(.log(.notice, "claiming epoch \(epoch + 1) to continue without backup (\(held.count) frames held)"))
            claim(epoch + 1, now: now, &a)
        default:
            break
        }
    }

    func claim(_ e: UInt64, now: Nanos, _ a: inout [Action]) {
        if config.sabotage.contains(.skipArbiter) {
            arbiterAnswered(epoch: e, won: true, detail: "SABOTAGE: arbiter skipped", now: now, &a)
        } else {
            a.append(.claimEpoch(e))
        }
    }

    /// The arbiter's answer to `claimEpoch`.
    public func arbiterAnswered(epoch claimed: UInt64, won: Bool, detail: String, now: Nanos, _ a: inout [Action]) {
        guard case .claiming(let e) = mode, e == claimed else { return }
        guard won else {
            mode = .stopped
            let n = held.count
            held.removeAll()
            a.append(.exit(code: 2, reason: "lost epoch \(claimed) to another node (\(detail)); \(n) held frames discarded, emitting nothing"))
            return
        }
        epoch = claimed
        if config.role == .primary && claimed == 1 {
            mode = .waitingForPeer
            a.append(.log(.notice, "claimed epoch 1; waiting for the backup before serving"))
            return
        }
        takeovers += 1
        mode = .alone
        clock.resume(lastLogged: replica.lastTime, localNow: now)
        if config.role == .backup {
            // Go live: first entry of the new epoch; retransmits unacknowledged data at once.
            append(LogEntry(index: replica.appliedIndex + 1, epoch: epoch, time: clock.stamp(localNow: now), kind: .goLive),
                   now: now, &a)
            a.append(.log(.notice, "LIVE in epoch \(epoch) at log index \(replica.appliedIndex) (took over from the primary)"))
            startGARP(now: now, &a)
        } else {
            // The primary lost its backup: release what was held and go on alone.
            var n = 0
            while let h = held.popFirst() { release(h, &a); n += 1 }
            unacked.removeAll(); unackedBytes = 0
            a.append(.log(.notice, "alone in epoch \(epoch): backup lost, \(n) held frames released"))
        }
    }

    func startGARP(now: Nanos, _ a: inout [Action]) {
        garpLeft = config.sabotage.contains(.skipGARP) ? 0 : config.garpCount
        garpNext = now
        tick(now: now, &a)
    }

    func fatal(_ why: String, _ a: inout [Action]) {
        mode = .stopped
        a.append(.exit(code: 5, reason: why))
    }
}

func hex(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}
