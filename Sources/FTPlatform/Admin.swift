#if canImport(Glibc)
import Glibc
#endif
import CShims
import FTReplication
import FTStack

/// `--admin ADDR:PORT`: a minimal HTTP/1.0 responder in the node's poll loop
/// for `/metrics` (Prometheus text) and `/status` (JSON). One request per
/// connection; requests over 8 KiB or slower than 2 s are dropped.
final class AdminServer {
    struct Client { var fd: Int32; var buffer: [UInt8]; var since: UInt64; var response: [UInt8]; var sent: Int }
    let fd: Int32
    var clients: [Client] = []

    init(address: SocketAddress) throws {
        fd = try Sockets.listen(on: address)
    }

    var pollFDs: [pollfd] {
        [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            + clients.map { pollfd(fd: $0.fd, events: $0.response.isEmpty ? Int16(POLLIN) : Int16(POLLOUT), revents: 0) }
    }

    /// Handles readiness; `respond` maps "METHOD PATH" and the request's bearer
    /// token (`Authorization: Bearer T`), if any, to (status, content type, body).
    func service(_ fds: ArraySlice<pollfd>, now: UInt64, respond: (String, [UInt8]?) -> (Int, String, [UInt8])) {
        let ready = Array(fds)
        if let l = ready.first, l.revents & Int16(POLLIN) != 0 {
            while clients.count < 16 {
                let c = ftap_accept_nonblock(fd)
                if c < 0 { break }
                clients.append(Client(fd: c, buffer: [], since: now, response: [], sent: 0))
            }
        }
        var keep: [Client] = []
        for (i, var c) in clients.enumerated() {
            let ev = i + 1 < ready.count ? ready[i + 1].revents : 0
            var done = false
            if c.response.isEmpty && ev != 0 {
                var buf = [UInt8](repeating: 0, count: 4096)
                let n = read(c.fd, &buf, buf.count)
                if n <= 0 && !(n < 0 && errno == EAGAIN) { done = true }
                else if n > 0 {
                    c.buffer += buf[0..<n]
                    if let end = findHeaderEnd(c.buffer) {
                        let lines = String(decoding: c.buffer[0..<end], as: UTF8.self).split(separator: "\r\n")
                        let parts = (lines.first ?? "").split(separator: " ")
                        let token = lines.dropFirst().lazy.compactMap(AdminServer.bearerToken).first
                        let (status, type, body): (Int, String, [UInt8])
                        if parts.count >= 2 && (parts[0] == "GET" || parts[0] == "POST") { (status, type, body) = respond(String(parts[0]) + " " + String(parts[1]), token) }
                        else { (status, type, body) = (405, "text/plain", Array("only GET and POST\n".utf8)) }
                        let reason = [200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict"][status] ?? "Method Not Allowed"
                        c.response = Array("HTTP/1.0 \(status) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + body
                    } else if c.buffer.count > 8192 { done = true }
                }
            }
            if !c.response.isEmpty {
                let n = c.response.withUnsafeBytes { write(c.fd, $0.baseAddress! + c.sent, $0.count - c.sent) }
                if n > 0 { c.sent += n }
                if c.sent >= c.response.count || (n < 0 && errno != EAGAIN) { done = true }
            }
            if now - c.since > 2_000_000_000 { done = true }
            if done { Glibc.close(c.fd) } else { keep.append(c) }
        }
        clients = keep
    }

    /// The token of an `Authorization: Bearer TOKEN` header line.
    static func bearerToken(_ line: Substring) -> [UInt8]? {
        guard let colon = line.firstIndex(of: ":"), line[..<colon].lowercased() == "authorization" else { return nil }
        let value = line[line.index(after: colon)...].drop(while: { $0 == " " })
        guard value.lowercased().hasPrefix("bearer ") else { return nil }
        return Array(value.dropFirst(7).utf8)
    }

    func findHeaderEnd(_ b: [UInt8]) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
        return nil
    }

    func close() {
        for c in clients { Glibc.close(c.fd) }
        Glibc.close(fd)
    }
}

/// Compares a presented token with the configured one in time that does not
/// depend on where they differ.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var d: UInt8 = a.count == b.count ? 0 : 1
    for i in 0..<max(a.count, b.count) { d |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0) }
    return d == 0
}

/// A JSON object of `fields`, in their order; each value is JSON text already.
func jsonObject(_ fields: [(String, String)]) -> String {
    "{" + fields.map { "\(jsonString($0.0)): \($0.1)" }.joined(separator: ", ") + "}"
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for ch in s.unicodeScalars {
        switch ch {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default:
            if ch.value < 0x20 { out += "\\u00" + (ch.value < 16 ? "0" : "") + String(ch.value, radix: 16) } else { out.unicodeScalars.append(ch) }
        }
    }
    return out + "\""
}
