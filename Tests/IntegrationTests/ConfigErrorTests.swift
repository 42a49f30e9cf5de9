import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Every mistake in the definitions file: exit code 2, one line on stderr naming the file, the
/// line, the field and the problem, never a crash or a stack trace, and nothing touched.
final class ConfigErrorTests: IntegrationTestCase {
    /// A valid definition first (lines 2-6), so that the broken one starts at line 7.
    /// Lines 2-6 of the file (the broken definition starts at line 7).
    private func good() -> String {
        [
            "  - name: good", "    source:", "      local: '\(path("src"))'", "    destination:",
            "      local: '\(path("dst"))'",
        ]
        .joined(separator: "\n") + "\n"
    }

    private func bad(_ lines: [String]) -> String {
        (["  - name: bad"] + lines.map { "    " + $0 }).joined(separator: "\n") + "\n"
    }

    private let endpoints = ["source:", "  local: /tmp/a", "destination:", "  local: /tmp/b"]

    func testUnknownKey() throws {
        // line 7 "- name: bad", 8-11 endpoints, 12 the unknown key
        try assertConfigError(bad(endpoints + ["colour: red"]), atLine: 12, field: "colour", problem: "unknown key")
    }

    func testBadRegexInIgnore() throws {
        try assertConfigError(
            bad(endpoints + ["ignore: ['\\.tmp$', '(unclosed']"]), atLine: 12, field: "ignore", problem: "(unclosed")
    }

    /// A shell pattern where a regex is expected: the error says how to write it.
    func testAGlobInIgnoreIsExplained() throws {
        try assertConfigError(
            bad(endpoints + ["ignore: ['*.tmp']"]), atLine: 12, field: "ignore",
            problem: "for a shell pattern write glob:*.tmp")
    }

    func testBadScheduleTime() throws {
        try assertConfigError(
            bad(endpoints + ["schedule:", "  - days: [mon, fri]", "    at: \"25:00\""]), atLine: 14, field: "at",
            problem: "25:00")
    }

    func testRelativeLocalPath() throws {
        try assertConfigError(
            bad(["source:", "  local: relative/dir", "destination:", "  local: /tmp/b"]), atLine: 9, field: "local",
            problem: "relative/dir")
    }

    func testDuplicateName() throws {
        let duplicate = bad(endpoints).replacingOccurrences(of: "name: bad", with: "name: good")
        try assertConfigError(duplicate, atLine: 7, field: "name", problem: "good")
    }

    func testMissingDestination() throws {
        try assertConfigError(
            bad(["source:", "  local: /tmp/a", "type: mirror"]), atLine: 7, field: "destination", problem: "missing")
    }

    func testBadVersions() throws {
        try assertConfigError(
            bad(endpoints + ["versions:", "  keep_days: soon"]), atLine: 13, field: "versions.keep_days",
            problem: "soon")
        try assertConfigError(
            bad(endpoints + ["versions:", "  keep_min: -1"]), atLine: 13, field: "versions.keep_min",
            problem: "between 0 and")
        try assertConfigError(
            bad(endpoints + ["versions:", "  keep_min: 5", "  keep_max: 3"]), atLine: 13, field: "versions.keep_min",
            problem: "more than keep_max")
        try assertConfigError(
            bad(endpoints + ["versions:", "  keep_dayz: 3"]), atLine: 13, field: "versions.keep_dayz",
            problem: "did you mean \"keep_days\"")
        try assertConfigError(
            bad(endpoints + ["versions: 30"]), atLine: 12, field: "versions", problem: "must be a mapping")
    }

    func testBadTypeAndMaxDelete() throws {
        try assertConfigError(bad(endpoints + ["type: sideways"]), atLine: 12, field: "type", problem: "sideways")
        try assertConfigError(bad(endpoints + ["max_delete: lots"]), atLine: 12, field: "max_delete", problem: "lots")
    }

    func testBadMaxAgeAndNotify() throws {
        try assertConfigError(bad(endpoints + ["max_age: a week"]), atLine: 12, field: "max_age", problem: "a week")
        try assertConfigError(bad(endpoints + ["max_age: 7y"]), atLine: 12, field: "max_age", problem: "30m, 12h or 7d")
        try assertConfigError(
            bad(endpoints + ["notify:", "  url: ftp://example.org/x"]), atLine: 13, field: "notify.url",
            problem: "not an http:// or https:// URL")
        try assertConfigError(
            bad(endpoints + ["notify:", "  events: [failure, sometimes]"]), atLine: 13, field: "notify.events",
            problem: "\"sometimes\" is not one of start, success, failure, overdue, removable")
        try assertConfigError(
            bad(endpoints + ["notify:", "  desktop: maybe"]), atLine: 13, field: "notify.desktop", problem: "maybe")
        try assertConfigError(
            bad(endpoints + ["notify:", "  uri: https://example.org"]), atLine: 13, field: "notify.uri",
            problem: "did you mean \"url\"")
        try assertConfigError(
            bad(endpoints + ["notify: https://example.org"]), atLine: 12, field: "notify", problem: "must be a mapping")
    }

    func testNotYAML() throws {
        try assertConfigError(bad(["source: [unclosed", "destination:"]), atLine: nil, field: nil, problem: "YAML")
    }

    func testMissingConfigFile() throws {
        let missing = path("nope/plugsync.yaml")
        let result = try plugsync("run", "good", config: missing)
        assertExit(result, 2)
        assertNoCrash(result)
        XCTAssertEqual(result.stderrLines.count, 1, "\(result)")
        XCTAssertTrue(result.stderr.contains(missing), "\(result)")
        XCTAssertFalse(exists("nope"), "a failed load created folders")
    }

    func testControlAndBidiCharactersInAValueAreEscaped() throws {
        // ESC, U+009B (a one-character CSI), U+202E (right-to-left override), U+2066, a line break.
        try assertConfigError(
            bad(endpoints + ["type: \"a\\e[2J\\u009B\\u202Eb\\u2066\\nc\""]), atLine: 12, field: "type",
            problem: "a\\x1b[2J\\xc2\\x9b\\xe2\\x80\\xaeb\\xe2\\x81\\xa6\\x0ac")
    }

    /// Running as root, a definitions file other users may write is refused like a mistake in
    /// it: one line naming the file and the problem, exit 2, nothing touched.
    func testAFileOthersCanWriteIsRefusedAsRoot() throws {
        try requireRoot("the file's owner and mode matter to root only")
        try write("src/data.txt", "data\n")
        try mkdir("dst")
        try writeConfig(good())
        for mode: mode_t in [0o666, 0o664, 0o602] {
            Glibc.chmod(configPath, mode)
            for arguments in [["run", "good"], ["list"], ["check", "good"]] {
                let result = try plugsync(arguments: arguments)
                assertExit(result, 2)
                XCTAssertEqual(result.stderrLines.count, 1, "\(result)")
                XCTAssertTrue(
                    result.stderr.contains(
                        "\(configPath): is writable by other users (mode 0\(String(mode, radix: 8)))"),
                    "\(result)")
                XCTAssertFalse(exists("dst/data.txt"), "\(result)")
            }
        }
        Glibc.chmod(configPath, 0o644)
        assertExit(try plugsync("run", "good"), 0)
    }

    /// Writes `good` + `broken`, runs `run good`, `list` and `check good`, and checks each
    /// refuses with one line naming `file:line`, the field and the problem.
    private func assertConfigError(
        _ broken: String, atLine line: Int?, field: String?, problem: String, file: StaticString = #filePath,
        line testLine: UInt = #line
    ) throws {
        try write("src/data.txt", "data\n")
        try mkdir("dst")
        try writeConfig(good(), broken)
        let configBefore = try Data(contentsOf: URL(fileURLWithPath: configPath))
        let treeBefore = try snapshot(root)
        for arguments in [["run", "good"], ["list"], ["check", "good"], ["run", "--all"]] {
            let result = try plugsync(arguments: arguments)
            assertExit(result, 2, file: file, line: testLine)
            assertNoCrash(result, file: file, line: testLine)
            XCTAssertEqual(result.stdout, "", "\(result)", file: file, line: testLine)
            XCTAssertEqual(result.stderrLines.count, 1, "one line on stderr\n\(result)", file: file, line: testLine)
            let message = result.stderrLines.first ?? ""
            XCTAssertTrue(message.contains(configPath), "names the file: \(message)", file: file, line: testLine)
            if let line {
                XCTAssertTrue(
                    message.contains("\(configPath):\(line):"), "names line \(line): \(message)", file: file,
                    line: testLine)
            }
            if let field {
                XCTAssertTrue(
                    message.contains(field), "names the field \(field): \(message)", file: file, line: testLine)
            }
            XCTAssertTrue(message.contains(problem), "says \(problem): \(message)", file: file, line: testLine)
        }
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: configPath)), configBefore, "the file changed", file: file,
            line: testLine)
        let treeAfter = try snapshot(root).filter { !$0.key.hasPrefix("state") }
        XCTAssertEqual(
            treeAfter, treeBefore.filter { !$0.key.hasPrefix("state") }, "files changed", file: file, line: testLine)
    }
}
