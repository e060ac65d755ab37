import XCTest
@testable import FTSim
import FTReplication
import FTStack

/// The deterministic simulator: seeds pass, runs replay exactly, and every
/// sabotage is caught (a simulator that never fails proves nothing).
final class SimulatorTests: XCTestCase {

    /// A fixed set of seeds, no sabotage: every invariant holds.
    func testFixedSeedsPass() {
        var summary = SimSummary()
        for seed in UInt64(1)...60 {
            let r = Simulation.run(seed: seed)
            summary.add(r)
            XCTAssertNil(r.violation, "seed \(seed): \(r.violation.map { "\($0)" } ?? "") — reproduce: ftap sim --seed \(seed) --trace")
        }
        // The seeds really exercise failures (swarm testing draws them per seed).
        XCTAssertGreaterThan(summary.failovers, 10)
        for kind in ["crash-primary", "crash-backup", "restart", "pause", "partition", "latency-spike", "frame-loss", "frame-dup", "frame-reorder"] {
            XCTAssertGreaterThan(summary.faults[kind] ?? 0, 0, "no \(kind) injected in 60 seeds")
        }
        XCTAssertGreaterThan(summary.stats["entries-compared"] ?? 0, 1000)
        XCTAssertGreaterThan(summary.stats["digests-compared"] ?? 0, 50)
        XCTAssertGreaterThan(summary.stats["incr-completed"] ?? 0, 500)
        // Clients negotiate SACK and timestamps (issue 13): lost and reordered
        // frames make them send SACK blocks, which drive the appliance's recovery.
        XCTAssertGreaterThan(summary.stats["client-sack-acks"] ?? 0, 20)
        XCTAssertGreaterThan(summary.stats["client-timestamp-connections"] ?? 0, 10)
    }

    /// The same seed yields the same trace and hash; another seed differs.
    func testTraceIsReproducible() {
        let a = Simulation.run(seed: 7, trace: true)
        let b = Simulation.run(seed: 7, trace: true)
        XCTAssertEqual(a.traceHash, b.traceHash)
        XCTAssertEqual(a.trace, b.trace)
        XCTAssertGreaterThan(a.trace.count, 100)
        // Tracing does not change the run.
        XCTAssertEqual(Simulation.run(seed: 7).traceHash, a.traceHash)
        let hashes = Set((UInt64(1)...8).map { Simulation.run(seed: $0).traceHash })
        XCTAssertEqual(hashes.count, 8)
    }

    /// Runs seeds until one fails; returns the violation.
    func firstViolation(_ sabotage: Sabotage, within n: UInt64) -> (seed: UInt64, violation: Violation)? {
        for seed in UInt64(1)...n {
            if let v = Simulation.run(seed: seed, sabotage: [sabotage]).violation { return (seed, v) }
        }
        return nil
    }

    func testReleaseWithoutAckIsCaught() {
        guard let f = firstViolation(.releaseWithoutAck, within: 50) else { return XCTFail("release-without-ack not detected in 50 seeds") }
        XCTAssertEqual(f.violation.invariant, "output-rule", "\(f)")
    }

    func testSkipArbiterIsCaught() {
        guard let f = firstViolation(.skipArbiter, within: 50) else { return XCTFail("skip-arbiter not detected in 50 seeds") }
        XCTAssertEqual(f.violation.invariant, "emission-exclusive", "\(f)")
    }

    func testISNOutsideLogIsCaught() {
        guard let f = firstViolation(.isnOutsideLog, within: 50) else { return XCTFail("isn-outside-log not detected in 50 seeds") }
        XCTAssertTrue(["replica-outputs", "replica-digest", "core-divergence", "tcp-protocol", "stream-integrity"].contains(f.violation.invariant), "\(f)")
    }

    func testSkipGARPIsCaught() {
        guard let f = firstViolation(.skipGARP, within: 50) else { return XCTFail("skip-garp not detected in 50 seeds") }
        XCTAssertEqual(f.violation.invariant, "liveness", "\(f)")
    }

    func testSabotageNames() {
        XCTAssertEqual(Sabotage.allCases.map(\.rawValue).sorted(),
                       ["isn-outside-log", "release-without-ack", "skip-arbiter", "skip-garp"])
    }
}

/// The simulator's building blocks.
final class SimPartsTests: XCTestCase {
    func testRandomIsDeterministicAndUniformEnough() {
        var a = SimRandom(seed: 42), b = SimRandom(seed: 42), c = SimRandom(seed: 43)
        let xa = (0..<100).map { _ in a.next() }
        XCTAssertEqual(xa, (0..<100).map { _ in b.next() })
        XCTAssertNotEqual(xa, (0..<100).map { _ in c.next() })
        var r = SimRandom(seed: 1)
        var buckets = [Int](repeating: 0, count: 10)
        for _ in 0..<10_000 { buckets[Int(r.below(10))] += 1 }
        for n in buckets { XCTAssertTrue((850...1150).contains(n), "\(buckets)") }
        for _ in 0..<1000 {
            let v = r.logNanos(1_000, 1_000_000)
            XCTAssertTrue((1_000...1_000_000).contains(v))
            XCTAssertTrue((3...9).contains(r.int(3...9)))
        }
    }

    func testEventQueueOrdersByTimeThenInsertion() {
        var q = EventQueue<Int>()
        q.push(5, 1); q.push(3, 2); q.push(5, 3); q.push(1, 4); q.push(3, 5)
        var out: [Int] = []
        while let (_, e) = q.pop() { out.append(e) }
        XCTAssertEqual(out, [4, 2, 5, 1, 3])
    }
}
