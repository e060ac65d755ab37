#if canImport(Glibc)
import Glibc
#endif
import CShims
import FTReplication
import FTStack

/// `--notify-script PATH`: runs the operator's program on each role or mode
/// change (RoleEvents.swift), beside the loop: the loop only starts a child
/// (posix_spawn) and later reaps it with waitpid(WNOHANG). One child at a
/// time, so the script sees the events in order; one still running after the
/// timeout is killed. Nothing it does reaches the node's state.
final class HookRunner {
    struct Options {
        var script: String
        var timeout: Nanos
        var node: String
        var peer: String
    }

    let options: Options
    var queue: [RoleChange] = []
    var child: pid_t = 0
    var childEvent = ""
    var childStarted: Nanos = 0
    /// Runs that failed to start, timed out or exited non-zero.
    private(set) var failures: UInt64 = 0
    private(set) var runs: UInt64 = 0
    let log: (String) -> Void

    init(options: Options, log: @escaping (String) -> Void) {
        self.options = options
        self.log = log
    }

    /// Queues one event; it runs once the events before it have finished.
    func enqueue(_ change: RoleChange, now: Nanos) {
        queue.append(change)
        service(now: now)
    }

    /// Reaps a finished or overdue child and starts the next; never blocks
    /// (except to reap a child it just killed).
    func service(now: Nanos) {
        if child > 0 {
            var status: Int32 = 0
            let r = waitpid(child, &status, WNOHANG)
            if r == child {
                child = 0
                let exited = status & 0x7f == 0
                let code = (status >> 8) & 0xff
                if !exited || code != 0 {
                    failures += 1
                    log("--notify-script \(options.script) \(childEvent): \(exited ? "exit status \(code)" : "killed by signal \(status & 0x7f)")")
                }
            } else if now >= childStarted && now - childStarted >= options.timeout {
                kill(child, SIGKILL)
                waitpid(child, nil, 0)
                child = 0
                failures += 1
                log("--notify-script \(options.script) \(childEvent): killed after \(options.timeout / nsPerMs) ms (--notify-timeout-ms)")
            }
        }
        while child == 0 && !queue.isEmpty {
            let c = queue.removeFirst()
            start(c, now: now)
        }
    }

    func start(_ c: RoleChange, now: Nanos) {
        let ev = c.event.rawValue
        let env = environmentWithout(prefix: "FTAP_") + [
            "FTAP_EVENT=\(ev)", "FTAP_EPOCH=\(c.epoch)", "FTAP_INDEX=\(c.index)",
            "FTAP_NODE=\(options.node)", "FTAP_PEER=\(options.peer)", "FTAP_MODE=\(c.mode)",
        ]
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(options.script), strdup(ev), nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) }; for p in envp { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, options.script, nil, nil, argv, envp)
        runs += 1
        if rc == 0 {
            child = pid
            childEvent = ev
            childStarted = now
        } else {
            failures += 1
            log("--notify-script \(options.script) \(ev): cannot start: \(String(cString: strerror(rc)))")
        }
    }

    /// When the loop must look at the child again (nil: nothing running).
    func nextWake(now: Nanos) -> Nanos? {
        guard child > 0 else { return nil }
        return min(childStarted + options.timeout, now + 20 * nsPerMs)
    }

    /// On shutdown: gives the last child (e.g. `stopping`) until its timeout.
    func drain() {
        while child > 0 || !queue.isEmpty {
            let now = monotonicNanos()
            service(now: now)
            if child > 0 { usleep(5000) }
        }
    }
}

/// This process's environment, minus variables starting with `prefix`.
func environmentWithout(prefix: String) -> [String] {
    var out: [String] = []
    var p = environ
    while let e = p.pointee {
        let s = String(cString: e)
        if !s.hasPrefix(prefix) { out.append(s) }
        p += 1
    }
    return out
}
