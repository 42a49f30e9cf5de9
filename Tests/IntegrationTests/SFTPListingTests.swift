import SyncEngine
import XCTest

@testable import SFTPBackend

/// What an SFTP listing's attributes (OpenSSH sends an lstat's) say of an entry, and what the
/// server's status codes mean to a run.
final class SFTPListingTests: XCTestCase {
    func testAttributes() {
        let all: UInt = 0x1 | 0x4 | 0x8  // size, permissions, times
        XCTAssertEqual(
            SFTPAttributes(flags: all, permissions: 0o100640, size: 6, mtime: 1_600_000_000),
            SFTPAttributes(kind: .file, size: 6, mode: 0o640, mtime: 1_600_000_000))
        XCTAssertEqual(
            SFTPAttributes(flags: all, permissions: 0o107754, size: 1234, mtime: 7),
            SFTPAttributes(kind: .file, size: 1234, mode: 0o7754, mtime: 7), "set-id and sticky bits are kept")
        XCTAssertEqual(
            SFTPAttributes(flags: all, permissions: 0o040700, size: 4096, mtime: 9),
            SFTPAttributes(kind: .directory, size: 0, mode: 0o700, mtime: 9), "a folder's size is no file size")
        XCTAssertEqual(
            SFTPAttributes(flags: all, permissions: 0o120777, size: 5, mtime: 9),
            SFTPAttributes(kind: .symlink, size: 0, mode: 0o777, mtime: 9))
        for other: UInt in [0o140755, 0o020644, 0o060644, 0o010644] {
            XCTAssertNil(SFTPAttributes(flags: all, permissions: other, size: 0, mtime: 0).kind, "\(other)")
        }
        // Without permissions the kind is unknown; without times there is no time.
        XCTAssertNil(SFTPAttributes(flags: 0x1 | 0x8, permissions: 0o100644, size: 3, mtime: 1).kind)
        XCTAssertNil(SFTPAttributes(flags: 0x1 | 0x4, permissions: 0o100644, size: 3, mtime: 1).mtime)
        XCTAssertEqual(SFTPAttributes(flags: 0x4 | 0x8, permissions: 0o100644, size: 3, mtime: 1).size, 0)
    }

    func testStatusCodes() {
        XCTAssertEqual(SFTPConnection.meaning(ofStatus: 2).0, .notFound)
        XCTAssertEqual(SFTPConnection.meaning(ofStatus: 10).0, .notFound)
        XCTAssertEqual(SFTPConnection.meaning(ofStatus: 3).0, .refused)
        XCTAssertEqual(SFTPConnection.meaning(ofStatus: 4).0, .refused)
        XCTAssertEqual(SFTPConnection.meaning(ofStatus: 7).0, .connection)
        XCTAssertEqual(SFTPConnection.meaning(ofStatus: 99).1, "the server refused it (SFTP status 99)")
    }
}
