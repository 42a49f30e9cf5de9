import FoundationEssentials
import SyncEngine
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A plain-text log that every run of a definition appends to, one timestamped line each.
public final class LogFile {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var stampSecond = -1
    private var stamp = ""

    /// Opens (creates) the log without following a symbolic link another user owns
    /// (`FileTrust.openForAppend` says how); throws a UsageError naming the path and the problem.
    public init(path: String) throws {
        fd = try FileTrust.openForAppend(path)
    }

    deinit {
        flush()
        close(fd)
    }

    /// Appends one line behind the local time, `2026-11-22 18:30:02 `.
    public func append(_ line: String) {
        var now = time(nil)
        if Int(now) != stampSecond {
            stampSecond = Int(now)
            var parts = tm()
            localtime_r(&now, &parts)
            var text = [CChar](repeating: 0, count: 32)
            strftime(&text, text.count, "%Y-%m-%d %H:%M:%S ", &parts)
            stamp = String(cString: text)
        }
        buffer.append(contentsOf: stamp.utf8)
        buffer.append(contentsOf: line.utf8)
        buffer.append(UInt8(ascii: "\n"))
        if buffer.count > 1 << 16 { flush() }
    }

    public func flush() {
        writeAll(fd, buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
        if n < 0 {
            if errno == EINTR { continue }
            return
        }
        offset += n
    }
}

/// How much of a run's report a terminal (standard output) gets.
public enum Verbosity: Int, Sendable, Comparable {
    /// Nothing (the agent: its runs' lines go to their log files, their summaries to its log).
    case silent
    /// Only failures and errors (standard error); the command prints the summary.
    case quiet
    /// The changes, the failures and the summary: entries already up to date are left out.
    case normal
    /// The full report: a line for every entry, up to date or not.
    case verbose

    public static func < (a: Verbosity, b: Verbosity) -> Bool { a.rawValue < b.rawValue }
}

/// An entry that failed in a run: its path and why.
public struct FailedEntry: Sendable, Equatable {
    public var path: String
    public var reason: String
}

/// Receives a run's events and writes them: action lines to standard output, failures and
/// errors to standard error (even when quiet), the same lines with timestamps to the log file,
/// and a progress bar on a terminal. Lines for entries left as they are (up to date) only go to
/// a verbose terminal and a full log.
public final class RunReporter: RunObserver, @unchecked Sendable {
    private let lock = Lock()
    private var formatter: ActionFormatter?
    private let terminal: Verbosity
    private let log: LogFile?
    private let logFull: Bool
    private var out: [UInt8] = []
    private var progress: Progress?
    /// Where the report's lines go: 1 (standard output), or 2 when standard output is kept for
    /// something else (`run --json`).
    private let output: Int32
    /// The failed entries so far, the first `failureLimit` of them.
    public var failures: [FailedEntry] { lock.withLock { failed } }
    private var failed: [FailedEntry] = []
    public static let failureLimit = 1000

    struct Progress {
        var totalFiles: Int
        var totalBytes: Int64
        var files = 0
        var bytes: Int64 = 0
        var started = Date()
        var lastDraw = Date(timeIntervalSince1970: 0)
        var shown = false
    }

    public init(terminal: Verbosity, log: LogFile?, logLevel: LogLevel = .normal, output: Int32 = 1) {
        self.output = output
        self.terminal = terminal
        self.log = log
        self.logFull = logLevel == .full
    }

    /// Sets how actions are worded, and shows a progress bar for a plan of this size when
    /// standard output and standard error are a terminal.
    public func begin(formatter: ActionFormatter, files: Int, bytes: Int64) {
        lock.lock()
        self.formatter = formatter
        if terminal > .quiet && isatty(output) == 1 && isatty(2) == 1 {
            progress = Progress(totalFiles: files, totalBytes: bytes)
        }
        lock.unlock()
    }

    /// A line that is not an action: headers, the summary.
    public func say(_ line: String) {
        lock.lock()
        emit(line)
        lock.unlock()
    }

    /// A line about something that went wrong: standard error (quiet or not) and the log.
    public func sayError(_ line: String) {
        lock.lock()
        emitError(line)
        lock.unlock()
    }

    /// Phase timings on stderr when `PLUGSYNC_TIMING` is set.
    public func phase(_ name: String) {
        lock.lock()
        timer.mark(name)
        lock.unlock()
    }
    private var timer = PhaseTimer()

    /// A line for the log file only (refusals, which the command line prints on stderr).
    public func logOnly(_ line: String) {
        lock.lock()
        log?.append(TerminalText.escaped(line))
        lock.unlock()
    }

    // Every line passes `TerminalText.escaped` on its way out: it may quote a drive's label or
    // mount point, a file name or a server's reply, and none of them may drive the terminal.
    private func emit(_ text: String, toLog: Bool = true, toTerminal: Bool? = nil) {
        let line = TerminalText.escaped(text)
        if toLog { log?.append(line) }
        guard toTerminal ?? (terminal > .quiet) else { return }
        out.append(contentsOf: line.utf8)
        out.append(UInt8(ascii: "\n"))
        if progress == nil && out.count > 1 << 16 { flushOut() }
    }

    /// Standard error, after what standard output holds so far (the two often share a terminal,
    /// and the failure belongs where it happened among the other lines).
    private func emitError(_ text: String) {
        let line = TerminalText.escaped(text)
        log?.append(line)
        guard terminal > .silent else { return }
        clearBar()
        flushOut()
        writeAll(2, Array((line + "\n").utf8))
    }

    public func finished(_ action: Action, outcome: Outcome) {
        lock.lock()
        defer { lock.unlock() }
        guard let formatter else { return }
        switch ActionFormatter.lineKind(for: action, outcome: outcome) {
        case .failure:
            emitError(formatter.line(for: action, outcome: outcome))
            if failed.count < Self.failureLimit {
                failed.append(
                    FailedEntry(path: action.path.description, reason: formatter.reason(for: action, outcome: outcome)))
            }
        case .change:
            emit(formatter.line(for: action, outcome: outcome))
        case .unchanged:
            // The line a no-op run repeats for every entry: made only where it goes.
            if logFull {
                emit(formatter.line(for: action, outcome: outcome), toTerminal: terminal == .verbose)
            } else if terminal == .verbose {
                let start = out.count
                formatter.appendLine(for: action, outcome: outcome, to: &out)
                // A name may hold anything: escaped like every line (the bytes are looked at; a
                // String is made only for a line that needs it).
                if !Self.isPrintableASCII(out, start..<(out.count - 1)) {
                    let line = String(decoding: out[start..<(out.count - 1)], as: UTF8.self)
                    out.replaceSubrange(start..<(out.count - 1), with: TerminalText.escaped(line).utf8)
                }
                if progress == nil && out.count > 1 << 16 { flushOut() }
            }
        }
        if case .stopped = outcome { return }  // not started: no progress
        if progress != nil, action.kind == .transfer || action.kind == .replace {
            progress!.files += 1
            drawIfDue()
        }
    }

    /// Whether the bytes in `range` are all printable ASCII (0x20-0x7e). The line of every entry
    /// of a run goes through it, so eight bytes are looked at at once: a byte below 0x20 shows
    /// in `(w - 0x20…) & ~w`, one of 0x7f or above in `(w + 0x01…) | w`, each in its high bit.
    static func isPrintableASCII(_ bytes: [UInt8], _ range: Range<Int>) -> Bool {
        bytes.withUnsafeBytes { raw in
            let ones: UInt64 = 0x0101_0101_0101_0101
            let high: UInt64 = 0x8080_8080_8080_8080
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                let w = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                if ((w &- ones &* 0x20) & ~w | (w &+ ones) | w) & high != 0 { return false }
                i += 8
            }
            while i < range.upperBound {
                if raw[i] < 0x20 || raw[i] >= 0x7f { return false }
                i += 1
            }
            return true
        }
    }

    public func versioned(_ path: FileName, reason: Reason) {
        lock.lock()
        defer { lock.unlock() }
        guard let formatter else { return }
        emit(
            ActionFormatter.format(
                verb: "Versioning", reason: reason.text(side: formatter.side), path: path.description))
    }

    public func retrying(_ action: Action, error: String, delay: Double) {
        say("Retrying    (\(error)) \(action.path) in \(delay) s")
    }

    public func removedTemporaryFile(_ path: FileName, folder: Bool) {
        say(
            ActionFormatter.format(
                verb: "Removing", reason: "temporary \(folder ? "folder" : "file") of an interrupted run",
                path: path.description + (folder ? "/" : "")))
    }

    public func transferred(bytes: Int64) {
        guard progress != nil else { return }
        lock.lock()
        progress!.bytes += bytes
        drawIfDue()
        lock.unlock()
    }

    private func drawIfDue() {
        let now = Date()
        guard var p = progress, now.timeIntervalSince(p.lastDraw) >= 0.1 else { return }
        p.lastDraw = now
        clearBar()
        flushOut()
        let elapsed = max(now.timeIntervalSince(p.started), 0.001)
        let rate = Double(p.bytes) / elapsed
        let fraction =
            p.totalBytes > 0 ? Double(p.bytes) / Double(p.totalBytes) : Double(p.files) / Double(max(p.totalFiles, 1))
        let width = 24
        let filled = min(width, Int(fraction * Double(width)))
        let eta = rate > 0 && p.totalBytes > p.bytes ? Double(p.totalBytes - p.bytes) / rate : 0
        let bar =
            "[" + String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled) + "] "
            + "\(p.files)/\(p.totalFiles) files  \(formatBytes(p.bytes))/\(formatBytes(p.totalBytes))  "
            + "\(formatBytes(Int64(rate)))/s  ETA \(Int(eta.rounded()))s"
        writeAll(2, Array(bar.utf8))
        p.shown = true
        progress = p
    }

    private func clearBar() {
        if progress?.shown == true {
            writeAll(2, Array("\r\u{1B}[K".utf8))
            progress!.shown = false
        }
    }

    private func flushOut() {
        if out.isEmpty { return }
        writeAll(output, out)
        out.removeAll(keepingCapacity: true)
    }

    /// Writes what is buffered and removes the progress bar.
    public func flush() {
        lock.lock()
        clearBar()
        progress = nil
        flushOut()
        log?.flush()
        lock.unlock()
    }
}

/// `12.3 MiB`, `512 B`.
public func formatBytes(_ bytes: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : formatFixed(value, decimals: 1) + " " + units[unit]
}
