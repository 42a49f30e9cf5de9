import ArgumentParser
import PlugSync
import SyncEngine

/// The fields of a definition as flags; each given flag replaces that field.
struct DefinitionFlags: ParsableArguments {
    @Option(help: "Free text shown in listings.") var description: String?
    @Option(help: "Group for 'run --group'.") var group: String?
    @Option(
        help:
            "mirror (the destination becomes a copy of the source: what the source lacks is deleted) or backup (nothing is deleted). add: backup when not given."
    ) var type: String?
    @Option(help: "Source endpoint: /path, device:label=…,directory=…, ftp://user@host/dir or sftp://user@host/dir.")
    var source: String?
    @Option(help: "Destination endpoint, same forms as --source.") var destination: String?
    @Option(name: .customLong("source-check"), help: "File Check on the source: path[=regex].") var sourceCheck: String?
    @Option(name: .customLong("destination-check"), help: "File Check on the destination: path[=regex].")
    var destinationCheck: String?
    @Option(help: "Regex of names to ignore (repeat for several; replaces the list).") var ignore: [String] = []
    @Option(name: .customLong("log-file"), help: "Absolute path of the definition's log.") var logFile: String?
    @Option(name: .customLong("max-delete"), help: "Most a mirror may delete: a count or a percentage.") var maxDelete:
        String?
    @Option(help: "Schedule rule, e.g. \"mon,fri at 18:30\" (repeat; replaces the schedule).") var schedule: [String] =
        []
    @Option(
        name: .customLong("max-age"),
        help: "Overdue when the last successful run is older: 30m, 12h, 7d (\"\" removes it).")
    var maxAge: String?
    @Option(name: .customLong("notify-url"), help: "Ping this URL (healthchecks style) after runs (\"\" removes it).")
    var notifyURL: String?
    @Option(
        name: .customLong("notify-events"),
        help: "What to ping for, comma-separated: start, success, failure, overdue, removable.")
    var notifyEvents: String?
    @Option(
        help:
            "Keep what runs replace or delete in .plugsync-versions on the destination: KEEP_DAYS[,KEEP_MIN[,KEEP_MAX]] (defaults 30,3,20; 0 days: never by age, 0 max: no limit; \"off\" keeps none)."
    ) var versions: String?
    @Flag(inversion: .prefixedNo, help: "Synchronize subfolders too.") var recursive: Bool?
    @Flag var enablement: Enablement?

    func apply(to definition: inout Definition) throws {
        if let description { definition.description = description.isEmpty ? nil : description }
        if let group { definition.group = group.isEmpty ? nil : group }
        if let type {
            guard let value = SyncType(rawValue: type) else {
                throw UsageError("--type \(type): give mirror or backup")
            }
            definition.type = value
        }
        if let source { definition.source.location = try EndpointSyntax.parseLocation(source) }
        if let destination { definition.destination.location = try EndpointSyntax.parseLocation(destination) }
        if let sourceCheck { definition.source.fileCheck = try Self.check(sourceCheck, flag: "--source-check") }
        if let destinationCheck {
            definition.destination.fileCheck = try Self.check(destinationCheck, flag: "--destination-check")
        }
        if !ignore.isEmpty { definition.ignore = ignore.filter { !$0.isEmpty } }
        if let logFile { definition.logFile = logFile.isEmpty ? nil : logFile }
        if let maxDelete {
            if let limit = MaxDelete(parsing: maxDelete) {
                definition.maxDelete = limit
            } else {
                throw UsageError("--max-delete \(maxDelete): give a count (100) or a percentage (50%)")
            }
        }
        if !schedule.isEmpty { definition.schedule = try schedule.filter { !$0.isEmpty }.map(EndpointSyntax.parseRule) }
        if let maxAge {
            if maxAge.isEmpty {
                definition.maxAge = nil
            } else if let seconds = AgeText.seconds(maxAge) {
                definition.maxAge = seconds
            } else {
                throw UsageError("--max-age \(maxAge): give a duration like 30m, 12h or 7d")
            }
        }
        if let notifyURL {
            var notify = definition.notify ?? NotifySettings()
            notify.url = notifyURL.isEmpty ? nil : notifyURL
            definition.notify = notify == NotifySettings() ? nil : notify
        }
        if let notifyEvents {
            var chosen = Set<NotifySettings.Event>()
            for name in notifyEvents.split(separator: ",").map({ $0.filter { $0 != " " && $0 != "\t" } })
            where !name.isEmpty {
                guard let event = NotifySettings.Event(rawValue: name) else {
                    throw UsageError(
                        "--notify-events \(notifyEvents): \"\(name)\" is not one of start, success, failure, overdue, removable"
                    )
                }
                chosen.insert(event)
            }
            var notify = definition.notify ?? NotifySettings()
            notify.events = NotifySettings.Event.allCases.filter(chosen.contains)
            definition.notify = notify
        }
        if let versions { definition.versions = try Self.versions(versions) }
        if let recursive { definition.recursive = recursive }
        if let enablement { definition.enabled = enablement == .enable }
    }

    /// `--versions 30,3,20`: keep_days, then optionally keep_min and keep_max; `off` (or "")
    /// turns versions off.
    static func versions(_ text: String) throws -> VersionPolicy? {
        if text.isEmpty || text == "off" { return nil }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map {
            String($0.filter { $0 != " " })
        }
        let numbers = parts.map { Int($0) }
        guard (1...3).contains(parts.count), numbers.allSatisfy({ $0 != nil && $0! >= 0 && $0! <= 100_000 }) else {
            throw UsageError(
                "--versions \(text): give KEEP_DAYS[,KEEP_MIN[,KEEP_MAX]], whole numbers from 0, e.g. 30 or 30,3,20 (or off)"
            )
        }
        var policy = VersionPolicy(keepDays: numbers[0]!)
        if numbers.count > 1 { policy.keepMin = numbers[1]! }
        if numbers.count > 2 { policy.keepMax = numbers[2]! }
        if let problem = policy.problem { throw UsageError("--versions \(text): \(problem)") }
        return policy
    }

    static func check(_ text: String, flag: String) throws -> FileCheck? {
        if text.isEmpty { return nil }
        do { return try FileCheck(parsing: text) } catch { throw UsageError("\(flag) \"\(text)\": \(error)") }
    }
}

struct Add: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add a definition.",
        discussion:
            "Example: plugsync add docs --source /home/ana/Documents --destination device:label=BLUEDISK,directory=backups/docs --destination-check '.plugsync-id=^ana-blue$'"
    )
    @OptionGroup var options: ConfigOptions
    @Argument(help: "The new definition's name.") var name: String
    @OptionGroup var fields: DefinitionFlags

    func run() throws {
        try failing {
            guard fields.source != nil, fields.destination != nil else {
                throw UsageError("add needs --source and --destination")
            }
            var file = try options.load(allowMissing: true)
            var definition = Definition(
                name: name, source: EndpointSpec(.local(path: "/")), destination: EndpointSpec(.local(path: "/")))
            // Without --type, nothing is ever deleted (as rsync without --delete, rclone copy).
            definition.type = .backup
            try fields.apply(to: &definition)
            try file.add(definition)
            try file.save()
            let kind =
                definition.type == .backup
                ? "a backup: files are copied and replaced, nothing on the destination is deleted"
                    + (fields.type == nil ? " (--type mirror makes it a mirror)" : "")
                : "a mirror: the destination becomes a copy of the source, what the source lacks is deleted"
            print("Added \(name) to \(file.path), \(kind)")
        }
    }
}

struct Edit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edit",
        abstract: "Change fields of a definition; the others stay as they are.")
    @OptionGroup var options: ConfigOptions
    @Argument(help: "The definition to change.") var name: String
    @Option(help: "A new name.") var rename: String?
    @OptionGroup var fields: DefinitionFlags

    func run() throws {
        try failing {
            var file = try options.load()
            var definition = try file.definition(named: name)
            try fields.apply(to: &definition)
            if let rename { definition.name = rename }
            try file.replace(name, with: definition)
            try file.save()
            print("Changed \(definition.name) in \(file.path)")
        }
    }
}

struct Copy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "Copy a definition under a new name, with optional changes.")
    @OptionGroup var options: ConfigOptions
    @Argument(help: "The definition to copy.") var name: String
    @Argument(help: "The copy's name.") var newName: String
    @OptionGroup var fields: DefinitionFlags

    func run() throws {
        try failing {
            var file = try options.load()
            var definition = try file.definition(named: name)
            definition.name = newName
            try fields.apply(to: &definition)
            try file.add(definition)
            try file.save()
            print("Copied \(name) to \(newName) in \(file.path)")
        }
    }
}

struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete",
        abstract: "Delete a definition (its files and logs are left alone).")
    @OptionGroup var options: ConfigOptions
    @Argument(help: "The definition to delete.") var name: String

    func run() throws {
        try failing {
            var file = try options.load()
            try file.remove(name)
            try file.save()
            print("Deleted \(name) from \(file.path)")
        }
    }
}

/// `--enable` / `--disable`: whether the definition runs at all.
enum Enablement: String, EnumerableFlag {
    case enable, disable

    static func help(for value: Enablement) -> ArgumentHelp? {
        value == .enable
            ? "The definition runs (on mount, on schedule, with --all)." : "The definition runs only when named."
    }
}
