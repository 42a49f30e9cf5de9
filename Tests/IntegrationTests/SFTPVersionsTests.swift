import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `versions:` with an SFTP destination: the old file is renamed into
/// `.plugsync-versions/<run start>/` on the server once the new one is there.
extension SFTPTests {
    func testVersionsOnTheServer() throws {
        let started = 1_790_856_000
        var time = time_t(started)
        var parts = tm()
        localtime_r(&time, &parts)
        var text = [CChar](repeating: 0, count: 32)
        strftime(&text, text.count, "%Y-%m-%d_%H%M%S", &parts)
        let stamp = String(cString: text)

        try write("src/contact.html", "old contact\n")
        try write("src/b.txt", "bee\n")
        try write("src/dir/c.txt", "sea\n")
        try writeConfig(
            definition("up", source: ["  local: '\(path("src"))'"], destination: sftp(directory: folder + "/copy"))
                + "    versions: {keep_days: 30, keep_min: 1, keep_max: 2}\n")
        // The first run an hour before: the versions folder's name is the second run's start.
        let before = ["PLUGSYNC_TEST_SFTP_PW": server.password, "PLUGSYNC_NOW": "\(started - 3600)"]
        XCTAssertEqual(try plugsync(arguments: ["run", "up"], environment: before).status, 0)
        try write("src/contact.html", "the new contact page\n")
        try remove("src/b.txt")
        try remove("src/dir")
        let environment = ["PLUGSYNC_TEST_SFTP_PW": server.password, "PLUGSYNC_NOW": "\(started)"]
        let second = try plugsync(arguments: ["run", "up"], environment: environment)
        XCTAssertEqual(second.status, 0, "\(second)")
        let lines = second.lines
        let versioning = action("Versioning", "remote file size differs", "contact.html")
        let uploading = action("Uploading", "remote file size differs", "contact.html")
        XCTAssertEqual(lines.firstIndex(of: versioning).map { $0 + 1 }, lines.firstIndex(of: uploading), "\(second)")
        XCTAssertTrue(lines.contains(action("Versioning", "remote file is orphaned", "b.txt")), "\(second)")
        XCTAssertTrue(lines.contains(action("Versioning", "remote file is orphaned", "dir/c.txt")), "\(second)")
        XCTAssertTrue(second.summary?.contains("3 versioned") == true, "\(second)")
        let remote = server.home + "/" + folder + "/copy"
        let versions = remote + "/.plugsync-versions/" + stamp
        XCTAssertEqual(try? String(contentsOfFile: versions + "/contact.html", encoding: .utf8), "old contact\n")
        XCTAssertEqual(try? String(contentsOfFile: versions + "/b.txt", encoding: .utf8), "bee\n")
        XCTAssertEqual(try? String(contentsOfFile: versions + "/dir/c.txt", encoding: .utf8), "sea\n")
        XCTAssertEqual(try? String(contentsOfFile: remote + "/contact.html", encoding: .utf8), "the new contact page\n")

        let third = try plugsync(arguments: ["run", "up"], environment: environment)
        XCTAssertEqual(third.status, 0, "\(third)")
        XCTAssertTrue(third.summary?.hasPrefix("Done: 0 copied") == true, "\(third)")
        XCTAssertTrue(third.summary?.contains("0 deleted") == true, "\(third)")

        let listed = try plugsync(arguments: ["versions", "up"], environment: environment)
        XCTAssertEqual(listed.status, 0, "\(listed)")
        XCTAssertEqual(
            listed.lines.map { $0.split(separator: " ").last.map(String.init) ?? "" },
            ["b.txt", "contact.html", "dir/c.txt"], "\(listed)")
    }
}
