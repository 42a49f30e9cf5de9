import XCTest

@testable import CurlFTP

final class ListingParserTests: XCTestCase {
    // 2026-11-23 08:00:00 UTC
    let now: Int64 = FTPListingParser.utcSeconds(year: 2026, month: 11, day: 23, hour: 8, minute: 0)

    func testMLSDFactsAndNames() {
        let data = Array(
            """
            type=cdir;modify=20261123080000;UNIX.mode=0755; .
            type=pdir;modify=20261123080000; ..
            type=file;size=1234;modify=20261123075326;UNIX.mode=0644; about.html
            type=dir;modify=20250101100000;UNIX.mode=0700; sub folder
            type=OS.unix=slink:/etc/passwd;modify=20250101100000; link
            type=file;size=5;modify=20261123075326.123; name; with = odd chars
            garbage line without facts
            """.utf8)
        let (entries, unreadable) = FTPListingParser.parseMLSD(data)
        XCTAssertEqual(unreadable, 1)
        XCTAssertEqual(
            entries.map { String(decoding: $0.name, as: UTF8.self) },
            [
                "about.html", "sub folder", "link", "name; with = odd chars",
            ])
        XCTAssertEqual(entries[0].kind, .file)
        XCTAssertEqual(entries[0].size, 1234)
        XCTAssertEqual(
            entries[0].time, FTPListingParser.utcSeconds(year: 2026, month: 11, day: 23, hour: 7, minute: 53) + 26)
        XCTAssertEqual(entries[0].precision, 1)
        XCTAssertEqual(entries[0].mode, 0o644)
        XCTAssertEqual(entries[1].kind, .directory)
        XCTAssertEqual(entries[2].kind, .symlink)
        XCTAssertEqual(entries[2].linkTarget, Array("/etc/passwd".utf8))
    }

    func testMLSDFactNamesAndTypesInAnyCase() {
        // IIS writes `Type=File;Size=…;Modify=…`; unknown facts, empty ones and a fact without a
        // value are passed over.
        let data = Array(
            """
            Type=File;Size=77;Modify=20261123075326;Perm=rw;;x; a
            TYPE=DIR;MODIFY=20250101100000;unix.MODE=0750; b
            Type=OS.Unix=SLink:target;Modify=20250101100000; c
            type=filed;size=1; d
            Type=Dir; e
            Sizd=3;Type=file; f
            """.utf8)
        let (entries, unreadable) = FTPListingParser.parseMLSD(data)
        XCTAssertEqual(unreadable, 0)
        XCTAssertEqual(entries.map { String(decoding: $0.name, as: UTF8.self) }, ["a", "b", "c", "e", "f"])
        XCTAssertEqual(entries.map(\.kind), [.file, .directory, .symlink, .directory, .file])
        XCTAssertEqual(entries[0].size, 77)
        XCTAssertEqual(entries[0].precision, 1)
        XCTAssertEqual(entries[1].mode, 0o750)
        XCTAssertEqual(entries[1].time, FTPListingParser.utcSeconds(year: 2025, month: 1, day: 1, hour: 10, minute: 0))
        XCTAssertEqual(entries[2].linkTarget, Array("target".utf8))
        XCTAssertEqual(entries[3].precision, 0)
        XCTAssertEqual(entries[4].size, 3)
    }

    func testUnixLISTMinuteAndYearForms() {
        let data = Array(
            """
            total 12
            drwxr-xr-x    2 1001     1001         4096 Nov 23 07:53 .
            -rw-r--r--    1 1001     1001         1234 Nov 23 07:53 about.html
            -rw-r--r--    1 1001     1001            7 Mar 12  2023 old.txt
            -rw-r--r--    1 1001     1001            9 Dec 31 23:59 last year.txt
            lrwxrwxrwx    1 0        0               7 Nov 23 07:53 link -> target
            -rw-r--r-- 1 owner 42 Nov 01 10:00  two spaces
            crw-rw-rw-    1 0        0            1,   3 Nov 23 07:53 null
            this is not a listing line
            """.utf8)
        let (entries, unreadable) = FTPListingParser.parseLIST(data, serverNow: now)
        let byName = Dictionary(uniqueKeysWithValues: entries.map { (String(decoding: $0.name, as: UTF8.self), $0) })
        XCTAssertEqual(unreadable, 1)
        XCTAssertEqual(byName["about.html"]?.size, 1234)
        XCTAssertEqual(byName["about.html"]?.precision, 60)
        XCTAssertEqual(
            byName["about.html"]?.time, FTPListingParser.utcSeconds(year: 2026, month: 11, day: 23, hour: 7, minute: 53)
        )
        XCTAssertEqual(byName["about.html"]?.mode, 0o644)
        XCTAssertEqual(byName["old.txt"]?.precision, 86_400)
        XCTAssertEqual(
            byName["old.txt"]?.time, FTPListingParser.utcSeconds(year: 2023, month: 3, day: 12, hour: 0, minute: 0))
        // A date after "now" without a year is last year's.
        XCTAssertEqual(
            byName["last year.txt"]?.time,
            FTPListingParser.utcSeconds(year: 2025, month: 12, day: 31, hour: 23, minute: 59))
        XCTAssertEqual(byName["link"]?.kind, .symlink)
        XCTAssertEqual(byName["link"]?.linkTarget, Array("target".utf8))
        XCTAssertEqual(byName[" two spaces"]?.size, 42, "a name keeps its leading space; a missing group is tolerated")
        XCTAssertNil(byName["null"], "devices are not synchronized")
        XCTAssertEqual(byName["."]?.kind, .directory, "the parser reports dot entries; the endpoint drops them")
    }

    /// Regressions found by the listing fuzz (docs/RELIABILITY.md, case 6): a year beyond 9999 overflowed
    /// the date arithmetic (a crash); a symlink line with no name gave an entry with an empty name.
    func testFuzzFindings() {
        let data = Array(
            """
            -rw-r--r--    1 0 0 7 Mar 12  9223372036854775807 huge year
            11-23-9223372036854775807  07:53AM   10 dos huge year
            lrwxrwxrwx    1 0 0 7 Nov 23  2026  -> target
            -rw-r--r--    1 0 0 7 Mar 12  9999 last year we read
            """.utf8)
        let (entries, unreadable) = FTPListingParser.parseLIST(data, serverNow: now)
        XCTAssertEqual(entries.map { String(decoding: $0.name, as: UTF8.self) }, ["last year we read"])
        XCTAssertEqual(unreadable, 3)
    }

    func testDOSLIST() {
        let data = Array(
            """
            11-23-26  07:53AM       <DIR>          Sub Folder
            11-23-2026  01:05PM                 1,234 report.pdf
            01-02-99  12:00AM                    10 y2k.txt
            """.utf8)
        let (entries, unreadable) = FTPListingParser.parseLIST(data, serverNow: now)
        XCTAssertEqual(unreadable, 0)
        XCTAssertEqual(entries.count, 3)
        XCTAssertEqual(entries[0].kind, .directory)
        XCTAssertEqual(entries[0].name, Array("Sub Folder".utf8))
        XCTAssertEqual(entries[1].size, 1234)
        XCTAssertEqual(
            entries[1].time, FTPListingParser.utcSeconds(year: 2026, month: 11, day: 23, hour: 13, minute: 5))
        XCTAssertEqual(entries[2].time, FTPListingParser.utcSeconds(year: 1999, month: 1, day: 2, hour: 0, minute: 0))
    }

    func testUnsafeNamesAreRecognized() {
        for bad in ["", ".", "..", "a/b", "../x", "tab\there", "nl\nx", "esc\u{1b}[2J", "del\u{7f}"] {
            XCTAssertFalse(FTPListingParser.isSafeName(Array(bad.utf8)), bad)
        }
        XCTAssertFalse(FTPListingParser.isSafeName([0x61, 0x00, 0x62]))
        for good in ["a", "...", ".hidden", "naïve café", "x..y"] {
            XCTAssertTrue(FTPListingParser.isSafeName(Array(good.utf8)), good)
        }
        XCTAssertTrue(FTPListingParser.isSafeName([0xe9, 0x74, 0xe9]), "Latin-1 bytes are a valid name")
    }

    func testTimeValuesRoundTrip() {
        XCTAssertEqual(FTPListingParser.parseTimeValue("19700101000000"), 0)
        XCTAssertEqual(FTPListingParser.parseTimeValue("20261123075326"), now - 6 * 60 - 34)
        XCTAssertEqual(FTPListingParser.timeValue(now - 6 * 60 - 34), "20261123075326")
        XCTAssertEqual(FTPListingParser.parseTimeValue("20241301000000"), nil, "month 13")
        XCTAssertEqual(FTPListingParser.parseTimeValue("2024"), nil)
        XCTAssertEqual(FTPListingParser.utcSeconds(year: 2024, month: 2, day: 29, hour: 0, minute: 0), 1_709_164_800)
    }

    func testRepliesAndFeatures() {
        let dialogue = Array(
            "220 (vsFTPd 3.0.3)\r\n211-Features:\r\n EPRT\r\n MDTM\r\n MLST type*;size*;modify*;\r\n MFMT\r\n UTF8\r\n211 End\r\n213 20261123075326\r\n"
                .utf8)
        let replies = FTPReply.parse(dialogue)
        XCTAssertEqual(replies.map(\.code), [220, 211, 213])
        let features = FTPFeatures(reply: replies[1])
        XCTAssertTrue(features.mlsd)
        XCTAssertTrue(features.mfmt)
        XCTAssertTrue(features.mdtm)
        XCTAssertTrue(features.utf8)
        XCTAssertFalse(FTPFeatures(reply: FTPReply(code: 211, text: "End", lines: ["Features:", " MDTM", "End"])).mlsd)
        XCTAssertEqual(replies[2].text, "20261123075326")
    }

    /// pure-ftpd ends a listing it cut at its limit with a 226 that says so (here after a line
    /// of its own first); a listing's usual ends and other replies do not count as cut.
    func testAListingCutShortIsToldByItsLastReply() {
        let cut = FTPReply.parse(
            Array(
                "150 Accepted data connection\r\n226-Options: -a -l \r\n226 Output truncated to 10000 matches\r\n".utf8)
        )
        XCTAssertEqual(cut.map(\.code), [150, 226])
        XCTAssertTrue(cut[1].saysListingWasCutShort)
        for fine in [
            "226 Transfer complete", "250 End.", "226-Options: -a -l\r\n226 27 matches total", "550 Output truncated",
        ] {
            let reply = FTPReply.parse(Array((fine + "\r\n").utf8)).last
            XCTAssertEqual(reply?.saysListingWasCutShort, false, fine)
        }
    }

    /// The login directory in `PWD`'s answer: between the quotes, a doubled quote for one.
    func testTheQuotedPathOfAPWDReply() {
        func path(_ reply: String) -> String? {
            FTPConnection.quotedPath(Array(reply.utf8)).map { String(decoding: $0, as: UTF8.self) }
        }
        XCTAssertEqual(path("257 \"/home/u\" is the current directory\r\n"), "/home/u")
        XCTAssertEqual(path("257 \"/a \"\"quoted\"\" b\" created\r\n"), "/a \"quoted\" b")
        XCTAssertEqual(path("257 \"/\"\r\n"), "/")
        XCTAssertNil(path("257 /home/u\r\n"), "no quotes")
        XCTAssertNil(path("257 \"/never/ends\r\n"), "no closing quote")
        XCTAssertEqual(FTPConnection.quotedPath([50, 53, 55, 32, 34, 47, 0xe9, 34]), [47, 0xe9], "any bytes")
    }

    /// `~/.netrc` as curl reads it: the machine's entry (the given login's where there is one),
    /// else `default`; never a password written for another login.
    func testNetrcEntries() {
        let text = """
            # a comment
            machine other.example login x password y
            machine ftp.example.com
              login backup
              password s3cret
            default login anonymous password me@example.com
            """
        let entry = Netrc.parse(text, host: "ftp.example.com", login: nil)
        XCTAssertEqual(entry?.login, "backup")
        XCTAssertEqual(entry?.password, "s3cret")
        XCTAssertEqual(Netrc.parse(text, host: "ftp.example.com", login: "backup")?.password, "s3cret")
        XCTAssertNil(Netrc.parse(text, host: "ftp.example.com", login: "someone"), "another user's password")
        XCTAssertEqual(Netrc.parse("default password p", host: "any", login: "someone")?.password, "p")
        XCTAssertEqual(Netrc.parse(text, host: "unknown.example", login: nil)?.login, "anonymous")
        XCTAssertNil(Netrc.parse("machine a login b password c", host: "d", login: nil))
    }

    /// A listing in a reply to `STAT path`: vsftpd's lines as they are, proftpd's without their
    /// indent; a reply where a name's line break shows is refused, whatever the server.
    func testStatListings() {
        func lines(_ reply: String) -> String? {
            FTPListingParser.statListing(Array(reply.utf8)).lines.map { String(decoding: $0, as: UTF8.self) }
        }
        let a = "-rw-r--r--    1 1001     0               1 Dec 03 06:00 123 456"
        let b = "drwxr-xr-x    2 1001     0            4096 Dec 03 06:00 ."
        XCTAssertEqual(lines("213-Status follows:\r\n\(a)\r\n\(b)\r\n213 End of status\r\n"), "\(a)\n\(b)\n")
        XCTAssertEqual(FTPListingParser.statListing(Array("213-Status follows:\r\n213 End\r\n".utf8)).code, 213)
        XCTAssertEqual(lines("213-Status follows:\r\n213 End\r\n"), "")
        XCTAssertEqual(lines("212-Status of /d:\r\n \(a)\r\n \(b)\r\n212 End of status\r\n"), "\(a)\n\(b)\n")
        XCTAssertEqual(lines("212-Status of /d:\r\n total 8\r\n \(a)\r\n212 End\r\n"), "total 8\n\(a)\n")
        // The parser reads what is left: the name that starts with digits and a space is whole.
        let parsed = FTPListingParser.parseLIST(Array(lines("213-S\r\n\(a)\r\n213 E\r\n")!.utf8), serverNow: now)
        XCTAssertEqual(parsed.entries.map { String(decoding: $0.name, as: UTF8.self) }, ["123 456"])
        XCTAssertEqual(parsed.unreadable, 0)
        for broken in [
            "213-S\r\n\(a)\nx\r\n213 E\r\n",  // a bare LF
            "213-S\r\n\(a)\rx\r\n213 E\r\n",  // a bare CR
            "213-S\r\n\(a)\r\n213 E\n",  // the end without its CR
            "213-S\r\n\(a)\r\n213 E\r",  // cut in the line end
            "212-S\r\n \(a)\r\n\(b)\r\n212 E\r\n",  // proftpd: a line without the indent
            "212-S\r\n\(a)\r\n \(b)\r\n212 E\r\n",
            "213-S\r\n\(a)\r\ntotal 8\r\n213 E\r\n",  // `total` after a name's line break
        ] {
            XCTAssertNil(lines(broken), broken)
        }
        XCTAssertEqual(FTPListingParser.statListing(Array("550 Permission denied.\r\n".utf8)).code, 550)
        XCTAssertNil(FTPListingParser.statListing(Array("hello\r\n".utf8)).lines)
    }

    /// The answer to `REST N` that proves a STAT reply was read whole: one line, 3xx, N alone.
    func testStatMarkers() {
        func marker(_ reply: String) -> Bool { FTPConnection.isMarker(Array(reply.utf8), token: "123456789012") }
        XCTAssertTrue(marker("350 Restart position accepted (123456789012).\r\n"))
        XCTAssertTrue(marker("350 Restarting at 123456789012. Send STORE or RETRIEVE\r\n"))
        XCTAssertFalse(marker("350 Restart position accepted (1234567890123).\r\n"), "another number")
        XCTAssertFalse(marker("350 Restart position accepted (9123456789012).\r\n"), "another number")
        XCTAssertFalse(marker("350 Restart position accepted (0).\r\n"))
        XCTAssertFalse(marker("501 REST 123456789012: not in ASCII mode\r\n"), "refused")
        XCTAssertFalse(marker("-rw-r--r-- 1 u g 1 Dec 03 06:00 x\r\n350 (123456789012)\r\n"), "two lines")
        XCTAssertFalse(marker("350-(123456789012)\r\n350 ok\r\n"), "two lines")
        XCTAssertTrue(FTPConnection.isLine(Array("350 Restart position accepted (0).\r\n".utf8), below: 400))
        XCTAssertFalse(FTPConnection.isLine(Array("550 no\r\n".utf8), below: 400))
        XCTAssertFalse(FTPConnection.isLine(Array("213 End\r\n200 NOOP ok\r\n".utf8), below: 400))
    }
}
