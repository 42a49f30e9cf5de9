import FTPBackend
import SyncEngine

/// One named sync job, as the definitions file holds it.
public struct Definition: Sendable, Equatable {
    public var name: String
    public var description: String?
    public var group: String?
    public var type: SyncType = .backup
    public var recursive = true
    /// The deletion safety rail of a mirror; 50 % of the destination's entries by default.
    public var maxDelete: MaxDelete = .percent(50)
    public var source: EndpointSpec
    public var destination: EndpointSpec
    public var ignore: [String] = []
    public var logFile: String?
    /// What `log_file` gets: the lines a run prints (`normal`) or the full report (`full`, with
    /// a line for every file that was already up to date).
    public var logLevel: LogLevel = .normal
    public var schedule: [ScheduleRule] = []
    /// Run when a matching drive is mounted; nil means "when an endpoint is a device".
    public var onMount: Bool?
    public var enabled = true
    /// Files transferred at once; nil lets the engine choose.
    public var parallel: Int?
    /// Shell commands run around each run (`/bin/sh -c`), with the run's facts in `PLUGSYNC_*`
    /// environment variables: `before` (a failure refuses the run), `after` (every run),
    /// `on_error` (runs that did not succeed).
    public var hooks = HookCommands()
    /// Overdue when the last successful run is older than this many seconds (`max_age`).
    public var maxAge: Int?
    /// Where to tell about runs (`notify:`); nil when the definition has none.
    public var notify: NotifySettings?
    /// Keep what runs replace or delete in `.plugsync-versions` on the destination (`versions:`);
    /// nil keeps nothing.
    public var versions: VersionPolicy?
    /// Read each file a run copies back from the destination and compare it with what was sent
    /// before it gets its final name (`verify: true`).
    public var verify = false

    public init(name: String, source: EndpointSpec, destination: EndpointSpec) {
        self.name = name
        self.source = source
        self.destination = destination
    }

    /// Why `name` cannot name a definition (it names log files and locks too), nil when it can.
    public static func nameProblem(_ name: String) -> String? {
        if name.isEmpty || name.first == "-" || !name.utf8.allSatisfy({ ASCII.isNameCharacter($0) }) {
            return "\"\(name)\" may use only letters, digits, '.', '_' and '-'"
        }
        return nil
    }

    /// Whether a mount of a matching drive starts this definition.
    public var runsOnMount: Bool {
        onMount ?? (source.location.isDevice || destination.location.isDevice)
    }
}

/// How much of a run's report goes to its log file.
public enum LogLevel: String, Sendable, Equatable, CaseIterable {
    /// What `plugsync run` prints: the changes, the failures and the summary.
    case normal
    /// The full report, as `plugsync run --verbose` prints it.
    case full
}

/// The most a mirror may delete in one run before it refuses (unless forced).
/// An endpoint with its optional File Check.
public struct EndpointSpec: Sendable, Equatable {
    public var location: Location
    public var fileCheck: FileCheck?

    public init(_ location: Location, fileCheck: FileCheck? = nil) {
        self.location = location
        self.fileCheck = fileCheck
    }
}

/// Where an endpoint's files live.
public enum Location: Sendable, Equatable {
    case local(path: String)
    case device(DeviceSpec)
    /// A server (FTP, SFTP, …): logged in to, listed while the local side lists.
    case server(any ServerSpec)

    public var isDevice: Bool {
        if case .device = self { return true }
        return false
    }

    public var server: (any ServerSpec)? {
        if case .server(let spec) = self { return spec }
        return nil
    }

    public var isRemote: Bool { server != nil }

    public static func == (a: Location, b: Location) -> Bool {
        switch (a, b) {
        case (.local(let x), .local(let y)): return x == y
        case (.device(let x), .device(let y)): return x == y
        case (.server(let x), .server(let y)): return x.isEqual(to: y)
        default: return false
        }
    }

    /// A one-line description for listings; never holds a password.
    public var summary: String {
        switch self {
        case .local(let path): return path
        case .device(let device): return device.summary
        case .server(let server): return server.summary
        }
    }
}

/// A removable drive, recognized by any of its identities and/or its File Check.
public struct DeviceSpec: Sendable, Equatable {
    public var label: String?
    public var uuid: String?
    public var serial: String?
    /// A folder inside the drive's mount point ("" for the root).
    public var directory = ""
    /// `auto`: the agent mounts the drive itself under /run/plugsync/ and unmounts it after.
    public var mountAuto = false
    /// After the mount-triggered runs, unmount the drive (one that someone else mounted).
    public var unmountAfter = false
    /// After the mount-triggered runs, unmount the drive and power it off (`udisksctl power-off`).
    public var powerOffAfter = false

    public init(label: String? = nil, uuid: String? = nil, serial: String? = nil, directory: String = "") {
        self.label = label
        self.uuid = uuid
        self.serial = serial
        self.directory = directory
    }

    public var summary: String {
        var parts: [String] = []
        if let label { parts.append("label=\(label)") }
        if let uuid { parts.append("uuid=\(uuid)") }
        if let serial { parts.append("serial=\(serial)") }
        if parts.isEmpty { parts.append("file check") }
        return "device(\(parts.joined(separator: ","))):/" + directory
    }
}

/// The `hooks:` of a definition.
public struct HookCommands: Sendable, Equatable {
    public var before: String?
    public var after: String?
    public var onError: String?
    public init(before: String? = nil, after: String? = nil, onError: String? = nil) {
        self.before = before
        self.after = after
        self.onError = onError
    }
    public var isEmpty: Bool { before == nil && after == nil && onError == nil }
}

/// The `notify:` of a definition: desktop notifications (`desktop`), a healthchecks-style ping
/// URL, and the events both are for.
public struct NotifySettings: Sendable, Equatable {
    /// What a notification is sent for.
    public enum Event: String, Sendable, CaseIterable {
        case start, success, failure, overdue, removable
    }
    public static let defaultEvents: [Event] = [.failure, .overdue, .removable]

    public var desktop: Bool?
    /// Pinged as `URL/start`, `URL` (success) and `URL/fail` (failure, refusal, overdue).
    public var url: String?
    /// In the order of `Event.allCases`, without repeats.
    public var events: [Event] = NotifySettings.defaultEvents

    /// `url` to be shown: its scheme and host only. A ping URL's path is its secret (whoever has
    /// it can report a backup as done), and a user name and password may come before the host.
    public var shownURL: String? {
        guard let url else { return nil }
        let parts = url.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return "…" }
        let rest = parts[1]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let host = authority.split(separator: "@", omittingEmptySubsequences: false).last.map(String.init) ?? ""
        let hidden = authority.count < rest.count || authority.contains("@")
        return parts[0] + "://" + host + (hidden ? "/…" : "")
    }

    public init(desktop: Bool? = nil, url: String? = nil, events: [Event] = NotifySettings.defaultEvents) {
        self.desktop = desktop
        self.url = url
        self.events = events
    }

    public func wants(_ event: Event) -> Bool { events.contains(event) }
}

/// The optional top-level `settings:` of the definitions file.
public struct FileSettings: Sendable, Equatable {
    /// A Prometheus textfile (node exporter's textfile collector) rewritten after every run.
    public var metricsFile: String?
    public init(metricsFile: String? = nil) { self.metricsFile = metricsFile }
}

/// `30m`, `12h`, `7d`: a duration in seconds, and back.
public enum AgeText {
    static let units: [(Character, Int)] = [("d", 86400), ("h", 3600), ("m", 60)]

    /// Minutes, hours or days, up to 10 years; nil for anything else.
    public static func seconds(_ text: String) -> Int? {
        guard let unit = text.last, let (_, size) = units.first(where: { $0.0 == unit }),
            let value = Int(text.dropLast()), value > 0, value <= 3650 * 86400 / size
        else { return nil }
        return value * size
    }

    /// The largest unit that divides `seconds` exactly.
    public static func text(_ seconds: Int) -> String {
        for (unit, size) in units where seconds % size == 0 { return "\(seconds / size)\(unit)" }
        return "\(max(1, seconds / 60))m"
    }

    /// `9 days`, `5 hours`, `40 minutes`: how long ago, in the largest whole unit.
    public static func spoken(_ seconds: Double) -> String {
        let whole = max(0, Int(seconds))
        for (name, size) in [("day", 86400), ("hour", 3600)] where whole >= size {
            let n = whole / size
            return "\(n) \(name)\(n == 1 ? "" : "s")"
        }
        let n = whole / 60
        return "\(n) minute\(n == 1 ? "" : "s")"
    }
}
