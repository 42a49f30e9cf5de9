import XCTest

@testable import Devices

final class BlockDeviceTests: XCTestCase {
    func testDecodeUdevEscapes() {
        XCTAssertEqual(BlockDevices.decodeUdevEscapes("My\\x20Disk\\x20\\xc3\\xa9"), "My Disk é")
        XCTAssertEqual(BlockDevices.decodeUdevEscapes("PLAIN"), "PLAIN")
        XCTAssertEqual(BlockDevices.decodeUdevEscapes("a\\x2"), "a\\x2")
        XCTAssertEqual(BlockDevices.decodeUdevEscapes("a\\xZZ"), "a\\xZZ")
    }

    func testDeviceNumberEncoding() {
        for (major, minor) in [(7, 0), (8, 17), (254, 0), (259, 1_048_575), (4095, 255)] as [(UInt32, UInt32)] {
            let split = DeviceNumber.split(DeviceNumber.make(major: major, minor: minor))
            XCTAssertEqual(split.major, major)
            XCTAssertEqual(split.minor, minor)
        }
        XCTAssertEqual(DeviceNumber.make(major: 8, minor: 17), 0x811)
    }

    /// Works with or without udevd and as any user: every mounted block device is listed, by
    /// device number, even when udev has no data about it.
    func testEnumerateListsEveryMountedBlockDevice() throws {
        let devices = try BlockDevices.enumerate()
        let numbers = Set(devices.map { DeviceNumber.make(major: $0.major, minor: $0.minor) })
        for entry in try MountTable.read() where entry.source.hasPrefix("/dev/") {
            guard let number = SystemFiles.blockDeviceNumber(of: entry.source) else { continue }
            XCTAssertTrue(
                numbers.contains(DeviceNumber.make(major: number.major, minor: number.minor)),
                "\(entry.source) mounted on \(entry.mountPoint) is missing from \(devices.map(\.devnode))")
        }
        for device in devices {
            XCTAssertTrue(device.devnode.hasPrefix("/dev/"), device.devnode)
            XCTAssertFalse(device.sysName.isEmpty)
        }
    }

    func testDeviceLookupMisses() {
        XCTAssertNil(BlockDevices.device(major: 4095, minor: 1_048_000))
        XCTAssertNil(BlockDevices.device(path: "/dev/null"))
        XCTAssertNil(BlockDevices.device(path: "/nonexistent"))
    }

    func testErrorDescription() {
        let error = DeviceError.system("cannot read /x", errno: ENOENT)
        XCTAssertEqual(error.description, "cannot read /x: No such file or directory")
        XCTAssertEqual(error.errno, ENOENT)
    }
}
