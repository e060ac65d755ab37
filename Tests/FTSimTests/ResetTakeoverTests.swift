import XCTest
@testable import FTSim
import FTReplication
import FTStack

/// The log channel ends in a reset: the simulator runs the daemon's own loop
/// (`NodeDriver`) through both outcomes of the decision in PeerProbe.swift.
final class ResetTakeoverTests: XCTestCase {

    /// A quiet world: no random faults, clients working, only the scenario's events.
    func scenario() -> SimParameters {
        var p = SimParameters()
        p.safetyEnd = 3_000 * nsPerMs
        p.livenessBound = 60_000 * nsPerMs
        p.thinkMin = 1 * nsPerMs
        p.thinkMax = 20 * nsPerMs
        p.counterMaxRequests = 50
        return p
    }

    /// Simulated times (s) of trace lines containing `text`.
    func times(_ r: SimResult, _ text: String) -> [Double] {
        r.trace.filter { $0.contains(text) }.compactMap { Double($0.split(separator: " ")[0]) }
    }

    /// The primary process dies while stopped: heartbeats from the backup wait
    /// unread in its socket, so its kernel answers RST, not FIN. The backup's
    /// probe of the primary's port is refused: it takes over at once instead
    /// of waiting out the primary's lease.
    func testResetFromDeadPrimaryTakesOverAtOnce() {
        var p = scenario()
        p.pauses = [(node: 0, at: 1_000 * nsPerMs, duration: 1_000 * nsPerMs)]
        p.crashes = [.init(node: 0, at: 1_200 * nsPerMs, when: .randomTime, machine: false)]
        let r = Simulation(options: SimOptions(seed: 11, trace: true), params: p).run()
        XCTAssertNil(r.violation, "\(r.violation!)")
        XCTAssertGreaterThan(r.stats["reset-on-exit"] ?? 0, 0, "the dead primary's kernel sent no RST")
        XCTAssertFalse(times(r, "n1 info: log channel: Connection reset by peer").isEmpty)
        XCTAssertFalse(times(r, "its process is gone").isEmpty, "the backup did not take the reset path")
        let takeover = times(r, "n1 TAKEOVER")
        XCTAssertEqual(takeover.count, 1)
        // Lease path: the backup last heard from the primary at ~1.0 s and
        // would take over at ~1.5 s; the probe lets it go at ~1.2 s.
        XCTAssertLessThan(takeover.first ?? 9, 1.25, "took over at \(takeover), not at once")
        XCTAssertEqual(r.failovers, 1)
    }

    /// The network resets the channel of a live (stopped) primary, which
    /// still holds acknowledgements it may release when it resumes. The
    /// probe connects: the backup waits out the lease. Taking the reset as
    /// proof of death here was a split brain (two emitters; seed 193 of
    /// `ftap sim` before the probe).
    func testResetOfLivePrimaryWaitsOutTheLease() {
        var p = scenario()
        p.pauses = [(node: 0, at: 1_000 * nsPerMs, duration: 300 * nsPerMs)]
        p.channelBreak = 1_100 * nsPerMs
        let r = Simulation(options: SimOptions(seed: 12, trace: true), params: p).run()
        XCTAssertNil(r.violation, "\(r.violation!)")
        XCTAssertFalse(times(r, "info: log channel: Connection reset by peer").isEmpty, "no reset seen")
        XCTAssertFalse(times(r, "it answered on its port").isEmpty, "the backup did not probe the live primary")
        for t in times(r, "n1 TAKEOVER") { XCTAssertGreaterThanOrEqual(t, 1.45, "took over inside the primary's lease") }
    }
}
