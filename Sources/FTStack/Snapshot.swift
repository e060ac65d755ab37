import FTWire

/// The replicated state's encoding: `Stack.encodeState` and its inverse
/// `Stack.restoreState`, side by side, and the connection schema they share.
/// The encoding feeds the state digest and the snapshot a joining backup
/// restores, so any change to it changes `Stack.stateFormat`.
///
/// Format "FTS5" (after the tag, all big-endian):
///   every counter of `StackCounters.fields` (u64, in that order),
///   next connection id (u64), IPv4 identification (u16),
///   time shift (u64),
///   connection count (i64), connections in `ConnKey` order (`TCB.schema`),
///   then per stream service, then per datagram service, in port order:
///   port (u16), kind (string), the service's own `encodeState`.
///
/// History: "FTS1" lacked the SACK-permitted flag at the end of a
/// connection (it was added without a new tag; "FTS2" also reorders the
/// connection fields into `TCB.schema`). "FTS3" adds the four loss-recovery
/// counters and, at the end of a connection, the SACK scoreboard, HighRxt,
/// the loss-probe state, timestamps and delayed-ACK state. "FTS4" adds the
/// stack's time shift after the IPv4 identification,
/// eight counters (path MTU, ICMP, PAWS, keepalive, idle, zero window,
/// per-source limit) and, at the end of a connection, the zero-window,
/// keepalive and idle state and TS.Recent's age; it also carries the `kv`
/// service's state ("FKV1": its limits, keyspace, expiry queue and
/// connections), which an FTS3 reader does not know. "FTS5" adds the
/// `tcp_loss_window_held` counter and, at the end of a connection, the
/// path model (`PathModel`: acknowledged bytes, the round being measured,
/// the last ten rounds' delivery rates, the minimum RTT and its time).
public enum SnapshotError: Error, CustomStringConvertible, Equatable {
    case badVersion(UInt32)
    case mismatch(String)
    public var description: String {
        switch self {
        case .badVersion(let v):
            return "stack state format 0x\(String(v, radix: 16)) is not supported; this ftap reads 0x\(String(Stack.stateFormat, radix: 16))"
        case .mismatch(let s): return "snapshot does not fit this appliance: \(s)"
        }
    }
}

/// One description of a persisted type's fields serves both directions:
/// `ByteWriter` appends each field, `ByteReader` reads it back into place.
/// A field cannot be written without being read, or read out of order.
protocol StateCoder {
    associatedtype Failure: Error
    static var isDecoding: Bool { get }
    mutating func field(_ v: inout UInt8) throws(Failure)
    mutating func field(_ v: inout UInt16) throws(Failure)
    mutating func field(_ v: inout UInt32) throws(Failure)
    mutating func field(_ v: inout UInt64) throws(Failure)
    mutating func field(_ v: inout Int) throws(Failure)
    mutating func field(_ v: inout Bool) throws(Failure)
    mutating func field(_ v: inout [UInt8]) throws(Failure)
    mutating func field(_ q: inout ByteQueue) throws(Failure)
    /// Absent is encoded as `UInt64.max` (a time no deadline reaches).
    mutating func field(_ v: inout UInt64?) throws(Failure)
    /// The value (0 when absent), then whether it is present.
    mutating func field(_ v: inout UInt32?) throws(Failure)
    mutating func field(_ v: inout MACAddress) throws(Failure)
    mutating func field(_ v: inout TCPState) throws(Failure)
    /// An element count, refused when decoding if above `max`.
    mutating func count(_ n: inout Int, max: Int, what: String) throws(Failure)
}

extension ByteWriter: StateCoder {
    typealias Failure = Never
    static var isDecoding: Bool { false }
    mutating func field(_ v: inout UInt8) { u8(v) }
    mutating func field(_ v: inout UInt16) { u16(v) }
    mutating func field(_ v: inout UInt32) { u32(v) }
    mutating func field(_ v: inout UInt64) { u64(v) }
    mutating func field(_ v: inout Int) { int(v) }
    mutating func field(_ v: inout Bool) { bool(v) }
    mutating func field(_ v: inout [UInt8]) { blob(v) }
    mutating func field(_ q: inout ByteQueue) { blob(q.all) }
    mutating func field(_ v: inout UInt64?) { u64(v ?? .max) }
    mutating func field(_ v: inout UInt32?) { u32(v ?? 0); bool(v != nil) }
    mutating func field(_ v: inout MACAddress) { u64(v.raw) }
    mutating func field(_ v: inout TCPState) { u8(v.rawValue) }
    mutating func count(_ n: inout Int, max: Int, what: String) { int(n) }
}

extension ByteReader: StateCoder {
    typealias Failure = any Error
    static var isDecoding: Bool { true }
    mutating func field(_ v: inout UInt8) throws { v = try u8() }
    mutating func field(_ v: inout UInt16) throws { v = try u16() }
    mutating func field(_ v: inout UInt32) throws { v = try u32() }
    mutating func field(_ v: inout UInt64) throws { v = try u64() }
    mutating func field(_ v: inout Int) throws { v = try int() }
    mutating func field(_ v: inout Bool) throws { v = try bool() }
    mutating func field(_ v: inout [UInt8]) throws { v = try blob() }
    mutating func field(_ q: inout ByteQueue) throws { q.removeAll(); q.append(contentsOf: try blob()) }
    mutating func field(_ v: inout UInt64?) throws { let x = try u64(); v = x == .max ? nil : x }
    mutating func field(_ v: inout UInt32?) throws { let x = try u32(); v = try bool() ? x : nil }
    mutating func field(_ v: inout MACAddress) throws { v = MACAddress(raw: try u64()) }
    mutating func field(_ v: inout TCPState) throws {
        let raw = try u8()
        guard let s = TCPState(rawValue: raw) else { throw DecodeError.invalid(offset: offset - 1, what: "TCP state \(raw)") }
        v = s
    }
    mutating func count(_ n: inout Int, max: Int, what: String) throws {
        n = try int()
        guard n >= 0, n <= max else { throw DecodeError.invalid(offset: offset - 8, what: "\(what) \(n)") }
    }
}

extension TCB {
    /// The connection's identity: the fields a TCB is created with.
    func encodeIdentity(into w: inout ByteWriter) {
        w.u64(id); w.u32(key.remote.ip.raw); w.u16(key.remote.port); w.u16(key.localPort)
        w.u32(iss); w.u32(irs)
    }
    static func decodeIdentity(_ r: inout ByteReader) throws -> TCB {
        let id = try r.u64()
        let key = ConnKey(remote: Endpoint(ip: IPv4Address(raw: try r.u32()), port: try r.u16()), localPort: try r.u16())
        let iss = try r.u32(), irs = try r.u32()
        return TCB(id: id, key: key, peerMAC: .zero, iss: iss, irs: irs, sendMSS: 0, rto: 0)
    }

    /// Everything else, in one order for both directions.
    func schema<C: StateCoder>(_ c: inout C) throws(C.Failure) {
        try c.field(&state); try c.field(&peerMAC)
        try c.field(&sndUna); try c.field(&sndNxt); try c.field(&sndMax); try c.field(&sndWnd); try c.field(&maxSndWnd)
        try c.field(&sndWl1); try c.field(&sndWl2); try c.field(&sndScale); try c.field(&rcvScale)
        try c.field(&sackOK); try c.field(&sendMSS)
        try c.field(&sendBuf); try c.field(&bufSeq); try c.field(&finQueued)
        try c.field(&rcvNxt); try c.field(&rcvBuf); try c.field(&rcvAdvEdge); try c.field(&lastAdvWindow)
        var n = ooo.count
        try c.count(&n, max: 1 << 16, what: "out-of-order count")
        if C.isDecoding { ooo = Array(repeating: OOOSegment(seq: 0, data: [], fin: false), count: n) }
        for i in 0..<n { try c.field(&ooo[i].seq); try c.field(&ooo[i].data); try c.field(&ooo[i].fin) }
        try c.field(&peerFin); try c.field(&peerCloseNotified); try c.field(&serviceOpened)
        try c.field(&serviceClosed); try c.field(&ackNeeded)
        try c.field(&rto); try c.field(&srtt); try c.field(&rttvar); try c.field(&hasRTT)
        try c.field(&rtoDeadline); try c.field(&retries)
        try c.field(&rttSeq); try c.field(&rttStart)
        try c.field(&cwnd); try c.field(&ssthresh); try c.field(&dupAcks); try c.field(&inRecovery); try c.field(&recover)
        try c.field(&persistDeadline); try c.field(&persistBackoff); try c.field(&persistUnanswered)
        try c.field(&timeWaitDeadline); try c.field(&finWait2Deadline)
        // FTS3: SACK scoreboard and loss recovery (RFC 6675, 8985), timestamps (RFC 7323), delayed ACK.
        var m = sacked.count
        try c.count(&m, max: TCB.maxScoreboardRanges, what: "scoreboard range count")
        if C.isDecoding { sacked = Array(repeating: SeqRange(left: 0, right: 0), count: m) }
        for i in 0..<m { try c.field(&sacked[i].left); try c.field(&sacked[i].right) }
        try c.field(&highRxt); try c.field(&rxtSndMax); try c.field(&tlpDeadline); try c.field(&tlpHigh)
        try c.field(&recoveryResends)
        try c.field(&tsOK); try c.field(&tsRecent); try c.field(&lastAckSent)
        try c.field(&unackedSegments); try c.field(&quickAcks); try c.field(&delAckDeadline); try c.field(&lastOOOSeq)
        // FTS4: zero-window limit, keepalive and idle limit, TS.Recent's age.
        try c.field(&zeroWindowSince); try c.field(&lastHeard); try c.field(&keepaliveSent)
        try c.field(&idleDeadline); try c.field(&tsRecentTime)
        // FTS5: the path model (delivery rate, minimum RTT).
        try pathSchema(&c)
    }

    func encode(into w: inout ByteWriter) {
        encodeIdentity(into: &w)
        schema(&w)
    }

    static func decode(_ r: inout ByteReader) throws -> TCB {
        let t = try decodeIdentity(&r)
        try t.schema(&r)
        return t
    }
}

extension Stack {
    /// "FTS5": the tag that starts `encodeState`. Change it with the encoding.
    public static let stateFormat: UInt32 = 0x4654_5335

    /// Appends the complete replicated state in a canonical order: no
    /// Dictionary order reaches it (connections and services are sorted).
    public func encodeState(into w: inout ByteWriter) {
        w.u32(Self.stateFormat)
        for (_, v) in counters.all { w.u64(v) }
        w.u64(nextConnID); w.u16(ipID)
        w.u64(timeShift)
        let keys = conns.keys.sorted()
        w.int(keys.count)
        for k in keys { conns[k]!.encode(into: &w) }
        for p in streamServices.keys.sorted() { w.u16(p); w.string(streamServices[p]!.kind); streamServices[p]!.encodeState(into: &w) }
        for p in datagramServices.keys.sorted() { w.u16(p); w.string(datagramServices[p]!.kind); datagramServices[p]!.encodeState(into: &w) }
    }

    /// Replaces this stack's replicated state with one produced by
    /// `encodeState` on a stack of the same configuration and services.
    /// On error the stack must not be used (the caller discards it).
    public func restoreState(from r: inout ByteReader) throws {
        let version = try r.u32()
        guard version == Self.stateFormat else { throw SnapshotError.badVersion(version) }
        var c = StackCounters()
        for (_, kp) in StackCounters.fields { c[keyPath: kp] = try r.u64() }
        let nextID = try r.u64()
        let ipID = try r.u16()
        let shift = try r.u64()
        let n = try r.int()
        guard n >= 0, n <= 1 << 24 else { throw DecodeError.invalid(offset: r.offset - 8, what: "connection count \(n)") }
        var restored: [ConnKey: TCB] = [:]
        var previous: ConnKey? = nil
        for _ in 0..<n {
            let t = try TCB.decode(&r)
            guard restored[t.key] == nil else { throw SnapshotError.mismatch("connection \(t.key) appears twice") }
            if let p = previous, !(p < t.key) { throw SnapshotError.mismatch("connection \(t.key) is out of order") }
            previous = t.key
            restored[t.key] = t
        }
        for p in streamServices.keys.sorted() {
            let port = try r.u16(), kind = try r.string()
            guard port == p, kind == streamServices[p]!.kind else { throw SnapshotError.mismatch("service \(kind):\(port) where \(streamServices[p]!.kind):\(p) runs here") }
            try streamServices[p]!.decodeState(from: &r)
        }
        for p in datagramServices.keys.sorted() {
            let port = try r.u16(), kind = try r.string()
            guard port == p, kind == datagramServices[p]!.kind else { throw SnapshotError.mismatch("service \(kind):\(port) where \(datagramServices[p]!.kind):\(p) runs here") }
            try datagramServices[p]!.decodeState(from: &r)
        }
        counters = c
        nextConnID = nextID
        self.ipID = ipID
        timeShift = shift
        conns = restored
    }
}
