import ArgumentParser
import PlugSync
import SyncEngine

#if canImport(Glibc)
    import Glibc
#endif

/// `plugsync sync SOURCE DESTINATION`: one run between two endpoints, with no definitions file
/// (as `rclone sync a b`): the run, its output, exit codes and safety rails are `run`'s.
struct SyncNow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Synchronize two endpoints once, without a definition.",
        discussion: """
            Example: plugsync sync ~/Documents device:label=BLUEDISK,directory=docs --dry-run
            SOURCE and DESTINATION take the forms of add's --source and --destination, and a local \
            folder may be given relative to the current one. Nothing is deleted unless --type mirror \
            is given; a mirror deletes at most max_delete (50 % of the destination's entries unless \
            --max-delete says otherwise). The run is not recorded in the run history.
            """)
    @Argument(
        help: ArgumentHelp(
            "A folder (relative or absolute), device:label=…,directory=…, ftp://user@host/dir or sftp://user@host/dir.",
            valueName: "source"), completion: .directory)
    var source: String
    @Argument(
        help: ArgumentHelp("Where the files go, same forms as SOURCE.", valueName: "destination"),
        completion: .directory)
    var destination: String
    @Option(
        help:
            "backup (files are copied and replaced, nothing is deleted) or mirror (the destination becomes a copy of the source: what the source lacks is deleted)."
    ) var type: String = "backup"
    @Option(name: .customLong("source-check"), help: "File Check on the source: path[=regex].") var sourceCheck: String?
    @Option(name: .customLong("destination-check"), help: "File Check on the destination: path[=regex].")
    var destinationCheck: String?
    @Option(
        help: ArgumentHelp(
            "A pattern of entries to ignore: a regex on names, re:REGEX, or glob:SHELL-PATTERN (on paths with a /); repeat for several.",
            valueName: "pattern"))
    var ignore: [String] = []
    @Option(name: .customLong("max-delete"), help: "Most a mirror may delete: a count or a percentage (default 50%).")
    var maxDelete: String?
    @Option(help: "Files transferred at once (1-64, default 4).") var parallel: Int?
    @Flag(inversion: .prefixedNo, help: "Synchronize subfolders too.") var recursive = true
    @OptionGroup var flags: RunFlags

    func run() throws {
        let signals = StopSignals()
        let outcomes: [RunOutcome] = try failing {
            let definition = try self.definition()
            let runner = try SyncRunner(stateDirectory: StateDirectory.path())
            let key = Self.stateName(definition.source.location, definition.destination.location)
            return try flags.run([definition], with: runner, signals: signals, oneShot: key)
        }
        try flags.exit(outcomes, signals: signals)
    }

    /// The definition a definitions file would hold for these arguments, checked as one.
    func definition() throws -> Definition {
        let here = Self.currentDirectory()
        func location(_ text: String, _ role: String) throws -> Location {
            do { return try EndpointSyntax.parseLocation(text, relativeTo: here) } catch {
                throw UsageError("\(role): \(error)")  // the error quotes what it needs (never a password)
            }
        }
        let sourceLocation = try location(source, "SOURCE")
        let destinationLocation = try location(destination, "DESTINATION")
        var definition = Definition(
            name: "sync", source: EndpointSpec(sourceLocation),
            destination: EndpointSpec(destinationLocation))
        definition.type = try DefinitionFlags.syncType(type)
        definition.source.fileCheck = try DefinitionFlags.check(sourceCheck ?? "", flag: "--source-check")
        definition.destination.fileCheck = try DefinitionFlags.check(
            destinationCheck ?? "", flag: "--destination-check")
        definition.ignore = try DefinitionFlags.ignorePatterns(ignore)
        if let maxDelete { definition.maxDelete = try DefinitionFlags.maxDelete(maxDelete) }
        definition.parallel = parallel
        definition.recursive = recursive
        do { try DefinitionsFile.validate(definition) } catch let error as UsageError {
            // The endpoints are arguments here, not --source and --destination.
            var text = error.description
            for (option, argument) in [("--source:", "SOURCE:"), ("--destination:", "DESTINATION:")]
            where text.hasPrefix(option) {
                text = argument + text.dropFirst(option.count)
            }
            throw UsageError(text)
        }
        return definition
    }

    /// `sync-` and a digest of the two endpoints: the same two share the lock (a second sync of
    /// them waits for the first) and what a server's run keeps for the next.
    static func stateName(_ source: Location, _ destination: Location) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in (source.summary + "\n" + destination.summary).utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return "sync-" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// nil when it cannot be known (removed meanwhile): a relative path is refused then.
    static func currentDirectory() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
