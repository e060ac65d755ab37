import FTWire

/// Restoring the replicated state from `encodeState` output: the inverse of
/// `Stack.encodeState`, `TCB.encode` and each service's `encodeState`. Used
/// when a new backup joins a running primary by state transfer.
public enum SnapshotError: Error, CustomStringConvertible, Equatable {
    case badVersion(UInt32)
    case mismatch(String)
    public var description: String {
        switch self {
        case .badVersion(let v): return "stack state version 0x\(String(v, radix: 16)) is not supported"
        case .mismatch(let s): return "snapshot does not fit this appliance: \(s)"
        }
    }
}

extension TCB {
    static func decode(_ r: inout ByteReader) throws -> TCB {
        let id = try r.u64()
        let key = ConnKey(remote: Endpoint(ip: IPv4Address(raw: try r.u32()), port: try r.u16()), localPort: try r.u16())
        let stateRaw = try r.u8()
        guard let state = TCPState(rawValue: stateRaw) else { throw DecodeError.invalid(offset: r.offset - 1, what: "TCP state \(stateRaw)") }
        let peerMAC = MACAddress(raw: try r.u64())
        let iss = try r.u32()
        let sndUna = try r.u32(), sndNxt = try r.u32(), sndMax = try r.u32()
        let sndWnd = try r.int(), maxSndWnd = try r.int()
        let sndWl1 = try r.u32(), sndWl2 = try r.u32(), sndScale = try r.u8(), rcvScale = try r.u8()
        let sendMSS = try r.int()
        let sendBuf = try r.blob(), bufSeq = try r.u32(), finQueued = try r.bool()
        let irs = try r.u32(), rcvNxt = try r.u32()
        let rcvBuf = try r.blob(), rcvAdvEdge = try r.u32(), lastAdvWindow = try r.int()
        let oooCount = try r.int()
        guard oooCount >= 0, oooCount <= 1 << 16 else { throw DecodeError.invalid(offset: r.offset - 8, what: "out-of-order count") }
        var ooo: [OOOSegment] = []
        for _ in 0..<oooCount { ooo.append(OOOSegment(seq: try r.u32(), data: try r.blob(), fin: try r.bool())) }
        let t = TCB(id: id, key: key, peerMAC: peerMAC, iss: iss, irs: irs, sendMSS: sendMSS, rto: 0)
        t.state = state
        t.sndUna = sndUna; t.sndNxt = sndNxt; t.sndMax = sndMax; t.sndWnd = sndWnd; t.maxSndWnd = maxSndWnd
        t.sndWl1 = sndWl1; t.sndWl2 = sndWl2; t.sndScale = sndScale; t.rcvScale = rcvScale
        t.sendBuf.append(contentsOf: sendBuf); t.bufSeq = bufSeq; t.finQueued = finQueued
        t.rcvNxt = rcvNxt; t.rcvBuf.append(contentsOf: rcvBuf); t.rcvAdvEdge = rcvAdvEdge; t.lastAdvWindow = lastAdvWindow
        t.ooo = ooo
        t.peerFin = try r.bool(); t.peerCloseNotified = try r.bool(); t.serviceOpened = try r.bool()
        t.serviceClosed = try r.bool(); t.ackNeeded = try r.bool()
        t.rto = try r.u64(); t.srtt = try r.u64(); t.rttvar = try r.u64(); t.hasRTT = try r.bool()
        let rtoDeadline = try r.u64(); t.rtoDeadline = rtoDeadline == .max ? nil : rtoDeadline
        t.retries = try r.int()
        let rttSeq = try r.u32(); let hasRTTSeq = try r.bool(); t.rttSeq = hasRTTSeq ? rttSeq : nil
        t.rttStart = try r.u64()
        t.cwnd = try r.int(); t.ssthresh = try r.int(); t.dupAcks = try r.int(); t.inRecovery = try r.bool(); t.recover = try r.u32()
        let persist = try r.u64(); t.persistDeadline = persist == .max ? nil : persist
        t.persistBackoff = try r.int(); t.persistUnanswered = try r.int()
        let tw = try r.u64(); t.timeWaitDeadline = tw == .max ? nil : tw
        let fw2 = try r.u64(); t.finWait2Deadline = fw2 == .max ? nil : fw2
        t.sackOK = try r.bool()
        return t
    }
}

extension Stack {
    /// Replaces this stack's replicated state with one produced by
    /// `encodeState` on a stack of the same configuration and services.
    /// On error the stack must not be used (the caller discards it).
    public func restoreState(from r: inout ByteReader) throws {
        let version = try r.u32()
        guard version == 0x4654_5331 else { throw SnapshotError.badVersion(version) }
        var c = StackCounters()
        for (_, kp) in StackCounters.fields { c[keyPath: kp] = try r.u64() }
        let nextID = try r.u64()
        let ipID = try r.u16()
        let n = try r.int()
        guard n >= 0, n <= 1 << 24 else { throw DecodeError.invalid(offset: r.offset - 8, what: "connection count \(n)") }
        var restored: [ConnKey: TCB] = [:]
        for _ in 0..<n {
            let t = try TCB.decode(&r)
            guard restored[t.key] == nil else { throw SnapshotError.mismatch("connection \(t.key) appears twice") }
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
        conns = restored
    }
}
