import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `plugsync init-drive`: the File Check file on a real drive, and the lines that match it.
final class InitDriveTests: IntegrationTestCase {
    // MARK: init-drive

    func testInitDriveWritesAFileCheckAndPrintsItsLines() throws {
        try requireLoopDrives(["ext4"])
        try requireRoot("udevd", tools: ["udevadm"])
        let label = "PSINIT" + String(UInt32.random(in: 0...UInt32.max), radix: 16, uppercase: true)
        let drive = try makeLoopDrive("init", kind: "ext4", label: label)
        try ensureUdevd()
        try shell("udevadm trigger --action=change \(drive.device) && udevadm settle --timeout=20")
        try waitForUdevLabel(drive.device, label)
        try mkdir("mnt-init/backups")

        let first = try plugsync("init-drive", drive.mount + "/backups", config: nil)
        assertExit(first, 0)
        assertNoCrash(first)
        let content = try XCTUnwrap(read("mnt-init/.plugsync-id"), "\(first)")
        let id = String(content.dropLast())
        XCTAssertTrue(content.hasSuffix("\n"), content)
        XCTAssertEqual(id.count, 24, content)
        XCTAssertTrue(id.allSatisfy(\.isHexDigit), content)
        for expected in [
            "destination:", "device:", "label: \(label)", "directory: backups",
            "file_check: '.plugsync-id=^\(id)$'",
            "--destination device:label=\(label),directory=backups --destination-check '.plugsync-id=^\(id)$'",
        ] {
            XCTAssertTrue(first.lines.contains { $0.hasSuffix(expected) }, "no line ends with \(expected)\n\(first)")
        }
        XCTAssertEqual(temporaryFiles(in: drive.mount), [], "a temporary file was left on the drive")

        // Kept without --force, whichever way the drive is named.
        for target in [drive.mount, "device:label=\(label)"] {
            let again = try plugsync("init-drive", target, config: nil)
            assertExit(again, 2)
            XCTAssertTrue(again.stderr.contains("exists already") && again.stderr.contains(id), "\(again)")
            XCTAssertEqual(read("mnt-init/.plugsync-id"), content)
        }

        // The printed option makes a definition that runs on this drive.
        try write("src/a.txt", "a\n")
        let add = try plugsync(
            "add", "usb", "--source", path("src"), "--destination", "device:label=\(label),directory=backups",
            "--destination-check", ".plugsync-id=^\(id)$")
        assertExit(add, 0)
        let run = try plugsync("run", "usb")
        assertExit(run, 0)
        XCTAssertEqual(read("mnt-init/backups/a.txt"), "a\n", "\(run)")

        // --force: a new id; the definition that checks the old one refuses the drive.
        let forced = try plugsync("init-drive", "device:label=\(label)", "--force", config: nil)
        assertExit(forced, 0)
        let newContent = try XCTUnwrap(read("mnt-init/.plugsync-id"))
        XCTAssertNotEqual(newContent, content)
        XCTAssertTrue(forced.stdout.contains("--destination device:label=\(label) --destination-check"), "\(forced)")
        assertExit(try plugsync("run", "usb"), 3)

        // A folder of the system's own filesystem is no drive.
        let notADrive = try plugsync("init-drive", "/", config: nil)
        assertExit(notADrive, 2)
        XCTAssertTrue(notADrive.stderr.contains("is not on a drive"), "\(notADrive)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/.plugsync-id"))
    }

    /// A FAT drive through fusefat: no hard links there, and udev knows no identity of a FUSE
    /// mount, so the drive is recognized by its File Check alone.
    func testInitDriveOnAFatDrive() throws {
        try requireLoopDrives(["fat"])
        let drive = try makeLoopDrive("fat", kind: "fat")
        let first = try plugsync("init-drive", drive.mount, config: nil)
        assertExit(first, 0)
        let content = try XCTUnwrap(read("mnt-fat/.plugsync-id"), "\(first)")
        let id = String(content.dropLast())
        XCTAssertEqual(id.count, 24, content)
        XCTAssertEqual(temporaryFiles(in: drive.mount), [])
        XCTAssertTrue(
            first.lines.contains("--destination device: --destination-check '.plugsync-id=^\(id)$'"), "\(first)")
        XCTAssertTrue(first.lines.contains("device: {}"), "\(first)")
        assertExit(try plugsync("init-drive", drive.mount, config: nil), 2)
        XCTAssertEqual(read("mnt-fat/.plugsync-id"), content)

        // An id and a file name of the user's choosing; bad ones are refused, naming the option.
        let chosen = try plugsync("init-drive", drive.mount, "--id", "ana-blue", "--file", ".other-id", config: nil)
        assertExit(chosen, 0)
        XCTAssertEqual(read("mnt-fat/.other-id"), "ana-blue\n")
        XCTAssertTrue(chosen.stdout.contains("--destination-check '.other-id=^ana-blue$'"), "\(chosen)")
        for (arguments, start) in [
            (["--id", "a b", "--file", ".third"], "plugsync: --id: "),
            (["--file", "sub/id"], "plugsync: --file sub/id: "),
        ] {
            let bad = try plugsync(arguments: ["init-drive", drive.mount] + arguments, config: nil)
            assertExit(bad, 2)
            XCTAssertTrue(bad.stderr.hasPrefix(start), "\(bad)")
        }
        XCTAssertFalse(exists("mnt-fat/.third") || exists("mnt-fat/sub"))

        // The printed option makes a definition that finds the drive by its File Check.
        try write("src/a.txt", "a\n")
        let add = try plugsync(
            "add", "fat", "--source", path("src"), "--destination", "device:", "--destination-check",
            ".plugsync-id=^\(id)$")
        assertExit(add, 0)
        let run = try plugsync("run", "fat")
        assertExit(run, 0)
        XCTAssertEqual(read("mnt-fat/a.txt"), "a\n", "\(run)")
    }

    /// The drive is untrusted: a symbolic link in the File Check file's place is neither read
    /// (its target's content is not shown) nor written through (`--force` replaces the link).
    func testInitDriveNeverFollowsALinkOnTheDrive() throws {
        try requireLoopDrives(["ext4"])
        let drive = try makeLoopDrive("links", kind: "ext4")
        try write("outside/secret.txt", "the host's secret\n")
        try symlink("mnt-links/.plugsync-id", to: path("outside/secret.txt"))

        let kept = try plugsync("init-drive", drive.mount, config: nil)
        assertExit(kept, 2)
        XCTAssertTrue(kept.stderr.contains("exists already"), "\(kept)")
        XCTAssertFalse(kept.stderr.contains("secret"), "the link's target was read\n\(kept)")

        let forced = try plugsync("init-drive", drive.mount, "--force", config: nil)
        assertExit(forced, 0)
        XCTAssertEqual(read("outside/secret.txt"), "the host's secret\n", "written through the link")
        var st = stat()
        XCTAssertEqual(lstat(drive.mount + "/.plugsync-id", &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFREG, "the link is still there")
        XCTAssertEqual(read("mnt-links/.plugsync-id")?.count, 25)
        XCTAssertEqual(temporaryFiles(in: drive.mount), [])
    }
}
