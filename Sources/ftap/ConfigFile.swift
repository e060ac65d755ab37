import FTPlatform
import TOMLKit

/// `--config FILE`: the flags of `ftap run` as a TOML file, one key per long
/// flag name (`failover-timeout-ms = 500`, `start-alone = true`,
/// `service = ["counter:7000", "echo:7"]`). The file is turned into flags
/// placed before the command line's; a flag given on the command line
/// replaces the file's value (for a repeatable flag, all of the file's values).
/// Every problem is collected with its file:line, so one run names them all.
enum ConfigFile {
    /// How a key's value becomes flags.
    enum Kind { case string, int, flag, repeatable }

    /// Every option of `ftap run` (without `--config` itself, and without
    /// `--new-pair`, which must never be repeated by a restart). A test compares
    /// this table with the options ArgumentParser knows (`--experimental-dump-help`).
    static let keys: [String: Kind] = [
        "role": .string, "tap": .string, "bridge": .string, "mac": .string, "ip": .string,
        "service": .repeatable, "mtu": .int, "no-offload": .flag, "listen": .string, "peer": .string, "arbiter": .string,
        "node-name": .string, "start-alone": .flag, "heartbeat-ms": .int,
        "failover-timeout-ms": .int, "garp-count": .int, "garp-interval-ms": .int,
        "track-interface": .repeatable, "no-track-bridge": .flag, "track-script": .string,
        "track-interval-ms": .int, "track-fall": .int, "track-rise": .int,
        "secret-file": .string, "secret": .string, "isn-key": .string, "isn-key-file": .string,
        "max-connections": .int, "syn-backlog": .int, "send-buffer-kb": .int, "recv-buffer-kb": .int,
        "pcap-dir": .string, "pcap-max-mb": .int, "record": .string,
        "admin": .string, "admin-token-file": .string, "log-level": .string,
        "notify-script": .string, "notify-timeout-ms": .int,
        "standby-buffer-ms": .int, "standby-buffer-kb": .int,
        "kv-max-memory-mb": .int, "kv-max-bulk-kb": .int, "kv-max-pipeline-kb": .int,
        "tcp-idle-timeout-s": .int, "tcp-keepalive-s": .int, "tcp-keepalive-interval-s": .int,
        "tcp-keepalive-probes": .int, "tcp-zero-window-timeout-s": .int, "tcp-max-per-source": .int,
        "tcp-syn-rate": .int,
    ]

    struct Problems: Error, CustomStringConvertible {
        var list: [String]
        var description: String { list.joined(separator: "\n") }
    }

    /// Finds `--config FILE` or `--config=FILE` in `args` and replaces it with
    /// the file's flags (before the other flags, after the subcommand names).
    /// Throws `Problems` listing everything wrong with the file.
    static func expand(_ args: [String]) throws -> [String] {
        guard let i = args.firstIndex(where: { $0 == "--config" || $0.hasPrefix("--config=") }) else { return args }
        var rest = args
        let path: String
        if args[i] == "--config" {
            guard i + 1 < args.count else { throw Problems(list: ["--config needs a file name"]) }
            path = args[i + 1]
            rest.removeSubrange(i...(i + 1))
        } else {
            path = String(args[i].dropFirst("--config=".count))
            rest.remove(at: i)
        }
        guard !path.isEmpty else { throw Problems(list: ["--config needs a file name"]) }
        let onCommandLine = Set(rest.compactMap(optionName))
        let (flags, problems) = load(path, skipping: onCommandLine)
        if !problems.isEmpty { throw Problems(list: problems) }
        let head = rest.prefix { !$0.hasPrefix("-") }
        return Array(head) + flags + Array(rest.dropFirst(head.count))
    }

    /// The long option name of a command-line word (`--peer`, `--peer=X`), if it is one.
    static func optionName(_ word: String) -> String? {
        guard word.hasPrefix("--"), word.count > 2 else { return nil }
        let body = word.dropFirst(2)
        return String(body.prefix { $0 != "=" })
    }

    /// Reads and checks the file: the flags it stands for, and every problem.
    static func load(_ path: String, skipping: Set<String> = []) -> (flags: [String], problems: [String]) {
        let data: [UInt8]
        do { data = try Files.readAll(path) } catch { return ([], ["--config \(path): \(error)"]) }
        guard let text = String(validatingUTF8: data.map { CChar(bitPattern: $0) } + [0]) else {
            return ([], ["\(path): not UTF-8 text"])
        }
        return parse(text, path: path, skipping: skipping)
    }

    static func parse(_ text: String, path: String, skipping: Set<String> = []) -> (flags: [String], problems: [String]) {
        let table: TOMLTable
        do { table = try TOMLTable(string: text) } catch let e as TOMLParseError {
            return ([], ["\(path):\(e.source.begin.line):\(e.source.begin.column): \(e.description)"])
        } catch {
            return ([], ["\(path): \(error)"])
        }
        let lines = keyLines(text)
        // TOMLTable's order is its own: report and expand in file order.
        var entries: [(line: Int, key: String, value: TOMLValueConvertible)] = []
        var it = table.makeIterator()
        while let (k, v) = it.next() { entries.append((lines[k] ?? 0, k, v)) }
        entries.sort { ($0.line, $0.key) < ($1.line, $1.key) }
        var flags: [String] = []
        var problems: [String] = []
        for (line, key, value) in entries {
            let at = "\(path):\(line)"
            guard let kind = keys[key] else {
                let hint = key == "config" ? " (a configuration file cannot include another)"
                    : key == "new-pair" ? " (--new-pair is a one-time operator action for a cold start: give it on the command line, never in the file that every restart reads)"
                    : value.type == .table ? " (tables are not used: every key is a flag of `ftap run` at the top level)"
                    : keys[key.replacingUnderscores] != nil ? " (did you mean \(key.replacingUnderscores)?)" : ""
                problems.append("\(at): unknown key '\(key)'\(hint)")
                continue
            }
            var words: [String] = []
            switch kind {
            case .string:
                guard let s = value.string else { problems.append("\(at): \(key) must be a string (in quotes), not \(value.type)"); continue }
                words = ["--\(key)", s]
            case .int:
                guard let n = value.int else { problems.append("\(at): \(key) must be an integer, not \(value.type)"); continue }
                words = ["--\(key)", "\(n)"]
            case .flag:
                guard let b = value.bool else { problems.append("\(at): \(key) must be true or false, not \(value.type)"); continue }
                if b { words = ["--\(key)"] }
            case .repeatable:
                if let s = value.string { words = ["--\(key)", s]; break }
                guard let a = value.array else {
                    problems.append("\(at): \(key) must be a string or an array of strings, not \(value.type)"); continue
                }
                for el in a {
                    guard let s = el.string else { problems.append("\(at): every \(key) must be a string, not \(el.type)"); words = []; break }
                    words += ["--\(key)", s]
                }
            }
            if !skipping.contains(key) { flags += words }
        }
        return (flags, problems)
    }

    /// The line of each top-level `key =` (TOMLKit does not report positions
    /// of keys, only of syntax errors; every valid key of ours is a bare or
    /// quoted top-level key on its own line).
    static func keyLines(_ text: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for (no, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters
            if line.hasPrefix("["), let close = line.firstIndex(of: "]") {
                let name = line[line.index(after: line.startIndex)..<close].trimmingCharacters
                let k = String(name.drop { $0 == "[" }.prefix { $0 != "." })
                if out[k] == nil { out[k] = no + 1 }
                continue
            }
            guard let eq = line.firstIndex(of: "="), !line.hasPrefix("#") else { continue }
            var k = String(line[..<eq]).trimmingCharacters
            if k.count >= 2, let f = k.first, (f == "\"" || f == "'"), k.last == f { k = String(k.dropFirst().dropLast()) }
            if out[k] == nil { out[k] = no + 1 }
            // A dotted key (`a.b = 1`) makes a table named by its first part.
            let first = String(k.prefix { $0 != "." }).trimmingCharacters
            if out[first] == nil { out[first] = no + 1 }
        }
        return out
    }
}

extension String {
    var replacingUnderscores: String { String(map { $0 == "_" ? "-" : $0 }) }
}

extension StringProtocol {
    var trimmingCharacters: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s.removeLast() }
        return String(s)
    }
}
