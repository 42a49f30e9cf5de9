import SyncEngine
import XCTest

/// The one escaping of text that reaches a terminal or a log (`TerminalText`).
final class TerminalTextTests: XCTestCase {
    func testControlsC1AndBidiAreEscapedAsTheirBytes() {
        XCTAssertEqual(TerminalText.escaped("plain name.txt"), "plain name.txt")
        XCTAssertEqual(TerminalText.escaped("caf\u{E9} \u{4E2D}"), "caf\u{E9} \u{4E2D}", "letters stay")
        XCTAssertEqual(TerminalText.escaped("a\u{1B}[2Jb\n\t\u{7F}"), "a\\x1b[2Jb\\x0a\\x09\\x7f")
        XCTAssertEqual(TerminalText.escaped("x\u{9B}31m\u{85}"), "x\\xc2\\x9b31m\\xc2\\x85")
        for (scalar, bytes) in [
            ("\u{061C}", "\\xd8\\x9c"), ("\u{200E}", "\\xe2\\x80\\x8e"), ("\u{200F}", "\\xe2\\x80\\x8f"),
            ("\u{202A}", "\\xe2\\x80\\xaa"), ("\u{202E}", "\\xe2\\x80\\xae"), ("\u{2066}", "\\xe2\\x81\\xa6"),
            ("\u{2069}", "\\xe2\\x81\\xa9"), ("\u{2028}", "\\xe2\\x80\\xa8"),
        ] {
            XCTAssertEqual(TerminalText.escaped("a" + scalar + "b"), "a" + bytes + "b")
        }
        XCTAssertEqual(TerminalText.escaped("one\ntwo\u{1B}\n", keepingNewlines: true), "one\ntwo\\x1b\n")
    }

    func testFileNamesUseTheSameEscaping() {
        XCTAssertEqual(FileName("rlo\u{202E}txt.exe").description, "rlo\\xe2\\x80\\xaetxt.exe")
        XCTAssertEqual(FileName("csi\u{9B}2J").description, "csi\\xc2\\x9b2J")
        XCTAssertEqual(FileName(bytes: [0x61, 0x9B, 0x1B]).description, "a\\x9b\\x1b", "bytes that are not UTF-8")
    }
}
