import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `plugsync run` at a terminal: a pseudo-terminal (Tests/Fixtures/pty-run.py) is its standard
/// input, output and error, and what it writes is read back as a terminal would show it.
final class TerminalTests: IntegrationTestCase {
    /// Runs plugsync on a pseudo-terminal; `typing` is typed once `after` has been shown.
    func atTerminal(_ arguments: [String], typing: (after: String, bytes: String)? = nil) throws -> CommandResult {
        var wrapper = ["python3", fixtureScript("pty-run.py")]
        if let typing { wrapper += ["--type-after", typing.after, typing.bytes] }
        return try plugsync(arguments: arguments, wrapper: wrapper + ["--"])
    }

    /// The lines left on the screen by `output`: a carriage return goes back to the start of the
    /// line, `ESC [ K` erases to its end, other characters overwrite what is under the cursor.
    static func screen(_ output: String) -> [String] {
        var lines: [String] = []
        // The terminal's own CR LF (for each LF the program wrote) is a new line; in Swift it is
        // one Character, so it goes before the split.
        let text = output.replacingOccurrences(of: "\r\n", with: "\n")
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line: [Character] = []
            var cursor = 0
            var rest = Substring(raw)
            while let character = rest.first {
                rest = rest.dropFirst()
                if character == "\r" {
                    cursor = 0
                } else if character == "\u{1B}" {
                    let sequence = rest.prefix { !$0.isLetter }
                    rest = rest.dropFirst(sequence.count)
                    if rest.first == "K" { line.removeSubrange(min(cursor, line.count)...) }
                    rest = rest.dropFirst()
                } else {
                    if cursor < line.count { line[cursor] = character } else { line.append(character) }
                    cursor += 1
                }
            }
            lines.append(String(line))
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }

    /// A first copy big enough to draw the progress bar: it shows while files are copied and is
    /// gone when the summary is printed; the action lines and the summary stay.
    func testTheProgressBarShowsAndIsClearedAtTheEnd() throws {
        let block = Data(repeating: 0x5A, count: 256 * 1024)
        for i in 0..<200 { try write("src/d\(i % 10)/f\(i).bin", block) }
        try writeConfig(definition("docs", source: path("src"), destination: path("dst"), ["parallel: 1"]))
        let result = try atTerminal(["run", "docs"])
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertTrue(
            result.stdout.contains("files  ") && result.stdout.contains("ETA "), "no progress bar:\n\(result)")
        let screen = Self.screen(result.stdout)
        XCTAssertFalse(screen.contains { $0.contains("ETA ") }, "a progress bar was left on the screen:\n\(screen)")
        XCTAssertTrue(screen.last?.hasPrefix("Done: 200 copied") == true, "\(screen.suffix(3))")
        XCTAssertEqual(screen.filter { $0.hasPrefix("Copying ") }.count, 200, "\(screen.suffix(5))")
    }

    /// Ctrl-C typed at the terminal while a run is under way (its before hook, which ignores
    /// the signal, holds it): the run stops with its counts on the screen and exit 130.
    func testCtrlCAtTheTerminalStopsTheRun() throws {
        for i in 0..<5 { try write("src/f\(i).txt", "file \(i)\n") }
        try writeConfig(
            definition(
                "docs", source: path("src"), destination: path("dst"),
                ["hooks:", "  before: 'trap \"\" INT; echo hook-started; sleep 1'"]))
        let result = try atTerminal(["run", "docs"], typing: (after: "hook-started", bytes: "\\x03"))
        XCTAssertEqual(result.status, 130, "\(result)")
        let screen = Self.screen(result.stdout)
        XCTAssertTrue(
            screen.contains {
                $0.hasPrefix(
                    "Stopped: 0 copied (0 B), 0 folders created, 0 deleted, 0 skipped, 0 failed, 5 not started")
            },
            "\(screen)")
        XCTAssertTrue(
            screen.contains { $0.hasPrefix("plugsync: docs: Stopped by SIGINT (Ctrl-C)") }, "\(screen)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("dst/f0.txt")), "a file was copied after Ctrl-C")
        let status = try plugsync("status")
        XCTAssertTrue(status.lines.contains { $0.hasPrefix("docs ") && $0.contains(" stopped ") }, "\(status)")
    }
}
