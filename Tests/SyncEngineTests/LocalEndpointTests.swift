import Foundation
import SystemSupport
import XCTest

@testable import LocalBackend
@testable import SyncEngine

final class LocalEndpointTests: XCTestCase {
    var root: String!

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "plugsync-local-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root + "/src/sub", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/dst", withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    func testListingSortsSkipsIgnoredAndCollectsTemporaryFiles() throws {
        for name in ["b", "a", "x.tmp", ".plugsync-tmp-a", "sub/c"] {
            FileManager.default.createFile(atPath: root + "/src/" + name, contents: Data("1".utf8))
        }
        let endpoint = LocalEndpoint(root: root + "/src")
        let listing = endpoint.list(recursive: true, filter: ListingFilter(ignore: try IgnoreList(["\\.tmp$"])))
        XCTAssertEqual(listing.entries.map(\.name.description), ["a", "b", "sub"])
        XCTAssertEqual(listing.entries[2].children?.map(\.name.description), ["c"])
        XCTAssertEqual(listing.temporaryFiles, [".plugsync-tmp-a"])
        XCTAssertTrue(listing.errors.isEmpty)
    }

    func testReceiveWritesAtomicallyAndCopiesTimeAndMode() throws {
        let data = Data((0..<300_000).map { UInt8($0 % 251) })
        FileManager.default.createFile(atPath: root + "/src/f", contents: data)
        chmod(root + "/src/f", 0o640)
        var times = [
            timespec(tv_sec: 1_600_000_000, tv_nsec: 123_456_789),
            timespec(tv_sec: 1_600_000_000, tv_nsec: 123_456_789),
        ]
        utimensat(AT_FDCWD, root + "/src/f", &times, 0)
        let source = LocalEndpoint(root: root + "/src")
        let destination = LocalEndpoint(root: root + "/dst")
        let entry = source.list(recursive: false, filter: ListingFilter()).entries.first { $0.name == "f" }!
        let file = try source.openForReading("f", entry: entry)
        var progressed: Int64 = 0
        try destination.receive("f", from: file, entry: entry, replacing: false) { progressed += $0 }
        file.close()
        XCTAssertEqual(progressed, Int64(data.count))
        XCTAssertEqual(FileManager.default.contents(atPath: root + "/dst/f"), data)
        let copied = destination.list(recursive: false, filter: ListingFilter())
        XCTAssertEqual(copied.entries.map(\.name), ["f"])  // no temporary file left
        XCTAssertEqual(copied.entries[0].mtime, Timestamp(seconds: 1_600_000_000, nanoseconds: 123_456_789))
        XCTAssertEqual(copied.entries[0].mode, 0o640)
    }

    /// A drive's endpoint whose root is not on the drive's filesystem any more (pulled, the
    /// bare mount point showing): nothing is created there, and the error says so.
    /// A source without modes (a server that lists no permissions): a file gets 0666 and a
    /// folder 0777, less the umask, as a new file here would; not the 0600 of a temporary file.
    func testACopyWithoutASourceModeGetsTheUmasksMode() throws {
        let mask = umask(0o027)
        umask(mask)  // read, then put back as it was
        FileManager.default.createFile(atPath: root + "/src/f", contents: Data("data".utf8))
        let source = LocalEndpoint(root: root + "/src")
        let destination = LocalEndpoint(root: root + "/dst")
        var entry = source.list(recursive: false, filter: ListingFilter()).entries.first { $0.name == "f" }!
        entry.mode = nil
        let file = try source.openForReading("f", entry: entry)
        try destination.receive("f", from: file, entry: entry, replacing: false) { _ in }
        file.close()
        try destination.createDirectory("d")
        try destination.setFolderAttributes("d", entry: Entry(name: "d", kind: .directory, mtime: entry.mtime))
        let copied = destination.list(recursive: false, filter: ListingFilter()).entries
        XCTAssertEqual(copied.first { $0.name == "f" }?.mode, 0o666 & ~UInt32(mask))
        XCTAssertEqual(copied.first { $0.name == "d" }?.mode, 0o777 & ~UInt32(mask))
    }

    func testAnEndpointOffItsDriveWritesNothingAndThrowsEndpointGone() throws {
        FileManager.default.createFile(atPath: root + "/src/f", contents: Data("data".utf8))
        var st = stat()
        XCTAssertEqual(stat(root + "/dst", &st), 0)
        let source = LocalEndpoint(root: root + "/src")
        let entry = source.list(recursive: false, filter: ListingFilter()).entries.first { $0.name == "f" }!

        // On its drive (the right st_dev) and syncing each file: works as ever.
        let onDrive = LocalEndpoint(root: root + "/dst")
        onDrive.requiredDevice = UInt64(st.st_dev)
        onDrive.fileSync = .full
        let file = try source.openForReading("f", entry: entry)
        try onDrive.receive("f", from: file, entry: entry, replacing: false) { _ in }
        file.close()
        onDrive.fileSync = .data
        let second = try source.openForReading("f", entry: entry)
        try onDrive.receive("h", from: second, entry: entry, replacing: false) { _ in }
        second.close()
        try onDrive.createDirectory("folder")
        XCTAssertEqual(FileManager.default.contents(atPath: root + "/dst/f"), Data("data".utf8))

        // Off it: every write refuses, and leaves nothing behind.
        let gone = LocalEndpoint(root: root + "/dst")
        gone.requiredDevice = UInt64(st.st_dev) &+ 1
        let again = try source.openForReading("f", entry: entry)
        XCTAssertThrowsError(try gone.receive("g", from: again, entry: entry, replacing: false) { _ in }) {
            XCTAssertTrue($0 is EndpointGone, "\($0)")
        }
        XCTAssertThrowsError(try gone.receive("f", from: again, entry: entry, replacing: true) { _ in }) {
            XCTAssertTrue($0 is EndpointGone, "\($0)")
        }
        again.close()
        XCTAssertThrowsError(try gone.createDirectory("other")) { XCTAssertTrue($0 is EndpointGone, "\($0)") }
        XCTAssertThrowsError(try gone.remove("missing", kind: .file)) { XCTAssertTrue($0 is EndpointGone, "\($0)") }
        let below = LocalEndpoint(root: root + "/dst/new/deeper")
        below.requiredDevice = UInt64(st.st_dev) &+ 1
        XCTAssertThrowsError(try below.prepareRoot()) { XCTAssertTrue($0 is EndpointGone, "\($0)") }
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: root + "/dst").sorted(), ["f", "folder", "h"])
        XCTAssertEqual(FileManager.default.contents(atPath: root + "/dst/f"), Data("data".utf8))
    }

    func testFailedWriteLeavesNoFileUnderTheFinalName() throws {
        FileManager.default.createFile(atPath: root + "/src/f", contents: Data("data".utf8))
        let source = LocalEndpoint(root: root + "/src")
        let destination = LocalEndpoint(root: root + "/dst/missing-folder")
        let entry = source.list(recursive: false, filter: ListingFilter()).entries.first { $0.name == "f" }!
        let file = try source.openForReading("f", entry: entry)
        defer { file.close() }
        XCTAssertThrowsError(try destination.receive("f", from: file, entry: entry, replacing: false) { _ in }) {
            error in
            XCTAssertEqual((error as? SystemError)?.errno, ENOENT)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/dst/missing-folder/f"))
    }

    func testReplacingAnExistingFileWorksWhateverTheHint() throws {
        let source = LocalEndpoint(root: root + "/src")
        let destination = LocalEndpoint(root: root + "/dst")
        for (round, hint) in [false, true, false].enumerated() {
            let content = Data("version \(round) with hint \(hint)".utf8)
            FileManager.default.createFile(atPath: root + "/src/f", contents: content)
            let entry = source.list(recursive: false, filter: ListingFilter()).entries.first { $0.name == "f" }!
            let file = try source.openForReading("f", entry: entry)
            try destination.receive("f", from: file, entry: entry, replacing: hint) { _ in }
            file.close()
            XCTAssertEqual(FileManager.default.contents(atPath: root + "/dst/f"), content)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root + "/dst"), ["f"])
        }
    }

    func testRootState() throws {
        XCTAssertEqual(try LocalEndpoint(root: root + "/nope").rootState(), .missing)
        XCTAssertEqual(try LocalEndpoint(root: root + "/dst").rootState(), .empty)
        XCTAssertEqual(try LocalEndpoint(root: root + "/src").rootState(), .nonEmpty)
    }

    func testLongNamesGetDistinctTemporaryNames() {
        let a = FileName(String(repeating: "x", count: 230) + "a")
        let b = FileName(String(repeating: "x", count: 230) + "b")
        let ta = ListingFilter.temporaryName(for: a)
        XCTAssertNotEqual(ta, ListingFilter.temporaryName(for: b))
        XCTAssertLessThanOrEqual(ta.bytes.count, 255)
    }

    // MARK: descriptors beneath the root

    /// A folder swapped for a symlink to a folder outside, after the endpoint opened its root:
    /// no call goes through it (create, write, link, rename, mkdir, symlink, unlink, rmdir,
    /// chmod, times), each throws, and nothing outside changes; reading through it fails too.
    func testNoCallGoesThroughAFolderSwappedForASymlink() throws {
        let outside = root + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: outside + "/victim", contents: Data("host".utf8))
        FileManager.default.createFile(atPath: outside + "/c", contents: Data("secret".utf8))
        chmod(outside, 0o700)
        FileManager.default.createFile(atPath: root + "/src/sub/c", contents: Data("1".utf8))
        try FileManager.default.createDirectory(atPath: root + "/dst/sub", withIntermediateDirectories: true)
        let source = LocalEndpoint(root: root + "/src")
        let destination = LocalEndpoint(root: root + "/dst")
        let listed = source.list(recursive: true, filter: ListingFilter())
        let entry = listed.entries.first { $0.name == "sub" }!.children!.first { $0.name == "c" }!
        XCTAssertEqual(try destination.rootState(), .nonEmpty)  // the root is open from here on

        for side in ["dst", "src"] {
            try FileManager.default.removeItem(atPath: root + "/\(side)/sub")
            try FileManager.default.createSymbolicLink(atPath: root + "/\(side)/sub", withDestinationPath: outside)
        }
        XCTAssertThrowsError(try source.openForReading("sub/c", entry: entry))
        // A root the user names may go through a symlink: only what lies below it is confined.
        let outsideEntry = Entry(name: "c", kind: .file, size: 6, mtime: entry.mtime)
        let file = try LocalEndpoint(root: root + "/src/sub").openForReading("c", entry: outsideEntry)
        file.close()
        for replacing in [false, true] {
            let input = MemoryFile(data: Data("evil".utf8))
            XCTAssertThrowsError(
                try destination.receive("sub/victim", from: input, entry: entry, replacing: replacing) { _ in })
        }
        XCTAssertThrowsError(try destination.createDirectory("sub/d"))
        XCTAssertThrowsError(
            try destination.createSymlink(
                "sub/l", entry: Entry(name: "l", kind: .symlink, mtime: entry.mtime, linkTarget: "x")))
        XCTAssertThrowsError(try destination.remove("sub/victim", kind: .file))
        XCTAssertThrowsError(
            try destination.setFolderAttributes(
                "sub", entry: Entry(name: "sub", kind: .directory, mtime: entry.mtime, mode: 0o777)))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outside).sorted(), ["c", "victim"])
        XCTAssertEqual(FileManager.default.contents(atPath: outside + "/victim"), Data("host".utf8))
        var st = stat()
        XCTAssertEqual(stat(outside, &st), 0)
        XCTAssertEqual(st.st_mode & 0o7777, 0o700)
    }

    /// The walk used where the kernel has no openat2 refuses what openat2 refuses.
    func testTheFallbackWalkRefusesSymlinksAndClimbingOut() throws {
        try FileManager.default.createDirectory(atPath: root + "/dst/a/b", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root + "/dst/link", withDestinationPath: root + "/dst/a")
        try FileManager.default.createSymbolicLink(atPath: root + "/dst/a/up", withDestinationPath: "../..")
        let base = open(root + "/dst", O_RDONLY | O_DIRECTORY)
        defer { close(base) }
        for walk in [false, true] {
            let good = FolderHandles.openFolder(beneath: base, "a//b", walk: walk)
            XCTAssertGreaterThanOrEqual(good, 0, "walk \(walk)")
            close(good)
            for bad in ["link", "link/b", "a/up", "a/up/src", "../dst/a", "a/../../dst"] {
                let fd = FolderHandles.openFolder(beneath: base, bad, walk: walk)
                XCTAssertLessThan(fd, 0, "\(bad) (walk \(walk)) was opened")
                if fd >= 0 { close(fd) }
            }
        }
    }

    /// A file listed, then swapped for a FIFO (or a folder): reading it fails at once with one
    /// line, and never blocks.
    func testAFileThatChangedKindFailsAtOnce() throws {
        FileManager.default.createFile(atPath: root + "/src/f", contents: Data("12345".utf8))
        FileManager.default.createFile(atPath: root + "/src/g", contents: Data("12345".utf8))
        let source = LocalEndpoint(root: root + "/src")
        let entries = source.list(recursive: false, filter: ListingFilter()).entries
        try FileManager.default.removeItem(atPath: root + "/src/f")
        XCTAssertEqual(mkfifo(root + "/src/f", 0o666), 0)
        try FileManager.default.removeItem(atPath: root + "/src/g")
        try FileManager.default.createDirectory(atPath: root + "/src/g", withIntermediateDirectories: false)
        for (name, kind) in [("f", "a FIFO"), ("g", "a folder")] {
            XCTAssertThrowsError(
                try source.openForReading(FileName(name), entry: entries.first { $0.name.description == name }!)
            ) {
                XCTAssertEqual(
                    "\($0)",
                    "\(self.root!)/src/\(name): changed during the run: listed as a file, now \(kind); left as it is")
            }
        }
    }

    /// Modes listed on a drive lose setuid, setgid and write for group and others.
    func testModesFromADriveAreMasked() throws {
        for (name, mode) in [("suid", 0o4777), ("sgid", 0o2775), ("plain", 0o644), ("sticky", 0o1777)] {
            FileManager.default.createFile(atPath: root + "/src/" + name, contents: Data())
            chmod(root + "/src/" + name, mode_t(mode))
        }
        let drive = LocalEndpoint(root: root + "/src")
        drive.isRemovableDrive = true
        let modes = Dictionary(
            uniqueKeysWithValues: drive.list(recursive: false, filter: ListingFilter()).entries.map {
                ($0.name.description, $0.mode!)
            })
        XCTAssertEqual(modes["suid"], 0o755)
        XCTAssertEqual(modes["sgid"], 0o755)
        XCTAssertEqual(modes["plain"], 0o644)
        XCTAssertEqual(modes["sticky"], 0o1755)
    }
}

/// A readable file held in memory (no local descriptor).
private final class MemoryFile: ReadableFile {
    let data: Data
    var offset = 0
    init(data: Data) { self.data = data }
    var localDescriptor: Int32? { nil }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, data.count - offset)
        data.copyBytes(to: buffer.bindMemory(to: UInt8.self), from: offset..<(offset + n))
        offset += n
        return n
    }
    func close() {}
}
