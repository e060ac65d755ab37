import XCTest
import FTTestSupport
import FTWire
@testable import FTStack
@testable import FTServices
@testable import FTReplication

/// Golden hashes of the persisted encodings, each next to the format version
/// it belongs to. When a golden fails, the encoding changed: if you meant
/// it, bump the version in the source AND append the new (version, hash)
/// line here; old readers must refuse the new bytes instead of misreading them.
private enum Golden {
    /// `Stack.encodeState` of `schemaFixture()`.
    static let stackState: [(format: UInt32, hash: UInt64)] = [
        (0x4654_5332, 0x33d6_7594_607d_ffdf),  // "FTS2"
        // "FTS3": SACK scoreboard, loss probe, timestamps, delayed ACK (not yet
        // released when later fields and counters of this branch were added: same tag).
        (0x4654_5333, 0x0d99_9697_89fc_115c),
        // "FTS4": time shift (go-live freeze), path MTU/PAWS/keepalive/idle/zero-window/per-source
        // counters, and per connection the zero-window, keepalive, idle and TS.Recent-age state;
        // the kv service's state ("FKV1") in the fixture. (Issues 13 and 17 both introduced FTS4
        // in one unreleased session; this hash is their merged encoding.)
        (0x4654_5334, 0xeeaa_51cf_4277_9cc9),
        // "FTS5": the tcp_loss_window_held counter; per connection the path model (issue 13).
        (0x4654_5335, 0x0b8f_43fd_7798_6e66),
    ]
    /// `Replica.snapshot()` ("FTSN") of `schemaFixture()` after three ticks.
    static let snapshot: [(version: UInt32, hash: UInt64)] = [
        (2, 0x978c_ce90_c697_5737),  // "FTS2" inside
        (3, 0xa94b_1a4c_9209_4cc3),  // "FTS3" inside: SACK scoreboard, loss probe, timestamps, delayed ACK
        (4, 0x7582_3b3b_28e3_6c56),  // "FTS4" inside: TCP resource limits, go-live time shift (issue 13), the kv service (issue 17)
        (5, 0xa74b_5b77_726b_b3d7),  // "FTS5" inside: the TCP path model (issue 13)
    ]
}

private func goldenHash(_ bytes: [UInt8]) -> UInt64 {
    SipHash24.hash(k0: 0x676f_6c64_656e_2d6b, k1: 0x6579_2d66_6f72_2d31, bytes)
}

private func hex(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: 16 - s.count) + s
}

/// A stack whose every persisted field holds a distinct, non-default value:
/// all service kinds, every counter, and two connections (one with an
/// out-of-order queue and running timers, one with none of them).
func schemaFixture() -> Stack {
    var cfg = applianceConfig()
    cfg.isnKey = (1, 2)
    let s = makeStack(cfg, services: fixtureServices)
    for (i, (_, kp)) in StackCounters.fields.enumerated() { s.counters[keyPath: kp] = UInt64(i + 1) * 1_000 + 7 }
    s.nextConnID = 42
    s.ipID = 0xBEEF
    s.timeShift = 77 * ms

    let a = TCB(id: 40, key: ConnKey(remote: Endpoint(ip: IPv4Address(10, 0, 0, 1), port: 43512), localPort: 7000),
                peerMAC: MACAddress(raw: 0x0200_0000_0001), iss: 0x1000_0000, irs: 0x2000_0000, sendMSS: 1400, rto: 300 * ms)
    a.state = .established
    a.sndUna = 0x1000_0001; a.sndNxt = 0x1000_0101; a.sndMax = 0x1000_0201
    a.sndWnd = 65_000; a.maxSndWnd = 70_000; a.sndWl1 = 0x2000_0005; a.sndWl2 = 0x1000_0001
    a.sndScale = 7; a.rcvScale = 9; a.sackOK = true
    a.sendBuf.append(contentsOf: Array("send buffer".utf8)); a.bufSeq = 0x1000_0001; a.finQueued = true
    a.rcvNxt = 0x2000_0011; a.rcvBuf.append(contentsOf: Array("INCR\n".utf8)); a.rcvAdvEdge = 0x2001_0011; a.lastAdvWindow = 65_536
    a.ooo = [OOOSegment(seq: 0x2000_0100, data: [1, 2, 3], fin: false), OOOSegment(seq: 0x2000_0200, data: [4], fin: true)]
    a.peerFin = true; a.peerCloseNotified = true; a.serviceOpened = true; a.serviceClosed = true; a.ackNeeded = true
    a.srtt = 11 * ms; a.rttvar = 3 * ms; a.hasRTT = true; a.rtoDeadline = 5_000 * ms; a.retries = 2
    a.rttSeq = 0x1000_0050; a.rttStart = 4_000 * ms
    a.cwnd = 14_000; a.ssthresh = 28_000; a.dupAcks = 1; a.inRecovery = true; a.recover = 0x1000_0180
    a.persistDeadline = 6_000 * ms; a.persistBackoff = 3; a.persistUnanswered = 1
    a.timeWaitDeadline = 7_000 * ms; a.finWait2Deadline = 8_000 * ms
    a.sacked = [SeqRange(left: 0x1000_0080, right: 0x1000_0100), SeqRange(left: 0x1000_0180, right: 0x1000_0200)]
    a.highRxt = 0x1000_0040; a.rxtSndMax = 0x1000_0201; a.tlpDeadline = 5_500 * ms; a.tlpHigh = 0x1000_0201
    a.recoveryResends = 2
    a.tsOK = true; a.tsRecent = 0xABCD_0123; a.lastAckSent = 0x2000_0010
    a.unackedSegments = 1; a.quickAcks = 3; a.delAckDeadline = 5_040 * ms; a.lastOOOSeq = 0x2000_0200
    a.zeroWindowSince = 4_500 * ms; a.lastHeard = 4_900 * ms; a.keepaliveSent = 2; a.idleDeadline = 9_000 * ms
    a.tsRecentTime = 4_800 * ms
    a.path = PathModel(acked: 123_456, roundEnd: 0x1000_0201, roundStart: 4_950 * ms, roundDelivered: 120_000,
                       rates: [125_000_000, 250_000_000, 110_000_000], minRTT: 180_000, minRTTStamp: 4_100 * ms)

    let b = TCB(id: 41, key: ConnKey(remote: Endpoint(ip: IPv4Address(10, 0, 0, 2), port: 1025), localPort: 7),
                peerMAC: MACAddress(raw: 0x0200_0000_0002), iss: 0xFFFF_FFF0, irs: 5, sendMSS: 536, rto: 1_000 * ms)
    s.conns = [a.key: a, b.key: b]
    fillKV(s.streamServices[6379] as! KVService)
    return s
}

let fixtureServices = ["counter:7000", "echo:7", "discard:9", "udp-echo:7", "udp-counter:7001", "kv:6379"]

/// Every kind of kv state: each value type, an expiry, a freed slot, a
/// connection with a name and a request half received, and the statistics.
func fillKV(_ kv: KVService) {
    var io = StreamIO()
    kv.opened(40, remote: Endpoint(ip: IPv4Address(10, 0, 0, 1), port: 43512), io: &io)
    let script = "*3\r\n$3\r\nSET\r\n$1\r\ns\r\n$5\r\nvalue\r\nSET gone x\r\nSET t 1 PX 5000\r\n"
        + "RPUSH l a b c\r\nHSET h f1 v1 f2 v2\r\nDEL gone\r\nCLIENT SETNAME fixture\r\n*2\r\n$3\r\nGET\r\n$4\r\nha"
    let bytes = Array(script.utf8)
    _ = kv.receive(40, bytes[...], sendSpace: 1 << 20, io: &io)
}

final class SnapshotSchemaTests: XCTestCase {

    func encodeState(_ s: Stack) -> [UInt8] {
        var w = ByteWriter()
        s.encodeState(into: &w)
        return w.bytes
    }

    func testStackStateEncodingMatchesGoldenForItsFormat() {
        let current = Golden.stackState.last!
        XCTAssertEqual(Stack.stateFormat, current.format,
                       "Stack.stateFormat changed: append (format, hash) to Golden.stackState in SnapshotSchemaTests.swift")
        let h = goldenHash(encodeState(schemaFixture()))
        XCTAssertEqual(h, current.hash, """
            The stack state encoding changed (hash \(hex(h))) but Stack.stateFormat is still \
            0x\(String(Stack.stateFormat, radix: 16)). Bump Stack.stateFormat (and Replica.snapshotVersion), \
            then append (newFormat, \(hex(h))) to Golden.stackState.
            """)
        XCTAssertEqual(Set(Golden.stackState.map(\.format)).count, Golden.stackState.count, "one golden per format")
    }

    func testSnapshotEncodingMatchesGoldenForItsVersion() throws {
        let current = Golden.snapshot.last!
        XCTAssertEqual(Replica.snapshotVersion, current.version,
                       "Replica.snapshotVersion changed: append (version, hash) to Golden.snapshot in SnapshotSchemaTests.swift")
        let replica = Replica(stack: schemaFixture())
        var out = Frames()
        for i in 1...3 as ClosedRange<UInt64> {
            try replica.apply(LogEntry(index: i, epoch: 3, time: 1_000 * ms + i, kind: .handover), out: &out)
        }
        XCTAssertTrue(out.isEmpty)
        let h = goldenHash(replica.snapshot())
        XCTAssertEqual(h, current.hash, """
            The FTSN snapshot encoding changed (hash \(hex(h))) but Replica.snapshotVersion is still \
            \(Replica.snapshotVersion). Bump Replica.snapshotVersion, then append \
            (newVersion, \(hex(h))) to Golden.snapshot.
            """)
        XCTAssertEqual(Set(Golden.snapshot.map(\.version)).count, Golden.snapshot.count, "one golden per version")
    }

    func testStateRoundTripsThroughRestore() throws {
        let bytes = encodeState(schemaFixture())
        let fresh = makeStack(schemaFixture().config, services: fixtureServices)
        var r = ByteReader(bytes)
        try fresh.restoreState(from: &r)
        XCTAssertEqual(r.remaining, 0)
        XCTAssertEqual(encodeState(fresh), bytes)
        XCTAssertEqual(fresh.connectionCount, 2)
        XCTAssertEqual(fresh.counters, schemaFixture().counters)
        let a = try XCTUnwrap(fresh.conns.values.first { $0.id == 40 })
        XCTAssertEqual(a.ooo.map(\.seq), [0x2000_0100, 0x2000_0200])
        XCTAssertEqual(a.rttSeq, 0x1000_0050)
        XCTAssertTrue(a.sackOK)
        let b = try XCTUnwrap(fresh.conns.values.first { $0.id == 41 })
        XCTAssertNil(b.rtoDeadline); XCTAssertNil(b.rttSeq); XCTAssertNil(b.timeWaitDeadline)
    }

    /// Every TCB field is either in `TCB.schema` or listed here as not
    /// persisted: adding a field without deciding fails this test.
    func testEveryConnectionFieldIsPersisted() {
        let persisted: Set<String> = [
            "id", "key", "iss", "irs",  // identity
            "state", "peerMAC", "sndUna", "sndNxt", "sndMax", "sndWnd", "maxSndWnd", "sndWl1", "sndWl2",
            "sndScale", "rcvScale", "sackOK", "sendMSS", "sendBuf", "bufSeq", "finQueued",
            "rcvNxt", "rcvBuf", "rcvAdvEdge", "lastAdvWindow", "ooo",
            "peerFin", "peerCloseNotified", "serviceOpened", "serviceClosed", "ackNeeded",
            "rto", "srtt", "rttvar", "hasRTT", "rtoDeadline", "retries", "rttSeq", "rttStart",
            "cwnd", "ssthresh", "dupAcks", "inRecovery", "recover",
            "persistDeadline", "persistBackoff", "persistUnanswered", "timeWaitDeadline", "finWait2Deadline",
            "sacked", "highRxt", "rxtSndMax", "tlpDeadline", "tlpHigh", "recoveryResends", "tsOK", "tsRecent", "lastAckSent",
            "unackedSegments", "quickAcks", "delAckDeadline", "lastOOOSeq",
            "zeroWindowSince", "lastHeard", "keepaliveSent", "idleDeadline", "tsRecentTime",
            "path",
        ]
        let t = schemaFixture().conns.values.first!
        let fields = Set(Mirror(reflecting: t).children.compactMap(\.label))
        XCTAssertEqual(fields.subtracting(persisted), [], "TCB fields missing from TCB.schema (add them, bump Stack.stateFormat)")
        XCTAssertEqual(persisted.subtracting(fields), [], "fields listed here that TCB no longer has")
    }

    /// Each field of a connection reaches the bytes: changing it changes the encoding.
    func testEverySchemaFieldReachesTheBytes() {
        let base = encodeState(schemaFixture())
        let edits: [(String, (TCB) -> Void)] = [
            ("state", { $0.state = .closing }), ("peerMAC", { $0.peerMAC = .broadcast }),
            ("sndWl2", { $0.sndWl2 &+= 1 }), ("sackOK", { $0.sackOK.toggle() }), ("sendMSS", { $0.sendMSS += 1 }),
            ("sendBuf", { $0.sendBuf.append(contentsOf: [0]) }), ("rcvBuf", { $0.rcvBuf.drop(1) }),
            ("ooo", { $0.ooo[0].fin.toggle() }), ("ackNeeded", { $0.ackNeeded.toggle() }),
            ("rtoDeadline", { $0.rtoDeadline = nil }), ("rttSeq", { $0.rttSeq = nil }),
            ("recover", { $0.recover &+= 1 }), ("finWait2Deadline", { $0.finWait2Deadline = 1 }),
            ("sacked", { $0.sacked[1].right &+= 1 }), ("highRxt", { $0.highRxt &+= 1 }),
            ("rxtSndMax", { $0.rxtSndMax &+= 1 }), ("tlpDeadline", { $0.tlpDeadline = nil }),
            ("tlpHigh", { $0.tlpHigh = nil }), ("recoveryResends", { $0.recoveryResends += 1 }), ("tsOK", { $0.tsOK.toggle() }), ("tsRecent", { $0.tsRecent &+= 1 }),
            ("lastAckSent", { $0.lastAckSent &+= 1 }), ("unackedSegments", { $0.unackedSegments += 1 }), ("quickAcks", { $0.quickAcks -= 1 }),
            ("delAckDeadline", { $0.delAckDeadline = nil }), ("lastOOOSeq", { $0.lastOOOSeq = nil }),
        ]
        for (name, edit) in edits {
            let s = schemaFixture()
            edit(s.conns.values.first { $0.id == 40 }!)
            XCTAssertNotEqual(encodeState(s), base, name)
        }
    }

    func testOtherStackStateFormatIsRefusedClearly() {
        var bytes = encodeState(schemaFixture())
        bytes.writeBE32(0x4654_5332, at: 0)  // "FTS2", before the SACK scoreboard
        var r = ByteReader(bytes)
        XCTAssertThrowsError(try makeStack().restoreState(from: &r)) { e in
            XCTAssertEqual(e as? SnapshotError, .badVersion(0x4654_5332))
            XCTAssertTrue("\(e)".contains("this ftap reads 0x46545335"), "\(e)")
        }
    }

    func testOldSnapshotVersionIsRefusedClearly() throws {
        var bytes = Replica(stack: schemaFixture()).snapshot()
        bytes.writeBE32(1, at: 4)
        XCTAssertThrowsError(try Replica(stack: makeStack()).restore(bytes)) { e in
            XCTAssertTrue("\(e)".contains("version 1; this ftap reads version \(Replica.snapshotVersion)"), "\(e)")
        }
    }

    func testTruncatedStateNeverTrapsAndAlwaysThrows() {
        let bytes = encodeState(schemaFixture())
        for n in stride(from: 0, to: bytes.count, by: 7) {
            var r = ByteReader(Array(bytes[0..<n]))
            XCTAssertThrowsError(try makeStack(schemaFixture().config,
                                               services: ["counter:7000", "echo:7", "discard:9", "udp-echo:7", "udp-counter:7001"])
                .restoreState(from: &r), "prefix \(n)")
        }
    }
}
