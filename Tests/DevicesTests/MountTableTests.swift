import XCTest

@testable import Devices

final class MountTableTests: XCTestCase {
    /// Lines as this machine's kernel prints them (see notes/test-servers.md), plus escapes,
    /// optional fields and an empty source.
    static let sample = """
        22 27 0:21 / /proc rw,relatime - proc proc rw
        27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard,resv_strict
        42 27 7:0 / /mnt/a rw,relatime shared:40 master:3 - ext4 /dev/loop0 rw
        43 27 0:39 / /mnt/ab rw,nosuid,nodev,relatime - fuse.fusefat fusefat rw,user_id=0,group_id=0
        44 27 7:0 / /media/My\\040Disk rw,nosuid,nodev,relatime - fuseblk /dev/loop0 rw,user_id=0,group_id=0,default_permissions,allow_other,blksize=4096
        45 42 7:0 /sub/dir /mnt/a/tab\\011back\\134slash\\012nl ro,relatime - ext4 /dev/loop0 rw
        46 27 0:50 / /scratch rw - tmpfs  rw,size=1024k
        47 42 0:51 / /mnt/a rw,relatime - tmpfs tmpfs rw
        this line is garbage
        48 27 7:5 / /no-dash rw ext4 /dev/loop5 rw
        49 27 7-5 / /bad-devnum rw - ext4 /dev/loop5 rw
        x 27 7:5 / /bad-id rw - ext4 /dev/loop5 rw
        50 27 7:6 / /no-source rw -
        51 27 7:7 / /no-super-options rw - ext4 /dev/loop7
        """

    func testParsesFieldsOptionalFieldsAndEscapes() throws {
        let entries = MountTable.parse(Self.sample)
        XCTAssertEqual(entries.map(\.mountID), [22, 27, 42, 43, 44, 45, 46, 47, 51])

        let root = entries[1]
        XCTAssertEqual(root.parentID, 1)
        XCTAssertEqual(root.major, 254)
        XCTAssertEqual(root.minor, 0)
        XCTAssertEqual(root.mountPoint, "/")
        XCTAssertEqual(root.optionalFields, ["shared:1"])
        XCTAssertEqual(root.fsType, "ext4")
        XCTAssertEqual(root.source, "/dev/vda")
        XCTAssertEqual(root.superOptions, ["rw", "discard", "resv_strict"])

        let loop = entries[2]
        XCTAssertEqual(loop.optionalFields, ["shared:40", "master:3"])
        XCTAssertEqual(loop.options, ["rw", "relatime"])

        let fat = entries[3]
        XCTAssertEqual(fat.fsType, "fuse.fusefat")
        XCTAssertEqual(fat.source, "fusefat")
        XCTAssertEqual(fat.major, 0)
        XCTAssertEqual(fat.minor, 39)
        XCTAssertEqual(fat.superOptions, ["rw", "user_id=0", "group_id=0"])

        let exfat = entries[4]
        XCTAssertEqual(exfat.mountPoint, "/media/My Disk")
        XCTAssertEqual(exfat.fsType, "fuseblk")
        XCTAssertEqual(exfat.source, "/dev/loop0")
        XCTAssertEqual(exfat.optionalFields, [])

        let bind = entries[5]
        XCTAssertEqual(bind.root, "/sub/dir")
        XCTAssertEqual(bind.mountPoint, "/mnt/a/tab\tback\\slash\nnl")
        XCTAssertTrue(bind.isReadOnly)

        let tmp = entries[6]
        XCTAssertEqual(tmp.source, "")
        XCTAssertEqual(tmp.fsType, "tmpfs")
        XCTAssertEqual(tmp.superOptions, ["rw", "size=1024k"])

        XCTAssertEqual(entries[8].superOptions, [])
        XCTAssertEqual(entries[8].source, "/dev/loop7")
    }

    func testUnescapeKeepsStrayBackslashesAndDecodesUTF8() {
        XCTAssertEqual(MountTable.unescape(Array("a\\040b".utf8)[...]), "a b")
        XCTAssertEqual(MountTable.unescape(Array("a\\09".utf8)[...]), "a\\09")
        XCTAssertEqual(MountTable.unescape(Array("end\\".utf8)[...]), "end\\")
        XCTAssertEqual(MountTable.unescape(Array("\\303\\251t\\303\\251".utf8)[...]), "été")
    }

    func testParsesBytesAndCRLFAndMissingFinalNewline() {
        let text = "27 1 254:0 / / rw - ext4 /dev/vda rw\r\n28 27 0:5 / /run rw - tmpfs tmpfs rw"
        let entries = MountTable.parse(bytes: Array(text.utf8))
        XCTAssertEqual(entries.count, 2)
        XCTAssertEqual(entries[0].superOptions, ["rw"])
        XCTAssertEqual(entries[1].mountPoint, "/run")
        XCTAssertEqual(MountTable.parse(""), [])
    }

    func testReadsTheRealTable() throws {
        let entries = try MountTable.read()
        XCTAssertFalse(entries.isEmpty)
        let root = try XCTUnwrap(MountTable.mount(containing: "/", in: entries))
        XCTAssertEqual(root.mountPoint, "/")
        XCTAssertNotNil(MountTable.mount(containing: "/proc/self", in: entries))
    }

    func testReadOfMissingFileThrowsClearError() {
        XCTAssertThrowsError(try MountTable.read(path: "/nonexistent/mountinfo")) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains("/nonexistent/mountinfo"), text)
            XCTAssertTrue(text.contains("No such file"), text)
        }
    }

    // MARK: Lookup

    func testLongestPrefixOnComponentBoundary() throws {
        let entries = MountTable.parse(Self.sample)
        func mountPoint(_ path: String) -> String? { MountTable.mount(containing: path, in: entries)?.mountPoint }
        XCTAssertEqual(mountPoint("/mnt/ab"), "/mnt/ab")
        XCTAssertEqual(mountPoint("/mnt/ab/x/y"), "/mnt/ab")
        XCTAssertEqual(mountPoint("/mnt/abc"), "/")
        XCTAssertEqual(mountPoint("/mnt/a/b"), "/mnt/a")
        XCTAssertEqual(mountPoint("/mnt"), "/")
        XCTAssertEqual(mountPoint("/mnt/"), "/")
        XCTAssertEqual(mountPoint("/media/My Disk/photos"), "/media/My Disk")
        XCTAssertEqual(mountPoint("/media/My"), "/")
        XCTAssertEqual(mountPoint("/mnt//ab///c/"), "/mnt/ab")
        XCTAssertEqual(mountPoint("/proc"), "/proc")
        XCTAssertNil(mountPoint("relative/path"))
        XCTAssertNil(mountPoint(""))
        XCTAssertNil(MountTable.mount(containing: "/x", in: []))
    }

    func testStackedMountLastWins() throws {
        let entries = MountTable.parse(Self.sample)
        // 47 (tmpfs) was mounted on top of 42 (ext4) at /mnt/a.
        let found = try XCTUnwrap(MountTable.mount(containing: "/mnt/a/file", in: entries))
        XCTAssertEqual(found.mountID, 47)
        XCTAssertEqual(found.fsType, "tmpfs")
        XCTAssertEqual(MountTable.mount(containing: "/mnt/a", in: entries)?.mountID, 47)
    }

    func testStackedMountLastWinsWithoutParentLinks() throws {
        // Hand-made entries whose parent IDs link nothing: plain longest prefix, last wins.
        let entries = [
            entry(1, parent: 100, "/"), entry(2, parent: 100, "/mnt/a"), entry(3, parent: 100, "/mnt/ab"),
            entry(4, parent: 100, "/mnt/a", fsType: "tmpfs"), entry(5, parent: 100, "/mnt/a/b/c"),
        ]
        XCTAssertEqual(MountTable.mount(containing: "/mnt/a/b", in: entries)?.mountID, 4)
        XCTAssertEqual(MountTable.mount(containing: "/mnt/ab", in: entries)?.mountID, 3)
        XCTAssertEqual(MountTable.mount(containing: "/mnt/a/b/c/d", in: entries)?.mountID, 5)
        XCTAssertEqual(MountTable.mount(containing: "/srv", in: entries)?.mountID, 1)
    }

    func testMountHiddenByLaterMountOnAncestorIsSkipped() throws {
        // /mnt/a/b was mounted first, then something was mounted over /mnt/a, hiding it.
        let entries = [
            entry(27, parent: 1, "/"),
            entry(50, parent: 27, "/mnt/a/b"),
            entry(51, parent: 27, "/mnt/a", fsType: "tmpfs"),
            entry(52, parent: 51, "/mnt/a/c"),
        ]
        XCTAssertEqual(MountTable.mount(containing: "/mnt/a/b/file", in: entries)?.mountID, 51)
        XCTAssertEqual(MountTable.mount(containing: "/mnt/a/c/file", in: entries)?.mountID, 52)
        XCTAssertEqual(MountTable.mount(containing: "/mnt/x", in: entries)?.mountID, 27)
    }

    func testMountPointsOfDevice() {
        let entries = MountTable.parse(Self.sample)
        XCTAssertEqual(
            MountTable.mountPoints(ofDevice: 7, minor: 0, in: entries),
            ["/mnt/a", "/media/My Disk", "/mnt/a/tab\tback\\slash\nnl"])
        XCTAssertEqual(MountTable.mounts(ofDevice: 7, minor: 0, in: entries).map(\.mountID), [42, 44, 45])
        XCTAssertEqual(MountTable.mounts(ofDevice: 7, minor: 2, in: entries).map(\.mountID), [])
        XCTAssertEqual(MountTable.mountPoints(ofDevice: 254, minor: 0, in: entries), ["/"])
        XCTAssertEqual(MountTable.mountPoints(ofDevice: 8, minor: 17, in: entries), [])
    }

    private func entry(_ id: Int, parent: Int, _ mountPoint: String, fsType: String = "ext4") -> MountEntry {
        MountEntry(
            mountID: id, parentID: parent, major: 0, minor: UInt32(id), root: "/", mountPoint: mountPoint,
            options: ["rw"], fsType: fsType, source: "none", superOptions: ["rw"])
    }
}
