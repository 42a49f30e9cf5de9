import ArgumentParser
import Dispatch
import PlugSync
import SyncEngine
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Synchronize now.")
    @OptionGroup var options: ConfigOptions
    @Argument(help: "Definitions to run.", completion: .custom(Completion.names)) var names: [String] = []
    @Option(help: "Run every definition of this group.", completion: .custom(Completion.groups)) var group: String?
    @Flag(help: "Run every enabled definition.") var all = false
    @OptionGroup var flags: RunFlags

    func validate() throws {
        let chosen = (names.isEmpty ? 0 : 1) + (group == nil ? 0 : 1) + (all ? 1 : 0)
        if chosen != 1 { throw ValidationError("give definition names, --group G, or --all (one of them)") }
    }

    func run() throws {
        let signals = StopSignals()
        let outcomes: [RunOutcome] = try failing {
            let file = try options.load()
            var definitions = try file.select(names: names, group: group, all: all)
            if all || group != nil { definitions = definitions.filter(\.enabled) }
            let runner = try SyncRunner(stateDirectory: StateDirectory.path())
            runner.use(file)
            return try flags.run(definitions, with: runner, signals: signals)
        }
        try flags.exit(outcomes, signals: signals)
    }
}

/// How a run is asked for on the command line: `run` and `sync` take these.
struct RunFlags: ParsableArguments {
    @Flag(name: .customLong("dry-run"), help: "Print the plan; change nothing.") var dryRun = false
    @Flag(name: .customLong("force-delete"), help: "Allow deleting beyond max_delete, or from an empty source.")
    var forceDelete = false
    @Flag(
        name: .shortAndLong,
        help: "Print only the summary, and the failures on standard error (the log file gets what it always gets).")
    var quiet = false
    @Flag(
        name: .shortAndLong,
        help: "Print the full report: a line for every entry, also those already up to date.")
    var verbose = false
    @Flag(
        help: """
            Print one JSON object per definition on standard output (result, counts, bytes, duration, \
            exit code, failed entries); the report's lines go to standard error.
            """)
    var json = false

    func validate() throws {
        if quiet && verbose { throw ValidationError("--quiet and --verbose: choose one") }
    }

    func options(_ signals: StopSignals) -> RunOptions {
        var runOptions = RunOptions()
        runOptions.dryRun = dryRun
        runOptions.forceDelete = forceDelete
        runOptions.verbosity = quiet ? .quiet : verbose ? .verbose : .normal
        runOptions.cancellation = signals.cancellation
        runOptions.reportToStandardError = json
        return runOptions
    }

    /// Runs the definitions one after the other; a signal leaves the rest not started.
    /// - Parameter oneShot: for `plugsync sync`: not recorded, and locked by this name.
    func run(
        _ definitions: [Definition], with runner: SyncRunner, signals: StopSignals, oneShot: String? = nil
    ) throws -> [RunOutcome] {
        var runOptions = options(signals)
        runOptions.recordsHistory = oneShot == nil
        runOptions.stateName = oneShot
        var outcomes: [RunOutcome] = []
        for definition in definitions {
            let outcome = runner.run(definition, options: runOptions)
            if quiet {
                let line = "\(outcome.name): \(outcome.summary)"
                if json { FileHandleOut.error(line) } else { print(line) }
            }
            if json { try printJSON(RunResultJSON(outcome, dryRun: dryRun, trigger: runOptions.trigger)) }
            outcomes.append(outcome)
            if signals.cancellation.isCancelled { break }  // the definitions after it are not started
        }
        return outcomes
    }

    /// Ends as the outcomes say: 128 + the signal's number when one stopped the run (130 for
    /// Ctrl-C, as a shell reports it); else the worst outcome decides (refused > error >
    /// failures > success).
    func exit(_ outcomes: [RunOutcome], signals: StopSignals) throws {
        if let code = signals.exitCode { throw ExitCode(code) }
        let code = outcomes.map(\.exitCode).max { rank($0) < rank($1) } ?? 0
        if code != 0 { throw ExitCode(code) }
    }

    private func rank(_ code: Int32) -> Int { [0: 0, 1: 1, 2: 2, 3: 3][code] ?? 4 }
}

/// SIGINT (Ctrl-C) and SIGTERM during `plugsync run` stop the run as the agent's SIGTERM does:
/// no new entry is started, the files being copied finish, and the run ends with `Stopped: …`
/// and its counts, recorded as `stopped`. A second signal ends plugsync at once.
final class StopSignals: @unchecked Sendable {
    let cancellation = Cancellation()
    private let lock = Lock()
    private var first: Int32?
    private var sources: [DispatchSourceSignal] = []

    init() {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in received(number) }
            source.resume()
            sources.append(source)
        }
    }

    private func received(_ number: Int32) {
        let again = lock.withLock { () -> Bool in
            if first != nil { return true }
            first = number
            return false
        }
        if again {
            signal(number, SIG_DFL)
            raise(number)
            return
        }
        cancellation.cancel(reason: number == SIGINT ? "SIGINT (Ctrl-C)" : "SIGTERM")
        let line =
            "plugsync: stopping: no new file is started, the files being copied finish (again to stop at once)\n"
        // On a new line: a progress bar may be on the terminal's last one.
        fputs((isatty(2) == 1 ? "\r\u{1B}[K" : "") + line, stderr)
    }

    /// 128 + the number of the signal that stopped the run, if one did.
    var exitCode: Int32? { lock.withLock { first.map { 128 + $0 } } }
}

struct Log: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "log", abstract: "Print a definition's log file.")
    @OptionGroup var options: ConfigOptions
    @Argument(help: "The definition.", completion: .custom(Completion.names)) var name: String
    @Option(name: [.customShort("n"), .customLong("lines")], help: "Print only the last N lines.") var count: Int?
    @Flag(name: .shortAndLong, help: "Follow the running sync (or wait for the next one) until it ends.") var follow =
        false

    func run() throws {
        try failing {
            let file = try options.load()
            let definition = try file.definition(named: name)
            guard let path = definition.logFile else {
                throw UsageError(
                    "definition \"\(name)\" has no log_file; set one with: plugsync edit \(name) --log-file /var/log/plugsync/\(name).txt"
                )
            }
            var offset = try printExisting(path)
            guard follow else { return }
            let state = StateDirectory.path()
            var sawRun = DefinitionLock.isHeld(stateDirectory: state, name: name)
            while true {
                offset = appendNew(path, from: offset)
                let running = DefinitionLock.isHeld(stateDirectory: state, name: name)
                if running { sawRun = true }
                if sawRun && !running {
                    _ = appendNew(path, from: offset, final: true)
                    return
                }
                usleep(100_000)
            }
        }
    }

    private func printExisting(_ path: String) throws -> UInt64 {
        guard let data = Posix.readFile(path) else {
            if follow { return 0 }
            throw UsageError("\(path): no log yet (the definition has not run)")
        }
        var text = String(decoding: data, as: UTF8.self)
        if let count {
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            text = lines.suffix(count + (text.hasSuffix("\n") ? 1 : 0)).joined(separator: "\n")
        }
        Posix.writeStandardOutput(Array(TerminalText.escaped(text, keepingNewlines: true).utf8))
        return UInt64(data.count)
    }

    /// Prints the whole lines added since `offset` (escaped like the rest: a log written by an
    /// older plugsync, or by someone else, may hold raw escapes); a line still being written
    /// waits for the next call, or for `final`.
    private func appendNew(_ path: String, from offset: UInt64, final: Bool = false) -> UInt64 {
        guard let data = Posix.readFile(path, from: Int(offset)) else { return offset }
        let end = final ? data.count : (data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0)
        if end > 0 {
            let text = String(decoding: data[..<end], as: UTF8.self)
            Posix.writeStandardOutput(Array(TerminalText.escaped(text, keepingNewlines: true).utf8))
        }
        return offset + UInt64(end)
    }
}
