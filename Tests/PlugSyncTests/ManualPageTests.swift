import Foundation
import SyncEngine
import XCTest

@testable import PlugSync

/// The manual page of the definitions file, docs/plugsync.yaml.5, against the parser: every key
/// the parser accepts is described in the page's section for its mapping, the page describes no
/// key the parser refuses there, and the values of the keys that take one of a few words are
/// named. (Tests/IntegrationTests/ManualTests.swift renders the page.)
final class ManualPageTests: XCTestCase {
    static let pagePath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/plugsync.yaml.5").path

    /// Where the page describes each mapping of `DefinitionsParser.acceptedKeys`: the headings
    /// (`.SH` or `.SS`) of the sections whose `.TP` tags (and, for the endpoint kinds, `.SS`
    /// headings) name its keys.
    static let sections: [String: [String]] = [
        "top level": ["FILE LAYOUT"], "settings": ["SETTINGS"], "definition": ["DEFINITION KEYS"],
        "endpoint": ["ENDPOINTS", "FILE CHECK"], "device": ["device"], "ftp, ftps": ["ftp, ftps"], "sftp": ["sftp"],
        "hooks": ["HOOKS"], "notify": ["NOTIFY"], "versions": ["VERSIONS"], "schedule rule": ["SCHEDULE"],
    ]

    /// One `.SH` or `.SS` section of the page: its heading, its tagged paragraphs (the tag line
    /// after `.TP`, and the lines up to the next `.TP` or heading) and its subsection headings.
    struct Section {
        var heading: String
        var entries: [(tag: String, body: String)] = []
        var subsections: [String] = []
    }

    static func sections(of page: String) -> [Section] {
        var sections: [Section] = []
        var lines = page.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)[...]
        var inTag = false
        var top: Int?  // the last .SH
        while let line = lines.popFirst() {
            if line.hasPrefix(".SH ") || line.hasPrefix(".SS ") {
                let heading = plain(String(line.dropFirst(4)))
                if line.hasPrefix(".SS "), let top { sections[top].subsections.append(heading) }
                if line.hasPrefix(".SH ") { top = sections.count }
                sections.append(Section(heading: heading))
                inTag = false
            } else if line == ".TP" {
                inTag = true
            } else if inTag, !sections.isEmpty {
                sections[sections.count - 1].entries.append((plain(line), ""))
                inTag = false
            } else if !sections.isEmpty, !sections[sections.count - 1].entries.isEmpty {
                sections[sections.count - 1].entries[sections[sections.count - 1].entries.count - 1].body +=
                    plain(line) + " "
            }
        }
        return sections
    }

    /// A line of roff without its macro, quotes, font changes and escapes: what it reads as.
    static func plain(_ line: String) -> String {
        var text = line
        if text.hasPrefix(".") { text = String(text.drop { $0 != " " }) }
        for (escape, replacement) in [
            ("\\-", "-"), ("\\fB", ""), ("\\fI", ""), ("\\fR", ""), ("\\fP", ""), ("\\(dq", "\""), ("\\(aq", "'"),
            ("\\e", "\\"), ("\\&", ""), ("\"", ""),
        ] {
            text = text.replacingOccurrences(of: escape, with: replacement)
        }
        return text.trimmingCharacters(in: .whitespaces)
    }

    /// The keys a tag names: its words that end with `:` (`password:, password_file:` → both).
    static func keys(inTag tag: String) -> [String] {
        tag.split(whereSeparator: { $0 == " " || $0 == "," }).filter { $0.hasSuffix(":") && $0.count > 1 }.map {
            String($0.dropLast())
        }
    }

    func page() throws -> String {
        try String(contentsOfFile: Self.pagePath, encoding: .utf8)
    }

    func testEveryKeyTheParserAcceptsIsDescribedWhereItsMappingIs() throws {
        let sections = Self.sections(of: try page())
        for (mapping, keys) in DefinitionsParser.acceptedKeys {
            guard let headings = Self.sections[mapping] else {
                XCTFail(
                    "the parser accepts keys in a mapping the test does not place (\(mapping): \(keys)): describe them in docs/plugsync.yaml.5 and add its section to ManualPageTests.sections"
                )
                continue
            }
            let described = sections.filter { headings.contains($0.heading) }
            XCTAssertEqual(
                described.count, headings.count, "docs/plugsync.yaml.5 lacks a section of \(headings) for \(mapping)")
            var named = Set(described.flatMap { $0.entries.flatMap { Self.keys(inTag: $0.tag) } })
            if mapping == "endpoint" {
                named.formUnion(
                    described.flatMap(\.subsections).flatMap {
                        $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                    })
            }
            for key in keys {
                XCTAssert(
                    named.contains(key),
                    "docs/plugsync.yaml.5 does not describe \(mapping) key \"\(key)\" (a .TP tag \"\(key):\" in \(headings))"
                )
            }
            // And nothing the parser would refuse there.
            let accepted = Set(keys)
            for section in described where mapping != "endpoint" {
                for entry in section.entries {
                    for key in Self.keys(inTag: entry.tag) {
                        XCTAssert(
                            accepted.contains(key),
                            "docs/plugsync.yaml.5, \(section.heading): \"\(key):\" is not a key the parser accepts in \(mapping)"
                        )
                    }
                }
            }
        }
    }

    /// The test above reads the parser's named lists: a mapping whose keys are written where
    /// they are checked would escape it.
    func testTheParserNamesEveryListOfKeys() throws {
        let sources = URL(fileURLWithPath: Self.pagePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/PlugSync")
        let files = FileManager.default.enumerator(atPath: sources.path)?.compactMap { $0 as? String } ?? []
        XCTAssert(files.contains("DefinitionsParser.swift"), "no Sources/PlugSync/DefinitionsParser.swift")
        for file in files where file.hasSuffix(".swift") {
            let text = try String(contentsOfFile: sources.appendingPathComponent(file).path, encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            where line.contains("finish(allowed:") && (line.contains("\"") || line.hasSuffix("[")) {
                XCTFail(
                    "Sources/PlugSync/\(file):\(number + 1): a list of keys written in place; name it beside DefinitionsParser.definitionKeys and add it to acceptedKeys"
                )
            }
        }
    }

    func testTheWordsAKeyTakesAreNamed() throws {
        let sections = Self.sections(of: try page())
        func body(_ key: String, in heading: String) -> String? {
            sections.first { $0.heading == heading }?.entries.first { Self.keys(inTag: $0.tag).contains(key) }
                .map { $0.tag + " " + $0.body }
        }
        let words: [(key: String, heading: String, values: [String])] = [
            ("type", "DEFINITION KEYS", SyncType.allCases.map(\.rawValue)),
            ("log_level", "DEFINITION KEYS", LogLevel.allCases.map(\.rawValue)),
            ("tls", "ftp, ftps", FTPSpec.TLS.allCases.map(\.rawValue)),
            ("mount", "device", ["auto", "manual"]),
            ("events", "NOTIFY", NotifySettings.Event.allCases.map(\.rawValue)),
            ("days", "SCHEDULE", ScheduleRule.weekdayNames + ["weekdays", "weekend", "daily", "all"]),
        ]
        for (key, heading, values) in words {
            guard let text = body(key, in: heading) else {
                XCTFail("docs/plugsync.yaml.5, \(heading): no entry for \(key)")
                continue
            }
            let named = Set(text.split(whereSeparator: { !$0.isLetter && $0 != "_" }).map(String.init))
            for value in values {
                XCTAssert(named.contains(value), "docs/plugsync.yaml.5, \(heading), \(key): does not name \"\(value)\"")
            }
        }
        // Each word is one the parser takes.
        for day in ["weekdays", "weekend", "daily", "all"] { XCTAssertNotNil(ScheduleRule.weekdays(named: day), day) }
    }

    /// The parser's lists are the parser's: a file with a key from each is read, a key from no
    /// list is refused (so `acceptedKeys` cannot hold a key that `finish` would refuse).
    func testAcceptedKeysAreWhatTheParserAccepts() throws {
        let lists = Dictionary(uniqueKeysWithValues: DefinitionsParser.acceptedKeys.map { ($0.mapping, $0.keys) })
        XCTAssertEqual(lists["top level"], ["settings", "definitions"])
        let file = """
            settings:
              metrics_file: /tmp/plugsync.prom
            definitions:
              - name: a
                description: d
                group: g
                type: backup
                recursive: true
                max_delete: 10
                parallel: 2
                ignore: ['\\.tmp$']
                log_file: /tmp/a.txt
                log_level: full
                on_mount: false
                enabled: true
                max_age: 7d
                hooks: {before: 'true', after: 'true', on_error: 'true'}
                notify: {desktop: false, url: 'https://example.com/x', events: [failure]}
                versions: {keep_days: 30, keep_min: 3, keep_max: 20}
                verify: true
                schedule:
                  - {days: [mon], at: '18:30'}
                  - {month_days: [1], every: 2h, between: '08:00-20:00'}
                source:
                  local: /srv
                  file_check: '.id=^x$'
                destination:
                  device: {label: L, uuid: U, serial: S, directory: d, mount: auto, unmount_after: true, power_off_after: false}
              - name: b
                source:
                  ftp: {server: 'h:21', username: u, password_env: P, directory: d, tls: implicit, passive: true, clock_diff: auto, ca_file: /ca.pem}
                destination:
                  sftp: {server: h, username: u, password_file: /p, key_file: ~/.ssh/k, known_hosts: /k, directory: d}
              - name: c
                source:
                  ftps: {server: h, password: x}
                destination:
                  local: /dst
            """
        let parsed = try DefinitionsParser(file: "test.yaml").parse(file)
        XCTAssertEqual(parsed.definitions.map(\.0.name), ["a", "b", "c"])
        let used = Set(
            file.split(whereSeparator: { " \n{},[-".contains($0) }).filter { $0.hasSuffix(":") }.map {
                String($0.dropLast())
            })
        let listed = Set(lists.values.joined())
        XCTAssertEqual(listed.subtracting(used), [], "keys of acceptedKeys this test's file does not use")
        XCTAssertThrowsError(
            try DefinitionsParser(file: "test.yaml").parse("definitions:\n  - name: a\n    versionz: 1\n"))
    }
}
