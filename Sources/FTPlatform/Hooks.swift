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
    var child = TimedChild()
    var childEvent = ""
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
        switch child.poll(now: now, timeout: options.timeout) {
        case .running, .exited(0): break
        case .timedOut:
            failures += 1
            log("--notify-script \(options.script) \(childEvent): killed after \(options.timeout / nsPerMs) ms (--notify-timeout-ms)")
        case let outcome:
            failures += 1
            log("--notify-script \(options.script) \(childEvent): \(outcome.description)")
        }
        while !child.isRunning && !queue.isEmpty {
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
        let rc = child.spawn(options.script, [ev], env: env, now: now)
        runs += 1
        if rc == 0 {
            childEvent = ev
        } else {
            failures += 1
            log("--notify-script \(options.script) \(ev): cannot start: \(String(cString: strerror(rc)))")
        }
    }

    /// When the loop must look at the child again (nil: nothing running).
    func nextWake(now: Nanos) -> Nanos? {
        guard child.isRunning else { return nil }
        return min(child.started + options.timeout, now + 20 * nsPerMs)
    }

    /// On shutdown: gives the last child (e.g. `stopping`) until its timeout.
    func drain() {
        while child.isRunning || !queue.isEmpty {
            let now = monotonicNanos()
            service(now: now)
            if child.isRunning { usleep(5000) }
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
