#if canImport(Glibc)
import Glibc
#endif
import FTStack

/// One child process run beside the node's loop, never blocking it: started
/// with posix_spawn, reaped with waitpid(WNOHANG), killed (SIGKILL) and
/// reaped once it outlives its deadline. Used by `--track-script`
/// (HealthTracker) and `--notify-script` (HookRunner).
struct TimedChild {
    enum Outcome: Equatable {
        case running
        /// Exited with this status (0: success).
        case exited(Int32)
        case signaled(Int32)
        /// Killed at its deadline.
        case timedOut

        var succeeded: Bool { self == .exited(0) }
        var description: String {
            switch self {
            case .running: return "running"
            case .exited(let c): return "exit status \(c)"
            case .signaled(let s): return "killed by signal \(s)"
            case .timedOut: return "timed out"
            }
        }
    }

    private(set) var pid: pid_t = 0
    private(set) var started: Nanos = 0
    var isRunning: Bool { pid > 0 }

    /// Starts `path` with `args` (argv[0] is `path`) and `env` (nil: this
    /// process's environment). Returns 0 or the errno of the failed spawn.
    mutating func spawn(_ path: String, _ args: [String], env: [String]? = nil, now: Nanos) -> Int32 {
        precondition(!isRunning, "one child at a time")
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var child: pid_t = 0
        let rc: Int32
        if let env {
            let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
            defer { for p in envp { free(p) } }
            rc = posix_spawn(&child, path, nil, nil, argv, envp)
        } else {
            rc = posix_spawn(&child, path, nil, nil, argv, environ)
        }
        if rc == 0 { pid = child; started = now }
        return rc
    }

    /// The child's state; kills and reaps it once `timeout` has passed since it started.
    mutating func poll(now: Nanos, timeout: Nanos) -> Outcome {
        guard pid > 0 else { return .running }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            pid = 0
            return status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signaled(status & 0x7f)
        }
        if now >= started && now - started >= timeout {
            kill()
            return .timedOut
        }
        return .running
    }

    /// Kills and reaps the child, if any.
    mutating func kill() {
        guard pid > 0 else { return }
        Glibc.kill(pid, SIGKILL)
        waitpid(pid, nil, 0)
        pid = 0
    }
}
