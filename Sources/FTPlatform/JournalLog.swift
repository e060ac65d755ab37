#if canImport(Glibc)
import Glibc
#endif
import Logging

/// Log lines for journald: when systemd connects stderr to the journal it
/// sets $JOURNAL_STREAM, and a line starting with `<N>` gets priority N
/// (sd-daemon(3)). No timestamp (the journal keeps its own); metadata as
/// sorted `key=value` fields after the message.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    let label: String

    public init(label: String) { self.label = label }

    /// True when stderr is the journal (the device and inode in $JOURNAL_STREAM match fd 2).
    public static var stderrIsJournal: Bool {
        guard let v = getenv("JOURNAL_STREAM").map({ String(cString: $0) }) else { return false }
        let parts = v.split(separator: ":")
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(2, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }

    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let fields = all.keys.sorted().map { "\($0)=\(all[$0]!)" }.joined(separator: " ")
        // One journal record per line: keep a multi-line message on one.
        let msg = "\(event.message)".split(separator: "\n", omittingEmptySubsequences: false).joined(separator: " | ")
        let text = "<\(Self.priority(event.level))>\(event.level) \(label): \(msg)\(fields.isEmpty ? "" : " " + fields)\n"
        _ = text.withCString { fputs($0, stderr) }
    }
}
