import Foundation
import XCTest

/// `add`, `edit`, `copy`, `delete`, `list`, `show`: they rewrite the file and keep what they did
/// not change, comments included, byte for byte.
final class EditCommandTests: IntegrationTestCase {
    private let header = """
        # plugsync definitions of the integration test
        # (this comment must survive every edit)
        definitions:

        """

    private var docsBlock: String {
        """
          # the first definition: documents
          - name: docs
            description: Home documents   # an inline comment
            type: mirror
            source:
              local: '\(path("docs-src"))'
            destination:
              local: '\(path("docs-dst"))'
            ignore: ['\\.tmp$']

        """
    }

    private let siteBlock = """
          # the second definition uploads the site
          - name: site
            group: web
            type: mirror
            source:
              local: /srv/www
            destination:
              ftp:
                server: ftp.example.com:21
                username: web
                password: hunter2-secret
                directory: www

        """

    private var original: String { header + docsBlock + "\n" + siteBlock }

    private func text() throws -> String { try String(contentsOfFile: configPath, encoding: .utf8) }

    private func assertKept(_ blocks: [String], _ context: String, file: StaticString = #filePath, line: UInt = #line)
        throws
    {
        let now = try text()
        for block in blocks {
            XCTAssertTrue(
                now.contains(block),
                "after \(context), this is no longer in the file byte for byte:\n\(block)\n--- file:\n\(now)",
                file: file, line: line)
        }
    }

    private func definitionNames() throws -> [String] {
        let list = try plugsync("list")
        assertExit(list, 0)
        return list.lines.dropFirst().compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    func testEditingCommandsKeepCommentsAndOtherDefinitions() throws {
        try original.write(toFile: configPath, atomically: true, encoding: .utf8)
        try chmod("plugsync.yaml", 0o600)
        try write("new-src/a.txt", "a\n")
        try write("new-dst/.id", "x\n")

        // add
        let add = try plugsync(
            "add", "newdef", "--source", path("new-src"), "--destination", path("new-dst"), "--type", "backup",
            "--ignore", #"\.bak$"#, "--destination-check", ".id=^x$", "--schedule", "mon,fri at 18:30")
        assertExit(add, 0)
        try assertKept([header, docsBlock, siteBlock], "add")
        XCTAssertEqual(try definitionNames(), ["docs", "site", "newdef"])
        let show = try plugsync("show", "newdef")
        assertExit(show, 0)
        for fragment in [
            "name: newdef", "type: backup", path("new-src"), path("new-dst"), ".id=^x$", #"\.bak$"#, "18:30", "mon",
            "fri",
        ] {
            XCTAssertTrue(show.stdout.contains(fragment), "show lacks \(fragment)\n\(show)")
        }
        let run = try plugsync("run", "newdef")
        assertExit(run, 0)
        XCTAssertEqual(read("new-dst/a.txt"), "a\n", "\(run)")

        // show hides passwords; list shows every definition
        let site = try plugsync("show", "site")
        assertExit(site, 0)
        XCTAssertTrue(site.stdout.contains("********"), "\(site)")
        XCTAssertFalse(site.stdout.contains("hunter2"), "show printed the password\n\(site)")
        XCTAssertFalse(try plugsync("list").stdout.contains("hunter2"))

        // edit
        let edit = try plugsync("edit", "newdef", "--type", "mirror")
        assertExit(edit, 0)
        try assertKept([header, docsBlock, siteBlock], "edit newdef")
        XCTAssertTrue(try plugsync("show", "newdef").stdout.contains("type: mirror"))
        XCTAssertTrue(try plugsync("show", "newdef").stdout.contains(".id=^x$"), "edit lost the File Check")

        // --disable and --enable, as the README names them; `log -n N` prints the last N lines.
        assertExit(try plugsync("edit", "newdef", "--disable"), 0)
        XCTAssertTrue(try plugsync("show", "newdef").stdout.contains("enabled: false"))
        XCTAssertTrue(try plugsync("list").stdout.contains("newdef (disabled)"))
        assertExit(try plugsync("edit", "newdef", "--enable"), 0)
        XCTAssertFalse(try plugsync("show", "newdef").stdout.contains("enabled: false"))
        XCTAssertEqual(try plugsync("edit", "newdef", "--enable", "--disable").status, 2)
        try write("new-log.txt", "one\ntwo\nthree\n")
        assertExit(try plugsync("edit", "newdef", "--log-file", path("new-log.txt")), 0)
        let log = try plugsync("log", "newdef", "-n", "2")
        assertExit(log, 0)
        XCTAssertEqual(log.lines, ["two", "three"], "\(log)")

        // copy
        let copy = try plugsync("copy", "newdef", "newcopy")
        assertExit(copy, 0)
        try assertKept([header, docsBlock, siteBlock], "copy")
        XCTAssertEqual(try definitionNames(), ["docs", "site", "newdef", "newcopy"])

        // delete
        let delete = try plugsync("delete", "newdef")
        assertExit(delete, 0)
        try assertKept([header, docsBlock, siteBlock], "delete")
        XCTAssertEqual(try definitionNames(), ["docs", "site", "newcopy"])

        // Editing the first definition keeps the second and the comment above it.
        let editDocs = try plugsync("edit", "docs", "--description", "Changed")
        assertExit(editDocs, 0)
        try assertKept([header, siteBlock], "edit docs")
        XCTAssertTrue(try plugsync("show", "docs").stdout.contains("Changed"))
        XCTAssertTrue(try text().contains("password: hunter2-secret"), "the password in the file must stay as it was")

        var st = stat()
        XCTAssertEqual(stat(configPath, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "the file's permissions changed")
        XCTAssertEqual(temporaryFiles(in: root), [], "a leftover temporary file of the definitions file")
    }

    /// `add` without `--type` makes a backup, which never deletes, and says so.
    func testAddWithoutATypeMakesABackup() throws {
        try write("src/keep.txt", "keep\n")
        try write("dst/mine.txt", "the user's own file\n")
        let add = try plugsync("add", "plain", "--source", path("src"), "--destination", path("dst"))
        assertExit(add, 0)
        XCTAssertTrue(
            add.stdout.contains("a backup: files are copied and replaced, nothing on the destination is deleted"),
            "\(add)")
        XCTAssertTrue(add.stdout.contains("--type mirror makes it a mirror"), "\(add)")
        XCTAssertTrue(try plugsync("show", "plain").stdout.contains("type: backup"))
        assertExit(try plugsync("run", "plain"), 0)
        XCTAssertEqual(read("dst/mine.txt"), "the user's own file\n")
        XCTAssertEqual(read("dst/keep.txt"), "keep\n")
        let mirror = try plugsync(
            "add", "exact", "--source", path("src"), "--destination", path("dst2"), "--type", "mirror")
        assertExit(mirror, 0)
        XCTAssertTrue(mirror.stdout.contains("a mirror: the destination becomes a copy of the source"), "\(mirror)")
    }

    func testRefusedEditsLeaveTheFileAlone() throws {
        try original.write(toFile: configPath, atomically: true, encoding: .utf8)
        try chmod("plugsync.yaml", 0o600)
        let before = try Data(contentsOf: URL(fileURLWithPath: configPath))
        let attempts: [[String]] = [
            ["add", "docs", "--source", "/a", "--destination", "/b"],
            ["add", "other", "--source", "relative", "--destination", "/b"],
            ["add", "other", "--source", "/a"],
            ["add", "other", "--source", "/a", "--destination", "/b", "--schedule", "mon at 25:00"],
            ["copy", "site", "docs"],
            ["edit", "site", "--rename", "docs"],
            ["edit", "nosuch", "--type", "backup"],
            ["edit", "docs", "--type", "sideways"],
            ["delete", "nosuch"],
            // Every run of these would refuse: one folder inside the other.
            ["add", "other", "--source", "/srv/photos", "--destination", "/srv/photos/backup"],
            ["add", "other", "--source", "/srv/photos/2024", "--destination", "/srv/photos"],
            ["edit", "docs", "--destination", path("docs-src") + "/copy"],
        ]
        for arguments in attempts {
            let result = try plugsync(arguments: arguments)
            assertExit(result, 2)
            assertNoCrash(result)
            XCTAssertEqual(result.stderrLines.count, 1, "\(result)")
            XCTAssertEqual(
                try Data(contentsOf: URL(fileURLWithPath: configPath)), before, "\(arguments) changed the file")
        }
        let inside = try plugsync("add", "other", "--source", "/srv/photos", "--destination", "/srv/photos/backup")
        XCTAssertTrue(inside.stderr.contains("overlap (one is inside the other)"), "\(inside)")
        let duplicate = try plugsync("add", "docs", "--source", "/a", "--destination", "/b")
        XCTAssertTrue(duplicate.stderr.contains("docs"), "\(duplicate)")
    }
}
