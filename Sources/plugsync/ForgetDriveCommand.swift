import ArgumentParser
import PlugSync

/// `plugsync forget-drive`: a drive retired from a definition's rotation stops being shown and
/// being overdue.
struct ForgetDrive: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forget-drive",
        abstract: "Take a retired drive out of a definition's rotation: no longer shown by status, never overdue.",
        discussion: """
            Example: plugsync forget-drive docs-to-usb OFFSITE-B
            The drive is named as status shows it, or by its label, UUID (or its first characters), \
            serial or File Check content. Its runs stay in the history (status NAME); a later run \
            on the drive brings it back into the rotation.
            """)
    @OptionGroup var options: ConfigOptions
    @Argument(help: "The definition.", completion: .custom(Completion.names)) var name: String
    @Argument(help: ArgumentHelp("The drive, as status names it.", valueName: "drive")) var drive: String

    func run() throws {
        try failing {
            let file = try options.load()
            let definition = try file.definition(named: name)
            let history = try RunHistory(stateDirectory: StateDirectory.prepare(StateDirectory.path()))
            let now = FeedbackClock.now()
            let drives = DriveStatus.all(of: definition, history: history, now: now)
            let named = DriveStatus.named(drive, in: drives)
            let known = drives.map { "'" + $0.name + "'" }.joined(separator: ", ")
            guard named.count == 1, let found = named.first else {
                if named.isEmpty {
                    throw UsageError(
                        drives.isEmpty
                            ? "drive: \(name) has no drives in its history"
                            : "drive: \(name) used no drive named '\(drive)'; its drives: \(known)")
                }
                throw UsageError(
                    "drive: '\(drive)' names \(named.count) drives of \(name) (\(named.map { "'" + $0.name + "'" }.joined(separator: ", "))); name one as status shows it"
                )
            }
            try history.forget(drive: found.drive.key, of: name, at: now)
            // The metrics drop its series now, not at the agent's next hourly check.
            if let metrics = file.settings.metricsFile,
                let problem = MetricsFile.write(metrics, file.definitions, history: history, now: now)
            {
                FileHandleOut.error("plugsync: warning: \(problem)")
            }
            print(
                "\(name): \(found.name) forgotten: status no longer shows it and it is never overdue; its runs stay in the history, and a run on it brings it back."
            )
        }
    }
}
