import ArgumentParser
import PlugSync
import SyncEngine

struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Bring files or folders back from a definition's destination as they were at a time.",
        discussion: """
            Reads the destination's current copy and the versions it keeps (versions: on the \
            definition). Each PATH (a file or a folder, relative to the synchronized folder) is \
            brought back as it was at --at (default: now, i.e. the current copy or, for a deleted \
            path, its newest version), into the definition's source or --to DIR. A file there that \
            is newer than what would be restored is left alone unless --force. Restored files get \
            their modification times (and modes, where kept) back.
            """)
    @OptionGroup var options: ConfigOptions
    @Argument(help: "The definition.") var name: String
    @Argument(help: "Files or folders, relative to the synchronized folder.") var paths: [String]
    @Option(help: "As they were at this local time: \"YYYY-MM-DD HH:MM\".") var at: String?
    @Option(help: "Restore into this folder instead of the definition's source.") var to: String?
    @Flag(name: .customLong("dry-run"), help: "Say what would be restored; change nothing.") var dryRun = false
    @Flag(help: "Replace files that are newer than what is restored.") var force = false

    func run() throws {
        var restoreOptions = PlugSync.Restore.Options()
        restoreOptions.dryRun = dryRun
        restoreOptions.force = force
        if let at {
            guard let seconds = PlugSync.Restore.parseTime(at) else {
                throw reported(UsageError("--at \(at): give a local time as \"YYYY-MM-DD HH:MM\""))
            }
            restoreOptions.at = seconds
        }
        if let to {
            guard to.hasPrefix("/") else { throw reported(UsageError("--to \(to): give an absolute path")) }
            restoreOptions.to = to
        }
        let result = try failing {
            let file = try options.load()
            let definition = try file.definition(named: name)
            return try PlugSync.Restore().restore(
                definition, paths: paths, options: restoreOptions,
                say: { print(TerminalText.escaped($0)) }, sayError: { FileHandleOut.error($0) })
        }
        for path in result.notFound { FileHandleOut.error("Nothing to restore for \(path) at that time") }
        let head = dryRun ? "Dry run: would restore" : "Restored"
        print(
            "\(head) \(result.restored) files (\(formatBytes(result.bytes))), \(result.skipped) skipped, \(result.failed) failed"
        )
        if result.failed > 0 || !result.notFound.isEmpty { throw ExitCode(1) }
    }
}
