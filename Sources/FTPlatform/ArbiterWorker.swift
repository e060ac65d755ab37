#if canImport(Glibc)
import Glibc
#endif
import CShims
import FTReplication

/// Runs arbiter calls on their own thread, so a slow or hung store (NFS, a
/// remote service) never stops the event loop: heartbeats, the channel and
/// timers go on. The loop polls `fd`; each answer arrives with one byte on it.
final class ArbiterWorker {
    /// `release`: give up the alone lease (no answer).
    enum Job { case claim(UInt64), check(UInt64), release }
    enum Result { case claimed(UInt64, ArbiterAnswer, Double), checked(UInt64, EpochCheck) }

    let arbiter: Arbiter
    let node: String
    private var jobs: [Job] = []
    private var results: [Result] = []
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var stopping = false
    private var thread = pthread_t()
    private var pipe: [Int32] = [-1, -1]
    /// Readable when answers are waiting.
    var fd: Int32 { pipe[0] }

    init(arbiter: Arbiter, node: String) throws {
        self.arbiter = arbiter
        self.node = node
        guard ftap_pipe_nonblock(&pipe) == 0 else { throw SystemError("pipe", errno: errno) }
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
        let box = Unmanaged.passRetained(self)
        pthread_create(&thread, nil, { arg in
            let w = Unmanaged<ArbiterWorker>.fromOpaque(arg!).takeRetainedValue()
            w.loop()
            return nil
        }, box.toOpaque())
    }

    func submit(_ job: Job) {
        pthread_mutex_lock(&mutex)
        jobs.append(job)
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
    }

    /// Answers that arrived since the last call, in order.
    func take() -> [Result] {
        var b = [UInt8](repeating: 0, count: 64)
        while read(pipe[0], &b, b.count) > 0 {}
        pthread_mutex_lock(&mutex)
        let r = results
        results.removeAll()
        pthread_mutex_unlock(&mutex)
        return r
    }

    private func loop() {
        while true {
            pthread_mutex_lock(&mutex)
            while jobs.isEmpty && !stopping { pthread_cond_wait(&cond, &mutex) }
            if stopping { pthread_mutex_unlock(&mutex); return }
            let job = jobs.removeFirst()
            pthread_mutex_unlock(&mutex)
            let r: Result
            switch job {
            case .claim(let e):
                let start = monotonicNanos()
                let a = arbiter.claim(epoch: e, node: node)
                r = .claimed(e, a, Double(monotonicNanos() - start) / 1e6)
            case .check(let e):
                r = .checked(e, arbiter.check(above: e))
            case .release:
                arbiter.releaseOwnership()
                continue
            }
            pthread_mutex_lock(&mutex)
            results.append(r)
            pthread_mutex_unlock(&mutex)
            var one: UInt8 = 1
            _ = write(pipe[1], &one, 1)
        }
    }

    /// Stops the thread after the call in progress (a hung call is left behind).
    func stop() {
        pthread_mutex_lock(&mutex)
        stopping = true
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
    }
}
