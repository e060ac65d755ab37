import FTReplication
import FTStack
import FTWire

/// The replication invariants, checked as the run goes. Nodes are tracked
/// per process (`SimNode.uid`): a restarted node is a new process.
///
/// * emission-exclusive: once a process emits a frame while in epoch E, a
///   frame emitted afterwards (by anyone) must come from a process whose
///   epoch is higher than E, or from that same process still in E. So at
///   most one process emits per epoch, a superseded process never emits
///   again, and two processes never take turns on the wire.
/// * output-rule: a process in mode protected (or handing over) emits a frame
///   produced by log entry i only after an `ack(j >= i)` reached it (acks are
///   decoded from the channel bytes the process read).
/// * replica-log / replica-outputs: every entry a follower applies from the
///   channel is identical to the entry its leader applied at that index, and
///   the follower's stack produced exactly the frames the leader's produced
///   for it (every replicated entry, not sampled).
/// * replica-digest: full state digests (`Replica.digest`) compared at
///   sampled indexes: a protected leader records its digest at the end of a
///   loop iteration (a batch end) every `digestEvery` entries; its follower
///   compares when a read leaves it at that index. Plus a final comparison
///   once the pair has converged at the end of the run.
final class Checker {
    var maxEmitEpoch: UInt64 = 0
    var maxEmitUID = -1
    var maxEmitName = ""
    var ackSeen: [Int: UInt64] = [:]
    var received: [Int: [UInt64: (entry: LogEntry, from: Int)]] = [:]
    var leaderLog: [Int: [UInt64: (entry: LogEntry, outputs: [[UInt8]])]] = [:]
    var digests: [Int: [UInt64: UInt64]] = [:]
    var nextDigestAt: [Int: UInt64] = [:]
    var digestsCompared = 0
    var entriesCompared = 0

    func emitted(_ sim: Simulation, _ n: SimNode, _ o: OutputFrame) {
        let e = n.core.epoch
        if e > maxEmitEpoch || (e == maxEmitEpoch && n.uid == maxEmitUID) {
            maxEmitEpoch = e; maxEmitUID = n.uid; maxEmitName = "\(n.name) (process \(n.uid))"
        } else if e == maxEmitEpoch {
            sim.fail("emission-exclusive", "\(n.name) (process \(n.uid)) emitted in epoch \(e), in which \(maxEmitName) already emitted: \(frameSummary(o.frame))")
            return
        } else {
            sim.fail("emission-exclusive", "\(n.name) (process \(n.uid)) emitted in epoch \(e) after \(maxEmitName) emitted in epoch \(maxEmitEpoch): \(frameSummary(o.frame))")
            return
        }
        let mode = n.core.mode
        if (mode == .protected || mode == .handingOver) && o.index > 0 && o.index > ackSeen[n.uid, default: 0] {
            sim.fail("output-rule", "\(n.name) (\(mode)) emitted output of entry \(o.index) but its backup had acknowledged only up to \(ackSeen[n.uid, default: 0]): \(frameSummary(o.frame))")
        }
    }

    func applied(_ sim: Simulation, _ n: SimNode, _ e: LogEntry, _ outputs: [[UInt8]]) {
        if let r = received[n.uid]?.removeValue(forKey: e.index), r.entry == e {
            entriesCompared += 1
            guard let l = leaderLog[r.from]?.removeValue(forKey: e.index) else {
                sim.fail("replica-log", "\(n.name) applied entry \(e.index) from the channel, which its leader never applied")
                return
            }
            if l.entry != e {
                sim.fail("replica-log", "entry \(e.index) differs between leader and follower")
            } else if l.outputs != outputs {
                var detail = "leader produced \(l.outputs.count) frames, follower \(outputs.count)"
                for i in 0..<min(l.outputs.count, outputs.count) where l.outputs[i] != outputs[i] {
                    detail = "frame \(i): leader \(frameSummary(l.outputs[i])) / follower \(frameSummary(outputs[i]))"
                    break
                }
                sim.fail("replica-outputs", "entry \(e.index) (\(e.kind)): the replicas produced different output: \(detail)")
            }
            return
        }
        leaderLog[n.uid, default: [:]][e.index] = (e, outputs)
    }

    /// A protected leader at the end of a loop iteration (its batch is written): sample its digest.
    func leaderIterationEnded(_ sim: Simulation, _ n: SimNode) {
        let c = n.core
        guard c.mode == .protected else { return }
        let idx = c.replica.appliedIndex
        guard idx >= nextDigestAt[n.uid, default: 1] else { return }
        digests[n.uid, default: [:]][idx] = c.replica.digest
        nextDigestAt[n.uid] = idx + sim.params.digestEvery
    }

    /// A follower after a read: compare if its leader sampled this index.
    func followerRead(_ sim: Simulation, _ n: SimNode, _ cid: Int) {
        let c = n.core
        guard c.mode == .backup else { return }
        let leader = sim.conns[cid].uid[1 - n.id]
        let idx = c.replica.appliedIndex
        guard let d = digests[leader]?.removeValue(forKey: idx) else { return }
        digestsCompared += 1
        let mine = c.replica.digest
        if mine != d {
            sim.fail("replica-digest", "state digests differ at index \(idx): leader \(hex16(d)), follower \(hex16(mine))")
        }
    }
}

extension Simulation {
    /// Decodes what a process reads from the channel: the acks that reached
    /// it and the entries it was sent. Returns whether this read carried an ack.
    func observeChannel(_ n: SimNode, _ cid: Int, _ bytes: [UInt8]) -> Bool {
        var d = n.decoders[cid] ?? ChannelDecoder()
        d.feed(bytes)
        var sawAck = false
        let from = conns[cid].uid[1 - n.id]
        while let m = try? d.next() {
            switch m {
            case .ack(let i):
                sawAck = true
                checker.ackSeen[n.uid] = max(checker.ackSeen[n.uid, default: 0], i)
            case .entries(let es):
                for e in es { checker.received[n.uid, default: [:]][e.index] = (e, from) }
            default: break
            }
            if tracing { trace(n.name, "reads \(describe(m))") }
        }
        n.decoders[cid] = d
        return sawAck
    }

    func describe(_ m: ChannelMessage) -> String {
        switch m {
        case .hello(let h): return "hello from \(h.node) (index \(h.appliedIndex))"
        case .welcome(let e, let snap): return "welcome(epoch \(e)\(snap ? ", snapshot follows" : ""))"
        case .reject(let r): return "reject(\(r))"
        case .entries(let es): return "entries \(es.first?.index ?? 0)...\(es.last?.index ?? 0)"
        case .ack(let i): return "ack(\(i))"
        case .heartbeat: return "heartbeat"
        case .digest(let i, let v): return "digest(\(i), \(hex16(v)))"
        case .snapshotBegin(let i, let e, let total, _): return "snapshot-begin(index \(i), epoch \(e), \(total) bytes)"
        case .snapshotChunk(let off, let data, _): return "snapshot-chunk(\(off), \(data.count) bytes)"
        case .snapshotEnd: return "snapshot-end"
        case .health(let h, let r): return "health(\(h ? "healthy" : "unhealthy")\(r.isEmpty ? "" : ": \(r)"))"
        case .forward(let f): return "forward(\(f.count) bytes)"
        case .diverged(let i): return "diverged(\(i))"
        }
    }

    func sampleDigest(_ n: SimNode) { checker.leaderIterationEnded(self, n) }
}

/// Counter semantics across all clients (TCP `counter` and `udp-counter`
/// share one counter).
/// * counter-unique: no INCR value is returned twice.
/// * counter-linearizable: an operation invoked after another completed sees
///   its effect: INCR returns more, GET at least as much, as the largest value
///   any client had received before the operation was invoked.
/// * counter-gap-free: at the end, the INCR values are exactly 1...N where N
///   is the number of INCRs that completed, and a final GET returns N
///   (no increment lost, none applied twice).
final class CounterChecker {
    var maxObserved: UInt64 = 0
    var incrSeen: [UInt64: String] = [:]
    var incrCompleted = 0
    var maxIncr: UInt64 = 0

    /// Called when an operation is invoked; returns its lower bound.
    func invoke() -> UInt64 { maxObserved }

    func completed(_ sim: Simulation, incr: Bool, value: UInt64, bound: UInt64, who: String) {
        if incr {
            if let other = incrSeen[value] {
                sim.fail("counter-unique", "INCR returned \(value) to \(who), already returned to \(other)")
                return
            }
            incrSeen[value] = who
            incrCompleted += 1
            maxIncr = max(maxIncr, value)
            if value <= bound {
                sim.fail("counter-linearizable", "INCR by \(who) returned \(value), but \(bound) had been observed before it was sent")
                return
            }
        } else if value < bound {
            sim.fail("counter-linearizable", "GET by \(who) returned \(value), but \(bound) had been observed before it was sent")
            return
        }
        maxObserved = max(maxObserved, value)
    }

    func checkGapFree(_ sim: Simulation) {
        if maxIncr != UInt64(incrCompleted) {
            sim.fail("counter-gap-free", "\(incrCompleted) INCRs completed but the largest value returned is \(maxIncr)")
        }
    }
}
