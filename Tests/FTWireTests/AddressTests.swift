import XCTest
@testable import FTWire

final class AddressTests: XCTestCase {

    // MARK: MACAddress

    func testMACParseAndPrintRoundTrip() {
        let m = MACAddress("02:00:00:00:00:10")
        XCTAssertEqual(m?.raw, 0x0200_0000_0010)
        XCTAssertEqual(m?.description, "02:00:00:00:00:10")

        let upper = MACAddress("AA-BB-CC-DD-EE-0F")
        XCTAssertEqual(upper?.raw, 0xAABB_CCDD_EE0F)
        XCTAssertEqual(upper?.description, "aa:bb:cc:dd:ee:0f")  // printed lower case, colon separated

        for text in ["00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "01:23:45:67:89:ab", "fe:dc:ba:98:76:54"] {
            XCTAssertEqual(MACAddress(text)?.description, text, text)
        }
        XCTAssertEqual(MACAddress("ff:ff:ff:ff:ff:ff"), .broadcast)
        XCTAssertEqual(MACAddress("00:00:00:00:00:00"), .zero)
    }

    func testMACRejects() {
        let bad = [
            "", "02:00:00:00:00", "02:00:00:00:00:10:11", "02:00:00:00:00:1", "2:0:0:0:0:10",
            "0g:00:00:00:00:10", "02:00:00:00:00:1z", "02.00.00.00.00.10", "020000000010",
            ":02:00:00:00:00:10", "02:00:00:00:00:10:", "02::00:00:00:00:10", "02:00::00:00:00:10",
            "+2:00:00:00:00:10", "02:00:00:00:00:-1", "02:00-00:00:00:10", " 02:00:00:00:00:10",
            "02:00:00:00:00:10 ", "002:00:00:00:00:10",
        ]
        for text in bad { XCTAssertNil(MACAddress(text), "accepted \(text.debugDescription)") }
    }

    func testMACRawMaskingAndBytes() {
        XCTAssertEqual(MACAddress(raw: 0xFFFF_0200_0000_0010).raw, 0x0200_0000_0010)
        let m = MACAddress(raw: 0x0123_4567_89AB)
        var b: [UInt8] = [0xEE]
        m.write(into: &b)
        XCTAssertEqual(b, [0xEE, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB])
        XCTAssertEqual(MACAddress(bytes: b, at: 1), m)
    }

    func testMACFlags() {
        XCTAssertTrue(MACAddress("01:00:5e:00:00:01")!.isMulticast)
        XCTAssertTrue(MACAddress("33:33:00:00:00:01")!.isMulticast)
        XCTAssertTrue(MACAddress.broadcast.isMulticast)
        XCTAssertTrue(MACAddress.broadcast.isBroadcast)
        XCTAssertFalse(MACAddress("02:00:00:00:00:10")!.isMulticast)
        XCTAssertFalse(MACAddress("02:00:00:00:00:10")!.isBroadcast)
        XCTAssertLessThan(MACAddress("02:00:00:00:00:01")!, MACAddress("02:00:00:00:00:10")!)
    }

    // MARK: IPv4Address

    func testIPv4ParseAndPrintRoundTrip() {
        XCTAssertEqual(IPv4Address("10.0.0.100")?.raw, 0x0A00_0064)
        XCTAssertEqual(IPv4Address("10.0.0.100"), IPv4Address(10, 0, 0, 100))
        for text in ["0.0.0.0", "255.255.255.255", "10.0.0.1", "192.168.1.254", "1.2.3.4", "100.64.0.0"] {
            XCTAssertEqual(IPv4Address(text)?.description, text, text)
        }
        XCTAssertEqual(IPv4Address("0.0.0.0"), .any)
        XCTAssertEqual(IPv4Address("255.255.255.255"), .broadcast)
        XCTAssertLessThan(IPv4Address(10, 0, 0, 1), IPv4Address(10, 0, 0, 100))
        XCTAssertLessThan(IPv4Address(9, 255, 255, 255), IPv4Address(10, 0, 0, 0))
    }

    func testIPv4Rejects() {
        let bad = [
            "", "1.2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.256", "1..2.3", ".1.2.3", "1.2.3.", "a.b.c.d",
            "1.2.3.4a", "1000.0.0.1", "+1.2.3.4", "-0.1.2.3", "1.+2.3.4", " 1.2.3.4", "1.2.3.4 ",
            "01.2.3.4", "1.2.3.04", "1.2.3.4/24", "0x1.2.3.4",
        ]
        for text in bad { XCTAssertNil(IPv4Address(text), "accepted \(text.debugDescription)") }
    }

    // MARK: IPv4Interface

    func testIPv4InterfaceParse() throws {
        let i = try XCTUnwrap(IPv4Interface("10.0.0.100/24"))
        XCTAssertEqual(i.address, IPv4Address(10, 0, 0, 100))
        XCTAssertEqual(i.prefixLength, 24)
        XCTAssertEqual(i.netmask, 0xFFFF_FF00)
        XCTAssertEqual(i.directedBroadcast, IPv4Address(10, 0, 0, 255))
        XCTAssertEqual(i.description, "10.0.0.100/24")

        let all = try XCTUnwrap(IPv4Interface("0.0.0.0/0"))
        XCTAssertEqual(all.netmask, 0)
        XCTAssertEqual(all.directedBroadcast, .broadcast)
        let host = try XCTUnwrap(IPv4Interface("192.168.7.9/32"))
        XCTAssertEqual(host.netmask, 0xFFFF_FFFF)
        XCTAssertEqual(host.directedBroadcast, IPv4Address(192, 168, 7, 9))
        XCTAssertEqual(IPv4Interface("172.16.5.4/12")?.netmask, 0xFFF0_0000)
        XCTAssertEqual(IPv4Interface("172.16.5.4/12")?.directedBroadcast, IPv4Address(172, 31, 255, 255))
        for text in ["10.0.0.100/24", "1.2.3.4/0", "1.2.3.4/32", "10.1.2.3/8"] {
            XCTAssertEqual(IPv4Interface(text)?.description, text)
        }
    }

    func testIPv4InterfaceRejects() {
        let bad = [
            "10.0.0.1", "10.0.0.1/", "/24", "10.0.0.1/33", "10.0.0.1/-1", "10.0.0.1/+24", "10.0.0.1/24/1",
            "10.0.0.1/ 24", "10.0.0.1/2a", "10.0.0/24", "10.0.0.1/024", "10.0.0.1/100",
        ]
        for text in bad { XCTAssertNil(IPv4Interface(text), "accepted \(text.debugDescription)") }
    }
}
