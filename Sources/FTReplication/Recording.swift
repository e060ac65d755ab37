import FTServices
import FTStack
import FTWire

/// The `--record` file: pcapng (little-endian) so Wireshark opens it and
/// shows every entry with its comment, plus enough structure to replay it.
///
/// Format "ftap-record 2":
/// - Section Header Block with `shb_userappl` "ftap" and two comments:
///   `ftap-record 2` and `config <key=value ...>` (see `RecordedConfig`: the
///   appliance configuration, including the ISN key: treat recordings as
///   secret).
/// - Interface 0 `log`: one Enhanced Packet Block per log entry, timestamp =
///   the entry's log time (ns resolution), `epb_packetid` = log index,
///   `epb_flags` inbound, comment `kind=<frame|tick|go-live|handover> epoch=<n>`;
///   packet data = the frame (empty for tick and handover; one byte for
///   go-live: 1 after a failure, 0 after a planned switchover). Checkpoints are
///   EPBs with empty data and comment `kind=digest epoch=<n> digest=<hex16>`:
///   the replica digest after applying entry `epb_packetid`.
/// - Interface 1 `out`: one EPB per frame the replica produced, after its
///   entry; `epb_packetid` = producing entry, `epb_flags` outbound.
public enum RecordFormat {
    /// 2: the configuration is the stack's own encoding (`stack=`), and
    /// digests are of FTSN 2 snapshots. Version 1 recordings are refused.
    /// 3: entries of kind `offload-frame` (frames read with TAP offloads,
    /// up to 64 KiB) and outputs up to 64 KiB (TSO super-segments).
    public static let version = 3
    static let shbType: UInt32 = 0x0A0D_0D0A
    static let idbType: UInt32 = 1
    static let epbType: UInt32 = 6
    static let byteOrderMagic: UInt32 = 0x1A2B_3C4D

    // MARK: Writing

    static func le16(_ b: inout [UInt8], _ v: UInt16) { b.append(UInt8(v & 0xFF)); b.append(UInt8(v >> 8)) }
    static func le32(_ b: inout [UInt8], _ v: UInt32) { for k in 0..<4 { b.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(k)))) } }
    static func pad(_ b: inout [UInt8]) { while b.count % 4 != 0 { b.append(0) } }

    static func option(_ b: inout [UInt8], _ code: UInt16, _ value: [UInt8]) {
        le16(&b, code); le16(&b, UInt16(value.count)); b.append(contentsOf: value); pad(&b)
    }

    static func block(_ type: UInt32, _ body: [UInt8]) -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(body.count + 12)
        let total = UInt32(body.count + 12)
        le32(&b, type); le32(&b, total); b.append(contentsOf: body); le32(&b, total)
        return b
    }

    /// The section header and the two interface descriptions.
    public static func header(config: String) -> [UInt8] {
        var shb: [UInt8] = []
        le32(&shb, byteOrderMagic); le16(&shb, 1); le16(&shb, 0)
        le32(&shb, 0xFFFF_FFFF); le32(&shb, 0xFFFF_FFFF)  // section length unknown
        option(&shb, 4, Array("ftap".utf8))
        option(&shb, 1, Array("ftap-record \(version)".utf8))
        option(&shb, 1, Array("config \(config)".utf8))
        option(&shb, 0, [])
        var out = block(shbType, shb)
        for (name, desc) in [("log", "log entries applied by the replica"), ("out", "frames the replica produced")] {
            var idb: [UInt8] = []
            le16(&idb, 1); le16(&idb, 0); le32(&idb, 262144)  // LINKTYPE_ETHERNET; snaplen as tcpdump's default
            option(&idb, 2, Array(name.utf8))
            option(&idb, 3, Array(desc.utf8))
            option(&idb, 9, [9])  // if_tsresol: nanoseconds
            option(&idb, 0, [])
            out += block(idbType, idb)
        }
        return out
    }

    static func epb(interface: UInt32, time: Nanos, data: [UInt8], packetID: UInt64, inbound: Bool, comment: String) -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(data.count + 96)
        le32(&b, interface); le32(&b, UInt32(truncatingIfNeeded: time >> 32)); le32(&b, UInt32(truncatingIfNeeded: time))
        le32(&b, UInt32(data.count)); le32(&b, UInt32(data.count))
        b.append(contentsOf: data); pad(&b)
        option(&b, 1, Array(comment.utf8))
        var flags: [UInt8] = []; le32(&flags, inbound ? 1 : 2)
        option(&b, 2, flags)
        var id: [UInt8] = []; le32(&id, UInt32(truncatingIfNeeded: packetID)); le32(&id, UInt32(truncatingIfNeeded: packetID >> 32))
        option(&b, 5, id)
        option(&b, 0, [])
        return block(epbType, b)
    }

    public static func entry(_ e: LogEntry) -> [UInt8] {
        epb(interface: 0, time: e.time, data: e.payload, packetID: e.index, inbound: true, comment: "kind=\(e.kind) epoch=\(e.epoch)")
    }
    public static func output(_ frame: [UInt8], of e: LogEntry) -> [UInt8] {
        epb(interface: 1, time: e.time, data: frame, packetID: e.index, inbound: false, comment: "output of \(e.index)")
    }
    public static func checkpoint(index: UInt64, epoch: UInt64, time: Nanos, digest: UInt64) -> [UInt8] {
        epb(interface: 0, time: time, data: [], packetID: index, inbound: true, comment: "kind=digest epoch=\(epoch) digest=\(hex(digest))")
    }

    // MARK: Reading

    public enum Item: Equatable, Sendable {
        case entry(LogEntry)
        case output(index: UInt64, time: Nanos, frame: [UInt8])
        case checkpoint(index: UInt64, digest: UInt64)
    }

    public struct Recording: Sendable {
        public var config: [String: String]
        public var configText: String
        public var items: [Item]
        /// Offsets of each item's block in the file (for error messages).
        public var offsets: [Int]
    }

    public struct ReadError: Error, CustomStringConvertible, Equatable {
        public var offset: Int
        public var message: String
        public var description: String { "at offset \(offset): \(message)" }
    }

    static func rd32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }
    static func rd16(_ b: [UInt8], _ i: Int) -> UInt16 { UInt16(b[i]) | UInt16(b[i + 1]) << 8 }

    /// Options in `b[from..<to]` as (code, value) pairs.
    static func options(_ b: [UInt8], from: Int, to: Int, blockAt: Int) throws -> [(UInt16, [UInt8])] {
        var out: [(UInt16, [UInt8])] = []
        var i = from
        while i + 4 <= to {
            let code = rd16(b, i), len = Int(rd16(b, i + 2))
            if code == 0 { break }
            let padded = (len + 3) & ~3
            guard i + 4 + padded <= to else { throw ReadError(offset: i, message: "option \(code) of block at \(blockAt) overruns the block") }
            out.append((code, Array(b[(i + 4)..<(i + 4 + len)])))
            i += 4 + padded
        }
        return out
    }

    /// Parses a whole recording. Every failure names the byte offset.
    public static func read(_ b: [UInt8]) throws -> Recording {
        var config: [String: String] = [:]
        var configText = ""
        var items: [Item] = []
        var offsets: [Int] = []
        var sawVersion = false
        var interfaces = 0
        var i = 0
        guard b.count >= 12 else { throw ReadError(offset: 0, message: "file is too short to be an ftap recording (\(b.count) bytes)") }
        guard rd32(b, 0) == shbType else { throw ReadError(offset: 0, message: "not a pcapng file (no section header block)") }
        while i < b.count {
            guard i + 12 <= b.count else { throw ReadError(offset: i, message: "truncated block header (\(b.count - i) bytes left)") }
            let type = rd32(b, i), len = Int(rd32(b, i + 4))
            guard len >= 12, len % 4 == 0 else { throw ReadError(offset: i, message: "block length \(len) is invalid") }
            guard i + len <= b.count else { throw ReadError(offset: i, message: "truncated block: needs \(len) bytes, \(b.count - i) left") }
            guard Int(rd32(b, i + len - 4)) == len else { throw ReadError(offset: i, message: "block trailer length does not match (corrupted)") }
            let body = i + 8, end = i + len - 4
            switch type {
            case shbType:
                guard len >= 28 else { throw ReadError(offset: i, message: "section header too short") }
                guard rd32(b, body) == byteOrderMagic else { throw ReadError(offset: i, message: "big-endian or corrupted section header (ftap writes little-endian)") }
                for (code, v) in try options(b, from: body + 16, to: end, blockAt: i) where code == 1 {
                    let s = String(decoding: v, as: UTF8.self)
                    if s.hasPrefix("ftap-record ") {
                        let ver = s.dropFirst("ftap-record ".count)
                        guard ver == "\(version)" else {
                            throw ReadError(offset: i, message: "ftap-record format version \(ver); this ftap reads version \(version)"
                                            + " (record again with this ftap to replay)")
                        }
                        sawVersion = true
                    } else if s.hasPrefix("config ") {
                        configText = String(s.dropFirst(7))
                        for kv in configText.split(separator: " ") {
                            if let eq = kv.firstIndex(of: "=") { config[String(kv[..<eq])] = String(kv[kv.index(after: eq)...]) }
                        }
                    }
                }
                guard sawVersion else { throw ReadError(offset: i, message: "pcapng file without an ftap-record version: not an ftap recording") }
            case idbType:
                interfaces += 1
            case epbType:
                guard end - body >= 20 else { throw ReadError(offset: i, message: "enhanced packet block too short") }
                let iface = rd32(b, body)
                guard Int(iface) < interfaces else { throw ReadError(offset: i, message: "packet on undeclared interface \(iface)") }
                let time = UInt64(rd32(b, body + 4)) << 32 | UInt64(rd32(b, body + 8))
                let cap = Int(rd32(b, body + 12))
                let dataStart = body + 20
                guard cap <= LogEntry.maxPayload, dataStart + cap <= end else { throw ReadError(offset: i, message: "packet length \(cap) overruns its block") }
                let data = Array(b[dataStart..<(dataStart + cap)])
                var comment = "", packetID: UInt64? = nil
                for (code, v) in try options(b, from: dataStart + ((cap + 3) & ~3), to: end, blockAt: i) {
                    if code == 1 { comment = String(decoding: v, as: UTF8.self) }
                    if code == 5 && v.count == 8 { packetID = UInt64(rd32(v, 0)) | UInt64(rd32(v, 4)) << 32 }
                }
                guard let index = packetID else { throw ReadError(offset: i, message: "packet without epb_packetid (log index)") }
                if iface == 1 {
                    items.append(.output(index: index, time: time, frame: data))
                } else {
                    var fields: [Substring: Substring] = [:]
                    for kv in comment.split(separator: " ") {
                        if let eq = kv.firstIndex(of: "=") { fields[kv[..<eq]] = kv[kv.index(after: eq)...] }
                    }
                    guard let kind = fields["kind"], let epochText = fields["epoch"], let epoch = UInt64(epochText) else {
                        throw ReadError(offset: i, message: "log packet comment '\(comment)' lacks kind= and epoch=")
                    }
                    switch kind {
                    case "frame": items.append(.entry(LogEntry(index: index, epoch: epoch, time: time, kind: .frame, payload: data)))
                    case "offload-frame":
                        items.append(.entry(LogEntry(index: index, epoch: epoch, time: time, kind: .offloadFrame, payload: data)))
                    case "tick": items.append(.entry(LogEntry(index: index, epoch: epoch, time: time, kind: .tick)))
                    case "go-live": items.append(.entry(LogEntry(index: index, epoch: epoch, time: time, kind: .goLive, payload: data)))
                    case "handover": items.append(.entry(LogEntry(index: index, epoch: epoch, time: time, kind: .handover)))
                    case "digest":
                        guard let d = fields["digest"], let v = UInt64(d, radix: 16) else {
                            throw ReadError(offset: i, message: "checkpoint without a valid digest")
                        }
                        items.append(.checkpoint(index: index, digest: v))
                    default: throw ReadError(offset: i, message: "unknown entry kind '\(kind)'")
                    }
                }
                offsets.append(i)
            default:
                break  // other pcapng blocks are allowed and skipped
            }
            i += len
        }
        return Recording(config: config, configText: configText, items: items, offsets: offsets)
    }
}

/// Encodes and decodes the appliance configuration carried in a recording:
/// `<every StackConfig field as name=value> services=<kind:port,...>
/// node=<name> role=<role> stack=<StackConfig.encodingVersion>:<hex of StackConfig.encode>`.
/// The name=value pairs are for people; replay reads `stack=` and
/// `services=`, so no configuration field can be left out.
public enum RecordedConfig {
    public static func text(stack c: StackConfig, services: [ServiceSpec], node: String, role: Role) -> String {
        var w = ByteWriter(capacity: 160)
        c.encode(into: &w)
        let readable = c.text.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
        return readable + " services=\(services.map(\.description).joined(separator: ",")) node=\(node) role=\(role.rawValue)"
            + " stack=\(StackConfig.encodingVersion):\(hexBytes(w.bytes))"
    }

    public struct Invalid: Error, CustomStringConvertible { public var description: String }

    static func hexBytes(_ b: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(2 * b.count)
        for x in b { out.append(digits[Int(x >> 4)]); out.append(digits[Int(x & 0xF)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func parseHex(_ s: Substring) -> [UInt8]? {
        let u = Array(s.utf8)
        guard u.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(u.count / 2)
        var i = 0
        while i < u.count {
            guard let hi = nibble(u[i]), let lo = nibble(u[i + 1]) else { return nil }
            out.append(hi << 4 | lo); i += 2
        }
        return out
    }

    public static func parse(_ kv: [String: String]) throws -> (StackConfig, [ServiceSpec]) {
        func need(_ k: String) throws -> String {
            guard let v = kv[k] else { throw Invalid(description: "recording's config lacks \(k)=") }
            return v
        }
        let stack = try need("stack")
        guard let colon = stack.firstIndex(of: ":"), let version = UInt8(stack[..<colon]) else {
            throw Invalid(description: "recording's config has a bad stack= (expected <version>:<hex>)")
        }
        guard version == StackConfig.encodingVersion else {
            throw Invalid(description: "recording's stack configuration is encoding version \(version); this ftap reads version \(StackConfig.encodingVersion)")
        }
        guard let bytes = parseHex(stack[stack.index(after: colon)...]) else {
            throw Invalid(description: "recording's config has a stack= that is not lowercase hex")
        }
        var r = ByteReader(bytes)
        let c: StackConfig
        do {
            c = try StackConfig.decode(&r)
        } catch {
            throw Invalid(description: "recording's stack configuration does not decode: \(error)")
        }
        guard r.remaining == 0 else { throw Invalid(description: "recording's stack configuration has \(r.remaining) trailing bytes") }
        let services = try need("services").split(separator: ",").map { try ServiceSpec.parse(String($0)) }
        return (c, services)
    }
}

/// Feeds a recording to a fresh appliance and compares every output frame
/// and every digest checkpoint.
public struct Replayer {
    public struct Mismatch: Sendable {
        public var index: UInt64
        public var what: String
        public var expected: [UInt8]?
        public var actual: [UInt8]?
    }
    public struct Summary: Sendable {
        public var entries = 0
        public var outputs = 0
        public var checkpoints = 0
        public var digest: UInt64 = 0
        public var lastIndex: UInt64 = 0
        public var epochs: [UInt64] = []
        public var mismatch: Mismatch? = nil
    }

    public static func replay(_ rec: RecordFormat.Recording) throws -> Summary {
        let (config, services) = try RecordedConfig.parse(rec.config)
        let replica = Replica(stack: try Appliance.make(config: config, services: services))
        var s = Summary()
        var pending: [[UInt8]] = []      // outputs the replay produced, not yet matched
        var pendingIndex: UInt64 = 0
        func unmatched() -> Mismatch? {
            guard let f = pending.first else { return nil }
            return Mismatch(index: pendingIndex, what: "replay produced an output the recording does not have", expected: nil, actual: f)
        }
        for item in rec.items {
            switch item {
            case .entry(let e):
                if let m = unmatched() { s.mismatch = m; return s }
                if e.index > replica.appliedIndex + 1 && s.entries > 0 {
                    // Not a divergence: the recording itself has a hole. The
                    // capture writer drops what it cannot keep up with (counted
                    // in ftap_capture_dropped_total) rather than slow the node.
                    s.mismatch = Mismatch(index: e.index, what: "the recording lacks entries \(replica.appliedIndex + 1)..\(e.index - 1) (the capture writer fell behind and dropped them; see ftap_capture_dropped_total): cannot replay past them", expected: nil, actual: nil)
                    return s
                }
                var out = Frames()
                do { try replica.apply(e, out: &out) } catch {
                    s.mismatch = Mismatch(index: e.index, what: "\(error)", expected: nil, actual: nil); return s
                }
                s.entries += 1
                s.lastIndex = e.index
                if s.epochs.last != e.epoch { s.epochs.append(e.epoch) }
                pending = out.frames
                pendingIndex = e.index
            case .output(let index, _, let frame):
                guard index == pendingIndex, let first = pending.first else {
                    s.mismatch = Mismatch(index: index, what: "recording has an output the replay did not produce", expected: frame, actual: nil)
                    return s
                }
                guard first == frame else {
                    s.mismatch = Mismatch(index: index, what: "output differs", expected: frame, actual: first)
                    return s
                }
                pending.removeFirst()
                s.outputs += 1
            case .checkpoint(let index, let digest):
                if let m = unmatched() { s.mismatch = m; return s }
                guard index == replica.appliedIndex else {
                    s.mismatch = Mismatch(index: index, what: "checkpoint for index \(index) found after entry \(replica.appliedIndex)", expected: nil, actual: nil)
                    return s
                }
                let mine = replica.digest
                guard mine == digest else {
                    s.mismatch = Mismatch(index: index, what: "state digest differs: recorded \(hex(digest)), replay \(hex(mine))", expected: nil, actual: nil)
                    return s
                }
                s.checkpoints += 1
            }
        }
        if let m = unmatched() { s.mismatch = m; return s }
        s.digest = replica.digest
        return s
    }
}
