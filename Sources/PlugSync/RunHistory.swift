import CSQLite
import FoundationEssentials

/// One finished run, as `status` shows it.
public struct RunRecord: Sendable, Equatable {
    public var definition: String
    public var trigger: String
    public var started: Date
    public var seconds: Double
    /// "success", "failures", "refused" or "error".
    public var result: String
    public var transferred: Int
    public var deleted: Int
    public var skipped: Int
    public var failed: Int
    public var bytes: Int64
    public var message: String

    public init(
        definition: String, trigger: String, started: Date, seconds: Double, result: String, transferred: Int = 0,
        deleted: Int = 0, skipped: Int = 0, failed: Int = 0, bytes: Int64 = 0, message: String = ""
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
    }
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
        let sql =
            "INSERT INTO runs (definition, trigger, started, seconds, result, transferred, deleted, skipped, failed, bytes, message) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
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
        guard sqlite3_step(statement) == SQLITE_DONE else {
            throw UsageError("run history \(path): \(String(cString: sqlite3_errmsg(db)))")
        }
    }

    /// The most recent runs of a definition, newest first.
    public func runs(of definition: String, limit: Int = 1) -> [RunRecord] {
        query("WHERE definition = ? ORDER BY started DESC, id DESC LIMIT ?", definition, limit)
    }

    /// The newest run of a definition that ended with `result` (e.g. "success").
    public func lastRun(of definition: String, result: String) -> RunRecord? {
        query(
            "WHERE definition = ? AND result = ? ORDER BY started DESC, id DESC LIMIT ?", definition, 1, result: result
        )
        .first
    }

    /// The oldest run of a definition, whatever its result.
    public func firstRun(of definition: String) -> RunRecord? {
        query("WHERE definition = ? ORDER BY started ASC, id ASC LIMIT ?", definition, 1).first
    }

    private func query(_ clause: String, _ definition: String, _ limit: Int, result: String? = nil) -> [RunRecord] {
        var statement: OpaquePointer?
        let sql =
            "SELECT definition, trigger, started, seconds, result, transferred, deleted, skipped, failed, bytes, message FROM runs "
            + clause
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK else { return [] }
        defer { sqlite3_finalize(statement) }
        sqlite3_bind_text(statement, 1, definition, -1, Self.transient)
        if let result {
            sqlite3_bind_text(statement, 2, result, -1, Self.transient)
            sqlite3_bind_int64(statement, 3, Int64(limit))
        } else {
            sqlite3_bind_int64(statement, 2, Int64(limit))
        }
        var records: [RunRecord] = []
        while sqlite3_step(statement) == SQLITE_ROW {
            func text(_ column: Int32) -> String {
                sqlite3_column_text(statement, column).map { String(cString: $0) } ?? ""
            }
            func int(_ column: Int32) -> Int { Int(sqlite3_column_int64(statement, column)) }
            records.append(
                RunRecord(
                    definition: text(0), trigger: text(1),
                    started: Date(timeIntervalSince1970: sqlite3_column_double(statement, 2)),
                    seconds: sqlite3_column_double(statement, 3), result: text(4), transferred: int(5), deleted: int(6),
                    skipped: int(7), failed: int(8), bytes: sqlite3_column_int64(statement, 9), message: text(10)))
        }
        return records
    }
}
