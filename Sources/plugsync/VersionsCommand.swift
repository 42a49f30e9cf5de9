import ArgumentParser
import PlugSync
import SyncEngine

struct Versions: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "versions",
        abstract: "List the versions a definition's destination keeps of replaced and deleted files.",
        discussion: """
            With versions: on a definition, a run moves each file it replaces or deletes to \
            .plugsync-versions/<run start>/<its path> on the destination. This lists them, newest \
            first: when the run that kept it started, its size and its path. Give a PATH (a file \
            or a folder, relative to the synchronized folder) to see only its versions. Changes \
            nothing.
            """)
    @OptionGroup var options: ConfigOptions
    @Argument(help: "The definition.") var name: String
    @Argument(help: "A file or folder, relative to the synchronized folder.") var path: String?

    func run() throws {
        let result = try failing {
            let file = try options.load()
            let definition = try file.definition(named: name)
            return try VersionHistory.list(definition, path: path)
        }
        if result.versions.isEmpty {
            print(
                path.map { "No versions of \($0) on \(result.destination)." } ?? "No versions on \(result.destination)."
            )
            return
        }
        for version in result.versions {
            let size = formatBytes(version.entry.size)
            let padded = size.count < 10 ? String(repeating: " ", count: 10 - size.count) + size : size
            print(TerminalText.escaped("\(VersionHistory.timeText(version.seconds))  \(padded)  \(version.path)"))
        }
    }
}
