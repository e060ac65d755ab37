import ArgumentParser
import FTPlatform
import FTReplication
import FTSim

/// `ftap sim`: the deterministic simulator (see ARCHITECTURE.md, "Simulation testing").
struct Sim: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the replicated pair, its network and clients in the deterministic simulator, with injected faults.",
        discussion: """
        Every run is a seed: the seed fixes the world (timing, clocks, latencies, clients), the faults \
        (crashes, pauses, partitions, latency spikes, channel resets, frame loss/duplication/reordering, \
        slow arbiter, restarts, switchovers) and every later choice, so a failing seed replays exactly. \
        Prints one line per failing seed and a summary; exits 1 if any seed failed.

        Reproduce a failure:   ftap sim --seed S --trace [--sabotage NAME]
        """)

    @Option(help: "Run this many seeds.")
    var seeds: Int = 100
    @Option(help: "First seed of --seeds.")
    var from: UInt64 = 1
    @Option(help: "Run only this seed (with --trace: print its event trace).")
    var seed: UInt64?
    @Flag(help: "Print the event trace of --seed, then its trace hash.")
    var trace = false
    @Option(help: "Break one rule on purpose (see --list-sabotage); the checkers must notice.")
    var sabotage: [String] = []
    @Flag(help: "Print the sabotage names, one per line.")
    var listSabotage = false
    @Flag(help: "Print each seed's outcome, not only failures.")
    var verbose = false

    func validate() throws {
        for s in sabotage where Sabotage(rawValue: s) == nil {
            throw ValidationError("unknown sabotage '\(s)'; known: \(Sabotage.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard seeds > 0 else { throw ValidationError("--seeds must be positive") }
        if trace && seed == nil { throw ValidationError("--trace needs --seed S") }
    }

    func run() throws {
        if listSabotage {
            for s in Sabotage.allCases { print(s.rawValue) }
            return
        }
        let sab = Set(sabotage.compactMap(Sabotage.init(rawValue:)))
        let sabText = sab.isEmpty ? "" : " --sabotage " + sab.map(\.rawValue).sorted().joined(separator: " --sabotage ")
        if let s = seed {
            let r = Simulation.run(seed: s, sabotage: sab, trace: trace)
            if trace {
                for line in r.trace { print(line) }
            }
            print(describe(r, sabText: sabText))
            print("trace hash \(hex(r.traceHash))")
            if !r.passed { throw ExitCode(1) }
            return
        }
        let start = monotonicNanos()
        var summary = SimSummary()
        for s in from..<(from + UInt64(seeds)) {
            let r = Simulation.run(seed: s, sabotage: sab)
            summary.add(r)
            if !r.passed || verbose { print(describe(r, sabText: sabText)) }
        }
        let wall = Double(monotonicNanos() - start) / 1e9
        let hours = (summary.simulatedHours * 1000).rounded() / 1000
        print("\(summary.seeds) seeds (\(from)...\(from + UInt64(seeds) - 1))\(sab.isEmpty ? "" : ", sabotage \(sab.map(\.rawValue).sorted().joined(separator: ","))"): "
              + "\(summary.seeds - summary.failed.count) passed, \(summary.failed.count) failed; "
              + "\(hours) simulated hours, \(summary.failovers) failovers, \(summary.switchovers) switchovers")
        print("faults injected: \(summary.faultText)")
        print("standby buffer: \(summary.stats["standby-applied", default: 0]) frames applied at go-live, "
              + "\(summary.stats["standby-skipped-old", default: 0]) skipped as data already received")
        print("segmentation offload: \(summary.stats["super-segments-emitted", default: 0]) TCP super-segments emitted and cut into segments")
        print("wall time \(fmt(wall)) s (\(fmt(Double(summary.seeds) / max(wall, 1e-9))) seeds/s, \(fmt(summary.simulatedHours * 3600 / max(wall, 1e-9)))x real time)")
        if !summary.failed.isEmpty { throw ExitCode(1) }
    }

    func describe(_ r: SimResult, sabText: String) -> String {
        if let v = r.violation {
            return "seed \(r.seed): FAIL \(v.invariant) at t=\(secs(v.time))s: \(v.message)  [reproduce: ftap sim --seed \(r.seed) --trace\(sabText)]"
        }
        return "seed \(r.seed): ok (\(secs(r.simulatedTime))s simulated, \(r.failovers) failovers, \(r.switchovers) switchovers)"
    }

    func secs(_ t: UInt64) -> String {
        let ms = t / 1_000_000
        let f = String(ms % 1000)
        return "\(ms / 1000).\(String(repeating: "0", count: 3 - f.count))\(f)"
    }

    func fmt(_ x: Double) -> String { String((x * 10).rounded() / 10) }

    func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
