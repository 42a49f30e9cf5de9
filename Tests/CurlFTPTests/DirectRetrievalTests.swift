import XCTest

@testable import CurlFTP

final class DirectRetrievalTests: XCTestCase {
    func testEPSVPorts() {
        XCTAssertEqual(DataConnection.epsvPort("Entering Extended Passive Mode (|||6446|)"), 6446)
        XCTAssertEqual(DataConnection.epsvPort("Entering Extended Passive Mode (!!!65535!)"), 65535)
        XCTAssertEqual(DataConnection.epsvPort("ok (|||1|) trailing"), 1)
        for bad in [
            "Entering Extended Passive Mode", "(|||99999|)", "(|||0|)", "(|||port|)", "(||6446|)", "(|!|6446|)",
            "(|||6446", "(|||6446!)", "(|||)", "(", "(|||123456789012345678901234567890|)",
        ] {
            XCTAssertNil(DataConnection.epsvPort(bad), bad)
        }
    }

    func testPASVPorts() {
        XCTAssertEqual(DataConnection.pasvPort("Entering Passive Mode (127,0,0,1,25,46)."), 25 * 256 + 46)
        XCTAssertEqual(DataConnection.pasvPort("Entering Passive Mode 10,0,0,5,0,21"), 21)
        for bad in [
            "Entering Passive Mode", "(127,0,0,1,25)", "(127,0,0,1,256,1)", "(127,0,0,1,0,0)", "(1,2,3,4,5,6,7)",
            "(127,0,0,1,99999999999999999999,1)",
        ] {
            XCTAssertNil(DataConnection.pasvPort(bad), bad)
        }
    }

    func testTheEndOfTheFirstReply() {
        func end(_ text: String) -> Int? { ReplyReader.endOfFirstReply(Array(text.utf8)) }
        XCTAssertEqual(end("229 Entering (|||5|)\r\n150 next\r\n"), 21)
        XCTAssertNil(end("229 Entering (|||5|)"), "no line feed yet")
        XCTAssertNil(end(""))
        // A multi-line reply ends at its code and a space, not at another code's line.
        let multi = "211-Features:\r\n MLSD\r\n150 not the end\r\n211 End\r\n226 next\r\n"
        XCTAssertEqual(end(multi), multi.utf8.count - "226 next\r\n".utf8.count - 1)
        XCTAssertNil(end("211-Features:\r\n MLSD\r\n"))
        // Lines that are no reply (text without a code) are passed over, as FTPReply.parse does.
        XCTAssertEqual(end("hello\n226 done\n"), 14)
        XCTAssertEqual(end("226\n"), 3, "a bare code ends a reply")
        // Whatever the end, parse reads exactly one reply there.
        let bytes = Array(multi.utf8)
        let replies = FTPReply.parse(Array(bytes[...end(multi)!]))
        XCTAssertEqual(replies.map(\.code), [211])
    }
}
