import FTWire

/// A remote endpoint as the stack sees it.
public struct Endpoint: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var ip: IPv4Address
    public var port: UInt16
    public init(ip: IPv4Address, port: UInt16) { self.ip = ip; self.port = port }
    public static func < (a: Endpoint, b: Endpoint) -> Bool { (a.ip, a.port) < (b.ip, b.port) }
    public var description: String { "\(ip):\(port)" }
}

/// Identifies one TCP connection for its whole life. Assigned by the stack
/// from a counter, so both replicas assign the same ids.
public typealias ConnectionID = UInt64

/// What a stream service asks the stack to do after a callback.
public struct StreamIO {
    /// Bytes to append to the connection's send buffer.
    public var output: [UInt8] = []
    /// Send FIN once everything queued has been sent (half-close our side).
    public var close = false
    /// Reset the connection now (RST), discarding queued data.
    public var abort = false
    public init() {}
}

/// A TCP service: a pure state machine driven by the stack. Implementations
/// must be deterministic (no clock, no randomness, no Dictionary iteration
/// reaching output) and serialize their full state in `encodeState`.
public protocol StreamService: AnyObject {
    /// Short name, e.g. "counter".
    var kind: String { get }
    /// A connection reached ESTABLISHED.
    func opened(_ id: ConnectionID, remote: Endpoint, io: inout StreamIO)
    /// In-order bytes arrived. Return how many were consumed; the rest stay in
    /// the receive buffer (shrinking the advertised window) and are offered
    /// again when `sendSpace` (free bytes in the send buffer) grows.
    func receive(_ id: ConnectionID, _ data: ArraySlice<UInt8>, sendSpace: Int, io: inout StreamIO) -> Int
    /// The peer sent FIN and every byte before it was consumed.
    func peerClosed(_ id: ConnectionID, io: inout StreamIO)
    /// The connection is gone (closed, reset or timed out); free its state.
    func closed(_ id: ConnectionID)
    /// Appends the service's full state, in a deterministic order.
    func encodeState(into w: inout ByteWriter)
    /// Replaces the service's state with what `encodeState` wrote.
    func decodeState(from r: inout ByteReader) throws
}

/// A UDP service: one datagram in, at most one datagram out.
public protocol DatagramService: AnyObject {
    var kind: String { get }
    func receive(from: Endpoint, _ payload: ArraySlice<UInt8>) -> [UInt8]?
    func encodeState(into w: inout ByteWriter)
    func decodeState(from r: inout ByteReader) throws
}
