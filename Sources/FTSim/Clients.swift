import FTStack
import FTWire

/// A client machine on its own switch port: ARP, a client-side TCP
/// (`TCPConn`), UDP, and one application driving sessions.
final class Host {
    enum Kind { case counter, echo, udp, audit }
    unowned let sim: Simulation
    let id: Int
    let kind: Kind
    let name: String
    let mac: MACAddress
    let ip: IPv4Address
    var rng: SimRandom
    var applianceMAC: MACAddress? = nil
    var arpAt: Nanos? = nil
    var conns: [UInt16: TCPConn] = [:]
    var timerConns: [TCPConn] = []
    var nextPort: UInt16
    var ipID: UInt16 = 0
    let mss: Int
    let wscale: UInt8?
    var app: ClientApp!
    var wakeAt: Nanos? = nil
    var wakeToken: UInt64 = 0
    var port: Int { 2 + id }

    init(sim: Simulation, id: Int, kind: Kind, rng: SimRandom) {
        self.sim = sim; self.id = id; self.kind = kind; self.rng = rng
        name = kind == .audit ? "audit" : "c\(id)"
        mac = MACAddress(raw: 0x0200_0000_0100 + UInt64(id))
        ip = IPv4Address(10, 0, 0, UInt8(10 + id))
        nextPort = UInt16(32768 + Int(self.rng.below(20000)))
        mss = self.rng.chance(0.3) ? self.rng.int(536...1460) : 1460
        wscale = self.rng.chance(0.5) ? UInt8(self.rng.int(0...4)) : nil
        switch kind {
        case .counter: app = CounterApp(host: self)
        case .echo: app = EchoApp(host: self)
        case .udp: app = UDPApp(host: self)
        case .audit: app = AuditApp(host: self)
        }
    }

    var now: Nanos { sim.now }

    func boot(at t: Nanos) {
        app.nextAt = t
        reschedule()
    }

    /// Runs the application and rearms the timer.
    func kick() {
        app.step()
        reschedule()
    }

    func reschedule() {
        var t = app.nextAt
        func consider(_ x: Nanos?) { if let x { t = t.map { min($0, x) } ?? x } }
        if applianceMAC == nil { consider(arpAt) }
        timerConns.removeAll { $0.state == .timeWait || $0.state == .failed }
        for c in timerConns { consider(c.rtoAt) }
        guard let w = t else { return }
        if let cur = wakeAt, cur <= w, cur >= now { return }
        wakeToken += 1
        wakeAt = w
        sim.schedule(w, .hostWake(host: id, token: wakeToken))
    }

    func timers() {
        if applianceMAC == nil, let a = arpAt, a <= now { sendARP() }
        for c in timerConns { if let at = c.rtoAt, at <= now { c.timeout() } }
        if let at = app.nextAt, at <= now { app.nextAt = nil; app.timer() }
        app.step()
    }

    // MARK: Link layer

    /// True when the appliance's MAC is known; otherwise starts resolving it.
    func resolved() -> Bool {
        if applianceMAC != nil { return true }
        if arpAt == nil { sendARP() }
        return false
    }

    func sendARP() {
        arpAt = now + 500 * nsPerMs
        let f = ARPPacket(op: ARPPacket.request, senderMAC: mac, senderIP: ip, targetMAC: .zero,
                          targetIP: sim.applianceIP.address).frame(ethDst: .broadcast, ethSrc: mac)
        sim.trace(name, "ARP who-has \(sim.applianceIP.address)")
        transmit(f)
    }

    func transmit(_ f: [UInt8]) { sim.linkSend(port: port, toHost: false, f) }

    func nextIPID() -> UInt16 { ipID &+= 1; return ipID }

    func receive(_ f: [UInt8]) {
        defer { reschedule() }
        guard let eth = try? EthernetHeader.parse(f), eth.dst == mac || eth.dst.isBroadcast else { return }
        if eth.etherType == EtherType.arp {
            guard let a = try? ARPPacket.parse(f, at: 14), a.senderIP == sim.applianceIP.address else { return }
            if a.op == ARPPacket.reply && a.targetIP == ip || a.op == ARPPacket.request && a.targetIP == a.senderIP && applianceMAC != nil {
                if applianceMAC == nil { sim.trace(name, "ARP \(a.senderIP) is-at \(a.senderMAC)") }
                applianceMAC = a.senderMAC
                app.step()
            }
            return
        }
        guard eth.etherType == EtherType.ipv4, eth.dst == mac,
              let iph = try? IPv4Header.parse(f, at: 14), iph.dst == ip, iph.src == sim.applianceIP.address else { return }
        if iph.proto == IPProtocol.tcp {
            guard let t = try? TCPHeader.parse(f, ip: iph) else { sim.stat("client-bad-checksum"); return }
            guard t.srcPort == 7000 || t.srcPort == 7, let c = conns[t.dstPort] else {
                sim.stat("client-stray-segments"); return
            }
            c.segment(t, f)
        } else if iph.proto == IPProtocol.udp {
            guard let u = try? UDPHeader.parse(f, ip: iph), u.srcPort == 7001 else { return }
            app.udp(Array(f[u.payload]))
        } else if iph.proto == IPProtocol.icmp {
            sim.fail("stream-integrity", "\(name) received an ICMP error from the appliance: \(frameSummary(f))")
        }
    }

    // MARK: Transport

    func connect(_ port: UInt16) -> TCPConn {
        let lport = nextPort
        nextPort = nextPort == 65535 ? 32768 : nextPort + 1
        let c = TCPConn(host: self, lport: lport, rport: port, iss: UInt32(truncatingIfNeeded: rng.next()))
        conns[lport] = c
        timerConns.append(c)
        c.open()
        return c
    }

    func sendTCP(_ c: TCPConn, seq: UInt32, flags: TCPFlags, payload: ArraySlice<UInt8> = []) {
        guard let dst = applianceMAC else { return }
        let syn = flags.contains(.syn)
        let f = FrameBuilder.tcp(ethSrc: mac, ethDst: dst, src: ip, dst: sim.applianceIP.address,
                                 srcPort: c.lport, dstPort: c.rport, seq: seq,
                                 ack: flags.contains(.ack) ? c.rcvNxt : 0, flags: flags, window: 65535,
                                 mss: syn ? UInt16(mss) : nil, windowScale: syn ? wscale : nil,
                                 payload: payload, ttl: 64, ipID: nextIPID())
        transmit(f)
    }

    func sendUDP(_ payload: [UInt8], from sport: UInt16) {
        guard let dst = applianceMAC else { return }
        transmit(FrameBuilder.udp(ethSrc: mac, ethDst: dst, src: ip, dst: sim.applianceIP.address,
                                  srcPort: sport, dstPort: 7001, payload: payload[...], ttl: 64, ipID: nextIPID()))
    }
}

/// A client-side TCP endpoint, as a client kernel behaves: active open,
/// cumulative ACKs sent for every segment, in-order delivery with an
/// out-of-order queue, duplicates dropped by sequence number, one
/// retransmission timer with exponential backoff (go-back-N on timeout),
/// a simple congestion window. It also checks what a kernel would silently
/// tolerate: bytes retransmitted by the appliance must equal the bytes first
/// received at those sequence numbers, the ISN must not change, and nothing
/// unsent may be acknowledged.
final class TCPConn {
    enum State { case synSent, open, timeWait, failed }
    unowned let host: Host
    let lport: UInt16, rport: UInt16
    let iss: UInt32
    var state = State.synSent
    // Send side: `out` holds every byte written; offsets count from ISS+1.
    var out: [UInt8] = []
    var unaOff = 0          // first unacknowledged offset (out.count + 1 once the FIN is acked)
    var nxtOff = 0
    var maxOff = 0
    var finQueued = false
    var finOut = false
    var finEverSent = false
    // Receive side.
    var irs: UInt32 = 0
    var inData: [UInt8] = []
    var peerFin = false
    var ooo: [(off: Int, data: [UInt8], fin: Bool)] = []
    var peerWnd = 0
    var peerScale = 0
    var ourScale = 0
    var sendMSS = 536
    // Timer.
    static let rtoInitial: Nanos = 1_000 * nsPerMs
    static let rtoBase: Nanos = 200 * nsPerMs
    static let rtoMax: Nanos = 10_000 * nsPerMs
    static let maxRetries = 15
    static let maxSynRetries = 8
    var rto = TCPConn.rtoInitial
    var retries = 0
    var rtoAt: Nanos? = nil
    var cwnd = 0
    var sim: Simulation { host.sim }
    var label: String { "\(host.name):\(lport)->\(rport)" }

    init(host: Host, lport: UInt16, rport: UInt16, iss: UInt32) {
        self.host = host; self.lport = lport; self.rport = rport; self.iss = iss
    }

    var sndBase: UInt32 { iss &+ 1 }
    var rcvBase: UInt32 { irs &+ 1 }
    var rcvNxt: UInt32 { rcvBase &+ UInt32(inData.count) &+ (peerFin ? 1 : 0) }
    var ackedOff: Int { min(unaOff, out.count) }
    var finAcked: Bool { unaOff > out.count }
    var outstanding: Bool { maxOff > ackedOff || (finEverSent && !finAcked) }
    var receiveWindow: Int { 65535 << ourScale }

    func open() {
        sim.trace(host.name, "connect :\(lport) -> :\(rport)")
        sendSYN()
        rtoAt = sim.now + rto
    }

    func sendSYN() { host.sendTCP(self, seq: iss, flags: [.syn]) }

    func sendAck() { host.sendTCP(self, seq: sndBase &+ UInt32(nxtOff) &+ (finOut ? 1 : 0), flags: [.ack]) }

    func write(_ bytes: [UInt8]) {
        out.append(contentsOf: bytes)
        output()
    }

    func close() {
        finQueued = true
        output()
    }

    func output(force: Bool = false) {
        guard state == .open else { return }
        let wnd = max(force ? 1 : 0, min(peerWnd, cwnd))
        while nxtOff < out.count {
            let room = wnd - (nxtOff - ackedOff)
            let len = min(sendMSS, out.count - nxtOff, room)
            if len <= 0 { break }
            let last = nxtOff + len == out.count
            host.sendTCP(self, seq: sndBase &+ UInt32(nxtOff), flags: last ? [.ack, .psh] : [.ack],
                         payload: out[nxtOff..<(nxtOff + len)])
            nxtOff += len
            maxOff = max(maxOff, nxtOff)
            if rtoAt == nil { rtoAt = sim.now + rto }
        }
        if finQueued && !finOut && nxtOff == out.count {
            host.sendTCP(self, seq: sndBase &+ UInt32(out.count), flags: [.fin, .ack])
            finOut = true
            finEverSent = true
            if rtoAt == nil { rtoAt = sim.now + rto }
        }
        // Data waiting behind a closed window: the timer doubles as persist timer.
        if nxtOff < out.count && rtoAt == nil { rtoAt = sim.now + rto }
    }

    func failConn(_ invariant: String, _ why: String) {
        state = .failed
        rtoAt = nil
        sim.fail(invariant, "\(label): \(why)")
    }

    func timeout() {
        rtoAt = nil
        switch state {
        case .synSent:
            retries += 1
            if retries > TCPConn.maxSynRetries { failConn("liveness", "SYN unanswered after \(retries - 1) retransmissions"); return }
            rto = min(rto * 2, TCPConn.rtoMax)
            sendSYN()
            rtoAt = sim.now + rto
        case .open:
            retries += 1
            if retries > TCPConn.maxRetries {
                failConn("liveness", "gave up after \(TCPConn.maxRetries) retransmissions (acked \(ackedOff)/\(out.count), received \(inData.count))")
                return
            }
            rto = min(rto * 2, TCPConn.rtoMax)
            if outstanding {
                nxtOff = ackedOff
                if !finAcked { finOut = false }
                cwnd = sendMSS
                output()
            } else {
                output(force: true)  // window probe
            }
            if rtoAt == nil && (outstanding || nxtOff < out.count) { rtoAt = sim.now + rto }
        case .timeWait, .failed:
            break
        }
    }

    func segment(_ h: TCPHeader, _ f: [UInt8]) {
        let payload = f[h.payload]
        switch state {
        case .failed:
            return
        case .synSent:
            if h.flags.contains(.rst) {
                if h.flags.contains(.ack) && h.ack == sndBase { failConn("connection-reset", "connection refused (RST in answer to SYN)") }
                return
            }
            guard h.flags.contains(.syn), h.flags.contains(.ack), h.ack == sndBase else { return }
            irs = h.seq
            state = .open
            if host.wscale != nil, let ws = h.windowScale { peerScale = Int(min(ws, 14)); ourScale = Int(host.wscale!) }
            peerWnd = Int(h.window)
            sendMSS = min(Int(h.mss ?? 536), host.mss)
            cwnd = 10 * sendMSS
            unaOff = 0
            retries = 0
            rto = TCPConn.rtoBase
            rtoAt = nil
            sim.trace(host.name, "established :\(lport) -> :\(rport)")
            sendAck()
            host.app.established(self)
            output()
            return
        case .open, .timeWait:
            break
        }
        if h.flags.contains(.rst) {
            if state == .timeWait { return }
            let off = Int(Int32(bitPattern: h.seq &- rcvBase))
            if off >= inData.count && off <= inData.count + receiveWindow {
                failConn("connection-reset", "reset by the appliance (received \(inData.count) bytes, \(ackedOff)/\(out.count) acknowledged)")
            } else {
                sim.stat("client-rst-out-of-window")
            }
            return
        }
        if h.flags.contains(.syn) {
            if h.seq == irs { sendAck(); return }
            if state == .timeWait {
                // The answer to an old duplicate of our SYN that reached the
                // appliance after this connection was gone (RFC 9293 3.10.7.4):
                // a client kernel in TIME-WAIT just acknowledges.
                sim.stat("client-old-duplicate-syn")
                sendAck()
                return
            }
            failConn("tcp-protocol", "SYN-ACK with initial sequence number \(h.seq), but the connection was opened with \(irs)")
            return
        }
        if h.flags.contains(.ack) {
            let ackOff = Int(Int32(bitPattern: h.ack &- sndBase))
            let maxValid = maxOff + (finEverSent ? 1 : 0)
            if ackOff > maxValid {
                failConn("tcp-protocol", "the appliance acknowledged \(ackOff - maxValid) bytes beyond what was sent")
                return
            }
            if ackOff > unaOff {
                unaOff = ackOff
                if nxtOff < ackedOff { nxtOff = ackedOff }
                retries = 0
                rto = TCPConn.rtoBase
                cwnd += sendMSS
                rtoAt = outstanding ? sim.now + rto : nil
            }
            peerWnd = Int(h.window) << peerScale
        }
        let fin = h.flags.contains(.fin)
        if !payload.isEmpty || fin {
            receive(off: Int(Int32(bitPattern: h.seq &- rcvBase)), payload, fin: fin)
            if state == .failed { return }
            sendAck()
        }
        if state == .open {
            output()
            if peerFin && finAcked {
                state = .timeWait
                rtoAt = nil
                sim.trace(host.name, "closed :\(lport) -> :\(rport) (\(out.count) bytes sent, \(inData.count) received)")
                host.app.closed(self)
            }
        }
    }

    func receive(off: Int, _ payload: ArraySlice<UInt8>, fin: Bool) {
        let len = payload.count
        // What overlaps bytes already received must be identical.
        let lo = max(off, 0), hi = min(off + len, inData.count)
        if lo < hi {
            let base = payload.startIndex - off
            for i in lo..<hi where payload[base + i] != inData[i] {
                failConn("stream-integrity", "the appliance sent byte offset \(i) again with a different value")
                return
            }
        }
        if peerFin {
            if off + len > inData.count || (fin && off + len != inData.count) {
                failConn("stream-integrity", "data or FIN beyond the FIN already received at offset \(inData.count)")
            }
            return
        }
        if off < 0 || off > inData.count + receiveWindow { sim.stat("client-segments-out-of-window"); return }
        if off > inData.count {
            if ooo.count < 64 && !ooo.contains(where: { $0.off == off && $0.data.count >= len }) {
                ooo.append((off, Array(payload), fin))
            }
            return
        }
        append(off: off, payload, fin: fin)
        while !peerFin, state == .open, let i = ooo.firstIndex(where: { $0.off <= inData.count }) {
            let s = ooo.remove(at: i)
            let lo2 = max(s.off, 0), hi2 = min(s.off + s.data.count, inData.count)
            for k in lo2..<max(lo2, hi2) where s.data[k - s.off] != inData[k] {
                failConn("stream-integrity", "the appliance sent byte offset \(k) again with a different value")
                return
            }
            append(off: s.off, s.data[...], fin: s.fin)
        }
    }

    func append(off: Int, _ payload: ArraySlice<UInt8>, fin: Bool) {
        let skip = inData.count - off
        if skip < payload.count {
            let fresh = payload[(payload.startIndex + skip)...]
            inData.append(contentsOf: fresh)
            host.app.data(self, fresh)
            if state != .open { return }
        }
        if fin && off + payload.count == inData.count && !peerFin {
            peerFin = true
            ooo.removeAll()
            host.app.peerFin(self)
        }
    }
}

// MARK: - Applications

/// Drives sessions: safety phase, sessions separated by think time; once
/// `stopping` (liveness phase), finish the current session, run one more,
/// then stop.
class ClientApp {
    unowned let host: Host
    var stopping = false
    var done = false
    var nextAt: Nanos? = nil
    var inSession = false
    var finalStarted = false
    var sessions = 0
    var sim: Simulation { host.sim }
    var counter: CounterChecker { sim.counter }
    init(host: Host) { self.host = host }

    var status: String { done ? "done" : inSession ? "in session \(sessions)\(sessionStatus)" : "idle" }
    var sessionStatus: String { "" }

    func timer() {
        if !inSession && !done { wantSession = true }
    }
    var wantSession = false

    func step() {
        guard !done, !inSession, wantSession, sim.violation == nil else { return }
        guard host.resolved() else { return }
        wantSession = false
        inSession = true
        sessions += 1
        if stopping { finalStarted = true }
        startSession()
    }

    func sessionEnded() {
        inSession = false
        if stopping && finalStarted {
            done = true
            sim.trace(host.name, "done after \(sessions) sessions")
            sim.clientsMaybeDone()
            return
        }
        let p = sim.params
        nextAt = sim.now + (stopping ? host.rng.nanos(0, 10 * nsPerMs) : host.rng.nanos(p.thinkMin, p.thinkMax))
    }

    func startSession() {}
    func established(_ c: TCPConn) {}
    func data(_ c: TCPConn, _ bytes: ArraySlice<UInt8>) {}
    func peerFin(_ c: TCPConn) {}
    func closed(_ c: TCPConn) { sessionEnded() }
    func udp(_ payload: [UInt8]) {}
}

/// `counter` over TCP: a few INCR/GET lines per connection, pipelined to a
/// random depth; every reply checked against the counter invariants.
final class CounterApp: ClientApp {
    struct Req { var incr: Bool; var bound: UInt64 = 0 }
    var conn: TCPConn?
    var reqs: [Req] = []
    var sent = 0, replied = 0, depth = 1
    var line: [UInt8] = []
    var crlf = false
    /// Audit mode: one GET whose value must equal the number of completed INCRs.
    var audit = false
    var auditValue: UInt64? = nil

    override var sessionStatus: String { ", \(replied)/\(reqs.count) replies, conn \(conn.map { "\($0.state)" } ?? "-")" }

    override func startSession() {
        let k = audit ? 1 : host.rng.int(1...sim.params.counterMaxRequests)
        reqs = (0..<k).map { _ in Req(incr: audit ? false : host.rng.chance(0.7)) }
        depth = host.rng.int(1...k)
        crlf = host.rng.chance(0.1)
        sent = 0; replied = 0; line = []
        conn = host.connect(7000)
    }

    override func established(_ c: TCPConn) { sendMore() }

    func sendMore() {
        guard let c = conn else { return }
        var bytes: [UInt8] = []
        while sent < reqs.count && sent - replied < depth {
            reqs[sent].bound = counter.invoke()
            bytes += Array((reqs[sent].incr ? "INCR" : "GET").utf8) + (crlf ? [13, 10] : [10])
            sent += 1
        }
        if !bytes.isEmpty { c.write(bytes) }
    }

    override func data(_ c: TCPConn, _ bytes: ArraySlice<UInt8>) {
        for b in bytes {
            if b == 10 {
                let l = line
                line = []
                handle(l, c)
                if c.state != .open { return }
            } else {
                line.append(b)
                if line.count > 40 { c.failConn("stream-integrity", "counter reply line too long"); return }
            }
        }
    }

    func handle(_ l: [UInt8], _ c: TCPConn) {
        let text = String(decoding: l, as: UTF8.self)
        guard replied < sent else { c.failConn("stream-integrity", "unsolicited counter reply '\(text)'"); return }
        guard let v = UInt64(text) else {
            c.failConn("stream-integrity", "reply '\(text)' to \(reqs[replied].incr ? "INCR" : "GET")"); return
        }
        let r = reqs[replied]
        replied += 1
        sim.trace(host.name, "\(r.incr ? "INCR" : "GET") -> \(v)")
        if audit {
            auditValue = v
            if v != UInt64(counter.incrCompleted) {
                sim.fail("counter-gap-free", "final GET returned \(v) but \(counter.incrCompleted) INCRs completed")
            }
        } else {
            counter.completed(sim, incr: r.incr, value: v, bound: r.bound, who: host.name)
        }
        if replied == reqs.count { c.close() } else { sendMore() }
    }

    override func peerFin(_ c: TCPConn) {
        if replied < reqs.count || !line.isEmpty {
            c.failConn("stream-integrity", "counter closed the connection after \(replied) of \(reqs.count) replies")
        }
    }
}

/// `echo` over TCP: random bytes, half-closing early or after the echo;
/// every byte returned must be the byte sent at that offset.
final class EchoApp: ClientApp {
    var conn: TCPConn?
    var payload: [UInt8] = []
    var received = 0
    var earlyClose = false

    override var sessionStatus: String { ", echoed \(received)/\(payload.count), conn \(conn.map { "\($0.state)" } ?? "-")" }

    override func startSession() {
        payload = host.rng.bytes(host.rng.int(1...sim.params.echoMaxBytes))
        received = 0
        earlyClose = host.rng.chance(0.5)
        conn = host.connect(7)
    }

    override func established(_ c: TCPConn) {
        c.write(payload)
        if earlyClose { c.close() }
    }

    override func data(_ c: TCPConn, _ bytes: ArraySlice<UInt8>) {
        if received + bytes.count > payload.count {
            c.failConn("stream-integrity", "echo returned \(received + bytes.count) bytes, \(payload.count) were sent"); return
        }
        var i = received
        for b in bytes {
            if b != payload[i] { c.failConn("stream-integrity", "echo byte at offset \(i) differs from the byte sent"); return }
            i += 1
        }
        received = i
        if received == payload.count && !earlyClose { c.close() }
    }

    override func peerFin(_ c: TCPConn) {
        if received != payload.count {
            c.failConn("stream-integrity", "echo closed after \(received) of \(payload.count) bytes")
        }
    }
}

/// `udp-counter`: requests `<name> <seq> INCR|GET`, retried with backoff
/// until answered. Replies to old requests must repeat the first answer
/// (exactly once).
final class UDPApp: ClientApp {
    var seq: UInt64 = 0
    var current: (seq: UInt64, incr: Bool, bound: UInt64)? = nil
    var retryIn: Nanos = 0
    var answers: [UInt64: UInt64] = [:]
    var remaining = 0
    var sport: UInt16 { UInt16(5000 + host.id) }
    var clientName: String { host.kind == .audit ? "audit" : "u\(host.id)" }
    var audit: Bool { host.kind == .audit }

    override var sessionStatus: String { ", waiting for request \(current.map { "\($0.seq)" } ?? "-")" }

    override func startSession() {
        remaining = audit ? 1 : host.rng.int(1...5)
        nextRequest()
    }

    func nextRequest() {
        seq += 1
        current = (seq, audit ? false : host.rng.chance(0.7), counter.invoke())
        retryIn = host.rng.nanos(100 * nsPerMs, 300 * nsPerMs)
        send()
    }

    func send() {
        guard let c = current else { return }
        host.sendUDP(Array("\(clientName) \(c.seq) \(c.incr ? "INCR" : "GET")\n".utf8), from: sport)
        nextAt = sim.now + retryIn
    }

    override func timer() {
        if current != nil {
            retryIn = min(retryIn * 2, 2_000 * nsPerMs)
            send()
        } else {
            super.timer()
        }
    }

    override func udp(_ payload: [UInt8]) {
        var text = String(decoding: payload, as: UTF8.self)
        while text.last == "\n" { text.removeLast() }
        let parts = text.split(separator: " ")
        guard parts.count >= 3, parts[0] == clientName, let s = UInt64(parts[1]) else {
            sim.fail("stream-integrity", "\(host.name): malformed udp-counter reply '\(text)'"); return
        }
        if parts[2] == "ERR" {
            if current?.seq == s || s > seq {
                sim.fail("udp-exactly-once", "\(host.name): request \(s) answered '\(text)'")
            }
            return  // "stale" for a superseded request is fine
        }
        guard parts.count == 3, let v = UInt64(parts[2]) else {
            sim.fail("stream-integrity", "\(host.name): malformed udp-counter reply '\(text)'"); return
        }
        if let c = current, c.seq == s {
            answers[s] = v
            current = nil
            nextAt = nil
            sim.trace(host.name, "udp \(s) \(c.incr ? "INCR" : "GET") -> \(v)")
            if audit {
                if v != UInt64(counter.incrCompleted) {
                    sim.fail("counter-gap-free", "final udp GET returned \(v) but \(counter.incrCompleted) INCRs completed")
                }
            } else {
                counter.completed(sim, incr: c.incr, value: v, bound: c.bound, who: "\(host.name)/udp")
            }
            remaining -= 1
            if remaining > 0 { nextRequest() } else { sessionEnded() }
        } else if let prev = answers[s] {
            if prev != v { sim.fail("udp-exactly-once", "\(host.name): request \(s) answered \(prev) and later \(v)") }
        } else {
            sim.fail("udp-exactly-once", "\(host.name): answer '\(text)' to a request never sent")
        }
    }
}

/// Runs after every client finished: a fresh TCP connection GETs the
/// counter, then a UDP GET; both must equal the number of completed INCRs.
final class AuditApp: ClientApp {
    let tcp: CounterApp
    let udpApp: UDPApp
    var stage = 0
    override init(host: Host) {
        tcp = CounterApp(host: host)
        udpApp = UDPApp(host: host)
        super.init(host: host)
        tcp.audit = true
    }
    override var status: String { done ? "done" : stopping ? "auditing (stage \(stage): tcp \(tcp.status), udp \(udpApp.status))" : "waiting" }

    override func timer() {
        if stage == 2 { udpApp.timer(); nextAt = udpApp.nextAt }
    }
    override func step() {
        guard stopping, !done, host.resolved(), sim.violation == nil else { return }
        if stage == 0 {
            stage = 1
            tcp.inSession = true
            tcp.startSession()
        }
    }
    override func established(_ c: TCPConn) { tcp.established(c) }
    override func data(_ c: TCPConn, _ bytes: ArraySlice<UInt8>) { tcp.data(c, bytes) }
    override func peerFin(_ c: TCPConn) { tcp.peerFin(c) }
    override func closed(_ c: TCPConn) {
        guard stage == 1 else { return }
        stage = 2
        udpApp.inSession = true
        udpApp.startSession()
        nextAt = udpApp.nextAt
    }
    override func udp(_ payload: [UInt8]) {
        udpApp.udp(payload)
        nextAt = udpApp.nextAt
        if stage == 2 && udpApp.current == nil && udpApp.remaining == 0 {
            done = true
            nextAt = nil
            sim.auditDone()
        }
    }
}
