#if canImport(Glibc)
import Glibc
#endif
import CShims
import FTReplication
import FTStack
import FTWire
import Logging

/// Platform options of one node (the appliance itself is in `StackConfig`).
public struct NodeOptions {
    public var tap: String
    public var bridge: String?
    public var mtu: Int = 1500
    /// Open the TAP with IFF_VNET_HDR and TUNSETOFFLOAD (`--no-offload`: false).
    public var offload: Bool = true
    public var listen: SocketAddress?
    public var peer: SocketAddress?
    public var arbiter: Arbiter?
    /// Retry interval for the backup's connection to the primary.
    public var connectRetry: Nanos = 200 * nsPerMs
    /// Captures and recording (`--pcap-dir`, `--record`), if any.
    public var recorder: Recorder?
    /// `--admin`: where /metrics and /status are served, if set.
    public var admin: SocketAddress?
    /// Health tracking (links, check script).
    public var health = HealthOptions()
    /// `--admin-token-file`: what mutating admin requests (and, on a
    /// non-loopback --admin, every request) must present as a bearer token.
    public var adminToken: [UInt8]?
    /// Derived from the pair's shared secret: the log channel's keys.
    public var channelKeys = ChannelKeys(secret: [])
    /// Version and commit (ftap_build_info).
    public var build = BuildInfo(version: "unknown", commit: "unknown")
    /// `--notify-script`: run on every role or mode change (Hooks.swift).
    public var notifyScript: String?
    public var notifyTimeout: Nanos = 10_000 * nsPerMs
    /// Why this node follows whatever its role says (Startup.swift): said
    /// in /status and logged once per `waitingLogInterval` while it waits.
    public var startupNote: String?
    public var waitingLogInterval: Nanos = 10_000 * nsPerMs
    /// `--tcp-syn-rate`: SYNs per second from new sources logged under a flood (SynAdmission).
    public var synRate = SynAdmission.Config().rate
    public init(tap: String) { self.tap = tap }
}

/// One ftap node: the system calls around a `NodeDriver` (FTReplication),
/// which makes every decision of the loop. This class owns the TAP, the log
/// channel sockets, the arbiter, signals, the admin endpoint and the clock,
/// and implements `NodeIO` with them. Single-threaded, poll(2)-driven.
public final class Node: NodeIO {
    let options: NodeOptions
    let core: ReplicationCore
    let driver: NodeDriver
    var log: Logger
    var tap: TapDevice!
    var listenFD: Int32 = -1
    var peerFD: Int32 = -1
    /// The probe connection to the peer's port (see FTReplication/PeerProbe.swift).
    var probeFD: Int32 = -1
    var probeRevents: Int16 = 0
    var probeRefusedAtOnce = false
    var probeConnected = false
    /// poll(2) events seen on the channel in this iteration (for a connect in progress).
    var peerRevents: Int16 = 0
    var sigPipe: [Int32] = [-1, -1]
    var readBuf = [UInt8](repeating: 0, count: 1 << 18)
    public private(set) var framesEmitted: UInt64 = 0
    public private(set) var framesDroppedOnWrite: UInt64 = 0
    public private(set) var shadowFrames: UInt64 = 0
    var arbiterWorker: ArbiterWorker?
    var health: HealthTracker?
    var reportedHealth: (Bool, String)? = nil
    var reportedGeneration = -1
    var adminServer: AdminServer?
    var adminFDs: ArraySlice<pollfd> = []
    var peerCallStart: Nanos = 0
    var loopNow: Nanos = 0
    let metrics: NodeMetrics
    let startedAt = monotonicNanos()
    /// systemd readiness, status and watchdog (Notify.swift).
    let notifier = SystemdNotifier()
    var hooks: HookRunner?
    /// The last role or mode change (RoleEvents.swift), for /status.
    var lastChange: RoleChange?
    var roleChanges: UInt64 = 0
    var stoppingNotified = false
    var nextWaitingLog: Nanos = 0

    public init(options: NodeOptions, core: ReplicationCore, logger: Logger) {
        self.options = options; self.core = core; self.log = logger
        metrics = NodeMetrics(build: options.build)
        var lc = NodeLoopConfig()
        lc.connectRetry = options.connectRetry
        lc.canConnect = options.peer != nil
        lc.readBuffer = readBuf.count
        lc.synAdmission.rate = options.synRate
        driver = NodeDriver(core: core, config: lc, keys: options.channelKeys)
    }

    /// Runs until SIGTERM/SIGINT or a fatal protocol event. Returns the exit code.
    public func run() throws -> Int32 {
        guard ftap_pipe_nonblock(&sigPipe) == 0 else { throw SystemError("pipe", errno: errno) }
        ftap_install_signal_pipe(sigPipe[1])

        tap = try TapDevice(name: options.tap, mtu: options.mtu, offload: options.offload)
        Netlink.disableIPv6(on: tap.name)
        try Netlink.configure(link: tap.name, mtu: options.mtu, bridge: options.bridge)
        if options.bridge != nil {
            let raw = core.replica.stack.config.mac.raw
            do { try Netlink.pinBridgeFDB(mac: (0..<6).map { UInt8(truncatingIfNeeded: raw >> (40 - 8 * $0)) }, to: tap.name) } catch {
                log.warning("cannot pin the appliance MAC to \(tap.name) in its bridge (\(error)); as a backup this node may not see client frames the switch mirrors or floods to it")
            }
        }
        let tso = core.replica.stack.config.tsoMaxBytes
        log.notice("TAP \(tap.name) up, mtu \(options.mtu)\(options.bridge.map { ", bridged to \($0)" } ?? ""), offloads: \(tap.offloadDescription)\(tso > 0 ? ", TCP super-segments up to \(tso) B" : "")",
                   metadata: ["mac": "\(core.replica.stack.config.mac)", "ip": "\(core.replica.stack.config.interface)"])
        if core.config.role != .solo, let l = options.listen {
            listenFD = try Sockets.listen(on: l)
            log.info("log channel listening on \(l)")
        }
        if options.health.tracksAnything {
            health = try HealthTracker(options: options.health)
        }
        if let arb = options.arbiter {
            arbiterWorker = try ArbiterWorker(arbiter: arb, node: core.config.nodeName)
        }
        if let a = options.admin {
            adminServer = try AdminServer(address: a)
            log.info("admin endpoint on http://\(a)/metrics and /status")
        }
        if let s = options.notifyScript {
            let l = log
            hooks = HookRunner(options: .init(script: s, timeout: options.notifyTimeout, node: core.config.nodeName,
                                              peer: options.peer.map { "\($0)" } ?? ""),
                               log: { l.warning("\($0)") })
        }
        if notifier.enabled {
            log.info("systemd notification socket set\(notifier.watchdogInterval.map { "; watchdog every \($0 / nsPerMs) ms" } ?? "")")
        }

        loopNow = monotonicNanos()
        _ = driver.start(now: loopNow, self)
        reportHealth()
        while driver.exitCode == nil && failure == nil {
            let planNow = monotonicNanos()
            var plan = driver.plan(now: planNow, self)
            for w in [health?.nextWake(now: planNow), hooks?.nextWake(now: planNow), notifier.nextWake()].compactMap({ $0 }) {
                plan.timeoutMs = min(plan.timeoutMs, w <= planNow ? 0 : Int((w - planNow + nsPerMs - 1) / nsPerMs))
            }
            var fds: [pollfd] = []
            fds.append(pollfd(fd: sigPipe[0], events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: tap.fd, events: plan.tap ? Int16(POLLIN) : 0, revents: 0))
            fds.append(pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: peerFD, events: Int16(POLLIN) | (plan.channelWrite ? Int16(POLLOUT) : 0), revents: 0))
            fds.append(pollfd(fd: plan.probe ? probeFD : -1, events: probeConnected ? Int16(POLLIN) : Int16(POLLOUT), revents: 0))
            fds.append(pollfd(fd: arbiterWorker?.fd ?? -1, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: health?.fd ?? -1, events: Int16(POLLIN), revents: 0))
            let pendingStart = fds.count
            for c in plan.pending { fds.append(pollfd(fd: Int32(c), events: Int16(POLLIN), revents: 0)) }
            let adminStart = fds.count
            if let admin = adminServer { fds += admin.pollFDs }
            let r = poll(&fds, nfds_t(fds.count), Int32(plan.timeoutMs))
            if r < 0 && errno != EINTR { throw SystemError("poll", errno: errno) }
            loopNow = monotonicNanos()
            if fds[0].revents != 0 {
                handleSignal()
                if driver.exitCode != nil { break }
            }
            peerRevents = fds[3].revents
            probeRevents = fds[4].revents
            if fds[5].revents != 0 { arbiterAnswers() }
            if fds[6].revents != 0 { health?.linksChanged() }
            health?.tickScript(now: loopNow)
            hooks?.service(now: loopNow)
            notifier.tick(now: loopNow)
            logWhyWaiting()
            reportHealth()
            if driver.exitCode != nil || failure != nil { break }
            adminFDs = fds[adminStart...]
            let pendingReady = fds[pendingStart..<adminStart].contains { $0.revents != 0 }
            let ready = Readiness(listen: listenFD >= 0 && fds[2].revents & Int16(POLLIN) != 0,
                                  channel: peerFD >= 0 && peerRevents != 0,
                                  channelWritable: peerRevents & Int16(POLLOUT) != 0,
                                  tap: fds[1].revents & Int16(POLLIN) != 0,
                                  probe: probeRevents != 0 || probeRefusedAtOnce, pending: pendingReady)
            _ = driver.iterate(now: loopNow, ready: ready, self)
        }
        shutdown()
        return driver.exitCode ?? (failure != nil ? 1 : 0)
    }

    // MARK: NodeIO: TAP

    /// A system call failed in a way the node cannot continue from (exit 1).
    var failure: String? = nil
    public var halted: Bool { failure != nil }

    func fail(_ why: String) {
        log.critical("\(why)")
        failure = why
    }

    public func readTap() -> TapRead {
        do { return try tap.readFrame().map { .frame($0.frame, checksumTrusted: $0.checksumTrusted) } ?? .empty } catch {
            return .failed("\(error)")
        }
    }

    public func writeTap(_ o: OutputFrame) {
        do {
            if try tap.writeFrame(o.frame, segmentSize: o.segmentSize) { framesEmitted += 1 } else { framesDroppedOnWrite += 1 }
            if o.producedAt != 0 { metrics.recordHold(monotonicNanos() - o.producedAt) }
        } catch {
            fail("TAP write failed: \(error)")
        }
        options.recorder?.emitted(o)
    }

    public func shadow(_ o: OutputFrame) {
        shadowFrames += 1
        options.recorder?.suppressed(o)
    }

    // MARK: NodeIO: log channel

    public func connect() -> Bool {
        guard let p = options.peer else { return false }
        do {
            peerFD = try Sockets.connect(to: p)
            return true
        } catch {
            log.debug("\(error)")
            return false
        }
    }

    public func connectOutcome() -> ConnectOutcome { outcome(peerFD, peerRevents) }

    func outcome(_ fd: Int32, _ revents: Int16) -> ConnectOutcome {
        guard revents & Int16(POLLOUT | POLLERR | POLLHUP) != 0 else { return .pending }
        let err = Sockets.pendingError(fd)
        if err == ECONNREFUSED { return .refused }
        if err != 0 { return .failed("\(options.peer.map { "\($0)" } ?? "peer"): \(String(cString: strerror(err)))") }
        return .connected
    }

    public func startProbe() -> Bool {
        guard let p = options.peer else { return false }
        do { probeFD = try Sockets.connect(to: p); return true } catch let e as SystemError where e.code == ECONNREFUSED {
            probeRefusedAtOnce = true  // a local peer refuses synchronously
            return true
        } catch {
            log.info("probe of the peer's port: \(error)")
            return false
        }
    }

    public func probeStatus() -> ProbeStatus {
        if probeRefusedAtOnce { return .refused }
        if !probeConnected {
            // The handshake completed and the reset came before we saw it
            // (measured: 1 kill in 12 under load): connect reports
            // ECONNRESET, not ECONNREFUSED. Same proof as a reset after connect.
            // (SO_ERROR clears when read: read it once.)
            guard probeRevents & Int16(POLLOUT | POLLERR | POLLHUP) != 0 else { return .pending }
            switch Sockets.pendingError(probeFD) {
            case 0: probeConnected = true; return .pending  // now wait for an answer or a reset
            case ECONNREFUSED: return .refused
            case ECONNRESET: return .resetAfterConnect
            case let err: return .failed("\(options.peer.map { "\($0)" } ?? "peer"): \(String(cString: strerror(err)))")
            }
        }
        guard probeRevents != 0 else { return .pending }
        var b: UInt8 = 0
        let n = read(probeFD, &b, 1)
        if n >= 0 { return .answered }
        let err = errno
        if err == EAGAIN || err == EINTR { return .pending }
        if err == ECONNRESET { return .resetAfterConnect }
        return .failed(String(cString: strerror(err)))
    }

    public func closeProbe() {
        if probeFD >= 0 { close(probeFD) }
        probeFD = -1
        probeRevents = 0
        probeRefusedAtOnce = false
        probeConnected = false
    }

    public func accept() -> Int? {
        let fd = ftap_accept_nonblock(listenFD)
        return fd >= 0 ? Int(fd) : nil
    }

    public func refuse(_ connection: Int, sending bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { write(Int32(connection), $0.baseAddress, $0.count) }
        close(Int32(connection))
    }

    public func adopt(_ connection: Int) {
        peerFD = Int32(connection)
        Sockets.setNoDelayNonBlocking(peerFD)
    }

    public func readChannel(max: Int) -> ChannelRead { readSocket(peerFD, max: max) }

    public func readPending(_ connection: Int, max: Int) -> ChannelRead { readSocket(Int32(connection), max: max) }

    public func writePending(_ connection: Int, _ bytes: ArraySlice<UInt8>) -> Int {
        let n = bytes.withUnsafeBytes { write(Int32(connection), $0.baseAddress, $0.count) }
        return n > 0 ? n : 0
    }

    public func randomBytes(_ count: Int) -> [UInt8] {
        var g = SystemRandomNumberGenerator()  // getrandom(2)
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &g) }
    }

    func readSocket(_ fd: Int32, max: Int) -> ChannelRead {
        let n = readBuf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, Swift.min(max, $0.count)) }
        if n > 0 { return .data(readBuf[0..<n]) }
        if n == 0 { return .ended(.eof) }
        let err = errno
        if err == EAGAIN || err == EINTR { return .wouldBlock }
        if err == ECONNRESET { return .ended(.reset) }
        return .ended(.error(String(cString: strerror(err))))
    }

    public func writeChannel(_ bytes: ArraySlice<UInt8>) -> Int {
        let n = bytes.withUnsafeBytes { write(peerFD, $0.baseAddress, $0.count) }
        return n > 0 ? n : 0
    }

    public func closeChannel() {
        if peerFD >= 0 { close(peerFD) }
        peerFD = -1
    }

    public func willHandleChannelBytes(_ bytes: ArraySlice<UInt8>) { peerCallStart = monotonicNanos() }

    // MARK: NodeIO: arbiter, process, observation

    public func claim(epoch e: UInt64) -> ArbiterCall<ArbiterAnswer> {
        guard let w = arbiterWorker else {
            fail("no --arbiter configured: cannot claim epoch \(e)")
            return .answered(.unavailable("no --arbiter configured"))
        }
        w.submit(.claim(e))
        return .pending
    }

    public func checkEpoch(_ e: UInt64) -> ArbiterCall<EpochCheck> {
        guard let w = arbiterWorker else { return .answered(.current) }
        w.submit(.check(e))
        return .pending
    }

    public func releaseOwnership(epoch e: UInt64) {
        arbiterWorker?.submit(.release)
    }

    /// Tells the loop when this node's health changed.
    func reportHealth() {
        guard let h = health, h.generation != reportedGeneration else { return }
        reportedGeneration = h.generation
        let now = (h.healthy, h.reason)
        if let r = reportedHealth, r == now { return }
        if reportedHealth == nil && now.0 {
            log.notice("health tracking: \(now.1)")
        }
        reportedHealth = now
        _ = driver.healthChanged(now.0, reason: now.1, now: monotonicNanos(), self)
    }

    /// The arbiter thread answered: hand the answers to the loop.
    func arbiterAnswers() {
        guard let w = arbiterWorker else { return }
        for r in w.take() {
            switch r {
            case .claimed(let e, let answer, let ms):
                let what: String
                switch answer {
                case .won(let d): what = "won (\(d)"
                case .lost(let d): what = "LOST (\(d)"
                case .unavailable(let d): what = "unavailable (\(d)"
                }
                log.notice("arbiter \(w.arbiter.description): epoch \(e) \(what), \(ms) ms)")
                metrics.recordClaim(milliseconds: ms)
                _ = driver.arbiterAnswered(answer, now: monotonicNanos(), self)
            case .checked(_, let answer):
                _ = driver.epochChecked(answer, now: monotonicNanos(), self)
            }
        }
    }

    public func applied(_ e: LogEntry, outputs: [[UInt8]]) {
        if let r = options.recorder {
            r.applied(e, outputs: outputs, checkpoint: core.takeCheckpoint(index: e.index))
        }
    }

    public func snapshotSent(index: UInt64, bytes: Int) {
        let pause = Double(monotonicNanos() - peerCallStart) / 1e6
        log.notice("state transfer: snapshot at index \(index), \(bytes) bytes queued for the joining backup; snapshot pause \(pause) ms")
    }

    public func log(_ level: LogLevel, _ msg: String) {
        switch level {
        case .debug: log.debug("\(msg)")
        case .info: log.info("\(msg)")
        case .notice: log.notice("\(msg)")
        case .warning: log.warning("\(msg)")
        case .error: log.error("\(msg)")
        }
    }

    public func exit(code: Int32, reason: String) {
        if code == 0 { log.notice("\(reason)") } else { log.critical("\(reason)") }
    }

    /// A node that follows because of its arbiter's history says so while it
    /// waits for its peer, once per interval (not on every connect attempt).
    func logWhyWaiting() {
        guard let note = options.startupNote, core.mode == .waitingForPeer, loopNow >= nextWaitingLog else { return }
        nextWaitingLog = loopNow + options.waitingLogInterval
        log.warning("not serving, waiting for the peer \(options.peer.map { "\($0)" } ?? "") to join it: \(note)")
        notifier.send(["STATUS=\(core.config.nodeName): not serving, waiting for the peer to join it (the arbiter has history; --new-pair starts a new pair)"])
    }

    /// One role or mode change: structured log fields, metrics, systemd
    /// status, and the operator's --notify-script (beside the loop).
    public func roleChanged(_ c: RoleChange) {
        let peer = options.peer.map { "\($0)" } ?? ""
        log.notice("role change: \(c.event)", metadata: [
            "event": "\(c.event)", "epoch": "\(c.epoch)", "index": "\(c.index)", "mode": "\(c.mode)",
            "node": "\(core.config.nodeName)", "peer": "\(peer)",
        ])
        lastChange = c
        roleChanges += 1
        metrics.roleChanged(c.event.rawValue)
        notifier.roleChanged(c, node: core.config.nodeName)
        if c.event == .stopping { stoppingNotified = true }
        hooks?.enqueue(c, now: monotonicNanos())
    }

    public func crash(_ why: String) {
        log.critical("\(why): killing this process now (test fault hook)")
        kill(getpid(), SIGKILL)
    }

    public func serviceOperator(_ driver: NodeDriver, now: Nanos) {
        adminServer?.service(adminFDs, now: now, respond: { self.adminResponse($0, token: $1) })
        adminFDs = []
    }

    // MARK: Admin

    func adminResponse(_ request: String, token: [UInt8]?) -> (Int, String, [UInt8]) {
        let parts = request.split(separator: " ")
        let method = parts.first.map(String.init) ?? "GET"
        let path = parts.count > 1 ? String(parts[1]) : "/"
        let authorized = options.adminToken.map { t in token.map { constantTimeEqual($0, t) } ?? false } ?? false
        if options.admin?.isLoopback != true && !authorized {
            return (401, "text/plain", Array("this admin endpoint needs the token of --admin-token-file (Authorization: Bearer)\n".utf8))
        }
        if path == "/switchover" {
            guard method == "POST" else { return (405, "text/plain", Array("POST /switchover\n".utf8)) }
            guard options.adminToken != nil else {
                return (403, "text/plain", Array("this node runs without --admin-token-file: requests that change anything are refused\n".utf8))
            }
            guard authorized else {
                log.warning("admin: POST /switchover without the right token refused")
                return (401, "text/plain", Array("POST /switchover needs the token of --admin-token-file (ftap switchover --admin-token-file FILE)\n".utf8))
            }
            if let err = driver.requestSwitchover(now: loopNow) {
                return (409, "text/plain", Array("\(err)\n".utf8))
            }
            return (200, "text/plain", Array("switchover started at log index \(core.replica.appliedIndex)\n".utf8))
        }
        switch path {
        case "/metrics":
            metrics.refresh(self)
            return (200, "text/plain; version=0.0.4", metrics.text())
        case "/status":
            return (200, "application/json", Array(statusJSON().utf8))
        case "/connections":
            return (200, "application/json", Array(connectionsJSON().utf8))
        default:
            return (404, "text/plain", Array("try /metrics, /status or /connections\n".utf8))
        }
    }

    // MARK: Signals and shutdown

    func handleSignal() {
        var b = [UInt8](repeating: 0, count: 16)
        _ = read(sigPipe[0], &b, b.count)
        let sig = ftap_last_signal()
        driver.signal(terminate: sig != SIGHUP, number: sig, self)
    }

    public func logStats() {
        let s = core.replica.stack
        var meta: Logger.Metadata = [:]
        for (k, v) in s.counters.all where v > 0 { meta[k] = "\(v)" }
        meta["connections"] = "\(s.connectionCount)"
        meta["log_index"] = "\(core.replica.appliedIndex)"
        meta["epoch"] = "\(core.epoch)"
        meta["mode"] = "\(core.mode)"
        meta["ignored_frames"] = "\(core.ignoredFrames)"
        meta["emitted"] = "\(framesEmitted)"
        meta["tap_write_drops"] = "\(framesDroppedOnWrite)"
        meta["shadow"] = "\(shadowFrames)"
        meta["digest"] = "\(String(core.replica.digest, radix: 16))"
        if let r = options.recorder, r.dropped > 0 { meta["capture_dropped"] = "\(r.dropped)" }
        log.info("status", metadata: meta)
    }

    func shutdown() {
        logStats()
        driver.shutdown(self)
        if !stoppingNotified { notifier.send(["STOPPING=1"]) }
        hooks?.drain()
        if listenFD >= 0 { close(listenFD); listenFD = -1 }
        adminServer?.close()
        arbiterWorker?.stop()
        tap = nil
        options.recorder?.close(replica: core.replica)
        log.notice("stopped")
    }
}
