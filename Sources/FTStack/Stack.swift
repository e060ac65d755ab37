import FTWire

/// How the stack judges a frame before acting on it. The replication layer
/// logs only frames the stack would act on (`.accept`).
public enum FrameDisposition: Sendable, Equatable {
    case accept
    case ignore
}

/// The deterministic TCP/IPv4 appliance stack: Ethernet, ARP, IPv4, ICMP echo,
/// UDP and server-side TCP. Events in (`handleFrame`, `advanceTime`), frames
/// out. It reads no clock and no randomness: the same inputs in the same
/// order give byte-identical outputs and the same `digest`.
public final class Stack {
    public let config: StackConfig
    public internal(set) var counters = StackCounters()
    var conns: [ConnKey: TCB] = [:]
    var nextConnID: ConnectionID = 1
    var ipID: UInt16 = 0
    var streamServices: [UInt16: any StreamService] = [:]
    var datagramServices: [UInt16: any DatagramService] = [:]
    /// The log time of the input being processed (a frame, a tick, a
    /// takeover): what TSvals are made of. Set at the start of every input,
    /// so it is not state: nothing reads it between inputs.
    var clock: Nanos = 0
    /// The log time of the input being processed, for services whose state
    /// depends on time (the kv service's expiry). Read it only during an input.
    public var logTime: Nanos { clock }
    /// The TSecr of the segment being processed, if it carries timestamps
    /// and ACK (set by `segmentArrives`, read while it runs).
    var inputTSEcr: UInt32? = nil
    /// Stack time = log time - `timeShift`. The shift grows by the gap
    /// before each go-live entry, so the appliance's timers and timestamps
    /// see no time pass while no node served it, however far the new
    /// primary's clock is ahead of the last logged time (`goLive`).
    var timeShift: Nanos = 0

    public init(config: StackConfig) {
        self.config = config
    }

    public func listen(port: UInt16, _ service: any StreamService) { streamServices[port] = service }
    public func bindUDP(port: UInt16, _ service: any DatagramService) { datagramServices[port] = service }

    // MARK: - Cheap pre-filter

    /// Decides, from a few header bytes, whether the stack would act on this
    /// frame. Frames for other MACs, IPv6, multicast we do not serve, ARP for
    /// other addresses and IPv4 for other addresses are ignored. Frames
    /// addressed to us that turn out malformed are accepted, so that both
    /// replicas count them.
    public func classify(_ f: [UInt8]) -> FrameDisposition {
        guard f.count >= 14 else { return .ignore }
        let dst = MACAddress(bytes: f, at: 0)
        let type = f.readBE16(12)
        if type == EtherType.arp {
            guard dst == config.mac || dst.isBroadcast else { return .ignore }
            guard f.count >= 14 + 28 else { return dst == config.mac ? .accept : .ignore }
            return f.readBE32(14 + 24) == config.ip.raw && f.readBE16(14 + 6) == ARPPacket.request ? .accept : .ignore
        }
        guard dst == config.mac, type == EtherType.ipv4 else { return .ignore }
        guard f.count >= 14 + 20 else { return .accept }
        return f.readBE32(14 + 16) == config.ip.raw ? .accept : .ignore
    }

    // MARK: - Inputs

    /// Processes one inbound Ethernet frame at log time `now`; appends frames to emit to `out`.
    /// `checksumTrusted`: the frame came from the local kernel with its TCP/UDP
    /// checksum left partial or already verified (a `.offloadFrame` log
    /// entry); the transport checksum is not verified. IP header checksums
    /// always are.
    public func handleFrame(_ f: [UInt8], now logNow: Nanos, checksumTrusted: Bool = false, out: inout Frames) {
        counters.framesIn += 1
        let now = enter(logNow)
        let before = out.count
        defer { counters.framesOut += UInt64(out.count - before) }
        guard let eth = try? EthernetHeader.parse(f) else { counters.malformed += 1; return }
        guard eth.dst == config.mac || eth.dst.isBroadcast else { counters.notForUs += 1; return }
        switch eth.etherType {
        case EtherType.arp: handleARP(f, eth: eth, out: &out)
        case EtherType.ipv4 where eth.dst == config.mac: handleIPv4(f, eth: eth, now: now, verify: !checksumTrusted, out: &out)
        default: counters.notForUs += 1
        }
    }

    /// Fires every timer due at or before `now`.
    public func advanceTime(to logNow: Nanos, out: inout Frames) {
        let now = enter(logNow)
        let before = out.count
        defer { counters.framesOut += UInt64(out.count - before) }
        var due: [TCB] = []
        for t in conns.values { if let d = t.deadline, d <= now { due.append(t) } }
        due.sort { $0.key < $1.key }  // deterministic order, independent of hashing
        for t in due where conns[t.key] === t { fireTimers(t, now: now, out: &out) }
    }

    /// The earliest pending timer, if any, in log time.
    public var nextDeadline: Nanos? {
        var d: Nanos? = nil
        for t in conns.values { if let x = t.deadline { d = d.map { min($0, x) } ?? x } }
        return d.map { $0 + timeShift }
    }

    /// Log time to stack time for an input; sets `clock`.
    func enter(_ logNow: Nanos) -> Nanos {
        let now = logNow >= timeShift ? logNow - timeShift : 0
        clock = now
        return now
    }

    /// A go-live entry (takeover or planned switchover) at log time
    /// `logNow`, after an entry at log time `previous`: the time between
    /// them is not the appliance's (no node served it, and a new primary's
    /// clock may be far ahead of the log's), so the stack's clock resumes
    /// where it stopped and no timer fires for the gap. Then, after a
    /// takeover, every connection resends at once (`retransmitAll`).
    public func goLive(now logNow: Nanos, previous: Nanos, retransmit: Bool, out: inout Frames) {
        if logNow > previous { timeShift += logNow - previous }
        advanceTime(to: logNow, out: &out)
        if retransmit { retransmitAll(now: logNow, out: &out) }
    }

    /// Retransmits, right now, the oldest unacknowledged segment of every
    /// connection and resets its backoff. Used by a replica going live after a
    /// takeover, so clients do not wait for a backed-off RTO.
    public func retransmitAll(now logNow: Nanos, out: inout Frames) {
        let now = enter(logNow)
        let before = out.count
        defer { counters.framesOut += UInt64(out.count - before) }
        for key in conns.keys.sorted() {
            let t = conns[key]!
            guard t.state != .timeWait else { continue }
            if t.state == .synReceived {
                sendSynAck(t, out: &out)
                t.rtoDeadline = now + t.rto
                continue
            }
            t.retries = 0
            if t.outstanding > 0 {
                t.rttSeq = nil
                retransmitFirst(t, out: &out)
                t.rtoDeadline = now + t.rto
            } else {
                sendAck(t, out: &out)  // re-advertise our window, elicits the peer's state
            }
        }
    }

    // MARK: - ARP and ICMP

    func handleARP(_ f: [UInt8], eth: EthernetHeader, out: inout Frames) {
        guard let a = try? ARPPacket.parse(f, at: 14) else { counters.malformed += 1; return }
        guard a.op == ARPPacket.request, a.targetIP == config.ip, a.senderIP != config.ip else {
            counters.notForUs += 1; return
        }
        let reply = ARPPacket(op: ARPPacket.reply, senderMAC: config.mac, senderIP: config.ip,
                              targetMAC: a.senderMAC, targetIP: a.senderIP)
        out.append(reply.frame(ethDst: eth.src, ethSrc: config.mac))
        counters.arpRepliesSent += 1
    }

    func nextIPID() -> UInt16 { ipID &+= 1; return ipID }

    /// False for 0/8 ("this network"), 127/8 (loopback), 224/4 (multicast),
    /// 240/4 (reserved, including 255.255.255.255), our subnet's directed
    /// broadcast and our own address (spoofed or looped back).
    func isUnicastSource(_ a: IPv4Address) -> Bool {
        let top = a.raw >> 24
        if top == 0 || top == 127 || top >= 224 { return false }
        if a == config.ip { return false }
        if config.interface.prefixLength < 31 && a == config.interface.directedBroadcast { return false }
        return true
    }

    func handleIPv4(_ f: [UInt8], eth: EthernetHeader, now: Nanos, verify: Bool, out: inout Frames) {
        let ip: IPv4Header
        do { ip = try IPv4Header.parse(f, at: 14) } catch {
            switch error {
            case .badChecksum: counters.badChecksum += 1
            case .fragment: counters.ipFragmentsDropped += 1
            case .options: counters.ipOptionsDropped += 1
            default: counters.malformed += 1
            }
            return
        }
        guard ip.dst == config.ip else { counters.notForUs += 1; return }
        // RFC 1122 3.2.1.3: a datagram whose source is not a single unicast host
        // is discarded silently; in particular no reply, ICMP error (3.2.2) or
        // RST (4.2.3.10) may be sent to a broadcast or multicast address.
        guard isUnicastSource(ip.src) else { counters.malformed += 1; return }
        switch ip.proto {
        case IPProtocol.tcp:
            let seg: TCPHeader
            do { seg = try TCPHeader.parse(f, ip: ip, verifyChecksum: verify) } catch {
                if error == .badChecksum { counters.badChecksum += 1 } else { counters.malformed += 1 }
                return
            }
            counters.tcpSegmentsIn += 1
            tcpInput(f, seg: seg, ip: ip, srcMAC: eth.src, now: now, out: &out)
        case IPProtocol.udp:
            let u: UDPHeader
            do { u = try UDPHeader.parse(f, ip: ip, verifyChecksum: verify) } catch {
                if error == .badChecksum { counters.badChecksum += 1 } else { counters.malformed += 1 }
                return
            }
            counters.udpIn += 1
            let from = Endpoint(ip: ip.src, port: u.srcPort)
            guard let svc = datagramServices[u.dstPort] else {
                counters.udpNoPort += 1
                // ICMP port unreachable quoting the IP header and 8 bytes (RFC 792).
                let quoteEnd = min(ip.payload.lowerBound + 8, ip.payload.upperBound)
                out.append(FrameBuilder.icmp(ethSrc: config.mac, ethDst: eth.src, src: config.ip, dst: ip.src,
                                             type: 3, code: 3, rest: 0, body: f[ip.headerStart..<quoteEnd],
                                             ttl: config.ttl, ipID: nextIPID()))
                return
            }
            if let reply = svc.receive(from: from, f[u.payload]) {
                out.append(FrameBuilder.udp(ethSrc: config.mac, ethDst: eth.src, src: config.ip, dst: ip.src,
                                            srcPort: u.dstPort, dstPort: u.srcPort, payload: reply[...],
                                            ttl: config.ttl, ipID: nextIPID()))
            }
        case IPProtocol.icmp:
            let p = ip.payload
            guard p.count >= 8 else { counters.malformed += 1; return }
            var c = InternetChecksum(); c.add(f, p)
            guard c.value == 0 else { counters.badChecksum += 1; return }
            if f[p.lowerBound] == ICMPError.destinationUnreachable { icmpError(f, ip: ip, now: now, out: &out); return }
            guard f[p.lowerBound] == 8, f[p.lowerBound + 1] == 0 else { counters.notForUs += 1; return }
            out.append(FrameBuilder.icmp(ethSrc: config.mac, ethDst: eth.src, src: config.ip, dst: ip.src,
                                         type: 0, code: 0, rest: f.readBE32(p.lowerBound + 4),
                                         body: f[(p.lowerBound + 8)..<p.upperBound], ttl: config.ttl, ipID: nextIPID()))
            counters.icmpEchoReplies += 1
        default:
            counters.notForUs += 1
        }
    }

    // MARK: - State, digest, inspection

    /// SipHash-2-4 (fixed key) of `encodeState`: equal on two replicas iff
    /// their replicated state is byte-identical (up to hash collisions).
    public var digest: UInt64 {
        var w = ByteWriter(capacity: 4096)
        encodeState(into: &w)
        return SipHash24.hash(k0: 0x6674_6170_6469_6765, k1: 0x7374_2d76_3100_0000, w.bytes)
    }

    public var connectionCount: Int { conns.count }

    public var connections: [ConnectionInfo] {
        conns.keys.sorted().map { k in
            let t = conns[k]!
            var i = ConnectionInfo(id: t.id, key: k, state: t.state, sndUna: t.sndUna, sndNxt: t.sndNxt,
                                   rcvNxt: t.rcvNxt, sendQueued: t.sendBuf.count, receiveQueued: t.rcvBuf.count,
                                   peerWindow: t.sndWnd, rto: t.rto)
            i.cwnd = t.cwnd; i.ssthresh = t.ssthresh; i.inRecovery = t.inRecovery; i.outstanding = t.outstanding
            i.srtt = t.srtt; i.minRTT = t.path.minRTT; i.deliveryRate = t.path.maxRate; i.bdp = t.path.bdp
            i.sackedBytes = t.sackedBytes; i.outOfOrderSegments = t.ooo.count
            return i
        }
    }
}
