import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// What `add` and `edit` do with the file (comments, links, nothing to change), with bad values
/// (named by their option), and that every field of a definition can be set from them.
final class EditFieldTests: IntegrationTestCase {
    // MARK: edit

    private let commented = """
        # definitions kept by hand
        definitions:
          # documents to the server
          - name: docs
            description: Home documents   # shown in list
            type: mirror    # mirror: the server holds exactly this
            source:
              local: /srv/docs
            destination:
              local: /srv/copy   # the copy
            # run often
            schedule:
              - every: 30m

        """

    private func inode(_ file: String) -> UInt64 {
        var st = stat()
        return lstat(file, &st) == 0 ? UInt64(st.st_ino) : 0
    }

    func testEditWithNothingToChangeLeavesTheFileAlone() throws {
        try commented.write(toFile: configPath, atomically: true, encoding: .utf8)
        let before = inode(configPath)

        let empty = try plugsync("edit", "docs")
        assertExit(empty, 2)
        XCTAssertEqual(empty.stderrLines.count, 1, "\(empty)")
        XCTAssertTrue(empty.stderr.contains("nothing to change"), "\(empty)")
        XCTAssertEqual(empty.stdout, "", "\(empty)")

        let same = try plugsync("edit", "docs", "--type", "mirror")
        assertExit(same, 0)
        XCTAssertFalse(same.stdout.contains("Changed"), "\(same)")
        XCTAssertTrue(same.stdout.contains("unchanged"), "\(same)")

        XCTAssertEqual(inode(configPath), before, "the file was rewritten")
        XCTAssertEqual(read("plugsync.yaml"), commented)
    }

    func testEditKeepsCommentsOnTheLinesItChanges() throws {
        try commented.write(toFile: configPath, atomically: true, encoding: .utf8)
        let edit = try plugsync("edit", "docs", "--description", "Documents", "--destination", "/srv/elsewhere")
        assertExit(edit, 0)
        let expected = commented.replacingOccurrences(
            of: "description: Home documents   # shown in list", with: "description: Documents   # shown in list"
        ).replacingOccurrences(of: "local: /srv/copy   # the copy", with: "local: /srv/elsewhere   # the copy")
        XCTAssertEqual(read("plugsync.yaml"), expected)

        // A new field comes in; every comment stays.
        assertExit(try plugsync("edit", "docs", "--group", "home", "--schedule", "daily at 03:00"), 0)
        let now = try XCTUnwrap(read("plugsync.yaml"))
        for kept in [
            "# definitions kept by hand", "  # documents to the server", "# shown in list",
            "type: mirror    # mirror: the server holds exactly this", "# the copy", "    # run often",
        ] {
            XCTAssertTrue(now.contains(kept), "lost \(kept)\n\(now)")
        }
        let show = try plugsync("show", "docs")
        XCTAssertTrue(show.stdout.contains("group: home") && show.stdout.contains("03:00"), "\(show)")
    }

    /// A file written in other styles (deeper indentation, flow mappings, a block scalar) is
    /// edited correctly: what reads back is the definition asked for, comments kept where the
    /// lines stay.
    func testEditOfAFileInAnotherStyle() throws {
        let styled = """
            definitions:
                -   name: docs   # main
                    type: mirror
                    source: {local: /srv/a}   # flow
                    destination:
                        local: "/srv/b"
                    ignore:
                      - '\\.tmp$'   # temp files
                    hooks:
                      before: |
                        echo one
                        echo two

            """
        try styled.write(toFile: configPath, atomically: true, encoding: .utf8)
        let edit = try plugsync("edit", "docs", "--description", "New # not a comment", "--after", "echo done")
        assertExit(edit, 0)
        let text = try XCTUnwrap(read("plugsync.yaml"))
        XCTAssertTrue(text.contains("name: docs   # main"), text)
        XCTAssertTrue(text.contains("# flow"), text)
        let show = try plugsync("show", "docs")
        assertExit(show, 0)
        for expected in [
            "description: 'New # not a comment'", "local: /srv/a", "local: /srv/b", #"ignore: ['\.tmp$']"#,
            #"before: "echo one\necho two\n""#, "after: 'echo done'",
        ] {
            XCTAssertTrue(show.stdout.contains(expected), "no \(expected)\n\(show)")
        }
    }

    func testCommandsWriteThroughASymbolicLink() throws {
        try mkdir("dotfiles")
        try commented.write(toFile: path("dotfiles/plugsync.yaml"), atomically: true, encoding: .utf8)
        try symlink("link.yaml", to: path("dotfiles/plugsync.yaml"))
        let link = path("link.yaml")
        let commands: [[String]] = [
            ["edit", "docs", "--description", "Through the link"],
            ["add", "more", "--source", "/srv/a", "--destination", "/srv/b"],
            ["edit", "more", "--disable"],
            ["edit", "more", "--enable"],
            ["copy", "more", "again"],
            ["delete", "more"],
        ]
        for arguments in commands {
            let result = try plugsync(arguments: arguments, config: link)
            assertExit(result, 0)
            var st = stat()
            XCTAssertEqual(lstat(link, &st), 0)
            XCTAssertEqual(st.st_mode & S_IFMT, S_IFLNK, "\(arguments) replaced the link with a file")
        }
        let target = try XCTUnwrap(read("dotfiles/plugsync.yaml"))
        XCTAssertTrue(target.contains("Through the link"), target)
        XCTAssertTrue(target.contains("name: again") && !target.contains("name: more"), target)
        XCTAssertEqual(temporaryFiles(in: root), [])
        XCTAssertEqual(temporaryFiles(in: path("dotfiles")), [])
    }

    // MARK: errors name the option

    func testBadValuesNameTheOption() throws {
        try commented.write(toFile: configPath, atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (["add", "x", "--source", "/a", "--destination", "/b", "--ignore", "*.tmp"], "plugsync: --ignore: "),
            (["add", "my docs", "--source", "/a", "--destination", "/b"], "plugsync: the name \"my docs\""),
            (["edit", "docs", "--rename", "a b"], "plugsync: the name \"a b\""),
            (["edit", "docs", "--log-file", "relative.txt"], "plugsync: --log-file"),
            (["edit", "docs", "--notify-url", "ftp://x"], "plugsync: --notify-url: "),
            (["edit", "docs", "--destination", "device:directory=x"], "plugsync: --destination: "),
            (["edit", "docs", "--schedule", "0 3 * * *"], "plugsync: --schedule: "),
            (["edit", "docs", "--parallel", "65"], "plugsync: --parallel"),
            (["edit", "docs", "--tls", "implicit"], "plugsync: --tls: neither endpoint is a server"),
            (["edit", "docs", "--unmount-after"], "plugsync: --unmount-after: neither endpoint is a drive"),
        ]
        let before = read("plugsync.yaml")
        for (arguments, start) in cases {
            let result = try plugsync(arguments: arguments)
            assertExit(result, 2)
            XCTAssertEqual(result.stderrLines.count, 1, "\(result)")
            XCTAssertTrue(result.stderr.hasPrefix(start), "expected \(start)\n\(result)")
            XCTAssertFalse(result.stderr.contains(configPath), "\(result)")
            XCTAssertFalse(result.stderr.contains("definitions["), "\(result)")
            XCTAssertEqual(read("plugsync.yaml"), before, "\(arguments) changed the file")
        }
    }

    // MARK: every field from the command line

    func testEveryFieldCanBeSetFromTheCommandLine() throws {
        try write("pw", "secret\n", mode: 0o600)
        let add = try plugsync(
            "add", "site", "--source", "/srv/www", "--destination", "ftp://web@ftp.example.com:2121/www",
            "--password-file", path("pw"), "--tls", "implicit", "--no-passive", "--clock-diff", "-3600",
            "--ca-file", "/etc/ssl/certs/ca-certificates.crt", "--parallel", "2", "--before", "echo before",
            "--after", "echo after", "--on-error", "echo failed", "--no-on-mount", "--log-level", "full",
            "--log-file", path("site.log"), "--notify-desktop", "--verify")
        assertExit(add, 0)
        let text = try XCTUnwrap(read("plugsync.yaml"))
        for expected in [
            "password_file: \(path("pw"))", "tls: implicit", "passive: false", "clock_diff: -3600",
            "ca_file: /etc/ssl/certs/ca-certificates.crt", "parallel: 2", "before: 'echo before'",
            "after: 'echo after'", "on_error: 'echo failed'", "on_mount: false", "log_level: full", "desktop: true",
            "verify: true",
        ] {
            XCTAssertTrue(text.contains(expected), "no \(expected)\n\(text)")
        }
        // The file reads back: show works on it.
        assertExit(try plugsync("show", "site"), 0)

        // Changed and removed again with edit; the password from the environment instead.
        let edit = try plugsync(
            "edit", "site", "--password-env", "SITE_PASSWORD", "--tls", "explicit", "--passive", "--clock-diff",
            "auto", "--before", "", "--on-mount", "--no-verify")
        assertExit(edit, 0)
        let edited = try XCTUnwrap(read("plugsync.yaml"))
        XCTAssertTrue(edited.contains("password_env: SITE_PASSWORD"), edited)
        XCTAssertFalse(edited.contains("password_file"), edited)
        XCTAssertTrue(edited.contains("tls: explicit"), edited)
        XCTAssertFalse(
            edited.contains("passive: false") || edited.contains("clock_diff") || edited.contains("before:"), edited)
        XCTAssertTrue(edited.contains("on_mount: true"), edited)
        XCTAssertFalse(edited.contains("verify:"), edited)

        // SFTP's own fields; FTP's are refused on it.
        assertExit(
            try plugsync(
                "add", "ssh", "--source", "/srv/www", "--destination", "sftp://web@example.com/www", "--key-file",
                "/root/.ssh/id_ed25519", "--known-hosts", "/etc/ssh/known"), 0)
        XCTAssertTrue(try XCTUnwrap(read("plugsync.yaml")).contains("key_file: /root/.ssh/id_ed25519"))
        let wrongKind = try plugsync("edit", "ssh", "--clock-diff", "5")
        assertExit(wrongKind, 2)
        XCTAssertTrue(
            wrongKind.stderr.contains("--clock-diff: the server endpoint is not an FTP server"), "\(wrongKind)")

        // A drive's own fields.
        assertExit(
            try plugsync(
                "add", "usb", "--source", "/srv/www", "--destination", "device:label=BLUE", "--unmount-after",
                "--power-off-after"), 0)
        let drive = try XCTUnwrap(read("plugsync.yaml"))
        XCTAssertTrue(drive.contains("unmount_after: true") && drive.contains("power_off_after: true"), drive)
    }
}
