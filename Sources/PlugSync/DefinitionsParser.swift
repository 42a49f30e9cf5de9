import SyncEngine

/// Reads the definitions file's YAML into `Definition`s, checking every field.
struct DefinitionsParser {
    let file: String

    typealias Node = YAML.Node

    func error(_ node: Node?, _ field: String?, _ problem: String) -> ConfigError {
        ConfigError(file: file, line: node?.mark?.line, field: field, problem: problem)
    }

    /// The file's settings, its definitions and, for each, the line (1-based) and column where
    /// its mapping starts.
    func parse(_ text: String) throws -> (settings: FileSettings, definitions: [(Definition, line: Int, column: Int)]) {
        let root: Node?
        do {
            root = try YAML.compose(text)
        } catch let yaml as YAML.Error {
            throw ConfigError(file: file, line: yaml.line, problem: "not valid YAML: \(yaml.problem)")
        } catch {
            throw ConfigError(file: file, problem: "not valid YAML: \(error)")
        }
        guard let root else { return (FileSettings(), []) }
        guard case .mapping(let top) = root.kind else {
            throw self.error(root, nil, "the file must be a mapping with a 'definitions' list")
        }
        let fields = try Fields(top, prefix: "", parser: self)
        var result: [(Definition, Int, Int)] = []
        if let list = try fields.sequence("definitions") {
            var names: [String: Int] = [:]
            for (index, item) in list.enumerated() {
                let definition = try parseDefinition(item, index: index)
                if let first = names[definition.name] {
                    throw self.error(
                        item, "definitions[\(index)].name",
                        "duplicate name \"\(definition.name)\" (also at line \(first))")
                }
                names[definition.name] = item.mark?.line ?? 0
                result.append((definition, item.mark?.line ?? 0, item.mark?.column ?? 1))
            }
        }
        var settings = FileSettings()
        if let node = fields.node("settings") {
            settings = try parseSettings(node)
        }
        try fields.finish(allowed: Self.topKeys)
        return (settings, result)
    }

    func parseSettings(_ node: Node) throws -> FileSettings {
        if node.isNull { return FileSettings() }
        guard case .mapping(let map) = node.kind else {
            throw error(node, "settings", "must be a mapping (metrics_file)")
        }
        let fields = try Fields(map, prefix: "settings.", parser: self)
        var settings = FileSettings()
        if let file = try fields.string("metrics_file") {
            guard file.hasPrefix("/") else {
                throw fields.invalid("metrics_file", "\"\(file)\" must be an absolute path")
            }
            guard !file.hasSuffix("/") else {
                throw fields.invalid("metrics_file", "\"\(file)\" names a folder; give a file (e.g. plugsync.prom)")
            }
            settings.metricsFile = file
        }
        try fields.finish(allowed: Self.settingsKeys)
        return settings
    }

    func parseNotify(_ node: Node, fields outer: Fields) throws -> NotifySettings {
        guard case .mapping(let map) = node.kind else {
            throw outer.invalid("notify", "must be a mapping (desktop, url, events)")
        }
        let fields = try Fields(map, prefix: outer.prefix + "notify.", parser: self)
        var notify = NotifySettings()
        notify.desktop = try fields.bool("desktop")
        if let url = try fields.string("url") {
            let lower = url.lowercased()
            guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
                throw fields.invalid("url", "\"\(url)\" is not an http:// or https:// URL")
            }
            let host = url.drop { $0 != "/" }.dropFirst(2).prefix { $0 != "/" && $0 != "?" && $0 != "#" }
            guard !host.isEmpty, !url.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7F })
            else {
                throw fields.invalid("url", "\"\(url)\" is not a URL with a host (and no spaces)")
            }
            notify.url = url
        }
        if let names = try fields.stringList("events") {
            var chosen = Set<NotifySettings.Event>()
            for name in names {
                guard let event = NotifySettings.Event(rawValue: name) else {
                    let all = NotifySettings.Event.allCases.map(\.rawValue).joined(separator: ", ")
                    throw fields.invalid("events", "\"\(name)\" is not one of \(all)")
                }
                chosen.insert(event)
            }
            notify.events = NotifySettings.Event.allCases.filter(chosen.contains)
        }
        try fields.finish(allowed: Self.notifyKeys)
        return notify
    }

    // The keys each mapping of the file accepts (`Fields.finish` refuses any other). The
    // manual page of the file, docs/plugsync.yaml.5, is tested against `acceptedKeys`, so each
    // list is named here rather than written where it is used.
    static let topKeys = ["settings", "definitions"]
    static let settingsKeys = ["metrics_file"]
    static let definitionKeys = [
        "name", "description", "group", "type", "recursive", "max_delete", "source", "destination",
        "ignore", "log_file", "log_level", "schedule", "on_mount", "enabled", "parallel", "hooks", "max_age",
        "notify", "versions", "verify",
    ]
    /// An endpoint: one kind (`local`, `device`, a server's key) and its File Check.
    static var endpointKeys: [String] { ["local", "device"] + ServerKind.allKeys + ["file_check"] }
    static let deviceKeys = ["label", "uuid", "serial", "directory", "mount", "unmount_after", "power_off_after"]
    static let hookKeys = ["before", "after", "on_error"]
    static let notifyKeys = ["desktop", "url", "events"]
    static let versionKeys = ["keep_days", "keep_min", "keep_max"]
    /// A schedule rule.
    static let ruleKeys = ["days", "month_days", "at", "every", "between"]

    /// Every mapping of the file and the keys it accepts: `settings`, a definition, an
    /// endpoint, a device, each kind of server (by its keys), `hooks`, `notify`, a schedule rule.
    static var acceptedKeys: [(mapping: String, keys: [String])] {
        [
            ("top level", topKeys), ("settings", settingsKeys), ("definition", definitionKeys),
            ("endpoint", endpointKeys), ("device", deviceKeys),
        ] + serverKinds.map { ($0.keys.joined(separator: ", "), $0.fieldKeys) } + [
            ("hooks", hookKeys), ("notify", notifyKeys), ("versions", versionKeys), ("schedule rule", ruleKeys),
        ]
    }

    func parseDefinition(_ node: Node, index: Int) throws -> Definition {
        guard case .mapping(let map) = node.kind else {
            throw error(node, "definitions[\(index)]", "must be a mapping of fields")
        }
        let fields = try Fields(map, prefix: "definitions[\(index)].", parser: self)
        guard let name = try fields.string("name") else {
            throw error(node, "definitions[\(index)].name", "missing (every definition needs a name)")
        }
        if let problem = Definition.nameProblem(name) {
            throw error(fields.node("name"), "definitions[\(index)].name", problem)
        }
        fields.prefix = "definition \"\(name)\": "
        guard let sourceNode = fields.node("source") else { throw fields.missing("source", in: node) }
        guard let destinationNode = fields.node("destination") else { throw fields.missing("destination", in: node) }
        var definition = Definition(
            name: name, source: try parseEndpoint(sourceNode, field: fields.prefix + "source"),
            destination: try parseEndpoint(destinationNode, field: fields.prefix + "destination"))
        definition.description = try fields.string("description")
        definition.group = try fields.string("group")
        if let type = try fields.string("type") {
            guard let value = SyncType(rawValue: type) else {
                throw fields.invalid("type", "\"\(type)\" is not one of mirror, backup")
            }
            definition.type = value
        }
        definition.recursive = try fields.bool("recursive") ?? true
        if let maxDelete = try fields.string("max_delete") {
            definition.maxDelete = try parseMaxDelete(maxDelete, fields: fields)
        }
        if let patterns = try fields.stringList("ignore") {
            do { _ = try IgnoreList(patterns) } catch let bad as IgnoreList.PatternError {
                throw fields.invalid("ignore", "item \(bad.index + 1): \(bad.description)")
            }
            definition.ignore = patterns
        }
        if let logFile = try fields.string("log_file") {
            guard logFile.hasPrefix("/") else {
                throw fields.invalid("log_file", "\"\(logFile)\" must be an absolute path")
            }
            definition.logFile = logFile
        }
        if let level = try fields.string("log_level") {
            guard let value = LogLevel(rawValue: level) else {
                throw fields.invalid("log_level", "\"\(level)\" is not one of normal, full")
            }
            definition.logLevel = value
        }
        if let rules = try fields.sequence("schedule") {
            definition.schedule = try rules.enumerated().map {
                try parseRule($1, field: fields.prefix + "schedule[\($0)]")
            }
        }
        definition.onMount = try fields.bool("on_mount")
        definition.enabled = try fields.bool("enabled") ?? true
        if let parallel = try fields.int("parallel") {
            guard (1...64).contains(parallel) else { throw fields.invalid("parallel", "must be between 1 and 64") }
            definition.parallel = parallel
        }
        if let hooksNode = fields.node("hooks") {
            guard case .mapping(let map) = hooksNode.kind else {
                throw fields.invalid("hooks", "must be a mapping (before, after, on_error)")
            }
            let hooks = try Fields(map, prefix: fields.prefix + "hooks.", parser: self)
            definition.hooks.before = try hooks.string("before")
            definition.hooks.after = try hooks.string("after")
            definition.hooks.onError = try hooks.string("on_error")
            try hooks.finish(allowed: Self.hookKeys)
        }
        if let age = try fields.string("max_age") {
            guard let seconds = AgeText.seconds(age) else {
                throw fields.invalid("max_age", "\"\(age)\" is not a duration like 30m, 12h or 7d")
            }
            definition.maxAge = seconds
        }
        if let notifyNode = fields.node("notify"), !notifyNode.isNull {
            definition.notify = try parseNotify(notifyNode, fields: fields)
        }
        definition.verify = try fields.bool("verify") ?? false
        if let versionsNode = fields.node("versions") {
            definition.versions = try parseVersions(versionsNode, fields: fields)
        }
        try fields.finish(allowed: Self.definitionKeys)
        return definition
    }

    /// `versions: {keep_days, keep_min, keep_max}`; each key is optional (`versions: {}` keeps
    /// the defaults).
    func parseVersions(_ node: Node, fields outer: Fields) throws -> VersionPolicy {
        if node.isNull { return VersionPolicy() }
        guard case .mapping(let map) = node.kind else {
            throw outer.invalid("versions", "must be a mapping (keep_days, keep_min, keep_max)")
        }
        let fields = try Fields(map, prefix: outer.prefix + "versions.", parser: self)
        var policy = VersionPolicy()
        func count(_ key: String) throws -> Int? {
            guard let value = try fields.int(key) else { return nil }
            guard value >= 0, value <= 100_000 else { throw fields.invalid(key, "must be between 0 and 100000") }
            return value
        }
        if let days = try count("keep_days") { policy.keepDays = days }
        if let minimum = try count("keep_min") { policy.keepMin = minimum }
        if let maximum = try count("keep_max") { policy.keepMax = maximum }
        if policy.keepMax > 0 && policy.keepMin > policy.keepMax {
            throw fields.invalid(
                "keep_min", "\(policy.keepMin) is more than keep_max (\(policy.keepMax)): keep_min must not exceed it")
        }
        try fields.finish(allowed: Self.versionKeys)
        return policy
    }

    func parseMaxDelete(_ text: String, fields: Fields) throws -> MaxDelete {
        if let limit = MaxDelete(parsing: text) { return limit }
        throw fields.invalid("max_delete", "\"\(text)\" is neither a count (e.g. 100) nor a percentage (e.g. 50%)")
    }

    func parseEndpoint(_ node: Node, field: String) throws -> EndpointSpec {
        let keys = ["local", "device"] + ServerKind.allKeys
        let names = keys.joined(separator: ", ")
        guard case .mapping(let map) = node.kind else {
            throw error(node, field, "must be a mapping with one of \(names)")
        }
        let fields = try Fields(map, prefix: field + ".", parser: self)
        var fileCheck: FileCheck?
        if let check = try fields.string("file_check") {
            do { fileCheck = try FileCheck(parsing: check) } catch {
                throw fields.invalid("file_check", "\"\(check)\" \(error)")
            }
        }
        let kinds = keys.filter { fields.node($0) != nil }
        guard kinds.count == 1 else {
            throw error(
                node, field,
                kinds.isEmpty
                    ? "missing endpoint: give one of \(names)"
                    : "has both \(kinds[0]) and \(kinds[1]); give exactly one")
        }
        let location: Location
        switch kinds[0] {
        case "local":
            // `local:` with no value (or `~`) reads as absent: say so rather than trap.
            guard let path = try fields.string("local") else {
                throw fields.invalid("local", "needs an absolute path")
            }
            guard path.hasPrefix("/") else { throw fields.invalid("local", "\"\(path)\" must be an absolute path") }
            location = .local(path: path)
        case "device":
            location = .device(try parseDevice(fields.node("device")!, field: field + ".device", fileCheck: fileCheck))
        case let key:
            let kind = ServerKind.named(key)!
            location = .server(try kind.parse(key, fields.node(key)!, field + "." + key, self))
        }
        try fields.finish(allowed: Self.endpointKeys)
        return EndpointSpec(location, fileCheck: fileCheck)
    }

    func parseDevice(_ node: Node, field: String, fileCheck: FileCheck?) throws -> DeviceSpec {
        guard case .mapping(let map) = node.kind else {
            throw error(node, field, "must be a mapping (label, uuid, serial, directory)")
        }
        let fields = try Fields(map, prefix: field + ".", parser: self)
        var device = DeviceSpec()
        device.label = try fields.string("label")
        device.uuid = try fields.string("uuid")
        device.serial = try fields.string("serial")
        if let directory = try fields.string("directory") {
            device.directory = try relativeDirectory(directory, fields: fields, key: "directory")
        }
        if let mount = try fields.string("mount") {
            guard mount == "auto" || mount == "manual" else {
                throw fields.invalid("mount", "\"\(mount)\" is not one of auto, manual")
            }
            device.mountAuto = mount == "auto"
        }
        device.unmountAfter = try fields.bool("unmount_after") ?? false
        device.powerOffAfter = try fields.bool("power_off_after") ?? false
        if device.label == nil && device.uuid == nil && device.serial == nil && fileCheck == nil {
            throw error(
                node, field, "needs a label, uuid or serial, or a file_check on the endpoint, to recognize the drive")
        }
        try fields.finish(allowed: Self.deviceKeys)
        return device
    }

    func relativeDirectory(_ directory: String, fields: Fields, key: String) throws -> String {
        let parts = directory.split(separator: "/", omittingEmptySubsequences: true)
        if parts.contains("..") { throw fields.invalid(key, "\"\(directory)\" may not contain '..'") }
        return parts.filter { $0 != "." }.joined(separator: "/")
    }

    /// `server: host[:port]` of a server endpoint.
    func parseServer(_ node: Node, _ fields: Fields) throws -> (host: String, port: Int?) {
        guard let server = try fields.string("server") else { throw fields.missing("server", in: node) }
        var hostPart = Substring(server)
        var port: Int?
        if let colon = server.lastIndex(of: ":"), !server.hasSuffix("]") {
            guard let value = Int(server[server.index(after: colon)...]), (1...65535).contains(value) else {
                throw fields.invalid("server", "\"\(server)\" has a bad port")
            }
            port = value
            hostPart = server[..<colon]
        }
        guard !hostPart.isEmpty, !hostPart.contains("/") else {
            throw fields.invalid("server", "\"\(server)\" is not host[:port]")
        }
        return (String(hostPart), port)
    }

    /// One of `password`, `password_file`, `password_env` of a server endpoint, if given.
    func parsePassword(_ fields: Fields) throws -> ServerPassword? {
        let sources = ["password", "password_file", "password_env"].filter { fields.node($0) != nil }
        if sources.count > 1 {
            throw fields.invalid(sources[1], "give only one of password, password_file, password_env")
        }
        if let password = try fields.string("password") { return .literal(password) }
        if let file = try fields.string("password_file") {
            guard file.hasPrefix("/") else {
                throw fields.invalid("password_file", "\"\(file)\" must be an absolute path")
            }
            return .file(file)
        }
        if let variable = try fields.string("password_env") { return .environment(variable) }
        return nil
    }

    func parseRule(_ node: Node, field: String) throws -> ScheduleRule {
        guard case .mapping(let map) = node.kind else {
            throw error(node, field, "must be a mapping (days, at or every, between)")
        }
        let fields = try Fields(map, prefix: field + ".", parser: self)
        var days: ScheduleRule.Days = .weekdays(Set(1...7))
        if fields.node("days") != nil && fields.node("month_days") != nil {
            throw fields.invalid("month_days", "give days or month_days, not both")
        }
        if let names = try fields.stringList("days") {
            var set = Set<Int>()
            for name in names {
                guard let named = ScheduleRule.weekdays(named: name) else {
                    throw fields.invalid(
                        "days", "\"\(name)\" is not a day (mon, tue, wed, thu, fri, sat, sun, weekdays, weekend, daily)"
                    )
                }
                set.formUnion(named)
            }
            days = .weekdays(set)
        }
        if let numbers = try fields.stringList("month_days") {
            var set = Set<Int>()
            for number in numbers {
                guard let day = Int(number), (1...31).contains(day) else {
                    throw fields.invalid("month_days", "\"\(number)\" is not a day of the month (1-31)")
                }
                set.insert(day)
            }
            days = .monthDays(set)
        }
        let at = try fields.string("at")
        let every = try fields.string("every")
        let when: ScheduleRule.When
        switch (at, every) {
        case (let at?, nil):
            guard let minute = Self.clockMinutes(at) else {
                throw fields.invalid("at", "\"\(at)\" is not a time HH:MM")
            }
            when = .at(minute)
        case (nil, let every?):
            guard let minutes = Self.intervalMinutes(every) else {
                throw fields.invalid("every", "\"\(every)\" is not an interval like 30m or 2h (1m to 24h)")
            }
            when = .every(minutes)
        case (nil, nil): throw error(node, field, "needs 'at' (HH:MM) or 'every' (e.g. 30m)")
        default: throw fields.invalid("every", "give 'at' or 'every', not both")
        }
        var between: ClosedRange<Int>?
        if let window = try fields.string("between") {
            let parts = window.split(separator: "-").map { ASCII.trimmingBlanks($0) }
            guard parts.count == 2, let start = Self.clockMinutes(parts[0]), let end = Self.clockMinutes(parts[1]),
                let range = ScheduleRule.window(start: start, end: end)
            else {
                throw fields.invalid(
                    "between",
                    "\"\(window)\" is not a window HH:MM-HH:MM (20:00-08:00 goes over midnight; start and end differ)")
            }
            guard case .every = when else { throw fields.invalid("between", "applies only to 'every'") }
            between = range
        }
        try fields.finish(allowed: Self.ruleKeys)
        return ScheduleRule(days: days, when: when, between: between)
    }

    static func clockMinutes(_ text: String) -> Int? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[1].count == 2, let hour = Int(parts[0]), let minute = Int(parts[1]),
            (0...23).contains(hour), (0...59).contains(minute)
        else { return nil }
        return hour * 60 + minute
    }

    static func intervalMinutes(_ text: String) -> Int? {
        // At most a day (an interval longer than the day fires once a day anyway), which also
        // keeps a huge number from overflowing.
        guard let unit = text.last, let value = Int(text.dropLast()), value > 0 else { return nil }
        switch unit {
        case "m" where value <= 1440: return value
        case "h" where value <= 24: return value * 60
        default: return nil
        }
    }
}

extension YAML.Node {
    /// `key:` with no value, `~` or `null`.
    var isNull: Bool {
        guard case .scalar(let scalar) = kind, scalar.style == .plain else { return false }
        return ["", "~", "null"].contains(scalar.string)
    }
}

/// The keys of one YAML mapping, read with type checks; `finish` rejects keys nobody read.
final class Fields {
    let pairs: [(key: String, keyNode: YAML.Node, value: YAML.Node)]
    var prefix: String
    let parser: DefinitionsParser

    init(_ map: [(key: YAML.Node, value: YAML.Node)], prefix: String, parser: DefinitionsParser) throws {
        self.prefix = prefix
        self.parser = parser
        var pairs: [(String, YAML.Node, YAML.Node)] = []
        for (key, value) in map {
            guard case .scalar(let scalar) = key.kind else {
                throw parser.error(key, prefix.isEmpty ? nil : String(prefix.dropLast()), "keys must be plain words")
            }
            if pairs.contains(where: { $0.0 == scalar.string }) {
                throw parser.error(key, prefix + scalar.string, "given twice")
            }
            pairs.append((scalar.string, key, value))
        }
        self.pairs = pairs
    }

    func node(_ key: String) -> YAML.Node? { pairs.first { $0.key == key }?.value }

    func invalid(_ key: String, _ problem: String) -> ConfigError {
        parser.error(node(key), prefix + key, problem)
    }

    func missing(_ key: String, in node: YAML.Node) -> ConfigError {
        parser.error(node, prefix + key, "missing")
    }

    func string(_ key: String) throws -> String? {
        guard let value = node(key) else { return nil }
        guard case .scalar(let scalar) = value.kind else {
            throw invalid(key, "must be a single value, not a list or mapping")
        }
        if scalar.style == .plain && (scalar.string == "~" || scalar.string == "null" || scalar.string.isEmpty) {
            return nil
        }
        return scalar.string
    }

    func bool(_ key: String) throws -> Bool? {
        guard let text = try string(key) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw invalid(key, "\"\(text)\" is not true or false")
        }
    }

    func int(_ key: String) throws -> Int? {
        guard let text = try string(key) else { return nil }
        guard let value = Int(text) else { throw invalid(key, "\"\(text)\" is not a whole number") }
        return value
    }

    func sequence(_ key: String) throws -> [YAML.Node]? {
        guard let value = node(key) else { return nil }
        switch value.kind {
        case .sequence(let sequence): return sequence
        case .scalar(let scalar)
        where scalar.style == .plain && (scalar.string.isEmpty || scalar.string == "~" || scalar.string == "null"):
            return []
        default: throw invalid(key, "must be a list")
        }
    }

    func stringList(_ key: String) throws -> [String]? {
        guard let value = node(key) else { return nil }
        if case .scalar = value.kind, let single = try string(key) { return [single] }
        guard let items = try sequence(key) else { return nil }
        return try items.map { item in
            guard case .scalar(let scalar) = item.kind else {
                throw parser.error(item, prefix + key, "items must be single values")
            }
            return scalar.string
        }
    }

    func finish(allowed: [String]) throws {
        for pair in pairs where !allowed.contains(pair.key) {
            var problem = "unknown key \"\(pair.key)\""
            if let close = allowed.first(where: { Self.similar($0, pair.key) }) {
                problem += " (did you mean \"\(close)\"?)"
            }
            throw parser.error(pair.keyNode, prefix + pair.key, problem)
        }
    }

    /// A typo's likely intent: same letters but one, or `-` for `_`.
    static func similar(_ a: String, _ b: String) -> Bool {
        let a = a.lowercased().map { $0 == "-" ? "_" : $0 }
        let b = b.lowercased().map { $0 == "-" ? "_" : $0 }
        if a == b { return true }
        if abs(a.count - b.count) > 1 { return false }
        var i = 0
        var j = 0
        var edits = 0
        while i < a.count && j < b.count {
            if a[i] == b[j] {
                i += 1
                j += 1
                continue
            }
            edits += 1
            if edits > 1 { return false }
            if a.count > b.count {
                i += 1
            } else if b.count > a.count {
                j += 1
            } else {
                i += 1
                j += 1
            }
        }
        return edits + (a.count - i) + (b.count - j) <= 1
    }
}
