import XCTest

@testable import Devices

final class TimestampPrecisionTests: XCTestCase {
    private func mount(_ fsType: String, source: String, major: UInt32 = 0, minor: UInt32 = 99) -> MountEntry {
        MountEntry(
            mountID: 1, parentID: 0, major: major, minor: minor, root: "/", mountPoint: "/mnt/x",
            options: ["rw"], fsType: fsType, source: source, superOptions: ["rw"])
    }

    func testMappingByFilesystemType() {
        XCTAssertEqual(TimestampPrecision.of(mount("vfat", source: "/dev/sdb1")), .twoSeconds)
        XCTAssertEqual(TimestampPrecision.of(mount("msdos", source: "/dev/sdb1")), .twoSeconds)
        XCTAssertEqual(TimestampPrecision.of(mount("fuse.fusefat", source: "fusefat")), .twoSeconds)
        XCTAssertEqual(TimestampPrecision.of(mount("exfat", source: "/dev/sdb1")), .oneSecond)
        XCTAssertEqual(TimestampPrecision.of(mount("fuse.exfat", source: "/dev/sdb1")), .oneSecond)
        XCTAssertEqual(TimestampPrecision.of(mount("ntfs3", source: "/dev/sdb1")), .hundredNanoseconds)
        XCTAssertEqual(TimestampPrecision.of(mount("ext4", source: "/dev/vda")), .exact)
        XCTAssertEqual(TimestampPrecision.of(mount("tmpfs", source: "tmpfs")), .exact)
        XCTAssertEqual(TimestampPrecision.of(mount("btrfs", source: "/dev/sda2")), .exact)
        XCTAssertNil(TimestampPrecision.forFilesystemType("fuseblk"))
    }

    func testFuseblkWithoutReadableDeviceOrUdevIsOneSecond() {
        // No such device node and no such device number: the safe guess.
        let entry = mount("fuseblk", source: "/dev/plugsync-no-such-device", major: 4095, minor: 1_048_000)
        XCTAssertEqual(TimestampPrecision.of(entry), .oneSecond)
        XCTAssertEqual(TimestampPrecision.of(mount("fuseblk", source: "not-a-device")), .oneSecond)
    }

    func testFuseblkOrderOfEvidence() {
        XCTAssertEqual(TimestampPrecision.resolveFuseblk(bootSectorType: "exfat", udevType: { "ntfs" }), .oneSecond)
        XCTAssertEqual(
            TimestampPrecision.resolveFuseblk(bootSectorType: "ntfs", udevType: { nil }), .hundredNanoseconds)
        XCTAssertEqual(TimestampPrecision.resolveFuseblk(bootSectorType: "vfat", udevType: { nil }), .twoSeconds)
        XCTAssertEqual(TimestampPrecision.resolveFuseblk(bootSectorType: nil, udevType: { "vfat" }), .twoSeconds)
        XCTAssertEqual(TimestampPrecision.resolveFuseblk(bootSectorType: nil, udevType: { nil }), .oneSecond)
        // An unknown udev type is not evidence of exactness behind fuseblk … but it maps to exact
        // by the general rule, which is right for e.g. ext4 through fuse2fs.
        XCTAssertEqual(TimestampPrecision.resolveFuseblk(bootSectorType: nil, udevType: { "ext4" }), .exact)
    }

    func testBootSectorSniffing() {
        var sector = [UInt8](repeating: 0, count: 512)
        XCTAssertNil(TimestampPrecision.sniffFilesystemType(bootSector: sector))
        sector.replaceSubrange(3..<11, with: Array("EXFAT   ".utf8))
        XCTAssertEqual(TimestampPrecision.sniffFilesystemType(bootSector: sector), "exfat")
        sector.replaceSubrange(3..<11, with: Array("NTFS    ".utf8))
        XCTAssertEqual(TimestampPrecision.sniffFilesystemType(bootSector: sector), "ntfs")
        sector.replaceSubrange(3..<11, with: Array("mkfs.fat".utf8))
        sector.replaceSubrange(0x36..<0x3E, with: Array("FAT16   ".utf8))
        XCTAssertEqual(TimestampPrecision.sniffFilesystemType(bootSector: sector), "vfat")
        sector.replaceSubrange(0x36..<0x3E, with: [UInt8](repeating: 0, count: 8))
        sector.replaceSubrange(0x52..<0x5A, with: Array("FAT32   ".utf8))
        XCTAssertEqual(TimestampPrecision.sniffFilesystemType(bootSector: sector), "vfat")
        XCTAssertNil(TimestampPrecision.sniffFilesystemType(bootSector: Array("EXF".utf8)))
        XCTAssertNil(TimestampPrecision.sniffFilesystemType(devicePath: "/nonexistent"))
    }

    func testOrderingAndDescription() {
        XCTAssertLessThan(TimestampPrecision.exact, .oneSecond)
        XCTAssertEqual(max(TimestampPrecision.oneSecond, .twoSeconds), .twoSeconds)
        XCTAssertEqual(TimestampPrecision.twoSeconds.seconds, 2)
        XCTAssertEqual(TimestampPrecision.twoSeconds.description, "2 s")
        XCTAssertEqual(TimestampPrecision.hundredNanoseconds.description, "100 ns")
        XCTAssertTrue(TimestampPrecision.exact.isExact)
        XCTAssertEqual(TimestampPrecision(nanoseconds: 0), .exact)
    }

    func testPrecisionOfPath() throws {
        let entries = MountTable.parse(MountTableTests.sample)
        XCTAssertEqual(TimestampPrecision.of(path: "/mnt/ab/photo.jpg", in: entries), .twoSeconds)
        XCTAssertEqual(TimestampPrecision.of(path: "/home", in: entries), .exact)
        XCTAssertNil(TimestampPrecision.of(path: "relative", in: entries))
    }
}
