import FTStack
import FTWire

/// The global counter shared by `counter` (TCP) and `udp-counter` (UDP).
public final class CounterState {
    public private(set) var value: UInt64 = 0
    public init() {}
    public func increment() -> UInt64 { value &+= 1; return value }
    func restore(_ v: UInt64) { value = v }
}

/// `counter`: a line protocol. `INCR` -> new value, `GET` -> value, anything
/// else -> `ERR unknown command`; a line over 1024 bytes -> `ERR line too long`
/// and close. Lines end in `\n` (a trailing `\r` is tolerated).
public final class CounterService: StreamService {
    public let kind = "counter"
    public static let maxLine = 1024
    static let maxReply = 32
    let counter: CounterState
    /// Partial line per connection.
    var partial: [ConnectionID: [UInt8]] = [:]

    public init(counter: CounterState) { self.counter = counter }

    public func opened(_ id: ConnectionID, remote: Endpoint, io: inout StreamIO) { partial[id] = [] }

    public func receive(_ id: ConnectionID, _ data: ArraySlice<UInt8>, sendSpace: Int, io: inout StreamIO) -> Int {
        var line = partial[id] ?? []
        var space = sendSpace
        var consumed = 0
        var i = data.startIndex
        while i < data.endIndex {
            // Do not accept a request whose reply might not fit: flow control.
            if space < Self.maxReply { break }
            let b = data[i]
            i += 1
            consumed += 1
            if b == UInt8(ascii: "\n") {
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                let reply = handle(line)
                io.output.append(contentsOf: reply)
                space -= reply.count
                line.removeAll(keepingCapacity: true)
                continue
            }
            line.append(b)
            if line.count > Self.maxLine {
                io.output.append(contentsOf: Array("ERR line too long\n".utf8))
                io.close = true
                partial[id] = nil
                return data.count
            }
        }
        partial[id] = line
        return consumed
    }

    func handle(_ line: [UInt8]) -> [UInt8] {
        switch line {
        case Array("INCR".utf8): return Array("\(counter.increment())\n".utf8)
        case Array("GET".utf8): return Array("\(counter.value)\n".utf8)
        default: return Array("ERR unknown command\n".utf8)
        }
    }

    public func peerClosed(_ id: ConnectionID, io: inout StreamIO) { io.close = true }
    public func closed(_ id: ConnectionID) { partial[id] = nil }

    public func encodeState(into w: inout ByteWriter) {
        w.u64(counter.value)
        let ids = partial.keys.sorted()
        w.int(ids.count)
        for id in ids { w.u64(id); w.blob(partial[id]!) }
    }

    public func decodeState(from r: inout ByteReader) throws {
        counter.restore(try r.u64())
        let n = try r.int()
        guard n >= 0, n <= 1 << 24 else { throw DecodeError.invalid(offset: r.offset - 8, what: "connection count") }
        var p: [ConnectionID: [UInt8]] = [:]
        for _ in 0..<n { let id = try r.u64(); p[id] = try r.blob(max: Self.maxLine + 1) }
        partial = p
    }
}

/// `echo` (RFC 862, TCP): sends back what it receives, as fast as the send
/// buffer allows; closes after the peer closes.
public final class EchoService: StreamService {
    public let kind = "echo"
    public init() {}
    public func opened(_ id: ConnectionID, remote: Endpoint, io: inout StreamIO) {}
    public func receive(_ id: ConnectionID, _ data: ArraySlice<UInt8>, sendSpace: Int, io: inout StreamIO) -> Int {
        let n = min(data.count, sendSpace)
        io.output.append(contentsOf: data.prefix(n))
        return n
    }
    public func peerClosed(_ id: ConnectionID, io: inout StreamIO) { io.close = true }
    public func closed(_ id: ConnectionID) {}
    public func encodeState(into w: inout ByteWriter) {}
    public func decodeState(from r: inout ByteReader) throws {}
}

/// `discard` (RFC 863, TCP): reads and throws away; counts bytes.
public final class DiscardService: StreamService {
    public let kind = "discard"
    public private(set) var bytesDiscarded: UInt64 = 0
    public init() {}
    public func opened(_ id: ConnectionID, remote: Endpoint, io: inout StreamIO) {}
    public func receive(_ id: ConnectionID, _ data: ArraySlice<UInt8>, sendSpace: Int, io: inout StreamIO) -> Int {
        bytesDiscarded &+= UInt64(data.count)
        return data.count
    }
    public func peerClosed(_ id: ConnectionID, io: inout StreamIO) { io.close = true }
    public func closed(_ id: ConnectionID) {}
    public func encodeState(into w: inout ByteWriter) { w.u64(bytesDiscarded) }
    public func decodeState(from r: inout ByteReader) throws { bytesDiscarded = try r.u64() }
}

/// `udp-echo` (RFC 862, UDP).
public final class UDPEchoService: DatagramService {
    public let kind = "udp-echo"
    public init() {}
    public func receive(from: Endpoint, _ payload: ArraySlice<UInt8>) -> [UInt8]? { Array(payload) }
    public func encodeState(into w: inout ByteWriter) {}
    public func decodeState(from r: inout ByteReader) throws {}
}

/// `udp-counter`: exactly-once increments over UDP with request ids.
/// A datagram `<client> <seq> INCR` or `<client> <seq> GET` is answered
/// `<client> <seq> <value>`. A repeated `<client> <seq>` gets the cached reply
/// without executing again; an older seq gets `<client> <seq> ERR stale`.
/// The per-client table holds at most `maxClients`; when full, the client
/// least recently served (smallest last-use stamp, then smallest name) is evicted.
public final class UDPCounterService: DatagramService {
    public let kind = "udp-counter"
    struct Entry { var seq: UInt64; var reply: [UInt8]; var stamp: UInt64 }
    let counter: CounterState
    let maxClients: Int
    var clients: [String: Entry] = [:]
    var clock: UInt64 = 0  // a logical use counter, not time
    public private(set) var evictions: UInt64 = 0

    public init(counter: CounterState, maxClients: Int = 4096) {
        self.counter = counter; self.maxClients = max(1, maxClients)
    }

    public func receive(from: Endpoint, _ payload: ArraySlice<UInt8>) -> [UInt8]? {
        // Trim line endings on bytes: as Characters, "\r\n" is one grapheme
        // that equals neither "\r" nor "\n".
        var body = payload
        while let b = body.last, b == UInt8(ascii: "\n") || b == UInt8(ascii: "\r") { body = body.dropLast() }
        let text = String(decoding: body, as: UTF8.self)
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 3, parts[0].utf8.count <= 64, let seq = UInt64(parts[1]) else {
            return Array("ERR malformed\n".utf8)
        }
        let client = String(parts[0])
        let cmd = parts[2]
        guard cmd == "INCR" || cmd == "GET" else { return Array("\(client) \(seq) ERR unknown command\n".utf8) }
        clock += 1
        if var e = clients[client] {
            if seq == e.seq { e.stamp = clock; clients[client] = e; return e.reply }
            if seq < e.seq { return Array("\(client) \(seq) ERR stale\n".utf8) }
        }
        let value = cmd == "INCR" ? counter.increment() : counter.value
        let reply = Array("\(client) \(seq) \(value)\n".utf8)
        if clients[client] == nil && clients.count >= maxClients { evictOne() }
        clients[client] = Entry(seq: seq, reply: reply, stamp: clock)
        return reply
    }

    func evictOne() {
        var victim: (UInt64, String)? = nil
        for (k, e) in clients {
            if victim == nil || (e.stamp, k) < victim! { victim = (e.stamp, k) }
        }
        if let v = victim { clients[v.1] = nil; evictions += 1 }
    }

    public func encodeState(into w: inout ByteWriter) {
        w.u64(counter.value); w.u64(clock); w.u64(evictions)
        let keys = clients.keys.sorted()
        w.int(keys.count)
        for k in keys { let e = clients[k]!; w.string(k); w.u64(e.seq); w.blob(e.reply); w.u64(e.stamp) }
    }

    public func decodeState(from r: inout ByteReader) throws {
        counter.restore(try r.u64())
        clock = try r.u64(); evictions = try r.u64()
        let n = try r.int()
        guard n >= 0, n <= 1 << 24 else { throw DecodeError.invalid(offset: r.offset - 8, what: "client count") }
        var c: [String: Entry] = [:]
        for _ in 0..<n { c[try r.string()] = Entry(seq: try r.u64(), reply: try r.blob(max: 4096), stamp: try r.u64()) }
        clients = c
    }
}

/// `KIND:PORT` as given to `--service`. A `kv` service carries its limits,
/// written `kv:PORT:maxmemory=B:maxbulk=B:maxpending=B` (bytes) when they are
/// not the defaults, so recordings rebuild it exactly.
public struct ServiceSpec: Hashable, Sendable, CustomStringConvertible {
    public static let kinds = ["counter", "echo", "discard", "udp-echo", "udp-counter", "kv"]
    public var kind: String
    public var port: UInt16
    public var kv: KVLimits = .default
    public init(kind: String, port: UInt16) { self.kind = kind; self.port = port }
    public var isUDP: Bool { kind.hasPrefix("udp-") }
    public var description: String {
        if kind == "kv" && kv != .default {
            return "\(kind):\(port):maxmemory=\(kv.maxMemoryBytes):maxbulk=\(kv.maxBulkBytes):maxpending=\(kv.maxPendingBytes)"
        }
        return "\(kind):\(port)"
    }

    public enum ParseError: Error, CustomStringConvertible {
        case syntax(String), unknownKind(String), badPort(String), badOption(String)
        public var description: String {
            switch self {
            case .syntax(let s): return "service '\(s)' is not KIND:PORT (e.g. counter:7000)"
            case .unknownKind(let k): return "unknown service kind '\(k)'; known: \(ServiceSpec.kinds.joined(separator: ", "))"
            case .badPort(let p): return "service port '\(p)' is not a number in 1...65535"
            case .badOption(let o): return "kv option '\(o)' is not maxmemory=, maxbulk= or maxpending= with a positive byte count (maxbulk <= maxpending)"
            }
        }
    }

    public static func parse(_ text: String) throws -> ServiceSpec {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count >= 2 else { throw ParseError.syntax(text) }
        let kind = String(parts[0])
        guard kinds.contains(kind) else { throw ParseError.unknownKind(kind) }
        guard parts.count == 2 || kind == "kv" else { throw ParseError.syntax(text) }
        // Digits only: UInt16("+80") would succeed.
        guard parts[1].utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let p = UInt16(parts[1]), p > 0 else { throw ParseError.badPort(String(parts[1])) }
        var spec = ServiceSpec(kind: kind, port: p)
        for o in parts.dropFirst(2) {
            let kv = o.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, kv[1].utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let v = Int(kv[1]), v > 0 else { throw ParseError.badOption(String(o)) }
            switch kv[0] {
            case "maxmemory": spec.kv.maxMemoryBytes = v
            case "maxbulk": spec.kv.maxBulkBytes = v
            case "maxpending": spec.kv.maxPendingBytes = v
            default: throw ParseError.badOption(String(o))
            }
        }
        guard spec.kv.maxBulkBytes <= spec.kv.maxPendingBytes else { throw ParseError.badOption("maxbulk=\(spec.kv.maxBulkBytes)") }
        return spec
    }
}

/// Builds a stack with its services: the complete appliance state machine.
public enum Appliance {
    public enum ConfigError: Error, CustomStringConvertible {
        case duplicatePort(String)
        public var description: String {
            switch self { case .duplicatePort(let s): return "two services on the same port: \(s)" }
        }
    }

    public static func make(config: StackConfig, services: [ServiceSpec]) throws -> Stack {
        let stack = Stack(config: config)
        let counter = CounterState()
        var tcpPorts = Set<UInt16>(), udpPorts = Set<UInt16>()
        for s in services {
            if s.isUDP {
                guard udpPorts.insert(s.port).inserted else { throw ConfigError.duplicatePort("udp \(s.port)") }
            } else {
                guard tcpPorts.insert(s.port).inserted else { throw ConfigError.duplicatePort("tcp \(s.port)") }
            }
            switch s.kind {
            case "counter": stack.listen(port: s.port, CounterService(counter: counter))
            case "echo": stack.listen(port: s.port, EchoService())
            case "discard": stack.listen(port: s.port, DiscardService())
            case "udp-echo": stack.bindUDP(port: s.port, UDPEchoService())
            case "udp-counter": stack.bindUDP(port: s.port, UDPCounterService(counter: counter))
            case "kv": stack.listen(port: s.port, KVService(port: s.port, limits: s.kv, logTime: { [unowned stack] in stack.logTime }))
            default: break
            }
        }
        return stack
    }
}
