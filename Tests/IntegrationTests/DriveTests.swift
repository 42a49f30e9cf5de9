import Foundation
import XCTest

/// Real drives: loop devices carrying FAT (fusefat), exFAT (exfat-fuse) and ext4, real mounts and
/// a real systemd-udevd. Needs root: skipped otherwise, except with CI=true, where it fails.
final class DriveTests: IntegrationTestCase {
    // MARK: coarse timestamps

    func testFatDestinationSecondRunCopiesNothing() throws {
        try requireRoot(
            "loop devices and FUSE mounts", tools: ["truncate", "mkfs.vfat", "losetup", "fusefat", "fusermount"])
        let image = try makeImage("fat.img")
        try shell("mkfs.vfat -n PSFAT \(quote(image)) >/dev/null")
        let device = try attach(image)
        let mount = try mountPoint("fat")
        try shell("fusefat -o rw+ \(device) \(quote(mount))")
        addTeardownBlock { [self] in unmount(mount, fuse: true) }
        try waitForMount(mount)
        try coarseDestinationRuns(mount: mount, tolerance: 2_000_000_000)
    }

    func testExfatDestinationSecondRunCopiesNothing() throws {
        try requireRoot(
            "loop devices and FUSE mounts",
            tools: ["truncate", "mkfs.exfat", "losetup", "mount.exfat-fuse", "fusermount"])
        let image = try makeImage("exfat.img")
        try shell("mkfs.exfat -L PSEXFAT \(quote(image)) >/dev/null")
        let device = try attach(image)
        let mount = try mountPoint("exfat")
        try shell("mount.exfat-fuse \(device) \(quote(mount)) >/dev/null 2>&1")
        addTeardownBlock { [self] in unmount(mount, fuse: true) }
        try waitForMount(mount)
        try coarseDestinationRuns(mount: mount, tolerance: 1_000_000_000)
    }

    /// First run copies everything; the second copies nothing although the drive kept coarser
    /// times; a real change (10 s newer) is still seen.
    private func coarseDestinationRuns(mount: String, tolerance: Int64) throws {
        // Odd seconds and fractions, which FAT and exFAT cannot store.
        try write("src/report.txt", "quarterly report\n", mtime: FileTime(1_700_000_001, 700_000_000))
        try write("src/photo.jpg", randomData(300_000, seed: 7), mtime: FileTime(1_700_000_003, 999_999_999))
        try write("src/Notes/todo list.txt", "- buy milk\n", mtime: FileTime(1_700_000_005, 123_456_789))
        try write("src/Notes/deep/x.bin", randomData(5_000, seed: 8), mtime: FileTime(1_700_000_007, 1))
        try write("src/even.txt", "even second\n", mtime: FileTime(1_700_000_010, 0))
        let destination = mount + "/backup"
        try writeConfig(definition("usb", source: path("src"), destination: destination))

        let first = try plugsync("run", "usb")
        assertExit(first, 0)
        assertNoCrash(first)
        XCTAssertEqual(first.actions("Copying").count, 5, "\(first)")
        XCTAssertEqual(first.actions("Failed"), [], "\(first)")
        try assertSameTree(path("src"), destination, modes: false, folderTimes: false, tolerance: tolerance)

        let second = try plugsync("run", "usb", "-v")
        assertExit(second, 0)
        XCTAssertEqual(
            second.actions.filter { !$0.hasPrefix("Skipping ") }, [],
            "the second run onto a coarse drive must copy nothing\n\(second)")
        XCTAssertEqual(second.actions("Skipping").count, 5, "\(second)")
        XCTAssertTrue(second.summary?.hasPrefix("Done: 0 copied") == true, "\(second)")

        try setMtime("src/report.txt", FileTime(1_700_000_011, 700_000_000))
        let third = try plugsync("run", "usb")
        assertExit(third, 0)
        XCTAssertEqual(
            third.actions("Copying"), [action("Copying", "destination file is older", "report.txt")], "\(third)")
    }

    // MARK: a drive found by label and File Check

    func testExt4DriveByLabelWithFileCheck() throws {
        try requireRoot(
            "loop devices, mounts and udevd", tools: ["truncate", "mkfs.ext4", "losetup", "udevadm", "mount", "umount"])
        let token = String(UInt32.random(in: 0...UInt32.max), radix: 16, uppercase: true)
        let label = "PSEXT" + token
        let otherLabel = "PSEXT" + String(UInt32.random(in: 0...UInt32.max), radix: 16, uppercase: true)
        let right = try makeDrive(label: label, name: "right", id: "x-\(token)")
        let wrong = try makeDrive(label: otherLabel, name: "wrong", id: "y-\(token)")

        try write("src/a.txt", "a\n", mtime: FileTime(1_700_000_000, 111))
        try write("src/sub/b.txt", "b\n", mtime: FileTime(1_700_000_001, 222))
        let check = "file_check: \".plugsync-id=^x-\(token)$\""
        try writeConfig(
            deviceDefinition("right", device: ["label: \(label)", "directory: backups"], check: check),
            deviceDefinition("wrong", device: ["label: \(otherLabel)", "directory: backups"], check: check),
            deviceDefinition("absent", device: ["label: PSNONE\(token)", "directory: backups"], check: check),
            deviceDefinition("by-check", device: ["directory: by-check"], check: check))

        let first = try plugsync("run", "right")
        assertExit(first, 0)
        assertNoCrash(first)
        XCTAssertTrue(
            first.lines.contains {
                $0.hasPrefix("Destination drive") && $0.contains(label) && $0.hasSuffix("mounted at \(right)")
            },
            "\(first)")
        XCTAssertTrue(first.lines.contains("Synchronizing \(right)/backups from \(path("src"))"), "\(first)")
        try assertSameTree(path("src"), right + "/backups")
        XCTAssertEqual(try String(contentsOfFile: right + "/.plugsync-id", encoding: .utf8), "x-\(token)\n")

        let second = try plugsync("run", "right")
        assertExit(second, 0)
        XCTAssertEqual(second.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(second)")

        // The other drive's File Check content does not match: refused, nothing written.
        let refused = try plugsync("run", "wrong")
        assertRefused(
            refused, name: "wrong", because: ["File Check of the destination failed", "content does not match"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: wrong + "/backups"), "\(refused)")

        // A drive that is not there.
        let absent = try plugsync("run", "absent")
        assertRefused(absent, name: "absent", because: ["not mounted"])

        // Recognized by its File Check alone, among all mounted filesystems.
        let byCheck = try plugsync("run", "by-check")
        assertExit(byCheck, 0)
        try assertSameTree(path("src"), right + "/by-check")
    }

    private func deviceDefinition(_ name: String, device: [String], check: String) -> String {
        (["  - name: \(name)", "    source:", "      local: '\(path("src"))'", "    destination:", "      device:"]
            + device.map { "        " + $0 } + ["      " + check]).joined(separator: "\n") + "\n"
    }

    /// An ext4 image with a label, attached, announced to udev, mounted, with `.plugsync-id`.
    private func makeDrive(label: String, name: String, id: String) throws -> String {
        let image = try makeImage("\(name).img")
        try shell("mkfs.ext4 -q -F -L \(label) \(quote(image))")
        let device = try attach(image)
        try ensureUdevd()
        try shell("udevadm trigger --action=change \(device) && udevadm settle --timeout=20")
        try waitForUdevLabel(device, label)
        let mount = try mountPoint(name)
        try shell("mount \(device) \(quote(mount))")
        addTeardownBlock { [self] in unmount(mount, fuse: false) }
        try (id + "\n").write(toFile: mount + "/.plugsync-id", atomically: false, encoding: .utf8)
        return mount
    }
}
