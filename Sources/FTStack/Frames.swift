import FTWire

/// The frames one stack input produced, in order. Most are ordinary
/// Ethernet frames with complete checksums. With `StackConfig.tsoMaxBytes`
/// set, TCP data may leave as a super-segment: one frame carrying several
/// segments' payload, with a partial TCP checksum (the pseudo-header sum,
/// as virtio-net's NEEDS_CSUM has it), to be cut into segments of
/// `segmentSize(at:)` payload bytes by the kernel (TSO) or by
/// `TCPSegmentation.split`. Which frames are super-segments is decided by
/// the stack alone, from replicated state, so both replicas agree.
public struct Frames: RandomAccessCollection, ExpressibleByArrayLiteral, Sendable, Equatable {
    public private(set) var frames: [[UInt8]]
    /// (index into `frames`, segment size) of every super-segment, ascending.
    private var superSegments: [(index: Int, size: Int)] = []

    public init() { frames = [] }
    public init(arrayLiteral elements: [UInt8]...) { frames = elements }
    public init(_ frames: [[UInt8]]) { self.frames = frames }

    public var startIndex: Int { 0 }
    public var endIndex: Int { frames.count }
    public subscript(i: Int) -> [UInt8] { frames[i] }

    public mutating func append(_ frame: [UInt8]) { frames.append(frame) }

    /// Appends a super-segment whose payload is cut into `segmentSize`-byte segments.
    public mutating func append(_ frame: [UInt8], segmentSize: Int) {
        superSegments.append((frames.count, segmentSize))
        frames.append(frame)
    }

    public mutating func removeAll() { frames.removeAll(); superSegments.removeAll() }

    /// The segment size of frame `i` if it is a super-segment, else 0.
    public func segmentSize(at i: Int) -> Int {
        for s in superSegments where s.index == i { return s.size }
        return 0
    }

    /// Every frame as it appears on the wire: super-segments cut into
    /// ordinary frames with complete checksums (tests and tools).
    public var wireFrames: [[UInt8]] {
        if superSegments.isEmpty { return frames }
        var out: [[UInt8]] = []
        for (i, f) in frames.enumerated() {
            let s = segmentSize(at: i)
            if s > 0 { out += TCPSegmentation.split(f, segmentSize: s) } else { out.append(f) }
        }
        return out
    }

    public static func == (a: Frames, b: Frames) -> Bool {
        a.frames == b.frames && a.superSegments.elementsEqual(b.superSegments, by: { $0 == $1 })
    }
}
