import FTWire

/// The arguments of one request, in one flat buffer (no allocation per
/// argument: the buffers are reused from request to request).
public struct RESPArgs {
    public internal(set) var buf: [UInt8] = []
    public internal(set) var ends: [Int] = []
    public var count: Int { ends.count }
    public subscript(i: Int) -> ArraySlice<UInt8> { buf[(i == 0 ? 0 : ends[i - 1])..<ends[i]] }
    mutating func reset() { buf.removeAll(keepingCapacity: true); ends.removeAll(keepingCapacity: true) }
    mutating func finishArg() { ends.append(buf.count) }
    /// For tests and tools: arguments from strings.
    public init(_ parts: [String] = []) { for p in parts { buf.append(contentsOf: p.utf8); ends.append(buf.count) } }
}

/// An incremental RESP2 request parser for one connection: multibulk
/// (`*N\r\n$len\r\n...`) and inline (`PING\r\n`) requests, split across reads
/// anywhere. It consumes exactly the bytes of each request, so pipelined
/// requests are taken one at a time. Its whole state is serializable.
public struct RESPParser {
    enum Phase: UInt8 { case idle = 0, count = 1, bulkHeader = 2, bulkBody = 3, bulkCRLF = 4, inline = 5 }
    public enum Step: Equatable { case needMore, request, protocolError(String) }

    /// Longest header or inline line (Redis's PROTO_INLINE_MAX_SIZE).
    public static let maxLine = 64 * 1024
    /// Most arguments in one multibulk request (Redis: 1024*1024).
    public static let maxArgs = 1024 * 1024

    var phase: Phase = .idle
    var line: [UInt8] = []
    var argsLeft = 0
    var bulkLeft = 0
    var crlfLeft = 0
    public internal(set) var args = RESPArgs()

    public init() {}

    /// Bytes this connection holds for a request not yet complete.
    public var pendingBytes: Int { line.count + args.buf.count }

    /// Parses from `data[i...]` until one request is complete (`.request`,
    /// the arguments are in `args` until the next call), the data runs out
    /// (`.needMore`, all of it consumed), or the input is not RESP
    /// (`.protocolError`, with Redis's wording; the caller replies and closes).
    public mutating func next(_ data: ArraySlice<UInt8>, _ i: inout Int, maxBulk: Int, maxPending: Int) -> Step {
        if phase == .idle { args.reset() }
        while i < data.endIndex {
            switch phase {
            case .idle:
                if data[i] == UInt8(ascii: "*") { phase = .count; i += 1 } else { phase = .inline }
            case .count, .bulkHeader, .inline:
                guard let nl = data[i...].firstIndex(of: UInt8(ascii: "\n")) else {
                    line.append(contentsOf: data[i...]); i = data.endIndex
                    if line.count > Self.maxLine {
                        return .protocolError(phase == .inline ? "Protocol error: too big inline request"
                                              : phase == .count ? "Protocol error: too big mbulk count string"
                                              : "Protocol error: too big bulk count string")
                    }
                    if pendingBytes > maxPending { return .protocolError("Protocol error: request exceeds the pending pipeline limit") }
                    return .needMore
                }
                line.append(contentsOf: data[i..<nl]); i = nl + 1
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                if let step = lineDone(maxBulk: maxBulk) { return step }
            case .bulkBody:
                let n = min(bulkLeft, data.endIndex - i)
                args.buf.append(contentsOf: data[i..<i + n]); i += n; bulkLeft -= n
                if args.buf.count + line.count > maxPending { return .protocolError("Protocol error: request exceeds the pending pipeline limit") }
                if bulkLeft == 0 { phase = .bulkCRLF; crlfLeft = 2 }
            case .bulkCRLF:
                let n = min(crlfLeft, data.endIndex - i)
                i += n; crlfLeft -= n
                if crlfLeft == 0 {
                    args.finishArg(); argsLeft -= 1
                    if argsLeft == 0 { phase = .idle; return .request }
                    phase = .bulkHeader
                }
            }
        }
        return .needMore
    }

    mutating func lineDone(maxBulk: Int) -> Step? {
        defer { line.removeAll(keepingCapacity: true) }
        switch phase {
        case .count:
            guard let n = parseInt64(line[...]), n <= Int64(Self.maxArgs) else {
                return .protocolError("Protocol error: invalid multibulk length")
            }
            if n <= 0 { phase = .idle; return nil }
            argsLeft = Int(n); phase = .bulkHeader
        case .bulkHeader:
            guard line.first == UInt8(ascii: "$") else {
                let c = line.first.map { String(UnicodeScalar($0)) } ?? "\\r"
                return .protocolError("Protocol error: expected '$', got '\(c)'")
            }
            guard let n = parseInt64(line[1...]), n >= 0, n <= Int64(maxBulk) else {
                return .protocolError("Protocol error: invalid bulk length")
            }
            bulkLeft = Int(n)
            phase = n == 0 ? .bulkCRLF : .bulkBody
            crlfLeft = 2
        case .inline:
            phase = .idle
            guard splitInline(line) else { args.reset(); return .protocolError("Protocol error: unbalanced quotes in request") }
            if args.count > 0 { return .request }
        default: break
        }
        return nil
    }

    /// Redis's inline syntax (sdssplitargs): words separated by blanks,
    /// "double quotes" with \n \r \t \b \a \\ \" \xHH escapes, 'single quotes'.
    mutating func splitInline(_ l: [UInt8]) -> Bool {
        args.reset()
        var i = 0
        func isSpace(_ c: UInt8) -> Bool { c == 32 || c == 9 || c == 10 || c == 13 || c == 11 || c == 12 }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return nil
            }
        }
        while true {
            while i < l.count && isSpace(l[i]) { i += 1 }
            if i == l.count { return true }
            var inDouble = false, inSingle = false, done = false
            while !done {
                if inDouble {
                    guard i < l.count else { return false }
                    if l[i] == 92 && i + 3 < l.count && l[i + 1] == UInt8(ascii: "x"), let h = hex(l[i + 2]), let lo = hex(l[i + 3]) {
                        args.buf.append(h << 4 | lo); i += 4
                    } else if l[i] == 92 && i + 1 < l.count {
                        let e = l[i + 1]
                        args.buf.append(e == UInt8(ascii: "n") ? 10 : e == UInt8(ascii: "r") ? 13 : e == UInt8(ascii: "t") ? 9
                                        : e == UInt8(ascii: "b") ? 8 : e == UInt8(ascii: "a") ? 7 : e)
                        i += 2
                    } else if l[i] == UInt8(ascii: "\"") {
                        if i + 1 < l.count && !isSpace(l[i + 1]) { return false }
                        done = true; i += 1
                    } else { args.buf.append(l[i]); i += 1 }
                } else if inSingle {
                    guard i < l.count else { return false }
                    if l[i] == 92 && i + 1 < l.count && l[i + 1] == UInt8(ascii: "'") {
                        args.buf.append(UInt8(ascii: "'")); i += 2
                    } else if l[i] == UInt8(ascii: "'") {
                        if i + 1 < l.count && !isSpace(l[i + 1]) { return false }
                        done = true; i += 1
                    } else { args.buf.append(l[i]); i += 1 }
                } else {
                    if i == l.count || isSpace(l[i]) { done = true }
                    else if l[i] == UInt8(ascii: "\"") { inDouble = true; i += 1 }
                    else if l[i] == UInt8(ascii: "'") { inSingle = true; i += 1 }
                    else { args.buf.append(l[i]); i += 1 }
                }
            }
            args.finishArg()
        }
    }

    func encode(into w: inout ByteWriter) {
        w.u8(phase.rawValue); w.blob(line); w.int(argsLeft); w.int(bulkLeft); w.int(crlfLeft)
        w.blob(args.buf); w.int(args.ends.count)
        for e in args.ends { w.int(e) }
    }

    static func decode(from r: inout ByteReader, maxPending: Int) throws -> RESPParser {
        var p = RESPParser()
        guard let ph = Phase(rawValue: try r.u8()) else { throw DecodeError.invalid(offset: r.offset - 1, what: "RESP parser phase") }
        p.phase = ph
        p.line = try r.blob(max: maxLine + 1)
        p.argsLeft = try r.int(); p.bulkLeft = try r.int(); p.crlfLeft = try r.int()
        p.args.buf = try r.blob(max: maxPending + maxLine)
        let n = try r.int()
        guard n >= 0, n <= maxArgs else { throw DecodeError.invalid(offset: r.offset - 8, what: "RESP argument count") }
        var last = 0
        for _ in 0..<n {
            let e = try r.int()
            guard e >= last, e <= p.args.buf.count else { throw DecodeError.invalid(offset: r.offset - 8, what: "RESP argument end") }
            p.args.ends.append(e); last = e
        }
        return p
    }
}

/// Redis's string2ll: optional '-', digits, no '+', no leading zeros, no
/// blanks, within Int64.
public func parseInt64(_ s: ArraySlice<UInt8>) -> Int64? {
    guard !s.isEmpty, s.count <= 20 else { return nil }
    var i = s.startIndex
    var negative = false
    if s[i] == UInt8(ascii: "-") { negative = true; i += 1; if i == s.endIndex { return nil } }
    if s[i] == UInt8(ascii: "0") { return (s.count == 1) ? 0 : nil }
    var v: UInt64 = 0
    while i < s.endIndex {
        let d = s[i] &- 48
        guard d <= 9 else { return nil }
        let (m, o1) = v.multipliedReportingOverflow(by: 10)
        let (a, o2) = m.addingReportingOverflow(UInt64(d))
        if o1 || o2 { return nil }
        v = a; i += 1
    }
    if negative {
        if v > UInt64(Int64.max) + 1 { return nil }
        return v == UInt64(Int64.max) + 1 ? Int64.min : -Int64(v)
    }
    return v > UInt64(Int64.max) ? nil : Int64(v)
}

/// RESP2 replies, appended to an output buffer without intermediate strings.
extension Array where Element == UInt8 {
    mutating func appendDecimal(_ v: Int64) {
        if v < 0 { append(UInt8(ascii: "-")) }
        var m = v.magnitude
        var digits = 1
        var t = m
        while t >= 10 { t /= 10; digits += 1 }
        let start = count
        append(contentsOf: repeatElement(UInt8(ascii: "0"), count: digits))
        var j = start + digits - 1
        repeat { self[j] = UInt8(48 + m % 10); m /= 10; j -= 1 } while m > 0
    }
    mutating func appendCRLF() { append(13); append(10) }
    mutating func respSimple(_ s: StaticString) {
        append(UInt8(ascii: "+")); s.withUTF8Buffer { append(contentsOf: $0) }; appendCRLF()
    }
    mutating func respOK() { respSimple("OK") }
    mutating func respError(_ s: String) { append(UInt8(ascii: "-")); append(contentsOf: s.utf8); appendCRLF() }
    mutating func respInt(_ v: Int64) { append(UInt8(ascii: ":")); appendDecimal(v); appendCRLF() }
    mutating func respInt(_ v: Int) { respInt(Int64(v)) }
    mutating func respBulk<C: Collection>(_ b: C) where C.Element == UInt8 {
        append(UInt8(ascii: "$")); appendDecimal(Int64(b.count)); appendCRLF(); append(contentsOf: b); appendCRLF()
    }
    mutating func respBulk(_ s: String) { respBulk(s.utf8) }
    mutating func respNull() { append(contentsOf: [36, 45, 49, 13, 10]) }  // $-1
    mutating func respNullArray() { append(contentsOf: [42, 45, 49, 13, 10]) }  // *-1
    mutating func respArray(_ n: Int) { append(UInt8(ascii: "*")); appendDecimal(Int64(n)); appendCRLF() }
}
