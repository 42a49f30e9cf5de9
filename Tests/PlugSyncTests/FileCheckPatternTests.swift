import SyncEngine
import SystemSupport
import XCTest

@testable import PlugSync

#if canImport(Glibc)
    import Glibc
#endif

/// The File Check's own regex matcher answers as glibc's `regexec` does, without backtracking.
final class FileCheckPatternTests: XCTestCase {
    /// A pattern compiled by glibc's `regcomp`, or nil when it refuses it.
    private final class Glibc {
        var regex = regex_t()
        init?(_ pattern: String) {
            guard regcomp(&regex, pattern, REG_EXTENDED | REG_NOSUB) == 0 else { return nil }
        }
        deinit { regfree(&regex) }
        func matches(_ subject: [UInt8]) -> Bool {
            (subject + [0]).withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { regexec(&regex, $0.baseAddress!, 0, nil, 0) == 0 }
            }
        }
    }

    /// Random patterns over a small alphabet of bytes and operators, random subjects: wherever
    /// glibc takes the pattern and has no back-reference in it, both say the same.
    func testAgreesWithGlibcOnRandomPatterns() throws {
        let seed: UInt64 = 0x5EED_F11E
        var state = seed
        func next(_ bound: Int) -> Int {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return Int(state % UInt64(bound))
        }
        let pieces = [
            "a", "b", "ab", ".", "^", "$", "|", "(", ")", "*", "+", "?", "{2}", "{1,2}", "{,1}", "{0}", "[ab]", "[^a]",
            "[a-c]", "[[:alpha:]]", "[]a]", "\\.", "\\w", "\\W", "\\s", "\\b", "\\B", "\\<", "\\>", "\\`", "\\'",
            " ", "-", "_", "\n",
        ]
        let letters: [UInt8] = Array("ab _.\n-c".utf8) + [0xC3]
        var compared = 0
        var disagreements: [String] = []
        var refusedByUsOnly: [String] = []
        for _ in 0..<1500 {
            let pattern = (0..<(1 + next(7))).map { _ in pieces[next(pieces.count)] }.joined()
            guard let glibc = Glibc(pattern) else { continue }
            guard let ours = try? FileCheckPattern(pattern) else {
                refusedByUsOnly.append(pattern)
                continue
            }
            for _ in 0..<12 {
                let subject = (0..<next(7)).map { _ in letters[next(letters.count)] }
                let expected = glibc.matches(subject)
                let got = ours.matches(subject, deadline: Condition.now() + 5) == .matched
                compared += 1
                if got != expected {
                    disagreements.append("\(pattern.debugDescription) on \(subject): glibc \(expected), ours \(got)")
                }
            }
        }
        print(
            "file check regex: \(compared) comparisons with glibc (seed \(seed)), \(disagreements.count) disagreements")
        XCTAssertGreaterThan(compared, 8_000)
        XCTAssertEqual(disagreements.prefix(20), [], "\(disagreements.count) disagreements")
        XCTAssertEqual(refusedByUsOnly.prefix(20), [], "patterns glibc takes and the File Check refuses")
    }

    func testBackReferencesAreRefused() {
        for pattern in ["^(.*)\\1$", "(a)(b)?\\2"] {
            XCTAssertThrowsError(try FileCheck(parsing: ".id=\(pattern)")) { error in
                XCTAssertTrue("\(error)".contains("back-reference"), "\(error)")
            }
        }
        // A backslash before a digit inside brackets is two bytes of a set, not a back-reference.
        XCTAssertNoThrow(try FileCheck(parsing: ".id=^[\\1]$"))
    }

    func testHugeRepetitionsAreRefused() {
        XCTAssertThrowsError(try FileCheck(parsing: ".id=(a{1000}){1000}")) { error in
            XCTAssertTrue("\(error)".contains("too large"), "\(error)")
        }
        XCTAssertThrowsError(try FileCheck(parsing: ".id=((){1000}){1000}"))
    }

    /// Patterns that make a backtracking matcher exponential, on 64 KiB made to hurt them: each
    /// answer within well under the second a File Check allows.
    func testAdversarialContentMatchesInLinearTime() throws {
        let content = [UInt8](repeating: UInt8(ascii: "a"), count: FileCheck.contentLimit)
        for pattern in ["(a*)*b", "(a|aa)*b", "^(a+)+$x", "(.*a){20}b", "^(a|a?)+c$", "(\\w+\\s?)*!"] {
            let check = try FileCheck(parsing: ".id=\(pattern)")
            let start = Condition.now()
            let failure = check.contentFailure(content, where: ".id")
            let seconds = Condition.now() - start
            XCTAssertEqual(failure, ".id: content does not match \"\(pattern)\"")
            XCTAssertLessThan(seconds, 1, pattern)
        }
        let check = try FileCheck(parsing: ".id=^a{3}(a*)a$")
        XCTAssertNil(check.contentFailure(content, where: ".id"))
    }

    /// A pattern whose DFA has a state per position (`(a|b)*a(a|b){400}c` on random a and b)
    /// builds a state for every byte: the check still ends within its second, and fails.
    func testAPatternWithoutAFiniteDFAGivesUpWithinTheSecond() throws {
        var state: UInt64 = 0x5EED
        let content = (0..<FileCheck.contentLimit).map { _ -> UInt8 in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state & 1 == 0 ? UInt8(ascii: "a") : UInt8(ascii: "b")
        }
        let check = try FileCheck(parsing: ".id=(a|b)*a(a|b){400}c")
        let start = Condition.now()
        let failure = check.contentFailure(content, where: ".id")
        let seconds = Condition.now() - start
        XCTAssertLessThan(seconds, 1.3)
        XCTAssertNotNil(failure)
        print("file check regex: (a|b)*a(a|b){400}c on 64 KiB: \(failure ?? "") after \(seconds) s")
    }

    func testPathsAreNormalizedOnce() throws {
        for (written, normalized) in [
            ("./.plugsync-id", ".plugsync-id"), ("meta/./id", "meta/id"), ("a//b", "a/b"), ("/x/./y//z", "/x/y/z"),
            (".//.plugsync-id", ".plugsync-id"),
        ] {
            let check = try FileCheck(parsing: written + "=^x$")
            XCTAssertEqual(check.path, normalized)
            XCTAssertEqual(check.description, normalized + "=^x$")
        }
        for bad in ["../x", "a/../b", ".", "./", "/", "//"] {
            XCTAssertThrowsError(try FileCheck(parsing: bad), bad)
        }
        XCTAssertEqual(
            try FileCheck(parsing: "./meta//id").relativePath(onDriveAt: "/media/x", directory: "./meta/"),
            FileName("id"))
        XCTAssertEqual(
            try FileCheck(parsing: "/media/x/./meta/id").relativePath(onDriveAt: "/media/x/", directory: "meta"),
            FileName("id"))
        XCTAssertEqual(try FileCheck(parsing: "/srv//d/./id").relativePath(under: "/srv/d/"), FileName("id"))
    }
}
