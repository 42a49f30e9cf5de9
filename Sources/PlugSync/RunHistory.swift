import CSQLite
import FoundationEssentials

/// The drive a run used: its identity as udev told it when the run began.
public struct DriveIdentity: Sendable, Hashable {
    public var label: String?
    public var uuid: String?
    public var serial: String?
    /// The device node (`/dev/sdb1`) or, for a mount udev knows nothing of, the mount's source.
    public var device: String?
    /// What the drive's File Check file holds (`FileCheck.contentName`), when the definition
    /// checks one: drives cloned from one another share a UUID, but not what `init-drive` wrote.
    public var check: String?

    public init(
        label: String? = nil, uuid: String? = nil, serial: String? = nil, device: String? = nil, check: String? = nil
    ) {
        self.label = label
        self.uuid = uuid
        self.serial = serial
        self.device = device
        self.check = check
    }

    /// What tells this drive from the others a definition rotates through: the filesystem's
    /// UUID, else the serial number, else the label, else the device; and the content of its
    /// File Check file, where the definition has one.
    public var key: String { baseKey + (check.map { " check:" + $0 } ?? "") }

    /// The key without the File Check's content, as runs recorded before it was kept have it.
    public var baseKey: String {
        if let uuid { return "uuid:" + uuid.lowercased() }
        if let serial { return "serial:" + serial }
        if let label { return "label:" + label }
        return "device:" + (device ?? "")
    }

    /// A short name for tables: the label, else the UUID, the serial or the device.
    public var name: String { label ?? uuid ?? serial ?? device ?? "-" }
}

/// One finished run, as `status` shows it.
public struct RunRecord: Sendable, Equatable {
    public var definition: String
    public var trigger: String
    public var started: Date
    public var seconds: Double
    /// "success", "failures", "refused", "error" or "stopped".
    public var result: String
    public var transferred: Int
    public var deleted: Int
    public var skipped: Int
    public var failed: Int
    public var bytes: Int64
    public var message: String
    /// The drive the run used (a device endpoint), nil for a run without one and for runs
    /// recorded before drives were.
    public var drive: DriveIdentity?

    public init(
        definition: String, trigger: String, started: Date, seconds: Double, result: String, transferred: Int = 0,
        deleted: Int = 0, skipped: Int = 0, failed: Int = 0, bytes: Int64 = 0, message: String = "",
        drive: DriveIdentity? = nil
    ) {
        self.definition = definition
        self.trigger = trigger
        self.started = started
        self.seconds = seconds
        self.result = result
        self.transferred = transferred
        self.deleted = deleted
        self.skipped = skipped
        self.failed = failed
        self.bytes = bytes
        self.message = message
        self.drive = drive
    }

    /// When the run ended.
    public var ended: Date { started.addingTimeInterval(seconds) }
}

/// Every run, in SQLite (`<state>/history.sqlite`), through the system library.
public final class RunHistory {
    private var db: OpaquePointer?
    public let path: String

    public init(stateDirectory: String) throws {
        path = stateDirectory + "/history.sqlite"
        if sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nil)
            != SQLITE_OK
        {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(db)
            throw UsageError("cannot open the run history \(path): \(message)")
        }
        sqlite3_busy_timeout(db, 5000)
        // The WAL file stays between runs (emptied at the checkpoint of each close), so a run
        // neither creates nor unlinks it: 3 fdatasync per run instead of 4.
        var persist: Int32 = 1
        sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist)
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=NORMAL")
        try execute(
            """
            CREATE TABLE IF NOT EXISTS runs (
              id INTEGER PRIMARY KEY, definition TEXT NOT NULL, trigger TEXT NOT NULL,
              started REAL NOT NULL, seconds REAL NOT NULL, result TEXT NOT NULL,
              transferred INTEGER NOT NULL, deleted INTEGER NOT NULL, skipped INTEGER NOT NULL,
              failed INTEGER NOT NULL, bytes INTEGER NOT NULL, message TEXT NOT NULL)
            """)
        try execute("CREATE INDEX IF NOT EXISTS runs_by_definition ON runs(definition, started)")
        // The drive of each run, added to histories written before: their runs have none.
        // Another plugsync may add them at the same moment: only a column still missing is an error.
        let present = Set(strings("PRAGMA table_info(runs)", column: 1))
        for column in Self.driveColumns where !present.contains(column) {
            do {
                try execute("ALTER TABLE runs ADD COLUMN \(column) TEXT")
            } catch {
                if !strings("PRAGMA table_info(runs)", column: 1).contains(column) { throw error }
            }
        }
        try execute("CREATE INDEX IF NOT EXISTS runs_by_drive ON runs(definition, drive_key, started)")
        // Drives a user retired (`forget-drive`): left out of rotation until they run again.
        try execute(
            "CREATE TABLE IF NOT EXISTS forgotten_drives (definition TEXT NOT NULL, drive_key TEXT NOT NULL, at REAL NOT NULL)"
        )
    }

    static let driveColumns = ["drive_key", "drive_label", "drive_uuid", "drive_serial", "drive_device", "drive_check"]
    static let columns =
        "definition, trigger, started, seconds, result, transferred, deleted, skipped, failed, bytes, message, "
        + driveColumns.joined(separator: ", ")

    /// One text column of every row a statement without parameters gives.
    private func strings(_ sql: String, column: Int32) -> [String] {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK else { return [] }
        defer { sqlite3_finalize(statement) }
        var values: [String] = []
        while sqlite3_step(statement) == SQLITE_ROW {
            if let text = sqlite3_column_text(statement, column) { values.append(String(cString: text)) }
        }
        return values
    }

    deinit { sqlite3_close(db) }

    private func execute(_ sql: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &error) != SQLITE_OK {
            let message = error.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(error)
            throw UsageError("run history \(path): \(message)")
        }
    }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    public func record(_ run: RunRecord) throws {
        var statement: OpaquePointer?
        if let drive = run.drive, drive.check != nil { adoptUncheckedRuns(of: run.definition, for: drive) }
        let sql = "INSERT INTO runs (\(Self.columns)) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK else {
            throw UsageError("run history \(path): \(String(cString: sqlite3_errmsg(db)))")
        }
        defer { sqlite3_finalize(statement) }
        sqlite3_bind_text(statement, 1, run.definition, -1, Self.transient)
        sqlite3_bind_text(statement, 2, run.trigger, -1, Self.transient)
        sqlite3_bind_double(statement, 3, run.started.timeIntervalSince1970)
        sqlite3_bind_double(statement, 4, run.seconds)
        sqlite3_bind_text(statement, 5, run.result, -1, Self.transient)
        sqlite3_bind_int64(statement, 6, Int64(run.transferred))
        sqlite3_bind_int64(statement, 7, Int64(run.deleted))
        sqlite3_bind_int64(statement, 8, Int64(run.skipped))
        sqlite3_bind_int64(statement, 9, Int64(run.failed))
        sqlite3_bind_int64(statement, 10, run.bytes)
        sqlite3_bind_text(statement, 11, run.message, -1, Self.transient)
        let drive = run.drive
        for (index, value) in [drive?.key, drive?.label, drive?.uuid, drive?.serial, drive?.device, drive?.check]
            .enumerated()
        {
            let position = Int32(12 + index)
            if let value {
                sqlite3_bind_text(statement, position, value, -1, Self.transient)
            } else {
                sqlite3_bind_null(statement, position)
            }
        }
        guard sqlite3_step(statement) == SQLITE_DONE else {
            throw UsageError("run history \(path): \(String(cString: sqlite3_errmsg(db)))")
        }
    }

    /// Runs recorded before drives were told apart by their File Check file (under the key
    /// without it) become this drive's, the first time a run on it is recorded with its check:
    /// it is the drive they were made on, unless clones took turns, which nothing recorded
    /// then can tell. Nothing is done once any run has the new key.
    private func adoptUncheckedRuns(of definition: String, for drive: DriveIdentity) {
        let sql = """
            UPDATE runs SET drive_key = ?1, drive_check = ?2
            WHERE definition = ?3 AND drive_key = ?4
              AND NOT EXISTS (SELECT 1 FROM runs WHERE definition = ?3 AND substr(drive_key, 1, length(?4) + 7) = ?4 || ' check:')
            """
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK else { return }
        defer { sqlite3_finalize(statement) }
        for (index, value) in [drive.key, drive.check ?? "", definition, drive.baseKey].enumerated() {
            sqlite3_bind_text(statement, Int32(index + 1), value, -1, Self.transient)
        }
        _ = sqlite3_step(statement)
    }

    /// The most recent runs of a definition (on one drive, given its `key`), newest first.
    public func runs(of definition: String, limit: Int = 1, drive: String? = nil) -> [RunRecord] {
        if let drive {
            return query(
                "WHERE definition = ? AND drive_key = ? ORDER BY started DESC, id DESC LIMIT ?",
                [.text(definition), .text(drive), .integer(limit)])
        }
        return query(
            "WHERE definition = ? ORDER BY started DESC, id DESC LIMIT ?", [.text(definition), .integer(limit)])
    }

    /// The newest run of a definition (on one drive, given its `key`) that ended with `result`
    /// (e.g. "success").
    public func lastRun(of definition: String, result: String, drive: String? = nil) -> RunRecord? {
        if let drive {
            return query(
                "WHERE definition = ? AND result = ? AND drive_key = ? ORDER BY started DESC, id DESC LIMIT 1",
                [.text(definition), .text(result), .text(drive)]
            ).first
        }
        return query(
            "WHERE definition = ? AND result = ? ORDER BY started DESC, id DESC LIMIT 1",
            [.text(definition), .text(result)]
        ).first
    }

    /// The oldest run of a definition (on one drive, given its `key`), whatever its result.
    public func firstRun(of definition: String, drive: String? = nil) -> RunRecord? {
        if let drive {
            return query(
                "WHERE definition = ? AND drive_key = ? ORDER BY started ASC, id ASC LIMIT 1",
                [.text(definition), .text(drive)]
            ).first
        }
        return query("WHERE definition = ? ORDER BY started ASC, id ASC LIMIT 1", [.text(definition)]).first
    }

    /// Every drive a definition's runs used, each with its latest run, the most recent first;
    /// a drive forgotten after its latest run is left out.
    public func drives(of definition: String) -> [RunRecord] {
        // SQLite takes the other columns from the row with the largest `started`.
        query(
            """
            WHERE definition = ?1 AND drive_key IS NOT NULL GROUP BY drive_key
            HAVING MAX(started) > COALESCE((SELECT MAX(f.at) FROM forgotten_drives f
                                            WHERE f.definition = ?1 AND f.drive_key = runs.drive_key), -1)
            ORDER BY MAX(started) DESC
            """,
            [.text(definition)], select: "MAX(started), id")
    }

    /// Leaves a drive (its `key`) out of a definition's rotation: `drives(of:)` no longer lists
    /// it, so it is neither shown nor overdue. Its runs stay; a later run brings it back.
    public func forget(drive key: String, of definition: String, at time: Date) throws {
        var statement: OpaquePointer?
        let sql = "INSERT INTO forgotten_drives (definition, drive_key, at) VALUES (?, ?, ?)"
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK else {
            throw UsageError("run history \(path): \(String(cString: sqlite3_errmsg(db)))")
        }
        defer { sqlite3_finalize(statement) }
        sqlite3_bind_text(statement, 1, definition, -1, Self.transient)
        sqlite3_bind_text(statement, 2, key, -1, Self.transient)
        // Not before the drive's latest run, whatever the clock says: forgetting must take.
        let latest = lastStarted(of: definition, drive: key) ?? 0
        sqlite3_bind_double(statement, 3, max(time.timeIntervalSince1970, latest))
        guard sqlite3_step(statement) == SQLITE_DONE else {
            throw UsageError("run history \(path): \(String(cString: sqlite3_errmsg(db)))")
        }
    }

    private func lastStarted(of definition: String, drive key: String) -> Double? {
        runs(of: definition, limit: 1, drive: key).first?.started.timeIntervalSince1970
    }

    private enum Value {
        case text(String)
        case integer(Int)
    }

    private func query(_ clause: String, _ values: [Value], select extra: String? = nil) -> [RunRecord] {
        var statement: OpaquePointer?
        let sql = "SELECT \(Self.columns)\(extra.map { ", " + $0 } ?? "") FROM runs " + clause
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK else { return [] }
        defer { sqlite3_finalize(statement) }
        for (index, value) in values.enumerated() {
            switch value {
            case .text(let text): sqlite3_bind_text(statement, Int32(index + 1), text, -1, Self.transient)
            case .integer(let number): sqlite3_bind_int64(statement, Int32(index + 1), Int64(number))
            }
        }
        var records: [RunRecord] = []
        while sqlite3_step(statement) == SQLITE_ROW {
            func text(_ column: Int32) -> String {
                sqlite3_column_text(statement, column).map { String(cString: $0) } ?? ""
            }
            func optional(_ column: Int32) -> String? {
                sqlite3_column_text(statement, column).map { String(cString: $0) }
            }
            func int(_ column: Int32) -> Int { Int(sqlite3_column_int64(statement, column)) }
            let drive =
                optional(11) == nil
                ? nil
                : DriveIdentity(
                    label: optional(12), uuid: optional(13), serial: optional(14), device: optional(15),
                    check: optional(16))
            records.append(
                RunRecord(
                    definition: text(0), trigger: text(1),
                    started: Date(timeIntervalSince1970: sqlite3_column_double(statement, 2)),
                    seconds: sqlite3_column_double(statement, 3), result: text(4), transferred: int(5), deleted: int(6),
                    skipped: int(7), failed: int(8), bytes: sqlite3_column_int64(statement, 9), message: text(10),
                    drive: drive))
        }
        return records
    }
}
