import Crypto

/// The keys a node derives from the one secret both nodes of a pair share
/// (`--secret-file`, formerly `--isn-key-file`). HKDF-SHA256 separates them,
/// so none of them reveals the secret or another one:
///
///   prk  = HKDF-Extract(salt "ftap key schedule 1", secret)
///   isn  = HKDF-Expand(prk, "ftap isn key", 16)                 → `StackConfig.isnKey` (two u64, big-endian)
///   auth = HKDF-Expand(prk, "ftap channel authentication", 32)  → handshake proofs (HMAC-SHA256)
///   enc  = HKDF-Expand(prk, "ftap channel encryption", 32)      → input of the per-connection keys
///
/// The ISN key feeds the replicated stack, so both nodes must derive the same
/// one: they do, from the same secret. It is also stored in recordings
/// (`ftap-record`), which is why it is derived and not the secret itself.
/// Pure and deterministic: the same secret gives the same keys.
public struct ChannelKeys {
    public let isnKey: (UInt64, UInt64)
    let auth: SymmetricKey
    let enc: SymmetricKey

    /// The smallest secret accepted, in bytes (128 bits).
    public static let minimumSecretBytes = 16

    public init(secret: [UInt8]) {
        let prk = HKDF<SHA256>.extract(inputKeyMaterial: SymmetricKey(data: secret),
                                        salt: Array("ftap key schedule 1".utf8))
        func expand(_ label: String, _ n: Int) -> SymmetricKey {
            HKDF<SHA256>.expand(pseudoRandomKey: prk, info: Array(label.utf8), outputByteCount: n)
        }
        let isn = expand("ftap isn key", 16).withUnsafeBytes { Array($0) }
        isnKey = (isn[0..<8].reduce(0) { $0 << 8 | UInt64($1) }, isn[8..<16].reduce(0) { $0 << 8 | UInt64($1) })
        auth = expand("ftap channel authentication", 32)
        enc = expand("ftap channel encryption", 32)
    }

    /// Parses a secret written as hex digits (whitespace ignored, optional
    /// 0x): at least 32 digits (128 bits), at most 128. The old 32-digit
    /// `--isn-key` is such a secret. Nil if malformed.
    public static func parseSecret(_ text: String) -> [UInt8]? {
        var t = Substring(text.filter { !$0.isWhitespace })
        if t.hasPrefix("0x") { t = t.dropFirst(2) }
        guard t.count % 2 == 0, t.count >= 2 * minimumSecretBytes, t.count <= 128 else { return nil }
        var out: [UInt8] = []
        var i = t.startIndex
        while i < t.endIndex {
            let j = t.index(i, offsetBy: 2)
            guard let b = UInt8(t[i..<j], radix: 16) else { return nil }
            out.append(b)
            i = j
        }
        return out
    }

    /// The keys of one connection, bound to its handshake transcript hash:
    /// fresh for every connection, one per direction.
    func session(transcript: [UInt8]) -> (initiatorToResponder: SymmetricKey, responderToInitiator: SymmetricKey) {
        func derive(_ label: String) -> SymmetricKey {
            HKDF<SHA256>.deriveKey(inputKeyMaterial: enc, salt: transcript, info: Array(label.utf8), outputByteCount: 32)
        }
        return (derive("ftap records initiator to responder"), derive("ftap records responder to initiator"))
    }
}
