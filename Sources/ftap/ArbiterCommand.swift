import ArgumentParser
import FTPlatform

/// `ftap arbiter`: look at and prepare an arbiter store.
struct ArbiterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "arbiter",
        abstract: "Inspect or initialise an epoch arbiter store.",
        subcommands: [Init.self, Show.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the store and its identity (both nodes must use the same store; `ftap run` compares identities).")
        @Option(help: "The arbiter, e.g. file:/run/ftap/arb.")
        var arbiter: String
        func run() throws {
            let a: FileArbiter
            do { a = try fileArbiter(arbiter) } catch { throw ValidationError("\(error)") }
            print("\(a.description): identity \(a.identity)")
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status", abstract: "Print the store's identity and every claimed epoch with its owner.")
        @Option(help: "The arbiter, e.g. file:/run/ftap/arb.")
        var arbiter: String
        func run() throws {
            guard arbiter.hasPrefix("file:") else { throw ValidationError("--arbiter: only file:DIR is supported") }
            let dir = String(arbiter.dropFirst(5))
            do {
                let id = try FileArbiter.identity(of: dir, create: false)
                print("arbiter \(arbiter): identity \(id)")
                let a = try fileArbiter(arbiter)
                let es = try a.epochs()
                if es.isEmpty { print("no epoch claimed yet") }
                for e in es { print("epoch \(e.epoch): \(e.owner)") }
            } catch {
                throw ValidationError("\(error)")
            }
        }
    }
}

func fileArbiter(_ spec: String) throws -> FileArbiter {
    guard let a = try makeArbiter(spec) as? FileArbiter else { throw ValidationError("--arbiter: only file:DIR is supported") }
    return a
}
