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
    /// Offers SACK (RFC 2018) and timestamps (RFC 7323) in its SYNs, as a
    /// Linux client does; chosen by host number, so the random draws (and
    /// every seed's scenario) stay what they were.
    let offersSACK: Bool
    let offersTimestamps: Bool
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
        offersSACK = id % 3 != 2
        offersTimestamps = id % 2 == 0
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
        // TSval: this host's clock in ms plus a per-connection offset, as Linux.
        let blocks = c.sackOK && !syn ? c.sackBlocks() : []
        if !blocks.isEmpty { sim.stat("client-sack-acks") }
        let stamp = (syn ? offersTimestamps : c.tsOK)
            ? TCPTimestamps(value: UInt32(truncatingIfNeeded: now / nsPerMs) &+ c.iss, echo: syn ? 0 : c.tsRecent) : nil
        let f = FrameBuilder.tcp(ethSrc: mac, ethDst: dst, src: ip, dst: sim.applianceIP.address,
                                 srcPort: c.lport, dstPort: c.rport, seq: seq,
                                 ack: flags.contains(.ack) ? c.rcvNxt : 0, flags: flags, window: 65535,
                                 mss: syn ? UInt16(mss) : nil, windowScale: syn ? wscale : nil,
                                 sackPermitted: syn && offersSACK, timestamps: stamp,
                                 sackBlocks: blocks,
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
    // Negotiated in the SYN-ACK: SACK blocks on our ACKs, timestamps on every segment.
    var sackOK = false
    var tsOK = false
    var tsRecent: UInt32 = 0
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

    /// RFC 2018 blocks for the out-of-order queue, the most recently
    /// received first; three with timestamps (40 option bytes), four without.
    func sackBlocks() -> [(UInt32, UInt32)] {
        var blocks: [(UInt32, UInt32)] = []
        for s in ooo.reversed() where !s.data.isEmpty {
            let b = (rcvBase &+ UInt32(s.off), rcvBase &+ UInt32(s.off + s.data.count))
            if !blocks.contains(where: { $0 == b }) { blocks.append(b) }
        }
        return Array(blocks.prefix(tsOK ? 3 : 4))
    }

    /// Payload bytes per segment: the MSS less the timestamp option.
    var payloadMax: Int { max(1, sendMSS - (tsOK ? 12 : 0)) }

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
            let len = min(payloadMax, out.count - nxtOff, room)
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
        // Every segment must fit the appliance's MTU with its options.
        if f.count - 14 > sim.stackMTU {
            failConn("tcp-protocol", "a \(f.count - 14)-byte IP packet, beyond the MTU of \(sim.stackMTU)"); return
        }
        if tsOK, let t = h.timestamps, Int32(bitPattern: t.value &- tsRecent) > 0 { tsRecent = t.value }
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
            sackOK = host.offersSACK && h.sackPermitted
            if host.offersTimestamps, let t = h.timestamps { tsOK = true; tsRecent = t.value; sim.stat("client-timestamp-connections") }
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

