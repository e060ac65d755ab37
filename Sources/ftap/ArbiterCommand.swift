#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import FTPlatform
import FTReplication

/// `ftap arbiter`: look at and prepare an arbiter store.
struct ArbiterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "arbiter",
        abstract: "Inspect or initialise an epoch arbiter store.",
        subcommands: [Init.self, Show.self, Bench.self, Claim.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the store and its identity (both nodes must use the same store; `ftap run` compares identities).",
            discussion: "file:DIR creates DIR and its identity file. etcd://… needs no preparation: it checks that an endpoint answers and prints the identity (cluster id and prefix).")
        @Option(help: "The arbiter, e.g. file:/run/ftap/arb or etcd://10.0.0.5:2379,10.0.0.6:2379/ftap/pair1.")
        var arbiter: String
        func run() throws {
            let a: Arbiter
            do { a = try makeArbiter(arbiter) } catch { throw ValidationError("\(error)") }
            print("\(a.description): identity \(a.identity)")
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status", abstract: "Print the store's identity and every claimed epoch with its owner.")
        @Option(help: "The arbiter, e.g. file:/run/ftap/arb or etcd://10.0.0.5:2379/ftap/pair1.")
        var arbiter: String
        func run() throws {
            do {
                if arbiter.hasPrefix("file:") {
                    let dir = String(arbiter.dropFirst(5))
                    let id = try FileArbiter.identity(of: dir, create: false)
                    print("arbiter \(arbiter): identity \(id)")
                    let a = try fileArbiter(arbiter)
                    printEpochs(try a.epochs())
                } else if arbiter.hasPrefix("etcd://") {
                    let a = try EtcdArbiter(url: arbiter)
                    print("arbiter \(a.description): identity \(a.identity)")
                    printEpochs(try a.epochs())
                    print("serving alone under a lease: \(try a.aloneHolder() ?? "nobody")")
                } else {
                    throw ValidationError("--arbiter: want file:DIR or etcd://HOST:PORT[,HOST:PORT...]/PREFIX")
                }
            } catch let e as ValidationError {
                throw e
            } catch {
                throw ValidationError("\(error)")
            }
        }

        func printEpochs(_ es: [(epoch: UInt64, owner: String)]) {
            if es.isEmpty { print("no epoch claimed yet") }
            for e in es { print("epoch \(e.epoch): \(e.owner)") }
        }
    }

    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench",
            abstract: "Measure claim latency (scripts/bench): claims COUNT fresh epochs in a scratch store.",
            discussion: "Use a store no pair uses: it claims epochs 1...COUNT (file:) or under PREFIX/bench-<pid> (etcd).")
        @Option(help: "The arbiter (a scratch store).")
        var arbiter: String
        @Option(help: "Claims to make.")
        var count: Int = 50
        func run() throws {
            guard count > 0 else { throw ValidationError("--count must be positive") }
            var ms: [Double] = []
            do {
                if arbiter.hasPrefix("etcd://") {
                    let url = arbiter.replacingFirstPath(suffix: "/bench-\(getpid())")
                    let a = try EtcdArbiter(url: url)
                    ms = a.benchmarkClaims(first: 1, count: count, node: "bench")
                } else {
                    let a = try makeArbiter(arbiter)
                    for i in 0..<count {
                        let t = monotonicNanos()
                        _ = a.claim(epoch: UInt64(i + 1), node: "bench")
                        ms.append(Double(monotonicNanos() - t) / 1e6)
                    }
                }
            } catch { throw ValidationError("\(error)") }
            let s = ms.sorted()
            func pct(_ p: Double) -> Double { s[min(s.count - 1, Int(Double(s.count - 1) * p + 0.5))] }
            print("claims \(count) median_ms \(fmt(pct(0.5))) p90_ms \(fmt(pct(0.9))) max_ms \(fmt(s.last!))")
        }
        func fmt(_ x: Double) -> String { String(Double(Int(x * 1000)) / 1000) }
    }
}

extension ArbiterCommand {
    /// For tests and fire drills: one claim, as a node would make it. Exit 0
    /// won, 2 lost, 75 unavailable. Claiming an epoch a pair needs stops that pair.
    struct Claim: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Claim one epoch as NODE and print the answer (tests; never on a live pair's store).",
            shouldDisplay: false)
        @Option(help: "The arbiter.")
        var arbiter: String
        @Option(help: "The epoch to claim.")
        var epoch: UInt64
        @Option(help: "The claiming node's name.")
        var node: String = "ftap-arbiter-claim"
        func run() throws {
            let a: Arbiter
            do { a = try makeArbiter(arbiter) } catch { throw ValidationError("\(error)") }
            switch a.claim(epoch: epoch, node: node) {
            case .won(let d): print("won: \(d)")
            case .lost(let d): print("lost: \(d)"); throw ExitCode(2)
            case .unavailable(let d): print("unavailable: \(d)"); throw ExitCode(75)
            }
        }
    }
}

func fileArbiter(_ spec: String) throws -> FileArbiter {
    guard let a = try makeArbiter(spec) as? FileArbiter else { throw ValidationError("--arbiter: only file:DIR is supported") }
    return a
}

extension String {
    /// `etcd://E/PREFIX?Q` → `etcd://E/PREFIX<suffix>?Q`.
    func replacingFirstPath(suffix: String) -> String {
        if let q = firstIndex(of: "?") { return String(self[..<q]) + suffix + String(self[q...]) }
        return self + suffix
    }
}
