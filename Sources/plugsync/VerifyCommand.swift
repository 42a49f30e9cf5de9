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
            var verifyOptions = Verification.Options()
            verifyOptions.sample = sample ?? 100
            verifyOptions.seed = seed
            return try Verification().verify(definition, options: verifyOptions)
        }
        let report = result.report
        if json {
            try printJSON(jsonObject(result))
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

    /// `--json`: README, "Command line", names the fields.
    private struct VerifyJSON: Encodable {
        struct Difference: Encodable {
            var path: String
            var problem: String
        }
        var definition: String
        var source: String
        var destination: String
        var same: Bool
        var filesCompared: Int
        var bytesCompared: Int64
        var filesLeftOut: Int
        var samplePercent: Double
        var seed: UInt64
        var differences: [Difference]
        var listingErrors: [String]
    }

    private func jsonObject(_ result: Verification.Result) -> VerifyJSON {
        let report = result.report
        return VerifyJSON(
            definition: name, source: result.source, destination: result.destination,
            same: report.differences.isEmpty, filesCompared: report.filesCompared,
            bytesCompared: report.bytesCompared, filesLeftOut: report.filesSkipped,
            samplePercent: sample ?? 100, seed: result.seed,
            differences: report.differences.map {
                VerifyJSON.Difference(path: $0.path.description, problem: $0.problem)
            },
            listingErrors: report.listingErrors)
    }
}
