import FTStack
import FTWire

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
