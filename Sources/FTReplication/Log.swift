import FTStack
import FTWire

/// What a log entry carries. Every nondeterministic input reaches the
/// replicated state machine as one of these, in log order.
public enum EntryKind: UInt8, Sendable, CustomStringConvertible {
    /// An inbound Ethernet frame the stack accepts.
    case frame = 1
    /// Time advanced: fire timers due at the entry's timestamp.
    case tick = 2
    /// A replica went live in a new epoch: first entry of that epoch. Payload
    /// `[1]` (or empty): after a failure, retransmit unacknowledged data now;
    /// `[0]`: after a planned switchover, nothing to retransmit.
    case goLive = 3
    /// The primary hands its role to the backup (planned switchover).
    case handover = 4
    /// An inbound frame whose transport checksum the primary's kernel
    /// vouched for: read from a TAP with IFF_VNET_HDR and marked NEEDS_CSUM
    /// (the checksum field holds only the pseudo-header sum, because the
    /// sender's kernel left it to a NIC this frame never crossed) or
    /// DATA_VALID. It may be a TCP super-segment of up to 64 KiB (GRO or the
    /// client's TSO). The stack does not verify its transport checksum.
    case offloadFrame = 5
    public var description: String {
        switch self {
        case .frame: return "frame"
        case .tick: return "tick"
        case .goLive: return "go-live"
        case .handover: return "handover"
        case .offloadFrame: return "offload-frame"
        }
    }
    /// An inbound frame (`.frame` or `.offloadFrame`).
    public var isFrame: Bool { self == .frame || self == .offloadFrame }
}

/// One entry of the replication log.
public struct LogEntry: Equatable, Sendable {
    public var index: UInt64
    public var epoch: UInt64
    /// Monotonic time on the log's clock, in nanoseconds.
    public var time: Nanos
    public var kind: EntryKind
    /// The frame for `.frame` and `.offloadFrame`; empty otherwise.
    public var payload: [UInt8]

    public init(index: UInt64, epoch: UInt64, time: Nanos, kind: EntryKind, payload: [UInt8] = []) {
        self.index = index; self.epoch = epoch; self.time = time; self.kind = kind; self.payload = payload
    }

    /// Encoded size on the channel: 8 index + 8 epoch + 8 time + 1 kind + 4 length + payload.
    public static let encodedOverhead = 29
    public var encodedSize: Int { Self.encodedOverhead + payload.count }
    /// An Ethernet header plus the largest IPv4 datagram, with room to spare.
    public static let maxPayload = 65536 + 64

    /// The entry inside a channel `entries` message; its format is covered
    /// by `ChannelCodec.version`. `decode` below reads exactly this.
    public func encode(into w: inout ByteWriter) {
        w.u64(index); w.u64(epoch); w.u64(time); w.u8(kind.rawValue); w.blob(payload)
    }

    public static func decode(_ r: inout ByteReader) throws -> LogEntry {
        let index = try r.u64(), epoch = try r.u64(), time = try r.u64()
        let k = try r.u8()
        guard let kind = EntryKind(rawValue: k) else { throw DecodeError.invalid(offset: r.offset - 1, what: "entry kind \(k)") }
        let payload = try r.blob(max: maxPayload)
        return LogEntry(index: index, epoch: epoch, time: time, kind: kind, payload: payload)
    }
}

/// The replicated state machine: the appliance stack driven only by log
/// entries. Both replicas run one; applying the same entries in the same
/// order yields the same outputs and the same digest.
public final class Replica {
    public let stack: Stack
    public private(set) var appliedIndex: UInt64 = 0
    public private(set) var epoch: UInt64 = 0
    public private(set) var lastTime: Nanos = 0

    public init(stack: Stack) { self.stack = stack }

    public enum ApplyError: Error, CustomStringConvertible {
        case outOfOrder(expected: UInt64, got: UInt64)
        case timeWentBack(index: UInt64)
        case timeOutOfRange(index: UInt64, time: Nanos)
        public var description: String {
            switch self {
            case let .outOfOrder(e, g): return "log entry \(g) applied out of order (expected \(e))"
            case let .timeWentBack(i): return "log entry \(i) has a timestamp before its predecessor"
            case let .timeOutOfRange(i, t): return "log entry \(i) has timestamp \(t), beyond \(Replica.maxTime) (timer arithmetic would overflow)"
            }
        }
    }

    /// Applies the next entry. Frames the stack would emit are appended to `out`.
    public func apply(_ e: LogEntry, out: inout Frames) throws {
        guard e.index == appliedIndex + 1 else { throw ApplyError.outOfOrder(expected: appliedIndex + 1, got: e.index) }
        guard e.time >= lastTime else { throw ApplyError.timeWentBack(index: e.index) }
        guard e.time <= Replica.maxTime else { throw ApplyError.timeOutOfRange(index: e.index, time: e.time) }
        appliedIndex = e.index
        let previous = lastTime
        lastTime = e.time
        epoch = max(epoch, e.epoch)
        switch e.kind {
        case .frame:
            stack.handleFrame(e.payload, now: e.time, out: &out)
        case .offloadFrame:
            stack.handleFrame(e.payload, now: e.time, checksumTrusted: true, out: &out)
        case .tick:
            stack.advanceTime(to: e.time, out: &out)
        case .goLive:
            stack.goLive(now: e.time, previous: previous, retransmit: e.payload.first != 0, out: &out)
        case .handover:
            break
        }
    }

    /// The latest log time accepted (about 146 years): stack timers add
    /// intervals to it, which must not overflow.
    public static let maxTime: Nanos = 1 << 62

    public static let snapshotMagic: UInt32 = 0x4654_534E  // "FTSN"
    /// Version 2: the stack state became "FTS2" (SACK-permitted per
    /// connection, fields in `TCB.schema` order). Bump it whenever the bytes
    /// of `snapshot()` change for the same state; SnapshotSchemaTests holds
    /// the golden hash that notices. Version 3: "FTS3"; version 4: "FTS4"
    /// (TCP resource limits and the go-live time shift, issue 13; the `kv`
    /// service's state, issue 17); version 5: "FTS5" (the TCP path model,
    /// issue 13).
    public static let snapshotVersion: UInt32 = 5

    /// The complete replicated state between two entries (format "FTSN"):
    /// magic, version, applied index, epoch, last log time, then
    /// `Stack.encodeState` (connections, buffers, timers, services, counters).
    /// `restore` below reads exactly this.
    public func snapshot() -> [UInt8] {
        var w = ByteWriter(capacity: 64 * 1024)
        w.u32(Self.snapshotMagic); w.u32(Self.snapshotVersion)
        w.u64(appliedIndex); w.u64(epoch); w.u64(lastTime)
        stack.encodeState(into: &w)
        return w.bytes
    }

    public enum SnapshotFormatError: Error, CustomStringConvertible {
        case notASnapshot, version(UInt32), trailing(Int)
        public var description: String {
            switch self {
            case .notASnapshot: return "not an ftap snapshot"
            case .version(let v):
                return "snapshot format version \(v); this ftap reads version \(Replica.snapshotVersion) (both nodes must run the same ftap release)"
            case .trailing(let n): return "\(n) unexpected bytes after the snapshot"
            }
        }
    }

    /// Replaces the replica's state with a snapshot. On error the replica
    /// must be discarded or restored again from a good snapshot.
    public func restore(_ bytes: [UInt8]) throws {
        var r = ByteReader(bytes)
        guard try r.u32() == Self.snapshotMagic else { throw SnapshotFormatError.notASnapshot }
        let v = try r.u32()
        guard v == Self.snapshotVersion else { throw SnapshotFormatError.version(v) }
        let index = try r.u64(), epoch = try r.u64(), last = try r.u64()
        guard last <= Replica.maxTime else { throw SnapshotFormatError.notASnapshot }
        try stack.restoreState(from: &r)
        guard r.remaining == 0 else { throw SnapshotFormatError.trailing(r.remaining) }
        appliedIndex = index; self.epoch = epoch; lastTime = last
    }

    /// Digest of the replicated state including the log position: SipHash-2-4
    /// of `snapshot()`, so a snapshot and its digest come from one encoding.
    public var digest: UInt64 { Replica.digest(ofSnapshot: snapshot()) }

    public static func digest(ofSnapshot bytes: [UInt8]) -> UInt64 {
        SipHash24.hash(k0: 0x6674_6170_7265_706c, k1: 0x6963_612d_7631_0000, bytes)
    }
}

/// Assigns log indexes and timestamps to inputs on the node that leads.
/// Keeps the log clock monotonic across a takeover (the new leader's
/// monotonic clock may be behind the old leader's).
public struct LogClock: Sendable {
    var offset: Nanos = 0
    public private(set) var last: Nanos = 0
    public init() {}
    /// Continue a log whose last timestamp is `lastLogged`, with local time `localNow`.
    public mutating func resume(lastLogged: Nanos, localNow: Nanos) {
        offset = lastLogged > localNow ? lastLogged - localNow : 0
        last = lastLogged
    }
    public mutating func stamp(localNow: Nanos) -> Nanos {
        let t = max(last, localNow &+ offset)
        last = t
        return t
    }
    /// The log time that corresponds to a local deadline, and back.
    public func toLocal(_ logTime: Nanos) -> Nanos { logTime >= offset ? logTime - offset : 0 }
}
