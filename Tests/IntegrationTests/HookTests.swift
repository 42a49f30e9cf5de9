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

    /// Running as root, a hook whose program another user could change is refused when the
    /// file is read (exit 2, one line naming the program), and never runs.
    func testAHookProgramOthersCanChangeIsRefusedAsRoot() throws {
        try requireRoot("the program's owner and mode matter to root only")
        try write("src/a.txt", "hello\n")
        let marker = path("ran")
        try write("bin/hook.sh", "#!/bin/sh\necho ran > \(marker)\n", mode: 0o777)
        try writeConfig(
            definition(
                "h", source: path("src"), destination: path("dst"),
                ["hooks:", "  after: '\(path("bin/hook.sh")) --now'"]))
        let refused = try plugsync("run", "h")
        assertExit(refused, 2)
        XCTAssertEqual(refused.stderrLines.count, 1, "\(refused)")
        XCTAssertTrue(
            refused.stderr.contains("\(path("bin/hook.sh")): is writable by other users (mode 0777")
                && refused.stderr.contains("the after hook of h"), "\(refused)")
        XCTAssertFalse(exists("ran"))
        XCTAssertFalse(exists("dst/a.txt"), "nothing ran")

        try chmod("bin/hook.sh", 0o755)
        try chmod("bin", 0o775)
        let folder = try plugsync("run", "h")
        assertExit(folder, 2)
        XCTAssertTrue(folder.stderr.contains("its folder \(path("bin")) is writable by other users"), "\(folder)")

        try chmod("bin", 0o755)
        assertExit(try plugsync("run", "h"), 0)
        XCTAssertEqual(read("ran"), "ran\n")

        // Checked again when it runs: here the before hook opens the after hook's program to
        // everyone once the file was read, and the after hook is not run.
        try remove("ran")
        try writeConfig(
            definition(
                "h", source: path("src"), destination: path("dst"),
                ["hooks:", "  before: 'chmod 777 \(path("bin/hook.sh"))'", "  after: '\(path("bin/hook.sh"))'"]))
        let late = try plugsync("run", "h")
        assertExit(late, 0)
        XCTAssertTrue(
            late.stdout.contains("Hook after not run: \(path("bin/hook.sh")) is writable by other users"), "\(late)")
        XCTAssertFalse(exists("ran"), "\(late)")
    }
}
