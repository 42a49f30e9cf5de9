import ArgumentParser
import FoundationEssentials
import PlugSync
import SystemSupport

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the definitions.")
    @OptionGroup var options: ConfigOptions

    func run() throws {
        try failing {
            let file = try options.load()
            var rows = [["NAME", "TYPE", "GROUP", "SOURCE", "DESTINATION", "DESCRIPTION"]]
            for d in file.definitions {
                rows.append([
                    d.name + (d.enabled ? "" : " (disabled)"), d.type.rawValue, d.group ?? "-",
                    d.source.location.summary,
                    d.destination.location.summary, d.description ?? "",
                ])
            }
            printTable(rows)
        }
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show one definition as YAML (passwords hidden).")
    @OptionGroup var options: ConfigOptions
    @Argument(help: "The definition to show.", completion: .custom(Completion.names)) var name: String

    func run() throws {
        try failing {
            let file = try options.load()
            var definition = try file.definition(named: name)
            for keyPath in [\Definition.source, \Definition.destination] {
                if var server = definition[keyPath: keyPath].location.server, case .literal = server.password {
                    server.password = .literal("********")
                    definition[keyPath: keyPath].location = .server(server)
                }
            }
            print(DefinitionEmitter.lines(for: definition, indent: 0).joined(separator: "\n"))
            if let next = definition.schedule.nextRun(after: Date()) {
                print("# next scheduled run: \(formatDate(next))")
            }
        }
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Resolve a definition's endpoints and evaluate its File Checks, without syncing.")
    @OptionGroup var options: ConfigOptions
    @Argument(help: "The definition to check.", completion: .custom(Completion.names)) var name: String

    func run() throws {
        try failing {
            let file = try options.load()
            let definition = try file.definition(named: name)
            let resolver = EndpointResolver()
            var refused = false
            for (role, spec) in [("source", definition.source), ("destination", definition.destination)] {
                do {
                    let resolved = try resolver.resolve(spec, role: role)
                    var line = "\(role): \(resolved.root)"
                    if let drive = resolved.drive { line += " on \(drive)" }
                    if let check = spec.fileCheck { line += "; File Check \(check) passed" }
                    let state = try resolved.endpoint.rootState()
                    line +=
                        state == .missing ? "; folder does not exist yet" : (state == .empty ? "; folder is empty" : "")
                    print(TerminalText.escaped(line))
                } catch let error as PreconditionError {
                    print(TerminalText.escaped("\(role): \(error)"))
                    refused = true
                }
            }
            if refused { throw ExitCode(3) }
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Last and next run of each definition.")
    @OptionGroup var options: ConfigOptions

    func run() throws {
        try failing {
            let file = try options.load()
            let history = try RunHistory(stateDirectory: StateDirectory.prepare(StateDirectory.path()))
            let state = StateDirectory.path()
            var rows = [
                ["NAME", "LAST RUN", "TRIGGER", "RESULT", "COPIED", "DELETED", "FAILED", "NEXT RUN", "MAX AGE"]
            ]
            let now = FeedbackClock.now()
            for d in file.definitions {
                // `max_age`: "-" when none, else within it ("ok") or `OVERDUE 9 days`.
                let age =
                    d.maxAge == nil
                    ? "-" : Overdue.age(of: d, history: history, now: now).map(Overdue.text) ?? "ok"
                let last = history.runs(of: d.name).first
                let running = DefinitionLock.isHeld(stateDirectory: state, name: d.name)
                let next = d.enabled ? d.schedule.nextRun(after: Date()).map(formatDate) : nil
                rows.append([
                    d.name, last.map { formatDate($0.started) } ?? "never", last?.trigger ?? "-",
                    running ? "running" : (last?.result ?? "-"), last.map { "\($0.transferred)" } ?? "-",
                    last.map { "\($0.deleted)" } ?? "-", last.map { "\($0.failed)" } ?? "-",
                    next ?? (d.enabled ? (d.runsOnMount ? "on mount" : "manual") : "disabled"), age,
                ])
            }
            printTable(rows)
        }
    }
}

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "Drives seen now: label, UUID, serial, mount point, and the definitions they match.")
    @OptionGroup var options: ConfigOptions

    func run() throws {
        try failing {
            let definitions = (try? options.load().definitions) ?? []
            let resolver = EndpointResolver()
            let checks = Self.evaluateChecks(definitions, resolver)
            var rows = [["DEVICE", "TYPE", "LABEL", "UUID", "SERIAL", "MOUNTED AT", "MATCHES"]]
            for block in resolver.devices
            where block.fsUsage == "filesystem" || !resolver.mountPoints(of: block).isEmpty {
                let points = resolver.mountPoints(of: block)
                var matches: [String] = []
                for d in definitions {
                    for spec in [d.source, d.destination] {
                        guard case .device(let device) = spec.location,
                            device.label != nil || device.uuid != nil || device.serial != nil,
                            EndpointResolver.matches(block, device)
                        else { continue }
                        var note = d.name
                        if let check = spec.fileCheck {
                            let passed = points.contains { checks[CheckKey(check: check, mountPoint: $0)] == nil }
                            note +=
                                passed
                                ? " (File Check passed)" : (points.isEmpty ? " (not mounted)" : " (File Check failed)")
                        }
                        matches.append(note)
                    }
                }
                rows.append([
                    block.devnode, block.fsType ?? "-", block.label ?? "-", block.uuid ?? "-", block.serial ?? "-",
                    points.isEmpty ? "-" : points.joined(separator: ","),
                    matches.isEmpty ? "-" : matches.joined(separator: ", "),
                ])
            }
            printTable(rows)
            if resolver.devices.allSatisfy({ !$0.udevInitialized }) {
                print("(udev has no data on these devices: is systemd-udevd running?)")
            }
        }
    }

    struct CheckKey: Hashable {
        var check: String
        var mountPoint: String
        init(check: FileCheck, mountPoint: String) {
            self.check = check.description
            self.mountPoint = mountPoint
        }
    }

    /// Every File Check of a drive definition against every mount point of a drive it matches:
    /// the failures (a passed check has no entry). The checks read drives anyone may have
    /// prepared, so they run all at once, each bounded in time (`FileCheck.failure`): the table
    /// comes within that bound however many drives are hostile or stalled.
    static func evaluateChecks(_ definitions: [Definition], _ resolver: EndpointResolver) -> [CheckKey: String] {
        var jobs: [(CheckKey, FileCheck, String)] = []
        var seen = Set<CheckKey>()
        for block in resolver.devices {
            for point in resolver.mountPoints(of: block) {
                for d in definitions {
                    for spec in [d.source, d.destination] {
                        guard case .device(let device) = spec.location, let check = spec.fileCheck,
                            device.label != nil || device.uuid != nil || device.serial != nil,
                            EndpointResolver.matches(block, device)
                        else { continue }
                        let key = CheckKey(check: check, mountPoint: point)
                        if seen.insert(key).inserted { jobs.append((key, check, point)) }
                    }
                }
            }
        }
        final class Results: @unchecked Sendable {
            let lock = Lock()
            var failures: [CheckKey: String] = [:]
        }
        let results = Results()
        runOnThreads(jobs.count) { index in
            let (key, check, point) = jobs[index]
            if let failure = check.failure(root: point, drive: true, timeout: 5) {
                results.lock.withLock { results.failures[key] = failure }
            }
        }
        return results.failures
    }
}

func formatDate(_ date: Date) -> String {
    Posix.localTimeString(date.timeIntervalSince1970)
}

/// Prints rows in aligned columns. Cells may hold a drive's label, UUID, serial or mount point:
/// each is escaped (`TerminalText`) before it is measured.
func printTable(_ rawRows: [[String]]) {
    let rows = rawRows.map { $0.map { TerminalText.escaped($0) } }
    guard let header = rows.first else { return }
    var widths = header.map(\.count)
    for row in rows {
        for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
    }
    for row in rows {
        let line = row.enumerated().map { i, cell in
            i == row.count - 1 ? cell : cell + String(repeating: " ", count: max(0, widths[i] - cell.count))
        }.joined(separator: "  ")
        var trimmed = Substring(line)
        while trimmed.last == " " || trimmed.last == "\t" { trimmed.removeLast() }
        while trimmed.first == " " || trimmed.first == "\t" { trimmed.removeFirst() }
        print(trimmed)
    }
}
