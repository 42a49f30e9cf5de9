import SyncEngine
import XCTest

@testable import SFTPBackend

/// The long listing of an SFTP folder (OpenSSH's `ls -l` lines, a link's target added by curl).
final class SFTPListingTests: XCTestCase {
    func testLines() {
        let text = """
            drwxr-xr-x    3 ana      ana          4096 Dec  3 03:35 .
            drwxr-xr-x    9 root     root         4096 Jan  1  2025 ..
            -rw-r-----    1 ana      ana             6 Sep 13  2020 a.txt
            -rwsr-sr-T    1 ana      ana          1234 Dec  3 03:35  leading space and -> arrow
            drwx------    2 ana      ana          4096 Dec  3 03:35 sub folder
            lrwxrwxrwx    1 ana      ana             5 Dec  3 03:35 link -> a.txt
            srwxr-xr-x    1 ana      ana             0 Dec  3 03:35 socket
            not a listing line

            """
        let (entries, unreadable) = SFTPListingParser.parse(Array(text.utf8))
        XCTAssertEqual(unreadable, 2)
        XCTAssertEqual(
            entries,
            [
                SFTPListedEntry(name: Array("a.txt".utf8), kind: .file, size: 6, mode: 0o640, linkTarget: nil),
                SFTPListedEntry(
                    name: Array(" leading space and -> arrow".utf8), kind: .file, size: 1234, mode: 0o7754,
                    linkTarget: nil),
                SFTPListedEntry(
                    name: Array("sub folder".utf8), kind: .directory, size: 0, mode: 0o700, linkTarget: nil),
                SFTPListedEntry(
                    name: Array("link".utf8), kind: .symlink, size: 0, mode: 0o777, linkTarget: Array("a.txt".utf8)),
            ])
    }

    func testCommandArguments() {
        XCTAssertEqual(SFTPConnection.quoted(FileName("d/it's \"q\" \\ x")), "\"d/it's \\\"q\\\" \\\\ x\"")
        XCTAssertEqual(SFTPConnection.quoted(.empty), "\".\"")
        XCTAssertEqual(SFTPConnection.httpDate(1_600_000_000), "Sun, 13 Sep 2020 12:26:40 GMT")
        XCTAssertEqual(SFTPConnection.percentEncoded(Array("a b/ü%#?".utf8)), "a%20b/%C3%BC%25%23%3F")
    }
}
