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
        4 backup state diverged, 5 inconsistent log, 64 bad flags or configuration.
        """,
        version: "0.1.0",
        subcommands: [Run.self, Status.self, Switchover.self, ArbiterCommand.self, LogCommand.self, Replay.self, Sim.self])

    static func main() {
        do {
            let args = try ConfigFile.expand(Array(CommandLine.arguments.dropFirst()))
            var command = try parseAsRoot(args)
            try command.run()
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
        gratuitous ARP. Both nodes need the same --mac, --ip, --service and --isn-key.

        Flags may also come from --config FILE: one `name = value` per line (long flag names \
        without dashes, `#` comments, `service` may repeat). Flags on the command line win.
        """)

    @Option(help: "solo, primary or backup.")
    var role: String = "solo"
    @Option(help: "Name of the TAP interface to create (1-15 bytes).")
    var tap: String
    @Option(help: "Bridge to enslave the TAP to (must exist in this network namespace).")
    var bridge: String?
    @Option(help: "The appliance's MAC address (same on both nodes), e.g. 02:00:00:00:00:10.")
    var mac: String
    @Option(help: "The appliance's IPv4 address and prefix (same on both nodes), e.g. 10.0.0.100/24.")
    var ip: String
    @Option(name: .customLong("service"), help: ArgumentHelp(
        "A service as KIND:PORT; repeat for more. Kinds: \(ServiceSpec.kinds.joined(separator: ", ")).",
        valueName: "kind:port"))
    var services: [String] = []
    @Option(help: "MTU of the TAP and the appliance (576-9000).")
    var mtu: Int = 1500

    @Option(help: "Log channel: address this node accepts its peer on (IPv4:PORT).")
    var listen: String?
    @Option(help: "Log channel: the other node's --listen address (IPv4:PORT).")
    var peer: String?
    @Option(help: "Epoch arbiter, e.g. file:/run/ftap/arb (a directory both nodes can reach).")
    var arbiter: String?
    @Option(help: "Name of this node in logs and arbiter claims (default: the TAP name).")
    var nodeName: String?
    @Flag(help: "Primary: serve alone at once instead of waiting for the backup; the backup joins later by state transfer.")
    var startAlone = false
    @Option(help: "Send a heartbeat after this many idle milliseconds.")
    var heartbeatMs: Int = 50
    @Option(help: "Declare the peer failed after this many milliseconds of silence.")
    var failoverTimeoutMs: Int = 500
    @Option(help: "Gratuitous ARPs sent when going live.")
    var garpCount: Int = 3
    @Option(help: "Milliseconds between gratuitous ARPs.")
    var garpIntervalMs: Int = 100

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

    @Option(help: "RFC 6528 ISN secret as 32 hex digits; must be equal on both nodes. Solo default: random.")
    var isnKey: String?
    @Option(help: "Read the ISN secret (32 hex digits) from this file.")
    var isnKeyFile: String?
    @Option(help: "Maximum open TCP connections; SYNs beyond it get RST.")
    var maxConnections: Int = 4096
    @Option(help: "Maximum half-open (SYN-RECEIVED) connections; beyond it SYNs are answered with SYN cookies (no state kept).")
    var synBacklog: Int = 256
    @Option(help: "Per-connection send buffer in KiB.")
    var sendBufferKb: Int = 256
    @Option(help: "Per-connection receive buffer (and window) in KiB.")
    var recvBufferKb: Int = 256

    @Option(help: "Write in.pcap (frames applied), out.pcap (frames emitted) and shadow.pcap (frames a backup suppressed) here.")
    var pcapDir: String?
    @Option(help: "Rotate each capture file at this size (MiB); the previous one is kept as NAME.1.")
    var pcapMaxMb: Int = 100
    @Option(help: "Record the replication log (entries, outputs, digests) to this pcapng file, for `ftap log` and `ftap replay`.")
    var record: String?

    @Option(help: "Serve /metrics (Prometheus) and /status (JSON) on this address, e.g. 127.0.0.1:7410. Off unless set.")
    var admin: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"
    @Option(help: "Read flags from this file (see above).")
    var config: String?

    func validate() throws {
        guard Role(rawValue: role) != nil else { throw ValidationError("--role must be solo, primary or backup, not '\(role)'") }
        guard MACAddress(mac) != nil else { throw ValidationError("--mac '\(mac)' is not a MAC address like 02:00:00:00:00:10") }
        if let m = MACAddress(mac), m.isMulticast { throw ValidationError("--mac \(mac) is a multicast address; use a unicast one (first byte even)") }
        guard let iface = IPv4Interface(ip) else { throw ValidationError("--ip '\(ip)' is not ADDR/PREFIX like 10.0.0.100/24") }
        guard iface.prefixLength >= 1 && iface.prefixLength <= 31 else { throw ValidationError("--ip prefix must be 1-31") }
        guard !services.isEmpty else { throw ValidationError("give at least one --service, e.g. --service counter:7000") }
        for s in services { do { _ = try ServiceSpec.parse(s) } catch { throw ValidationError("--service: \(error)") } }
        guard (576...9000).contains(mtu) else { throw ValidationError("--mtu must be 576-9000") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical") }
        guard heartbeatMs > 0, failoverTimeoutMs > heartbeatMs else { throw ValidationError("need 0 < --heartbeat-ms < --failover-timeout-ms") }
        guard garpCount >= 0, garpIntervalMs > 0 else { throw ValidationError("--garp-count must be >= 0 and --garp-interval-ms > 0") }
        guard maxConnections > 0, synBacklog > 0, sendBufferKb > 0, recvBufferKb > 0 else {
            throw ValidationError("--max-connections, --syn-backlog and the buffer sizes must be positive")
        }
        if let a = admin, SocketAddress(a) == nil { throw ValidationError("--admin '\(a)' is not IPv4:PORT, e.g. 127.0.0.1:7410") }
        guard pcapMaxMb > 0 else { throw ValidationError("--pcap-max-mb must be positive") }
        guard trackIntervalMs > 0, trackFall > 0, trackRise > 0 else {
            throw ValidationError("--track-interval-ms, --track-fall and --track-rise must be positive")
        }
        for i in trackInterfaces where i.isEmpty || i.utf8.count > 15 {
            throw ValidationError("--track-interface '\(i)' is not an interface name (1-15 bytes)")
        }
        guard recvBufferKb <= 65535 * 128 / 1024 else { throw ValidationError("--recv-buffer-kb must be at most 8191") }
        if let k = isnKey, parseKey(k) == nil { throw ValidationError("--isn-key must be 32 hex digits") }
        if isnKey != nil && isnKeyFile != nil { throw ValidationError("give --isn-key or --isn-key-file, not both") }
        let r = Role(rawValue: role)!
        if r != .solo {
            guard let l = listen else { throw ValidationError("--role \(role) needs --listen IPv4:PORT") }
            guard SocketAddress(l) != nil else { throw ValidationError("--listen '\(l)' is not IPv4:PORT") }
            guard let p = peer else { throw ValidationError("--role \(role) needs --peer IPv4:PORT") }
            guard SocketAddress(p) != nil else { throw ValidationError("--peer '\(p)' is not IPv4:PORT") }
            guard arbiter != nil else { throw ValidationError("--role \(role) needs --arbiter, e.g. file:/run/ftap/arb") }
            guard isnKey != nil || isnKeyFile != nil else {
                throw ValidationError("--role \(role) needs --isn-key or --isn-key-file (the same secret on both nodes)")
            }
        }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel)!
        let name = nodeName ?? tap
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let log = Logger(label: "ftap.\(name)")

        var sc = StackConfig(mac: MACAddress(mac)!, interface: IPv4Interface(ip)!)
        sc.mtu = mtu
        sc.maxConnections = maxConnections
        sc.synBacklog = synBacklog
        sc.sendBufferBytes = sendBufferKb * 1024
        sc.receiveBufferBytes = recvBufferKb * 1024
        do {
            if let k = isnKey { sc.isnKey = parseKey(k)! }
            else if let f = isnKeyFile { sc.isnKey = try readKeyFile(f) }
            else { sc.isnKey = try randomKey(); log.info("ISN key: generated at random (solo)") }
        } catch {
            throw ValidationError("\(error)")
        }
        let specs = try services.map { try ServiceSpec.parse($0) }
        let stack: Stack
        do { stack = try Appliance.make(config: sc, services: specs) } catch { throw ValidationError("\(error)") }

        var rc = ReplicationConfig(role: Role(rawValue: role)!, nodeName: name)
        rc.heartbeat = UInt64(heartbeatMs) * nsPerMs
        rc.failoverTimeout = UInt64(failoverTimeoutMs) * nsPerMs
        rc.garpCount = garpCount
        rc.garpInterval = UInt64(garpIntervalMs) * nsPerMs
        rc.startAlone = startAlone
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
        if let a = arbiter {
            do { no.arbiter = try makeArbiter(a) } catch { throw ValidationError("\(error)") }
        }
        if pcapDir != nil || record != nil {
            do {
                no.recorder = try Recorder(pcapDir: pcapDir, pcapMaxBytes: pcapMaxMb << 20, recordPath: record,
                                           recordHeader: RecordedConfig.text(stack: sc, services: specs, node: name, role: rc.role),
                                           log: log)
            } catch { throw ValidationError("\(error)") }
        }
        let core = ReplicationCore(config: rc, stack: stack)
        log.notice("starting ftap \(FTAP.configuration.version) role=\(role) services=\(specs.map(\.description).joined(separator: ","))")
        let node = Node(options: no, core: core, logger: log)
        let code: Int32
        do { code = try node.run() } catch {
            log.critical("\(error)")
            throw ExitCode(1)
        }
        if code != 0 { throw ExitCode(code) }
    }
}

func parseKey(_ s: String) -> (UInt64, UInt64)? {
    let t = s.hasPrefix("0x") ? String(s.dropFirst(2)) : s
    guard t.count == 32, let a = UInt64(t.prefix(16), radix: 16), let b = UInt64(t.suffix(16), radix: 16) else { return nil }
    return (a, b)
}

struct KeyError: Error, CustomStringConvertible { var description: String }

func readKeyFile(_ path: String) throws -> (UInt64, UInt64) {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw KeyError(description: "--isn-key-file \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var buf = [UInt8](repeating: 0, count: 128)
    let n = read(fd, &buf, buf.count)
    let text = String(decoding: buf[0..<max(0, n)], as: UTF8.self).filter { !$0.isWhitespace }
    guard let k = parseKey(text) else { throw KeyError(description: "--isn-key-file \(path): expected 32 hex digits") }
    return k
}

func randomKey() throws -> (UInt64, UInt64) {
    var a: UInt64 = 0, b: UInt64 = 0
    let fd = open("/dev/urandom", O_RDONLY)
    guard fd >= 0 else { throw KeyError(description: "/dev/urandom: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    guard read(fd, &a, 8) == 8, read(fd, &b, 8) == 8 else { throw KeyError(description: "/dev/urandom: short read") }
    return (a, b)
}
