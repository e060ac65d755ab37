import ArgumentParser
import FTPlatform
#if canImport(Glibc)
import Glibc
#endif

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a short summary of a running node (role, epoch, peer, lag, uptime) from its --admin endpoint.")
    @Option(help: "The node's --admin address.") var admin: String = "127.0.0.1:7410"
    @Flag(help: "Print the raw JSON.") var json = false

    func run() throws {
        guard let a = SocketAddress(admin) else { throw ValidationError("--admin '\(admin)' is not IPv4:PORT") }
        let body: String
        do { body = try httpGet(a, path: "/status") } catch {
            throw CLIError("cannot reach the admin endpoint at \(admin): \(error) (is the node running with --admin \(admin)?)")
        }
        if json { print(body, terminator: ""); return }
        let f = flatJSON(body)
        func v(_ k: String) -> String { f[k] ?? "?" }
        print("node \(v("node")): role \(v("role")), mode \(v("mode")), epoch \(v("epoch")), live \(v("live"))")
        print("log: applied \(v("applied_index")), acknowledged \(v("acked_index")), lag \(v("lag_entries")) entries / \(v("lag_bytes")) bytes, \(v("held_frames")) frames held")
        print("peer connected: \(v("peer_connected")), in sync \(v("in_sync")), protected \(v("protected")); failovers \(v("failovers")), switchovers \(v("switchovers")); divergences \(v("divergences"))")
        let reason = v("health_reason")
        print("health: \(v("healthy") == "true" ? "healthy" : "UNHEALTHY")\(reason.isEmpty || reason == "?" ? "" : " (\(reason))"), peer healthy \(v("peer_healthy")); arbiter unavailable \(v("arbiter_unavailable")) times")
        if v("role") == "backup" {
            print("standby buffer: \(v("standby_buffer_frames")) frames / \(v("standby_buffer_bytes")) bytes, receiving client frames (switch mirror) \(v("standby_receiving_client_frames")), matched \(v("standby_matched")), expired \(v("standby_expired"))")
        } else if v("standby_applied") != "0" && v("standby_applied") != "?" {
            print("standby buffer: \(v("standby_applied")) frames applied at go-live, \(v("standby_skipped_old")) skipped as already received")
        }
        print("tcp connections \(v("tcp_connections")); frames emitted \(v("frames_emitted")), suppressed \(v("frames_suppressed")), ignored \(v("frames_ignored"))")
        print("uptime \(v("uptime_seconds")) s; state digest \(v("digest"))")
    }
}

struct Switchover: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Hand the primary role to the backup on purpose (planned maintenance), through the primary's --admin endpoint.",
        discussion: "The primary stops taking input, waits until the backup has acknowledged every entry, appends a handover entry and becomes the backup; the backup claims the next epoch, sends gratuitous ARP and leads. No state transfer is needed.")
    @Option(help: "The primary's --admin address.") var admin: String = "127.0.0.1:7410"
    @Option(help: "File (mode 0600) with the token of the node's --admin-token-file.") var adminTokenFile: String?

    func run() throws {
        guard let a = SocketAddress(admin) else { throw ValidationError("--admin '\(admin)' is not IPv4:PORT") }
        var headers: [String] = []
        if let f = adminTokenFile {
            do { headers.append("Authorization: Bearer " + String(decoding: try readTokenFile(f), as: UTF8.self)) } catch {
                throw ValidationError("\(error)")
            }
        }
        do { print(try httpRequest(a, method: "POST", path: "/switchover", headers: headers), terminator: "") } catch {
            throw CLIError("switchover refused or failed: \(error)")
        }
    }
}

/// Top-level scalar fields of a flat JSON object (enough for /status).
func flatJSON(_ s: String) -> [String: String] {
    var out: [String: String] = [:]
    var depth = 0, i = s.startIndex
    var key: String? = nil
    while i < s.endIndex {
        let c = s[i]
        if c == "{" { depth += 1 } else if c == "}" { depth -= 1 }
        if depth == 1 && c == "\"" {
            var j = s.index(after: i); var str = ""
            while j < s.endIndex && s[j] != "\"" { if s[j] == "\\" { j = s.index(after: j) }; str.append(s[j]); j = s.index(after: j) }
            i = j
            if key == nil { key = str } else { out[key!] = str; key = nil }
        } else if depth == 1 && key != nil && (c.isNumber || c == "-" || c == "t" || c == "f" || c == "n") {
            var j = i; var val = ""
            while j < s.endIndex && s[j] != "," && s[j] != "}" { val.append(s[j]); j = s.index(after: j) }
            out[key!] = val.trimmingCharacters; key = nil
            i = s.index(before: j)
        }
        i = s.index(after: i)
    }
    return out
}

struct HTTPError: Error, CustomStringConvertible { var description: String }

func httpGet(_ a: SocketAddress, path: String) throws -> String { try httpRequest(a, method: "GET", path: path) }

func httpRequest(_ a: SocketAddress, method: String, path: String, headers: [String] = []) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HTTPError(description: String(cString: strerror(errno))) }
    defer { close(fd) }
    var tv = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var sin = sockaddr_in()
    sin.sin_family = sa_family_t(AF_INET); sin.sin_port = a.port.bigEndian; sin.sin_addr.s_addr = a.ip.raw.bigEndian
    let r = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard r == 0 else { throw HTTPError(description: String(cString: strerror(errno))) }
    let req = Array("\(method) \(path) HTTP/1.0\r\n\(headers.map { $0 + "\r\n" }.joined())\r\n".utf8)
    _ = req.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    var data: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buf, buf.count)
        if n <= 0 { break }
        data += buf[0..<n]
    }
    guard data.count >= 4, let sep = (0...(data.count - 4)).first(where: { data[$0] == 13 && data[$0 + 1] == 10 && data[$0 + 2] == 13 && data[$0 + 3] == 10 }) else {
        throw HTTPError(description: "malformed HTTP response")
    }
    let head = String(decoding: data[0..<sep], as: UTF8.self)
    guard head.hasPrefix("HTTP/1.0 200") else {
        throw HTTPError(description: head.split(separator: "\r\n").first.map(String.init).map { $0 + ": " } .map { $0 + String(decoding: data[(sep + 4)...], as: UTF8.self) } ?? head)
    }
    return String(decoding: data[(sep + 4)...], as: UTF8.self)
}

/// A runtime failure (exit 1, no usage text), as opposed to bad flags (exit 64).
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
