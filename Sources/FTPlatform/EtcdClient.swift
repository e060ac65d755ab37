#if canImport(Glibc)
import Glibc
#endif
import FTReplication
import FTStack

/// A minimal client of etcd's v3 HTTP/JSON gateway: one POST per TCP
/// connection (`Connection: close`), plain sockets, a deadline on the whole
/// exchange. Endpoints are tried in turn, starting with the one that answered
/// last. Blocking: it runs on `ArbiterWorker`'s thread (and in `ftap arbiter`).
final class EtcdClient {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let endpoints: [SocketAddress]
    /// Bound on one request to one endpoint (connect, send, answer).
    let timeout: Nanos
    private var preferred = 0

    init(endpoints: [SocketAddress], timeout: Nanos) {
        self.endpoints = endpoints
        self.timeout = timeout
    }

    /// POSTs `body` to `path` on each endpoint in turn until one answers.
    /// An answer is HTTP 200 with a JSON body (the body of a stream is
    /// returned whole, see `EtcdAnswers.keepAliveTTL`). A gateway error that
    /// is about the request, not the member (e.g. lease not found), is thrown
    /// at once; transport errors, timeouts and "unavailable" errors move on
    /// to the next endpoint. Throws `Failure` naming every endpoint's error.
    func post(_ path: String, _ body: String) throws -> [UInt8] {
        var errors: [String] = []
        for k in 0..<endpoints.count {
            let i = (preferred + k) % endpoints.count
            let ep = endpoints[i]
            let r: HTTPResponse
            do {
                r = try exchange(ep, HTTPResponse.post(path: path, host: ep.description, body: body))
            } catch {
                errors.append("\(ep): \(error)")
                continue
            }
            if r.status == 200 {
                preferred = i
                return r.body
            }
            let j = try? JSON.parse(r.body)
            // gRPC codes: 14 unavailable, 4 deadline exceeded, 1 canceled, 13 internal.
            let code = j?["code"]?.int64 ?? j?["error"]?["grpc_code"]?.int64 ?? 14
            let message = j.flatMap(EtcdAnswers.error) ?? String(decoding: r.body.prefix(300), as: UTF8.self)
            if ![1, 4, 13, 14].contains(code) {
                preferred = i
                throw Failure(description: "\(ep): HTTP \(r.status): \(message)")
            }
            errors.append("\(ep): HTTP \(r.status): \(message)")
        }
        throw Failure(description: "no etcd endpoint answered \(path) (\(errors.joined(separator: "; ")))")
    }

    /// POSTs and parses the JSON answer (throws on a gateway error in it).
    func call(_ path: String, _ body: String) throws -> JSON {
        let b = try post(path, body)
        let j: JSON
        do { j = try JSON.parse(b) } catch { throw Failure(description: "\(path): \(error)") }
        if let e = EtcdAnswers.error(j) { throw Failure(description: "\(path): \(e)") }
        return j
    }

    /// One request on a fresh connection to `ep`, within `timeout`.
    func exchange(_ ep: SocketAddress, _ request: [UInt8]) throws -> HTTPResponse {
        let deadline = monotonicNanos() + timeout
        let fd = try Sockets.connect(to: ep)
        defer { close(fd) }
        try wait(fd, Int16(POLLOUT), until: deadline, doing: "connect")
        let e = Sockets.pendingError(fd)
        guard e == 0 else { throw SystemError("connect", errno: e) }
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) {
                try wait(fd, Int16(POLLOUT), until: deadline, doing: "send")
                continue
            }
            throw SystemError("send", errno: errno)
        }
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                data += buf[0..<n]
                if data.count > 4 << 20 { throw Failure(description: "answer larger than 4 MiB") }
                if case .complete(let r) = HTTPResponse.parse(data, closed: false) { return r }
                continue
            }
            if n == 0 {
                switch HTTPResponse.parse(data, closed: true) {
                case .complete(let r): return r
                case .malformed(let why): throw Failure(description: why)
                case .incomplete: throw Failure(description: "connection closed early")
                }
            }
            if errno == EAGAIN || errno == EINTR {
                try wait(fd, Int16(POLLIN), until: deadline, doing: "answer")
                continue
            }
            throw SystemError("recv", errno: errno)
        }
    }

    private func wait(_ fd: Int32, _ events: Int16, until deadline: UInt64, doing what: String) throws {
        while true {
            let now = monotonicNanos()
            guard now < deadline else { throw Failure(description: "no \(what) within \(timeout / nsPerMs) ms") }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let ms = Int32(min(UInt64(Int32.max), (deadline - now + 999_999) / 1_000_000))
            let r = poll(&p, 1, ms)
            if r > 0 { return }
            if r < 0 && errno != EINTR { throw SystemError("poll", errno: errno) }
        }
    }
}
