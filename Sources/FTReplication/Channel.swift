import FTStack
import FTWire

/// Messages on the log channel between the two nodes.
///
/// Framing (version 2), every message:
///   magic   u16  0x4654 ("FT")
///   version u8   2
///   type    u8   (see `ChannelMessage`)
///   length  u32  payload length, at most `ChannelCodec.maxPayload`
///   payload
/// All integers are big-endian. A peer that sends another magic or version,
/// or an oversized or malformed message, is rejected with a clear error.
/// From version 2 these messages travel only inside the authenticated,
/// encrypted records of `SecureChannel`, after its handshake.
public enum ChannelMessage: Equatable, Sendable {
    /// First message of the connecting node.
    case hello(Hello)
    /// The primary accepts the backup into the pair at `epoch`; with
    /// `snapshot`, a state transfer follows (the primary is already serving).
    case welcome(epoch: UInt64, snapshot: Bool)
    /// The primary refuses the backup; the reason is for the operator.
    case reject(reason: String)
    /// A batch of log entries, consecutive indexes.
    case entries([LogEntry])
    /// Cumulative: the backup has received and applied every entry up to `index`.
    case ack(index: UInt64)
    /// Liveness when idle.
    case heartbeat
    /// The primary's state digest after applying entry `index`.
    case digest(index: UInt64, value: UInt64)
    /// State transfer: the snapshot taken after entry `index` follows in chunks.
    case snapshotBegin(index: UInt64, epoch: UInt64, totalBytes: Int, digest: UInt64)
    /// `checksum` is SipHash-2-4 of `data` keyed with (offset, "snap").
    case snapshotChunk(offset: UInt64, data: [UInt8], checksum: UInt64)
    case snapshotEnd
    /// A frame a former primary received on its TAP after handing over, for
    /// the new primary to log as if it had read it itself.
    case forward(frame: [UInt8])
    /// The backup's state digest differed from the primary's at `index`: it
    /// will refuse to go live, so the pair is not protected.
    case diverged(index: UInt64)
    /// The sender's health (its tracked links and checks), sent after the
    /// handshake and on every change; node-local, it only steers decisions.
    case health(healthy: Bool, reason: String)

    public struct Hello: Equatable, Sendable {
        public var node: String
        public var role: String
        public var configDigest: UInt64
        public var appliedIndex: UInt64
        public var epoch: UInt64
        /// The identity of the sender's arbiter store: both nodes must share one.
        public var arbiter: String
        /// The sender's heartbeat and failover timeout: they must be equal, or a
        /// backup with a shorter timeout could take over inside the primary's lease.
        public var heartbeat: Nanos
        public var failoverTimeout: Nanos
        public init(node: String, role: String, configDigest: UInt64, appliedIndex: UInt64, epoch: UInt64,
                    arbiter: String = "", heartbeat: Nanos = 0, failoverTimeout: Nanos = 0) {
            self.node = node; self.role = role; self.configDigest = configDigest
            self.appliedIndex = appliedIndex; self.epoch = epoch
            self.arbiter = arbiter; self.heartbeat = heartbeat; self.failoverTimeout = failoverTimeout
        }
    }

    /// The wire type of each case; `decodePayload` switches on the same numbers.
    var type: UInt8 {
        switch self {
        case .hello: return 1
        case .welcome: return 2
        case .reject: return 3
        case .entries: return 4
        case .ack: return 5
        case .heartbeat: return 6
        case .digest: return 7
        case .snapshotBegin: return 8
        case .snapshotChunk: return 9
        case .snapshotEnd: return 10
        case .forward: return 11
        case .diverged: return 12
        case .health: return 13
        }
    }
    public static let typeCount = 13

    /// The payload of each message type, and right below, its inverse.
    /// Change both together, and `ChannelCodec.version` with them.
    func encodePayload(into w: inout ByteWriter) {
        switch self {
        case .hello(let h):
            w.string(h.node); w.string(h.role); w.u64(h.configDigest); w.u64(h.appliedIndex); w.u64(h.epoch)
            w.string(h.arbiter); w.u64(h.heartbeat); w.u64(h.failoverTimeout)
        case .welcome(let e, let snap): w.u64(e); w.bool(snap)
        case .reject(let r): w.string(r)
        case .entries(let es):
            w.u32(UInt32(es.count))
            for e in es { e.encode(into: &w) }
        case .ack(let i): w.u64(i)
        case .heartbeat: break
        case .digest(let i, let v): w.u64(i); w.u64(v)
        case .snapshotBegin(let i, let e, let n, let d): w.u64(i); w.u64(e); w.u64(UInt64(n)); w.u64(d)
        case .snapshotChunk(let o, let data, let sum): w.u64(o); w.blob(data); w.u64(sum)
        case .snapshotEnd: break
        case .forward(let f): w.blob(f)
        case .diverged(let i): w.u64(i)
        case .health(let h, let r): w.bool(h); w.string(r)
        }
    }

    static func decodePayload(type: UInt8, _ r: inout ByteReader) throws -> ChannelMessage {
        switch type {
        case 1:
            return .hello(.init(node: try r.string(), role: try r.string(), configDigest: try r.u64(),
                                appliedIndex: try r.u64(), epoch: try r.u64(), arbiter: try r.string(),
                                heartbeat: try r.u64(), failoverTimeout: try r.u64()))
        case 2: return .welcome(epoch: try r.u64(), snapshot: try r.bool())
        case 3: return .reject(reason: try r.string())
        case 4:
            let n = Int(try r.u32())
            guard n <= r.remaining / LogEntry.encodedOverhead else { throw ChannelCodec.ProtocolError.malformed("entry count \(n)") }
            var es: [LogEntry] = []
            es.reserveCapacity(n)
            for _ in 0..<n { es.append(try LogEntry.decode(&r)) }
            return .entries(es)
        case 5: return .ack(index: try r.u64())
        case 6: return .heartbeat
        case 7: return .digest(index: try r.u64(), value: try r.u64())
        case 8:
            let i = try r.u64(), e = try r.u64(), n = try r.u64(), d = try r.u64()
            guard n <= UInt64(ChannelCodec.maxSnapshotBytes) else { throw ChannelCodec.ProtocolError.malformed("snapshot size \(n)") }
            return .snapshotBegin(index: i, epoch: e, totalBytes: Int(n), digest: d)
        case 9: return .snapshotChunk(offset: try r.u64(), data: try r.blob(max: ChannelCodec.maxPayload), checksum: try r.u64())
        case 10: return .snapshotEnd
        case 11: return .forward(frame: try r.blob(max: LogEntry.maxPayload))
        case 12: return .diverged(index: try r.u64())
        case 13: return .health(healthy: try r.bool(), reason: try r.string())
        default: throw ChannelCodec.ProtocolError.badType(type)
        }
    }
}

public enum ChannelCodec {
    public static let magic: UInt16 = 0x4654
    /// 2: the channel is authenticated and encrypted (`SecureChannel`); `diverged`; `health`.
    /// 3: `offload-frame` entries and entry payloads up to 64 KiB + 64 (TAP
    /// offloads); records sealed with AES-256-GCM instead of ChaCha20-Poly1305.
    public static let version: UInt8 = 3
    public static let maxPayload = 16 << 20
    /// The largest snapshot a backup accepts to receive (`snapshotBegin`).
    public static let maxSnapshotBytes = 8 << 30
    static let headerSize = 8

    public static func encode(_ m: ChannelMessage, into out: inout [UInt8]) {
        // The payload is written in place after the header, whose length
        // field is patched afterwards: an `entries` message carries up to
        // megabytes of frames, and copying them once more cost the primary
        // 2-3 % of its CPU in a replicated bulk transfer (perf, issue 14).
        let start = out.count
        out.appendBE16(magic); out.append(version); out.append(m.type); out.appendBE32(0)
        var w = ByteWriter(capacity: 0)
        swap(&w.bytes, &out)
        m.encodePayload(into: &w)
        swap(&w.bytes, &out)
        out.writeBE32(UInt32(out.count - start - headerSize), at: start + 4)
    }

    public enum ProtocolError: Error, CustomStringConvertible, Equatable {
        case badMagic(UInt16)
        case badVersion(UInt8)
        case badType(UInt8)
        case tooLarge(Int)
        case malformed(String)
        public var description: String {
            switch self {
            case .badMagic(let m): return "peer is not speaking the ftap log protocol (magic 0x\(String(m, radix: 16)))"
            case .badVersion(let v): return "peer speaks log protocol version \(v); this ftap speaks version \(ChannelCodec.version)"
            case .badType(let t): return "unknown log message type \(t)"
            case .tooLarge(let n): return "log message of \(n) bytes exceeds the \(ChannelCodec.maxPayload)-byte limit"
            case .malformed(let s): return "malformed log message: \(s)"
            }
        }
    }
}

/// Reassembles messages from a byte stream.
public struct ChannelDecoder {
    var buffer: [UInt8] = []
    var head = 0
    public init() {}

    public mutating func feed<C: Collection>(_ bytes: C) where C.Element == UInt8 { buffer.append(contentsOf: bytes) }

    public var buffered: Int { buffer.count - head }

    /// The next complete message, or nil if more bytes are needed.
    public mutating func next() throws -> ChannelMessage? {
        guard buffer.count - head >= ChannelCodec.headerSize else { compact(); return nil }
        let magic = buffer.readBE16(head)
        guard magic == ChannelCodec.magic else { throw ChannelCodec.ProtocolError.badMagic(magic) }
        let version = buffer[head + 2]
        guard version == ChannelCodec.version else { throw ChannelCodec.ProtocolError.badVersion(version) }
        let type = buffer[head + 3]
        let len = Int(buffer.readBE32(head + 4))
        guard len <= ChannelCodec.maxPayload else { throw ChannelCodec.ProtocolError.tooLarge(len) }
        let start = head + ChannelCodec.headerSize
        guard buffer.count - start >= len else { compact(); return nil }
        var r = ByteReader(buffer, offset: start, end: start + len)
        head = start + len
        do {
            let m = try ChannelMessage.decodePayload(type: type, &r)
            guard r.remaining == 0 else { throw ChannelCodec.ProtocolError.malformed("\(r.remaining) trailing bytes in type \(type)") }
            return m
        } catch let e as ChannelCodec.ProtocolError {
            throw e
        } catch {
            throw ChannelCodec.ProtocolError.malformed("type \(type): \(error)")
        }
    }

    mutating func compact() {
        if head > 0 && (head == buffer.count || head > 1 << 16) {
            buffer.removeFirst(head); head = 0
        }
    }
}
