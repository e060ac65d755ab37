import ArgumentParser
import FTPlatform
import FTReplication
import FTServices
import FTStack
import FTWire
import Logging
#if canImport(Glibc)
import Glibc
#endif

@main
struct FTAP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ftap",
        abstract: "A fault-tolerant network appliance: a deterministic TCP/IPv4 stack replicated primary/backup behind TAP interfaces.",
        discussion: """
        Run `ftap run --help` for the daemon's options. Exit codes of `ftap run`: 0 clean shutdown \
        (SIGTERM/SIGINT), 1 runtime error, 2 lost the epoch to the other node, 3 refused by the primary, \
        4 backup state diverged, 5 inconsistent log, 64 bad flags or configuration (every problem is named).
        """,
        version: "\(ftapVersion) (commit \(buildCommit))",
        subcommands: [Run.self, CheckConfig.self, Status.self, Switchover.self, ArbiterCommand.self, LogCommand.self, Replay.self, Sim.self])

    static func main() {
        do {
            let args = try ConfigFile.expand(Array(CommandLine.arguments.dropFirst()))
            var command = try parseAsRoot(args)
            try command.run()
        } catch let e as ConfigFile.Problems {
            for p in e.list { fputs("error: \(p)\n", stderr) }
            exit(withError: ExitCode(64))
        } catch {
            exit(withError: error)
        }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the appliance on this node (as root).",
        discussion: """
        Creates TAP --tap (or attaches to an existing persistent one), sets its MTU, brings it up and, \
        with --bridge, enslaves it to that bridge. The appliance answers ARP and ping for --ip and \
        serves each --service. SIGTERM or SIGINT stops it cleanly; SIGHUP logs a status line.

        Roles: `solo` serves alone. `primary` claims epoch 1 with the arbiter, accepts its backup on \
        --listen and serves once the backup has joined; every frame it emits waits until the backup \
        has acknowledged the log entry that produced it. `backup` connects to --peer, follows the log \
        and emits nothing; when the primary fails it claims the next epoch and goes live, sending \
        gratuitous ARP. Both nodes need the same --mac, --ip, --service and --secret-file.

        The role is the preference for a fresh pair (an arbiter where no epoch was claimed). On an \
        arbiter that shows earlier epochs a starting node has no state to serve: it joins its peer as \
        backup whatever --role says and waits for it as long as it takes (so a service manager may \
        restart it with the same flags after any failure). --new-pair is the operator's cold start \
        after both nodes died.

        The log channel is authenticated and encrypted with keys derived from the shared secret \
        (HKDF: separate keys for the ISNs, the channel's authentication and its encryption); a \
        node that does not hold the secret cannot join, hold the peer slot or read the log. \
        Create the secret with e.g. `umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /etc/ftap/secret` \
        and copy the file to both nodes; files readable by group or others are refused.

        Flags may also come from --config FILE (or --config=FILE), a TOML file with one key per long \
        flag name: `failover-timeout-ms = 500`, `start-alone = true`, `service = ["counter:7000", "echo:7"]`, \
        `peer = "192.168.77.2:7400"`. Unknown keys and wrong types are errors with FILE:LINE. A flag on \
        the command line replaces the file's value (for --service and --track-interface, all of them).
        """)

    @Option(help: "solo, primary or backup.")
    var role: String = "solo"
    @Option(help: "Name of the TAP interface to create (1-15 bytes).")
    var tap: String?
    @Option(help: "Bridge to enslave the TAP to (must exist in this network namespace).")
    var bridge: String?
    @Option(help: "The appliance's MAC address (same on both nodes), e.g. 02:00:00:00:00:10.")
    var mac: String?
    @Option(help: "The appliance's IPv4 address and prefix (same on both nodes), e.g. 10.0.0.100/24.")
    var ip: String?
    @Option(name: .customLong("service"), help: ArgumentHelp(
        "A service as KIND:PORT; repeat for more. Kinds: \(ServiceSpec.kinds.joined(separator: ", ")).",
        valueName: "kind:port"))
    var services: [String] = []
    @Option(help: "kv service: refuse writes that may grow the keyspace (Redis's OOM error) once its estimated memory exceeds this many MiB.")
    var kvMaxMemoryMb: Int = KVLimits.default.maxMemoryBytes >> 20
    @Option(help: "kv service: longest bulk string (argument or string value) in KiB, like Redis's proto-max-bulk-len.")
    var kvMaxBulkKb: Int = KVLimits.default.maxBulkBytes >> 10
    @Option(help: "kv service: most KiB one connection may hold for an incomplete request; beyond it the connection gets a protocol error and is closed.")
    var kvMaxPipelineKb: Int = KVLimits.default.maxPendingBytes >> 10
    @Option(help: "MTU of the TAP and the appliance (576-9000).")
    var mtu: Int = 1500
    @Flag(help: "Turn TAP offloads off: read and write one MTU-sized frame per system call, with every checksum computed here, instead of 64 KiB TCP super-frames (IFF_VNET_HDR, TSO, checksum offload). For comparison and for kernels without them. It changes the frames the appliance emits, so both nodes of a pair must agree on it.")
    var noOffload = false

    @Option(help: "Log channel: address this node accepts its peer on (IPv4:PORT).")
    var listen: String?
    @Option(help: "Log channel: the other node's --listen address (IPv4:PORT).")
    var peer: String?
    @Option(help: "Epoch arbiter: file:DIR (a directory both nodes can reach) or etcd://IP:PORT[,IP:PORT...]/PREFIX[?ttl=S] (an etcd v3 cluster; see README).")
    var arbiter: String?
    @Option(help: "Name of this node in logs and arbiter claims (default: the TAP name).")
    var nodeName: String?
    @Flag(help: "Primary: serve alone at once instead of waiting for the backup; the backup joins later by state transfer.")
    var startAlone = false
    @Flag(help: "Cold start after both nodes died: claim the next free epoch and serve alone with an empty state (what the other node held is gone). Without it, a node whose arbiter shows earlier epochs only joins its peer. A one-time action: not allowed in --config.")
    var newPair = false
    @Option(help: "Send a heartbeat after this many idle milliseconds.")
    var heartbeatMs: Int = 50
    @Option(help: "Declare the peer failed after this many milliseconds of silence.")
    var failoverTimeoutMs: Int = 500
    @Option(help: "Gratuitous ARPs sent when going live.")
    var garpCount: Int = 3
    @Option(help: "Milliseconds between gratuitous ARPs.")
    var garpIntervalMs: Int = 100
    @Option(help: ArgumentHelp(
        "Backup: keep the frames reaching its own TAP this long (default: the failover timeout plus 1000), so that on a takeover it applies what the dead primary never logged; 0 turns it off. Useful when the switch mirrors the primary's port to this node's (README: Mirroring), or floods after a cable pull.",
        valueName: "ms"))
    var standbyBufferMs: Int?
    @Option(help: "Backup: at most this many KiB of kept frames.")
    var standbyBufferKb: Int = 8192

    @Option(name: .customLong("track-interface"), help: ArgumentHelp(
        "Count this node unhealthy while this interface is down (repeatable). With --bridge, the bridge's other ports (its uplinks) are tracked too, unless --no-track-bridge.",
        valueName: "if"))
    var trackInterfaces: [String] = []
    @Flag(help: "Do not track the --bridge's other ports.")
    var noTrackBridge = false
    @Option(help: "Health check command, run with /bin/sh -c every --track-interval-ms; exit 0 means healthy. Never blocks the node.")
    var trackScript: String?
    @Option(help: "Interval (and timeout) of --track-script.")
    var trackIntervalMs: Int = 1000
    @Option(help: "Consecutive --track-script failures that make the node unhealthy.")
    var trackFall: Int = 2
    @Option(help: "Consecutive --track-script passes that make it healthy again.")
    var trackRise: Int = 2

    @Option(help: "Read the pair's shared secret (32-128 hex digits, same on both nodes) from this file (mode 0600). Solo default: random.")
    var secretFile: String?
    @Option(help: "The shared secret on the command line (visible in ps; prefer --secret-file).")
    var secret: String?
    @Option(help: "Old name of --secret (32 hex digits).")
    var isnKey: String?
    @Option(help: "Old name of --secret-file.")
    var isnKeyFile: String?
    @Option(help: "Maximum open TCP connections; SYNs beyond it get RST.")
    var maxConnections: Int = 4096
    @Option(help: "Maximum half-open (SYN-RECEIVED) connections; beyond it SYNs are answered with SYN cookies (no state kept).")
    var synBacklog: Int = 256
    @Option(help: "Per-connection send buffer in KiB.")
    var sendBufferKb: Int = 256
    @Option(help: "Per-connection receive buffer (and window) in KiB.")
    var recvBufferKb: Int = 256
    // TCP resource limits (issue 13).
    @Option(help: "Reset a TCP connection that hears nothing from its peer for this many seconds (0: off).")
    var tcpIdleTimeoutS: Int = 0
    @Option(help: "TCP keepalive: probe a peer silent for this many seconds (0: off).")
    var tcpKeepaliveS: Int = 0
    @Option(help: "TCP keepalive: seconds between probes.")
    var tcpKeepaliveIntervalS: Int = 75
    @Option(help: "TCP keepalive: unanswered probes before the connection is reset.")
    var tcpKeepaliveProbes: Int = 9
    @Option(help: "Reset a connection whose peer keeps its window closed this many seconds while data waits (RFC 6429; 0: never).")
    var tcpZeroWindowTimeoutS: Int = 120
    @Option(help: "Maximum TCP connections per source address; SYNs beyond it get RST (0: no limit).")
    var tcpMaxPerSource: Int = 0
    @Option(help: "Under a SYN flood, log at most this many SYNs per second from sources that never completed a handshake (as many again that are retransmissions of shed SYNs); the rest are dropped before logging (0: no limit).")
    var tcpSynRate: Int = 5000

    @Option(help: "Write in.pcap (frames applied), out.pcap (frames emitted) and shadow.pcap (frames a backup suppressed) here.")
    var pcapDir: String?
    @Option(help: "Rotate each capture file at this size (MiB); the previous one is kept as NAME.1.")
    var pcapMaxMb: Int = 100
    @Option(help: "Record the replication log (entries, outputs, digests) to this pcapng file, for `ftap log` and `ftap replay`.")
    var record: String?

    @Option(help: "Serve /metrics (Prometheus), /status (JSON) and /connections (JSON: every TCP connection's windows, cwnd, RTT and path model, like ss -ti) on this address, e.g. 127.0.0.1:7410. Off unless set.")
    var admin: String?
    @Option(help: "File (mode 0600) holding the token POST /switchover must present (`ftap switchover --admin-token-file`). Without it the admin endpoint takes no requests that change anything, and only a loopback --admin is allowed.")
    var adminTokenFile: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"
    @Option(help: "Run this program on every role or mode change, with the event as its first argument and FTAP_EVENT, FTAP_EPOCH, FTAP_INDEX, FTAP_NODE, FTAP_PEER in its environment (events: primary, backup, alone, protected, lost-epoch, diverged, stopping, healthy, unhealthy). Runs beside the node, one at a time, in order.")
    var notifyScript: String?
    @Option(help: "Kill a --notify-script still running after this many milliseconds.")
    var notifyTimeoutMs: Int = 10_000
    @Option(help: "Read flags from this TOML file (see above; `ftap check-config FILE` checks one).")
    var config: String?

    /// Set by `ftap check-config`, which collects the problems itself.
    nonisolated(unsafe) static var checkOnly = false

    func validate() throws {
        if Run.checkOnly { return }
        let p = problems()
        if !p.isEmpty { throw ValidationError(p.joined(separator: "\n")) }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel)!
        let (tap, mac, ip) = (self.tap!, self.mac!, self.ip!)
        let name = nodeName ?? tap
        let journal = JournalLogHandler.stderrIsJournal
        LoggingSystem.bootstrap { label in
            if journal {
                var h = JournalLogHandler(label: label)
                h.logLevel = level
                return h
            }
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let log = Logger(label: "ftap.\(name)")

        var sc = StackConfig(mac: MACAddress(mac)!, interface: IPv4Interface(ip)!)
        sc.mtu = mtu
        sc.tsoMaxBytes = noOffload ? 0 : StackConfig.tsoLimit
        sc.maxConnections = maxConnections
        sc.synBacklog = synBacklog
        sc.sendBufferBytes = sendBufferKb * 1024
        sc.receiveBufferBytes = recvBufferKb * 1024
        sc.idleTimeout = Nanos(tcpIdleTimeoutS) * 1000 * nsPerMs
        sc.keepaliveIdle = Nanos(tcpKeepaliveS) * 1000 * nsPerMs
        sc.keepaliveInterval = Nanos(tcpKeepaliveIntervalS) * 1000 * nsPerMs
        sc.keepaliveProbes = tcpKeepaliveProbes
        sc.zeroWindowTimeout = Nanos(tcpZeroWindowTimeoutS) * 1000 * nsPerMs
        sc.maxConnectionsPerSource = tcpMaxPerSource
        let keys: ChannelKeys
        var adminToken: [UInt8]? = nil
        do {
            let s: [UInt8]
            if let k = secret ?? isnKey { s = ChannelKeys.parseSecret(k)! }
            else if let f = secretFile ?? isnKeyFile { s = try readSecretFile(f, flag: secretFile != nil ? "--secret-file" : "--isn-key-file") }
            else { s = try randomSecret(); log.info("secret: generated at random (solo)") }
            keys = ChannelKeys(secret: s)
            sc.isnKey = keys.isnKey
            if let f = adminTokenFile { adminToken = try readTokenFile(f) }
        } catch {
            throw ValidationError("\(error)")
        }
        let kvLimits = KVLimits(maxMemoryBytes: kvMaxMemoryMb << 20, maxBulkBytes: kvMaxBulkKb << 10, maxPendingBytes: kvMaxPipelineKb << 10)
        let specs = try services.map { text -> ServiceSpec in
            var s = try ServiceSpec.parse(text)
            if s.kind == "kv" { s.kv = kvLimits }
            return s
        }
        let stack: Stack
        do { stack = try Appliance.make(config: sc, services: specs) } catch { throw ValidationError("\(error)") }

        var rc = ReplicationConfig(role: Role(rawValue: role)!, nodeName: name)
        rc.heartbeat = UInt64(heartbeatMs) * nsPerMs
        rc.failoverTimeout = UInt64(failoverTimeoutMs) * nsPerMs
        rc.garpCount = garpCount
        rc.garpInterval = UInt64(garpIntervalMs) * nsPerMs
        rc.startAlone = startAlone
        rc.standbyWindow = standbyBufferMs.map { UInt64($0) * nsPerMs }
        rc.standbyMaxBytes = standbyBufferKb * 1024
        if record != nil { rc.checkpointEvery = 1000 }
        if let f = getenv("FTAP_FAULT").map({ String(cString: $0) }), !f.isEmpty {
            guard let plan = FaultPlan(f) else {
                throw ValidationError("FTAP_FAULT '\(f)' is not POINT:N with POINT one of \(FaultPlan.Point.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            rc.fault = plan
            log.warning("TEST FAULT HOOK ARMED: \(plan)")
        }

        var no = NodeOptions(tap: tap)
        no.bridge = bridge
        no.mtu = mtu
        no.offload = !noOffload
        no.listen = listen.flatMap(SocketAddress.init)
        no.peer = peer.flatMap(SocketAddress.init)
        no.admin = admin.flatMap(SocketAddress.init)
        no.health.tap = tap
        no.health.bridge = noTrackBridge ? nil : bridge
        no.health.interfaces = trackInterfaces
        no.health.script = trackScript
        no.health.interval = UInt64(trackIntervalMs) * nsPerMs
        no.health.fall = trackFall
        no.health.rise = trackRise
        no.adminToken = adminToken
        no.channelKeys = keys
        no.build = BuildInfo(version: ftapVersion, commit: buildCommit)
        no.notifyScript = notifyScript
        no.synRate = tcpSynRate
        no.notifyTimeout = UInt64(notifyTimeoutMs) * nsPerMs
        if let a = arbiter {
            do { no.arbiter = try makeArbiter(a) } catch { throw ValidationError("\(error)") }
            rc.arbiterIdentity = no.arbiter!.identity
            rc.ownershipBound = no.arbiter!.ownershipBound
        }
        if rc.role != .solo, let arb = no.arbiter {
            let plan = Startup.decide(role: rc.role, newPair: newPair, arbiter: askArbiter(arb, log: log))
            rc = Startup.apply(plan, to: rc)
            switch plan {
            case .asConfigured: log.info("startup: arbiter \(arb.description) shows no epoch: a fresh pair, role \(role)")
            case .follow(let why): log.notice("startup: \(why)"); no.startupNote = why
            case .newPair(let e): log.warning("startup: --new-pair: claiming epoch \(e) and serving alone with an empty state")
            }
        }
        if pcapDir != nil || record != nil {
            do {
                no.recorder = try Recorder(pcapDir: pcapDir, pcapMaxBytes: pcapMaxMb << 20, recordPath: record,
                                           recordHeader: RecordedConfig.text(stack: sc, services: specs, node: name, role: rc.role),
                                           log: log)
            } catch { throw ValidationError("\(error)") }
        }
        let core = ReplicationCore(config: rc, stack: stack)
        if newPair && Role(rawValue: role) == .solo { log.warning("--new-pair has no effect with --role solo") }
        log.notice("starting ftap \(ftapVersion) commit \(buildCommit) role=\(rc.role.rawValue)\(rc.role.rawValue != role ? " (configured \(role))" : "") services=\(specs.map(\.description).joined(separator: ","))")
        let node = Node(options: no, core: core, logger: log)
        let code: Int32
        do { code = try node.run() } catch {
            log.critical("\(error)")
            throw ExitCode(1)
        }
        if code != 0 { throw ExitCode(code) }
    }
}

/// Was any epoch claimed? Asked once before the loop starts (Startup.swift);
/// retried while the arbiter does not answer (the node cannot decide safely).
func askArbiter(_ arb: Arbiter, log: Logger) -> EpochCheck {
    var warned = 0.0
    var waited = 0.0
    while true {
        let answer = arb.history()
        guard case .unavailable(let why) = answer else { return answer }
        if waited >= warned {
            log.warning("startup: arbiter \(arb.description) unavailable (\(why)); retrying before deciding how to start")
            warned = waited + 10
        }
        usleep(250_000)
        waited += 0.25
    }
}

func parseKey(_ s: String) -> (UInt64, UInt64)? {
    let t = s.hasPrefix("0x") ? String(s.dropFirst(2)) : s
    guard t.count == 32, let a = UInt64(t.prefix(16), radix: 16), let b = UInt64(t.suffix(16), radix: 16) else { return nil }
    return (a, b)
}

struct KeyError: Error, CustomStringConvertible { var description: String }

/// Reads a file that holds a secret: refused when group or others may read
/// or write it (the message says how to fix it).
func readPrivateFile(_ path: String, flag: String, max: Int = 1024) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw KeyError(description: "\(flag) \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw KeyError(description: "\(flag) \(path): \(String(cString: strerror(errno)))") }
    if st.st_mode & 0o077 != 0 {
        throw KeyError(description: "\(flag) \(path) is accessible by group or others (mode \(String(st.st_mode & 0o777, radix: 8))); it holds a secret: run `chmod 600 \(path)`")
    }
    var buf = [UInt8](repeating: 0, count: max + 1)
    let n = read(fd, &buf, buf.count)
    guard n >= 0 else { throw KeyError(description: "\(flag) \(path): \(String(cString: strerror(errno)))") }
    guard n <= max else { throw KeyError(description: "\(flag) \(path): longer than \(max) bytes") }
    return Array(buf[0..<n])
}

func readSecretFile(_ path: String, flag: String) throws -> [UInt8] {
    let text = String(decoding: try readPrivateFile(path, flag: flag), as: UTF8.self)
    guard let s = ChannelKeys.parseSecret(text) else { throw KeyError(description: "\(flag) \(path): expected 32 to 128 hex digits") }
    return s
}

/// The admin token: the file's content without surrounding whitespace, at least 16 bytes.
func readTokenFile(_ path: String) throws -> [UInt8] {
    let text = String(decoding: try readPrivateFile(path, flag: "--admin-token-file"), as: UTF8.self)
    let t = Array(text.trimmingWhitespace.utf8)
    guard t.count >= 16 else { throw KeyError(description: "--admin-token-file \(path): the token must be at least 16 characters") }
    return t
}

extension String {
    var trimmingWhitespace: String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}

func randomSecret() throws -> [UInt8] {
    var g = SystemRandomNumberGenerator()
    return (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &g) }
}
