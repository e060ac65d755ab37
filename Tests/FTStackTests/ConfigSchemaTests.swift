import XCTest
import FTTestSupport
import FTWire
@testable import FTStack

final class ConfigSchemaTests: XCTestCase {

    func allFieldsSet() -> StackConfig {
        var c = StackConfig(mac: MACAddress("02:aa:bb:cc:dd:ee")!, interface: IPv4Interface("192.168.7.9/20")!)
        c.mtu = 9000; c.isnKey = (0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210)
        c.maxConnections = 17; c.synBacklog = 3; c.sendBufferBytes = 12_345; c.receiveBufferBytes = 54_321
        c.windowScale = 3; c.maxOutOfOrderSegments = 9; c.rtoInitial = 2 * ms; c.rtoMin = 1 * ms; c.rtoMax = 9 * ms
        c.maxRetransmits = 4; c.synAckRetries = 2; c.msl = 5 * ms; c.finWait2Timeout = 6 * ms; c.ttl = 33
        c.keepaliveIdle = 7 * ms; c.keepaliveInterval = 8 * ms; c.keepaliveProbes = 5; c.idleTimeout = 10 * ms
        c.zeroWindowTimeout = 11 * ms; c.maxConnectionsPerSource = 12; c.minPathMTU = 600
        c.tsoMaxBytes = 13_000
        return c
    }

    func testDecodeInvertsEncode() throws {
        let c = allFieldsSet()
        var w = ByteWriter()
        c.encode(into: &w)
        var r = ByteReader(w.bytes)
        XCTAssertEqual(try StackConfig.decode(&r), c)
        XCTAssertEqual(r.remaining, 0)
        for n in 0..<w.bytes.count {
            var cut = ByteReader(Array(w.bytes[0..<n]))
            XCTAssertThrowsError(try StackConfig.decode(&cut), "prefix \(n)")
        }
    }

    /// The schema keeps the byte layout the hand-written encoder had, so the
    /// configuration digest two nodes compare is unchanged.
    func testLayoutIsTheOriginalOne() {
        let c = allFieldsSet()
        var old = ByteWriter()
        old.u64(c.mac.raw); old.u32(c.interface.address.raw); old.int(c.interface.prefixLength); old.int(c.mtu)
        old.u64(c.isnKey.0); old.u64(c.isnKey.1); old.int(c.maxConnections); old.int(c.synBacklog)
        old.int(c.sendBufferBytes); old.int(c.receiveBufferBytes); old.u8(c.windowScale); old.int(c.maxOutOfOrderSegments)
        old.u64(c.rtoInitial); old.u64(c.rtoMin); old.u64(c.rtoMax); old.int(c.maxRetransmits); old.int(c.synAckRetries)
        old.u64(c.msl); old.u64(c.finWait2Timeout); old.u8(c.ttl)
        // Version 2 appends the TCP resource limits.
        old.u64(c.keepaliveIdle); old.u64(c.keepaliveInterval); old.int(c.keepaliveProbes); old.u64(c.idleTimeout)
        old.u64(c.zeroWindowTimeout); old.int(c.maxConnectionsPerSource); old.int(c.minPathMTU)
        // Version 3 appends the TCP segmentation offload limit.
        old.int(c.tsoMaxBytes)
        var w = ByteWriter()
        c.encode(into: &w)
        XCTAssertEqual(w.bytes, old.bytes)
        XCTAssertEqual(StackConfig.encodingVersion, 3, "the layout above is version 3; a new layout needs a new version")
    }

    /// Every stored field of StackConfig is in the schema (by its readable
    /// name), except the simulator-only salt. Adding a field without adding
    /// it to `schema` fails here.
    func testEveryFieldIsInTheSchema() {
        let names: [String: String] = [
            "mac": "mac", "interface": "ip", "mtu": "mtu", "isnKey": "isn-key", "maxConnections": "max-connections",
            "synBacklog": "syn-backlog", "sendBufferBytes": "send-buffer", "receiveBufferBytes": "recv-buffer",
            "windowScale": "window-scale", "maxOutOfOrderSegments": "max-ooo-segments", "rtoInitial": "rto-initial-ns",
            "rtoMin": "rto-min-ns", "rtoMax": "rto-max-ns", "maxRetransmits": "max-retransmits",
            "synAckRetries": "synack-retries", "msl": "msl-ns", "finWait2Timeout": "fin-wait2-timeout-ns", "ttl": "ttl",
            "keepaliveIdle": "keepalive-idle-ns", "keepaliveInterval": "keepalive-interval-ns",
            "keepaliveProbes": "keepalive-probes", "idleTimeout": "idle-timeout-ns",
            "zeroWindowTimeout": "zero-window-timeout-ns", "maxConnectionsPerSource": "max-conns-per-source",
            "minPathMTU": "min-path-mtu", "tsoMaxBytes": "tso-max-bytes",
        ]
        let notEncoded: Set<String> = ["sabotageISNSalt"]
        let c = allFieldsSet()
        let stored = Mirror(reflecting: c).children.compactMap(\.label)
        XCTAssertEqual(stored.count, 27)
        let schemaNames = c.text.map(\.0)
        XCTAssertEqual(Set(schemaNames).count, schemaNames.count, "schema names are unique")
        for field in stored where !notEncoded.contains(field) {
            guard let n = names[field] else { XCTFail("StackConfig.\(field) is not in StackConfig.schema"); continue }
            XCTAssertTrue(schemaNames.contains(n), "StackConfig.\(field) is not in StackConfig.schema as \(n)")
        }
        XCTAssertEqual(schemaNames.count, stored.count - notEncoded.count)
    }

    func testTextIsReadable() {
        let t = allFieldsSet().text
        XCTAssertEqual(t.first?.0, "mac"); XCTAssertEqual(t.first?.1, "02:aa:bb:cc:dd:ee")
        XCTAssertTrue(t.contains { $0 == ("ip", "192.168.7.9/20") })
        XCTAssertTrue(t.contains { $0 == ("isn-key", "0123456789abcdeffedcba9876543210") })
        XCTAssertTrue(t.contains { $0 == ("rto-min-ns", "1000000") })
        XCTAssertFalse(t.contains { $0.1.contains(" ") || $0.1.isEmpty }, "values never contain spaces")
    }

    func testUnusableValuesAreRefused() {
        let base = allFieldsSet()
        let bad: [(String, (inout StackConfig) -> Void)] = [
            ("ip prefix length", { $0.interface.prefixLength = 33 }), ("mtu", { $0.mtu = 20 }),
            ("window-scale", { $0.windowScale = 15 }), ("syn-backlog", { $0.synBacklog = -1 }),
            ("recv-buffer", { $0.receiveBufferBytes = -5 }), ("min-path-mtu", { $0.minPathMTU = 9001 }),
            ("keepalive-probes", { $0.keepaliveProbes = -1 }),
        ]
        for (name, edit) in bad {
            var c = base
            edit(&c)
            var w = ByteWriter()
            c.encode(into: &w)
            var r = ByteReader(w.bytes)
            XCTAssertThrowsError(try StackConfig.decode(&r)) { e in
                XCTAssertTrue("\(e)".contains("invalid \(name)"), "\(e)")
            }
        }
    }
}
