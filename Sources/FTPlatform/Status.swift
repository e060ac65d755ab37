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
            // A protected primary whose backup reported a divergence is not protected.
            ("protected", core.mode == .protected && !core.backupDiverged ? "true" : "false"),
            ("backup_diverged", core.backupDiverged ? "true" : "false"),
            ("uptime_seconds", "\(Double(monotonicNanos() - startedAt) / 1e9)"),
            ("tcp_connections", "\(s.connectionCount)"),
            ("failovers", "\(core.takeovers)"),
            ("switchovers", "\(core.switchovers)"),
            ("divergences", "\(core.divergences)"),
            ("digest", jsonString(String(core.replica.digest, radix: 16))),
            ("frames_emitted", "\(framesEmitted)"),
            ("frames_suppressed", "\(shadowFrames)"),
            ("frames_ignored", "\(core.ignoredFrames)"),
        ]
        let counters = s.counters.all.map { "\(jsonString($0.0)): \($0.1)" }.joined(separator: ", ")
        fields.append(("stack", "{\(counters)}"))
        return "{" + fields.map { "\(jsonString($0.0)): \($0.1)" }.joined(separator: ", ") + "}\n"
    }
}
