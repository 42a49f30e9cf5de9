import FoundationEssentials
import PlugSync
import SystemSupport

// `--json`: what the commands print as JSON objects, one per line, keys sorted and in
// snake_case (README, "JSON output", describes each field). A field without a value is `null`,
// never left out.

/// Prints a value as one line of JSON on standard output.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.dateEncodingStrategy = .iso8601
    let data = try encoder.encode(value)
    Posix.writeStandardOutput(Array(data) + [UInt8(ascii: "\n")])
}

/// An optional field written as `null` when it has no value.
@propertyWrapper
struct OrNull<Value: Encodable>: Encodable {
    var wrappedValue: Value?
    init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }
    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}

struct DriveJSON: Encodable {
    /// How `status` names the drive.
    var name: String
    @OrNull var label: String?
    @OrNull var uuid: String?
    @OrNull var serial: String?
    @OrNull var device: String?
    /// What its File Check file held.
    @OrNull var check: String?

    init(_ drive: DriveIdentity, name: String? = nil) {
        self.name = name ?? drive.name
        label = drive.label
        uuid = drive.uuid
        serial = drive.serial
        device = drive.device
        check = drive.check
    }
}

/// One recorded run.
struct RunJSON: Encodable {
    var started: Date
    var ended: Date
    var durationSeconds: Double
    var trigger: String
    var result: String
    var exitCode: Int32
    var copied: Int
    var deleted: Int
    var skipped: Int
    var failed: Int
    var bytes: Int64
    var message: String
    @OrNull var drive: DriveJSON?

    init(_ run: RunRecord, driveName: String? = nil) {
        started = run.started
        ended = run.ended
        durationSeconds = run.seconds
        trigger = run.trigger
        result = run.result
        exitCode = RunOutcome.Status(rawValue: run.result).map { RunOutcome.exitCode(for: $0) } ?? 2
        copied = run.transferred
        deleted = run.deleted
        skipped = run.skipped
        failed = run.failed
        bytes = run.bytes
        message = run.message
        drive = run.drive.map { DriveJSON($0, name: driveName) }
    }
}

/// A drive a definition rotates through, with its own last run and `max_age`.
struct DriveStatusJSON: Encodable {
    var drive: DriveJSON
    var lastRun: RunJSON
    @OrNull var lastSuccess: RunJSON?
    var overdue: Bool
    @OrNull var overdueSeconds: Double?
}

/// A definition in `status`.
struct DefinitionStatusJSON: Encodable {
    var name: String
    var enabled: Bool
    var running: Bool
    /// "schedule", "on mount", "manual" or "disabled".
    var starts: String
    @OrNull var nextRun: Date?
    @OrNull var maxAgeSeconds: Int?
    var overdue: Bool
    @OrNull var overdueSeconds: Double?
    @OrNull var lastRun: RunJSON?
    @OrNull var lastSuccess: RunJSON?
    var drives: [DriveStatusJSON]
}

struct StatusJSON: Encodable {
    var definitions: [DefinitionStatusJSON]
    var agent: AgentJSON
}

/// The agent running for this state folder, if any.
struct AgentJSON: Encodable {
    var running: Bool
    @OrNull var pid: Int?
    @OrNull var config: String?
    var followsThisFile: Bool
}

/// `status NAME --json`.
struct HistoryJSON: Encodable {
    var definition: DefinitionStatusJSON
    var runs: [RunJSON]
}

/// A definition in `list`.
struct DefinitionJSON: Encodable {
    var name: String
    var enabled: Bool
    var type: String
    @OrNull var group: String?
    @OrNull var description: String?
    var source: String
    var destination: String
    var runsOnMount: Bool
    @OrNull var nextRun: Date?
    @OrNull var maxAgeSeconds: Int?
    @OrNull var logFile: String?
}

struct ListJSON: Encodable {
    var definitions: [DefinitionJSON]
}

struct DeviceMatchJSON: Encodable {
    var definition: String
    /// "source" or "destination".
    var role: String
    /// "passed", "failed", "not mounted", or null when the endpoint has no File Check.
    @OrNull var fileCheck: String?
}

struct DeviceJSON: Encodable {
    var device: String
    @OrNull var fsType: String?
    @OrNull var label: String?
    @OrNull var uuid: String?
    @OrNull var serial: String?
    var mountPoints: [String]
    var matches: [DeviceMatchJSON]
}

struct DevicesJSON: Encodable {
    var devices: [DeviceJSON]
    /// False when udev told nothing of any device (no systemd-udevd).
    var udevData: Bool
}

struct EndpointCheckJSON: Encodable {
    var role: String
    var ok: Bool
    @OrNull var fileCheck: String?
    @OrNull var root: String? = nil
    @OrNull var drive: DriveJSON? = nil
    /// "exists", "empty" or "missing" (the folder does not exist yet); null when not reached.
    @OrNull var folder: String? = nil
    @OrNull var problem: String? = nil
}

struct CheckJSON: Encodable {
    var definition: String
    var ok: Bool
    var endpoints: [EndpointCheckJSON]
}

/// One definition's run in `run --json`.
struct RunResultJSON: Encodable {
    var definition: String
    var result: String
    var exitCode: Int32
    var dryRun: Bool
    var trigger: String
    var started: Date
    var durationSeconds: Double
    var copied: Int
    var deleted: Int
    var skipped: Int
    var failed: Int
    var foldersCreated: Int
    var notStarted: Int
    var bytes: Int64
    var message: String
    var summary: String
    @OrNull var drive: DriveJSON?
    var failures: [FailureJSON]
    /// More entries failed than `failures` lists.
    var failuresTruncated: Bool

    struct FailureJSON: Encodable {
        var path: String
        var reason: String
    }

    init(_ outcome: RunOutcome, dryRun: Bool, trigger: String) {
        let s = outcome.statistics
        definition = outcome.name
        result = outcome.status.rawValue
        exitCode = outcome.exitCode
        self.dryRun = dryRun
        self.trigger = trigger
        started = outcome.started
        durationSeconds = outcome.seconds
        copied = s.transferred
        deleted = s.deleted
        skipped = s.skipped
        failed = s.failed
        foldersCreated = s.foldersCreated
        notStarted = s.notStarted
        bytes = s.bytes
        message = outcome.message
        summary = outcome.summary
        drive = outcome.drive.map { DriveJSON($0) }
        failures = outcome.failures.map { FailureJSON(path: $0.path, reason: $0.reason) }
        failuresTruncated = s.failed > outcome.failures.count
    }
}
