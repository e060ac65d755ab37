import FTStack
import FTWire

/// A snapshot a joining backup is receiving (the data of `.joining`).
struct SnapshotDownload {
    let index: UInt64
    let epoch: UInt64
    let total: Int
    let digest: UInt64
    var bytes: [UInt8] = []
}

// Join by state transfer: a fresh backup joins a primary that serves alone.
// The primary streams a snapshot taken between two entries, then every later
// entry on the same channel, and serves alone (`syncing`: output released at
// once) until the backup acknowledged its applied index; then it confirms
// the backup is in sync and is `protected` again.
extension ReplicationCore {
    // MARK: - Leader side

    /// Takes a snapshot between two entries and streams it in checksummed
    /// chunks; every later entry follows it on the same channel.
    func startStateTransfer(to node: String, now: Nanos, _ a: inout [Action]) {
        send(.welcome(epoch: epoch, snapshot: true), now: now, &a)
        let bytes = replica.snapshot()
        let index = replica.appliedIndex
        send(.snapshotBegin(index: index, epoch: epoch, totalBytes: bytes.count, digest: Replica.digest(ofSnapshot: bytes)), now: now, &a)
        let corrupt = faults.corruptSnapshot()
        var offset = 0
        let step = max(1024, config.snapshotChunkBytes)
        while offset < bytes.count || offset == 0 {
            let end = min(bytes.count, offset + step)
            var chunk = Array(bytes[offset..<end])
            let sum = SipHash24.hash(k0: UInt64(offset), k1: 0x736e_6170, chunk)
            if corrupt && offset == 0 && !chunk.isEmpty {
                chunk[chunk.count / 2] ^= 0x40
                a.append(.log(.warning, "fault hook \(faults.plan!): corrupting the first snapshot chunk"))
            }
            send(.snapshotChunk(offset: UInt64(offset), data: chunk, checksum: sum), now: now, &a)
            offset = end
            if bytes.isEmpty { break }
        }
        send(.snapshotEnd, now: now, &a)
        a.append(.snapshotSent(index: index, bytes: bytes.count))
        state = .syncing
        gate.restart(ackedIndex: index)
        joinsServed += 1
        a.append(.log(.notice, "backup \(node) joining: snapshot at log index \(index) (\(bytes.count) bytes) sent; serving alone until it catches up"))
    }

    /// The joining backup acknowledged everything applied: protected again.
    func backupCaughtUp(now: Nanos, _ a: inout [Action]) {
        state = .protected
        lastDigestAt = now
        // Tell the backup: from now on it may take over (it holds every
        // entry whose output was released while syncing).
        send(.welcome(epoch: epoch, snapshot: false), now: now, &a)
        garp.until = min(garp.until, now + config.failoverTimeout - config.failoverTimeout / 64)
        a.append(.log(.notice, "backup caught up at log index \(ackedIndex): protected again (epoch \(epoch))"))
        evaluateHealth(now: now, &a)
    }

    func dropJoiningBackup(_ why: String, _ a: inout [Action]) {
        state = .alone
        gate.forgetEntries()  // syncing holds no frames
        sendBatch.removeAll()
        sendBatchBytes = 0
        a.append(.log(.warning, "joining backup lost (\(why)); serving alone"))
    }

    // MARK: - Follower side

    func snapshotBegan(index: UInt64, epoch e: UInt64, total: Int, digest: UInt64) {
        guard case .joining = state else { return }
        var d = SnapshotDownload(index: index, epoch: e, total: total, digest: digest)
        d.bytes.reserveCapacity(min(total, 64 << 20))  // grows with the chunks that really arrive
        state = .joining(d)
    }

    func snapshotChunk(offset: UInt64, data: [UInt8], checksum: UInt64, now: Nanos, _ a: inout [Action]) {
        guard case .joining(var d?) = state else { return }
        guard offset == UInt64(d.bytes.count), d.bytes.count + data.count <= d.total,
              SipHash24.hash(k0: offset, k1: 0x736e_6170, data) == checksum else {
            return snapshotFailed("chunk at offset \(offset) failed its checksum or is out of place", now: now, &a)
        }
        state = .joining(nil)  // drop the state's reference so the append below does not copy the bytes
        d.bytes += data
        state = .joining(d)
    }

    func snapshotEnded(now: Nanos, _ a: inout [Action]) {
        guard case .joining(let s?) = state else { return }
        guard s.bytes.count == s.total else { return snapshotFailed("snapshot ended after \(s.bytes.count) of \(s.total) bytes", now: now, &a) }
        do { try replica.restore(s.bytes) } catch {
            return snapshotFailed("snapshot rejected: \(error)", now: now, &a)
        }
        guard replica.appliedIndex == s.index, replica.digest == s.digest else {
            return snapshotFailed("restored state does not match the primary's digest", now: now, &a)
        }
        epoch = max(epoch, s.epoch)
        standby.reset()  // frames before the snapshot cannot be matched against the log
        state = .backup(takeoverAt: nil)
        ackDue = true
        a.append(.log(.notice, "restored snapshot at log index \(s.index) (\(s.total) bytes, digest \(hex(s.digest))); following the primary"))
    }

    func snapshotFailed(_ why: String, now: Nanos, _ a: inout [Action]) {
        state = .waitingForPeer
        a.append(.log(.error, "state transfer failed: \(why); closing the channel and retrying the join"))
        a.append(.closePeer(reason: "state transfer failed"))
        peerConnected = false
    }
}
