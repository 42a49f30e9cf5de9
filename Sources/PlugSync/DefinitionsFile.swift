import SyncEngine
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The definitions file: its definitions, and its text, so that editing one definition keeps
/// every other line (comments included) as it was.
public struct DefinitionsFile: Sendable {
    public let path: String
    public private(set) var text: String
    public private(set) var definitions: [Definition]
    /// The top-level `settings:` (the metrics file).
    public private(set) var settings = FileSettings()
    /// Things the user should hear about that do not stop a run (a readable password).
    public private(set) var warnings: [String] = []
    /// Line ranges (0-based, half-open) of each definition's item in `text`, and its dash column.
    private var spans: [(lines: Range<Int>, column: Int)] = []

    /// The file commands use when `--config` is absent: root uses the system file; others their
    /// own `$XDG_CONFIG_HOME/plugsync/plugsync.yaml`, or the system file when they have none.
    public static func defaultPath(environment: [String: String] = Posix.environment()) -> String {
        let system = "/etc/plugsync/plugsync.yaml"
        if let explicit = environment["PLUGSYNC_CONFIG"], !explicit.isEmpty { return explicit }
        if getuid() == 0 { return system }
        let base =
            environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ((environment["HOME"] ?? "/") + "/.config")
        let user = base + "/plugsync/plugsync.yaml"
        if access(user, F_OK) == 0 || access(system, F_OK) != 0 { return user }
        return system
    }

    /// Reads and checks the file. With `allowMissing`, an absent file is an empty one. Running
    /// as root, a file, password file or hook program that another user could change is refused
    /// (`FileTrust`).
    public static func load(path: String, allowMissing: Bool = false) throws -> DefinitionsFile {
        // Opened once and checked through its descriptor: what is checked is what is read. A
        // FIFO put in its place cannot block (O_NONBLOCK, then the type).
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else {
            if allowMissing && errno == ENOENT {
                return try DefinitionsFile(path: path, text: "definitions:\n")
            }
            let reason =
                errno == ENOENT
                ? "no such file (create it with 'plugsync add' or pass --config)" : "cannot be read"
            throw ConfigError(file: path, problem: reason)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            throw ConfigError(file: path, problem: "is not a regular file")
        }
        if FileTrust.applies, let problem = FileTrust.problem(path: path, status: st) {
            throw ConfigError(
                file: path, problem: problem.message("plugsync runs as root and takes hooks and passwords from it"))
        }
        guard let data = Self.readAll(fd) else { throw ConfigError(file: path, problem: "cannot be read") }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw ConfigError(file: path, problem: "is not UTF-8 text")
        }
        var file = try DefinitionsFile(path: path, text: text)
        try file.checkPermissions(mode: st.st_mode)
        return file
    }

    private static func readAll(_ fd: Int32) -> [UInt8]? {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
        }
    }

    public init(path: String, text: String) throws {
        self.path = path
        self.text = text
        self.definitions = []
        try reparse()
    }

    private mutating func reparse() throws {
        let (settings, parsed) = try DefinitionsParser(file: path).parse(text)
        self.settings = settings
        definitions = parsed.map(\.0)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        spans = parsed.map { item in
            let start = item.line - 1
            let dash = max(0, item.column - 3)
            var end = start + 1
            var lastContent = start + 1
            while end < lines.count {
                let line = lines[end]
                let trimmed = line.drop { $0 == " " }
                if !trimmed.isEmpty && !trimmed.hasPrefix("#") {
                    if line.count - trimmed.count <= dash { break }
                    lastContent = end + 1
                }
                end += 1
            }
            return (start..<lastContent, dash)
        }
    }

    /// Warns when a password source other users can read (or write) is named: the file itself
    /// holding a literal `password:`, or a `password_file`; each once. Running as root, refuses a
    /// `password_file` or a hook's program another user could change (`FileTrust`).
    private mutating func checkPermissions(mode: mode_t) throws {
        var holdsPassword = false
        var passwordFiles: [String] = []
        for definition in definitions {
            for endpoint in [definition.source, definition.destination] {
                guard let password = endpoint.location.server?.password else { continue }
                switch password {
                case .literal: holdsPassword = true
                case .file(let file) where !passwordFiles.contains(file): passwordFiles.append(file)
                default: break
                }
            }
        }
        if holdsPassword && mode & 0o066 != 0 {
            warnings.append(Self.readableWarning(path))
        }
        for file in passwordFiles {
            if FileTrust.applies, let problem = FileTrust.problem(path: file) {
                throw ConfigError(
                    file: file, problem: problem.message("a password_file of \(path), which plugsync reads as root"))
            }
            var st = stat()
            if stat(file, &st) == 0 && st.st_mode & 0o066 != 0 { warnings.append(Self.readableWarning(file)) }
        }
        guard FileTrust.applies else { return }
        for definition in definitions {
            let stages = [
                ("before", definition.hooks.before), ("after", definition.hooks.after),
                ("on_error", definition.hooks.onError),
            ]
            for case (let stage, let command?) in stages {
                for program in FileTrust.programs(in: command) {
                    if let problem = FileTrust.problem(path: program) {
                        throw ConfigError(
                            file: program,
                            problem: problem.message(
                                "the \(stage) hook of \(definition.name) in \(path) runs it as root"))
                    }
                }
            }
        }
    }

    static func readableWarning(_ file: String) -> String {
        "warning: \(file) holds a password and other users can read it; run: chmod 600 \(file)"
    }

    public func definition(named name: String) throws -> Definition {
        guard let found = definitions.first(where: { $0.name == name }) else {
            let known = definitions.map(\.name).joined(separator: ", ")
            throw UsageError("no definition named \"\(name)\" in \(path)" + (known.isEmpty ? "" : " (known: \(known))"))
        }
        return found
    }

    /// Definitions chosen by name, group or all; throws for an unknown name or empty group.
    public func select(names: [String], group: String?, all: Bool) throws -> [Definition] {
        if all { return definitions }
        if let group {
            let members = definitions.filter { $0.group == group }
            if members.isEmpty { throw UsageError("no definition in group \"\(group)\" in \(path)") }
            return members
        }
        return try names.map { try definition(named: $0) }
    }

    // MARK: editing

    /// Checks a definition made on the command line as the file's own are checked, on its own:
    /// a bad value is reported naming the option it came from (`--ignore: …`), not a line of a
    /// file that does not hold it yet.
    public static func validate(_ definition: Definition) throws {
        if let problem = Definition.nameProblem(definition.name) {
            throw UsageError("the name \(problem)")
        }
        let text = "definitions:\n" + DefinitionEmitter.lines(for: definition, indent: 2).joined(separator: "\n") + "\n"
        do {
            _ = try DefinitionsParser(file: "").parse(text)
        } catch let error as ConfigError {
            var field = error.field ?? ""
            if let colon = field.firstRange(of: "\": ") { field = String(field[colon.upperBound...]) }
            let option = Self.option(forField: field)
            throw UsageError(ConfigError.printable((option ?? field) + ": " + error.problem))
        }
    }

    /// The command-line option that sets a field of the definitions file (`ignore` → `--ignore`).
    static func option(forField field: String) -> String? {
        let path = field.split(separator: ".").map { $0.split(separator: "[").first.map(String.init) ?? "" }
        guard let first = path.first else { return nil }
        let last = path.last!
        switch first {
        case "source", "destination":
            if last == "file_check" { return "--\(first)-check" }
            let own = [
                "password_file", "password_env", "tls", "passive", "clock_diff", "ca_file", "key_file", "known_hosts",
                "unmount_after", "power_off_after",
            ]
            return own.contains(last) ? "--" + last.replacing("_", with: "-") : "--\(first)"
        case "hooks", "notify": return "--" + (first == "notify" ? "notify-" : "") + last.replacing("_", with: "-")
        case "name", "definitions": return "the name"
        default: return "--" + first.replacing("_", with: "-")
        }
    }

    /// Adds a definition at the end of the list.
    public mutating func add(_ definition: Definition) throws {
        try Self.validate(definition)
        try Self.checkCanRun(definition)
        if definitions.contains(where: { $0.name == definition.name }) {
            throw UsageError("a definition named \"\(definition.name)\" exists already in \(path)")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        let column = spans.last?.column ?? 2
        let block = DefinitionEmitter.lines(for: definition, indent: column)
        if let last = spans.last {
            lines.insert(contentsOf: block, at: last.lines.upperBound)
        } else if let index = lines.firstIndex(where: { $0.hasPrefix("definitions:") }) {
            lines[index] = "definitions:"
            lines.insert(contentsOf: block, at: index + 1)
        } else {
            lines.append("definitions:")
            lines.append(contentsOf: block)
        }
        try replaceText(lines)
    }

    /// Replaces the definition called `name` (which may be renamed) with `definition`.
    public mutating func replace(_ name: String, with definition: Definition) throws {
        try Self.validate(definition)
        try Self.checkCanRun(definition)
        guard let index = definitions.firstIndex(where: { $0.name == name }) else {
            _ = try self.definition(named: name)
            return
        }
        if definition.name != name && definitions.contains(where: { $0.name == definition.name }) {
            throw UsageError("a definition named \"\(definition.name)\" exists already in \(path)")
        }
        if definition == definitions[index] { return }  // nothing changes: the text stays as it is
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let span = spans[index]
        let emitted = DefinitionEmitter.lines(for: definition, indent: span.column)
        let merged = DefinitionMerge.merge(old: Array(lines[span.lines]), new: emitted)
        // The old lines where they say the same, their comments kept; the plain emitted ones
        // unless the merge reads back as exactly the definition asked for.
        var attempt = lines
        attempt.replaceSubrange(span.lines, with: merged)
        if merged != emitted, (try? replaceText(attempt)) != nil, definitions[index] == definition { return }
        lines.replaceSubrange(span.lines, with: emitted)
        try replaceText(lines)
    }

    /// Refuses what every run would refuse: two local folders, one inside the other (a drive's
    /// folder is known only when it is plugged in; the run checks it then).
    static func checkCanRun(_ definition: Definition) throws {
        guard case .local(let source) = definition.source.location,
            case .local(let destination) = definition.destination.location,
            let (sourceReal, destinationReal) = EndpointResolver.overlap(source, destination)
        else { return }
        throw UsageError(
            "\(definition.name): the source \(sourceReal) and the destination \(destinationReal) overlap (one is inside the other), so every run would refuse; give two separate folders"
        )
    }

    /// Removes the definition called `name`.
    public mutating func remove(_ name: String) throws {
        guard let index = definitions.firstIndex(where: { $0.name == name }) else {
            _ = try definition(named: name)
            return
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines.removeSubrange(spans[index].lines)
        try replaceText(lines)
    }

    private mutating func replaceText(_ lines: [String]) throws {
        var newText = lines.joined(separator: "\n")
        if !newText.hasSuffix("\n") { newText += "\n" }
        let previous = text
        text = newText
        do {
            try reparse()  // never write a file that would not load again
        } catch {
            text = previous
            try reparse()
            throw error
        }
    }

    /// Writes the text atomically: a temporary file in the same folder, flushed, then renamed;
    /// an existing file's permissions are kept (new files are private: they may hold passwords).
    /// A symbolic link is followed: the file it points to is written, the link stays a link.
    public func save() throws {
        let target = Self.followingLinks(path)
        let directory = Posix.parentPath(target)
        if !directory.isEmpty { try? Posix.makeDirectories(directory) }
        var st = stat()
        let mode: mode_t = stat(target, &st) == 0 ? st.st_mode & 0o7777 : 0o600
        if let failure = Posix.writeFileAtomically(target, Array(text.utf8), mode: mode) {
            throw ConfigError(file: path, problem: "cannot write: \(String(cString: strerror(failure)))")
        }
    }

    /// `path` with its last component's symbolic links followed (a link to a link too, a link
    /// to a file not there yet too); `path` itself when it is no link.
    static func followingLinks(_ path: String) -> String {
        var current = path
        for _ in 0..<40 {
            var st = stat()
            guard lstat(current, &st) == 0, st.st_mode & S_IFMT == S_IFLNK else { return current }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let count = readlink(current, &buffer, buffer.count - 1)
            guard count > 0 else { return current }
            let target = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if target.hasPrefix("/") {
                current = target
            } else {
                let parent = Posix.parentPath(current)
                current = (parent.isEmpty ? "." : parent == "/" ? "" : parent) + "/" + target
            }
        }
        return current
    }
}

/// Writes a definition as YAML, in the shape the README's configuration reference shows.
public enum DefinitionEmitter {
    public static func lines(for d: Definition, indent: Int) -> [String] {
        let pad = String(repeating: " ", count: indent)
        var out: [String] = []
        func add(_ level: Int, _ key: String, _ value: String?) {
            guard let value else { return }
            out.append(pad + String(repeating: "  ", count: level + 1) + "\(key): \(value)")
        }
        out.append(pad + "- name: " + scalar(d.name))
        add(0, "description", d.description.map(scalar))
        add(0, "group", d.group.map(scalar))
        add(0, "type", d.type.rawValue)
        if !d.recursive { add(0, "recursive", "false") }
        if d.maxDelete != .percent(50) { add(0, "max_delete", scalar(d.maxDelete.description)) }
        for (key, endpoint) in [("source", d.source), ("destination", d.destination)] {
            add(0, key, "")
            out[out.count - 1].removeLast()
            switch endpoint.location {
            case .local(let path): add(1, "local", scalar(path))
            case .device(let device):
                add(1, "device", "")
                out[out.count - 1].removeLast()
                add(2, "label", device.label.map(scalar))
                add(2, "uuid", device.uuid.map(scalar))
                add(2, "serial", device.serial.map(scalar))
                if !device.directory.isEmpty { add(2, "directory", scalar(device.directory)) }
                if device.mountAuto { add(2, "mount", "auto") }
                if device.unmountAfter { add(2, "unmount_after", "true") }
                if device.powerOffAfter { add(2, "power_off_after", "true") }
                if out.last?.hasSuffix("device:") == true { out[out.count - 1] += " {}" }  // recognized by its File Check alone
            case .server(let server):
                add(1, server.key, "")
                out[out.count - 1].removeLast()
                for (key, value) in server.fields(scalar) { add(2, key, value) }
            }
            add(1, "file_check", endpoint.fileCheck.map { scalar($0.description) })
        }
        if !d.ignore.isEmpty { add(0, "ignore", "[" + d.ignore.map(scalar).joined(separator: ", ") + "]") }
        add(0, "log_file", d.logFile.map(scalar))
        if d.logLevel != .normal { add(0, "log_level", d.logLevel.rawValue) }
        if !d.schedule.isEmpty {
            add(0, "schedule", "")
            out[out.count - 1].removeLast()
            for rule in d.schedule {
                var first = true
                func ruleLine(_ key: String, _ value: String) {
                    out.append(pad + "    " + (first ? "- " : "  ") + "\(key): \(value)")
                    first = false
                }
                switch rule.days {
                case .weekdays(let set) where set != Set(1...7):
                    ruleLine(
                        "days",
                        "[" + set.sorted().map { ScheduleRule.weekdayNames[$0 - 1] }.joined(separator: ", ") + "]")
                case .monthDays(let set):
                    ruleLine("month_days", "[" + set.sorted().map(String.init).joined(separator: ", ") + "]")
                default: break
                }
                switch rule.when {
                case .at(let minute): ruleLine("at", "\"\(clock(minute))\"")
                case .every(let minutes):
                    ruleLine("every", minutes % 60 == 0 ? "\(minutes / 60)h" : "\(minutes)m")
                }
                if let window = rule.between {
                    ruleLine("between", "\"\(clock(window.lowerBound))-\(clock(window.upperBound % (24 * 60)))\"")
                }
            }
        }
        if let onMount = d.onMount { add(0, "on_mount", onMount ? "true" : "false") }
        if !d.enabled { add(0, "enabled", "false") }
        if let parallel = d.parallel { add(0, "parallel", "\(parallel)") }
        if !d.hooks.isEmpty {
            add(0, "hooks", "")
            out[out.count - 1].removeLast()
            add(1, "before", d.hooks.before.map(scalar))
            add(1, "after", d.hooks.after.map(scalar))
            add(1, "on_error", d.hooks.onError.map(scalar))
        }
        add(0, "max_age", d.maxAge.map(AgeText.text))
        if let notify = d.notify, notify == NotifySettings() {
            add(0, "notify", "{}")
        } else if let notify = d.notify {
            add(0, "notify", "")
            out[out.count - 1].removeLast()
            add(1, "desktop", notify.desktop.map { $0 ? "true" : "false" })
            add(1, "url", notify.url.map(scalar))
            if notify.events != NotifySettings.defaultEvents {
                add(1, "events", "[" + notify.events.map(\.rawValue).joined(separator: ", ") + "]")
            }
        }
        if d.verify { add(0, "verify", "true") }
        if let versions = d.versions {
            add(0, "versions", "")
            out[out.count - 1].removeLast()
            add(1, "keep_days", "\(versions.keepDays)")
            add(1, "keep_min", "\(versions.keepMin)")
            add(1, "keep_max", "\(versions.keepMax)")
        }
        return out
    }

    static func clock(_ minute: Int) -> String {
        formatPadded(minute / 60, width: 2) + ":" + formatPadded(minute % 60, width: 2)
    }

    /// A YAML scalar that reads back as exactly `text`: plain when safe, else single-quoted
    /// (double-quoted when it holds control or bidi characters, `TerminalText.isUnsafe`: the
    /// file, and `show`, never hold them raw).
    /// The `password`, `password_file` or `password_env` field of a server endpoint.
    static func passwordFields(_ password: ServerPassword, _ scalar: (String) -> String) -> [(String, String?)] {
        switch password {
        case .literal(let secret): return [("password", scalar(secret))]
        case .file(let file): return [("password_file", scalar(file))]
        case .environment(let name): return [("password_env", scalar(name))]
        case .none, .netrc: return []
        }
    }

    public static func scalar(_ text: String) -> String {
        let plainSafe =
            !text.isEmpty
            && text.utf8.allSatisfy { ASCII.isPlainScalarByte($0) }
            && !["true", "false", "yes", "no", "on", "off", "null", "~"].contains(text.lowercased())
            && Double(text) == nil && !text.hasPrefix("-") && !text.hasSuffix(":")
        if plainSafe { return text }
        if text.unicodeScalars.contains(where: TerminalText.isUnsafe) {
            var out = "\""
            for s in text.unicodeScalars {
                switch s {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\t": out += "\\t"
                default:
                    if TerminalText.isUnsafe(s) {
                        let digits = s.value < 0x100 ? 2 : 4  // YAML's \xNN and \uNNNN name code points
                        let hex = String(s.value, radix: 16)
                        out += (digits == 2 ? "\\x" : "\\u") + String(repeating: "0", count: digits - hex.count) + hex
                    } else {
                        out.unicodeScalars.append(s)
                    }
                }
            }
            return out + "\""
        }
        return "'" + text.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "''") + "'"
    }
}
