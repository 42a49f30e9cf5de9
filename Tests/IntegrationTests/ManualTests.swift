import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// The man pages as the package ships them (`packaging/make-manual` on the built binary and
/// generate-manual): each renders with `groff -ww` without a warning, and the command page says
/// what `--help` says, characters outside ASCII included. Tests/PlugSyncTests/ManualPageTests.swift
/// holds plugsync.yaml(5) to the parser's keys.
final class ManualTests: IntegrationTestCase {
    private var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    /// The pages `packaging/make-manual` writes, in a folder of the test's.
    private func makePages() throws -> [String: String] {
        let binary = try PlugsyncBinary.path()
        let generate = (binary as NSString).deletingLastPathComponent + "/generate-manual"
        guard FileManager.default.isExecutableFile(atPath: generate) else {
            throw HarnessError(
                "\(generate) is not built: run `swift build --product generate-manual` (scripts/test does) in the same scratch path"
            )
        }
        try shell(
            "bash \(quote(repository + "/packaging/make-manual")) \(quote(binary)) \(quote(generate)) \(quote(path("man"))) 2026-01-02"
        )
        var pages: [String: String] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: path("man")) {
            pages[name] = read("man/" + name)
        }
        return pages
    }

    /// groff's output for a page (`-ww`: every warning), formatted on one long line per paragraph
    /// so that phrases are not broken; the test fails on anything groff says on standard error.
    private func render(_ file: String) throws -> String {
        guard hasTool("groff") else { throw HarnessError("groff is not installed (scripts/setup installs groff-base)") }
        let err = path(".groff.err")
        let text = try shell(
            "groff -ww -mandoc -Tutf8 -rLL=1000n -P-cbou \(quote(file)) 2>\(quote(err)); echo \"exit $?\" >>\(quote(err))"
        )
        let warnings = (read(".groff.err") ?? "").split(separator: "\n").filter { $0 != "exit 0" }
        XCTAssertEqual(warnings, [], "groff -ww on \(file)")
        return text
    }

    func testEveryPageRendersWithoutAWarning() throws {
        let pages = try makePages()
        XCTAssertEqual(Set(pages.keys), ["plugsync.1", "plugsync.yaml.5"])
        for (name, source) in pages.sorted(by: { $0.key < $1.key }) {
            // Only ASCII in the source: groff reads bytes as Latin-1 unless told otherwise, and
            // a character outside ASCII is written as an escape (\[u2026]).
            let outside = source.unicodeScalars.filter { !$0.isASCII }
            XCTAssertEqual(String(String.UnicodeScalarView(outside)), "", "\(name) holds characters outside ASCII")
            let text = try render(path("man/" + name))
            XCTAssertGreaterThan(text.split(separator: "\n").count, 100, "\(name) renders to almost nothing:\n\(text)")
        }
        // The page in the repository, as `man -l docs/plugsync.yaml.5` shows it.
        let text = try render(repository + "/docs/plugsync.yaml.5")
        XCTAssert(text.contains("PLUGSYNC.YAML(5)"), text)
        // Dated and versioned by make-manual.
        let version = try plugsync("--version", config: nil).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssert(
            pages["plugsync.yaml.5"]?.contains(".TH PLUGSYNC.YAML 5 2026-01-02 \"plugsync \(version)\"") == true,
            "plugsync.yaml.5 is not dated 2026-01-02 and versioned \(version)")
    }

    /// A warning is what the test above fails on: a page with a bad escape must make it fail.
    func testAWarningIsSeen() throws {
        try write("bad.5", ".TH BAD 5\n.SH NAME\nbad \\- a page\n.SH DESCRIPTION\n\\[nosuchglyph] and \\qx\n")
        let err = path(".groff.err")
        _ = try shell("groff -ww -mandoc -Tutf8 -z \(quote(path("bad.5"))) 2>\(quote(err)); true")
        XCTAssertNotEqual(read(".groff.err") ?? "", "", "groff -ww said nothing about a bad page")
    }

    func testTheCommandPageSaysWhatHelpSays() throws {
        let pages = try makePages()
        let text = try render(path("man/plugsync.1"))
        let flat = collapse(text.replacingOccurrences(of: "\n", with: " "))
        // The endpoint forms of add, edit and copy, with their ellipses.
        XCTAssert(flat.contains("device:label=…,directory=…"), "plugsync.1 lost the ellipses:\n\(text)")
        XCTAssert(pages["plugsync.1"]?.contains("device:label=\\[u2026],directory=\\[u2026]") == true)
        // Every character outside ASCII of the parser's description reaches the page.
        let dump = try plugsync("--experimental-dump-help", config: nil).stdout
        let outside = Set(dump.unicodeScalars.filter { !$0.isASCII })
        XCTAssertFalse(outside.isEmpty, "the help texts hold no character outside ASCII: test another one")
        for scalar in outside {
            XCTAssert(
                text.unicodeScalars.contains(scalar), "plugsync.1 lost \(scalar) (U+\(String(scalar.value, radix: 16)))"
            )
        }
        // Every command has its entry (a line that starts with its name).
        let starts = Set(text.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) })
        for command in [
            "add", "edit", "copy", "delete", "list", "show", "run", "log", "status", "devices", "check", "verify",
            "agent",
        ] {
            XCTAssert(starts.contains(command), "plugsync.1 has no entry for \(command)")
        }
    }
}
