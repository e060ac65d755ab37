import FTStack
import FTWire

/// Limits of the `kv` service. They are part of the replicated
/// configuration: both nodes must use the same (they are in the service's
/// encoded state, so the configuration digest the nodes compare covers them).
public struct KVLimits: Hashable, Sendable {
    /// Writes that may grow the keyspace are refused with Redis's OOM error
    /// once the estimated memory is above this (`--kv-max-memory-mb`).
    public var maxMemoryBytes: Int
    /// Longest bulk string (argument) accepted, like Redis's proto-max-bulk-len
    /// (`--kv-max-bulk-kb`); also the longest string value (APPEND, SETRANGE).
    public var maxBulkBytes: Int
    /// Most bytes one connection may hold for a request not yet complete
    /// (`--kv-max-pipeline-kb`); complete pipelined requests wait in the TCP
    /// receive buffer, not here.
    public var maxPendingBytes: Int

    public static let `default` = KVLimits(maxMemoryBytes: 256 << 20, maxBulkBytes: 1 << 20, maxPendingBytes: 4 << 20)
    public init(maxMemoryBytes: Int, maxBulkBytes: Int, maxPendingBytes: Int) {
        self.maxMemoryBytes = maxMemoryBytes; self.maxBulkBytes = maxBulkBytes; self.maxPendingBytes = maxPendingBytes
    }
}

/// One client connection of the `kv` service.
final class KVConn {
    let id: ConnectionID
    var parser = RESPParser()
    var name: [UInt8] = []
    /// After QUIT or a protocol error: input is discarded.
    var closing = false
    init(id: ConnectionID) { self.id = id }
}

/// `kv`: a Redis-protocol (RESP2) key-value service. Strings, integers,
/// hashes and lists with expiry on log time; pipelining; Redis's replies and
/// error wording. See KVCommands.swift for the commands.
///
/// Determinism: the current time is the log time of the input being applied
/// (`now`, read from the stack), never a clock. Keys iterate in slot order
/// (`SlotTable`), never in Dictionary order. Expired keys are deleted lazily
/// on access and actively, before each request, in expiry order.
public final class KVService: StreamService {
    public let kind = "kv"
    public let limits: KVLimits
    let port: UInt16
    /// Log time of the input being applied, in nanoseconds.
    let logTime: () -> UInt64
    public let store = KVStore()
    var conns: [ConnectionID: KVConn] = [:]
    // Statistics for INFO (replicated state: INFO's answer must be the same on every replica).
    public internal(set) var commandsProcessed: UInt64 = 0
    public internal(set) var connectionsReceived: UInt64 = 0
    public internal(set) var rejectedOOM: UInt64 = 0
    public internal(set) var protocolErrors: UInt64 = 0
    var firstTime: Int64 = -1

    /// Active expiry deletes at most this many due keys before each request.
    static let expiryBatch = 64
    /// "FKV1": the tag that starts the service's encoded state.
    public static let stateFormat: UInt32 = 0x464B_5631

    public init(port: UInt16, limits: KVLimits = .default, logTime: @escaping () -> UInt64) {
        self.port = port; self.limits = limits; self.logTime = logTime
    }

    public var connectionCount: Int { conns.count }

    public func opened(_ id: ConnectionID, remote: Endpoint, io: inout StreamIO) {
        conns[id] = KVConn(id: id)
        connectionsReceived += 1
    }

    public func receive(_ id: ConnectionID, _ data: ArraySlice<UInt8>, sendSpace: Int, io: inout StreamIO) -> Int {
        guard let c = conns[id], !c.closing else { return data.count }
        let now = Int64(logTime() / 1_000_000)
        if firstTime < 0 { firstTime = now }
        var i = data.startIndex
        var space = sendSpace
        // Take requests while their replies fit: the rest waits in the TCP
        // receive buffer (the window closes) until the client reads.
        while i < data.endIndex && space > 0 {
            let before = io.output.count
            switch c.parser.next(data, &i, maxBulk: limits.maxBulkBytes, maxPending: limits.maxPendingBytes) {
            case .needMore:
                break
            case .request:
                store.expireDue(now: now, limit: Self.expiryBatch)
                commandsProcessed += 1
                execute(c.parser.args, c, now: now, out: &io.output)
                c.parser.args.reset()  // an idle parser holds nothing (canonical state)
                if c.closing { io.close = true; return data.count }
            case .protocolError(let msg):
                protocolErrors += 1
                io.output.respError("ERR " + msg)
                io.close = true
                c.closing = true
                return data.count
            }
            space -= io.output.count - before
        }
        return i - data.startIndex
    }

    public func peerClosed(_ id: ConnectionID, io: inout StreamIO) { io.close = true }
    public func closed(_ id: ConnectionID) { conns[id] = nil }

    // MARK: Snapshot

    public func encodeState(into w: inout ByteWriter) {
        w.u32(Self.stateFormat)
        w.int(limits.maxMemoryBytes); w.int(limits.maxBulkBytes); w.int(limits.maxPendingBytes); w.u16(port)
        w.u64(commandsProcessed); w.u64(connectionsReceived); w.u64(rejectedOOM); w.u64(protocolErrors)
        w.u64(UInt64(bitPattern: firstTime))
        store.encode(into: &w)
        let ids = conns.keys.sorted()
        w.int(ids.count)
        for id in ids {
            let c = conns[id]!
            w.u64(id); w.blob(c.name); w.bool(c.closing); c.parser.encode(into: &w)
        }
    }

    public func decodeState(from r: inout ByteReader) throws {
        let tag = try r.u32()
        guard tag == Self.stateFormat else { throw DecodeError.invalid(offset: r.offset - 4, what: "kv state format \(tag)") }
        let l = KVLimits(maxMemoryBytes: try r.int(), maxBulkBytes: try r.int(), maxPendingBytes: try r.int())
        let p = try r.u16()
        guard l == limits, p == port else { throw DecodeError.invalid(offset: r.offset, what: "kv limits or port (the nodes' --kv-* flags differ)") }
        commandsProcessed = try r.u64(); connectionsReceived = try r.u64(); rejectedOOM = try r.u64(); protocolErrors = try r.u64()
        firstTime = Int64(bitPattern: try r.u64())
        try store.decode(from: &r, maxBulk: limits.maxBulkBytes)
        let n = try r.int()
        guard n >= 0, n <= 1 << 24 else { throw DecodeError.invalid(offset: r.offset - 8, what: "connection count") }
        var cs: [ConnectionID: KVConn] = [:]
        for _ in 0..<n {
            let c = KVConn(id: try r.u64())
            c.name = try r.blob(max: 1024); c.closing = try r.bool()
            c.parser = try RESPParser.decode(from: &r, maxPending: limits.maxPendingBytes)
            cs[c.id] = c
        }
        conns = cs
    }
}
