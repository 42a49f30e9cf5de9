import ArgumentParser
import FoundationEssentials
import PlugSync
import SystemSupport

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the definitions.")
    @OptionGroup var options: ConfigOptions
    @Flag(help: "Print the result as one JSON object.") var json = false

    func run() throws {
        try failing {
            let file = try options.load()
            if json {
                try printJSON(
                    ListJSON(
                        definitions: file.definitions.map { d in
                            DefinitionJSON(
                                name: d.name, enabled: d.enabled, type: d.type.rawValue, group: d.group,
                                description: d.description, source: d.source.location.summary,
                                destination: d.destination.location.summary, runsOnMount: d.runsOnMount,
                                nextRun: d.enabled ? d.schedule.nextRun(after: Date()) : nil, maxAgeSeconds: d.maxAge,
                                logFile: d.logFile)
                        }))
                return
            }
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
        commandName: "show", abstract: "Show one definition as YAML (passwords and the path of a ping URL hidden).")
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
            let shown = definition.notify?.shownURL
            definition.notify?.url = shown
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
    @Flag(help: "Print the result as one JSON object.") var json = false

    func run() throws {
        try failing {
            let file = try options.load()
            let definition = try file.definition(named: name)
            let resolver = EndpointResolver()
            var refused = false
            var endpoints: [EndpointCheckJSON] = []
            for (role, spec) in [("source", definition.source), ("destination", definition.destination)] {
                var entry = EndpointCheckJSON(role: role, ok: false, fileCheck: spec.fileCheck?.description)
                do {
                    let resolved = try resolver.resolve(spec, role: role)
                    var line = "\(role): \(resolved.root)"
                    if let drive = resolved.drive { line += " on \(drive)" }
                    if let check = spec.fileCheck { line += "; File Check \(check) passed" }
                    let state = try resolved.endpoint.rootState()
                    line +=
                        state == .missing ? "; folder does not exist yet" : (state == .empty ? "; folder is empty" : "")
                    entry.ok = true
                    entry.root = resolved.root
                    entry.drive = resolved.driveIdentity.map { DriveJSON($0) }
                    entry.folder = state == .missing ? "missing" : state == .empty ? "empty" : "exists"
                    if !json { print(TerminalText.escaped(line)) }
                } catch let error as PreconditionError {
                    entry.problem = "\(error)"
                    if !json { print(TerminalText.escaped("\(role): \(error)")) }
                    refused = true
                }
                endpoints.append(entry)
            }
            if json { try printJSON(CheckJSON(definition: name, ok: !refused, endpoints: endpoints)) }
            if refused { throw ExitCode(3) }
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract:
            "Last and next run of each definition (of each drive it rotates through), or one definition's last runs.",
        discussion: """
            Without a name: a row per definition, and a row per drive for a definition whose \
            device endpoint matched several drives (each drive has its own last run and max_age). \
            With a name: that definition's last runs, newest first.
            """)
    @OptionGroup var options: ConfigOptions
    @Argument(help: "A definition: show its last runs.", completion: .custom(Completion.names)) var name: String?
    @Option(
        name: [.customShort("n"), .customLong("runs")],
        help: ArgumentHelp("With a name: how many runs to show.", valueName: "N"))
    var count = 10
    @Flag(help: "Print the result as one JSON object.") var json = false

    func validate() throws {
        if count < 1 { throw ValidationError("-n must be at least 1, not \(count)") }
    }

    func run() throws {
        try failing {
            let file = try options.load()
            let state = StateDirectory.path()
            let history = try RunHistory(stateDirectory: StateDirectory.prepare(state))
            let now = FeedbackClock.now()
            if let name {
                let definition = try file.definition(named: name)
                let status = DefinitionState(definition, history: history, stateDirectory: state, now: now)
                let runs = history.runs(of: name, limit: count)
                if json {
                    try printJSON(
                        HistoryJSON(
                            definition: status.json,
                            runs: runs.map { RunJSON($0, driveName: $0.drive.map(status.driveName)) }))
                } else {
                    printHistory(runs, status)
                }
                return
            }
            let states = file.definitions.map {
                DefinitionState($0, history: history, stateDirectory: state, now: now)
            }
            let agent = AgentPresence.find(stateDirectory: state)
            if json {
                try printJSON(
                    StatusJSON(
                        definitions: states.map(\.json),
                        agent: AgentJSON(
                            running: agent != nil, pid: agent.map { Int($0.pid) }, config: agent?.configPath,
                            followsThisFile: agent?.follows(options.path) ?? false)))
                return
            }
            var rows = [
                [
                    "NAME", "DRIVE", "LAST RUN", "TRIGGER", "RESULT", "COPIED", "DELETED", "FAILED", "NEXT RUN",
                    "MAX AGE",
                ]
            ]
            for d in states { rows += d.rows() }
            printTable(rows)
            print(AgentPresence.summary(stateDirectory: state, configPath: options.path))
        }
    }

    private func printHistory(_ runs: [RunRecord], _ status: DefinitionState) {
        var rows = [
            ["STARTED", "TRIGGER", "DRIVE", "RESULT", "COPIED", "DELETED", "FAILED", "BYTES", "DURATION", "MESSAGE"]
        ]
        for run in runs {
            rows.append([
                formatDate(run.started), run.trigger, run.drive.map(status.driveName) ?? "-", run.result,
                "\(run.transferred)", "\(run.deleted)", "\(run.failed)", formatBytes(run.bytes),
                formatFixed(run.seconds, decimals: 2) + " s", run.message.isEmpty ? "-" : run.message,
            ])
        }
        printTable(rows)
        if runs.isEmpty { print("\(status.definition.name) has not run yet") }
    }
}

/// What `status` tells of one definition: its last run and its `max_age`, overall and for each
/// drive its runs used.
struct DefinitionState {
    var definition: Definition
    var running: Bool
    var next: Date?
    var last: RunRecord?
    var lastSuccess: RunRecord?
    /// Seconds since the last success, when more than `max_age`: for a definition with drives,
    /// the most overdue drive's.
    var overdue: Double?
    var drives: [DriveStatus]

    init(_ d: Definition, history: RunHistory, stateDirectory: String, now: Date) {
        definition = d
        running = DefinitionLock.isHeld(stateDirectory: stateDirectory, name: d.name)
        next = d.enabled ? d.schedule.nextRun(after: Date()) : nil
        last = history.runs(of: d.name).first
        lastSuccess = history.lastRun(of: d.name, result: "success")
        drives = DriveStatus.all(of: d, history: history, now: now)
        overdue =
            drives.isEmpty
            ? Overdue.age(of: d, history: history, now: now) : drives.compactMap(\.overdue).max()
    }

    /// How the tables name a drive of this definition.
    func driveName(_ drive: DriveIdentity) -> String {
        drives.first { $0.drive.key == drive.key }?.name ?? drive.name
    }

    /// "schedule", "on mount", "manual" or "disabled".
    var starts: String {
        !definition.enabled
            ? "disabled" : !definition.schedule.isEmpty ? "schedule" : definition.runsOnMount ? "on mount" : "manual"
    }

    /// The rows of the `status` table: one, or one per drive (and one for a newer run without
    /// a drive, e.g. refused because none was plugged in).
    func rows() -> [[String]] {
        let d = definition
        let next = next.map(formatDate) ?? (d.enabled ? (d.runsOnMount ? "on mount" : "manual") : "disabled")
        func row(_ drive: String, _ last: RunRecord?, _ overdue: Double?) -> [String] {
            // `max_age`: "-" when none, else within it ("ok") or `OVERDUE 9 days`.
            let age = d.maxAge == nil ? "-" : overdue.map(Overdue.text) ?? "ok"
            return [
                d.name, drive, last.map { formatDate($0.started) } ?? "never", last?.trigger ?? "-",
                last?.result ?? "-", last.map { "\($0.transferred)" } ?? "-", last.map { "\($0.deleted)" } ?? "-",
                last.map { "\($0.failed)" } ?? "-", next, age,
            ]
        }
        var rows: [[String]] = []
        if drives.isEmpty {
            rows.append(row("-", last, overdue))
        } else {
            if let last, last.drive == nil {
                rows.append(row("-", last, nil))
                rows[0][9] = "-"  // `max_age` is the drives'
            }
            for drive in drives { rows.append(row(drive.name, drive.last, drive.overdue)) }
        }
        if running { rows[0][4] = "running" }
        return rows
    }

    var json: DefinitionStatusJSON {
        DefinitionStatusJSON(
            name: definition.name, enabled: definition.enabled, running: running, starts: starts, nextRun: next,
            maxAgeSeconds: definition.maxAge, overdue: overdue != nil, overdueSeconds: overdue,
            lastRun: last.map { RunJSON($0, driveName: $0.drive.map(driveName)) },
            lastSuccess: lastSuccess.map { RunJSON($0, driveName: $0.drive.map(driveName)) },
            drives: drives.map { drive in
                DriveStatusJSON(
                    drive: DriveJSON(drive.drive, name: drive.name),
                    lastRun: RunJSON(drive.last, driveName: drive.name),
                    lastSuccess: drive.lastSuccess.map { RunJSON($0, driveName: drive.name) },
                    overdue: drive.overdue != nil, overdueSeconds: drive.overdue)
            })
    }
}

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "Drives seen now: label, UUID, serial, mount point, and the definitions they match.")
    @OptionGroup var options: ConfigOptions
    @Flag(help: "Print the result as one JSON object.") var json = false

    func run() throws {
        try failing {
            let definitions = (try? options.load().definitions) ?? []
            let resolver = EndpointResolver()
            let checks = Self.evaluateChecks(definitions, resolver)
            var rows = [["DEVICE", "TYPE", "LABEL", "UUID", "SERIAL", "MOUNTED AT", "MATCHES"]]
            var found: [DeviceJSON] = []
            for block in resolver.devices
            where block.fsUsage == "filesystem" || !resolver.mountPoints(of: block).isEmpty {
                let points = resolver.mountPoints(of: block)
                var matches: [String] = []
                var matched: [DeviceMatchJSON] = []
                for d in definitions {
                    for (spec, role) in [(d.source, "source"), (d.destination, "destination")] {
                        guard case .device(let device) = spec.location,
                            device.label != nil || device.uuid != nil || device.serial != nil,
                            EndpointResolver.matches(block, device)
                        else { continue }
                        var note = d.name
                        var result: String?
                        if let check = spec.fileCheck {
                            let passed = points.contains { checks[CheckKey(check: check, mountPoint: $0)] == nil }
                            result = passed ? "passed" : (points.isEmpty ? "not mounted" : "failed")
                            note +=
                                passed
                                ? " (File Check passed)" : (points.isEmpty ? " (not mounted)" : " (File Check failed)")
                        }
                        matches.append(note)
                        matched.append(DeviceMatchJSON(definition: d.name, role: role, fileCheck: result))
                    }
                }
                found.append(
                    DeviceJSON(
                        device: block.devnode, fsType: block.fsType, label: block.label, uuid: block.uuid,
                        serial: block.serial, mountPoints: points, matches: matched))
                rows.append([
                    block.devnode, block.fsType ?? "-", block.label ?? "-", block.uuid ?? "-", block.serial ?? "-",
                    points.isEmpty ? "-" : points.joined(separator: ","),
                    matches.isEmpty ? "-" : matches.joined(separator: ", "),
                ])
            }
            let udevData = !resolver.devices.allSatisfy { !$0.udevInitialized }
            if json {
                try printJSON(DevicesJSON(devices: found, udevData: udevData))
                return
            }
            printTable(rows)
            if !udevData {
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
