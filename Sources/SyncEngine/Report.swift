/// What happened to one planned action.
public enum Outcome: Sendable {
    case done
    /// Shown with `--dry-run`: the action was planned, nothing was changed.
    case planned
    /// Not done, and not a failure (an orphan folder that still holds ignored entries; a
    /// symbolic link for a destination that cannot store one).
    case kept(String)
    case failed(String)
    /// Not started: the run was asked to stop (Ctrl-C, SIGTERM) before it came to this entry.
    case stopped
}

/// Receives every action as it finishes, and byte progress. Called from several threads.
public protocol SyncObserver: AnyObject, Sendable {
    func finished(_ action: Action, outcome: Outcome)
    func removedTemporaryFile(_ path: FileName, folder: Bool)
    func transferred(bytes: Int64)
    /// A transfer failed with a transient error and will be tried again after `delay` seconds.
    func retrying(_ action: Action, error: String, delay: Double)
    /// What was at `path` went to the versions folder (or will, in a dry run) before the
    /// action replaced or deleted it: heard just before the action's own line.
    func versioned(_ path: FileName, reason: Reason)
}

extension SyncObserver {
    public func retrying(_ action: Action, error: String, delay: Double) {}
    public func versioned(_ path: FileName, reason: Reason) {}
}

/// Counts of one run, for the summary line and the run history.
public struct SyncStatistics: Sendable, Equatable {
    public var transferred = 0
    public var bytes: Int64 = 0
    public var foldersCreated = 0
    public var deleted = 0
    /// Files and links moved to the versions folder before they were replaced or deleted.
    public var versioned = 0
    /// Versions pruned after the run (`keep_days`, `keep_max`).
    public var pruned = 0
    public var skipped = 0
    public var failed = 0
    public var temporaryFilesRemoved = 0
    /// Why the executor stopped early (the destination drive went away), if it did.
    public var stoppedBecause: String?
    /// Entries not started because the run was asked to stop (`Cancellation`).
    public var notStarted = 0
    /// Why the real run would be refused: a dry run that a safety rail would stop still shows
    /// its whole plan, and says why.
    public var refusal: String?

    public init() {}
}

/// Formats action lines in the report's established style:
/// `Copying     (destination file not found)     about.html`.
public struct ActionFormatter: Sendable {
    /// "Skipping    (destination file is up to date)    ", the line a no-op run repeats.
    private var skipPrefix = ""
    /// The word for the destination side in reasons: "destination", "remote" or "local".
    public var side: String
    /// The verb for a transfer: "Copying", "Uploading" or "Downloading".
    public var transferVerb: String

    public init(source: EndpointCapabilities, destination: EndpointCapabilities) {
        if destination.isRemote {
            side = "remote"
            transferVerb = "Uploading"
        } else if source.isRemote {
            side = "local"
            transferVerb = "Downloading"
        } else {
            side = "destination"
            transferVerb = "Copying"
        }
        skipPrefix = Self.format(verb: "Skipping", reason: Reason.upToDate.text(side: side), path: "")
    }

    /// What an action's line tells: a change (shown by default), an entry left as it is (the
    /// full report only: up to date, or kept), or a failure (shown always, on standard error).
    public enum LineKind: Sendable, Equatable {
        case change, unchanged, failure
    }

    public static func lineKind(for action: Action, outcome: Outcome) -> LineKind {
        switch outcome {
        case .failed: return .failure
        case .kept, .stopped: return .unchanged
        case .done, .planned:
            if action.kind == .conflict { return .failure }
            if case .planned = outcome, action.reason == .namesDifferInCase { return .failure }
            return action.kind == .skip ? .unchanged : .change
        }
    }

    public func verb(for action: Action, outcome: Outcome) -> String {
        switch outcome {
        case .failed: return "Failed"
        case .kept: return action.kind == .transfer ? "Skipping" : "Keeping"
        case .stopped: return "Not done"
        default: break
        }
        switch action.kind {
        case .transfer: return transferVerb
        case .createFolder: return "Creating"
        case .delete: return "Deleting"
        case .skip: return "Skipping"
        case .replace: return "Replacing"
        case .conflict: return "Failed"
        case .link: return "Linking"
        }
    }

    /// Appends the action's line and a newline to `buffer`: the bytes of `line(for:outcome:)`,
    /// without making a String for the skip lines that fill a no-op run.
    public func appendLine(for action: Action, outcome: Outcome, to buffer: inout [UInt8]) {
        if action.kind == .skip, action.reason == .upToDate {
            switch outcome {
            case .done, .planned:
                let appended = action.path.withBytes { path -> Bool in
                    guard path.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else { return false }
                    buffer.append(contentsOf: skipPrefix.utf8)
                    buffer.append(contentsOf: path)
                    buffer.append(UInt8(ascii: "\n"))
                    return true
                }
                if appended { return }
            default: break
            }
        }
        buffer.append(contentsOf: line(for: action, outcome: outcome).utf8)
        buffer.append(UInt8(ascii: "\n"))
    }

    public func line(for action: Action, outcome: Outcome) -> String {
        var path = action.path.description
        if action.kind == .createFolder || (action.destination?.kind == .directory && action.kind == .delete)
            || (action.reason == .namesDifferInCase && action.source?.kind == .directory)
        {
            path += "/"
        }
        switch (outcome, action.kind, action.reason) {
        case (.done, .skip, .upToDate), (.planned, .skip, .upToDate):
            return skipPrefix + path  // the common line of a no-op run, made once
        case (.failed, _, .namesDifferInCase), (.planned, _, .namesDifferInCase), (.failed, _, _):
            return Self.format(verb: "Failed", reason: reason(for: action, outcome: outcome), path: path)
        case (.stopped, _, _):
            return Self.format(verb: "Not done", reason: reason(for: action, outcome: outcome), path: path)
        default:
            return Self.format(
                verb: verb(for: action, outcome: outcome), reason: reason(for: action, outcome: outcome), path: path)
        }
    }

    /// The words between the parentheses of the action's line: why it was done, or why it failed.
    public func reason(for action: Action, outcome: Outcome) -> String {
        switch (outcome, action.kind, action.reason) {
        case (.failed, _, .namesDifferInCase), (.planned, _, .namesDifferInCase):
            // `destination` is the entry synchronized under the other spelling.
            let kept = action.destination?.name.description ?? "another"
            let name = action.source?.name.description ?? action.path.description
            return "the \(side) cannot hold both \(kept) and \(name): names differ only in case"
        case (.failed(let message), _, _): return action.reason.text(side: side) + "; " + message
        case (.kept(let message), _, _): return message
        case (.stopped, _, _): return "the run was stopped before it"
        default: return action.reason.text(side: side)
        }
    }

    public static func format(verb: String, reason: String, path: String) -> String {
        var line = verb.padding(toLength: 12)
        line.reserveCapacity(64 + path.utf8.count)
        line += "(" + reason + ")"
        if line.utf8.count < 47 { line += String(repeating: " ", count: 47 - line.utf8.count) }
        return line + " " + path
    }
}

extension String {
    func padding(toLength length: Int) -> String {
        count >= length ? self : self + String(repeating: " ", count: length - count)
    }
}
