import Foundation
import SystemSupport
import XCTest

@testable import SyncEngine

/// The small replacements for Foundation conveniences.
final class PosixTests: XCTestCase {
    func testPaths() {
        XCTAssertEqual(Posix.parentPath("/a/b/c"), "/a/b")
        XCTAssertEqual(Posix.parentPath("/a/b/c/"), "/a/b")
        XCTAssertEqual(Posix.parentPath("/c"), "/")
        XCTAssertEqual(Posix.parentPath("c"), "")
        XCTAssertEqual(Posix.lastComponent("/a/b/c"), "c")
        XCTAssertEqual(Posix.lastComponent("/a/b/c/"), "c")
        XCTAssertEqual(Posix.lastComponent("c"), "c")
        XCTAssertEqual(Posix.lastComponent("/"), "/")
    }

    func testFormatting() {
        XCTAssertEqual(formatFixed(1.25, decimals: 1), "1.2")  // as printf rounds (to even here)
        XCTAssertEqual(formatFixed(0.456, decimals: 2), "0.46")
        XCTAssertEqual(formatFixed(12, decimals: 1), "12.0")
        XCTAssertEqual(formatPadded(7, width: 2), "07")
        XCTAssertEqual(formatPadded(123, width: 2), "123")
    }

    func testFilesAndDirectories() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("posix-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Posix.makeDirectories(root + "/x/y", mode: 0o700)
        try Posix.makeDirectories(root + "/x/y")  // exists: fine
        var st = stat()
        XCTAssertEqual(stat(root + "/x/y", &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
        XCTAssertTrue(FileManager.default.createFile(atPath: root + "/f", contents: Data("hello".utf8)))
        XCTAssertThrowsError(try Posix.makeDirectories(root + "/f/z"))
        XCTAssertEqual(Posix.readFile(root + "/f"), Array("hello".utf8))
        XCTAssertEqual(Posix.readFile(root + "/f", from: 3), Array("lo".utf8))
        XCTAssertNil(Posix.readFile(root + "/missing"))
        XCTAssertNil(Posix.readFile(root + "/x"))  // a folder
        setenv("PLUGSYNC_POSIX_TEST", "a=b", 1)
        XCTAssertEqual(Posix.environment()["PLUGSYNC_POSIX_TEST"], "a=b")
        XCTAssertEqual(Posix.environment("PLUGSYNC_POSIX_TEST"), "a=b")
        unsetenv("PLUGSYNC_POSIX_TEST")
    }

    func testLock() {
        let lock = Lock()
        var total = 0
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<10_000 { lock.withLock { total += 1 } }
        }
        XCTAssertEqual(total, 40_000)
    }
}
