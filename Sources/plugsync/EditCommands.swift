import ArgumentParser
import PlugSync
import SyncEngine

/// The fields of a definition as flags; each given flag replaces that field. Every field of the
/// definitions file has one (a server's and a drive's own fields apply to the endpoint that is
/// one).
struct DefinitionFlags: ParsableArguments {
    @Option(help: "Free text shown in listings.") var description: String?
    @Option(help: "Group for 'run --group'.", completion: .custom(Completion.groups)) var group: String?
    @Option(
        help:
            "mirror (the destination becomes a copy of the source: what the source lacks is deleted) or backup (nothing is deleted). add: backup when not given.",
        completion: .list(["mirror", "backup"])
    ) var type: String?
    @Option(help: "Source endpoint: /path, device:label=…,directory=…, ftp://user@host/dir or sftp://user@host/dir.")
    var source: String?
    @Option(help: "Destination endpoint, same forms as --source.") var destination: String?
    @Option(name: .customLong("source-check"), help: "File Check on the source: path[=regex].") var sourceCheck: String?
    @Option(name: .customLong("destination-check"), help: "File Check on the destination: path[=regex].")
    var destinationCheck: String?
    @Option(
        help: ArgumentHelp(
            "A pattern of entries to ignore: a regex on names, re:REGEX, or glob:SHELL-PATTERN (on paths with a /); repeat for several; replaces the list.",
            valueName: "pattern"))
    var ignore: [String] = []
    @Option(name: .customLong("log-file"), help: "Absolute path of the definition's log.", completion: .file())
    var logFile: String?
    @Option(
        name: .customLong("log-level"),
        help: "What the log file gets: normal (what a run prints; the default) or full (a line for every entry).")
    var logLevel: String?
    @Option(name: .customLong("max-delete"), help: "Most a mirror may delete: a count or a percentage (default 50%).")
    var maxDelete: String?
    @Option(help: "Schedule rule, e.g. \"mon,fri at 18:30\" (repeat; replaces the schedule).") var schedule: [String] =
        []
    @Option(
        name: .customLong("max-age"),
        help: "Overdue when the last successful run is older: 30m, 12h, 7d (\"\" removes it).")
    var maxAge: String?
    @Option(name: .customLong("notify-url"), help: "Ping this URL (healthchecks style) after runs (\"\" removes it).")
    var notifyURL: String?
    @Flag(
        name: .customLong("notify-desktop"), inversion: .prefixedNo,
        help: "Show desktop notifications for the events.")
    var notifyDesktop: Bool?
    @Option(
        name: .customLong("notify-events"),
        help: "What to ping and notify for, comma-separated: start, success, failure, overdue, removable.")
    var notifyEvents: String?
    @Option(
        help:
            "Keep what runs replace or delete in .plugsync-versions on the destination: KEEP_DAYS[,KEEP_MIN[,KEEP_MAX]] (defaults 30,3,20; 0 days: never by age, 0 max: no limit; \"off\" keeps none)."
    ) var versions: String?
    @Flag(
        inversion: .prefixedNo,
        help:
            "Read each file a run copies back from the destination and compare it with what was sent, before it takes the old one's place (default: no)."
    ) var verify: Bool?
    @Flag(inversion: .prefixedNo, help: "Synchronize subfolders too (default: yes).") var recursive: Bool?
    @Flag(
        name: .customLong("on-mount"), inversion: .prefixedNo,
        help: "Run when a matching drive is mounted (default: yes when an endpoint is a drive).")
    var onMount: Bool?
    @Option(help: "Files transferred at once, 1-64 (default 4).") var parallel: Int?
    @Option(help: "Shell command run before each run; its failure refuses the run (\"\" removes it).")
    var before: String?
    @Option(help: "Shell command run after each run (\"\" removes it).") var after: String?
    @Option(
        name: .customLong("on-error"), help: "Shell command run after a run that did not succeed (\"\" removes it).")
    var onError: String?
    @Option(
        name: .customLong("password-file"),
        help: "The server's password is in this file (absolute path; \"\" removes it).")
    var passwordFile: String?
    @Option(
        name: .customLong("password-env"),
        help: "The server's password is in this environment variable (\"\" removes it).")
    var passwordEnv: String?
    @Option(help: "FTP: none, explicit (AUTH TLS) or implicit.") var tls: String?
    @Flag(inversion: .prefixedNo, help: "FTP: passive mode (default: yes).") var passive: Bool?
    @Option(
        name: .customLong("clock-diff"), parsing: .unconditional,
        help: "FTP: the server's clock minus this one's, in seconds, or auto (measured; the default).")
    var clockDiff: String?
    @Option(name: .customLong("ca-file"), help: "FTP: the certificates to trust (absolute path; \"\" removes it).")
    var caFile: String?
    @Option(name: .customLong("key-file"), help: "SFTP: the private key (\"\" removes it: the usual ~/.ssh keys).")
    var keyFile: String?
    @Option(name: .customLong("known-hosts"), help: "SFTP: the known_hosts file (\"\" removes it: ~/.ssh/known_hosts).")
    var knownHosts: String?
    @Flag(
        name: .customLong("unmount-after"), inversion: .prefixedNo,
        help: "Drive: unmount it after the runs its mount started.")
    var unmountAfter: Bool?
    @Flag(
        name: .customLong("power-off-after"), inversion: .prefixedNo,
        help: "Drive: unmount and power it off after the runs its mount started.")
    var powerOffAfter: Bool?
    @Flag var enablement: Enablement?

    /// No field is given.
    var isEmpty: Bool {
        let texts: [String?] = [
            description, group, type, source, destination, sourceCheck, destinationCheck, logFile, logLevel,
            maxDelete, maxAge, notifyURL, notifyEvents, before, after, onError, passwordFile, passwordEnv, tls,
            clockDiff, caFile, keyFile, knownHosts, versions,
        ]
        let flags: [Bool?] = [notifyDesktop, verify, recursive, onMount, passive, unmountAfter, powerOffAfter]
        return texts.allSatisfy { $0 == nil } && flags.allSatisfy { $0 == nil } && ignore.isEmpty
            && schedule.isEmpty && parallel == nil && enablement == nil
    }

    func apply(to definition: inout Definition) throws {
        if let description { definition.description = description.isEmpty ? nil : description }
        if let group { definition.group = group.isEmpty ? nil : group }
        if let type { definition.type = try Self.syncType(type) }
        if let source { definition.source.location = try Self.location(source, flag: "--source") }
        if let destination {
            definition.destination.location = try Self.location(destination, flag: "--destination")
        }
        if let sourceCheck { definition.source.fileCheck = try Self.check(sourceCheck, flag: "--source-check") }
        if let destinationCheck {
            definition.destination.fileCheck = try Self.check(destinationCheck, flag: "--destination-check")
        }
        if !ignore.isEmpty { definition.ignore = try Self.ignorePatterns(ignore) }
        if let logFile {
            if !logFile.isEmpty && !logFile.hasPrefix("/") {
                throw UsageError("--log-file \(logFile): give an absolute path")
            }
            definition.logFile = logFile.isEmpty ? nil : logFile
        }
        if let logLevel {
            guard let level = LogLevel(rawValue: logLevel) else {
                throw UsageError("--log-level \(logLevel): give normal or full")
            }
            definition.logLevel = level
        }
        if let maxDelete { definition.maxDelete = try Self.maxDelete(maxDelete) }
        if !schedule.isEmpty {
            definition.schedule = try schedule.filter { !$0.isEmpty }.map {
                do { return try EndpointSyntax.parseRule($0) } catch { throw UsageError("--schedule: \(error)") }
            }
        }
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
        if let notifyDesktop {
            var notify = definition.notify ?? NotifySettings()
            notify.desktop = notifyDesktop ? true : nil
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
        if let verify { definition.verify = verify }
        if let recursive { definition.recursive = recursive }
        if let onMount { definition.onMount = onMount }
        if let parallel {
            guard (1...64).contains(parallel) else { throw UsageError("--parallel \(parallel): give 1 to 64") }
            definition.parallel = parallel
        }
        if let before { definition.hooks.before = before.isEmpty ? nil : before }
        if let after { definition.hooks.after = after.isEmpty ? nil : after }
        if let onError { definition.hooks.onError = onError.isEmpty ? nil : onError }
        try applyServerFields(to: &definition)
        try applyDriveFields(to: &definition)
        if let enablement { definition.enabled = enablement == .enable }
    }

    /// `--password-file`, `--tls`, … on the endpoint that is a server.
    private func applyServerFields(to definition: inout Definition) throws {
        var changes: [(String, (inout any ServerSpec) throws -> Void)] = []
        func password(_ option: String, _ value: String?, _ make: (String) -> ServerPassword) {
            guard let value else { return }
            let password = value.isEmpty ? nil : make(value)
            changes.append((option, { spec in spec.password = password ?? (spec is FTPSpec ? .netrc : .none) }))
        }
        if let passwordFile, !passwordFile.isEmpty, !passwordFile.hasPrefix("/") {
            throw UsageError("--password-file \(passwordFile): give an absolute path")
        }
        password("--password-file", passwordFile) { .file($0) }
        password("--password-env", passwordEnv) { .environment($0) }
        func ftp(_ option: String, _ change: @escaping (inout FTPSpec) throws -> Void) {
            changes.append(
                (
                    option,
                    { spec in
                        guard var ftp = spec as? FTPSpec else {
                            throw UsageError("\(option): the server endpoint is not an FTP server")
                        }
                        try change(&ftp)
                        spec = ftp
                    }
                ))
        }
        func sftp(_ option: String, _ change: @escaping (inout SFTPSpec) -> Void) {
            changes.append(
                (
                    option,
                    { spec in
                        guard var sftp = spec as? SFTPSpec else {
                            throw UsageError("\(option): the server endpoint is not an SFTP server")
                        }
                        change(&sftp)
                        spec = sftp
                    }
                ))
        }
        if let tls {
            guard let value = FTPSpec.TLS(rawValue: tls) else {
                throw UsageError("--tls \(tls): give none, explicit or implicit")
            }
            ftp("--tls") { $0.tls = value }
        }
        if let passive { ftp(passive ? "--passive" : "--no-passive") { $0.passive = passive } }
        if let clockDiff {
            let value: FTPSpec.ClockDiff
            if clockDiff == "auto" {
                value = .auto
            } else if let seconds = Int(clockDiff), seconds.magnitude <= 366 * 86_400 {
                value = .seconds(seconds)
            } else {
                throw UsageError("--clock-diff \(clockDiff): give auto or a number of seconds (at most a year)")
            }
            ftp("--clock-diff") { $0.clockDiff = value }
        }
        if let caFile {
            if !caFile.isEmpty && !caFile.hasPrefix("/") {
                throw UsageError("--ca-file \(caFile): give an absolute path")
            }
            ftp("--ca-file") { $0.caFile = caFile.isEmpty ? nil : caFile }
        }
        if let keyFile { sftp("--key-file") { $0.keyFile = keyFile.isEmpty ? nil : keyFile } }
        if let knownHosts { sftp("--known-hosts") { $0.knownHosts = knownHosts.isEmpty ? nil : knownHosts } }
        guard let (option, _) = changes.first else { return }
        let servers = [definition.source.location.server, definition.destination.location.server]
        guard servers.contains(where: { $0 != nil }) else {
            throw UsageError("\(option): neither endpoint is a server (ftp://, ftps://, ftpes://, sftp://)")
        }
        if servers.allSatisfy({ $0 != nil }) {
            throw UsageError(
                "\(option): both endpoints are servers; set it in the definitions file under the one it is for")
        }
        let onSource = servers[0] != nil
        var spec = servers[0] ?? servers[1]!
        for (_, change) in changes { try change(&spec) }
        if onSource {
            definition.source.location = .server(spec)
        } else {
            definition.destination.location = .server(spec)
        }
    }

    /// `--unmount-after`, `--power-off-after` on the endpoints that are drives.
    private func applyDriveFields(to definition: inout Definition) throws {
        guard unmountAfter != nil || powerOffAfter != nil else { return }
        var found = false
        for keyPath in [\Definition.source, \Definition.destination] {
            guard case .device(var device) = definition[keyPath: keyPath].location else { continue }
            if let unmountAfter { device.unmountAfter = unmountAfter }
            if let powerOffAfter { device.powerOffAfter = powerOffAfter }
            definition[keyPath: keyPath].location = .device(device)
            found = true
        }
        if !found {
            let option = unmountAfter != nil ? "--unmount-after" : "--power-off-after"
            throw UsageError("\(option): neither endpoint is a drive (device:…)")
        }
    }

    static func syncType(_ text: String) throws -> SyncType {
        guard let value = SyncType(rawValue: text) else { throw UsageError("--type \(text): give mirror or backup") }
        return value
    }

    static func location(_ text: String, flag: String) throws -> Location {
        do { return try EndpointSyntax.parseLocation(text) } catch { throw UsageError("\(flag): \(error)") }
    }

    static func maxDelete(_ text: String) throws -> MaxDelete {
        guard let limit = MaxDelete(parsing: text) else {
            throw UsageError("--max-delete \(text): give a count (100) or a percentage (50%)")
        }
        return limit
    }

    /// The patterns, each checked: a bad one is reported as `--ignore`'s.
    static func ignorePatterns(_ patterns: [String]) throws -> [String] {
        let kept = patterns.filter { !$0.isEmpty }
        for pattern in kept {
            do { _ = try IgnoreList([pattern]) } catch {
                var text = "--ignore \"\(pattern)\": \(error)"
                if let error = error as? IgnoreList.PatternError { text = "--ignore: \(error.description)" }
                throw UsageError(text)
            }
        }
        return kept

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
            "Example: plugsync add docs --source /home/ana/Documents --destination device:label=BLUEDISK,directory=backups/docs --destination-check '.plugsync-id=^ana-blue$' (plugsync init-drive writes such a file on a drive and prints these options)"
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
    @Argument(help: "The definition to change.", completion: .custom(Completion.names)) var name: String
    @Option(help: "A new name.") var rename: String?
    @OptionGroup var fields: DefinitionFlags

    func run() throws {
        try failing {
            if fields.isEmpty && rename == nil {
                throw UsageError(
                    "edit \(name): nothing to change; give the fields to change, e.g. --description TEXT (plugsync edit --help lists them)"
                )
            }
            var file = try options.load()
            var definition = try file.definition(named: name)
            try fields.apply(to: &definition)
            if let rename { definition.name = rename }
            let before = file.text
            try file.replace(name, with: definition)
            if file.text == before {
                print("\(name) is already as given; \(file.path) is unchanged")
                return
            }
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
    @Argument(help: "The definition to copy.", completion: .custom(Completion.names)) var name: String
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
    @Argument(help: "The definition to delete.", completion: .custom(Completion.names)) var name: String

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
