import FTPlatform

/// Expands `--config FILE` into flags placed before the command-line flags,
/// so the command line wins for single-valued options.
enum ConfigFile {
    struct Failure: Error, CustomStringConvertible { var description: String }

    static func expand(_ args: [String]) throws -> [String] {
        guard let i = args.firstIndex(of: "--config") else { return args }
        guard i + 1 < args.count else { throw Failure(description: "--config needs a file name") }
        let path = args[i + 1]
        let data: [UInt8]
        do { data = try Files.readAll(path) } catch { throw Failure(description: "--config \(error)") }
        var fromFile: [String] = []
        for (no, raw) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(raw)
            if let h = line.firstIndex(of: "#") { line = line[..<h] }
            let trimmed = line.trimmingCharacters
            if trimmed.isEmpty { continue }
            guard let eq = trimmed.firstIndex(of: "=") else {
                throw Failure(description: "\(path):\(no + 1): expected `name = value`")
            }
            let key = String(trimmed[..<eq]).trimmingCharacters
            let value = String(trimmed[trimmed.index(after: eq)...]).trimmingCharacters
            guard !key.isEmpty, !key.hasPrefix("-"), key != "config" else {
                throw Failure(description: "\(path):\(no + 1): bad option name '\(key)'")
            }
            fromFile += ["--\(key)", value]
        }
        var rest = args
        rest.removeSubrange(i...(i + 1))
        // Subcommand name(s) stay first.
        let head = rest.prefix { !$0.hasPrefix("-") }
        return Array(head) + fromFile + Array(rest.dropFirst(head.count))
    }
}

extension StringProtocol {
    var trimmingCharacters: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s.removeLast() }
        return String(s)
    }
}
