import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// README.md's command lines, run against a scratch definitions file: every `plugsync …` line of
/// its code blocks, every `plugsync …` it quotes in the text (the command table's synopses
/// expanded: each alternative, each optional part, the placeholders filled in), and every field
/// option of "Fields for add, edit, copy" with the values it gives. None may be refused as a
/// usage error (an unknown option, a missing value: the argument parser's `Usage:` line), and
/// each must do what it does on a scratch file (exit 0; `verify` also 1, for differences).
/// What cannot be run here is in `skipped`, each with its reason.
final class ReadmeCommandTests: IntegrationTestCase {
    private var readme: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md").path
    }

    /// Quoted in the text but not command lines: parts of sentences. Each with its reason.
    static let skipped: [String: String] = [
        "plugsync run":
            "a sentence's mention of the command (\"a second `plugsync run` of the same definition waits\")",
        "plugsync add": "a sentence's mention of the command (\"once a definition is added (`plugsync add`, …)\")",
        "plugsync run -v": "a sentence's mention of the option (\"as `plugsync run -v` prints it\")",
        "plugsync --generate-completion-script":
            "a sentence's mention of the option; the completion tests run it with each shell",
        "plugsync run --json": "a sentence's mention of the option; `run … --json` runs from the command table",
        "plugsync run --all --json 2>/dev/null | jq .":
            "a shell pipeline; `run --all --json` runs from the command table",
        "plugsync sync Documents /media/ana/BLUE/docs":
            "an example with a user's folders this machine does not have; the synopsis of sync runs",
    ]

    /// Commands that run until stopped: started, and stopped once they have run for a while
    /// without a usage error.
    static func runsUntilStopped(_ arguments: [String]) -> Bool {
        arguments.first == "agent" || (arguments.first == "log" && arguments.contains("-f"))
    }

    /// Values for the placeholders of the synopses (`NAME`, `NEW`, …) and for field options
    /// the README names without a value.
    func placeholder(_ word: String, command: String) -> String? {
        switch word {
        case "NAME", "NAME…": return command == "add" ? "added" : "docs"
        case "NEW": return "docs-copy"
        case "S": return path("src")
        case "D": return path("added-dst")
        case "G": return "laptop"
        case "N": return "3"
        case "SECONDS": return "-3600"
        case "CMD": return "true"
        case "PERCENT": return "50"
        case "FILE": return configPath
        case "URL": return "https://hc.example.com/ping/1"
        case "REGEX": return "\\.tmp$"
        case "PATTERN": return "glob:*.tmp"
        case "SOURCE": return path("src")
        case "DESTINATION": return path("sync-dst")
        case "C": return ".plugsync-id"
        case "MOUNTPOINT": return path("src")
        case "DRIVE": return "OFFSITE-B"
        case "device:label=L": return "device:label=PSREADMENONE"
        case "PATH", "PATH…": return "a.txt"
        case "DIR": return path("restored")
        case "YYYY-MM-DD HH:MM": return "2026-01-01 00:00"
        default: return nil
        }
    }

    static let optionSamples: [String: String] = [
        "--description": "Documents", "--group": "laptop", "--source": "/srv/other", "--destination": "/srv/elsewhere",
        "--log-file": "/tmp/plugsync-readme-docs.txt", "--max-delete": "25%", "--source-check": ".plugsync-id",
        "--destination-check": ".plugsync-id=^docs$", "--versions": "30,3,20", "--password-file": "/etc/plugsync/pw",
        "--password-env": "SITE_PASSWORD", "--ca-file": "/etc/ssl/certs/ca-certificates.crt",
        "--key-file": "/root/.ssh/id_ed25519", "--known-hosts": "/root/.ssh/known_hosts",
    ]

    /// The definition an option of the fields is tried on: the server's and the drive's fields
    /// need an endpoint of their kind.
    static func definition(for option: String) -> String {
        switch option {
        case "--password-file", "--password-env", "--tls", "--passive", "--no-passive", "--clock-diff", "--ca-file":
            return "site"
        case "--key-file", "--known-hosts": return "ssh"
        case "--unmount-after", "--no-unmount-after", "--power-off-after", "--no-power-off-after": return "usb"
        default: return "docs"
        }
    }

    override func setUpWithError() throws {
        try super.setUpWithError()
        try write("src/a.txt", "a")
        try write("src/sub/b.txt", "b")
        // The File Check files the README's `--source-check C` and `--destination-check C` name.
        try write("src/.plugsync-id", "docs\n")
        try write("sync-dst/.plugsync-id", "docs\n")
    }

    /// A new scratch file: `docs` (a mirror with a log that exists, group laptop) and `other`.
    func freshConfig() throws {
        try writeConfig(
            definition(
                "docs", source: path("src"), destination: path("dst"),
                ["group: laptop", "log_file: \(path("docs.log"))"]),
            definition("other", source: path("src"), destination: path("dst2")),
            "  - name: site\n    source:\n      local: '\(path("src"))'\n    destination:\n      ftp:\n        server: 127.0.0.1:2121\n        username: web\n        directory: www\n    enabled: false\n",
            "  - name: ssh\n    source:\n      local: '\(path("src"))'\n    destination:\n      sftp:\n        server: 127.0.0.1:2922\n        username: web\n        directory: www\n    enabled: false\n",
            "  - name: usb\n    source:\n      local: '\(path("src"))'\n    destination:\n      device:\n        label: PSREADME\n        directory: docs\n    enabled: false\n"
        )
        try? FileManager.default.removeItem(atPath: path("docs.log"))
        let run = try plugsync("run", "docs")
        XCTAssertEqual(run.status, 0, "\(run)")
    }

    /// Runs one command line; checks it was not refused as a usage error and ended as expected.
    func check(_ arguments: [String], from source: String, expect: Set<Int32> = [0], stderrHas: String? = nil) throws {
        try freshConfig()
        var args = arguments
        // The README's --config FILE becomes the scratch file.
        if let index = args.firstIndex(of: "--config"), index + 1 < args.count {
            args.removeSubrange(index...(index + 1))
        }
        let line = "plugsync " + args.joined(separator: " ")
        let result: CommandResult
        if Self.runsUntilStopped(args) {
            let running = try startPlugsync(args + ["--config", configPath])
            let start = Date()
            while running.process.isRunning && Date().timeIntervalSince(start) < 2 { usleep(20_000) }
            let wasRunning = running.process.isRunning
            running.stop()
            result = running.result()
            XCTAssert(wasRunning, "\(line) (README: \(source)) ended at once:\n\(result)")
            XCTAssertFalse(isUsageError(result), "\(line) (README: \(source)) is a usage error:\n\(result)")
            return
        }
        // sync and init-drive read no definitions file.
        let fileless = ["sync", "init-drive"].contains(args.first ?? "")
        result = try plugsync(arguments: args, config: fileless ? nil : "")
        XCTAssertFalse(isUsageError(result), "\(line) (README: \(source)) is a usage error:\n\(result)")
        XCTAssert(expect.contains(result.status), "\(line) (README: \(source)) exited \(result.status):\n\(result)")
        if let stderrHas {
            XCTAssert(
                result.stderr.contains(stderrHas), "\(line) (README: \(source)) does not say \(stderrHas):\n\(result)")
        }
    }

    /// The argument parser's refusal: `Error: …` and a `Usage:` line (exit 2 here, 64 elsewhere).
    func isUsageError(_ result: CommandResult) -> Bool {
        result.status == 64 || result.stderr.contains("Usage: plugsync") || result.stderr.hasPrefix("Error:")
    }

    /// The words of a shell line, quotes removed (`"mon,fri at 18:30"` is one word).
    static func words(_ line: String) -> [String] {
        var words: [String] = []
        var current = ""
        var quote: Character?
        var inWord = false
        for character in line {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "'" || character == "\"" {
                quote = character
                inWord = true
            } else if character == " " {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(character)
                inWord = true
            }
        }
        if inWord { words.append(current) }
        return words
    }

    /// Inline code spans of a text (`…`), in order.
    static func codeSpans(_ text: String) -> [String] {
        text.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map {
            String($0.element)
        }
    }

    /// A synopsis (`run NAME… | --group G | --all [--dry-run] [-q | -v]`) as the command lines it
    /// stands for: each alternative alone, and the first with each alternative of each optional
    /// part. `[fields]` stands for the field options, checked on their own: here one of them.
    func expand(_ synopsis: String) throws -> [[String]] {
        var optional: [[String]] = []
        var rest = ""
        var depth = 0
        var group = ""
        for character in synopsis.replacingOccurrences(of: "\\|", with: "|") {
            if character == "[" && depth == 0 {
                depth = 1
                group = ""
            } else if character == "]" && depth == 1 {
                depth = 0
                if group == "fields" {
                    rest += " --description Documents "
                } else {
                    optional.append(group.components(separatedBy: "|"))
                }
            } else if depth == 1 {
                group.append(character)
            } else {
                rest.append(character)
            }
        }
        let parts = rest.components(separatedBy: "|").map { Self.words($0).filter { $0 != "…" } }
        // `[--type mirror|backup]`: the second alternative is a value of the first's option.
        optional = optional.map { choices in
            guard let first = choices.first.map(Self.words), first.count == 2, first[0].hasPrefix("-") else {
                return choices
            }
            return choices.map { $0.hasPrefix("-") ? $0 : first[0] + " " + $0 }
        }
        guard let command = parts.first?.first else { return [] }
        func fill(_ words: [String]) throws -> [String] {
            try words.map { word in
                if let value = placeholder(word, command: command) { return value }
                let letters = word.filter(\.isLetter)
                if !letters.isEmpty && letters.allSatisfy(\.isUppercase) {
                    throw HarnessError(
                        "README synopsis \"\(synopsis)\": no value for \(word): add one to placeholder()")
                }
                return word
            }
        }
        let head = [command]
        let alternatives = [Array(parts[0].dropFirst())] + parts.dropFirst()
        var lines = try alternatives.map { try fill(head + ($0.first == command ? Array($0.dropFirst()) : $0)) }
        for choices in optional {
            for choice in choices { lines.append(try fill(head + alternatives[0] + Self.words(choice))) }
        }
        return lines
    }

    /// The command lines of the README: code blocks' `plugsync …` and `$ plugsync …` lines
    /// (not output such as `plugsync agent: started …`), then the quoted ones.
    func commandLines() throws -> [(arguments: [String], source: String)] {
        let text = try String(contentsOfFile: readme, encoding: .utf8)
        var lines: [(arguments: [String], source: String)] = []
        var inBlock = false
        var skippedLines: [String: [Int]] = [:]
        defer {
            for (span, numbers) in skippedLines.sorted(by: { $0.key < $1.key }) {
                print(
                    "README lines \(numbers.map(String.init).joined(separator: ", ")): `\(span)` not run: \(Self.skipped[span]!)"
                )
            }
        }
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.hasPrefix("```") {
                inBlock.toggle()
                continue
            }
            var command = line.trimmingCharacters(in: .whitespaces)
            if command.hasPrefix("$ ") { command.removeFirst(2) }
            if inBlock, command.hasPrefix("plugsync "), !(Self.words(command).dropFirst().first?.hasSuffix(":") ?? true)
            {
                let words = Self.words(String(command.prefix { $0 != "#" }))
                lines.append((Array(words.dropFirst()), "line \(number + 1)"))
            }
            if !inBlock {
                for span in Self.codeSpans(String(line)) where span.hasPrefix("plugsync ") {
                    if Self.skipped[span] != nil {
                        skippedLines[span, default: []].append(number + 1)
                        continue
                    }
                    for arguments in try expand(String(span.dropFirst("plugsync ".count))) {
                        lines.append((arguments, "line \(number + 1), `\(span)`"))
                    }
                }
            }
        }
        return lines
    }

    func testEveryCommandLineOfTheReadmeRuns() throws {
        let lines = try commandLines()
        // The README's command table at least: a test that found nothing would prove nothing.
        let commands = Set(lines.compactMap(\.arguments.first))
        for command in ["add", "edit", "copy", "delete", "list", "show", "run", "log", "status", "check", "verify"] {
            XCTAssert(commands.contains(command), "no `plugsync \(command) …` found in README.md")
        }
        XCTAssertGreaterThan(lines.count, 25)
        for (arguments, source) in lines {
            // verify and restore: 1 when a file differs or had nothing to restore; init-drive on a
            // folder that is no drive's: 2, or 3 for a drive that is not there; forget-drive: 2,
            // the scratch definitions never ran on a drive.
            let expected: Set<Int32> =
                switch arguments.first {
                case "verify", "restore": [0, 1]
                case "init-drive": [2, 3]
                case "forget-drive": [2]
                default: [0]
                }
            try check(arguments, from: source, expect: expected)
        }
    }

    /// "Fields for add, edit, copy": each option with the values the README gives, through
    /// `plugsync edit docs`.
    func testEveryFieldOptionOfTheReadmeIsTaken() throws {
        let text = try String(contentsOfFile: readme, encoding: .utf8)
        guard let start = text.range(of: "Fields for `add`") else {
            XCTFail("README.md has no \"Fields for `add`\" paragraph")
            return
        }
        let paragraph = String(text[start.lowerBound...]).components(separatedBy: "\n\n")[0]
        let spans = Self.codeSpans(paragraph)
        var option: String?
        var checked = 0
        // After `""` ("`""` removes `--max-age` or `--notify-url`"), the options named are given "".
        var removing = false
        for (index, span) in spans.enumerated() {
            if span == "\"\"" {
                removing = true
                continue
            }
            if span.hasPrefix("--") {
                let words = Self.words(span)
                var names = [words[0]]
                if words[0].hasPrefix("--[no-]") {
                    let name = String(words[0].dropFirst("--[no-]".count))
                    names = ["--" + name, "--no-" + name]
                } else if words[0].contains("/--") {
                    names = words[0].components(separatedBy: "/")
                }
                option = names.last
                var values: [String?] = [nil]
                if words.count > 1 {
                    let value = words.dropFirst().joined(separator: " ")
                    values = value.contains("|") && !value.contains(" ") ? value.components(separatedBy: "|") : [value]
                    values = values.map { value in
                        guard let value else { return nil }
                        if let filled = placeholder(value, command: "edit") { return filled }
                        return value.contains("[") ? Self.optionSamples[names[0]] : value
                    }
                } else if removing {
                    values = [""]
                } else if let sample = Self.optionSamples[names[0]] {
                    values = [sample]
                }
                for name in names {
                    for value in values {
                        try check(
                            ["edit", Self.definition(for: name), name] + (value.map { [$0] } ?? []),
                            from: "Fields, `\(span)`")
                        checked += 1
                    }
                }
                continue
            }
            removing = false
            if span.hasPrefix("\"") && span.count > 2, option == "--schedule" {
                // A schedule rule; a crontab line is refused with the form the next span gives.
                let rule = String(span.dropFirst().dropLast())
                let isCrontab =
                    rule.split(separator: " ").count == 5 && rule.allSatisfy { "0123456789*,/- ".contains($0) }
                if isCrontab {
                    let nearest = index + 1 < spans.count ? spans[index + 1] : ""
                    try check(
                        ["edit", "docs", "--schedule", rule], from: "Fields, `\(span)`", expect: [2], stderrHas: nearest
                    )
                } else {
                    try check(["edit", "docs", "--schedule", rule], from: "Fields, `\(span)`")
                }
                checked += 1
            } else if span.hasPrefix("/") || span.hasPrefix("device:") || span.contains("://") {
                // An endpoint form, for --source and --destination.
                let endpoint = span.replacingOccurrences(of: "…", with: "user@host/dir").replacingOccurrences(
                    of: ":port", with: ":2121")
                try check(["edit", "docs", "--destination", endpoint], from: "Fields, `\(span)`")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 20, "few field options found in README.md's paragraph:\n\(paragraph)")
    }
}
