import CCurl
import Dispatch
import FTPBackend
import FoundationEssentials
import SyncEngine
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// How a run was asked for.
public struct RunOptions: Sendable {
    public var dryRun = false
    /// Lets a mirror delete more than `max_delete`, or empty a destination from an empty source.
    public var forceDelete = false
    /// "manual", "mount" or "schedule": written to the log and the run history.
    public var trigger = "manual"
    /// How much of the report the terminal gets (the log file gets its `log_level` either way).
    public var verbosity: Verbosity = .normal
    /// Set on SIGTERM or SIGINT (the agent, `plugsync run`): no new entry is started, files in
    /// flight finish, and the run ends `stopped`.
    public var cancellation: Cancellation?
    /// The drive whose mount started this run (the agent): that side uses it.
    public var drive: MatchedDrive?
    /// The report's lines go to standard error instead of standard output (`run --json`
    /// keeps standard output for its JSON).
    public var reportToStandardError = false
    /// The name the run's lock and what a server's run keeps for the next go by, when not the
    /// definition's (`plugsync sync`: one per pair of endpoints).
    public var stateName: String?
    /// Whether the run goes into the run history (`plugsync sync`'s runs, of no definition, do not).
    public var recordsHistory = true

    public init() {}
}

/// A mounted drive the agent matched to a definition, handed to the run it starts: the run uses
/// this mount, never another drive that matches too, and does not ask udev or read the File
/// Check again.
public struct MatchedDrive: Sendable, Equatable {
    /// The mount's ID in the mount table: a drive unmounted and mounted again is another mount.
    public var mountID: Int
    public var mountPoint: String
    /// How the report names it: `/dev/sdb1 (label BACKUP)`.
    public var description: String
    /// The side whose `device:` it matched: "source" or "destination".
    public var role: String
    /// What its File Check file held when it passed (`FileCheck.contentName`).
    public var check: String?

    public init(mountID: Int, mountPoint: String, description: String, role: String, check: String? = nil) {
        self.mountID = mountID
        self.mountPoint = mountPoint
        self.description = description
        self.role = role
        self.check = check
    }
}

/// Why a run is asked for ("manual", "mount", "schedule"), and for a mount, which drive.
public struct RunTrigger: Sendable, Equatable, ExpressibleByStringLiteral, CustomStringConvertible {
    public var kind: String
    public var drive: MatchedDrive?

    public init(_ kind: String, drive: MatchedDrive? = nil) {
        self.kind = kind
        self.drive = drive
    }
    public init(stringLiteral kind: String) { self.init(kind) }
    public var description: String { kind }
}

/// How one run ended.
public struct RunOutcome: Sendable {
    public enum Status: String, Sendable {
        case success, failures, refused, error
        /// Asked to stop (SIGINT, SIGTERM) before it was done.
        case stopped
    }
    public var name: String
    public var status: Status
    public var statistics: SyncStatistics
    public var message: String
    /// The summary line (`Done: …`).
    public var summary: String
    /// When the run began (moved by `PLUGSYNC_NOW`, as recorded) and how long it took.
    public var started = Date()
    public var seconds = 0.0
    /// The drive the run used, when an endpoint is a device and it was found.
    public var drive: DriveIdentity?
    /// The entries that failed, in the order they did (at most `RunReporter.failureLimit`).
    public var failures: [FailedEntry] = []

    /// The exit code for this outcome (README, "Command line").
    public var exitCode: Int32 { Self.exitCode(for: status) }

    public static func exitCode(for status: Status) -> Int32 {
        switch status {
        case .success: return 0
        case .failures: return 1
        case .error: return 2
        case .refused: return 3
        case .stopped: return 130  // as after Ctrl-C; `plugsync run` gives 128 + the signal's number
        }
    }
}

/// Runs definitions: resolve, check, list, plan, guard, execute, report, record.
public final class SyncRunner {
    public let stateDirectory: String
    /// Opened at the first record, after the sync: SQLite's pages stay out of the run's peak
    /// memory (the freed listings are handed back first).
    private var history: RunHistory?
    private let historyLock = Lock()
    private let resolver: () -> EndpointResolver

    /// `settings: metrics_file` and every definition of the file: rewritten after each run.
    private var metrics: (path: String, definitions: [Definition])?

    public init(stateDirectory: String, resolver: @escaping () -> EndpointResolver = { EndpointResolver() }) throws {
        self.stateDirectory = try StateDirectory.prepare(stateDirectory)
        self.resolver = resolver
    }

    /// Takes the file's metrics file and definitions (again, after a reload).
    public func use(_ file: DefinitionsFile) {
        historyLock.withLock { metrics = file.settings.metricsFile.map { ($0, file.definitions) } }
    }

    /// The run history, opened at its first use; nil (and a warning) when it cannot be.
    public func withHistory<T>(_ body: (RunHistory) -> T) -> T? {
        historyLock.withLock {
            do {
                if history == nil { history = try RunHistory(stateDirectory: stateDirectory) }
            } catch {
                printError("warning: \(error)")
                return nil
            }
            return body(history!)
        }
    }

    /// Rewrites the metrics file, if the definitions file names one.
    public func writeMetrics() {
        guard let (path, definitions) = historyLock.withLock({ metrics }) else { return }
        let now = FeedbackClock.now()
        if let problem = withHistory({ MetricsFile.write(path, definitions, history: $0, now: now) }) ?? nil {
            printError("warning: \(problem)")
        }
    }

    /// Whose desktop `notify: desktop: true` notifies: this process's session, or (the system
    /// agent) each user with an active graphical session.
    var desktopAudience = DesktopAudience.ownSession

    /// Runs a definition; then rewrites the metrics file, sends the result's ping and shows its
    /// desktop notification, the two at once (after the run is recorded: neither changes its
    /// outcome).
    public func run(_ definition: Definition, options: RunOptions) -> RunOutcome {
        let pings = options.dryRun ? nil : RunPings(definition)
        let notices =
            options.dryRun
            ? nil : RunNotices(definition, audience: desktopAudience.about(driveAt: options.drive?.mountPoint))
        let line = "Sync \(definition.name) started (trigger: \(options.trigger))"
        pings?.started(line)
        notices?.started(line)
        let outcome = runAndRecord(definition, options: options)
        if !options.dryRun { writeMetrics() }
        let shown = notices.map { notices in Background { notices.finished(outcome) } }
        pings?.finished(outcome)
        _ = shown?.value
        return outcome
    }

    private func runAndRecord(_ definition: Definition, options: RunOptions) -> RunOutcome {
        var log: LogFile?
        var logError: String?
        if let path = definition.logFile {
            do { log = try LogFile(path: path) } catch { logError = "\(error)" }
        }
        let reporter = RunReporter(
            terminal: options.verbosity, log: log, logLevel: definition.logLevel,
            output: options.reportToStandardError ? 2 : 1)
        if let logError { printError("warning: \(logError)") }
        let lock: DefinitionLock
        do {
            lock = try DefinitionLock(stateDirectory: stateDirectory, name: options.stateName ?? definition.name) {
                reporter.say("Waiting for the running sync of \(definition.name) to finish.")
                reporter.flush()
            }
        } catch {
            return finish(definition, options, reporter, .error, SyncStatistics(), "\(error)", started: Date())
        }
        defer { withExtendedLifetime(lock) {} }
        let started = Date()
        let mode = options.dryRun ? " (dry run: nothing is changed)" : ""
        reporter.say(
            "Sync \(definition.name) started (\(definition.type.rawValue), trigger: \(options.trigger))\(mode)")
        let hooks = Hooks(definition: definition, trigger: options.trigger, enabled: !options.dryRun)
        if let failure = hooks.before(reporter) {
            let outcome = finish(
                definition, options, reporter, .refused, SyncStatistics(), "Refused: \(failure)", started: started)
            hooks.after(outcome, reporter)
            reporter.flush()  // the hooks' lines come after the summary
            return outcome
        }
        let outcome: RunOutcome
        let found = FoundDrive()
        do {
            // A server's error a step did not translate for its side (source, destination) still
            // gets the login's translation: a lost server refuses the run (exit 3), one line.
            let statistics: SyncStatistics
            do {
                statistics = try execute(
                    definition, options: options, reporter: reporter, started: started, found: found)
            } catch {
                throw ServerKind.translate(error, role: definition.source.location.isRemote ? "source" : "destination")
            }
            var status: RunOutcome.Status = statistics.failed > 0 ? .failures : .success
            // A drive pulled mid-run: one clear line (stderr, log) besides the failed entries.
            var message =
                statistics.stoppedBecause.map {
                    "Error: \($0); the run stopped, \(statistics.failed) entries not done (the next run completes them)"
                } ?? ""
            // Asked to stop: the counts so far, and what was not started.
            if let cancellation = options.cancellation, cancellation.isCancelled {
                status = .stopped
                let who = cancellation.reason.map { " by \($0)" } ?? ""
                message =
                    "Stopped\(who): \(statistics.notStarted) entries not started; the files being copied were finished (the next run completes the rest)"
            }
            // A dry run a safety rail would stop: the plan is shown, and why the real run would be refused.
            if let refusal = statistics.refusal {
                status = .refused
                message = "Dry run: the real run would be refused: \(refusal)"
            }
            outcome = finish(
                definition, options, reporter, status, statistics, message, started: started, drive: found.identity)
        } catch let error as PreconditionError {
            outcome = finish(
                definition, options, reporter, .refused, SyncStatistics(), "Refused: \(error)", started: started,
                drive: found.identity)
        } catch let error as ClockProbeRefused {
            return finish(
                definition, options, reporter, .refused, SyncStatistics(), "Refused: \(error)", started: started,
                drive: found.identity)
        } catch {
            outcome = finish(
                definition, options, reporter, .error, SyncStatistics(), "Error: \(error)", started: started,
                drive: found.identity)
        }
        hooks.after(outcome, reporter)
        reporter.flush()  // the hooks' lines come after the summary
        return outcome
    }

    /// The drive a run found, once its endpoints are resolved.
    final class FoundDrive: @unchecked Sendable {
        var identity: DriveIdentity?
    }

    private func execute(
        _ definition: Definition, options: RunOptions, reporter: RunReporter, started: Date, found: FoundDrive
    ) throws -> SyncStatistics {
        reporter.phase("start")
        let resolver = self.resolver()
        let connections = definition.parallel ?? 4
        var settings = SyncSettings(type: definition.type)
        settings.recursive = definition.recursive
        settings.ignore = try IgnoreList(definition.ignore)
        settings.maxDelete = definition.maxDelete
        settings.dryRun = options.dryRun
        settings.forceDelete = options.forceDelete
        settings.parallel = connections
        settings.parallelGiven = definition.parallel != nil
        settings.cancellation = options.cancellation
        settings.versions = definition.versions
        settings.verifyWrites = definition.verify
        let now = Int(FeedbackClock.now().timeIntervalSince1970)
        settings.started = now
        settings.now = now
        if definition.versions != nil && !options.dryRun { settings.started = versionsStart(definition.name, now) }
        let job = SyncJob(settings, observer: reporter)
        // A local side and a server: the two are resolved at once, and the local side is listed
        // on a thread of its own from then on, while the server logs in and lists
        // (`SyncJob.startListing`). Nothing here writes: a safety rail that stops the run leaves
        // nothing done.
        let localIndex: Int? =
            definition.source.location.isRemote == definition.destination.location.isRemote
            ? nil : definition.source.location.isRemote ? 1 : 0
        var sourceResult: Result<ResolvedEndpoint, Error>?
        var destinationResult: Result<ResolvedEndpoint, Error>?
        func resolve(_ index: Int) -> Result<ResolvedEndpoint, Error> {
            let result = Result {
                let role = index == 0 ? "source" : "destination"
                return try resolver.resolve(
                    index == 0 ? definition.source : definition.destination, role: role, connections: connections,
                    drive: options.drive?.role == role ? options.drive : nil)
            }
            if index == localIndex, case .success(let local) = result {
                job.startListing(local.endpoint, excluded: local.excluded)
            }
            return result
        }
        if localIndex == nil {
            sourceResult = resolve(0)
            if case .success = sourceResult { destinationResult = resolve(1) }
        } else {
            runOnThreads(2) { index in
                if index == 0 { sourceResult = resolve(0) } else { destinationResult = resolve(1) }
            }
        }
        defer {
            for case .success(let side)? in [sourceResult, destinationResult] { side.endpoint.disconnect() }
        }
        // The source's error first, as when the two are resolved one after the other.
        let source = try sourceResult!.get()
        let destination = try destinationResult!.get()
        // The drive the history keeps: the destination's when both sides are drives.
        found.identity = destination.driveIdentity ?? source.driveIdentity
        if let drive = source.drive {
            reporter.say("Source drive \(drive) mounted at \(source.mountPoint ?? source.root)")
        }
        if let drive = destination.drive {
            reporter.say("Destination drive \(drive) mounted at \(destination.mountPoint ?? destination.root)")
        }
        reporter.say("Synchronizing \(destination.endpoint.displayName) from \(source.endpoint.displayName)")

        // Safety rail 0: one tree inside the other would copy into itself, or (a source inside a
        // mirror's destination) delete the source as an orphan.
        if let (sourceReal, destinationReal) = EndpointResolver.overlap(source.root, destination.root) {
            throw PreconditionError(
                "the source \(sourceReal) and the destination \(destinationReal) overlap (one is inside the other); nothing was changed"
            )
        }
        // A server keeps what a run learned (exact times, its clock) for the next run.
        let memoryFolder = stateDirectory + "/ftp-times"
        func remembers(_ spec: EndpointSpec) -> Bool { spec.location.server?.remembersBetweenRuns == true }
        if remembers(definition.source) || remembers(definition.destination) {
            try? Posix.makeDirectories(memoryFolder, mode: 0o700)
        }
        func side(_ resolved: ResolvedEndpoint, _ spec: EndpointSpec, _ role: String) -> SyncSide {
            SyncSide(
                endpoint: resolved.endpoint, excluded: resolved.excluded, isDrive: resolved.drive != nil,
                memoryFile: remembers(spec)
                    ? memoryFolder + "/" + (options.stateName ?? definition.name) + "." + role : nil,
                translate: { ServerKind.translate($0, role: role) })
        }
        return try job.run(
            source: side(source, definition.source, "source"),
            destination: side(destination, definition.destination, "destination"))
    }

    /// The run's start for its versions folder's name: `now`, or a second after the last run
    /// of the definition that kept versions when that one started in the same second (or later:
    /// a clock set back), so that two runs never share a versions folder and one's version of a
    /// path never takes the place of the other's. Called under the definition's lock.
    private func versionsStart(_ name: String, _ now: Int) -> Int {
        let file = stateDirectory + "/versions-" + name
        var start = now
        if let bytes = Posix.readFile(file, limit: 32), let last = Int(String(decoding: bytes, as: UTF8.self)),
            last >= now
        {
            start = last + 1
        }
        _ = Posix.writeFileAtomically(file, Array("\(start)".utf8))
        return start
    }

    private func finish(
        _ definition: Definition, _ options: RunOptions, _ reporter: RunReporter, _ status: RunOutcome.Status,
        _ statistics: SyncStatistics, _ message: String, started: Date, drive: DriveIdentity? = nil
    ) -> RunOutcome {
        let seconds = Date().timeIntervalSince(started)
        let recordedStart = started.addingTimeInterval(FeedbackClock.offset())

        if !message.isEmpty {
            reporter.logOnly(message)
            reporter.flush()
            printError("plugsync: \(definition.name): \(message)")  // a refusal must be seen even with stdout redirected
        }
        let summary = Self.summary(statistics, seconds: seconds, dryRun: options.dryRun, status: status)
        reporter.say(summary)
        reporter.flush()
        if !options.dryRun && options.recordsHistory {
            let record = RunRecord(
                definition: definition.name, trigger: options.trigger, started: recordedStart, seconds: seconds,
                result: status.rawValue, transferred: statistics.transferred, deleted: statistics.deleted,
                skipped: statistics.skipped, failed: statistics.failed, bytes: statistics.bytes, message: message,
                drive: drive)
            Posix.releaseFreeMemory()
            do {
                try historyLock.withLock {
                    if history == nil { history = try RunHistory(stateDirectory: stateDirectory) }
                    try history?.record(record)
                }
            } catch { printError("warning: \(error)") }
            if PhaseTimer.enabled { printError("timing: history, " + Posix.memoryStatus()) }
        }
        return RunOutcome(
            name: definition.name, status: status, statistics: statistics, message: message, summary: summary,
            started: recordedStart, seconds: seconds, drive: drive, failures: reporter.failures)
    }

    /// `Done: 12 copied (1.2 MiB), 1 folder created, 1 deleted, 100 skipped, 0 failed in 0.52 s (2.3 MiB/s)`;
    /// a dry run says what the real run would do:
    /// `Dry run: would copy 12 (1.2 MiB), create 1 folders, delete 1; 100 skipped, 0 would fail (planned in 0.02 s)`.
    public static func summary(_ s: SyncStatistics, seconds: Double, dryRun: Bool, status: RunOutcome.Status) -> String
    {
        if dryRun && (status == .success || status == .failures || s.refusal != nil) {
            var text =
                "Dry run: would copy \(s.transferred) (\(formatBytes(s.bytes))), create \(s.foldersCreated) folders, "
                + "delete \(s.deleted)\(s.versioned > 0 ? ", keep \(s.versioned) versions" : ""); "
                + "\(s.skipped) skipped, \(s.failed) would fail"
            if s.refusal != nil { text += "; the real run would be refused" }
            return text + " (planned in " + formatFixed(seconds, decimals: 2) + " s)"
        }
        let head: String
        switch status {
        case .success: head = "Done"
        case .failures: head = "Done with failures"
        case .refused: head = "Refused"
        case .error: head = "Failed"
        case .stopped: head = "Stopped"
        }
        let rate = seconds > 0 ? Int64(Double(s.bytes) / seconds) : 0
        var text =
            "\(head): \(s.transferred) copied (\(formatBytes(s.bytes))), \(s.foldersCreated) folders created, "
            + "\(s.deleted) deleted, "
            + (s.versioned > 0 ? "\(s.versioned) versioned, " : "") + (s.pruned > 0 ? "\(s.pruned) pruned, " : "")
            + "\(s.skipped) skipped, \(s.failed) failed"
        if s.notStarted > 0 || status == .stopped { text += ", \(s.notStarted) not started" }
        if s.temporaryFilesRemoved > 0 { text += ", \(s.temporaryFilesRemoved) leftover temporary files removed" }
        text += " in " + formatFixed(seconds, decimals: 2) + " s" + " (\(formatBytes(rate))/s)"
        return text
    }
}

/// Phase timings on stderr when `PLUGSYNC_TIMING` is set: where a run spends its time.
struct PhaseTimer {
    static let enabled = Posix.environment("PLUGSYNC_TIMING") != nil
    private var last = DispatchTime.now().uptimeNanoseconds
    mutating func mark(_ phase: String) {
        guard Self.enabled else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        printError(
            "timing: \(phase) " + formatFixed(Double(now - last) / 1e6, decimals: 1) + " ms, "
                + Posix.memoryStatus())
        last = now
    }
}

/// One line on standard error, escaped (`TerminalText`): it may quote a drive or a server.
func printError(_ line: String) {
    writeAll(2, Array((TerminalText.escaped(line) + "\n").utf8))
}
