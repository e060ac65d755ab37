import ArgumentParser
import FTPlatform
import FTReplication
import FTServices
import FTWire
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The version of ftap; the commit comes from BuildInfo.swift, generated at
/// build time by scripts/build-info.sh (see Plugins/BuildInfoPlugin).
let ftapVersion = "0.1.0"

extension Run {
    /// Every problem with the flags, all at once (an operator fixes them in one go).
    /// `files`: also read the secret and token files (their mode and content),
    /// as `ftap check-config` does; `ftap run` reads them when it starts.
    func problems(files: Bool = false) -> [String] {
        var p: [String] = []
        let r = Role(rawValue: role)
        if r == nil { p.append("--role must be solo, primary or backup, not '\(role)'") }
        var missing: [String] = []
        if tap == nil { missing.append("--tap") }
        if mac == nil { missing.append("--mac") }
        if ip == nil { missing.append("--ip") }
        if services.isEmpty { missing.append("--service") }
        if let r, r != .solo {
            if listen == nil { missing.append("--listen") }
            if peer == nil { missing.append("--peer") }
            if arbiter == nil { missing.append("--arbiter") }
            if secret == nil && secretFile == nil && isnKey == nil && isnKeyFile == nil { missing.append("--secret-file") }
        }
        if !missing.isEmpty {
            p.append("missing \(missing.joined(separator: ", "))"
                + (r.map { $0 != .solo ? " (--role \($0.rawValue) needs --listen, --peer, --arbiter and --secret-file)" : "" } ?? ""))
        }
        if let t = tap, t.isEmpty || t.utf8.count > 15 { p.append("--tap '\(t)' is not an interface name (1-15 bytes)") }
        if let mac {
            if let m = MACAddress(mac) {
                if m.isMulticast { p.append("--mac \(mac) is a multicast address; use a unicast one (first byte even)") }
            } else { p.append("--mac '\(mac)' is not a MAC address like 02:00:00:00:00:10") }
        }
        if let ip {
            if let iface = IPv4Interface(ip) {
                if !(1...31).contains(iface.prefixLength) { p.append("--ip prefix must be 1-31") }
            } else { p.append("--ip '\(ip)' is not ADDR/PREFIX like 10.0.0.100/24") }
        }
        for s in services { do { _ = try ServiceSpec.parse(s) } catch { p.append("--service: \(error)") } }
        if !(kvMaxMemoryMb > 0 && kvMaxMemoryMb <= 1 << 20 && kvMaxBulkKb > 0 && kvMaxPipelineKb >= kvMaxBulkKb
             && kvMaxPipelineKb <= 1 << 22) {
            p.append("--kv-max-memory-mb (1-1048576) and --kv-max-bulk-kb must be positive, and --kv-max-pipeline-kb (at most 4194304) at least --kv-max-bulk-kb")
        }
        if !(576...9000).contains(mtu) { p.append("--mtu must be 576-9000") }
        if Logger.Level(rawValue: logLevel) == nil {
            p.append("--log-level '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        if !(heartbeatMs > 0 && failoverTimeoutMs > heartbeatMs) { p.append("need 0 < --heartbeat-ms < --failover-timeout-ms") }
        if !(garpCount >= 0 && garpIntervalMs > 0) { p.append("--garp-count must be >= 0 and --garp-interval-ms > 0") }
        if let s = standbyBufferMs, s < 0 || s > 600_000 { p.append("--standby-buffer-ms must be 0-600000") }
        if standbyBufferKb <= 0 { p.append("--standby-buffer-kb must be positive") }
        if !(tcpIdleTimeoutS >= 0 && tcpKeepaliveS >= 0 && tcpKeepaliveIntervalS > 0 && tcpKeepaliveProbes >= 0
             && tcpZeroWindowTimeoutS >= 0 && tcpMaxPerSource >= 0) {
            p.append("--tcp-idle-timeout-s, --tcp-keepalive-s, --tcp-keepalive-probes, --tcp-zero-window-timeout-s and --tcp-max-per-source must be >= 0, --tcp-keepalive-interval-s > 0")
        }
        if tcpSynRate < 0 { p.append("--tcp-syn-rate must be >= 0 (0: no limit)") }
        if !(maxConnections > 0 && synBacklog > 0 && sendBufferKb > 0 && recvBufferKb > 0) {
            p.append("--max-connections, --syn-backlog and the buffer sizes must be positive")
        }
        if recvBufferKb > 65535 * 128 / 1024 { p.append("--recv-buffer-kb must be at most 8191") }
        if pcapMaxMb <= 0 { p.append("--pcap-max-mb must be positive") }
        if !(trackIntervalMs > 0 && trackFall > 0 && trackRise > 0) {
            p.append("--track-interval-ms, --track-fall and --track-rise must be positive")
        }
        for i in trackInterfaces where i.isEmpty || i.utf8.count > 15 {
            p.append("--track-interface '\(i)' is not an interface name (1-15 bytes)")
        }
        if notifyTimeoutMs <= 0 { p.append("--notify-timeout-ms must be positive") }
        if let s = notifyScript, access(s, X_OK) != 0 {
            p.append("--notify-script \(s): not an executable file (\(String(cString: strerror(errno))))")
        }
        if let k = isnKey, parseKey(k) == nil { p.append("--isn-key must be 32 hex digits") }
        if let s = secret, ChannelKeys.parseSecret(s) == nil { p.append("--secret must be 32 to 128 hex digits") }
        if [secret, secretFile, isnKey, isnKeyFile].compactMap({ $0 }).count > 1 {
            p.append("give one of --secret-file, --secret, --isn-key-file, --isn-key")
        }
        for (flag, v) in [("--listen", listen), ("--peer", peer), ("--admin", admin)] {
            if let v, SocketAddress(v) == nil { p.append("\(flag) '\(v)' is not IPv4:PORT, e.g. 127.0.0.1:7410") }
        }
        if let a = admin.flatMap(SocketAddress.init), !a.isLoopback, adminTokenFile == nil {
            p.append("--admin \(a) is not a loopback address: anyone who reaches it could read the node's state; give --admin-token-file too, or bind --admin to 127.0.0.1")
        }
        if files {
            if let f = secretFile ?? isnKeyFile {
                do { _ = try readSecretFile(f, flag: secretFile != nil ? "--secret-file" : "--isn-key-file") } catch { p.append("\(error)") }
            }
            if let f = adminTokenFile {
                do { _ = try readTokenFile(f) } catch { p.append("\(error)") }
            }
        }
        return p
    }
}

/// `ftap check-config FILE`: reads the file as `ftap run --config FILE` would
/// and checks everything that can be checked without starting (also the
/// secret and token files). Exit 0 when fine, 64 naming every problem.
struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Check a configuration file without starting; exit 64 naming every problem.")

    @Argument(help: "The TOML file (as for `ftap run --config FILE`).")
    var file: String

    func run() throws {
        // The file's own problems carry FILE:LINE; those of the flags it sets get FILE.
        var (flags, problems) = ConfigFile.load(file)
        do {
            // Parse without validating, so the problems come as a list.
            Run.checkOnly = true
            let run = try Run.parse(flags)
            problems += run.problems(files: true).map { "\(file): \($0)" }
        } catch {
            problems.append("\(file): \(Run.message(for: error))")
        }
        flags = []
        if problems.isEmpty {
            print("\(file): OK")
            return
        }
        for p in problems { fputs("\(p)\n", stderr) }
        throw ExitCode(64)
    }
}
