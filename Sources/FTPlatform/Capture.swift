#if canImport(Glibc)
import Glibc
#endif
import CPcap
import FTReplication
import FTStack
import Logging

/// A pcap file written through libpcap (DLT_EN10MB), with size-capped
/// rotation: when it exceeds `maxBytes` it is renamed to `NAME.1` (replacing
/// the previous one) and a new file is started. Used only by the writer thread.
final class PcapFile {
    let path: String
    let maxBytes: Int
    var dead: OpaquePointer?
    var dumper: OpaquePointer?
    var written = 0
    var failed = false

    init(path: String, maxBytes: Int) throws {
        self.path = path; self.maxBytes = maxBytes
        dead = pcap_open_dead(DLT_EN10MB, 262144)
        try open()
    }

    func open() throws {
        // Captures hold the clients' traffic: owner only (pcap_dump_open's
        // fopen would create it 0666 less the umask; it keeps this mode).
        try createPrivate(path)
        guard let d = pcap_dump_open(dead, path) else {
            throw SystemError("pcap: open \(path)", detail: String(cString: pcap_geterr(dead)))
        }
        dumper = d
        written = 24
    }

    /// Returns an error message once, when writing starts failing (e.g. disk full).
    func write(time: Nanos, frame: [UInt8]) -> String? {
        guard let d = dumper, !failed else { return nil }
        var h = pcap_pkthdr()
        h.ts.tv_sec = Int(time / 1_000_000_000)
        h.ts.tv_usec = Int((time % 1_000_000_000) / 1000)
        h.caplen = UInt32(frame.count)
        h.len = UInt32(frame.count)
        frame.withUnsafeBufferPointer { p in
            pcap_dump(UnsafeMutableRawPointer(d).assumingMemoryBound(to: UInt8.self), &h, p.baseAddress)
        }
        written += 16 + frame.count
        if ferror(pcap_dump_file(d)) != 0 {
            failed = true
            return "capture \(path): write failed (\(String(cString: strerror(errno)))); capturing to it stops, the appliance goes on"
        }
        if written >= maxBytes {
            pcap_dump_close(d)
            dumper = nil
            rename(path, path + ".1")
            do { try open() } catch { failed = true; return "\(error); capturing to it stops" }
        }
        return nil
    }

    func flush() -> String? {
        guard let d = dumper, !failed else { return nil }
        if pcap_dump_flush(d) != 0 {
            failed = true
            return "capture \(path): flush failed (\(String(cString: strerror(errno)))); capturing to it stops, the appliance goes on"
        }
        return nil
    }

    func close() {
        if let d = dumper { pcap_dump_close(d) }
        dumper = nil
        if let x = dead { pcap_close(x) }
        dead = nil
    }
}

/// A plain file appended to by the writer thread (the `--record` file).
final class RawFile {
    let path: String
    let fd: Int32
    var failed = false
    init(path: String) throws {
        self.path = path
        fd = Glibc.open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError("open \(path)", errno: errno) }
        fchmod(fd, 0o600)  // an existing file keeps its mode otherwise
    }
    func write(_ bytes: [UInt8]) -> String? {
        guard !failed else { return nil }
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                failed = true
                return "recording \(path): write failed (\(String(cString: strerror(errno)))); recording stops, the appliance goes on"
            }
            off += n
        }
        return nil
    }
    func close() { Glibc.close(fd) }
}

/// Moves capture and recording I/O off the data path: the event loop queues
/// jobs, one writer thread performs them. If the writer falls behind by more
/// than `maxQueuedBytes`, new jobs are dropped and counted rather than
/// letting memory grow or the loop block.
final class BackgroundWriter {
    enum Job {
        case pcap(PcapFile, Nanos, [UInt8])
        case raw(RawFile, [UInt8])
    }
    private var jobs: [Job] = []
    private var queuedBytes = 0
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var stopping = false
    private var thread = pthread_t()
    private var started = false
    let maxQueuedBytes: Int
    let log: Logger
    private(set) var dropped: UInt64 = 0
    private var files: [PcapFile] = []

    init(maxQueuedBytes: Int = 64 << 20, log: Logger) {
        self.maxQueuedBytes = maxQueuedBytes
        self.log = log
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
    }

    func register(_ f: PcapFile) { files.append(f) }

    func start() {
        guard !started else { return }
        started = true
        let box = Unmanaged.passRetained(self)
        pthread_create(&thread, nil, { arg in
            let w = Unmanaged<BackgroundWriter>.fromOpaque(arg!).takeRetainedValue()
            w.loop()
            return nil
        }, box.toOpaque())
    }

    func submit(_ job: Job) {
        let size: Int
        switch job { case .pcap(_, _, let f): size = f.count + 16; case .raw(_, let b): size = b.count }
        pthread_mutex_lock(&mutex)
        if queuedBytes + size > maxQueuedBytes {
            dropped += 1
        } else {
            jobs.append(job)
            queuedBytes += size
            pthread_cond_signal(&cond)
        }
        pthread_mutex_unlock(&mutex)
    }

    private func loop() {
        while true {
            pthread_mutex_lock(&mutex)
            while jobs.isEmpty && !stopping { pthread_cond_wait(&cond, &mutex) }
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            queuedBytes = 0
            let stop = stopping
            pthread_mutex_unlock(&mutex)
            for j in batch {
                let err: String?
                switch j {
                case .pcap(let f, let t, let frame): err = f.write(time: t, frame: frame)
                case .raw(let f, let b): err = f.write(b)
                }
                if let e = err { log.error("\(e)") }
            }
            // Flush whenever the queue drains, so tcpdump -r sees recent frames.
            for f in files { if let e = f.flush() { log.error("\(e)") } }
            if stop && batch.isEmpty { return }
        }
    }

    /// Writes everything queued and stops the thread.
    func stop() {
        guard started else { return }
        pthread_mutex_lock(&mutex)
        stopping = true
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
        pthread_join(thread, nil)
        started = false
    }
}

/// `--pcap-dir` and `--record`: what this node applied, emitted and suppressed.
public final class Recorder {
    let writer: BackgroundWriter
    var inFile: PcapFile?
    var outFile: PcapFile?
    var shadowFile: PcapFile?
    var pcaps: [PcapFile] = []
    var record: RawFile?
    var lastCheckpointIndex: UInt64 = 0

    public init(pcapDir: String?, pcapMaxBytes: Int, recordPath: String?, recordHeader: String,
                log: Logger) throws {
        writer = BackgroundWriter(log: log)
        if let dir = pcapDir {
            if mkdir(dir, 0o755) != 0 && errno != EEXIST { throw SystemError("--pcap-dir \(dir)", errno: errno) }
            inFile = try PcapFile(path: dir + "/in.pcap", maxBytes: pcapMaxBytes)
            outFile = try PcapFile(path: dir + "/out.pcap", maxBytes: pcapMaxBytes)
            shadowFile = try PcapFile(path: dir + "/shadow.pcap", maxBytes: pcapMaxBytes)
            pcaps = [inFile!, outFile!, shadowFile!]
            for p in pcaps { writer.register(p) }
        }
        if let r = recordPath {
            let f = try RawFile(path: r)
            record = f
            writer.submit(.raw(f, RecordFormat.header(config: recordHeader)))
        }
        writer.start()
    }

    public var isActive: Bool { inFile != nil || record != nil }

    /// `checkpoint`: the digest the core took right after applying `e`, if one was due.
    func applied(_ e: LogEntry, outputs: [[UInt8]], checkpoint: UInt64?) {
        if let f = inFile, e.kind.isFrame { writer.submit(.pcap(f, e.time, e.payload)) }
        if let r = record {
            var bytes = RecordFormat.entry(e)
            for o in outputs { bytes += RecordFormat.output(o, of: e) }
            if let d = checkpoint {
                bytes += RecordFormat.checkpoint(index: e.index, epoch: e.epoch, time: e.time, digest: d)
                lastCheckpointIndex = e.index
            }
            writer.submit(.raw(r, bytes))
        }
    }

    func emitted(_ o: OutputFrame) { if let f = outFile { writer.submit(.pcap(f, o.time, o.frame)) } }
    func suppressed(_ o: OutputFrame) { if let f = shadowFile { writer.submit(.pcap(f, o.time, o.frame)) } }

    /// Final checkpoint, drain, close.
    func close(replica: Replica) {
        if let r = record, replica.appliedIndex > lastCheckpointIndex {
            writer.submit(.raw(r, RecordFormat.checkpoint(index: replica.appliedIndex, epoch: replica.epoch,
                                                          time: replica.lastTime, digest: replica.digest)))
        }
        writer.stop()
        for p in pcaps { p.close() }
        record?.close()
    }

    var dropped: UInt64 { writer.dropped }
}

/// Creates `path` (or takes an existing file) with mode 0600: recordings and
/// captures hold the clients' traffic and the appliance's configuration.
func createPrivate(_ path: String) throws {
    let fd = Glibc.open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw SystemError("open \(path)", errno: errno) }
    fchmod(fd, 0o600)
    Glibc.close(fd)
}
