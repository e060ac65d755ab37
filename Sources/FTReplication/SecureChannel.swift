import Crypto
import FTWire

// The log channel's security layer, sans I/O: bytes from the socket in,
// bytes for the socket and authenticated plaintext out. `NodeDriver` runs one
// per connection between the socket and `ReplicationCore`, which sees only
// plaintext that passed authentication (and `peerUp` only once the peer
// proved it holds the pair's secret).
//
// Every frame has the log protocol's 8-byte header (magic "FT", version 2,
// type, u32 length), so a node of another version is told at once.
//
// Handshake (I: the node that connected, R: the node that accepted):
//   1. I → R  hello  (0x40): side 0, nonce_I (32 random bytes)     [sent on connect]
//   2. R → I  hello  (0x40): side 1, nonce_R (32 random bytes)     [sent on accept]
//   3. I → R  proof  (0x41): node_I, role_I, HMAC(auth, "ftap proof initiator" ‖ th ‖ node_I ‖ role_I)
//   4. R → I  proof  (0x41): node_R, role_R, HMAC(auth, "ftap proof responder" ‖ th ‖ mac_I ‖ node_R ‖ role_R)
// th = SHA-256(frame 1 ‖ frame 2): both fresh nonces and the protocol version
// (in each header). R proves nothing to a node that has not proved itself
// first, so a stranger learns only a random nonce (and that an ftap of this
// version listens: the hello on accept also answers the backup's probe of
// the primary's port at once, see PeerProbe.swift). A proof is never valid
// for the other side (labels) nor on another connection (nonces).
// Keys: per connection and direction, HKDF(enc, salt th, direction label).
//
// Records (0x42), after the handshake: AES-256-GCM of a run of log
// protocol messages (protocol version 3; version 2 used ChaCha20-Poly1305,
// which cost the primary 32 % of its CPU in a replicated bulk transfer
// against 6.5 % for AES-GCM on this machine's VAES: issue 14); nonce = 4 zero bytes ‖ u64 count of records sent before
// in that direction; associated data = the record's header. A replayed,
// reordered, dropped, truncated or injected record fails to open, and the
// connection is closed.
//
// Refusal (0x43): a clear-text reason sent before closing during the
// handshake, for the other operator's log; never trusted for anything else.

/// Who a node is in the handshake (bound into its proof).
public struct PeerIdentity: Equatable, Sendable {
    public var node: String
    public var role: String
    public init(node: String, role: String) { self.node = node; self.role = role }
}

/// The connection must be closed. `reason` is for our log; `notice` is sent
/// to the peer first (empty: nothing to send).
public struct ChannelFailure: Error, CustomStringConvertible, Equatable {
    public var reason: String
    public var notice: [UInt8]
    public var description: String { reason }
}

public struct SecureChannel {
    public enum Side: UInt8, Sendable { case initiator = 0, responder = 1 }
    enum Phase { case hello, proof, established }

    static let helloType: UInt8 = 0x40
    static let proofType: UInt8 = 0x41
    static let recordType: UInt8 = 0x42
    static let refusalType: UInt8 = 0x43
    public static let nonceBytes = 32
    static let macBytes = 32
    static let tagBytes = 16
    /// No handshake frame is longer (two short strings and a MAC).
    static let maxHandshakeFrame = 600
    /// One record holds one log protocol message: at most its payload limit plus headers.
    public static let maxRecord = ChannelCodec.maxPayload + 2 * ChannelCodec.headerSize + tagBytes

    public let side: Side
    let keys: ChannelKeys
    let local: PeerIdentity
    let nonce: [UInt8]
    var phase = Phase.hello
    var helloFrames: [UInt8] = []
    var transcriptHash: [UInt8] = []
    var initiatorMAC: [UInt8] = []
    public private(set) var peer: PeerIdentity? = nil
    var sendKey: SymmetricKey? = nil
    var receiveKey: SymmetricKey? = nil
    var sent: UInt64 = 0
    var received: UInt64 = 0
    var buffer: [UInt8] = []
    var head = 0
    var nonceBytes = [UInt8](repeating: 0, count: 12)

    /// `nonce`: 32 fresh random bytes (from `NodeIO.randomBytes`).
    public init(side: Side, keys: ChannelKeys, local: PeerIdentity, nonce: [UInt8]) {
        precondition(nonce.count == SecureChannel.nonceBytes)
        self.side = side; self.keys = keys; self.local = local; self.nonce = nonce
    }

    public var isEstablished: Bool { phase == .established }

    /// The first bytes to send, on connect or accept: this side's hello.
    public mutating func start() -> [UInt8] {
        let f = hello()
        helloFrames = f
        return f
    }

    /// Feeds bytes read from the socket. Appends handshake bytes to send to
    /// `send` and authenticated plaintext to `plain`. Returns true when this
    /// call completed the handshake (`peer` is then set). Throws when the
    /// connection must be closed.
    public mutating func receive(_ bytes: ArraySlice<UInt8>, send: inout [UInt8], plain: inout [UInt8]) throws -> Bool {
        if head == buffer.count { buffer.removeAll(keepingCapacity: true); head = 0 }
        buffer.append(contentsOf: bytes)
        var completed = false
        while let (type, start, end) = try nextFrame() {
            switch phase {
            case .established:
                guard type == SecureChannel.recordType else {
                    throw fail("the peer sent handshake message type \(type) after authenticating")
                }
                try open(start, end, into: &plain)
            case .hello, .proof:
                completed = try handshake(type: type, start: start, end: end, send: &send) || completed
            }
        }
        if head > 1 << 16 { buffer.removeFirst(head); head = 0 }
        return completed
    }

    /// Seals one run of log protocol messages into a record.
    public mutating func seal(_ plaintext: [UInt8], into out: inout [UInt8]) {
        precondition(phase == .established, "seal before the handshake completed")
        let start = out.count
        out.appendBE16(ChannelCodec.magic); out.append(ChannelCodec.version); out.append(SecureChannel.recordType)
        out.appendBE32(UInt32(plaintext.count + SecureChannel.tagBytes))
        let box = try! AES.GCM.seal(plaintext, using: sendKey!, nonce: nonce(sent), authenticating: out[start...])
        sent += 1
        // Copied as raw bytes (appending a Data element by element is slow).
        box.ciphertext.withUnsafeBytes { out.append(contentsOf: $0) }
        box.tag.withUnsafeBytes { out.append(contentsOf: $0) }
    }

    // MARK: - Frames

    static func header(_ type: UInt8, _ length: Int) -> [UInt8] {
        var h: [UInt8] = []
        h.reserveCapacity(ChannelCodec.headerSize)
        h.appendBE16(ChannelCodec.magic); h.append(ChannelCodec.version); h.append(type)
        h.appendBE32(UInt32(length))
        return h
    }

    static func frame(_ type: UInt8, _ payload: [UInt8]) -> [UInt8] { header(type, payload.count) + payload }

    /// The record nonce: 4 zero bytes, then the record's number in its direction.
    mutating func nonce(_ counter: UInt64) -> AES.GCM.Nonce {
        nonceBytes.writeBE32(UInt32(truncatingIfNeeded: counter >> 32), at: 4)
        nonceBytes.writeBE32(UInt32(truncatingIfNeeded: counter), at: 8)
        return try! AES.GCM.Nonce(data: nonceBytes)
    }

    /// The next complete frame (type, payload range), nil if more bytes are needed.
    mutating func nextFrame() throws -> (UInt8, Int, Int)? {
        guard buffer.count - head >= ChannelCodec.headerSize else { return nil }
        let magic = buffer.readBE16(head)
        guard magic == ChannelCodec.magic else {
            throw fail("the peer is not speaking the ftap log protocol (magic 0x\(String(magic, radix: 16)))")
        }
        let version = buffer[head + 2]
        guard version == ChannelCodec.version else {
            let why = "peer speaks log protocol version \(version); this ftap speaks version \(ChannelCodec.version): run the same ftap release on both nodes"
            throw ChannelFailure(reason: why, notice: SecureChannel.refusalForVersion(version, why))
        }
        let type = buffer[head + 3]
        let len = Int(buffer.readBE32(head + 4))
        let limit = phase == .established ? SecureChannel.maxRecord : SecureChannel.maxHandshakeFrame
        guard len <= limit else { throw fail("the peer sent a \(len)-byte message of type \(type) (limit \(limit) now)") }
        let start = head + ChannelCodec.headerSize
        guard buffer.count - start >= len else { return nil }
        head = start + len
        return (type, start, start + len)
    }

    /// What an older node understands as a refusal: its own `reject` message
    /// (type 3, one string), framed with its version.
    static func refusalForVersion(_ version: UInt8, _ why: String) -> [UInt8] {
        guard version == 1 else { return [] }
        var w = ByteWriter()
        w.string(why)
        var h: [UInt8] = []
        h.appendBE16(ChannelCodec.magic); h.append(1); h.append(3); h.appendBE32(UInt32(w.bytes.count))
        return h + w.bytes
    }

    func fail(_ reason: String, tell: String? = nil) -> ChannelFailure {
        var notice: [UInt8] = []
        if let t = tell {
            var w = ByteWriter()
            w.string(t)
            notice = SecureChannel.frame(SecureChannel.refusalType, w.bytes)
        }
        return ChannelFailure(reason: reason, notice: notice)
    }

    // MARK: - Handshake

    func hello() -> [UInt8] { SecureChannel.frame(SecureChannel.helloType, [side.rawValue] + nonce) }

    func proof(label: String, extra: [UInt8]) -> (frame: [UInt8], mac: [UInt8]) {
        var w = ByteWriter()
        w.string(local.node); w.string(local.role)
        let mac = SecureChannel.mac(keys.auth, label, transcriptHash + extra + w.bytes)
        w.bytes.append(contentsOf: mac)
        return (SecureChannel.frame(SecureChannel.proofType, w.bytes), mac)
    }

    static func mac(_ key: SymmetricKey, _ label: String, _ data: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(label.utf8) + data, using: key))
    }

    mutating func handshake(type: UInt8, start: Int, end: Int, send: inout [UInt8]) throws -> Bool {
        let payload = Array(buffer[start..<end])
        let whole = Array(buffer[(start - ChannelCodec.headerSize)..<end])
        if type == SecureChannel.refusalType {
            var r = ByteReader(payload)
            let text = (try? r.string()) ?? "(unreadable)"
            throw fail("the peer refused the connection: \(SecureChannel.printable(text))")
        }
        switch (phase, type) {
        case (.hello, SecureChannel.helloType):
            let expected: Side = side == .initiator ? .responder : .initiator
            guard payload.count == 1 + SecureChannel.nonceBytes, payload[0] == expected.rawValue else {
                throw fail("malformed handshake hello from the peer")
            }
            guard Array(payload[1...]) != nonce else { throw fail("the peer echoed this node's own handshake nonce") }
            guard !helloFrames.isEmpty else { throw fail("handshake message before this side started") }
            // The transcript in one order on both sides: the initiator's hello first.
            helloFrames = side == .initiator ? helloFrames + whole : whole + helloFrames
            transcriptHash = Array(SHA256.hash(data: helloFrames))
            phase = .proof
            if side == .initiator {
                let p = proof(label: "ftap proof initiator", extra: [])
                initiatorMAC = p.mac
                send.append(contentsOf: p.frame)
            }
            return false
        case (.proof, SecureChannel.proofType):
            var r = ByteReader(payload)
            guard let node = try? r.string(), let role = try? r.string(), r.remaining == SecureChannel.macBytes else {
                throw fail("malformed handshake proof from the peer")
            }
            let mac = Array(payload[(payload.count - SecureChannel.macBytes)...])
            var w = ByteWriter()
            w.string(node); w.string(role)
            let label = side == .responder ? "ftap proof initiator" : "ftap proof responder"
            let extra = side == .responder ? [] : initiatorMAC
            let signed = Array(label.utf8) + transcriptHash + extra + w.bytes
            guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: signed, using: keys.auth) else {
                let who = "\(SecureChannel.printable(node)) (\(SecureChannel.printable(role)))"
                throw fail("peer \(who) failed authentication: it does not hold this pair's secret (check --secret-file on both nodes)",
                           tell: side == .responder ? "authentication failed: the two nodes do not share the same secret (check --secret-file on both nodes)" : nil)
            }
            if side == .responder {
                initiatorMAC = mac
                send.append(contentsOf: proof(label: "ftap proof responder", extra: mac).frame)
            }
            let k = keys.session(transcript: transcriptHash)
            sendKey = side == .initiator ? k.initiatorToResponder : k.responderToInitiator
            receiveKey = side == .initiator ? k.responderToInitiator : k.initiatorToResponder
            peer = PeerIdentity(node: node, role: role)
            phase = .established
            return true
        default:
            throw fail("unexpected handshake message type \(type) from the peer")
        }
    }

    // MARK: - Records

    mutating func open(_ start: Int, _ end: Int, into plain: inout [UInt8]) throws {
        guard end - start >= SecureChannel.tagBytes else { throw fail("a record from the peer is too short") }
        let header = buffer[(start - ChannelCodec.headerSize)..<start]
        do {
            let box = try AES.GCM.SealedBox(nonce: nonce(received),
                                               ciphertext: buffer[start..<(end - SecureChannel.tagBytes)],
                                               tag: buffer[(end - SecureChannel.tagBytes)..<end])
            try AES.GCM.open(box, using: receiveKey!, authenticating: header).withUnsafeBytes { plain.append(contentsOf: $0) }
        } catch {
            throw fail("record \(received) from the peer failed authentication (forged, replayed, reordered or corrupted)")
        }
        received += 1
    }

    /// A peer's string, safe for one log line.
    static func printable(_ s: String) -> String {
        String(s.unicodeScalars.prefix(200).map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
    }
}
