import Foundation
import XCTest

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
        let ta = LocalEndpoint.temporaryName(for: a)
        XCTAssertNotEqual(ta, LocalEndpoint.temporaryName(for: b))
        XCTAssertLessThanOrEqual(ta.bytes.count, 255)
    }
}
