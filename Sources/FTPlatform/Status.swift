import FTReplication
import FTStack

/// `/status`: the node's state as one JSON object. Tests and `ftap status`
/// read this rather than log text, so every fact a test waits for belongs here.
extension Node {
    func statusJSON() -> String {
        let s = core.replica.stack
        var fields: [(String, String)] = [
            ("node", jsonString(core.config.nodeName)),
            ("role", jsonString(core.role.rawValue)),
            ("configured_role", jsonString(core.config.role.rawValue)),
            ("mode", jsonString("\(core.mode)")),
            ("live", core.isLive ? "true" : "false"),
            ("epoch", "\(core.epoch)"),
            ("applied_index", "\(core.replica.appliedIndex)"),
            ("acked_index", "\(core.ackedIndex)"),
            ("lag_entries", "\(core.lagEntries)"),
            ("lag_bytes", "\(core.lagBytes)"),
            ("held_frames", "\(core.heldFrames)"),
            ("peer_connected", core.isPeerConnected ? "true" : "false"),
            // A backup may take over only once the primary confirmed it holds
            // every entry whose output was released (set at once by a plain
            // join, after a state transfer when the primary leaves syncing).
            ("in_sync", core.inSync ? "true" : "false"),
            ("diverged", core.diverged ? "true" : "false"),
            ("digest_checks", "\(core.digestChecks)"),
            // A protected primary whose backup reported a divergence is not protected.
            ("protected", core.mode == .protected && !core.backupDiverged ? "true" : "false"),
            ("backup_diverged", core.backupDiverged ? "true" : "false"),
            ("uptime_seconds", "\(Double(monotonicNanos() - startedAt) / 1e9)"),
            ("tcp_connections", "\(s.connectionCount)"),
            ("failovers", "\(core.takeovers)"),
            ("switchovers", "\(core.switchovers)"),
            ("divergences", "\(core.divergences)"),
            // Snapshots this node sent to joining backups (one per attempt).
            ("joins_served", "\(core.joinsServed)"),
            ("forwarded_frames", "\(core.forwardedFrames)"),
            ("discarded_while_not_live", "\(core.discardedWhileNotLive)"),
            ("digest", jsonString(String(core.replica.digest, radix: 16))),
            ("frames_emitted", "\(framesEmitted)"),
            ("tap_offloads", jsonString(tap?.offloadDescription ?? "closed")),
            ("tap_super_frames_read", "\(tap?.superFramesRead ?? 0)"),
            ("tap_super_frames_written", "\(tap?.superFramesWritten ?? 0)"),
            ("tap_super_frames_split", "\(tap?.superFramesSplit ?? 0)"),
            ("frames_suppressed", "\(shadowFrames)"),
            ("frames_ignored", "\(core.ignoredFrames)"),
            ("healthy", core.healthy ? "true" : "false"),
            ("health_reason", jsonString(core.healthReason)),
            ("peer_healthy", core.peerHealthy.map { $0 ? "true" : "false" } ?? "null"),
            ("arbiter_unavailable", "\(core.arbiterUnavailable)"),
            // The standby buffer (StandbyBuffer.swift): whether this node, as
            // standby, receives copies of client traffic (switch mirroring),
            // what it holds and what it applied at go-live.
            ("standby_receiving_client_frames", core.standby.receivingClientFrames(now: monotonicNanos()) ? "true" : "false"),
            ("standby_client_frames", "\(core.standby.clientFrames)"),
            ("standby_buffer_frames", "\(core.standby.count)"),
            ("standby_buffer_bytes", "\(core.standby.bytes)"),
            ("standby_buffer_max_bytes", "\(core.standby.isOn ? core.standby.maxBytes : 0)"),
            ("standby_matched", "\(core.standby.matched)"),
            ("standby_unlogged", "\(core.standby.unlogged)"),
            ("standby_expired", "\(core.standby.expired)"),
            ("standby_applied", "\(core.standbyApplied)"),
            ("standby_skipped_old", "\(core.standbySkippedOld)"),
            // SYN admission under a flood (SynAdmission.swift): SYNs dropped before logging, and admitted by rule.
            ("syn_shed", "\(driver.synAdmission.shed)"),
            ("syn_admitted_known", "\(driver.synAdmission.admittedKnown)"),
            ("syn_admitted_retransmitted", "\(driver.synAdmission.admittedRetransmitted)"),
            ("syn_admitted_new", "\(driver.synAdmission.admittedNew)"),
            // Role and mode changes (RoleEvents.swift; the --notify-script events).
            ("last_event", lastChange.map { jsonString($0.event.rawValue) } ?? "null"),
            ("role_changes", "\(roleChanges)"),
            ("hook_runs", "\(hooks?.runs ?? 0)"),
            ("hook_failures", "\(hooks?.failures ?? 0)"),
            ("systemd_ready", notifier.ready ? "true" : "false"),
            // Startup.swift: why a node follows whatever its role says (null: as configured).
            ("startup_note", options.startupNote.map(jsonString) ?? "null"),
            ("waiting_reason", core.mode == .waitingForPeer ? options.startupNote.map(jsonString) ?? "null" : "null"),
        ]
        fields.append(("stack", jsonObject(s.counters.all.map { ($0.0, "\($0.1)") })))
        return jsonObject(fields) + "\n"
    }
}

/// `/connections`: every TCP connection of the appliance, in connection-key
/// order, with its sequence, window, congestion and path-model state: what
/// `ss -ti` shows for kernel sockets. Sizes are bytes, times microseconds,
/// rates bytes per second. Only the live node's copy is the one clients see;
/// a backup shows the same state as of the entries it applied.
extension Node {
    func connectionsJSON() -> String {
        let rows = core.replica.stack.connections.map { c -> String in
            jsonObject([
                ("id", "\(c.id)"),
                ("remote", jsonString("\(c.key.remote)")),
                ("local_port", "\(c.key.localPort)"),
                ("state", jsonString("\(c.state)")),
                ("snd_una", "\(c.sndUna)"), ("snd_nxt", "\(c.sndNxt)"), ("rcv_nxt", "\(c.rcvNxt)"),
                ("send_queued", "\(c.sendQueued)"), ("receive_queued", "\(c.receiveQueued)"),
                ("peer_window", "\(c.peerWindow)"),
                ("outstanding", "\(c.outstanding)"), ("sacked", "\(c.sackedBytes)"),
                ("out_of_order_segments", "\(c.outOfOrderSegments)"),
                ("cwnd", "\(c.cwnd)"), ("ssthresh", "\(c.ssthresh)"),
                ("in_recovery", c.inRecovery ? "true" : "false"),
                ("rto_us", "\(c.rto / 1000)"), ("srtt_us", "\(c.srtt / 1000)"), ("min_rtt_us", "\(c.minRTT / 1000)"),
                ("delivery_rate", "\(c.deliveryRate)"), ("bdp", "\(c.bdp)"),
            ])
        }
        return jsonObject([("node", jsonString(core.config.nodeName)), ("live", "\(core.isLive)"),
                           ("connections", "[" + rows.joined(separator: ", ") + "]")]) + "\n"
    }
}
