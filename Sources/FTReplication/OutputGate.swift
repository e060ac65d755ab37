import FTStack

/// The output rule of a protected primary:
///
///     A frame the replica produced is released (written to the TAP) only
///     after the backup acknowledged the log entry that produced it.
///
/// The backup then holds every entry behind every frame the clients have
/// seen, so if the primary dies the backup can replay the same state and
/// take over without contradicting anything already on the wire.
///
/// The gate keeps one record per log entry streamed to the backup, in log
/// order: its index, its encoded size, the local time it was logged (for
/// the ack lease) and the frames it produced that are held.
/// `acknowledge(through:)` moves the acknowledged index, `leaseExpired`
/// judges the ack lease, and `nextReleasable` hands out held frames of
/// acknowledged entries only, oldest first: that is the rule. An
/// acknowledged record leaves the backpressure numbers at once and the
/// queue once its frames are released (normally by the same
/// acknowledgement; not when the lease expired or a fault hook crashed the
/// node midway). `ReplicationCore.acknowledge`, at the end of this file,
/// drives the three in that order.
///
/// While syncing (a joining backup catching up), or under the
/// `releaseWithoutAck` sabotage, entries are recorded without frames:
/// output is released at once, but the lag still counts.
struct OutputGate {
    /// One entry streamed and not yet fully done with.
    struct Entry {
        let index: UInt64
        /// `LogEntry.encodedSize`, counted in `lagBytes` until acknowledged.
        let bytes: Int
        /// Local time the entry was logged (the start of its ack lease).
        let loggedAt: Nanos
        /// Frames the entry produced, held until it is acknowledged.
        let frames: [OutputFrame]
        /// How many of `frames` were released (a fault hook may stop a release run midway).
        var released = 0
    }

    private var queue = FIFO<Entry>()
    /// Highest index the follower acknowledged (never above the applied index).
    private(set) var ackedIndex: UInt64 = 0
    /// Entries sent to the follower and not yet acknowledged, and their encoded bytes.
    private(set) var lagEntries = 0
    private(set) var lagBytes = 0
    /// Frames produced and held by the output rule.
    private(set) var heldFrames = 0

    let failoverTimeout: Nanos
    let maxLagEntries: Int
    let maxLagBytes: Int

    init(config: ReplicationConfig) {
        failoverTimeout = config.failoverTimeout
        maxLagEntries = config.maxLagEntries
        maxLagBytes = config.maxLagBytes
    }

    /// Backpressure: the leader may take more input only while both lags are under their bounds.
    var admitsInput: Bool { lagEntries < maxLagEntries && lagBytes < maxLagBytes }

    /// Entry `index` was logged at local time `now` and streamed to the
    /// follower; `held` are the frames it produced that must wait for its
    /// acknowledgement (empty when they were released at once).
    mutating func streamed(index: UInt64, bytes: Int, now: Nanos, held: [OutputFrame]) {
        queue.append(Entry(index: index, bytes: bytes, loggedAt: now, frames: held))
        lagEntries += 1
        lagBytes += bytes
        heldFrames += held.count
    }

    /// The follower acknowledged everything up to `index` (already capped
    /// at the applied index). Returns the local time the newest newly
    /// acknowledged entry was logged, nil if none was newly acknowledged.
    mutating func acknowledge(through index: UInt64) -> Nanos? {
        let before = ackedIndex
        ackedIndex = index
        var loggedAt: Nanos? = nil
        let all = queue.all
        var i = all.startIndex
        // Entries up to `before` were counted out of the lag already (they
        // stay only while their frames are held).
        while i < all.endIndex, all[i].index <= before { i += 1 }
        while i < all.endIndex, all[i].index <= ackedIndex {
            lagEntries -= 1
            lagBytes -= all[i].bytes
            loggedAt = all[i].loggedAt
            i += 1
        }
        while let e = queue.first, e.index <= ackedIndex, e.released == e.frames.count { _ = queue.popFirst() }
        return loggedAt
    }

    /// The ack lease: the follower received an entry no earlier than we
    /// logged it, so it cannot take over (by silence) before that time plus
    /// failoverTimeout. An acknowledgement arriving later than
    /// failoverTimeout - failoverTimeout/64 after the entry was logged (it
    /// sat in our socket buffer while this process was paused, or was
    /// delayed) may come from a follower that is live by now: releasing
    /// would put output on the wire after it. Returns how late it is, or nil.
    func leaseExpired(loggedAt: Nanos, now: Nanos) -> Nanos? {
        let elapsed = since(loggedAt, now)
        return elapsed >= failoverTimeout - failoverTimeout / 64 ? elapsed : nil
    }

    /// The output rule: the next held frame whose entry is acknowledged,
    /// oldest first, or nil. The caller releases it.
    mutating func nextReleasable() -> OutputFrame? {
        while var e = queue.first, e.index <= ackedIndex {
            guard e.released < e.frames.count else { _ = queue.popFirst(); continue }
            let f = e.frames[e.released]
            e.released += 1
            heldFrames -= 1
            if e.released == e.frames.count { _ = queue.popFirst() } else { queue.replaceFirst(e) }
            return f
        }
        return nil
    }

    /// Gives up the rule (the follower is gone and this node claimed the
    /// epoch to go on alone): every held frame, oldest first, and forgets
    /// all entries.
    mutating func unholdAll() -> [OutputFrame] {
        var out: [OutputFrame] = []
        out.reserveCapacity(heldFrames)
        for e in queue.all { out += e.frames[e.released...] }
        forgetEntries()
        return out
    }

    /// Drops every held frame unreleased (this node lost the epoch); the
    /// unacknowledged entries stay counted.
    mutating func discardHeld() -> Int {
        let n = heldFrames
        var kept = FIFO<Entry>()
        for e in queue.all where e.index > ackedIndex {
            kept.append(Entry(index: e.index, bytes: e.bytes, loggedAt: e.loggedAt, frames: []))
        }
        queue = kept
        heldFrames = 0
        return n
    }

    /// Forgets the streamed entries (no follower to acknowledge them, or a
    /// new stream starts); only called when no frame is held.
    mutating func forgetEntries() {
        queue.removeAll()
        lagEntries = 0
        lagBytes = 0
        heldFrames = 0
    }

    /// A new follower holds everything up to `index`: streaming restarts there.
    mutating func restart(ackedIndex index: UInt64) {
        forgetEntries()
        ackedIndex = index
    }
}

// The core's side of the rule: acknowledgements in, released frames out.
extension ReplicationCore {
    /// Writes a frame to the TAP. False when a fault hook crashed the node
    /// (before or right after the write).
    @discardableResult
    func release(_ f: OutputFrame, _ a: inout [Action]) -> Bool {
        if let why = faults.beforeReleaseCrash(f.frame) { a.append(.crash(why)); return false }
        a.append(.emit(f))
        if let why = faults.afterReleaseCrash(f.frame) { a.append(.crash(why)); return false }
        return true
    }

    /// The follower acknowledged entries up to `index`: release what the
    /// output rule held for them (see `OutputGate`).
    func acknowledge(_ index: UInt64, now: Nanos, _ a: inout [Action]) {
        if index > gate.ackedIndex {
            let loggedAt = gate.acknowledge(through: min(index, replica.appliedIndex))
            if protectsOutput, let t = loggedAt, let late = gate.leaseExpired(loggedAt: t, now: now) {
                peerFailed("acknowledgement of entry \(ackedIndex) arrived \(Double(late) / 1e6) ms after it was logged", now: now, &a)
                return
            }
            while let f = gate.nextReleasable() {
                guard release(f, &a) else { return }
            }
        }
        if mode == .syncing && index >= replica.appliedIndex { backupCaughtUp(now: now, &a) }
        if mode == .handingOver { tryHandover(now: now, &a) }
    }
}
