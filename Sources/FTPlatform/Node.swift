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
    public var listen: SocketAddress?
    public var peer: SocketAddress?
    public var arbiter: Arbiter?
    /// Retry interval for the backup's connection to the primary.
    public var connectRetry: Nanos = 200 * nsPerMs
    /// Captures and recording (`--pcap-dir`, `--record`), if any.
    public var recorder: Recorder?
    /// `--admin`: where /metrics and /status are served, if set.
    public var admin: SocketAddress?
    public init(tap: String) { self.tap = tap }
}

/// One ftap node: the platform loop around a `ReplicationCore`. It owns every
/// syscall: the TAP, netlink, the log channel sockets, the arbiter, signals
/// and the clock. Single-threaded, poll(2)-driven.
public final class Node {
    let options: NodeOptions
    let core: ReplicationCore
    var log: Logger
    var tap: TapDevice!
    var listenFD: Int32 = -1
    var peerFD: Int32 = -1
    var peerConnecting = false
    var nextConnectAt: Nanos = 0
    var peerOut: [UInt8] = []
    var peerOutHead = 0
    var sigPipe: [Int32] = [-1, -1]
    var exitCode: Int32? = nil
    var readBuf = [UInt8](repeating: 0, count: 1 << 18)
    public private(set) var framesEmitted: UInt64 = 0
    public private(set) var framesDroppedOnWrite: UInt64 = 0
    public private(set) var shadowFrames: UInt64 = 0
    var lastStatsLog: Nanos = 0
    var adminServer: AdminServer?
    var pendingAdminActions: [Action] = []
    var peerCallStart: Nanos = 0
    var loopNow: Nanos = 0
    let metrics = NodeMetrics()
    let startedAt = monotonicNanos()

    public init(options: NodeOptions, core: ReplicationCore, logger: Logger) {
        self.options = options; self.core = core; self.log = logger
    }

    /// Runs until SIGTERM/SIGINT or a fatal protocol event. Returns the exit code.
    public func run() throws -> Int32 {
        guard ftap_pipe_nonblock(&sigPipe) == 0 else { throw SystemError("pipe", errno: errno) }
        ftap_install_signal_pipe(sigPipe[1])

        tap = try TapDevice(name: options.tap, mtu: options.mtu)
        Netlink.disableIPv6(on: tap.name)
        try Netlink.configure(link: tap.name, mtu: options.mtu, bridge: options.bridge)
        log.notice("TAP \(tap.name) up, mtu \(options.mtu)\(options.bridge.map { ", bridged to \($0)" } ?? "")",
                   metadata: ["mac": "\(core.replica.stack.config.mac)", "ip": "\(core.replica.stack.config.interface)"])
        if core.config.role != .solo, let l = options.listen {
            listenFD = try Sockets.listen(on: l)
            log.info("log channel listening on \(l)")
        }

        if let a = options.admin {
            adminServer = try AdminServer(address: a)
            log.info("admin endpoint on http://\(a)/metrics and /status")
        }

        var actions: [Action] = []
        core.start(now: monotonicNanos(), &actions)
        perform(&actions)

        while exitCode == nil {
            let now = monotonicNanos()
            if core.role == .backup && core.mode == .waitingForPeer && peerFD < 0 && now >= nextConnectAt {
                startConnect(now: now)
            }
            var fds: [pollfd] = []
            fds.append(pollfd(fd: sigPipe[0], events: Int16(POLLIN), revents: 0))
            let tapEvents: Int16 = core.wantsTapInput || core.drainsTap ? Int16(POLLIN) : 0
            fds.append(pollfd(fd: tap.fd, events: tapEvents, revents: 0))
            fds.append(pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0))
            var peerEvents = Int16(POLLIN)
            if peerConnecting || peerOutHead < peerOut.count { peerEvents |= Int16(POLLOUT) }
            fds.append(pollfd(fd: peerFD, events: peerEvents, revents: 0))
            if let admin = adminServer { fds += admin.pollFDs }

            var timeoutMs: Int32 = 1000
            var wake = core.nextWakeup(now: now)
            if core.role == .backup && core.mode == .waitingForPeer && peerFD < 0 {
                wake = min(wake ?? nextConnectAt, nextConnectAt)
            }
            if let w = wake {
                timeoutMs = w <= now ? 0 : Int32(min(1000, (w - now + nsPerMs - 1) / nsPerMs))
            }
            let r = poll(&fds, nfds_t(fds.count), timeoutMs)
            if r < 0 && errno != EINTR { throw SystemError("poll", errno: errno) }
            let t = monotonicNanos()
            loopNow = t

            if fds[0].revents != 0 { handleSignals(); if exitCode != nil { break } }
            if listenFD >= 0 && fds[2].revents & Int16(POLLIN) != 0 { acceptPeer(now: t, &actions) }
            if peerFD >= 0 && fds[3].revents != 0 { servicePeer(fds[3].revents, now: t, &actions) }
            if let admin = adminServer {
                admin.service(fds[4...], now: t, respond: adminResponse)
                actions += pendingAdminActions
                pendingAdminActions.removeAll()
            }
            perform(&actions)
            if exitCode != nil { break }
            if fds[1].revents & Int16(POLLIN) != 0 { readTap(now: t, &actions) }
            core.tick(now: t, &actions)
            core.flush(now: t, &actions)
            perform(&actions)
            flushPeer()
            if t - lastStatsLog >= 60_000 * nsPerMs { logStats(); lastStatsLog = t }
        }
        shutdown()
        return exitCode ?? 0
    }

    // MARK: TAP

    func readTap(now: Nanos, _ actions: inout [Action]) {
        // Bounded batch per wakeup so timers and the channel are served fairly.
        for n in 1...256 {
            // Ship entries to the backup in batches of 32 rather than once per
            // wakeup, so it can acknowledge (and output be released) sooner.
            if n % 32 == 0 {
                core.flush(now: now, &actions)
                perform(&actions)
                flushPeer()
            }
            let frame: [UInt8]?
            do { frame = try tap.readFrame() } catch { log.error("\(error)"); exitCode = 1; return }
            guard let f = frame else { return }
            if core.drainsTap && !core.isLive { core.tapFrame(f, now: now, &actions); continue }
            core.tapFrame(f, now: now, &actions)
            if !actions.isEmpty { perform(&actions); if exitCode != nil { return } }
            if !core.wantsTapInput { return }
        }
    }

    // MARK: Peer channel

    func startConnect(now: Nanos) {
        guard let p = options.peer else { return }
        nextConnectAt = now + options.connectRetry
        do {
            peerFD = try Sockets.connect(to: p)
            peerConnecting = true
        } catch {
            log.debug("\(error)")
        }
    }

    func acceptPeer(now: Nanos, _ actions: inout [Action]) {
        let fd = ftap_accept_nonblock(listenFD)
        guard fd >= 0 else { return }
        if peerFD >= 0 {
            // One peer at a time: tell the newcomer why, then close.
            var bytes: [UInt8] = []
            ChannelCodec.encode(.reject(reason: "this node already has a peer connected"), into: &bytes)
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            log.warning("refused a second peer connection")
            return
        }
        Sockets.setNoDelayNonBlocking(fd)
        peerFD = fd
        peerOut.removeAll(); peerOutHead = 0
        log.info("peer connected")
        core.peerUp(now: now, &actions)
    }

    func servicePeer(_ ev: Int16, now: Nanos, _ actions: inout [Action]) {
        if peerConnecting {
            if ev & Int16(POLLOUT | POLLERR | POLLHUP) != 0 {
                let err = Sockets.pendingError(peerFD)
                if err != 0 {
                    log.debug("connect to \(options.peer!): \(String(cString: strerror(err)))")
                    close(peerFD); peerFD = -1; peerConnecting = false
                    return
                }
                peerConnecting = false
                peerOut.removeAll(); peerOutHead = 0
                log.info("connected to peer \(options.peer!)")
                core.peerUp(now: now, &actions)
            }
            return
        }
        if ev & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
            while peerFD >= 0 {
                let n = readBuf.withUnsafeMutableBytes { read(peerFD, $0.baseAddress, $0.count) }
                if n > 0 {
                    peerCallStart = monotonicNanos()
                    core.peerBytes(readBuf[0..<n], now: now, &actions)
                    if n < readBuf.count { break }
                    continue
                }
                if n < 0 && (errno == EAGAIN || errno == EINTR) { break }
                let err = n == 0 ? 0 : errno
                let why = n == 0 ? "peer closed the connection" : String(cString: strerror(err))
                dropPeer()
                core.peerDown(reason: why, peerClosed: n == 0 || err == ECONNRESET, now: now, &actions)
                break
            }
        }
        if peerFD >= 0 && ev & Int16(POLLOUT) != 0 { flushPeer() }
    }

    func flushPeer() {
        while peerFD >= 0 && peerOutHead < peerOut.count {
            let n = peerOut.withUnsafeBytes { p in
                write(peerFD, p.baseAddress! + peerOutHead, p.count - peerOutHead)
            }
            if n > 0 { peerOutHead += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { break }
            break  // errors surface as POLLERR/HUP on the next read
        }
        if peerOutHead == peerOut.count { peerOut.removeAll(keepingCapacity: true); peerOutHead = 0 }
    }

    func dropPeer() {
        if peerFD >= 0 { close(peerFD) }
        peerFD = -1; peerConnecting = false
        peerOut.removeAll(); peerOutHead = 0
    }

    // MARK: Actions

    func perform(_ actions: inout [Action]) {
        var i = 0
        while i < actions.count {
            let a = actions[i]
            i += 1
            switch a {
            case .emit(let o):
                do {
                    if try tap.writeFrame(o.frame) { framesEmitted += 1 } else { framesDroppedOnWrite += 1 }
                    if o.producedAt != 0 { metrics.recordHold(monotonicNanos() - o.producedAt) }
                } catch { log.error("\(error)"); exitCode = 1 }
                options.recorder?.emitted(o)
            case .shadow(let o):
                shadowFrames += 1
                options.recorder?.suppressed(o)
            case .send(let bytes):
                if peerFD >= 0 && !peerConnecting { peerOut.append(contentsOf: bytes) }
            case .closePeer(let reason):
                flushPeer()
                log.info("closing peer channel: \(reason)")
                dropPeer()
            case .claimEpoch(let e):
                guard let arb = options.arbiter else {
                    log.error("no --arbiter configured: cannot claim epoch \(e)")
                    exitCode = 1; return
                }
                let start = monotonicNanos()
                let (won, detail) = arb.claim(epoch: e, node: core.config.nodeName)
                let ms = Double(monotonicNanos() - start) / 1e6
                log.notice("arbiter \(arb.description): epoch \(e) \(won ? "won" : "LOST") (\(detail), \(ms) ms)")
                core.arbiterAnswered(epoch: e, won: won, detail: detail, now: monotonicNanos(), &actions)
            case .exit(let code, let reason):
                if code == 0 { log.notice("\(reason)") } else { log.critical("\(reason)") }
                exitCode = code
                actions.removeAll()
                return
            case .crash(let why):
                flushPeer()
                log.critical("\(why): killing this process now (test fault hook)")
                kill(getpid(), SIGKILL)
            case .snapshotSent(let index, let bytes):
                let pause = Double(monotonicNanos() - peerCallStart) / 1e6
                log.notice("state transfer: snapshot at index \(index), \(bytes) bytes queued for the joining backup; snapshot pause \(pause) ms")
            case .applied(let e, let outputs):
                if let r = options.recorder {
                    r.applied(e, outputs: outputs, checkpoint: core.takeCheckpoint(index: e.index))
                }
            case .log(let level, let msg):
                switch level {
                case .debug: log.debug("\(msg)")
                case .info: log.info("\(msg)")
                case .notice: log.notice("\(msg)")
                case .warning: log.warning("\(msg)")
                case .error: log.error("\(msg)")
                }
            }
        }
        actions.removeAll(keepingCapacity: true)
    }

    // MARK: Admin

    func adminResponse(_ request: String) -> (Int, String, [UInt8]) {
        let parts = request.split(separator: " ")
        let method = parts.first.map(String.init) ?? "GET"
        let path = parts.count > 1 ? String(parts[1]) : "/"
        if path == "/switchover" {
            guard method == "POST" else { return (405, "text/plain", Array("POST /switchover\n".utf8)) }
            var actions: [Action] = []
            if let err = core.requestSwitchover(now: loopNow, &actions) {
                return (409, "text/plain", Array("\(err)\n".utf8))
            }
            pendingAdminActions += actions
            return (200, "text/plain", Array("switchover started at log index \(core.replica.appliedIndex)\n".utf8))
        }
        switch path {
        case "/metrics":
            metrics.refresh(self)
            return (200, "text/plain; version=0.0.4", metrics.text())
        case "/status":
            return (200, "application/json", Array(statusJSON().utf8))
        default:
            return (404, "text/plain", Array("try /metrics or /status\n".utf8))
        }
    }

    // MARK: Signals and shutdown

    func handleSignals() {
        var b = [UInt8](repeating: 0, count: 16)
        _ = read(sigPipe[0], &b, b.count)
        let sig = ftap_last_signal()
        if sig == SIGHUP {
            logStats()
            return
        }
        log.notice("received signal \(sig): shutting down")
        exitCode = 0
    }

    func logStats() {
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
        flushPeer()
        dropPeer()
        if listenFD >= 0 { close(listenFD); listenFD = -1 }
        adminServer?.close()
        tap = nil
        options.recorder?.close(replica: core.replica)
        log.notice("stopped")
    }
}
