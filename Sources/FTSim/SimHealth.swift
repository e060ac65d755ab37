import FTReplication
import FTStack
import FTWire

// Health and arbiter faults in the simulated world.
//
// A health fault takes a node's switch port down (its uplink: clients cannot
// reach it, the switch forgets what it learned there), and the node's own
// health tracking reports it unhealthy, as the daemon's link tracking would.
// A cable pull also cuts the log channel both ways for the same time. An
// arbiter outage answers every claim and epoch check with `unavailable`.
//
// Invariant: a node never claims an epoch while unhealthy (checked at the
// claim: `claim-while-unhealthy`). A grant that reaches a node whose link went
// down after its claim left is not a broken rule; it is counted
// (`grant-after-link-loss`), not failed. Service with one healthy node is
// checked by the liveness phase.

extension ArbiterAnswer {
    var hashTag: UInt64 {
        switch self { case .won: return 1; case .lost: return 0; case .unavailable: return 2 }
    }
}

extension Simulation {
    func arbiterDown(_ t: Nanos) -> Bool {
        params.arbiterOutages.contains { $0.at <= t && t < $0.at + $0.duration }
    }

    func continueCheck(_ n: SimNode, _ answer: EpochCheck) {
        trace(n.name, "epoch check: \(answer)")
        progressed(n, n.driver.epochChecked(answer, now: local(n, now), n.io))
    }

    /// Tells the node's process its health changed (as link tracking would).
    func setHealth(_ n: SimNode, _ h: (healthy: Bool, reason: String)) {
        guard n.alive else { return }
        if n.paused { n.healthPending = h; return }
        trace(n.name, "health: \(h.healthy ? "healthy" : "UNHEALTHY") (\(h.reason))")
        progressed(n, n.driver.healthChanged(h.healthy, reason: h.reason, now: local(n, now), n.io))
    }

    /// The world side of a health fault starting or ending.
    func healthFault(_ i: Int, healthy: Bool, cable: Bool) {
        portDown[i] = !healthy
        let n = nodes[i]
        if !healthy {
            count(cable ? "cable-pull" : "uplink-down")
            trace("fault", "\(n.name): \(cable ? "cable pulled (uplink and log link down)" : "uplink down")")
            for k in macTable.keys.sorted() where macTable[k] == i { macTable[k] = nil }
        } else {
            trace("fault", "\(n.name): links up again")
        }
        setHealth(n, (healthy, healthy ? "uplink up" : "uplink down"))
    }

    /// A freshly started process learns its links' state at once.
    func initialHealth(_ n: SimNode) {
        if portDown[n.id] { setHealth(n, (false, "uplink down")) }
    }
}

extension Checker {
    /// The arbiter granted `epoch` to `node`.
    func claimGranted(_ sim: Simulation, node n: SimNode, epoch e: UInt64) {
        let other = sim.nodes[1 - n.id]
        if sim.portDown[n.id] && other.alive && !sim.portDown[other.id] && other.core.healthy {
            // The claim left while the node was healthy and arrived after its
            // link went down: not a rule broken by the node, but count it.
            sim.stat("grant-after-link-loss")
        }
    }
}
