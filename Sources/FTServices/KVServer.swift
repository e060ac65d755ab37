import FTWire

/// Connection and server commands of the `kv` service: what redis-cli,
/// redis-benchmark and client libraries send when they connect.
extension KVService {
    static let version = "7.0.0"

    func server(_ op: KVOp, _ a: RESPArgs, _ c: KVConn, now: Int64, out: inout [UInt8]) {
        switch op {
        case .ping:
            if a.count > 2 { out.respError(KVErr.arity("ping")) } else if a.count == 2 { out.respBulk(a[1]) } else { out.respSimple("PONG") }
        case .echo: out.respBulk(a[1])
        case .select:
            guard let n = parseInt64(a[1]) else { out.respError(KVErr.notInteger); return }
            if n != 0 { out.respError("ERR DB index is out of range") } else { out.respOK() }
        case .quit: out.respOK(); c.closing = true
        case .time:
            let us = now * 1000
            out.respArray(2); out.respBulk(String(us / 1_000_000)); out.respBulk(String(us % 1_000_000))
        case .command: command(a, out: &out)
        case .client: client(a, c, out: &out)
        case .config: config(a, out: &out)
        case .info: info(a, now: now, out: &out)
        case .hello:
            if a.count >= 2 {
                guard let v = parseInt64(a[1]) else { out.respError("ERR Protocol version is not an integer or out of range"); return }
                if v != 2 { out.respError("NOPROTO unsupported protocol version"); return }
            }
            var i = 2
            while i < a.count {
                if equalsIgnoringCase(a[i], "SETNAME") && i + 1 < a.count { c.name = Array(a[i + 1]); i += 2 }
                else if equalsIgnoringCase(a[i], "AUTH") && i + 2 < a.count { i += 3 }
                else { out.respError("ERR Syntax error in HELLO option '" + String(decoding: a[i], as: UTF8.self) + "'"); return }
            }
            out.respArray(14)
            out.respBulk("server"); out.respBulk("redis")
            out.respBulk("version"); out.respBulk(Self.version)
            out.respBulk("proto"); out.respInt(2)
            out.respBulk("id"); out.respInt(Int64(c.id))
            out.respBulk("mode"); out.respBulk("standalone")
            out.respBulk("role"); out.respBulk("master")
            out.respBulk("modules"); out.respArray(0)
        default: break
        }
    }

    func unknownSubcommand(_ a: RESPArgs, _ cmd: String, out: inout [UInt8]) {
        out.respError(sanitize("ERR unknown subcommand '\(String(decoding: a[1].prefix(128), as: UTF8.self))'. Try \(cmd) HELP."))
    }


    func commandInfo(_ op: KVOp, out: inout [UInt8]) {
        out.respArray(10)
        out.respBulk(op.rawValue)
        out.respInt(op.arity)
        let readonly: Set<KVOp> = [.get, .mget, .exists, .ttl, .pttl, .strlen, .getrange, .keys, .scan, .dbsize, .type,
                                   .hget, .hgetall, .hlen, .lrange, .llen]
        var f: [StaticString] = op.denyOOM ? ["write", "denyoom"] : readonly.contains(op) ? ["readonly"] : []
        if [.del, .expire, .pexpire, .persist, .flushdb, .flushall, .hdel, .lpop, .rpop].contains(op) { f = ["write"] }
        if [.get, .set, .incr, .decr, .exists, .ttl, .pttl, .strlen, .type, .hget, .hlen, .llen, .lpush, .rpush, .lpop, .rpop, .ping, .echo].contains(op) { f.append("fast") }
        out.respArray(f.count)
        for x in f { out.respSimple(x) }
        let (first, last, step): (Int, Int, Int)
        switch op {
        case .mget, .del, .exists: (first, last, step) = (1, -1, 1)
        case .mset: (first, last, step) = (1, -1, 2)
        case .ping, .echo, .select, .quit, .time, .command, .client, .config, .info, .hello, .keys, .scan, .dbsize, .flushdb, .flushall:
            (first, last, step) = (0, 0, 0)
        default: (first, last, step) = (1, 1, 1)
        }
        out.respInt(first); out.respInt(last); out.respInt(step)
        out.respArray(0); out.respArray(0); out.respArray(0); out.respArray(0)
    }

    func command(_ a: RESPArgs, out: inout [UInt8]) {
        if a.count == 1 {
            out.respArray(KVOp.allCases.count)
            for op in KVOp.allCases { commandInfo(op, out: &out) }
            return
        }
        if equalsIgnoringCase(a[1], "COUNT") { out.respInt(KVOp.allCases.count); return }
        if equalsIgnoringCase(a[1], "LIST") {
            out.respArray(KVOp.allCases.count)
            for op in KVOp.allCases { out.respBulk(op.rawValue) }
            return
        }
        if equalsIgnoringCase(a[1], "DOCS") { out.respArray(0); return }  // no documentation: clients fall back to none
        if equalsIgnoringCase(a[1], "INFO") {
            out.respArray(a.count - 2)
            for i in 2..<a.count {
                if let op = KVOp.byName[upperName(a[i])] { commandInfo(op, out: &out) } else { out.respNullArray() }
            }
            return
        }
        unknownSubcommand(a, "COMMAND", out: &out)
    }

    func clientLine(_ c: KVConn) -> String {
        "id=\(c.id) addr=? laddr=?:\(port) fd=0 name=\(String(decoding: c.name, as: UTF8.self)) db=0 sub=0 psub=0 multi=-1 cmd=client|info\n"
    }

    func client(_ a: RESPArgs, _ c: KVConn, out: inout [UInt8]) {
        if equalsIgnoringCase(a[1], "SETNAME") {
            guard a.count == 3 else { out.respError(KVErr.arity("client|setname")); return }
            guard a[2].allSatisfy({ $0 > 32 && $0 < 127 }) || a[2].isEmpty else {
                out.respError("ERR Client names cannot contain spaces, newlines or special characters."); return
            }
            c.name = Array(a[2].prefix(1024)); out.respOK()
        } else if equalsIgnoringCase(a[1], "GETNAME") {
            if c.name.isEmpty { out.respNull() } else { out.respBulk(c.name) }
        } else if equalsIgnoringCase(a[1], "SETINFO") {
            guard a.count == 4 else { out.respError(KVErr.arity("client|setinfo")); return }
            guard equalsIgnoringCase(a[2], "LIB-NAME") || equalsIgnoringCase(a[2], "LIB-VER") else {
                out.respError("ERR Unrecognized option '" + String(decoding: a[2], as: UTF8.self) + "'"); return
            }
            out.respOK()
        } else if equalsIgnoringCase(a[1], "ID") {
            out.respInt(Int64(c.id))
        } else if equalsIgnoringCase(a[1], "INFO") {
            out.respBulk(clientLine(c))
        } else if equalsIgnoringCase(a[1], "LIST") {
            out.respBulk(conns.keys.sorted().map { clientLine(conns[$0]!) }.joined())
        } else {
            unknownSubcommand(a, "CLIENT", out: &out)
        }
    }

    var configValues: [(String, String)] {
        [("appendonly", "no"), ("databases", "1"), ("maxclients", "4096"), ("maxmemory", String(limits.maxMemoryBytes)),
         ("maxmemory-policy", "noeviction"), ("port", String(port)), ("proto-max-bulk-len", String(limits.maxBulkBytes)),
         ("save", ""), ("timeout", "0")]
    }

    func config(_ a: RESPArgs, out: inout [UInt8]) {
        if equalsIgnoringCase(a[1], "GET") {
            guard a.count >= 3 else { out.respError(KVErr.arity("config|get")); return }
            var hits: [(String, String)] = []
            for (k, v) in configValues {
                if (2..<a.count).contains(where: { globMatch(Array(String(decoding: a[$0], as: UTF8.self).lowercased().utf8)[...], Array(k.utf8)[...]) }) {
                    hits.append((k, v))
                }
            }
            out.respArray(2 * hits.count)
            for (k, v) in hits { out.respBulk(k); out.respBulk(v) }
        } else if equalsIgnoringCase(a[1], "SET") {
            out.respError("ERR CONFIG SET is not supported: ftap kv's limits are replicated configuration (--kv-* flags)")
        } else if equalsIgnoringCase(a[1], "RESETSTAT") {
            commandsProcessed = 0; connectionsReceived = 0; rejectedOOM = 0; protocolErrors = 0
            out.respOK()
        } else {
            unknownSubcommand(a, "CONFIG", out: &out)
        }
    }

    func info(_ a: RESPArgs, now: Int64, out: inout [UInt8]) {
        let all = ["server", "clients", "memory", "stats", "replication", "keyspace"]
        var want: [String] = []
        for i in 1..<a.count {
            let s = String(decoding: a[i], as: UTF8.self).lowercased()
            if s == "all" || s == "everything" || s == "default" { want = all } else if all.contains(s) { want.append(s) }
        }
        if a.count == 1 { want = all }
        var text = ""
        for section in all where want.contains(section) {
            if !text.isEmpty { text += "\r\n" }
            switch section {
            case "server":
                text += "# Server\r\nredis_version:\(Self.version)\r\nredis_mode:standalone\r\nos:ftap\r\narch_bits:64\r\n"
                text += "multiplexing_api:ftap\r\ntcp_port:\(port)\r\nuptime_in_seconds:\(firstTime < 0 ? 0 : (now - firstTime) / 1000)\r\n"
                text += "executable:ftap\r\n"
            case "clients":
                text += "# Clients\r\nconnected_clients:\(conns.count)\r\nmaxclients:4096\r\n"
            case "memory":
                text += "# Memory\r\nused_memory:\(store.usedBytes)\r\nmaxmemory:\(limits.maxMemoryBytes)\r\nmaxmemory_policy:noeviction\r\n"
            case "stats":
                text += "# Stats\r\ntotal_connections_received:\(connectionsReceived)\r\ntotal_commands_processed:\(commandsProcessed)\r\n"
                text += "expired_keys:\(store.expiredKeys)\r\nrejected_oom:\(rejectedOOM)\r\nprotocol_errors:\(protocolErrors)\r\n"
            case "replication":
                text += "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"
            default:
                text += "# Keyspace\r\n"
                if store.count > 0 { text += "db0:keys=\(store.count),expires=\(store.volatileKeys),avg_ttl=0\r\n" }
            }
        }
        out.respBulk(text)
    }
}
