#if canImport(Glibc)
import Glibc
#endif
import FTReplication

/// `file:DIR`: epoch N is claimed by exclusively creating `DIR/epoch-N`
/// (O_CREAT|O_EXCL, atomic on a local file system and on NFSv3+).
/// The file holds the winner's node name. `DIR/arbiter-id` holds the
/// store's identity, created once (by `ftap arbiter init` or on first use).
public final class FileArbiter: Arbiter {
    public let directory: String
    public var description: String { "file:\(directory)" }
    public private(set) var identity = ""

    public init(directory: String) throws {
        self.directory = directory
        var prefix = directory.hasPrefix("/") ? "" : "."
        for component in directory.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw SystemError("arbiter: create directory \(prefix)", errno: errno)
            }
        }
        guard access(directory, W_OK) == 0 else { throw SystemError("arbiter: directory \(directory) is not writable", errno: errno) }
        identity = try Self.identity(of: directory, create: true)
    }

    /// Reads `DIR/arbiter-id`, creating it (O_EXCL, fsynced) with a random id when absent.
    public static func identity(of directory: String, create: Bool) throws -> String {
        let p = "\(directory)/arbiter-id"
        if let b = try? Files.readAll(p) {
            let id = String(decoding: b, as: UTF8.self).trimmingNewlines
            guard !id.isEmpty else { throw SystemError("arbiter: \(p)", detail: "empty identity file") }
            return id
        }
        guard create else { throw SystemError("arbiter: \(p)", detail: "no identity yet (run `ftap arbiter init --arbiter file:\(directory)`)") }
        var r = SystemRandomNumberGenerator()
        let id = "file-" + String(r.next(), radix: 16) + String(r.next(), radix: 16)
        let e = createDurably(p, in: directory, text: id)
        if e == EEXIST { return try identity(of: directory, create: false) }  // the other node made it meanwhile
        if e != 0 { throw SystemError("arbiter: create \(p)", errno: e) }
        return id
    }

    /// Creates `path` exclusively holding `text` and a newline, durably (file
    /// and directory entry fsynced), and atomically: a reader never sees it
    /// empty (measured: a node starting beside its peer on a fresh directory
    /// read the peer's `arbiter-id` between its O_EXCL create and its write,
    /// and exited). The text goes to a private temporary file first, which
    /// link(2) then publishes under `path` (EEXIST if it exists; atomic on
    /// local file systems and NFS alike). Returns 0 or an errno.
    static func createDurably(_ path: String, in directory: String, text: String) -> Int32 {
        let tmp = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o644)
        if fd < 0 { return errno }
        defer { unlink(tmp) }
        let bytes = Array("\(text)\n".utf8)
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n != bytes.count { let e = n < 0 ? errno : EIO; close(fd); return e }
        if fsync(fd) != 0 { let e = errno; close(fd); return e }
        close(fd)
        if link(tmp, path) != 0 { return errno }
        // The new directory entry must survive a crash of this host too.
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
        return 0
    }

    /// Claimed epochs and their owners, in order.
    public func epochs() throws -> [(epoch: UInt64, owner: String)] {
        try claimedEpochs().map { ($0, owner(of: path(for: $0))) }
    }

    /// The epoch numbers claimed in the directory, ascending.
    func claimedEpochs() throws -> [UInt64] {
        guard let dir = opendir(directory) else { throw SystemError("cannot read \(directory)", errno: errno) }
        defer { closedir(dir) }
        var out: [UInt64] = []
        while let ent = readdir(dir) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasPrefix("epoch-"), let n = UInt64(name.dropFirst(6)) { out.append(n) }
        }
        return out.sorted()
    }

    public func path(for epoch: UInt64) -> String { "\(directory)/epoch-\(epoch)" }

    public func claim(epoch: UInt64, node: String) -> ArbiterAnswer {
        let p = path(for: epoch)
        let e = Self.createDurably(p, in: directory, text: node)
        if e == EEXIST { return .lost("\(p) already claimed by \(owner(of: p))") }
        // EIO, EACCES, ENOSPC, ESTALE, ...: no answer about the owner.
        if e != 0 { return .unavailable("cannot create \(p): \(String(cString: strerror(e)))") }
        return .won("created \(p)")
    }

    public func check(above epoch: UInt64) -> EpochCheck {
        let all: [UInt64]
        do { all = try claimedEpochs() } catch { return .unavailable("\(error)") }
        guard let highest = all.last, highest > epoch else { return .current }
        return .superseded(epoch: highest, detail: "\(path(for: highest)) owned by \(owner(of: path(for: highest)))")
    }

    func owner(of p: String) -> String {
        let fd = open(p, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "unknown" }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 256)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return "unknown" }
        return String(decoding: buf[0..<n], as: UTF8.self).trimmingNewlines
    }
}

extension String {
    var trimmingNewlines: String {
        var s = self
        while s.last == "\n" || s.last == "\r" { s.removeLast() }
        return s
    }
}

/// Parses `--arbiter` values.
public func makeArbiter(_ spec: String) throws -> Arbiter {
    if spec.hasPrefix("file:") {
        let dir = String(spec.dropFirst(5))
        guard !dir.isEmpty else { throw SystemError("--arbiter \(spec)", detail: "file: needs a directory, e.g. file:/run/ftap/arb") }
        return try FileArbiter(directory: dir)
    }
    if spec.hasPrefix("etcd://") { return try EtcdArbiter(url: spec) }
    throw SystemError("--arbiter \(spec)", detail: "unknown arbiter backend; supported: file:DIR, etcd://HOST:PORT[,HOST:PORT...]/PREFIX")
}
