import ArgumentParser
import PlugSync
import SystemSupport

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Compare a definition's destination with its source by content, not by size and time.",
        discussion: """
            Reads every file on both sides (or a sample of them) and compares the bytes. A \
            destination on a local disk or a drive is read from the disk, not from memory. \
            Prints one line per difference and exits 1 if there is any (a file missing, of \
            another size or content; for a mirror also a file the source does not have), \
            3 if an endpoint cannot be reached (a drive not plugged in, a File Check that \
            fails). Changes nothing.
            """)
    @OptionGroup var options: ConfigOptions
    @Argument(help: "The definition to verify.", completion: .custom(Completion.names)) var name: String
    @Option(help: "Compare only this percentage of the files, chosen at random (e.g. 10).") var sample: Double?
    @Option(
        help:
            "Choose the sample with this number: the same number chooses the same files (default: a new one, printed).")
    var seed: UInt64?
    @Flag(help: "Print the result as one JSON object.") var json = false

    func validate() throws {
        if let sample, !(sample > 0 && sample <= 100) {
            throw ValidationError("--sample must be a percentage above 0 and at most 100, not \(sample)")
        }
    }

    func run() throws {
        let result = try failing {
            let file = try options.load()
            let definition = try file.definition(named: name)
            SyncRunner.loadLibraries(for: [definition])
            var verifyOptions = Verification.Options()
            verifyOptions.sample = sample ?? 100
            verifyOptions.seed = seed
            return try Verification().verify(definition, options: verifyOptions)
        }
        let report = result.report
        if json {
            print(jsonObject(result))
        } else {
            for difference in report.differences {
                print("Different  (\(TerminalText.escaped(difference.problem)))  \(difference.path)")
            }
            for error in report.listingErrors { FileHandleOut.error("Error: \(error)") }
            var summary = "\(name): \(report.differences.isEmpty ? "same" : "\(report.differences.count) different"): "
            summary += "\(report.filesCompared) files compared (\(formatBytes(report.bytesCompared)))"
            if report.filesSkipped > 0 {
                summary += ", \(report.filesSkipped) left out of the \(formatPercent(sample ?? 100)) % sample"
                summary += " (--seed \(result.seed) chooses the same files)"
            }
            if !report.listingErrors.isEmpty {
                summary += "; \(report.listingErrors.count) entries could not be listed"
            }
            print(summary)
        }
        if !report.differences.isEmpty || !report.listingErrors.isEmpty { throw ExitCode(1) }
    }

    private func formatPercent(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }

    private func jsonObject(_ result: Verification.Result) -> String {
        let report = result.report
        let differences = report.differences.map {
            "{\"path\": \(jsonString($0.path.description)), \"problem\": \(jsonString($0.problem))}"
        }
        let fields = [
            "\"definition\": \(jsonString(name))", "\"source\": \(jsonString(result.source))",
            "\"destination\": \(jsonString(result.destination))", "\"same\": \(report.differences.isEmpty)",
            "\"files_compared\": \(report.filesCompared)", "\"bytes_compared\": \(report.bytesCompared)",
            "\"files_left_out\": \(report.filesSkipped)", "\"sample_percent\": \(sample ?? 100)",
            "\"seed\": \(result.seed)", "\"differences\": [\(differences.joined(separator: ", "))]",
            "\"listing_errors\": [\(report.listingErrors.map(jsonString).joined(separator: ", "))]",
        ]
        return "{" + fields.joined(separator: ", ") + "}"
    }

    /// A JSON string: hand-written because the command line imports no Foundation; quotes,
    /// backslashes and control characters escaped.
    private func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
