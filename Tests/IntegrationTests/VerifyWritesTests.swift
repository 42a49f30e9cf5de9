import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `verify: true` on a definition: each file a run copies is read back from the destination and
/// compared with what was sent before it gets its final name.
final class VerifyWritesTests: IntegrationTestCase {
    let old = FileTime(1_790_000_000)

    /// The same changes through two definitions, one with `verify: true`, to `destination` and
    /// `plain`: the same action lines, the same files, and nothing said about reading back.
    func checkCleanRun(_ destination: String, _ plain: String, extra: [String] = []) throws {
        try write("src/a.txt", "alpha\n")
        try write("src/big.bin", randomData(3 << 20, seed: 7))
        try write("src/sub/c.txt", "charlie\n")
        try write("src/empty", "")
        try writeConfig(
            definition("v", source: path("src"), destination: destination, ["verify: true"] + extra),
            definition("p", source: path("src"), destination: plain, extra))
        let first = try plugsync("run", "v")
        XCTAssertEqual(first.status, 0, "\(first)")
        XCTAssertEqual(try plugsync("run", "p").status, 0)
        try write("src/a.txt", "alpha, longer now\n")
        try write("src/big.bin", randomData((3 << 20) + 1, seed: 8))  // another size: FAT keeps 2 s
        try write("src/new.txt", "new\n")
        let verified = try plugsync("run", "v")
        let unverified = try plugsync("run", "p")
        XCTAssertEqual(verified.status, 0, "\(verified)")
        XCTAssertEqual(verified.actions.sorted(), unverified.actions.sorted(), "\(verified)\n\(unverified)")
        XCTAssertEqual(verified.actions("Copying").count, 3, "\(verified)")
        XCTAssertEqual(verified.stderr, "", "\(verified)")
        XCTAssertFalse(verified.stdout.contains("read back"), "\(verified)")
        for file in ["a.txt", "big.bin", "sub/c.txt", "empty", "new.txt"] {
            XCTAssertTrue(filesEqual(path("src/" + file), destination + "/" + file), file)
        }
        XCTAssertEqual(temporaryFiles(in: destination), [])
    }

    func testAVerifiedRunToAFolderSaysNothingMore() throws {
        try checkCleanRun(path("dst"), path("plain"))
    }

    func testAVerifiedRunToAnExt4DriveWithVersions() throws {
        try requireLoopDrives(["ext4"])
        let drive = try makeLoopDrive("verified", kind: "ext4")
        try checkCleanRun(drive.mount + "/v", drive.mount + "/p", extra: ["versions: {}"])
        let kept = try FileManager.default.subpathsOfDirectory(atPath: drive.mount + "/v/.plugsync-versions")
            .filter { $0.hasSuffix("a.txt") || $0.hasSuffix("big.bin") }
        XCTAssertEqual(kept.count, 2, "a good copy keeps the version as usual: \(kept)")
        XCTAssertNil(try fsckLoopDrive(drive))
    }

    func testAVerifiedRunToAFATDrive() throws {
        try requireLoopDrives(["fat"])
        let drive = try makeLoopDrive("verifiedfat", kind: "fat")
        try checkCleanRun(drive.mount + "/v", drive.mount + "/p")
        XCTAssertNil(try fsckLoopDrive(drive))
    }

    /// A replacement and a new file whose copies read back wrong: one failed line each, the
    /// temporary files gone, the old file under its name and not versioned; the other files are
    /// copied (and versioned) as usual, and the run exits 1. Without `verify`, the same storage
    /// takes the same files without a word: only reading back finds them.
    func testACopyThatReadsBackWrongKeepsTheOldFile() throws {
        let backing = path("backing")
        let mount = path("mnt")
        try mountCorrupting(backing, at: mount, pattern: "*bad*")
        let first = randomData(256 << 10, seed: 1)
        try write("backing/dst/bad.bin", "the old file\n", mtime: old)
        try write("backing/dst/good.bin", "the old good file\n", mtime: old)
        try write("src/bad.bin", first)
        try write("src/good.bin", randomData(200 << 10, seed: 2))
        try write("src/newbad.txt", String(repeating: "a new file that reads back wrong\n", count: 500))
        try writeConfig(
            definition(
                "v", source: path("src"), destination: mount + "/dst", ["verify: true", "versions: {}"]),
            definition("p", source: path("src"), destination: mount + "/plain"))

        let run = try plugsync("run", "v")
        XCTAssertEqual(run.status, 1, "\(run)")
        XCTAssertEqual(
            run.stderrActions.sorted(),
            [
                action("Failed", "destination file not found; read back differs from what was sent", "newbad.txt"),
                action("Failed", "destination file size differs; read back differs from what was sent", "bad.bin"),
            ], "\(run)")
        XCTAssertTrue(
            run.stdoutActions.contains(action("Copying", "destination file size differs", "good.bin")), "\(run)")
        XCTAssertEqual(run.stdoutActions.filter { $0.contains("bad") }, [], "no Versioning of a bad copy\n\(run)")
        XCTAssertTrue(run.summary?.contains("1 versioned") == true, "\(run)")
        XCTAssertTrue(run.summary?.contains("2 failed") == true, "\(run)")

        XCTAssertEqual(read("backing/dst/bad.bin"), "the old file\n", "the final name keeps the old file")
        XCTAssertEqual(mtime("backing/dst/bad.bin"), Int64(old.seconds) * 1_000_000_000)
        XCTAssertFalse(exists("backing/dst/newbad.txt"))
        XCTAssertTrue(filesEqual(path("src/good.bin"), path("backing/dst/good.bin")))
        XCTAssertEqual(temporaryFiles(in: path("backing/dst")), [])
        let versions = try FileManager.default.subpathsOfDirectory(atPath: path("backing/dst/.plugsync-versions"))
        XCTAssertEqual(
            versions.filter { $0.hasSuffix(".bin") }.map { ($0 as NSString).lastPathComponent }, ["good.bin"])

        // The storage keeps what it is given: without verify the same files go in silently.
        let plain = try plugsync("run", "p")
        XCTAssertEqual(plain.status, 0, "\(plain)")
        XCTAssertTrue(filesEqual(path("src/bad.bin"), path("backing/plain/bad.bin")))

        // The next verified run tries again, and fails again: nothing pretends it is done.
        let again = try plugsync("run", "v")
        XCTAssertEqual(again.status, 1, "\(again)")
        XCTAssertEqual(again.stderrActions.count, 2, "\(again)")
        XCTAssertEqual(read("backing/dst/bad.bin"), "the old file\n")
    }
}

/// Storage that returns other bytes than it was given.
extension IntegrationTestCase {
    /// Mounts Tests/Fixtures/corrupting-fs.py over `backing` at `mount`: files are stored as
    /// written, and reads of those whose name matches `pattern` get their first byte inverted.
    /// `serverCache`: the pages are dropped at each open and other users let in (for an FTP
    /// server's user, who opens each file it sends).
    func mountCorrupting(_ backing: String, at mount: String, pattern: String, serverCache: Bool = false) throws {
        try requireRoot("a FUSE mount", tools: ["fusermount"])
        try FileManager.default.createDirectory(atPath: backing, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        // Debian's python3-fusepy is for the system's python3 (scripts/setup installs it).
        let python = FileManager.default.fileExists(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3"
        let hasFusepy = try shell(
            "\(python) -c 'import fusepy' 2>/dev/null || \(python) -c 'import fuse' 2>/dev/null && echo yes; true")
        XCTAssertEqual(hasFusepy, "yes\n", "fusepy is missing: scripts/setup installs python3-fusepy")
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: python.hasPrefix("/") ? python : try which(python))
        daemon.arguments =
            [fixtureScript("corrupting-fs.py"), backing, mount, "--corrupt", pattern]
            + (serverCache ? ["--cache", "open", "--allow-other"] : [])
        daemon.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try daemon.run()
        addTeardownBlock { [self] in
            unmount(mount, fuse: true)
            if daemon.isRunning { kill(daemon.processIdentifier, SIGKILL) }
            daemon.waitUntilExit()
        }
        try waitForMount(mount)
    }
}
