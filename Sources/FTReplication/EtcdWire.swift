// The etcd v3 arbiter's wire format, pure (no I/O): etcd's HTTP/JSON gateway
// (grpc-gateway: proto3 JSON, 64-bit integers as strings, bytes as base64),
// the HTTP/1.1 response framing it uses, the request bodies the arbiter sends
// and the decisions it takes from the answers. `FTPlatform.EtcdArbiter` does
// the sockets; everything here is unit-tested without a server.

// MARK: - JSON

/// A JSON value. Numbers keep their text (etcd sends int64 as strings anyway).
public enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSON])
    /// Members in the order written (encoding is deterministic).
    case object([(String, JSON)])

    public static func == (l: JSON, r: JSON) -> Bool {
        switch (l, r) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public subscript(_ key: String) -> JSON? {
        guard case .object(let m) = self else { return nil }
        return m.first { $0.0 == key }?.1
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var array: [JSON]? { if case .array(let a) = self { return a }; return nil }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    /// An integer written as a JSON number or (proto3's int64) as a string.
    public var int64: Int64? {
        switch self {
        case .number(let s), .string(let s): return Int64(s)
        default: return nil
        }
    }
    public var uint64: UInt64? {
        switch self {
        case .number(let s), .string(let s): return UInt64(s)
        default: return nil
        }
    }

    public var encoded: String {
        var out = ""
        encode(into: &out)
        return out
    }

    func encode(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let s): out += s
        case .string(let s): JSON.quote(s, into: &out)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() { if i > 0 { out += "," }; v.encode(into: &out) }
            out += "]"
        case .object(let m):
            out += "{"
            for (i, (k, v)) in m.enumerated() {
                if i > 0 { out += "," }
                JSON.quote(k, into: &out)
                out += ":"
                v.encode(into: &out)
            }
            out += "}"
        }
    }

    static func quote(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }

    public struct ParseError: Error, CustomStringConvertible {
        public let offset: Int
        public let what: String
        public var description: String { "bad JSON at byte \(offset): \(what)" }
    }

    /// Parses one JSON document (surrounding white space allowed).
    public static func parse<C: Collection>(_ bytes: C) throws -> JSON where C.Element == UInt8 {
        var p = JSONParser(bytes: Array(bytes))
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == p.b.count else { throw ParseError(offset: p.i, what: "trailing bytes") }
        return v
    }
}

struct JSONParser {
    let b: [UInt8]
    var i = 0
    init(bytes: [UInt8]) { b = bytes }

    mutating func skipSpace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0a || b[i] == 0x0d || b[i] == 0x09 { i += 1 }
    }

    func fail(_ what: String) -> JSON.ParseError { JSON.ParseError(offset: i, what: what) }

    mutating func expect(_ word: String) throws {
        for c in word.utf8 {
            guard i < b.count, b[i] == c else { throw fail("expected \(word)") }
            i += 1
        }
    }

    mutating func value(depth: Int) throws -> JSON {
        guard depth < 64 else { throw fail("nested too deeply") }
        skipSpace()
        guard i < b.count else { throw fail("unexpected end") }
        switch b[i] {
        case UInt8(ascii: "{"):
            i += 1
            var m: [(String, JSON)] = []
            skipSpace()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(m) }
            while true {
                skipSpace()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a member name") }
                let k = try string()
                skipSpace()
                try expect(":")
                m.append((k, try value(depth: depth + 1)))
                skipSpace()
                guard i < b.count else { throw fail("unexpected end in an object") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return .object(m) }
                throw fail("expected , or }")
            }
        case UInt8(ascii: "["):
            i += 1
            var a: [JSON] = []
            skipSpace()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
            while true {
                a.append(try value(depth: depth + 1))
                skipSpace()
                guard i < b.count else { throw fail("unexpected end in an array") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                throw fail("expected , or ]")
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        default:
            let start = i
            while i < b.count, "+-0123456789.eE".utf8.contains(b[i]) { i += 1 }
            guard i > start else { throw fail("unexpected character") }
            return .number(String(decoding: b[start..<i], as: UTF8.self))
        }
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= b.count else { throw fail("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x61...0x66: d = c - 0x61 + 10
            case 0x41...0x46: d = c - 0x41 + 10
            default: throw fail("bad \\u escape")
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }

    mutating func string() throws -> String {
        i += 1  // the opening quote
        var out: [UInt8] = []
        while true {
            guard i < b.count else { throw fail("unterminated string") }
            let c = b[i]
            i += 1
            if c == UInt8(ascii: "\"") { break }
            if c != UInt8(ascii: "\\") { out.append(c); continue }
            guard i < b.count else { throw fail("unterminated escape") }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "n"): out.append(0x0a)
            case UInt8(ascii: "r"): out.append(0x0d)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0c)
            case UInt8(ascii: "u"):
                var v = try hex4()
                if v >= 0xD800 && v < 0xDC00, i + 6 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") {
                    i += 2
                    let lo = try hex4()
                    guard lo >= 0xDC00 && lo < 0xE000 else { throw fail("bad surrogate pair") }
                    v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                }
                guard let s = Unicode.Scalar(v) else { throw fail("bad code point") }
                out += Array(String(Character(s)).utf8)
            default: throw fail("bad escape")
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

// MARK: - base64 (RFC 4648, with padding: proto3 JSON's `bytes`)

public enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode<C: Collection>(_ data: C) -> String where C.Element == UInt8 {
        let d = Array(data)
        var out: [UInt8] = []
        out.reserveCapacity((d.count + 2) / 3 * 4)
        var i = 0
        while i < d.count {
            let n = min(3, d.count - i)
            let v = UInt32(d[i]) << 16 | (n > 1 ? UInt32(d[i + 1]) << 8 : 0) | (n > 2 ? UInt32(d[i + 2]) : 0)
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(n > 1 ? alphabet[Int(v >> 6 & 63)] : UInt8(ascii: "="))
            out.append(n > 2 ? alphabet[Int(v & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func encode(_ s: String) -> String { encode(Array(s.utf8)) }

    /// Decodes standard or URL-safe base64, padded or not; nil on anything else.
    public static func decode(_ s: String) -> [UInt8]? {
        var out: [UInt8] = []
        var acc: UInt32 = 0
        var bits = 0
        var padding = false
        for c in s.utf8 {
            let v: UInt8
            switch c {
            case 0x41...0x5a: v = c - 0x41
            case 0x61...0x7a: v = c - 0x61 + 26
            case 0x30...0x39: v = c - 0x30 + 52
            case UInt8(ascii: "+"), UInt8(ascii: "-"): v = 62
            case UInt8(ascii: "/"), UInt8(ascii: "_"): v = 63
            case UInt8(ascii: "="): padding = true; continue
            default: return nil
            }
            if padding { return nil }  // data after padding
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(acc >> UInt32(bits) & 0xff))
            }
        }
        return bits >= 6 ? nil : out
    }

    public static func decodeString(_ s: String) -> String? { decode(s).map { String(decoding: $0, as: UTF8.self) } }
}

// MARK: - HTTP/1.1 responses

public struct HTTPResponse: Equatable, Sendable {
    public var status: Int
    public var body: [UInt8]
    public init(status: Int, body: [UInt8]) { self.status = status; self.body = body }

    public enum Framing: Equatable, Sendable {
        /// More bytes are needed (the connection is still open).
        case incomplete
        case complete(HTTPResponse)
        case malformed(String)
    }

    /// Parses a response read so far; `closed` says the server closed the
    /// connection (which ends a body without a length). Handles
    /// Content-Length, chunked transfer coding (grpc-gateway streams) and
    /// bodies delimited by the close.
    public static func parse(_ data: [UInt8], closed: Bool) -> Framing {
        let sep: [UInt8] = [13, 10, 13, 10]
        guard let headEnd = find(sep, in: data, from: 0) else {
            return closed ? .malformed("connection closed before the response header ended") : .incomplete
        }
        let head = String(decoding: data[0..<headEnd], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let first = lines[0].split(separator: " ")
        guard first.count >= 2, first[0].hasPrefix("HTTP/1."), let status = Int(first[1]) else {
            return .malformed("bad status line: \(lines[0].prefix(80))")
        }
        var length: Int? = nil
        var chunked = false
        for l in lines.dropFirst() {
            guard let colon = l.firstIndex(of: ":") else { continue }
            let name = l[..<colon].lowercased()
            let value = l[l.index(after: colon)...].trimmingCharacters(in: " \t")
            if name == "content-length" {
                guard let n = Int(value), n >= 0 else { return .malformed("bad Content-Length \(value)") }
                length = n
            } else if name == "transfer-encoding" && value.lowercased().contains("chunked") {
                chunked = true
            }
        }
        let bodyStart = headEnd + 4
        if chunked {
            var body: [UInt8] = []
            var i = bodyStart
            while true {
                guard let lineEnd = find([13, 10], in: data, from: i) else {
                    return closed ? .malformed("connection closed inside a chunk header") : .incomplete
                }
                let sizeText = String(decoding: data[i..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: " "), radix: 16), size >= 0 else {
                    return .malformed("bad chunk size \(sizeText.prefix(20))")
                }
                let dataStart = lineEnd + 2
                if size == 0 { return .complete(HTTPResponse(status: status, body: body)) }
                guard data.count >= dataStart + size + 2 else {
                    return closed ? .malformed("connection closed inside a chunk") : .incomplete
                }
                body += data[dataStart..<dataStart + size]
                i = dataStart + size + 2
            }
        }
        if let n = length {
            guard data.count >= bodyStart + n else {
                return closed ? .malformed("connection closed after \(data.count - bodyStart) of \(n) body bytes") : .incomplete
            }
            return .complete(HTTPResponse(status: status, body: Array(data[bodyStart..<bodyStart + n])))
        }
        return closed ? .complete(HTTPResponse(status: status, body: Array(data[bodyStart...]))) : .incomplete
    }

    static func find(_ needle: [UInt8], in data: [UInt8], from: Int) -> Int? {
        guard data.count >= needle.count else { return nil }
        var i = from
        while i + needle.count <= data.count {
            if data[i] == needle[0] && Array(data[i..<i + needle.count]) == needle { return i }
            i += 1
        }
        return nil
    }

    /// The request the arbiter sends: one POST, the connection closed after it.
    public static func post(path: String, host: String, body: String) -> [UInt8] {
        let b = Array(body.utf8)
        let head = "POST \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/json\r\n" +
            "Content-Length: \(b.count)\r\nConnection: close\r\n\r\n"
        return Array(head.utf8) + b
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
