import XCTest
import FTWire
import FTStack
import FTReplication

// A driver-level harness: whole nodes (`NodeDriver` + `ReplicationCore`)
// over in-memory connections, so tests reach what the two-core `Pair`
// cannot: the channel's security layer, accepting, pending connections,
// deadlines. A test may also hold raw connection ends to play a stranger.

/// One direction of a connection.
public final class Pipe {
    public var bytes: [UInt8] = []
    public var closed = false
}

/// One end of a connection: what it reads, what it writes.
public final class End {
    public let inbound: Pipe
    public let outbound: Pipe
    init(_ i: Pipe, _ o: Pipe) { inbound = i; outbound = o }
    /// Bytes the other side sent and this end has not taken yet.
    public func take() -> [UInt8] { defer { inbound.bytes = [] }; return inbound.bytes }
    public func send(_ b: [UInt8]) { outbound.bytes += b }
    public func close() { outbound.closed = true }
}

public func connection() -> (End, End) {
    let a = Pipe(), b = Pipe()
    return (End(a, b), End(b, a))
}

/// `NodeIO` over in-memory connections; connects to `peer`'s backlog.
public final class MemoryIO: NodeIO {
    public var halted = false
    public var backlog: [End] = []
    var ends: [Int: End] = [:]
    var handles = 100
    public var channel: End? = nil
    public weak var peer: MemoryIO? = nil
    /// When set, `connect` hands the other end here instead of to `peer`.
    public var connectHook: ((End) -> Void)? = nil
    public var logs: [String] = []
    public var exits: [Int32] = []
    public var claims: [UInt64] = []
    public var emitted: [OutputFrame] = []
    var nonces: UInt64
    public init(seed: UInt64) { nonces = seed << 32 }

    public func readTap() -> TapRead { .empty }
    public func writeTap(_ frame: OutputFrame) { emitted.append(frame) }
    public func shadow(_ frame: OutputFrame) {}
    public func connect() -> Bool {
        let (mine, theirs) = connection()
        if let h = connectHook { h(theirs) } else if let p = peer { p.backlog.append(theirs) } else { return false }
        channel = mine
        return true
    }
    public func connectOutcome() -> ConnectOutcome { .connected }
    public func startProbe() -> Bool { false }
    public func probeStatus() -> ProbeStatus { .failed("no probe") }
    public func closeProbe() {}
    public func accept() -> Int? {
        guard !backlog.isEmpty else { return nil }
        handles += 1
        ends[handles] = backlog.removeFirst()
        return handles
    }
    public func refuse(_ c: Int, sending bytes: [UInt8]) {
        guard let e = ends.removeValue(forKey: c) else { return }
        e.send(bytes); e.close()
    }
    public func adopt(_ c: Int) { channel = ends.removeValue(forKey: c) }
    public func readPending(_ c: Int, max: Int) -> ChannelRead { read(ends[c]) }
    public func writePending(_ c: Int, _ bytes: ArraySlice<UInt8>) -> Int { ends[c]?.send(Array(bytes)); return bytes.count }
    public func randomBytes(_ count: Int) -> [UInt8] {
        nonces += 1
        var out: [UInt8] = []
        var x = nonces
        while out.count < count {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            out.append(UInt8(truncatingIfNeeded: x >> 56))
        }
        return out
    }
    public func readChannel(max: Int) -> ChannelRead { read(channel) }
    func read(_ e: End?) -> ChannelRead {
        guard let e else { return .wouldBlock }
        if !e.inbound.bytes.isEmpty { return .data(e.take()[...]) }
        return e.inbound.closed ? .ended(.eof) : .wouldBlock
    }
    public func writeChannel(_ bytes: ArraySlice<UInt8>) -> Int {
        guard let e = channel else { return 0 }
        e.send(Array(bytes))
        return bytes.count
    }
    public func closeChannel() { channel?.close(); channel = nil }
    /// When set, claims are answered later (`NodeDriver.arbiterAnswered`), as the daemon's are.
    public var claimsPending = false
    public func claim(epoch: UInt64) -> ArbiterCall<ArbiterAnswer> {
        claims.append(epoch)
        return claimsPending ? .pending : .answered(.won("test"))
    }
    /// What an epoch check answers (at once).
    public var epochAnswer = EpochCheck.current
    public func checkEpoch(_ epoch: UInt64) -> ArbiterCall<EpochCheck> { .answered(epochAnswer) }
    public func applied(_ entry: LogEntry, outputs: [[UInt8]]) {}
    public func snapshotSent(index: UInt64, bytes: Int) {}
    public func log(_ level: LogLevel, _ message: String) { logs.append(message) }
    public func exit(code: Int32, reason: String) { exits.append(code) }
    public func crash(_ why: String) { halted = true }
    /// Role and mode changes the driver reported (RoleEvents.swift).
    public var roleChanges: [RoleChange] = []
    public func roleChanged(_ change: RoleChange) { roleChanges.append(change) }
    public var roleEvents: [RoleEvent] { roleChanges.map(\.event) }
    public var pendingCount: Int { ends.count }
    public func logged(_ text: String) -> Bool { logs.contains { $0.contains(text) } }
}

/// One node: driver, core and its in-memory system calls.
public final class MemoryNode {
    public let io: MemoryIO
    public let driver: NodeDriver
    public var core: ReplicationCore { driver.core }
    public convenience init(_ role: Role, name: String, secret: [UInt8], seed: UInt64) {
        self.init(config: ReplicationConfig(role: role, nodeName: name), secret: secret, seed: seed)
    }
    public init(config: ReplicationConfig, secret: [UInt8], seed: UInt64) {
        io = MemoryIO(seed: seed)
        let core = ReplicationCore(config: config, stack: makeStack())
        driver = NodeDriver(core: core, keys: ChannelKeys(secret: secret))
    }
    /// One loop iteration as the daemon runs it: plan (connects if due), then iterate.
    public func step(_ now: Nanos) {
        _ = driver.plan(now: now, io)
        _ = driver.iterate(now: now, ready: Readiness(listen: !io.backlog.isEmpty, channel: io.channel != nil,
                                                     channelWritable: true, pending: true), io)
    }
}

public let testSecret = [UInt8](repeating: 0x11, count: 32)

/// A primary "A" and a backup "B" that connects to it; time in `now`.
public final class DriverPair {
    public let a: MemoryNode
    public let b: MemoryNode
    public var now: Nanos = 1_000 * ms
    public init(backupSecret: [UInt8] = testSecret) {
        a = MemoryNode(.primary, name: "A", secret: testSecret, seed: 1)
        b = MemoryNode(.backup, name: "B", secret: backupSecret, seed: 2)
        b.io.peer = a.io
        _ = a.driver.start(now: now, a.io)
        _ = b.driver.start(now: now, b.io)
    }
    /// Both nodes run `rounds` iterations, `step` apart.
    public func run(_ rounds: Int = 6, step: Nanos = ms) {
        for _ in 0..<rounds {
            now += step
            a.step(now)
            b.step(now)
        }
    }
}
