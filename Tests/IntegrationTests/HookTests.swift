import Foundation
import XCTest

/// `hooks:` run around `plugsync run` too, with the run's facts in the environment.
final class HookTests: IntegrationTestCase {
    func testHooksSeeTheRunsFactsAndBeforeCanRefuse() throws {
        try write("src/a.txt", "hello\n")
        let out = path("hooks.txt")
        let record =
            "echo \"$PLUGSYNC_STAGE $PLUGSYNC_NAME $PLUGSYNC_TRIGGER $PLUGSYNC_RESULT $PLUGSYNC_COPIED $PLUGSYNC_BYTES $PLUGSYNC_FAILED\" >> \(out)"
        try writeConfig(
            definition(
                "h", source: path("src"), destination: path("dst"),
                ["hooks:", "  before: '\(record)'", "  after: '\(record)'", "  on_error: '\(record)'"]))
        let first = try plugsync("run", "h")
        assertExit(first, 0)
        XCTAssertEqual(read("hooks.txt"), "before h manual    \nafter h manual success 1 6 0\n")

        try writeConfig(
            definition(
                "h", source: path("src"), destination: path("dst"),
                ["hooks:", "  before: 'exit 4'", "  on_error: '\(record)'"]))
        try remove("hooks.txt")
        let refused = try plugsync("run", "h")
        assertExit(refused, 3)
        XCTAssertTrue(refused.stderr.contains("the before hook failed (exit status 4)"), "\(refused)")
        XCTAssertEqual(read("hooks.txt"), "on_error h manual refused 0 0 0\n")

        let dry = try plugsync("run", "h", "--dry-run")
        assertExit(dry, 0)
        XCTAssertEqual(read("hooks.txt"), "on_error h manual refused 0 0 0\n", "no hooks on a dry run")
    }
}
