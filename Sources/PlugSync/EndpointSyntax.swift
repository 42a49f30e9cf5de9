/// The command line's short forms of endpoints and schedule rules, for `add`, `edit`, `copy`.
///
/// Endpoints: `/abs/path` (local); `device:label=X,uuid=Y,serial=Z,directory=a/b,mount=auto`;
/// `ftp://user@host:port/dir`, `ftps://…` (implicit TLS) or `ftpes://…` (explicit TLS) (the password from ~/.netrc, or set
/// `password_file` in the file); `sftp://user@host:port/dir` (a directory relative to the login
/// folder; the user's SSH key, or set `key_file` or a password in the file). Schedule rules:
/// `mon,tue,fri at 18:30`, `sat every 2h between 08:00-20:00`, `daily every 30m`, `1,15 at 03:00`
/// (days of the month).
public enum EndpointSyntax {
    /// - Parameter directory: when given, a path that is not absolute is a local folder relative
    ///   to it (the current folder of `plugsync sync`); without it such a path is refused.
    public static func parseLocation(_ text: String, relativeTo directory: String? = nil) throws -> Location {
        if text.hasPrefix("/") { return .local(path: text) }
        if text.hasPrefix("device:") {
            var device = DeviceSpec()
            for pair in text.dropFirst("device:".count).split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw UsageError("\"\(pair)\" in \"\(text)\" is not key=value") }
                switch parts[0] {
                case "label": device.label = parts[1]
                case "uuid": device.uuid = parts[1]
                case "serial": device.serial = parts[1]
                case "directory", "dir": device.directory = parts[1].split(separator: "/").joined(separator: "/")
                case "mount":
                    guard parts[1] == "auto" || parts[1] == "manual" else {
                        throw UsageError("mount=\(parts[1]) is not auto or manual")
                    }
                    device.mountAuto = parts[1] == "auto"
                default:
                    throw UsageError(
                        "unknown device field \"\(parts[0])\" in \"\(text)\" (label, uuid, serial, directory, mount)")
                }
            }
            return .device(device)
        }
        for kind in serverKinds {
            for scheme in kind.schemes where text.hasPrefix(scheme) { return .server(try kind.parseURL(text, scheme)) }
        }
        if let directory, !text.isEmpty { return .local(path: absolutePath(text, in: directory)) }
        let servers = serverKinds.flatMap(\.schemes).map { $0 + "user@host/dir" }.joined(separator: ", ")
        throw UsageError(
            "\"\(text)\" is not an endpoint: give /absolute/path, device:label=…,directory=…, or \(servers)")
    }

    /// `relative` under `directory`, with `.` and `..` taken out as the shell's `cd` would
    /// (`../b` from `/home/ana/a` is `/home/ana/b`).
    static func absolutePath(_ relative: String, in directory: String) -> String {
        var parts = directory.split(separator: "/").map(String.init)
        for part in relative.split(separator: "/") where part != "." {
            if part == ".." {
                _ = parts.popLast()
            } else {
                parts.append(String(part))
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// `user@host:port/dir` after the scheme. A password in it (`user:password@`) would show in
    /// `ps` and the shell's history, and land in the username: it is refused without echoing it,
    /// pointing to `passwordFrom`, the places a password can come from.
    static func parseServerURL(_ text: String, scheme: String, passwordFrom: String) throws -> (
        user: String?, host: String, port: Int?, directory: String
    ) {
        var rest = Substring(text.dropFirst(scheme.count))
        var username: String?
        if let at = rest.lastIndex(of: "@") {
            username = String(rest[..<at])
            rest = rest[rest.index(after: at)...]
            if username!.contains(":") {
                throw UsageError(
                    "\(scheme)\(username!.prefix { $0 != ":" }):…@\(rest): a password in the URL would show in ps and the shell history; set \(passwordFrom)"
                )
            }
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        var host = String(rest[..<slash])
        var port: Int?
        if let colon = host.lastIndex(of: ":"), !host.hasSuffix("]") {
            guard let value = Int(host[host.index(after: colon)...]), (1...65535).contains(value) else {
                throw UsageError("\"\(text)\" has a bad port")
            }
            port = value
            host = String(host[..<colon])
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { throw UsageError("\"\(text)\" has no host") }
        if username?.isEmpty == true { username = nil }
        return (username, host, port, rest[slash...].split(separator: "/").joined(separator: "/"))
    }

    /// For five fields of a crontab line (`0 3 * * *`): the nearest schedule in this syntax, or
    /// what to write instead; nil when `words` are not such a line.
    static func cronHint(_ words: [String]) -> String? {
        let cronCharacters = Set("0123456789*,/-")
        guard words.count == 5, words.allSatisfy({ !$0.isEmpty && $0.allSatisfy(cronCharacters.contains) }) else {
            return nil
        }
        let (minute, hour, monthDay, month, weekday) = (words[0], words[1], words[2], words[3], words[4])
        guard let m = Int(minute), let h = Int(hour), (0..<60).contains(m), (0..<24).contains(h), month == "*" else {
            return "write days, then \"at HH:MM\" or \"every 2h\""
        }
        let clock = DefinitionEmitter.clock(h * 60 + m)
        if monthDay == "*" && weekday == "*" { return "the nearest is \"daily at \(clock)\"" }
        let numbers = { (field: String) in field.split(separator: ",").map { Int($0) } }
        if weekday == "*", numbers(monthDay).allSatisfy({ $0.map { (1...31).contains($0) } ?? false }) {
            return "the nearest is \"\(monthDay) at \(clock)\""
        }
        if monthDay == "*", numbers(weekday).allSatisfy({ $0.map { (0...7).contains($0) } ?? false }) {
            let names = numbers(weekday).map { ScheduleRule.weekdayNames[$0! % 7] }.joined(separator: ",")
            return "the nearest is \"\(names) at \(clock)\""
        }
        return "write days, then \"at \(clock)\""
    }

    public static func parseRule(_ text: String) throws -> ScheduleRule {
        let words = text.split(separator: " ").map(String.init)
        func fail(_ why: String) -> UsageError {
            UsageError("schedule \"\(text)\": \(why) (e.g. \"mon,fri at 18:30\", \"sat every 2h between 08:00-20:00\")")
        }
        if let hint = cronHint(words) {
            throw UsageError(
                "schedule \"\(text)\" looks like a crontab line, which is not the syntax here; \(hint) (e.g. \"mon,fri at 18:30\", \"sat every 2h between 08:00-20:00\")"
            )
        }
        var index = 0
        var rule = ScheduleRule(when: .at(0))
        if let first = words.first, first != "at" && first != "every" {
            let items = first.lowercased().split(separator: ",").map(String.init)
            if items.allSatisfy({ Int($0) != nil }) {
                let days = items.compactMap { Int($0) }
                guard days.allSatisfy({ (1...31).contains($0) }) else { throw fail("days of the month are 1-31") }
                rule.days = .monthDays(Set(days))
            } else {
                var set = Set<Int>()
                for item in items {
                    guard let days = ScheduleRule.weekdays(named: item) else { throw fail("\"\(item)\" is not a day") }
                    set.formUnion(days)
                }
                rule.days = .weekdays(set)
            }
            index = 1
        }
        guard index + 1 < words.count else { throw fail("needs 'at HH:MM' or 'every N(m|h)'") }
        switch words[index] {
        case "at":
            guard let minute = DefinitionsParser.clockMinutes(words[index + 1]) else {
                throw fail("\"\(words[index + 1])\" is not HH:MM")
            }
            rule.when = .at(minute)
        case "every":
            guard let minutes = DefinitionsParser.intervalMinutes(words[index + 1]) else {
                throw fail("\"\(words[index + 1])\" is not like 30m or 2h")
            }
            rule.when = .every(minutes)
        default: throw fail("expected 'at' or 'every', found \"\(words[index])\"")
        }
        index += 2
        if index < words.count {
            guard words[index] == "between", index + 1 < words.count, case .every = rule.when else {
                throw fail("unexpected \"\(words[index])\"")
            }
            let parts = words[index + 1].split(separator: "-").map(String.init)
            guard parts.count == 2, let start = DefinitionsParser.clockMinutes(parts[0]),
                let end = DefinitionsParser.clockMinutes(parts[1]),
                let window = ScheduleRule.window(start: start, end: end)
            else { throw fail("\"\(words[index + 1])\" is not a window HH:MM-HH:MM (20:00-08:00 goes over midnight)") }
            rule.between = window
            index += 2
        }
        if index < words.count { throw fail("unexpected \"\(words[index])\"") }
        return rule
    }
}
