import XCTest
import FTWire
import FTStack
import FTReplication

/// Grants each epoch to its first claimant and never a lower one: the
/// compare-and-set the real arbiter performs on the highest epoch.
public struct TestArbiter {
    public private(set) var highest: UInt64 = 0
    public private(set) var holder: String? = nil
    public init() {}

    public mutating func claim(_ epoch: UInt64, by node: String) -> Bool {
        guard epoch > highest else { return false }
        highest = epoch
        holder = node
        return true
    }
}

/// Two replication cores wired back to back on one manual clock: node "A"
/// (configured primary, `primary`) and node "B" (configured backup,
/// `backup`); the names stay with the cores across takeovers and
/// switchovers. Channel bytes queue in `toBackup` / `toPrimary` until a test
/// delivers them, whole (`deliver`) or one direction at a time; epoch claims
/// wait until a test answers them (`answerClaim`). Everything else the cores
/// ask for is recorded in order.
public final class Pair {
    public enum Start {
        /// Both started, A won epoch 1, the channel is up and B was welcomed.
        case protected
        /// Both started and A won epoch 1 (serving alone with `startAlone`);
        /// the channel is not up yet (`connect`).
        case started
    }

    public let primary: ReplicationCore
    public let backup: ReplicationCore
    /// Local time of both nodes.
    public var now: Nanos = 1_000 * ms
    public var arbiter = TestArbiter()

    /// Channel bytes in flight from A to B and from B to A.
    public var toBackup: [UInt8] = []
    public var toPrimary: [UInt8] = []

    /// Every frame each node emitted, gratuitous ARPs included, in order.
    public var emitted: [String: [OutputFrame]] = ["A": [], "B": []]
    /// Which node sent each gratuitous ARP, in order.
    public var garps: [String] = []
    public var claims: [(node: String, epoch: UInt64)] = []
    /// Epoch checks a node serving alone asked for.
    public var checks: [(node: String, epoch: UInt64)] = []
    /// `releaseOwnership` actions (leasing arbiters only).
    public var releases: [(node: String, epoch: UInt64)] = []
    public var exits: [(node: String, code: Int32, reason: String)] = []
    public var crashes: [(node: String, why: String)] = []
    /// Channel closes a node asked for.
    public var closes: [(node: String, reason: String)] = []

    /// A's emitted frames other than gratuitous ARPs.
    public var emittedByPrimary: [OutputFrame] { emitted["A"]!.filter { !isGARP($0.frame) } }
    /// B's emitted frames other than gratuitous ARPs.
    public var emittedByBackup: [OutputFrame] { emitted["B"]!.filter { !isGARP($0.frame) } }
    public func claims(by node: String) -> [UInt64] { claims.filter { $0.node == node }.map(\.epoch) }
    public func exitCodes(of node: String) -> [Int32] { exits.filter { $0.node == node }.map(\.code) }

    /// `backupStack` defaults to a stack built like the primary's; pass a
    /// different one to make the configurations disagree.
    /// `ownershipBound`: both nodes use a leasing arbiter (etcd) with this bound.
    public init(_ start: Start = .protected, fault: FaultPlan? = nil, maxLag: Int? = nil, startAlone: Bool = false,
                backupStack: Stack? = nil, standbyWindow: Nanos? = nil, ownershipBound: Nanos? = nil,
                file: StaticString = #filePath, line: UInt = #line) {
        var pc = ReplicationConfig(role: .primary, nodeName: "A")
        pc.fault = fault
        if let maxLag { pc.maxLagEntries = maxLag }
        pc.startAlone = startAlone
        pc.ownershipBound = ownershipBound
        var bc = ReplicationConfig(role: .backup, nodeName: "B")
        bc.ownershipBound = ownershipBound
        bc.standbyWindow = standbyWindow
        primary = ReplicationCore(config: pc, stack: makeStack())
        backup = ReplicationCore(config: bc, stack: backupStack ?? makeStack())
        switch start {
        case .started: form(file: file, line: line)
        case .protected:
            form(file: file, line: line)
            connect()
            deliver()
            XCTAssertEqual(primary.mode, .protected, file: file, line: line)
            XCTAssertEqual(backup.mode, .backup, file: file, line: line)
        }
    }

    public func core(_ node: String) -> ReplicationCore {
        precondition(node == "A" || node == "B", "the pair's nodes are A and B")
        return node == "A" ? primary : backup
    }

    /// Records what `node` asked for, queueing its channel bytes for the other.
    public func run(_ actions: [Action], from node: String) {
        for a in actions {
            switch a {
            case .emit(let o):
                emitted[node]!.append(o)
                if isGARP(o.frame) { garps.append(node) }
            case .send(let b): if node == "A" { toBackup += b } else { toPrimary += b }
            case .claimEpoch(let e): claims.append((node, e))
            case .checkEpoch(let e): checks.append((node, e))
            case .releaseOwnership(let e): releases.append((node, e))
            case .exit(let code, let reason): exits.append((node, code, reason))
            case .crash(let why): crashes.append((node, why))
            case .closePeer(let reason): closes.append((node, reason))
            default: break
            }
        }
    }

    /// Calls one core at the current time and runs what it asked for.
    public func call(_ node: String, _ f: (ReplicationCore, inout [Action]) -> Void) {
        var a: [Action] = []
        f(core(node), &a)
        run(a, from: node)
    }

    public func tick(_ node: String) { call(node) { $0.tick(now: now, &$1) } }

    /// Time passes with both nodes running: the clock moves by `d`, A then B
    /// tick and flush, and the channel is delivered until quiet.
    public func advance(by d: Nanos) {
        now += d
        for node in ["A", "B"] { call(node) { $0.tick(now: now, &$1); $0.flush(now: now, &$1) } }
        deliver()
    }

    /// Starts both cores and lets A win epoch 1 from the arbiter.
    public func form(file: StaticString = #filePath, line: UInt = #line) {
        call("A") { $0.start(now: now, &$1) }
        XCTAssertEqual(claims.last?.epoch, 1, "a primary claims epoch 1 on start", file: file, line: line)
        answerClaim(of: "A", file: file, line: line)
        call("B") { $0.start(now: now, &$1) }
    }

    /// Brings the channel up on both sides and hands B's hello to A.
    public func connect() {
        call("A") { $0.peerUp(now: now, &$1) }
        call("B") { $0.peerUp(now: now, &$1) }
        deliverToPrimary()
    }

    /// Answers `node`'s latest epoch claim as the test arbiter decides; a
    /// given `won` bypasses the arbiter (e.g. to play a third party that
    /// took the epoch first).
    public func answerClaim(of node: String, won: Bool? = nil, file: StaticString = #filePath, line: UInt = #line) {
        guard let e = claims.last(where: { $0.node == node })?.epoch else {
            return XCTFail("\(node) has not claimed an epoch", file: file, line: line)
        }
        let w = won ?? arbiter.claim(e, by: node)
        call(node) { $0.arbiterAnswered(epoch: e, won: w, detail: w ? "" : "taken", now: now, &$1) }
    }

    /// Answers `node`'s latest claim with `answer` (e.g. `.unavailable`).
    public func answerClaim(of node: String, _ answer: ArbiterAnswer, file: StaticString = #filePath, line: UInt = #line) {
        guard let e = claims.last(where: { $0.node == node })?.epoch else {
            return XCTFail("\(node) has not claimed an epoch", file: file, line: line)
        }
        call(node) { $0.arbiterAnswered(epoch: e, answer: answer, now: now, &$1) }
    }

    /// `node`'s health changes (its tracked links).
    public func setHealth(_ node: String, _ healthy: Bool, reason: String = "test") {
        call(node) { $0.setHealth(healthy, reason: reason, now: now, &$1); $0.flush(now: now, &$1) }
    }

    /// Hands the bytes queued for B to B, then lets B flush.
    public func deliverToBackup() {
        let b = toBackup; toBackup = []
        call("B") { $0.peerBytes(b[...], now: now, &$1); $0.flush(now: now, &$1) }
    }

    /// Hands the bytes queued for A to A, then lets A flush.
    public func deliverToPrimary() {
        let b = toPrimary; toPrimary = []
        call("A") { $0.peerBytes(b[...], now: now, &$1); $0.flush(now: now, &$1) }
    }

    /// Delivers channel bytes both ways until quiet.
    public func deliver() {
        while !toBackup.isEmpty || !toPrimary.isEmpty {
            if !toBackup.isEmpty { deliverToBackup() }
            if !toPrimary.isEmpty { deliverToPrimary() }
        }
    }

    /// A frame from the network arrives on `node`'s TAP (A by default).
    public func clientSends(_ f: [UInt8], to node: String = "A") {
        call(node) { $0.tapFrame(f, now: now, &$1); $0.flush(now: now, &$1) }
    }

    /// A client's TCP handshake with the counter service through A, every
    /// step delivered to B. Returns the server's initial sequence number.
    @discardableResult
    public func handshake(sport: UInt16 = clientPort, isn: UInt32 = 1000,
                          file: StaticString = #filePath, line: UInt = #line) -> UInt32 {
        clientSends(tcp(isn, 0, [.syn], sport: sport)); deliver()
        guard let synAck = emittedByPrimary.compactMap({ parseTCP($0.frame)?.0 })
                .last(where: { $0.flags == [.syn, .ack] && $0.dstPort == sport }) else {
            XCTFail("no SYN-ACK for port \(sport)", file: file, line: line); return 0
        }
        XCTAssertEqual(synAck.ack, isn &+ 1, file: file, line: line)
        clientSends(tcp(isn &+ 1, synAck.seq &+ 1, [.ack], sport: sport)); deliver()
        return synAck.seq
    }

    /// `handshake`, then one INCR, delivered. Returns the server's initial sequence number.
    @discardableResult
    public func establish(sport: UInt16 = clientPort, isn: UInt32 = 1000,
                          file: StaticString = #filePath, line: UInt = #line) -> UInt32 {
        let iss = handshake(sport: sport, isn: isn, file: file, line: line)
        clientSends(tcp(isn &+ 1, iss &+ 1, [.ack, .psh], "INCR\n", sport: sport)); deliver()
        return iss
    }
}
