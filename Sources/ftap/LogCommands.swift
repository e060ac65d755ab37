import ArgumentParser
import CPcap
import FTPlatform
import FTReplication
import FTWire
#if canImport(Glibc)
import Glibc
#endif

func readWholeFile(_ path: String) throws -> [UInt8] {
    do { return try Files.readAll(path) } catch { throw CLIError("\(error)") }
}

func loadRecording(_ path: String) throws -> RecordFormat.Recording {
    let bytes = try readWholeFile(path)
    do { return try RecordFormat.read(bytes) } catch {
        throw CLIError("\(path): \(error)")
    }
}

func formatTime(_ ns: UInt64) -> String {
    let s = ns / 1_000_000_000, us = (ns % 1_000_000_000) / 1000
    let u = String(us)
    return "\(s).\(String(repeating: "0", count: 6 - u.count))\(u)"
}

struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log", abstract: "Inspect a replication log recorded with `ftap run --record FILE`.",
        subcommands: [Show.self, Export.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print entries one per line: index, epoch, log time, kind, frame summary.",
            discussion: "Outputs appear indented under the entry that produced them (with --outputs).")
        @Argument(help: "The recording (pcapng).") var file: String
        @Option(help: "First log index to show.") var from: UInt64?
        @Option(help: "Last log index to show.") var to: UInt64?
        @Option(help: "Only entries of this kind: frame (inbound frames, read with or without TAP offloads), offload-frame (only those read with offloads), tick, go-live, handover, digest.") var kind: String?
        @Flag(help: "Also print the frames each entry produced.") var outputs = false

        func validate() throws {
            if let k = kind, !["frame", "offload-frame", "tick", "go-live", "handover", "digest"].contains(k) {
                throw ValidationError("--kind must be frame, offload-frame, tick, go-live, handover or digest")
            }
        }

        func run() throws {
            let rec = try loadRecording(file)
            print("# \(redactedConfig(rec.configText))")
            var shownIndex: UInt64? = nil
            for item in rec.items {
                switch item {
                case .entry(let e):
                    let inRange = (from.map { e.index >= $0 } ?? true) && (to.map { e.index <= $0 } ?? true)
                    guard inRange, kind == nil || kind == e.kind.description || (kind == "frame" && e.kind.isFrame) else { shownIndex = nil; continue }
                    shownIndex = e.index
                    let summary = e.kind.isFrame ? frameSummary(e.payload) : ""
                    print("\(e.index) e\(e.epoch) \(formatTime(e.time)) \(e.kind) \(summary)")
                case .output(let index, _, let frame):
                    if outputs && shownIndex == index { print("    > \(frameSummary(frame))") }
                case .checkpoint(let index, let digest):
                    let inRange = (from.map { index >= $0 } ?? true) && (to.map { index <= $0 } ?? true)
                    if inRange && (kind == nil || kind == "digest") {
                        print("\(index) digest \(String(digest, radix: 16))")
                    }
                }
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Export inbound and outbound frames of a recording to a pcap file (tcpdump, Wireshark).")
        @Argument(help: "The recording (pcapng).") var file: String
        @Option(name: .shortAndLong, help: "The pcap file to write.") var output: String
        @Option(help: "Which frames: in, out or both.") var direction: String = "both"

        func validate() throws {
            guard ["in", "out", "both"].contains(direction) else { throw ValidationError("--direction must be in, out or both") }
        }

        func run() throws {
            let rec = try loadRecording(file)
            guard let dead = pcap_open_dead(DLT_EN10MB, 65535) else { throw ValidationError("pcap_open_dead failed") }
            defer { pcap_close(dead) }
            guard let d = pcap_dump_open(dead, output) else {
                throw CLIError("\(output): \(String(cString: pcap_geterr(dead)))")
            }
            var n = 0
            func dump(_ time: UInt64, _ frame: [UInt8]) {
                var h = pcap_pkthdr()
                h.ts.tv_sec = Int(time / 1_000_000_000)
                h.ts.tv_usec = Int((time % 1_000_000_000) / 1000)
                h.caplen = UInt32(frame.count); h.len = UInt32(frame.count)
                frame.withUnsafeBufferPointer { pcap_dump(UnsafeMutableRawPointer(d).assumingMemoryBound(to: UInt8.self), &h, $0.baseAddress) }
                n += 1
            }
            for item in rec.items {
                switch item {
                case .entry(let e) where e.kind.isFrame && direction != "out": dump(e.time, e.payload)
                case .output(_, let t, let f) where direction != "in": dump(t, f)
                default: break
                }
            }
            pcap_dump_close(d)
            print("wrote \(n) frames to \(output)")
        }
    }
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay a recording on a fresh appliance and check every output frame and state digest.",
        discussion: "Exit 0 when the replay is identical; 1 on the first mismatch, with the entry index and both frames decoded.")
    @Argument(help: "The recording (pcapng) written by `ftap run --record`.") var file: String

    func run() throws {
        let rec = try loadRecording(file)
        let s: Replayer.Summary
        do { s = try Replayer.replay(rec) } catch { throw CLIError("\(file): \(error)") }
        if let m = s.mismatch {
            print("MISMATCH at log index \(m.index): \(m.what)")
            if let e = m.expected { print("  recorded: \(frameSummary(e))\n            \(hexdump(e))") }
            if let a = m.actual { print("  replayed: \(frameSummary(a))\n            \(hexdump(a))") }
            print("replayed \(s.entries) entries and \(s.outputs) outputs identically before the mismatch")
            throw ExitCode(1)
        }
        print("identical: \(s.entries) entries (last index \(s.lastIndex), epochs \(s.epochs.map(String.init).joined(separator: ","))), \(s.outputs) outputs, \(s.checkpoints) digest checkpoints, final digest \(String(s.digest, radix: 16))")
    }
}

func hexdump(_ b: [UInt8], limit: Int = 64) -> String {
    let shown = b.prefix(limit).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: " ")
    return b.count > limit ? shown + " ... (\(b.count) bytes)" : shown
}

/// A recording's configuration line without its keys: the ISN key (derived
/// from the pair's secret; whoever holds it can predict the appliance's
/// TCP sequence numbers) and the encoded stack configuration that carries it.
func redactedConfig(_ text: String) -> String {
    text.split(separator: " ", omittingEmptySubsequences: false).map { field -> String in
        if field.hasPrefix("isn-key=") { return "isn-key=<not shown>" }
        if field.hasPrefix("stack=") { return "stack=<encoded configuration, with the ISN key: not shown>" }
        return String(field)
    }.joined(separator: " ")
}
