import Foundation
import SyncEngine
import XCTest

@testable import PlugSync

final class ConfigTests: XCTestCase {
    /// The definitions file example of the design, which is the contract.
    static let designExample = """
        definitions:
          - name: docs-to-usb
            description: Home documents to the blue USB disk
            group: laptop
            type: mirror                 # mirror | backup
            recursive: true
            max_delete: 50%              # or a count
            source:
              local: /home/ana/Documents
            destination:
              device:
                label: BLUEDISK          # and/or uuid: …, serial: …
                directory: backups/docs
                mount: auto              # optional, headless machines
              file_check: ".plugsync-id=^ana-blue$"
            ignore: ['\\.tmp$', '^~\\$']
            log_file: /var/log/plugsync/docs-to-usb.txt
            schedule:
              - days: [mon, tue, wed, thu, fri]
                at: "18:30"
              - days: [sat]
                every: 2h
                between: "08:00-20:00"
          - name: www-upload
            type: mirror
            source:
              local: /srv/www
            destination:
              ftp:
                server: ftp.example.com:21
                username: web
                password_file: /etc/plugsync/www.pass
                directory: www
                tls: explicit            # none | explicit | implicit
                clock_diff: auto         # or seconds, e.g. -3600

        """

    func parse(_ text: String) throws -> DefinitionsFile {
        try DefinitionsFile(path: "/etc/plugsync/test.yaml", text: text)
    }

    func testDesignExampleParses() throws {
        let file = try parse(Self.designExample)
        XCTAssertEqual(file.definitions.map(\.name), ["docs-to-usb", "www-upload"])
        let docs = file.definitions[0]
        XCTAssertEqual(docs.group, "laptop")
        XCTAssertEqual(docs.maxDelete, .percent(50))
        XCTAssertEqual(docs.ignore, ["\\.tmp$", "^~\\$"])
        guard case .device(let device) = docs.destination.location else { return XCTFail("not a device") }
        XCTAssertEqual(device.label, "BLUEDISK")
        XCTAssertEqual(device.directory, "backups/docs")
        XCTAssertTrue(device.mountAuto)
        XCTAssertEqual(docs.destination.fileCheck, FileCheck(path: ".plugsync-id", pattern: "^ana-blue$"))
        XCTAssertEqual(docs.schedule.count, 2)
        XCTAssertEqual(docs.schedule[0].when, .at(18 * 60 + 30))
        XCTAssertEqual(docs.schedule[1], ScheduleRule(days: .weekdays([7]), when: .every(120), between: 480...1200))
        XCTAssertTrue(docs.runsOnMount)
        guard let ftp = file.definitions[1].destination.location.server as? FTPSpec else { return XCTFail("not ftp") }
        XCTAssertEqual(ftp.host, "ftp.example.com")
        XCTAssertEqual(ftp.port, 21)
        XCTAssertEqual(ftp.password, .file("/etc/plugsync/www.pass"))
        XCTAssertEqual(ftp.tls, .explicit)
        XCTAssertEqual(ftp.clockDiff, .auto)
    }

    /// Each bad input: the message names the file, the line and the field.
    func assertError(
        _ text: String, line: Int?, field: String?, contains problem: String, file: StaticString = #filePath,
        at: UInt = #line
    ) {
        XCTAssertThrowsError(try parse(text), file: file, line: at) { error in
            guard let error = error as? ConfigError else { return XCTFail("\(error)", file: file, line: at) }
            XCTAssertEqual(error.file, "/etc/plugsync/test.yaml", file: file, line: at)
            XCTAssertEqual(error.line, line, "\(error)", file: file, line: at)
            if let field { XCTAssertEqual(error.field, field, "\(error)", file: file, line: at) }
            XCTAssertTrue(error.description.contains(problem), "\(error)", file: file, line: at)
            XCTAssertFalse(error.description.contains("\n"), file: file, line: at)
        }
    }

    func minimal(_ extra: String = "", source: String = "local: /a", destination: String = "local: /b") -> String {
        """
        definitions:
          - name: job
            source:
              \(source)
            destination:
              \(destination)
        \(extra)
        """
    }

    /// Regressions found by the definitions fuzz (docs/RELIABILITY.md, case 6).
    func testFuzzFindings() {
        // A NUL in a block scalar made the reader loop, allocating without end.
        assertError(
            minimal("    description: |\n      \u{0}text"), line: 8, field: nil, contains: "control character 0x00")
        // Deep nesting overflowed the stack (the reader recurses per level).
        assertError(
            minimal("    ignore: " + String(repeating: "[", count: 100_000)), line: 7, field: nil,
            contains: "nested more than 64 levels")
        assertError(
            minimal("    ignore: " + String(repeating: "{a: ", count: 1_000)), line: 7, field: nil,
            contains: "nested more than 64 levels")
        // An interval whose minutes overflow Int trapped; more than a day is refused too.
        assertError(
            minimal("    schedule:\n      - every: 153722867280912931h"), line: 8, field: nil,
            contains: "not an interval")
        assertError(minimal("    schedule:\n      - every: 25h"), line: 8, field: nil, contains: "1m to 24h")
        // A clock_diff that would overflow the run's time arithmetic.
        for huge in ["9223372036854775807", "-9223372036854775808", "31622401"] {
            assertError(
                minimal(destination: "ftp: {server: h, clock_diff: \(huge)}"), line: 6, field: nil,
                contains: "more than a year")
        }
        // `local:` with no value was force-unwrapped (a trap).
        for empty in ["local:", "local: ~", "local: #comment", "local: null"] {
            assertError(minimal(source: empty), line: 4, field: nil, contains: "needs an absolute path")
        }
        // A line break or terminal escape in a quoted value stays escaped in the one-line message.
        assertError(minimal("    type: \"mir\\nror\\e[2J\""), line: 7, field: nil, contains: "mir\\x0aror\\x1b[2J")
    }

    func testUnknownKeySuggestsTheRightOne() {
        assertError(
            minimal("    recusive: true"), line: 7, field: "definition \"job\": recusive",
            contains: "did you mean \"recursive\"")
    }

    func testBadRegex() {
        assertError(
            minimal("    ignore: ['(unclosed']"), line: 7, field: "definition \"job\": ignore",
            contains: "bad regex \"(unclosed\"")
    }

    func testBadScheduleTime() {
        assertError(
            minimal("    schedule:\n      - at: \"25:00\""), line: 8, field: "definition \"job\": schedule[0].at",
            contains: "not a time HH:MM")
        assertError(
            minimal("    schedule:\n      - days: [funday]\n        at: \"10:00\""), line: 8, field: nil,
            contains: "\"funday\" is not a day")
        assertError(minimal("    schedule:\n      - every: 0m"), line: 8, field: nil, contains: "not an interval")
        assertError(minimal("    schedule:\n      - days: [mon]"), line: 8, field: nil, contains: "needs 'at'")
    }

    func testRelativeLocalPath() {
        assertError(
            minimal(source: "local: docs"), line: 4, field: "definition \"job\": source.local",
            contains: "must be an absolute path")
    }

    func testDuplicateName() {
        let text = minimal() + "\n  - name: job\n    source: {local: /c}\n    destination: {local: /d}\n"
        assertError(text, line: 8, field: "definitions[1].name", contains: "duplicate name \"job\" (also at line 2)")
    }

    func testMissingEndpoint() {
        assertError(
            "definitions:\n  - name: job\n    source:\n      local: /a\n", line: 2,
            field: "definition \"job\": destination", contains: "missing")
        assertError(
            minimal(destination: "file_check: x"), line: 6, field: "definition \"job\": destination",
            contains: "missing endpoint")
    }

    func testDeviceNeedsAnIdentity() {
        assertError(
            minimal(destination: "device: {directory: x}"), line: 6, field: nil,
            contains: "needs a label, uuid or serial")
    }

    func testBadValues() {
        assertError(minimal("    type: sync"), line: 7, field: nil, contains: "not one of mirror, backup")
        assertError(minimal("    max_delete: lots"), line: 7, field: nil, contains: "neither a count")
        assertError(minimal("    recursive: maybe"), line: 7, field: nil, contains: "not true or false")
        assertError(minimal("    verify: yes please"), line: 7, field: nil, contains: "not true or false")
        assertError(
            minimal("    log_level: verbose"), line: 7, field: "definition \"job\": log_level",
            contains: "\"verbose\" is not one of normal, full")
        assertError(
            minimal(destination: "device: {label: X, directory: ../up}"), line: 6, field: nil,
            contains: "may not contain '..'")
        assertError(
            "definitions:\n  - name: 'bad name'\n    source: {local: /a}\n    destination: {local: /b}\n", line: 2,
            field: nil, contains: "may use only letters")
    }

    func testBrokenYAMLNamesTheLine() {
        assertError("definitions:\n  - name: job\n   source: [\n", line: 3, field: nil, contains: "not valid YAML")
    }

    func testFileCheckSplitsAtTheFirstEquals() throws {
        let check = try FileCheck(parsing: "id.txt=a=b")
        XCTAssertEqual(check.path, "id.txt")
        XCTAssertEqual(check.pattern, "a=b")
        XCTAssertNil(try FileCheck(parsing: "id.txt").pattern)
        XCTAssertNil(try FileCheck(parsing: "id.txt=").pattern)
        XCTAssertThrowsError(try FileCheck(parsing: "=x"))
    }

    func testFileCheckEvaluation() throws {
        let root = NSTemporaryDirectory() + "plugsync-check-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "ana-blue\n".write(toFile: root + "/.plugsync-id", atomically: true, encoding: .utf8)
        XCTAssertNil(try FileCheck(parsing: ".plugsync-id=^ana-blue$").failure(root: root))
        XCTAssertNil(try FileCheck(parsing: ".plugsync-id").failure(root: root))
        XCTAssertNil(try FileCheck(parsing: root + "/.plugsync-id=blue").failure(root: "/elsewhere"))
        let mismatch = try FileCheck(parsing: ".plugsync-id=^ana-red$").failure(root: root)
        XCTAssertTrue(mismatch?.contains("content does not match") == true, mismatch ?? "passed")
        let missing = try FileCheck(parsing: "absent").failure(root: root)
        XCTAssertTrue(missing?.contains("file not found") == true, missing ?? "passed")
    }

    func testEditingKeepsOtherDefinitionsAndComments() throws {
        var file = try parse(Self.designExample)
        var copy = file.definitions[1]
        copy.name = "www-copy"
        copy.type = .backup
        try file.add(copy)
        XCTAssertTrue(file.text.hasPrefix(Self.designExample.trimmingCharacters(in: .newlines)))
        var changed = try file.definition(named: "docs-to-usb")
        changed.description = "changed"
        try file.replace("docs-to-usb", with: changed)
        XCTAssertTrue(file.text.contains("clock_diff: auto         # or seconds, e.g. -3600"))
        XCTAssertEqual(try file.definition(named: "docs-to-usb"), changed)
        XCTAssertEqual(try file.definition(named: "www-copy"), copy)
        try file.remove("docs-to-usb")
        XCTAssertEqual(file.definitions.map(\.name), ["www-upload", "www-copy"])
        XCTAssertTrue(file.text.contains("tls: explicit            # none | explicit | implicit"))
        XCTAssertThrowsError(try file.add(copy))  // duplicate name
    }

    func testEmitterRoundTripsEveryField() throws {
        var definition = Definition(
            name: "all",
            source: EndpointSpec(.local(path: "/data/it's here"), fileCheck: FileCheck(path: "id", pattern: "^x: y$")),
            destination: EndpointSpec(
                .device(DeviceSpec(label: "true", uuid: "1234-ABCD", serial: "007", directory: "a/b"))))
        definition.description = "Quotes ' and \" and # hash: colon"
        definition.group = "g"
        definition.type = .backup
        definition.recursive = false
        definition.maxDelete = .count(7)
        definition.ignore = ["\\.tmp$", "^~\\$", "a b"]
        definition.logFile = "/var/log/x.txt"
        definition.logLevel = .full
        definition.schedule = [
            ScheduleRule(days: .weekdays([2, 6]), when: .at(18 * 60 + 30)),
            ScheduleRule(days: .monthDays([1, 15]), when: .every(90), between: 60...120),
        ]
        definition.onMount = false
        definition.enabled = false
        definition.parallel = 3
        definition.versions = VersionPolicy(keepDays: 0, keepMin: 1, keepMax: 0)
        definition.verify = true
        var ftp = FTPSpec(host: "h")
        ftp.port = 2121
        ftp.username = "u"
        ftp.password = .literal("s3cret:#")
        ftp.directory = "www"
        ftp.tls = .implicit
        ftp.clockDiff = .seconds(-3600)
        let second = Definition(
            name: "ftp", source: EndpointSpec(.local(path: "/x")), destination: EndpointSpec(.server(ftp)))
        var sftp = SFTPSpec(host: "::1")
        sftp.port = 2222
        sftp.username = "u"
        sftp.password = .file("/etc/pw")
        sftp.keyFile = "~/.ssh/id_rsa"
        sftp.knownHosts = "/k"
        sftp.directory = "d/e"
        let third = Definition(
            name: "sftp", source: EndpointSpec(.server(sftp)), destination: EndpointSpec(.local(path: "/y")))
        var file = try parse("definitions:\n")
        try file.add(definition)
        try file.add(second)
        try file.add(third)
        let reread = try parse(file.text)
        XCTAssertEqual(reread.definitions, [definition, second, third])
    }

    func testSFTPEndpoint() throws {
        let file = try parse(
            minimal(
                destination: """
                    sftp:
                            server: backup.example.com:2200
                            username: ana
                            key_file: ~/.ssh/id_ed25519
                            known_hosts: /etc/plugsync/known_hosts
                            directory: /backups/./laptop/
                    """))
        guard let sftp = file.definitions[0].destination.location.server as? SFTPSpec else {
            return XCTFail("not sftp")
        }
        XCTAssertEqual(sftp.host, "backup.example.com")
        XCTAssertEqual(sftp.port, 2200)
        XCTAssertEqual(sftp.username, "ana")
        XCTAssertEqual(sftp.keyFile, "~/.ssh/id_ed25519")
        XCTAssertEqual(sftp.knownHosts, "/etc/plugsync/known_hosts")
        XCTAssertEqual(sftp.directory, "backups/laptop")
        XCTAssertEqual(sftp.password, .none)
        XCTAssertEqual(sftp.summary, "sftp://ana@backup.example.com:2200/backups/laptop")
        XCTAssertTrue(file.definitions[0].destination.location.isRemote)

        // One line naming the file, the line and the field.
        assertError(minimal(destination: "sftp: {username: a}"), line: 6, field: nil, contains: "server")
        assertError(
            minimal(destination: "sftp: {server: 'h:99999'}"), line: 6, field: nil, contains: "has a bad port")
        assertError(
            minimal(destination: "sftp: {server: h, key_file: id_rsa}"), line: 6, field: nil,
            contains: "must be an absolute path (or start with ~/)")
        assertError(
            minimal(destination: "sftp: {server: h, password: a, password_env: B}"), line: 6, field: nil,
            contains: "give only one of password, password_file, password_env")
        assertError(
            minimal(destination: "sftp: {server: h, tls: explicit}"), line: 6, field: nil, contains: "tls")
        assertError(
            minimal(destination: "sftp: {server: h, directory: ../up}"), line: 6, field: nil,
            contains: "may not contain '..'")
        assertError(
            minimal(destination: "{sftp: {server: h}, ftp: {server: h}}"), line: 6, field: nil,
            contains: "give exactly one")

        guard let url = (try EndpointSyntax.parseLocation("sftp://ana@[::1]:2222/a/b/")).server as? SFTPSpec else {
            return XCTFail()
        }
        XCTAssertEqual([url.host, url.username, url.directory], ["::1", "ana", "a/b"])
        XCTAssertEqual(url.port, 2222)
        XCTAssertThrowsError(try EndpointSyntax.parseLocation("sftp://ana:secret@host/x")) { error in
            XCTAssertFalse("\(error)".contains("secret"), "\(error)")
        }
    }

    func testScheduleNextRunAcrossDaylightSaving() throws {
        // Local time comes from TZ, as the C library reads it.
        let saved = getenv("TZ").map { String(cString: $0) }
        setenv("TZ", "Europe/Berlin", 1)
        tzset()
        defer {
            if let saved { setenv("TZ", saved, 1) } else { unsetenv("TZ") }
            tzset()
        }
        func local(_ date: Date) -> tm {
            var t = time_t(date.timeIntervalSince1970)
            var parts = tm()
            localtime_r(&t, &parts)
            return parts
        }
        // 2026-03-29: clocks go from 02:00 to 03:00 in Berlin.
        var start = tm()
        start.tm_year = 2026 - 1900
        start.tm_mon = 2
        start.tm_mday = 28
        start.tm_hour = 23
        start.tm_isdst = -1
        let before = Date(timeIntervalSince1970: Double(mktime(&start)))
        let daily = ScheduleRule(when: .at(2 * 60 + 30))
        let next = local(try XCTUnwrap(daily.nextRun(after: before)))
        XCTAssertEqual(next.tm_mday, 29)
        XCTAssertEqual(next.tm_hour, 3)  // 02:30 does not exist that day: the next valid time
        XCTAssertEqual(next.tm_min, 0)
        let evening = ScheduleRule(when: .at(18 * 60 + 30))
        let after = try XCTUnwrap(evening.nextRun(after: before))
        XCTAssertEqual(after.timeIntervalSince(before), 19.5 * 3600 - 3600)  // one hour was skipped
        let window = ScheduleRule(days: .weekdays([7]), when: .every(120), between: 480...1200)
        let saturday = local(try XCTUnwrap(window.nextRun(after: before)))
        XCTAssertEqual(saturday.tm_wday + 1, 7)
        XCTAssertEqual(saturday.tm_hour, 8)
        // 2026-10-25: 02:30 happens twice; the rule runs at the first (still summer time).
        var autumn = tm()
        autumn.tm_year = 2026 - 1900
        autumn.tm_mon = 9
        autumn.tm_mday = 24
        autumn.tm_hour = 23
        autumn.tm_isdst = -1
        let october = Date(timeIntervalSince1970: Double(mktime(&autumn)))
        let twice = local(try XCTUnwrap(daily.nextRun(after: october)))
        XCTAssertEqual([twice.tm_mday, twice.tm_hour, twice.tm_min, twice.tm_isdst], [25, 2, 30, 1])
    }

    /// A window over midnight, and a crontab line answered with the nearest schedule.
    func testOvernightWindowsAndCrontabLines() throws {
        let night = try EndpointSyntax.parseRule("daily every 2h between 20:00-08:00")
        XCTAssertEqual(night.between, 1200...1920)
        XCTAssertEqual(night.minutes(), [0, 120, 240, 360, 1200, 1320])
        var definition = Definition(
            name: "n", source: EndpointSpec(.local(path: "/a")), destination: EndpointSpec(.local(path: "/b")))
        definition.schedule = [night]
        let lines = DefinitionEmitter.lines(for: definition, indent: 2)
        XCTAssertTrue(lines.contains { $0.contains("between: \"20:00-08:00\"") }, "\(lines)")
        // The definitions file reads it the same way: the emitted text loads back.
        let text = "definitions:\n" + lines.joined(separator: "\n") + "\n"
        XCTAssertEqual(try DefinitionsFile(path: "/x/plugsync.yaml", text: text).definitions.first?.schedule, [night])
        XCTAssertThrowsError(try EndpointSyntax.parseRule("daily every 2h between 08:00-08:00"))

        func hint(_ text: String) -> String {
            do {
                _ = try EndpointSyntax.parseRule(text)
                return "accepted"
            } catch { return "\(error)" }
        }
        XCTAssertTrue(hint("0 3 * * *").contains("looks like a crontab line"), hint("0 3 * * *"))
        XCTAssertTrue(hint("0 3 * * *").contains("\"daily at 03:00\""), hint("0 3 * * *"))
        XCTAssertTrue(hint("30 18 * * 1,5").contains("\"mon,fri at 18:30\""), hint("30 18 * * 1,5"))
        XCTAssertTrue(hint("15 4 1,15 * *").contains("\"1,15 at 04:15\""), hint("15 4 1,15 * *"))
        XCTAssertTrue(hint("*/5 * * * *").contains("every 2h"), hint("*/5 * * * *"))
        XCTAssertEqual(hint("mon,fri at 18:30"), "accepted")
    }

    func testMaxDelete() {
        XCTAssertTrue(MaxDelete.percent(50).allows(5, of: 10))
        XCTAssertFalse(MaxDelete.percent(50).allows(6, of: 10))
        XCTAssertTrue(MaxDelete.percent(0).allows(0, of: 0))
        XCTAssertFalse(MaxDelete.count(3).allows(4, of: 1000))
    }

    /// The command line and the definitions file read days and `max_delete` by the same rules:
    /// what one takes, the other takes; what one refuses (`monkey`, `150%`), the other refuses.
    func testTheCommandLineAndTheFileShareOneGrammar() throws {
        for word in ["mon", "Monday", "MON", "weekdays", "weekend", "daily"] {
            XCTAssertNoThrow(try EndpointSyntax.parseRule("\(word) at 10:00"), word)
            XCTAssertNoThrow(try parse(minimal("    schedule:\n      - days: [\(word)]\n        at: \"10:00\"")), word)
        }
        for word in ["monkey", "mo", "mondays", "fri-day"] {
            XCTAssertThrowsError(try EndpointSyntax.parseRule("\(word) at 10:00"), word)
            assertError(
                minimal("    schedule:\n      - days: [\(word)]\n        at: \"10:00\""), line: 8, field: nil,
                contains: "is not a day")
        }
        XCTAssertEqual(MaxDelete(parsing: "50%"), .percent(50))
        XCTAssertEqual(MaxDelete(parsing: "100"), .count(100))
        for text in ["150%", "-1", "nan%", "inf%", "ten", "5 %"] {
            XCTAssertNil(MaxDelete(parsing: text), text)
            assertError(minimal("    max_delete: \"\(text)\""), line: 7, field: nil, contains: "neither a count")
        }
    }

    func testCommandLineEndpointForms() throws {
        XCTAssertEqual(try EndpointSyntax.parseLocation("/a/b"), .local(path: "/a/b"))
        guard
            case .device(let device) = try EndpointSyntax.parseLocation("device:label=BLUE,directory=/x/y/,mount=auto")
        else {
            return XCTFail()
        }
        XCTAssertEqual(device.label, "BLUE")
        XCTAssertEqual(device.directory, "x/y")
        XCTAssertTrue(device.mountAuto)
        guard let ftp = (try EndpointSyntax.parseLocation("ftps://web@host:2121/www/site")).server as? FTPSpec else {
            return XCTFail()
        }
        XCTAssertEqual([ftp.host, ftp.username, ftp.directory], ["host", "web", "www/site"])
        XCTAssertEqual(ftp.port, 2121)
        // ftps:// is TLS from the first byte, as curl and lftp read it; ftpes:// is AUTH TLS.
        XCTAssertEqual(ftp.tls, .implicit)
        XCTAssertEqual(ftp.summary, "ftps://web@host:2121/www/site")
        let explicit = try XCTUnwrap(try EndpointSyntax.parseLocation("ftpes://host/www").server as? FTPSpec)
        XCTAssertEqual(explicit.tls, .explicit)
        XCTAssertEqual(explicit.summary, "ftpes://host/www")
        XCTAssertEqual((try EndpointSyntax.parseLocation("ftp://host/www").server as? FTPSpec)?.tls, FTPSpec.TLS.none)
        guard let v6 = (try EndpointSyntax.parseLocation("ftp://[::1]:21/")).server as? FTPSpec else {
            return XCTFail()
        }
        XCTAssertEqual([v6.host, v6.directory], ["::1", ""])
        XCTAssertNil(v6.username)
        XCTAssertThrowsError(try EndpointSyntax.parseLocation("ftp://web:secret@host/www")) { error in
            XCTAssertFalse("\(error)".contains("secret"), "\(error)")
            XCTAssertTrue("\(error)".contains("~/.netrc"), "\(error)")
        }
        XCTAssertThrowsError(try EndpointSyntax.parseLocation("ftp://host:99999/www")) { error in
            XCTAssertTrue("\(error)".contains("bad port"), "\(error)")
        }
        XCTAssertThrowsError(try EndpointSyntax.parseLocation("relative/path"))
        XCTAssertEqual(
            try EndpointSyntax.parseRule("sat every 2h between 08:00-20:00"),
            ScheduleRule(days: .weekdays([7]), when: .every(120), between: 480...1200))
        XCTAssertEqual(
            try EndpointSyntax.parseRule("1,15 at 03:00"), ScheduleRule(days: .monthDays([1, 15]), when: .at(180)))
        XCTAssertThrowsError(try EndpointSyntax.parseRule("mon at 25:00"))
    }

    func testAddToThePackagedDefaultFile() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../packaging/plugsync.yaml")
        let text = try String(contentsOf: url, encoding: .utf8)
        var file = try parse(text)
        XCTAssertTrue(file.definitions.isEmpty, "the packaged file must hold no active definition")
        try file.add(
            Definition(
                name: "x", source: EndpointSpec(.local(path: "/a")), destination: EndpointSpec(.local(path: "/b"))))
        XCTAssertEqual(try parse(file.text).definitions.map(\.name), ["x"])
        XCTAssertTrue(file.text.hasPrefix("# plugsync definitions"))
    }
}
