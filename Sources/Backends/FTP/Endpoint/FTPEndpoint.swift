import CurlFTP
import SyncEngine
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A directory on an FTP or FTPS server, as a source or a destination.
///
/// Times: the server's clock is not the client's. `prepare` measures the difference once per
/// run (a probe file uploaded and listed) and every remote time is corrected by it.
/// MLSD and MDTM give seconds; a LIST time is a window of a minute (or a day for old entries):
/// `refineTimes` asks MDTM for exactly the files whose comparison such a window leaves
/// undecided, so a same-size change within the same minute is still seen. Exact times it set or
/// read are remembered between runs (`rememberTimes`), so an unchanged tree needs no MDTM.
///
/// Writes: a file is uploaded under a temporary name in its folder, renamed into place, then
/// given the source's mtime (MFMT, the MDTM-set form, or SITE UTIME: whichever the probe found
/// to work). A new folder that holds only files is built under a temporary name instead, its
/// files under their own names, and renamed into place once with all of them (`buildFolder`).
/// Connections: a pool of logged-in control connections, reused for the whole run.
public final class FTPEndpoint: StagingEndpoint, @unchecked Sendable {
    public enum ClockDifference: Sendable, Equatable {
        case auto
        case seconds(Int64)
    }

    /// How a remote file's modification time can be set.
    enum TimeSetter: String, Sendable, Equatable {
        case mfmt, mdtmWrite, siteUtime, none
    }

    public let options: FTPOptions
    /// The synchronized folder, relative to the login directory ("" for it).
    public let root: FileName
    public let displayName: String
    let clockSetting: ClockDifference
    private let pool: ConnectionPool
    private let state = Lock()
    /// Folders under `.plugsync-versions` made (or found) in this run (guarded by `state`).
    private var versionFolders: Set<FileName> = []

    // Learned by `connect` and `prepare`; read-only afterwards.
    private(set) var features = FTPFeatures()
    /// Server clock minus client clock, for MDTM and MLSD times (UTC on both sides).
    public private(set) var clockOffset: Int64 = 0
    /// The same for LIST times, which are the server's wall clock (its time zone included).
    public private(set) var listOffset: Int64 = 0
    private(set) var setter: TimeSetter = .none
    /// LIST entries whose time is a window wider than a second: path -> window in seconds.
    private var coarse: [FileName: Int64] = [:]

    /// A file's exact time (client clock) and size as this endpoint set or read it, and when
    /// (client wall clock): a later change by anyone else gives the file a time after `knownAt`.
    struct KnownTime: Equatable {
        var size: Int64
        var seconds: Int64
        var knownAt: Int64
    }
    /// From the previous run (`rememberTimes`); read-only during a run.
    private var remembered: [FileName: KnownTime] = [:]
    /// What this run set or read (guarded by `state`), saved by `saveRememberedTimes`.
    private var learned: [FileName: KnownTime] = [:]
    private var memoryPath: String?
    /// What the versions folder's run folders hold, as the last run left it (`rememberTimes`)
    /// and as pruning in this run leaves it (guarded by `state`): saved with the times.
    private var rememberedIndex = VersionsIndex()
    private var versionsIndex: VersionsIndex?

    /// - Parameter listing: how many connections may list at once (default
    ///   `listingConnections(connections)`).
    public init(
        options: FTPOptions, directory: String, connections: Int, clock: ClockDifference, listing: Int? = nil
    ) {
        self.options = options
        self.root = FileName(directory.split(separator: "/").joined(separator: "/"))
        self.displayName = options.display + "/" + directory
        self.clockSetting = clock
        let transfers = max(1, connections)
        self.pool = ConnectionPool(
            options: options, size: max(transfers, listing ?? Self.listingConnections(transfers)), opened: transfers)
    }

    /// Connections that list at once for `parallel` transfer connections: twice as many, up to 8
    /// (a folder's listing is a few round trips of waiting: 4 connections list a 200-folder tree
    /// in 22 s at 100 ms, 8 in 12 s), never fewer. The ones beyond `parallel` log in only when
    /// the listing has that many folders to list at once.
    static func listingConnections(_ parallel: Int) -> Int { max(parallel, min(2 * parallel, 8)) }

    public var capabilities: EndpointCapabilities {
        EndpointCapabilities(
            timePrecision: 1_000_000_000, setsModificationTimes: setter != .none, keepsModes: false,
            keepsSymlinks: false, isRemote: true, spreadsWritesOverFolders: true, keepsVersions: true,
            readsBack: true)
    }

    // MARK: run preparation

    /// Logs in (one connection) and reads the server's features. Throws `FTPError`.
    ///
    /// The other connections open while the first logs in (`ConnectionPool.connect`): their
    /// greetings overlap its login, and their passwords wait for its answer. After the login
    /// FEAT and OPTS UTF8 go in one write.
    public func connect() throws {
        try pool.connect { connection in
            let replies = try connection.exchange(["*FEAT", "*OPTS UTF8 ON"].map { Array($0.utf8) })
            features = replies[0].code == 211 ? FTPFeatures(reply: replies[0]) : FTPFeatures()
            // Sent before FEAT's answer was known: where the server took it, every connection
            // asks for it (the same names on all), unless the server says it is always in
            // UTF-8 mode (vsftpd) and the command changes nothing.
            let options = replies[1]
            let utf8 = options.code < 300 && (features.utf8 || !options.text.lowercased().contains("always"))
            return utf8 ? ["*OPTS UTF8 ON"] : []
        }
    }

    /// Learns the clock difference and how times can be set, with a probe file uploaded to the
    /// synchronized folder (or the nearest folder above it that exists) and deleted again.
    /// - Parameters:
    ///   - needsTimeSetter: the endpoint is a destination (its files get the source's mtimes).
    ///   - say: prints a line of the run's report.
    ///   - dryRun: a dry run uploads no probe when the last run's measurement is remembered
    ///     (`rememberTimes`); it uses that one.
    public func prepare(needsTimeSetter: Bool, dryRun: Bool = false, say: (String) -> Void) throws {
        defer { clockMeasured() }
        zoneMeasured = false
        if case .seconds(let seconds) = clockSetting {
            clockOffset = seconds
            listOffset = seconds
            if !needsTimeSetter {
                return
            }
        }
        if dryRun, let clock = rememberedClock {
            if clockSetting == .auto {
                clockOffset = clock.offset
                listOffset = clock.listOffset
                zoneMeasured = clock.zone
                say(
                    "Clock time difference is \(clockOffset) seconds (as the last run measured it; a dry run uploads no probe)."
                )
            }
            setter = clock.setter
            return
        }
        try pool.with { connection in
            var folder = root
            while !folder.isEmpty, try !directoryExists(folder, connection) { folder = folder.parent }
            let probe = folder.appending(
                FileName(
                    bytes: ListingFilter.temporaryPrefix
                        + Array("clock-\(getpid())-\(monotonicNanoseconds() % 1_000_000)".utf8)))
            if clockSetting == .auto {
                say("Uploading temporary file to calculate server-client clock time difference.")
            }
            let content = Array("plugsync clock probe\n".utf8)
            func uploadProbe() throws {
                var sent = false
                try connection.upload(to: probe.bytes, size: Int64(content.count)) { buffer in
                    if sent { return 0 }
                    sent = true
                    content.withUnsafeBytes { buffer.copyMemory(from: $0) }
                    return content.count
                }
            }
            let before = wallClockSeconds()
            do {
                try uploadProbe()
            } catch let error as FTPError where error.kind == .refused || error.kind == .notFound {
                if clockSetting == .auto && !needsTimeSetter {
                    // A source (a read-only folder or account): every downloaded file gets the
                    // time the server lists, corrected by the same difference each run, so the
                    // comparisons stay consistent without a new measurement.
                    let last = rememberedClock
                    clockOffset = last?.offset ?? 0
                    listOffset = last?.listOffset ?? clockOffset
                    say(
                        last == nil
                            ? "The server refused the clock probe's upload (\(error.message)): its clock is taken as this computer's (set clock_diff: <seconds> if it is not)."
                            : "The server refused the clock probe's upload (\(error.message)): the last run's clock difference stands, \(clockOffset) seconds."
                    )
                    return
                }
                if clockSetting == .auto {
                    throw ClockProbeRefused(
                        message:
                            "the server refused the upload of a temporary file to measure its clock difference (\(error.message)); set clock_diff: <seconds> in the endpoint by hand (the difference between the server's clock and this computer's, e.g. clock_diff: -3600)"
                    )
                }
                return  // manual clock: uploads will fail on their own with a clear message
            }
            let after = wallClockSeconds()
            var removed = false
            defer {
                if !removed { _ = try? connection.command([Array("DELE ".utf8) + connection.commandPath(probe.bytes)]) }
            }
            func measure(_ serverTime: Int64) {
                clockOffset = Self.clockOffset(
                    serverTime: serverTime, before: before, after: after,
                    likely: [rememberedClock?.offset, 0].compactMap { $0 })
                listOffset = clockOffset
            }
            // On a LIST server the probe's listed time gives the time zone of LIST times:
            // MDTM and `STAT path` (the listing on the control connection) in one round trip.
            let auto = clockSetting == .auto
            if auto && !features.mlsd {
                try measureWithListing(probe, in: folder, measure, connection)
                say("Clock time difference is \(clockOffset) seconds.")
            }
            // The probe's time (MLSD servers), the test of the first way to set times and the
            // probe's removal in one round trip.
            let candidates = timeSetters
            let timeInBatch = auto && features.mlsd
            if needsTimeSetter, let first = candidates.first,
                let (replies, target) = try probeAtOnce(probe, setter: first, time: timeInBatch, connection)
            {
                removed = true
                var rest = replies[...]
                if timeInBatch {
                    let serverTime = try time(from: rest.removeFirst(), probe)
                    measure(serverTime)
                    _ = measureZone(Self.statLines(rest.removeFirst()), probe, serverTime: serverTime)
                    say("Clock time difference is \(clockOffset) seconds.")
                }
                let (set, read) = (rest[rest.startIndex], rest[rest.startIndex + 1])
                if set.code < 300, read.code == 213, FTPListingParser.parseTimeValue(read.text) == target {
                    setter = first
                } else if candidates.count > 1, (try? uploadProbe()) != nil {
                    // Rare: the first way failed; the others need a probe again.
                    removed = false
                    try detectTimeSetter(probe, connection, candidates: Array(candidates.dropFirst()))
                } else {
                    setter = .none
                }
                return
            }
            if timeInBatch {
                // A source: the time and the removal together.
                let path = connection.commandPath(probe.bytes)
                let replies = try connection.exchange(
                    [Array("MDTM ".utf8) + path, Array("*STAT ".utf8) + path, Array("*DELE ".utf8) + path])
                removed = true
                let serverTime = try time(from: replies[0], probe)
                measure(serverTime)
                _ = measureZone(Self.statLines(replies[1]), probe, serverTime: serverTime)
                say("Clock time difference is \(clockOffset) seconds.")
            }
            if needsTimeSetter { try detectTimeSetter(probe, connection, candidates: candidates) }
        }
    }

    /// The server's clock minus this computer's, in whole seconds, from a file the server
    /// stamped (`serverTime`: its clock, to the second) while it was uploaded, between `before`
    /// and `after` (this computer's clock). Every offset that puts the stamp in that interval
    /// fits; when the interval spans the turn of a second there are two, and the first of
    /// `likely` that fits is taken (the last run's measurement, then none): taking the middle of
    /// the interval was a second off whenever the server's reply came late in the next second,
    /// and a second off makes the next run copy every file again.
    static func clockOffset(serverTime: Int64, before: Double, after: Double, likely: [Int64]) -> Int64 {
        // A file's time is the kernel's coarse clock, up to a tick (a few ms) behind.
        let lowest = serverTime - Int64(after.rounded(.down))
        let highest = serverTime - Int64((before - 0.02).rounded(.down))
        if lowest >= highest { return lowest }
        if let fitting = likely.first(where: { lowest <= $0 && $0 <= highest }) { return fitting }
        let middle = Int64((Double(serverTime) + 0.5 - (before + after) / 2).rounded())
        return min(max(middle, lowest), highest)
    }

    /// On a LIST server: the clock difference from the probe's MDTM (`measure`), and the
    /// offset of LIST times (the server's wall clock) from the probe's listed time. MDTM and
    /// `STAT path` go together, and where the server does not list the probe that way, a
    /// listing of `folder` follows.
    private func measureWithListing(
        _ probe: FileName, in folder: FileName, _ measure: (Int64) -> Void, _ connection: FTPConnection
    ) throws {
        let path = connection.commandPath(probe.bytes)
        let replies = try connection.exchange([Array("MDTM ".utf8) + path, Array("*STAT ".utf8) + path])
        let serverTime = try time(from: replies[0], probe)
        measure(serverTime)
        if !measureZone(Self.statLines(replies[1]), probe, serverTime: serverTime) {
            _ = measureZone(try connection.listing(folder.bytes, verb: "LIST -a"), probe, serverTime: serverTime)
        }
    }

    /// Whether this run's clock probe measured the offset of LIST times from a listing of the
    /// probe (on an MLSD server: `STAT path` sent with its MDTM), not taken as MDTM's.
    private(set) var zoneMeasured = false

    /// The `ls -l` lines of a reply to `STAT path` for a file (between its first and last line;
    /// proftpd indents them), nil where it holds none.
    static func statLines(_ status: FTPReply) -> [UInt8]? {
        guard (211...213).contains(status.code), status.lines.count > 2 else { return nil }
        return Array(status.lines.dropFirst().dropLast().map { $0.drop { $0 == " " } }.joined(separator: "\r\n").utf8)
    }

    /// The offset of LIST times (the server's wall clock: its time zone, a multiple of 15
    /// minutes) from the probe's line in `listing` (LIST's form) and its MDTM time; whether the
    /// probe was there (`zoneMeasured`).
    private func measureZone(_ listing: [UInt8]?, _ probe: FileName, serverTime: Int64) -> Bool {
        let name = probe.lastComponent.bytes
        let serverNow = Int64(wallClockSeconds()) + clockOffset
        // A file named by its path is listed by that path on some servers.
        guard let listing,
            let entry = FTPListingParser.parseLIST(listing, serverNow: serverNow).entries.first(where: {
                $0.name == name || $0.name.reversed().starts(with: ([UInt8(ascii: "/")] + name).reversed())
            })
        else { return false }
        let zone = ((Double(entry.time - serverTime) + 30) / 900).rounded() * 900
        listOffset = clockOffset + Int64(zone)
        zoneMeasured = true
        return true
    }

    // MARK: the clock probe alongside the listing

    /// Set from `willPrepare` until `prepare` (or `cancelPrepare`) is over: a listing started
    /// meanwhile corrects its times only once the clock is measured.
    private var clockPending = false
    private let clock = Condition()
    /// This run's `prepare` is over (guarded by `clock`).
    private var probeOver = false

    /// Announces a `prepare` that will run alongside this endpoint's `list`, on another thread.
    /// The probe needs one round trip or four, and the listing need not wait for them: on an
    /// MLSD server it goes on at once and applies the clock difference when it is known; on a
    /// LIST server (whose times are the server's wall clock, read against its date) it waits.
    /// The synchronized folder must be listed before (`rootState`): the probe may be put there.
    public func willPrepare() {
        clock.lock()
        clockPending = true
        clock.unlock()
    }

    /// Releases a listing that waits for a `prepare` that will not run (an earlier step failed).
    public func cancelPrepare() { clockMeasured() }

    private func clockMeasured() {
        clock.lock()
        clockPending = false
        probeOver = true
        clock.broadcast()
        clock.unlock()
    }

    /// The offset of LIST times a listing uses while the probe runs (`list`), nil after it.
    private var parseOffset: Int64?

    private var clockIsPending: Bool {
        clock.lock()
        defer { clock.unlock() }
        return clockPending
    }

    /// The offset of LIST times before the probe measured it: the one given, or the last run's,
    /// else none (a server's clock is mostly set, and its LIST times in UTC): a listing read
    /// against a guess the probe then finds wrong is read again (`list`), where waiting for the
    /// probe would hold every first listing back by its round trips.
    private var guessedListOffset: Int64 {
        if case .seconds(let seconds) = clockSetting { return seconds }
        return rememberedClock?.listOffset ?? 0
    }

    private func waitForClock() {
        clock.lock()
        while clockPending { _ = clock.wait(until: Condition.now() + 1) }
        clock.unlock()
    }

    /// The ways to set a remote mtime this server may take, in the order they are tried.
    private var timeSetters: [TimeSetter] { (features.mfmt ? [.mfmt] : []) + [.mdtmWrite, .siteUtime] }

    /// Pipelined on the probe: MDTM (with `time`), `setter` with a time 400 days back, MDTM, DELE.
    /// Returns the replies and the time set (server clock), or nil where `setter` has no command.
    private func probeAtOnce(_ probe: FileName, setter: TimeSetter, time: Bool, _ connection: FTPConnection) throws
        -> ([FTPReply], Int64)?
    {
        let path = connection.commandPath(probe.bytes)
        let target = Int64(wallClockSeconds()) - 400 * 86_400
        guard let set = Self.setTimeCommand(setter, value: FTPListingParser.timeValue(target), path: path) else {
            return nil
        }
        let mdtm = Array("MDTM ".utf8) + path
        let commands =
            (time ? [mdtm, Array("*STAT ".utf8) + path] : [])
            + [Array("*".utf8) + set, Array("*".utf8) + mdtm, Array("*DELE ".utf8) + path]
        return (try connection.exchange(commands), target)
    }

    /// Tries each way of setting a remote mtime on the probe and keeps the first that reads back.
    private func detectTimeSetter(_ probe: FileName, _ connection: FTPConnection, candidates: [TimeSetter]) throws {
        let target = wallClockSeconds() - 400 * 86_400
        let value = FTPListingParser.timeValue(Int64(target) + clockOffset)
        for candidate in candidates {
            guard let command = Self.setTimeCommand(candidate, value: value, path: connection.commandPath(probe.bytes))
            else { continue }
            guard let reply = try? connection.command([Array("*".utf8) + command]), reply.code < 300 else { continue }
            if let readBack = try? modificationTime(probe, connection), readBack == Int64(target) + clockOffset {
                setter = candidate
                return
            }
        }
        setter = .none
    }

    static func setTimeCommand(_ setter: TimeSetter, value: String, path: [UInt8]) -> [UInt8]? {
        switch setter {
        case .mfmt: return Array("MFMT \(value) ".utf8) + path
        case .mdtmWrite: return Array("MDTM \(value) ".utf8) + path
        case .siteUtime: return Array("SITE UTIME ".utf8) + path + Array(" \(value) \(value) \(value) UTC".utf8)
        case .none: return nil
        }
    }

    private func modificationTime(_ path: FileName, _ connection: FTPConnection) throws -> Int64 {
        try time(from: connection.command([Array("MDTM ".utf8) + connection.commandPath(path.bytes)]), path)
    }

    /// The time in a reply to `MDTM path`.
    private func time(from reply: FTPReply, _ path: FileName) throws -> Int64 {
        guard reply.code == 213, let time = FTPListingParser.parseTimeValue(reply.text) else {
            throw FTPError(
                .protocolError, "\(options.display): MDTM \(path): unexpected reply \(reply.code) \(reply.text)")
        }
        return time
    }

    static let mdtmBatch = 32

    /// MDTM for each path (nil where it failed), in one round trip.
    private func modificationTimes(_ paths: [FileName], _ connection: FTPConnection) throws -> [Int64?] {
        let commands = paths.map { Array("MDTM ".utf8) + connection.commandPath($0.bytes) }
        return try connection.exchange(commands).map { $0.code == 213 ? FTPListingParser.parseTimeValue($0.text) : nil }
    }

    private func directoryExists(_ path: FileName, _ connection: FTPConnection) throws -> Bool {
        if path == root, let known = state.withLock({ listedRoot }) { return known != .missing }
        do {
            _ = try rootOrListing(path, connection)
            return true
        } catch let error as FTPError where error.kind == .notFound || error.kind == .refused {
            return false
        }
    }

    /// The synchronized folder's listing, kept from the checks before the run (does it exist,
    /// is it empty, where does the clock probe go) for the run's own listing, which takes it:
    /// one listing of the folder instead of three. Any change this endpoint makes drops it.
    private var rootData: Listed?

    /// A folder's listing as the server sent it, and its words when it said it cut it short;
    /// `byStat`: in LIST's form from `STAT path` (on an MLSD server too).
    private typealias Listed = (data: [UInt8], cutShort: String?, byStat: Bool)

    /// Lists `folder`; the synchronized folder's listing is kept for the next caller (`take`).
    private func rootOrListing(
        _ folder: FileName, _ connection: FTPConnection?, take: Bool = false, given: StatOutcome? = nil
    ) throws -> Listed {
        if folder == root,
            let listed = state.withLock({ () -> Listed? in
                defer { if take { rootData = nil } }
                return rootData
            })
        {
            return listed
        }
        let listed =
            try connection.map { try listing(folder, $0, given: given) }
            ?? pool.with { try listing(folder, $0, given: given) }
        if folder == root && !take { state.withLock { rootData = listed } }
        return listed
    }

    /// What the run's own listing found of the synchronized folder, for the check after planning
    /// (must it be created?), which then needs no listing of its own. Any change drops it.
    private var listedRoot: RootState?

    private func forgetRootListing() {
        state.withLock {
            rootData = nil
            listedRoot = nil
        }
    }

    // MARK: Endpoint: state and listing

    public func rootState() throws -> RootState {
        if let known = state.withLock({ listedRoot }) { return known }
        // A connection cut while listing: one more try on a fresh login, as for the run's listings.
        return try retrying(delays: Self.listingRetryDelays) {
            try pool.with { connection in
                let known: RootState
                do {
                    known = parse(try rootOrListing(root, connection)).entries.isEmpty ? .empty : .nonEmpty
                } catch let error as FTPError where error.kind == .notFound {
                    known = .missing
                }
                state.withLock { listedRoot = known }
                return known
            }
        }
    }

    public func prepareRoot() throws {
        forgetRootListing()
        var missing: [FileName] = []
        var folder = root
        try pool.with { connection in
            while !folder.isEmpty, try !directoryExists(folder, connection) {
                missing.append(folder)
                folder = folder.parent
            }
        }
        try pool.with { connection in
            for folder in missing.reversed() {
                try connection.command([Array("MKD ".utf8) + connection.commandPath(folder.bytes)])
            }
        }
    }

    /// How folders are listed on a data connection: MLSD where the server has it (exact
    /// times), else LIST.
    private var listVerb: String { features.mlsd ? "MLSD" : "LIST -a" }

    /// The entries of `folder` (a path from the login directory), listed on `connection`.
    private func entries(of folder: FileName, _ connection: FTPConnection) throws -> [RemoteEntry] {
        parse(try listing(folder, connection)).entries
    }

    /// The listing of `folder` (a path from the login directory) in the form `parse` reads:
    /// by `STAT path` on the control connection where it can be (`statListings`; `given`: its
    /// outcome when asked already, with other folders), else by MLSD or LIST on a data
    /// connection. Its `cutShort`: the server's words where it said it left entries out (a
    /// listing on a data connection only: a `STAT` reply says nothing of the kind).
    private func listing(_ folder: FileName, _ connection: FTPConnection, given: StatOutcome? = nil) throws -> Listed {
        func overData() throws -> Listed {
            let data = try connection.listing(folder.bytes, verb: listVerb)
            return (data, connection.listingCutShort, false)
        }
        switch try given ?? statListings([folder], connection)[0] {
        case .listed(let data):
            return (data, nil, true)
        case .skipped, .missing, .unanswered:
            return try overData()
        case .unclear(let shape):
            let listed = try overData()
            // The folder is there and its listing reads well: the server's STAT does not give
            // what its LIST gives (hidden files left out, another form). Twice, and the run
            // lists every folder the other way (a folder that is a link is listed as the link).
            if shape && parse(listed).unreadable == 0 {
                state.withLock {
                    statMisses += 1
                    if statMisses >= 2 { statWorks = false }
                }
            }
            return listed
        }
    }

    /// Off: every folder is listed on a data connection, never by `STAT path`.
    public var listsByStat = true

    /// Whether folders may be listed by `STAT path`: until the server refuses it, or answers
    /// twice with something its LIST does not confirm (guarded by `state`).
    private var statWorks = true
    private var statMisses = 0

    /// Whether an MLSD server's folders may be listed by `STAT path`, in LIST's form: only
    /// where the clock probe measured the time zone of its LIST times (this run's, or the last
    /// run's until this one's is over), and exact times of the last run are remembered to make
    /// LIST's minutes exact without an MDTM each.
    private var statOnMLSD: Bool {
        guard clockSetting == .auto, !remembered.isEmpty else { return false }
        clock.lock()
        defer { clock.unlock() }
        return probeOver ? zoneMeasured : rememberedClock?.zone == true
    }

    private enum StatOutcome {
        /// The folder's listing, in LIST's form.
        case listed([UInt8])
        /// Not asked (see `statListings`), or the server refused: list the other way.
        case skipped
        /// Asked with others, and not answered: an earlier reply of the write gave up the
        /// connection. Ask again.
        case unanswered
        /// The server says there is no such folder (or lists nothing at all, not even the
        /// folder itself): only a guessed folder takes this as its answer.
        case missing
        /// An answer that is not the folder's full listing: list the other way. `shape`: lines
        /// the parser cannot read, or no `.` (a file, a server whose STAT leaves hidden files
        /// out); else a line break in a name.
        case unclear(shape: Bool)
    }

    /// Whether `STAT path` may list folders now (`statListings`).
    private var statUsable: Bool {
        listsByStat && state.withLock { statWorks } && (!features.mlsd || statOnMLSD)
    }

    /// `STAT path` for each of `folders` (in one write), where the server may list that way
    /// (`statUsable`) and the path can be named safely (`statNameable`). A folder's listing is
    /// used only when it names the folder itself (`.`, which also shows that hidden files are
    /// listed) and every line reads. The server refusing STAT with a path (5xx), or the REST
    /// that goes with it, ends its use for the run.
    private func statListings(_ folders: [FileName], _ connection: FTPConnection) throws -> [StatOutcome] {
        var outcomes = [StatOutcome](repeating: .skipped, count: folders.count)
        guard statUsable else { return outcomes }
        let asked = folders.indices.filter { Self.statNameable(connection.commandPath(folders[$0].bytes)) }
        if asked.isEmpty { return outcomes }
        let replies = try connection.statReplies(asked.map { folders[$0].bytes })
        if replies.contains(where: { $0 == nil }), connection.restRefused {
            // Without `REST N` answered, no STAT reply can be shown to have been read whole.
            state.withLock { statWorks = false }
        }
        let serverNow = Int64(wallClockSeconds()) + listOffset
        // The first reply without its proof is listed the other way, the ones after it asked again.
        let refused = state.withLock { !statWorks }
        var proofFailed = false
        for (index, reply) in zip(asked, replies) {
            guard let reply else {
                if !refused { outcomes[index] = proofFailed ? .unanswered : .unclear(shape: false) }
                proofFailed = true
                continue
            }
            let (code, lines) = FTPListingParser.statListing(reply)
            if code >= 500 || code == 450 {
                if FTPConnection.soundsMissing(String(decoding: reply.dropFirst(4), as: UTF8.self)) {
                    outcomes[index] = .missing
                } else if code >= 500 {
                    state.withLock { statWorks = false }
                }
                continue
            }
            guard code >= 200 && code < 300, let lines else {
                outcomes[index] = .unclear(shape: false)
                continue
            }
            let parsed = FTPListingParser.parseLIST(lines, serverNow: serverNow)
            if parsed.entries.isEmpty && parsed.unreadable == 0 {
                outcomes[index] = .missing  // not even `.`: vsftpd's answer for a missing path
            } else if parsed.unreadable == 0,
                parsed.entries.contains(where: { $0.name == [0x2e] && $0.kind == .directory })
            {
                outcomes[index] = .listed(lines)
            } else {
                outcomes[index] = .unclear(shape: true)
            }
        }
        return outcomes
    }

    /// Whether `STAT` can name `path` (absolute) as it is: servers read its argument as `ls`
    /// options and patterns, so no space, control byte, glob or quoting character (`*?[]{}~\`),
    /// and no component that begins with `-`.
    static func statNameable(_ path: [UInt8]) -> Bool {
        guard path.first == UInt8(ascii: "/") else { return false }
        var previous = UInt8(ascii: "/")
        for byte in path {
            switch byte {
            case 0...0x20, 0x7f, UInt8(ascii: "*"), UInt8(ascii: "?"), UInt8(ascii: "["), UInt8(ascii: "]"),
                UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "~"), UInt8(ascii: "\\"):
                return false
            case UInt8(ascii: "-") where previous == UInt8(ascii: "/"):
                return false
            default:
                break
            }
            previous = byte
        }
        return true
    }

    /// One folder's listing parsed (no filtering); `unreadable` counts lines it could not read.
    /// A listing by STAT on an MLSD server shows links as MLSD does: with no target (so they are
    /// left out, whichever way the folder was listed).
    private func parse(_ listed: Listed) -> (entries: [RemoteEntry], unreadable: Int) {
        var parsed: (entries: [RemoteEntry], unreadable: Int)
        if features.mlsd && !listed.byStat {
            parsed = FTPListingParser.parseMLSD(listed.data)
        } else {
            let serverNow = Int64(wallClockSeconds()) + (state.withLock { parseOffset } ?? listOffset)
            parsed = FTPListingParser.parseLIST(listed.data, serverNow: serverNow)
            if features.mlsd {
                for i in parsed.entries.indices where parsed.entries[i].kind == .symlink {
                    parsed.entries[i].linkTarget = nil
                }
            }
        }
        return (parsed.entries.filter { $0.name != [0x2e] && $0.name != [0x2e, 0x2e] }, parsed.unreadable)
    }

    /// The other side's folders, when it is listed alongside this one (`ListingHint`).
    public var listingHint: ListingHint?

    /// Times are the server's as listed until the end, when the clock difference is applied:
    /// the listing may run alongside `prepare` (`willPrepare`).
    public func list(recursive: Bool, filter: ListingFilter) -> Listing {
        // A LIST time is read against the server's date (the year of a recent entry): while the
        // probe measures it, the last run's measurement (or the one given, else none) stands
        // in, and the listing is read again if the probe finds another. Where the synchronized
        // folder not yet listed may hold the probe soon, the listing waits.
        // On an MLSD server, STAT lists in LIST's form where its zone is measured (`statOnMLSD`).
        let probing = clockIsPending
        let mlsdByStat = features.mlsd && listsByStat && statOnMLSD
        let guess = (features.mlsd && !mlsdByStat) || !probing ? nil : guessedListOffset
        if (!features.mlsd && guess == nil) || state.withLock({ rootData == nil && listedRoot == nil }) {
            waitForClock()
        }
        state.withLock {
            parseOffset = guess
            // Listed by STAT before this run's probe found that the zone cannot be measured.
            if features.mlsd && !mlsdByStat && rootData?.byStat == true { rootData = nil }
        }
        var results: [FileName: Result<FolderListing, Error>] = [:]
        // Folders to list (paths from the login directory), shared by the workers in the order
        // they were found: a folder's subfolders are listed as soon as it is, with no wait for
        // the rest of its level. A hint adds the other side's folders before their parents are
        // listed; only what the parents' listings confirm is kept (`assemble`).
        var requested: Set<FileName> = [root]
        var pending: [FileName] = [root]
        var next = 0
        var hint = recursive ? listingHint : nil
        // A guess that fails is kept out of `results` (no retry, no error): listed again the
        // normal way if its parent's listing shows it is a folder after all.
        var guessed: Set<FileName> = []
        var failedGuesses: Set<FileName> = []
        func shownAsFolder(_ folder: FileName) -> Bool {
            guard case .success(let parent)? = results[folder.parent] else { return false }
            let name = folder.lastComponent
            return parent.entries.contains { $0.name == name && $0.kind == .directory }
        }
        func record(_ folder: FileName, guess: Bool, _ result: Result<FolderListing, Error>) {
            if guess, case .failure = result {
                guessed.remove(folder)
                if shownAsFolder(folder) { pending.append(folder) } else { failedGuesses.insert(folder) }
                return
            }
            results[folder] = result
            if folder == root {
                switch result {
                case .failure(let error):
                    if (error as? FTPError)?.kind == .notFound { state.withLock { listedRoot = .missing } }
                case .success(let listed):
                    let empty =
                        listed.entries.isEmpty && listed.problems.isEmpty && listed.temporary.isEmpty
                        && listed.temporaryFolders.isEmpty
                    state.withLock { listedRoot = empty ? .empty : .nonEmpty }
                }
            }
            if recursive, case .success(let listed) = result {
                for entry in listed.entries where entry.kind == .directory {
                    let child = folder.appending(entry.name)
                    if requested.insert(child).inserted || failedGuesses.remove(child) != nil {
                        pending.append(child)
                    }
                }
            }
        }
        var busy = 0
        let work = Condition()
        let threads = recursive ? pool.size : 1
        runOnThreads(threads) { _ in
            work.lock()
            defer { work.unlock() }
            while true {
                if let given = hint, case .success(let top)? = results[root], let folders = given.folders {
                    hint = nil
                    // Only below the synchronized folder's own subfolders: into an empty or new
                    // folder (a first copy), every guess would be a refusal.
                    let present = Set(top.entries.lazy.filter { $0.kind == .directory }.map(\.name))
                    for path in folders where present.contains(path.firstComponent) {
                        let folder = root.appending(path)
                        if requested.insert(folder).inserted {
                            guessed.insert(folder)
                            pending.append(folder)
                        }
                    }
                }
                guard next < pending.count else {
                    if busy == 0 { return }
                    _ = work.wait(until: Condition.now() + 1)
                    continue
                }
                // Where STAT lists, several folders in one write: this connection's share of
                // those waiting, shared with the connections not busy (so that every idle one
                // gets some), at most `statBatch`.
                var batch = [pending[next]]
                next += 1
                if batch[0] != root && statUsable {
                    let idle = max(1, threads - busy)
                    let share = min(Self.statBatch, (pending.count - next + idle) / idle)
                    while batch.count < share, next < pending.count, pending[next] != root {
                        batch.append(pending[next])
                        next += 1
                    }
                }
                if next == pending.count {
                    pending.removeAll(keepingCapacity: true)
                    next = 0
                }
                busy += 1
                let guesses = batch.map { guessed.contains($0) }
                work.unlock()
                var given = [StatOutcome?](repeating: nil, count: batch.count)
                if batch.count > 1, let outcomes = try? pool.with({ try statListings(batch, $0) }) {
                    given = outcomes.map { if case .unanswered = $0 { nil } else { $0 } }
                }
                var listed: [Result<FolderListing, Error>] = []
                for (index, folder) in batch.enumerated() {
                    listed.append(listFolder(folder, filter: filter, retries: !guesses[index], given: given[index]))
                }
                work.lock()
                busy -= 1
                for (index, folder) in batch.enumerated() { record(folder, guess: guesses[index], listed[index]) }
                work.broadcast()
            }
        }
        waitForClock()
        state.withLock { parseOffset = nil }
        if let guess, guess != listOffset || (mlsdByStat && !zoneMeasured) {
            forgetRootListing()
            return list(recursive: recursive, filter: filter)
        }
        // An MLSD listing's exact times are remembered, so that the next run may list by STAT.
        let remembers = features.mlsd && listsByStat && memoryPath != nil
        var exact: [FileName: KnownTime] = [:]
        let now = Int64(wallClockSeconds())
        var listing = Listing()
        // From the root down through the folders the listings found: a guessed folder that is
        // not there (or not a folder) is left out, with its errors.
        func assemble(_ folder: FileName) -> [Entry] {
            switch results[folder] {
            case .failure(let error):
                if folder != root || (error as? FTPError)?.kind != .notFound {
                    listing.errors.append(ListingError(path: display(folder), message: "\(error)"))
                }
                return []
            case .success(let listed):
                listing.errors += listed.problems
                listing.temporaryFiles += listed.temporary
                listing.temporaryFolders += listed.temporaryFolders
                var entries = listed.entries
                let offset = features.mlsd && !listed.byStat ? clockOffset : listOffset
                let base = remembers && !listed.byStat ? relative(folder) : nil
                for i in entries.indices {
                    entries[i].mtime = Timestamp(seconds: entries[i].mtime.seconds - offset)
                    if let base, entries[i].kind == .file {
                        let path = base.appending(entries[i].name)
                        let time = KnownTime(size: entries[i].size, seconds: entries[i].mtime.seconds, knownAt: now)
                        if let known = remembered[path], known.size == time.size, known.seconds == time.seconds {
                            exact[path] = known
                        } else {
                            exact[path] = time
                        }
                    }
                    if recursive && entries[i].kind == .directory {
                        entries[i].children = assemble(folder.appending(entries[i].name))
                    }
                }
                return entries
            case nil:
                return []
            }
        }
        listing.entries = assemble(root)
        if !exact.isEmpty { state.withLock { learned.merge(exact) { old, _ in old } } }
        return listing
    }

    /// The most folders asked by `STAT path` in one write.
    static let statBatch = 32

    /// Pauses before another try of a folder's listing whose error is transient.
    static let listingRetryDelays: [Double] = [1]

    /// Lists one folder (a path from the login directory): entries sorted by name, problems
    /// with names, and leftover temporary files and folders (relative to the root).
    /// `byStat`: listed by `STAT path` (in LIST's form, also on an MLSD server).
    private typealias FolderListing = (
        entries: [Entry], problems: [Error], temporary: [FileName], temporaryFolders: [FileName], byStat: Bool
    )

    /// `given`: the folder's `STAT path` outcome when asked already (with other folders); a
    /// guessed folder (`retries` false) the server says is not there fails at once.
    private func listFolder(
        _ folder: FileName, filter: ListingFilter, retries: Bool = true, given: StatOutcome? = nil
    ) -> Result<FolderListing, Error> {
        if !retries, case .missing? = given {
            return .failure(FTPError(.notFound, "\(display(folder)): no such folder"))
        }
        do {
            // A connection cut mid-listing: one more try on a fresh login, as for transfers.
            var given = given
            let listed = try retrying(delays: retries ? Self.listingRetryDelays : []) {
                defer { given = nil }
                return try rootOrListing(folder, nil, take: true, given: given)
            }
            let cutShort = listed.cutShort
            let (remote, unreadable) = parse(listed)
            var entries: [Entry] = []
            var problems: [Error] = []
            if let cutShort {
                // Entries past the server's limit are missing: the run then deletes nothing.
                problems.append(
                    ListingError(
                        path: display(folder),
                        message:
                            "the server cut the listing short (\"\(FTPConnection.printable(Array(cutShort.utf8)))\"): the folder holds more entries than the server lists at once; raise its limit (pure-ftpd: -L)"
                    ))
            }
            if unreadable > 0 {
                // A line this client cannot read may hide an entry: the run then deletes nothing.
                problems.append(
                    ListingError(path: display(folder), message: "\(unreadable) lines of the listing could not be read")
                )
            }
            var temporary: [FileName] = []
            var temporaryFolders: [FileName] = []
            let base = relative(folder)
            var coarseHere: [(FileName, Int64)] = []
            for item in remote {
                guard FTPListingParser.isSafeName(item.name) else {
                    problems.append(
                        ListingError(
                            path: display(folder),
                            message:
                                "refused a name from the server: \"\(FTPConnection.printable(item.name))\" (a path separator, dot name or control character); skipped"
                        ))
                    continue
                }
                let name = FileName(bytes: item.name)
                let path = base.appending(name)
                if item.name.starts(with: ListingFilter.temporaryPrefix) {
                    if item.kind == .directory { temporaryFolders.append(path) } else { temporary.append(path) }
                    continue
                }
                if filter.ignore.matches(name, path: path) || filter.excludedPaths.contains(path) { continue }
                let mtime = Timestamp(seconds: item.time)  // the server's clock (see `list`)
                switch item.kind {
                case .file:
                    entries.append(Entry(name: name, kind: .file, size: item.size, mtime: mtime, mode: item.mode))
                    if item.precision > 1 { coarseHere.append((path, item.precision)) }
                case .directory:
                    entries.append(Entry(name: name, kind: .directory, mtime: mtime, mode: item.mode, children: []))
                case .symlink:
                    guard let target = item.linkTarget, !target.isEmpty, !target.contains(0) else { continue }
                    entries.append(
                        Entry(
                            name: name, kind: .symlink, mtime: mtime, mode: item.mode,
                            linkTarget: FileName(bytes: target)))
                case .other:
                    continue
                }
            }
            if !coarseHere.isEmpty {
                state.withLock { for (path, width) in coarseHere { coarse[path] = width } }
            }
            entries.sortByName()
            state.withLock { folderEntries[folder] = remote.count }
            return .success((entries, problems, temporary, temporaryFolders, listed.byStat))
        } catch {
            return .failure(error)
        }
    }

    /// Makes coarse LIST times exact where they matter: for every file whose size equals the
    /// other side's and whose time window holds the other side's time, MDTM gives the second.
    /// `slack` widens the window when the other side is coarse too (FTP to FTP). A source gives
    /// its times to the files it writes, so `everyFile` makes every coarse time exact.
    func refineTimes(_ listing: inout Listing, comparedWith other: [Entry], slack: Int64, everyFile: Bool) {
        let coarse = state.withLock { self.coarse }
        if coarse.isEmpty { return }
        var undecided: [(path: FileName, size: Int64)] = []
        var exact: [FileName: Int64] = [:]
        var known: [FileName: KnownTime] = [:]
        func refine(_ path: FileName, _ entry: Entry, _ width: Int64) {
            if let time = Self.trustedTime(remembered[path], entry: entry, width: width, slack: slack) {
                exact[path] = time.seconds
                known[path] = time
            } else {
                undecided.append((path, entry.size))
            }
        }
        func walk(_ mine: [Entry], _ theirs: [Entry], _ parent: FileName) {
            for entry in mine {
                let path = parent.appending(entry.name)
                if everyFile {
                    if entry.kind == .file, let width = coarse[path] { refine(path, entry, width) }
                    if entry.kind == .directory { walk(entry.children ?? [], [], path) }
                    continue
                }
                guard let match = Self.find(entry.name, in: theirs), match.kind == entry.kind else { continue }
                if entry.kind == .directory {
                    walk(entry.children ?? [], match.children ?? [], path)
                } else if entry.kind == .file, entry.size == match.size, let width = coarse[path] {
                    let start = (entry.mtime.seconds - slack) * 1_000_000_000
                    let end = (entry.mtime.seconds + width + slack) * 1_000_000_000
                    let time = match.mtime.totalNanoseconds
                    if time >= start && time < end { refine(path, entry, width) }
                }
            }
        }
        walk(listing.entries, other, .empty)
        let lock = Lock()
        let queue = WorkQueue(count: undecided.count)
        if !undecided.isEmpty {
            runOnThreads(min(pool.size, undecided.count)) { _ in
                while let index = queue.next() {
                    // A batch of MDTMs in one round trip where the connection can pipeline.
                    var batch = [index]
                    while batch.count < Self.mdtmBatch, let next = queue.next() { batch.append(next) }
                    let times =
                        (try? pool.with { try modificationTimes(batch.map { absolute(undecided[$0].path) }, $0) })
                    let now = Int64(wallClockSeconds())
                    lock.withLock {
                        for (index, time) in zip(batch, times ?? []) {
                            guard let time else { continue }
                            let (path, size) = undecided[index]
                            exact[path] = time - clockOffset
                            known[path] = KnownTime(size: size, seconds: time - clockOffset, knownAt: now)
                        }
                    }
                }
            }
        }
        state.withLock { learned.merge(known) { _, new in new } }
        if exact.isEmpty { return }
        func update(_ entries: inout [Entry], _ parent: FileName) {
            for i in entries.indices {
                let path = parent.appending(entries[i].name)
                if entries[i].kind == .directory, entries[i].children != nil {
                    update(&entries[i].children!, path)
                } else if let seconds = exact[path] {
                    entries[i].mtime = Timestamp(seconds: seconds)
                }
            }
        }
        update(&listing.entries, .empty)
    }

    /// The remembered exact time of a listed file, if the listing agrees with it: the same size,
    /// the time inside the LIST window, and the window over before the time was known, so that
    /// no later change could have left the LIST line as it was.
    static func trustedTime(_ known: KnownTime?, entry: Entry, width: Int64, slack: Int64) -> KnownTime? {
        guard let known, known.size == entry.size else { return nil }
        let start = entry.mtime.seconds - slack
        let end = entry.mtime.seconds + width + slack
        return known.seconds >= start && known.seconds < end && end < known.knownAt ? known : nil
    }

    // MARK: a run's life cycle

    /// Set by `beginRun`, before the listing and `prepare`.
    private var run = RunSettings(side: .destination, dryRun: false)

    public func beginRun(_ run: RunSettings) {
        self.run = run
        if let file = run.memoryFile { rememberTimes(in: file) }
    }

    /// A destination's files get the source's times, so it learns how to set them too; a dry
    /// run takes the last run's measurement where there is one.
    public func prepare(say: (String) -> Void) throws {
        try prepare(needsTimeSetter: run.side == .destination, dryRun: run.dryRun, say: say)
    }

    public func useListingHint(_ hint: ListingHint) { listingHint = hint }

    /// A far server (see `ConnectionPool.nearBelow`) transfers on as many connections as it
    /// lists on: a small file there costs round trips (the data connection's set-up, the
    /// command, the transfer's end), not bandwidth, so more at once finish sooner.
    public func transfersAtOnce(_ given: Int) -> Int { max(given, pool.size - pool.retired) }

    /// A source gives its times to the files it writes: every coarse time is made exact.
    public func refineTimes(_ listing: inout Listing, comparedWith other: [Entry]) {
        refineTimes(&listing, comparedWith: other, slack: 1, everyFile: run.side == .source)
    }

    public func finishRun() { saveRememberedTimes() }

    /// Reads the exact times that the previous run of this definition set or read (`path`, a
    /// file of the state directory), and saves this run's there in `saveRememberedTimes`. A
    /// missing or unreadable file only means more MDTM commands.
    func rememberTimes(in path: String) {
        memoryPath = path
        guard let bytes = Posix.readFile(path, limit: 256 << 20) else { return }
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)[...]
        guard let header = lines.popFirst(), Array(header) == Self.memoryHeader(displayName) else { return }
        for line in lines {
            let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 3, omittingEmptySubsequences: false)
            func number(_ field: ArraySlice<UInt8>) -> Int64? { Int64(String(decoding: field, as: UTF8.self)) }
            guard fields.count == 4, let size = number(fields[0]), let seconds = number(fields[1]),
                let knownAt = number(fields[2]), !fields[3].isEmpty
            else { continue }
            remembered[FileName(bytes: Array(fields[3]))] = KnownTime(size: size, seconds: seconds, knownAt: knownAt)
        }
        // What the run folders of the versions folder hold (lines no older reader takes either).
        rememberedIndex = VersionsIndex(stateLines: lines)
        // The last run's clock measurement: "clock OFFSET LIST-OFFSET SETTER" (a line no older
        // reader takes for a file: its first field is not a number).
        for line in lines where line.starts(with: Self.clockTag) {
            let fields = line.split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
            if fields.count == 4, let offset = Int64(fields[1]), let list = Int64(fields[2]),
                let setter = TimeSetter(rawValue: fields[3])
            {
                rememberedClock = (offset, list, setter, false)
            }
        }
        // "clock-zone": the LIST offset was measured on the server (not taken as MDTM's).
        if rememberedClock != nil, lines.contains(where: { Array($0) == Self.zoneTag }) { rememberedClock!.zone = true }
    }
    private static let clockTag = Array("clock ".utf8)
    private static let zoneTag = Array("clock-zone".utf8)
    private var rememberedClock: (offset: Int64, listOffset: Int64, setter: TimeSetter, zone: Bool)?

    /// Saves what this run set or read (files of the previous run not seen again are dropped).
    /// Writes nothing when that is what the file holds already (a run that changed nothing).
    func saveRememberedTimes() {
        guard let memoryPath else { return }
        let known = state.withLock { learned }
        let index = state.withLock { versionsIndex } ?? rememberedIndex
        if let last = rememberedClock, last == (clockOffset, listOffset, setter, zoneMeasured), known == remembered,
            index == rememberedIndex
        {
            return
        }
        var bytes = Self.memoryHeader(displayName) + [UInt8(ascii: "\n")]
        bytes.reserveCapacity(known.count * 48)
        bytes += Self.clockTag + Array("\(clockOffset) \(listOffset) \(setter.rawValue)\n".utf8)
        if zoneMeasured { bytes += Self.zoneTag + [UInt8(ascii: "\n")] }
        for (path, time) in known {
            bytes += Array("\(time.size) \(time.seconds) \(time.knownAt) ".utf8) + path.bytes + [UInt8(ascii: "\n")]
        }
        bytes += index.stateLines
        _ = Posix.writeFileAtomically(memoryPath, bytes)
    }

    static func memoryHeader(_ displayName: String) -> [UInt8] { Array("plugsync-ftp-times 1 \(displayName)".utf8) }

    static func find(_ name: FileName, in entries: [Entry]) -> Entry? {
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].name < name { low = mid + 1 } else { high = mid }
        }
        return low < entries.count && entries[low].name == name ? entries[low] : nil
    }

    // MARK: Endpoint: reading

    public func openForReading(_ path: FileName, entry: Entry) throws -> ReadableFile {
        let connection = try pool.checkOut()
        do {
            let download = try connection.download(absolute(path).bytes, size: entry.size)
            return RemoteFile(download: download, expected: entry.size, display: display(path)) { [pool] in
                pool.checkIn(connection)
            }
        } catch {
            pool.checkIn(connection)
            throw error
        }
    }

    /// A download that must deliver exactly the listed size: in stream mode the end of the data
    /// connection is the end of the file, so a connection cut (or a file changing on the server)
    /// would otherwise pass for a complete file. Never reads more than one byte past the size.
    final class RemoteFile: ReadableFile {
        let download: FTPDownload
        let expected: Int64
        let display: String
        let done: () -> Void
        var closed = false
        var received: Int64 = 0
        init(download: FTPDownload, expected: Int64, display: String, done: @escaping () -> Void) {
            self.download = download
            self.expected = expected
            self.display = display
            self.done = done
        }
        var localDescriptor: Int32? { nil }
        func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            if buffer.count == 0 { return 0 }
            let room = Int(min(Int64(buffer.count), max(0, expected - received) + 1))
            let n = try download.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<room]))
            received += Int64(n)
            if received > expected {
                // Not worth a retry: the file grew on the server (or the server lies about sizes).
                throw FTPError(
                    .protocolError, "\(display): the server sent more than the listed \(expected) bytes; not copied")
            }
            if n == 0 && received < expected {
                throw FTPError(
                    .interrupted,
                    "\(display): the download ended after \(received) of \(expected) bytes (a broken connection, or the file changed on the server)"
                )
            }
            return n
        }
        func close() {
            guard !closed else { return }
            closed = true
            download.close()
            done()
        }
    }

    /// Reads the first `limit` bytes of a file under the root (File Checks).
    public func contents(of path: FileName, limit: Int) throws -> [UInt8] {
        try pool.with { try $0.contents(of: absolute(path).bytes, limit: limit) }
    }

    // MARK: Endpoint: writing

    /// One file on its own: the size check and the time go with the upload (on a connection
    /// that cannot pipeline, in the same request), the rename in one more round trip.
    public func receive(
        _ path: FileName, from file: ReadableFile, entry: Entry, replacing: Bool, progress: (Int64) -> Void
    ) throws {
        forgetRootListing()
        let staged = [StagedFile(path: path, entry: entry, replacing: replacing)]
        try pool.with { connection in
            let names = Names(staged, self, connection, staged: false)
            let replies = try upload(
                names.temporary[0], file, entry, progress, after: afterUpload(staged[0], names, 0, size: true),
                connection)
            try readBack(names, entry, file.writeCheck, connection)
            var results: [Error?] = [nil]
            var open: Set<Int> = [0]
            try putInPlace(staged, names, sizes: [nil], replies: [.success(replies)], &results, &open, connection)
            if let error = results[0] { throw error }
        }
    }

    /// With `verify: true` (`check`): downloads the file just uploaded under its temporary name
    /// (the first of `names`) and has it compared with what was sent, before anything is renamed;
    /// when it differs or cannot be read, the temporary file is removed. The one place this
    /// endpoint reads back: a run that verifies puts each file in place on its own (`receive`),
    /// not in batches (`commit`).
    private func readBack(_ names: Names, _ entry: Entry, _ check: WriteCheck?, _ connection: FTPConnection) throws {
        guard let check else { return }
        do {
            let download = try connection.download(names.temporary[0].bytes, size: entry.size)
            let file = RemoteFile(
                download: download, expected: entry.size,
                display: options.display + "/" + names.temporary[0].description
            ) {}
            defer { file.close() }
            try check.compare(readBack: file)
        } catch {
            _ = try? connection.command([Array("*DELE ".utf8) + names.temporaryPaths[0]])
            throw error
        }
    }

    /// Whether `stage` and `commit` pay: they do on every connection (each pipelines), where a
    /// batch's checks, times and renames take a few round trips instead of two per file.
    public var stagesInBatches: Bool { true }

    /// Uploads a file under its temporary name in its folder (`commit` puts it in place), or
    /// under its own name into a folder being built (`buildFolder`).
    public func stage(_ path: FileName, from file: ReadableFile, entry: Entry, progress: (Int64) -> Void) throws {
        forgetRootListing()
        let (place, built) = self.place(path)
        let temporary = absolute(built ? place : ListingFilter.temporaryName(for: place))
        try pool.with { connection in
            _ = try upload(temporary, file, entry, progress, after: [], connection)
        }
        state.withLock { folderEntries[temporary.parent, default: 0] += 1 }
    }

    /// Uploads `file` to `temporary` and sends `after`; a failure removes the temporary file.
    private func upload(
        _ temporary: FileName, _ file: ReadableFile, _ entry: Entry, _ progress: (Int64) -> Void,
        after: [[UInt8]], _ connection: FTPConnection
    ) throws -> [FTPReply] {
        do {
            return try withoutActuallyEscaping(progress) { progress in
                try connection.upload(to: temporary.bytes, size: entry.size, after: after) { buffer in
                    let n = try file.read(into: buffer)
                    progress(Int64(n))
                    return n
                }
            }
        } catch {
            _ = try? connection.command([Array("*DELE ".utf8) + connection.commandPath(temporary.bytes)])
            throw error
        }
    }

    /// Entries known to be in a folder (path from the login directory): as listed, plus the
    /// files staged there since. Tells `commit` whether listing the folder costs less than a
    /// SIZE per file.
    private var folderEntries: [FileName: Int] = [:]

    /// The temporary and final names of files, absolute and as commands name them. A file that
    /// `stage` wrote into a folder being built has its final name there (`staged`); one that
    /// `receive` writes there gets a temporary name in it.
    private struct Names {
        var temporary: [FileName] = []
        var final: [FileName] = []
        var temporaryPaths: [[UInt8]]
        var finalPaths: [[UInt8]]
        init(_ files: [StagedFile], _ endpoint: FTPEndpoint, _ connection: FTPConnection, staged: Bool) {
            for file in files {
                let (place, built) = endpoint.place(file.path)
                final.append(endpoint.absolute(place))
                temporary.append(endpoint.absolute(staged && built ? place : ListingFilter.temporaryName(for: place)))
            }
            temporaryPaths = temporary.map { connection.commandPath($0.bytes) }
            finalPaths = final.map { connection.commandPath($0.bytes) }
        }
    }

    /// Folders being built under their temporary names (relative paths; guarded by `state`).
    private var building: Set<FileName> = []

    /// Where the file `path` goes now: `path`, or while its folder is being built, its name in
    /// the folder's temporary one (`built`).
    private func place(_ path: FileName) -> (path: FileName, built: Bool) {
        let folder = path.parent
        guard !folder.isEmpty, state.withLock({ building.contains(folder) }) else { return (path, false) }
        return (ListingFilter.temporaryName(for: folder).appending(path.lastComponent), true)
    }

    public func buildFolder(_ path: FileName) throws {
        forgetRootListing()
        let temporary = absolute(ListingFilter.temporaryName(for: path))
        _ = try pool.with { try $0.command([Array("MKD ".utf8) + $0.commandPath(temporary.bytes)]) }
        state.withLock {
            building.insert(path)
            folderEntries[temporary] = 0
        }
    }

    public func commitFolder(_ path: FileName, holding files: [StagedFile], verify: Bool) throws {
        forgetRootListing()
        let temporary = absolute(ListingFilter.temporaryName(for: path))
        let final = absolute(path)
        defer {
            state.withLock {
                building.remove(path)
                folderEntries[temporary] = nil
            }
        }
        try pool.with { connection in
            if verify {
                // A failed upload may have left a short file under its final name in the folder.
                var sizes: [[UInt8]: Int64] = [:]
                for file in files { sizes[file.path.lastComponent.bytes] = file.entry.size }
                try clear(temporary, keeping: sizes, connection)
            }
            do {
                try connection.pipeline([
                    Array("RNFR ".utf8) + connection.commandPath(temporary.bytes),
                    Array("RNTO ".utf8) + connection.commandPath(final.bytes),
                ])
            } catch let error as FTPError where error.kind == .refused || error.kind == .notFound {
                // Tried again after a cut connection: the first try may have renamed it.
                if try directoryExists(final, connection), try !directoryExists(temporary, connection) { return }
                throw error
            }
        }
    }

    public func removeTemporaryFolder(_ path: FileName) throws {
        forgetRootListing()
        let folder = absolute(path)
        try pool.with { connection in
            try clear(folder, keeping: [:], connection)
            try connection.command([Array("RMD ".utf8) + connection.commandPath(folder.bytes)])
        }
    }

    /// Deletes the files in `folder` (a path from the login directory) but those `keeping` names
    /// with the size they have; throws, deleting nothing, where it holds anything but files.
    private func clear(_ folder: FileName, keeping sizes: [[UInt8]: Int64], _ connection: FTPConnection) throws {
        var deletions: [[UInt8]] = []
        for item in try entries(of: folder, connection) {
            if item.kind == .file, let size = sizes[item.name], size == item.size { continue }
            guard item.kind == .file, FTPListingParser.isSafeName(item.name) else {
                throw FTPError(.refused, "\(options.display)/\(folder): holds an entry that is not one of its files")
            }
            deletions.append(
                Array("DELE ".utf8) + connection.commandPath(folder.appending(FileName(bytes: item.name)).bytes))
        }
        _ = try connection.pipeline(deletions)
    }

    /// Puts staged files in place, in three round trips for the whole batch where the connection
    /// can pipeline (a round trip is a KiB of commands):
    ///
    /// 1. The sizes. The end of the data connection is the end of the file for the server too: a
    ///    connection cut on its side leaves a short file and a 226. So each size is checked
    ///    before the rename: one listing of the folder when it holds few files besides the
    ///    batch, else SIZE for each (where a listing did not show the file). With the sizes go
    ///    the times, set on the temporary files (a rename keeps them), so a refused rename never
    ///    leaves the old file with the new file's time.
    /// 2. The renames (RNFR and RNTO) of the files whose size and time are right.
    /// 3. The removal of the temporary files that are not renamed.
    public func commit(_ files: [StagedFile]) -> [Error?] { commit(files, versions: nil) }

    /// `commit`, and with `versions`, the files replaced kept first (`putInPlace`).
    private func commit(_ files: [StagedFile], versions: [FileName?]?) -> [Error?] {
        if files.isEmpty { return [] }
        forgetRootListing()
        var results = [Error?](repeating: nil, count: files.count)
        var open = Set(files.indices)  // no result yet
        do {
            try pool.with { connection in
                let names = Names(files, self, connection, staged: true)
                let sizes = listedSizes(names.temporary, connection)
                let groups = files.indices.map { afterUpload(files[$0], names, $0, size: sizes[$0] == nil) }
                let replies = try connection.pipeline(groups: groups)
                try putInPlace(
                    files, names, sizes: sizes, replies: replies, &results, &open, connection, versions: versions)
            }
        } catch {
            for index in open { results[index] = error }
        }
        return results
    }

    /// The sizes of the temporary files from one listing of their folder, when it holds no more
    /// than `listingPerFile` entries per file (nil for each file otherwise, or not listed).
    private func listedSizes(_ temporary: [FileName], _ connection: FTPConnection) -> [Int64?] {
        let folder = temporary[0].parent
        guard temporary.allSatisfy({ $0.parent == folder }),
            state.withLock({ folderEntries[folder] ?? 0 }) <= Self.listingPerFile * temporary.count,
            let listed = try? entries(of: folder, connection)
        else { return temporary.map { _ in nil } }
        var sizes: [[UInt8]: Int64] = [:]
        for item in listed where item.kind == .file { sizes[item.name] = item.size }
        return temporary.map { sizes[$0.lastComponent.bytes] }
    }

    /// A folder holding up to this many entries per file of a batch is listed to check the
    /// sizes (one command and a data connection instead of one SIZE per file).
    static let listingPerFile = 4

    /// The commands after a file's upload: SIZE (when `size`) and setting the time, both on the
    /// temporary file.
    private func afterUpload(_ file: StagedFile, _ names: Names, _ index: Int, size: Bool) -> [[UInt8]] {
        var commands: [[UInt8]] = []
        if size { commands.append(Array("*SIZE ".utf8) + names.temporaryPaths[index]) }
        let value = FTPListingParser.timeValue(file.entry.mtime.seconds + clockOffset)
        if let command = Self.setTimeCommand(setter, value: value, path: names.temporaryPaths[index]) {
            commands.append(command)
        }
        return commands
    }

    /// Steps 1 (the replies' side), 2 and 3 of `commit`: `replies` answer `afterUpload`.
    ///
    /// With `versions` (one per file, nil for none), the files to be replaced are first moved to
    /// their version paths, all in one round trip (`moveAll`), then those moved, and those
    /// with nothing there, are renamed into place in the next. Not in one write with their
    /// renames: a move refused after its RNFR was taken (a folder that could not be made, a
    /// path too long) would let the rename that follows replace the old file, which would then
    /// be lost. A file whose old one could not be kept stays as it is, and fails. One whose
    /// rename fails after its old file was moved gets the old one back.
    private func putInPlace(
        _ files: [StagedFile], _ names: Names, sizes: [Int64?], replies: [Result<[FTPReply], FTPError>],
        _ results: inout [Error?], _ open: inout Set<Int>, _ connection: FTPConnection, versions: [FileName?]? = nil
    ) throws {
        var renames: [Int] = []
        var done: [Int] = []
        for (index, result) in zip(files.indices, replies) {
            let file = files[index]
            switch result {
            case .failure(let error):
                results[index] = error
            case .success(let replies):
                var size = sizes[index]
                if size == nil, let reply = replies.first, reply.code == 213 { size = Int64(reply.text.trimmingSpaces) }
                if let size, size != file.entry.size {
                    results[index] = FTPError(
                        .interrupted,
                        "\(display(file.path)): the server holds \(size) of \(file.entry.size) bytes after the upload (a broken connection); not renamed"
                    )
                } else if names.temporary[index] == names.final[index] {
                    done.append(index)  // in place in its folder being built
                } else {
                    renames.append(index)
                }
            }
        }
        var moved: [Int: FileName] = [:]  // file -> where its old file went
        if let versions {
            let keeping = renames.filter { versions[$0] != nil }
            if !keeping.isEmpty {
                let outcomes = try moveAll(keeping.map { (files[$0].path, versions[$0]!) }, connection)
                var refused = Set<Int>()
                for (index, error) in zip(keeping, outcomes) {
                    if let error {
                        // Nothing there to keep (a retried batch whose first try moved it): renamed.
                        if EndpointErrorKind.of(error) == .notFound { continue }
                        results[index] = error
                        refused.insert(index)
                    } else {
                        moved[index] = versions[index]!
                    }
                }
                renames.removeAll { refused.contains($0) }
            }
        }
        func rename(_ index: Int) -> [[UInt8]] {
            [Array("RNFR ".utf8) + names.temporaryPaths[index], Array("RNTO ".utf8) + names.finalPaths[index]]
        }
        for (index, result) in zip(renames, try connection.pipeline(groups: renames.map(rename))) {
            switch result {
            case .success:
                done.append(index)
            case .failure(let error) where files[index].replacing && Self.renameFailed(error):
                // Some servers will not rename onto an existing name: remove it, then rename.
                do {
                    try connection.command([Array("DELE ".utf8) + names.finalPaths[index]])
                    try connection.pipeline(rename(index))
                    done.append(index)
                } catch let error as FTPError where error.kind == .refused || error.kind == .notFound {
                    results[index] = error
                }
            case .failure(let error):
                results[index] = error
            }
        }
        let failed = files.indices.filter { results[$0] != nil }
        // An old file moved for a new one that did not take its place comes back.
        let back = failed.compactMap { index in
            moved[index].map {
                [
                    Array("*RNFR ".utf8) + connection.commandPath(absolute($0).bytes),
                    Array("*RNTO ".utf8) + names.finalPaths[index],
                ]
            }
        }
        if !back.isEmpty { _ = try? connection.pipeline(groups: back) }
        open.subtract(done)
        open.subtract(failed)
        _ = try? connection.pipeline(groups: failed.map { [Array("*DELE ".utf8) + names.temporaryPaths[$0]] })
        let now = Int64(wallClockSeconds())
        state.withLock {
            if setter != .none {
                for index in done {
                    let entry = files[index].entry
                    learned[files[index].path] = KnownTime(size: entry.size, seconds: entry.mtime.seconds, knownAt: now)
                }
            }
            for index in failed { folderEntries[names.temporary[index].parent, default: 0] -= 1 }
        }
    }

    static func renameFailed(_ error: FTPError) -> Bool { error.replyCode == 553 || error.message.contains("RNTO") }

    public func createDirectory(_ path: FileName) throws {
        forgetRootListing()
        try pool.with { connection in
            do {
                try connection.command([Array("MKD ".utf8) + connection.commandPath(absolute(path).bytes)])
            } catch let error as FTPError where error.kind == .refused || error.kind == .notFound {
                if try directoryExists(absolute(path), connection) { return }
                throw error
            }
        }
    }

    public func createSymlink(_ path: FileName, entry: Entry) throws {
        forgetRootListing()
        throw FTPError(.refused, "\(display(path)): FTP servers cannot store symbolic links")
    }

    public func remove(_ path: FileName, kind: EntryKind) throws {
        forgetRootListing()
        try pool.with { connection in
            do {
                try connection.command([
                    Array((kind == .directory ? "RMD " : "DELE ").utf8) + connection.commandPath(absolute(path).bytes)
                ])
            } catch let error as FTPError where (error.replyCode ?? 0) >= 500 {
                // A refusal says little (vsftpd: "550 Remove directory operation failed."): the
                // folders' listings tell an entry that is not there from a folder that still
                // holds entries. One more round trip, on failures only.
                if kind == .directory && error.message.lowercased().contains("not empty") {
                    throw EndpointError(.notEmpty, "\(display(path)): \(error.message)")
                }
                guard let siblings = try? entries(of: absolute(path.parent), connection) else { throw error }
                if !siblings.contains(where: { $0.name == path.lastComponent.bytes }) {
                    throw EndpointError(.notFound, "\(display(path)): not there")
                }
                if kind == .directory, let inside = try? entries(of: absolute(path), connection), !inside.isEmpty {
                    throw EndpointError(.notEmpty, "\(display(path)): \(error.message)")
                }
                throw error
            }
        }
    }

    public func setFolderAttributes(_ path: FileName, entry: Entry) throws {}

    public func flush() throws {}

    /// Closes every connection (each sends QUIT as it goes).
    public func disconnect() { pool.drain() }

    // MARK: paths

    fileprivate func absolute(_ path: FileName) -> FileName { root.isEmpty ? path : root.appending(path) }

    private func relative(_ folder: FileName) -> FileName {
        if root.isEmpty { return folder }
        if folder == root { return .empty }
        return FileName(bytes: Array(folder.bytes.dropFirst(root.bytes.count + 1)))
    }

    private func display(_ path: FileName) -> String { options.display + "/" + path.description }
}

/// A problem found while listing that is not a system call's errno (a server's refusal, an
/// unsafe name).
public struct ListingError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var message: String
    public var description: String { "\(path): \(message)" }
}

/// The clock probe's upload was refused: the user must set the difference by hand.
public struct ClockProbeRefused: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}

extension FTPError: EndpointFailure {
    public var endpointErrorKind: EndpointErrorKind {
        if isRetryable { return .retryable }
        return kind == .notFound ? .notFound : .permanent
    }
}

/// Logged-in connections handed to one thread at a time, up to `size`: `opened` of them by
/// `connect` (the first, and the others alongside it), the rest on first need.
///
/// A server may take fewer connections from one address than `size` (vsftpd's max_per_ip,
/// proftpd's MaxClientsPerHost): a connection it refuses beyond the first leaves its place empty
/// for the rest of the run, and the run goes on with the connections it has.
final class ConnectionPool: @unchecked Sendable {
    let options: FTPOptions
    let size: Int
    private var idle: [FTPConnection] = []
    private let mutex = Lock()
    /// Places free to check out (a connection idle, or one to open); a place given up
    /// (`refusesMore`) is never freed again.
    private var free: Int
    private let freed = Condition()
    /// Connections logged in so far (idle or in use).
    private var live = 0
    /// Connections logged in and not in use.
    var idleCount: Int { mutex.withLock { idle.count } }
    /// Places left empty because the server refused one more connection.
    var refused: Int { mutex.withLock { refusedPlaces } }
    private var refusedPlaces = 0

    /// Connections `connect` opens (the others open on first need).
    let opened: Int
    /// A server whose set-up round trip takes less (nanoseconds) is near: the places beyond
    /// `opened` are given up (`retired`).
    let nearBelow: UInt64
    /// Places given up because the server is near.
    private(set) var retired = 0
    /// The set-up round trip took `nearBelow` or more: each connection asks for the next
    /// transfer's passive port while a transfer runs (`FTPConnection.passiveAhead`), until a
    /// connection finds the server answers that otherwise.
    private(set) var far = false
    private var aheadRefused = false

    init(options: FTPOptions, size: Int, opened: Int? = nil, nearBelow: UInt64 = 5_000_000) {
        self.options = options
        self.size = size
        self.opened = min(size, opened ?? size)
        self.free = size
        self.nearBelow = nearBelow
    }

    func checkOut() throws -> FTPConnection {
        while true {
            _ = takePlace(waiting: true)
            if let connection = mutex.withLock({ idle.popLast() }) { return ahead(connection) }
            do {
                return ahead(try open())
            } catch let error as FTPError where refusesMore(error) {
                continue  // its place stays empty (the permit is not given back): wait for another
            } catch {
                givePlace()
                throw error
            }
        }
    }

    private func takePlace(waiting: Bool) -> Bool {
        freed.lock()
        defer { freed.unlock() }
        while free == 0 {
            if !waiting { return false }
            _ = freed.wait(until: Condition.now() + 1)
        }
        free -= 1
        return true
    }

    /// Gives up the places beyond `opened` (no checkout has reached them yet: `connect` runs
    /// before any).
    private func retireListingPlaces() {
        freed.lock()
        retired = min(free, size - opened)
        free -= retired
        freed.unlock()
    }

    private func givePlace() {
        freed.lock()
        free += 1
        freed.broadcast()
        freed.unlock()
    }

    func checkIn(_ connection: FTPConnection) {
        mutex.withLock {
            if connection.passiveAheadRefused { aheadRefused = true }
            if !closed { idle.append(connection) }
        }
        givePlace()
    }

    private func ahead(_ connection: FTPConnection) -> FTPConnection {
        connection.passiveAhead = mutex.withLock { far && !aheadRefused }
        return connection
    }

    /// Whether `error`, from opening one more connection while others are logged in with the
    /// same login, is the server refusing more connections from this address: a 421 (vsftpd's
    /// max_per_ip), or a refused login (proftpd's MaxClientsPerHost answers the password with
    /// 530). The place is then given up, once and for all (`refused`).
    private func refusesMore(_ error: FTPError) -> Bool {
        let text = error.message.lowercased()
        let limit =
            error.replyCode == 421 || error.kind == .login || text.contains("too many") || text.contains("maximum")
        return mutex.withLock {
            guard limit, live > 0 else { return false }
            refusedPlaces += 1
            return true
        }
    }

    /// Opens the first connection on the calling thread, runs `setup` on it and returns it to
    /// the pool; `setup` returns the commands each other connection sends after its login.
    ///
    /// The others start as soon as the server greeted the first (so a server's limit per
    /// address refuses one of them, never the first): their greetings and user names overlap
    /// the first login, and they send their passwords only once the first password was taken.
    /// A wrong password is tried once, gives one error (the first's), and does not lock an
    /// account by being tried once per connection.
    func connect(_ setup: (FTPConnection) throws -> [String]) throws {
        let gate = LoginGate(seconds: Double(options.connectTimeout + options.responseTimeout))
        defer { gate.finish() }  // on every way out: no connection waits on
        _ = takePlace(waiting: true)
        let first: FTPConnection
        do {
            first = try FTPConnection(options, greeted: { [self] in openInBackground(gate) })
        } catch {
            givePlace()
            gate.finish()
            // The run ends with this error: not while the others are still logging in (TLS)
            waitForOpenings(seconds: Double(options.connectTimeout + options.responseTimeout))
            throw error
        }
        mutex.withLock { live += 1 }
        gate.loggedInFirst()
        defer { checkIn(first) }
        let commands: [String]
        do {
            let started = monotonicNanoseconds()
            commands = try setup(first)
            // The set-up is one round trip: where it is short (the server is on this machine or
            // its network), a login costs more than the waiting it saves, and the listing gets
            // no connections beyond those of the transfers.
            if monotonicNanoseconds() - started < nearBelow {
                retireListingPlaces()
            } else {
                mutex.withLock { far = true }
            }
        } catch {
            gate.finish()
            waitForOpenings(seconds: Double(options.connectTimeout + options.responseTimeout))
            throw error
        }
        first.afterLogin = commands
        setupCommands = commands
        gate.setUp(commands)
    }

    /// Logs in the connections not yet open, each on a thread of its own, while the caller goes
    /// on (a server's greeting and login take milliseconds each, and proftpd's master accepts
    /// one connection at a time). A login that fails only leaves its place empty: the next
    /// `checkOut` tries again and reports the error (but see `refusesMore`).
    private func openInBackground(_ gate: LoginGate) {
        // Called once, when the first connection (not yet logged in) was greeted.
        let missing = mutex.withLock { closed ? 0 : opened - 1 - idle.count - opening - live }
        for _ in 0..<max(0, missing) {
            guard takePlace(waiting: false) else { return }
            mutex.withLock { opening += 1 }
            startThread { [self] in
                var connection: FTPConnection?
                var keepPlace = true
                do {
                    connection = try open(gate)
                } catch let error as FTPError {
                    _ = gate.login()  // a refusal counts once the first is in (`refusesMore`)
                    keepPlace = !refusesMore(error)
                } catch {}
                mutex.withLock {
                    opening -= 1
                    if let connection, !closed { idle.append(connection) }
                }
                if keepPlace { givePlace() }
            }
        }
    }
    private var opening = 0
    private var closed = false

    /// Waits until no connection is being opened in the background (at most `seconds`).
    private func waitForOpenings(seconds: Double) {
        let deadline = Condition.now() + seconds
        while mutex.withLock({ opening }) > 0 && Condition.now() < deadline { usleep(2000) }
    }

    /// Commands every new connection sends after its login (`OPTS UTF8 ON` where the server
    /// takes it, so that every connection sees the same names).
    var setupCommands: [String] {
        get { mutex.withLock { setup } }
        set { mutex.withLock { setup = newValue } }
    }
    private var setup: [String] = []

    /// Logs in one more connection; with `gate`, its password waits for the first login's
    /// answer and its set-up for the first connection's (`connect`).
    private func open(_ gate: LoginGate? = nil) throws -> FTPConnection {
        let connection = try FTPConnection(options, beforePassword: gate.map { gate in { gate.login() } })
        let commands: [String]
        if let gate {
            guard let known = gate.setup() else {
                throw FTPError(.local, "\(options.display): the first connection's set-up failed")
            }
            commands = known
        } else {
            commands = setupCommands
        }
        mutex.withLock { live += 1 }
        for command in commands { try connection.command(command) }
        connection.afterLogin = commands
        return connection
    }

    func with<R>(_ body: (FTPConnection) throws -> R) throws -> R {
        let connection = try checkOut()
        defer { checkIn(connection) }
        return try body(connection)
    }

    /// Closes the idle connections; connections checked in later are closed, not kept.
    func drain() {
        let connections = mutex.withLock {
            closed = true
            defer { idle.removeAll() }
            return idle.map { Unmanaged.passRetained($0) }
        }
        // Each says QUIT and waits a moment for the server's 221 as it goes: all at once, not
        // one after the other at the end of every run.
        runOnThreads(connections.count) { connections[$0].release() }
    }
}

/// What the connections opened alongside the first wait for (`ConnectionPool.connect`): the
/// first login's outcome before they send their passwords, and the first connection's set-up.
final class LoginGate: @unchecked Sendable {
    private let condition = Condition()
    private var loggedIn: Bool?
    private var commands: [String]?
    private var settled = false
    /// The longest wait: the first connection's own time-outs.
    private let seconds: Double

    init(seconds: Double) { self.seconds = seconds }

    /// The first connection logged in.
    func loggedInFirst() { change { $0.loggedIn = true } }

    /// The first connection's set-up is done: the commands the others send after their login.
    func setUp(_ commands: [String]) { change { $0.commands = commands } }

    /// The first connection is done, whatever happened: a login or set-up not reported by now
    /// failed.
    func finish() {
        change {
            if $0.loggedIn == nil { $0.loggedIn = false }
            $0.settled = true
        }
    }

    private func change(_ body: (LoginGate) -> Void) {
        condition.lock()
        body(self)
        condition.broadcast()
        condition.unlock()
    }

    /// Whether the first login succeeded (false after the longest wait).
    func login() -> Bool {
        wait { $0.loggedIn != nil }
        return loggedIn ?? false
    }

    /// The set-up commands, nil where the first connection failed.
    func setup() -> [String]? {
        wait { $0.settled || $0.commands != nil }
        return commands
    }

    private func wait(_ done: (LoginGate) -> Bool) {
        let deadline = Condition.now() + seconds
        condition.lock()
        while !done(self) && Condition.now() < deadline {
            _ = condition.wait(until: min(deadline, Condition.now() + 1))
        }
        condition.unlock()
    }
}

extension String {
    /// Without leading and trailing spaces (a `213 1234 ` reply).
    fileprivate var trimmingSpaces: String {
        String(self.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}

func wallClockSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

// MARK: versions

// A server holds no hard links: the old file is renamed (RNFR, RNTO) into the versions folder
// once the whole new file is on the server under its temporary name, then the new one is
// renamed into place. A run killed between the two leaves the final name absent, never
// partial; the next run uploads the file again.
extension FTPEndpoint {
    public func receive(
        _ path: FileName, from file: ReadableFile, entry: Entry, keepingVersion version: FileName, of old: Entry,
        progress: (Int64) -> Void
    ) throws {
        forgetRootListing()
        let staged = [StagedFile(path: path, entry: entry, replacing: true)]
        try pool.with { connection in
            let names = Names(staged, self, connection, staged: false)
            let replies = try upload(
                names.temporary[0], file, entry, progress, after: afterUpload(staged[0], names, 0, size: true),
                connection)
            // Only a complete upload moves the old file: a short one fails in `putInPlace`.
            var complete = true
            if let reply = replies.first, reply.code == 213, let size = Int64(reply.text.trimmingSpaces) {
                complete = size == entry.size
            }
            // A copy that does not read back as sent moves nothing either.
            if complete { try readBack(names, entry, file.writeCheck, connection) }
            if complete {
                do {
                    try moveOnServer(path, to: version, connection)
                } catch let error where EndpointErrorKind.of(error) == .notFound {
                    // Nothing there to keep (a retried transfer whose first try moved it).
                } catch {
                    _ = try? connection.command([Array("*DELE ".utf8) + names.temporaryPaths[0]])
                    throw error
                }
            }
            var results: [Error?] = [nil]
            var open: Set<Int> = [0]
            try putInPlace(staged, names, sizes: [nil], replies: [.success(replies)], &results, &open, connection)
            if let error = results[0] { throw error }
        }
    }

    public func moveToVersions(_ path: FileName, to version: FileName, entry: Entry) throws {
        forgetRootListing()
        try pool.with { connection in try moveOnServer(path, to: version, connection) }
    }

    public func commit(_ files: [StagedFile], keepingVersions versions: [FileName?]) -> [Error?] {
        commit(files, versions: versions)
    }

    public func moveToVersions(_ moves: [VersionMove]) -> [Error?] {
        if moves.isEmpty { return [] }
        forgetRootListing()
        do {
            return try pool.with { connection in try moveAll(moves.map { ($0.path, $0.version) }, connection) }
        } catch {
            return moves.map { _ in error }
        }
    }

    /// Moves files (`path` to `version`, both relative) together: the MKD of each version
    /// folder not made yet in this run (each once, parents first; one that is there already is
    /// refused, and that is all), then RNFR and RNTO for each file, in one round trip where the
    /// connection can pipeline. A move the server refuses is tried again on its own
    /// (`moveOnServer`: nothing there gives a `notFound` error). One result per move.
    private func moveAll(_ moves: [(path: FileName, version: FileName)], _ connection: FTPConnection) throws
        -> [Error?]
    {
        var folders: [FileName] = []
        state.withLock {
            var seen = Set<FileName>()
            for move in moves {
                var missing: [FileName] = []
                var folder = move.version.parent
                while !folder.isEmpty && !versionFolders.contains(folder) && seen.insert(folder).inserted {
                    missing.append(folder)
                    folder = folder.parent
                }
                folders += missing.reversed()
            }
        }
        let made = folders.map { [Array("*MKD ".utf8) + connection.commandPath(absolute($0).bytes)] }
        let renames = moves.map {
            [
                Array("RNFR ".utf8) + connection.commandPath(absolute($0.path).bytes),
                Array("RNTO ".utf8) + connection.commandPath(absolute($0.version).bytes),
            ]
        }
        let replies = try connection.pipeline(groups: made + renames)
        state.withLock {
            for (folder, reply) in zip(folders, replies) {
                if case .success(let lines) = reply, lines.first?.code == 257 { versionFolders.insert(folder) }
            }
            // A file moved: its folders are there.
            for (move, reply) in zip(moves, replies.dropFirst(folders.count)) {
                guard case .success = reply else { continue }
                var folder = move.version.parent
                while !folder.isEmpty && versionFolders.insert(folder).inserted { folder = folder.parent }
            }
        }
        var results: [Error?] = []
        for (move, reply) in zip(moves, replies.dropFirst(folders.count)) {
            guard case .failure = reply else {
                results.append(nil)
                continue
            }
            do {
                try moveOnServer(move.path, to: move.version, connection)
                results.append(nil)
            } catch let error as FTPError where error.kind == .interrupted || error.kind == .connection {
                throw error  // the connection failed: the whole batch is tried again
            } catch {
                results.append(error)
            }
        }
        return results
    }

    /// RNFR and RNTO of `path` to `version` (both relative), its missing folders made first
    /// (MKD). Nothing at `path` throws a `notFound` error.
    private func moveOnServer(_ path: FileName, to version: FileName, _ connection: FTPConnection) throws {
        var missing: [FileName] = []
        var folder = version.parent
        while !folder.isEmpty && !state.withLock({ versionFolders.contains(folder) }) {
            missing.append(folder)
            folder = folder.parent
        }
        for folder in missing.reversed() {
            do {
                try connection.command([Array("MKD ".utf8) + connection.commandPath(absolute(folder).bytes)])
            } catch let error as FTPError where error.kind == .refused || error.kind == .notFound {
                if try !directoryExists(absolute(folder), connection) { throw error }
            }
            _ = state.withLock { versionFolders.insert(folder) }
        }
        do {
            try connection.pipeline([
                Array("RNFR ".utf8) + connection.commandPath(absolute(path).bytes),
                Array("RNTO ".utf8) + connection.commandPath(absolute(version).bytes),
            ])
        } catch let error as FTPError where (error.replyCode ?? 0) >= 500 {
            guard let siblings = try? entries(of: absolute(path.parent), connection) else { throw error }
            if !siblings.contains(where: { $0.name == path.lastComponent.bytes }) {
                throw EndpointError(.notFound, "\(display(path)): not there")
            }
            throw error
        }
    }

    public func listVersions() -> Listing {
        var listing = Listing()
        do {
            try pool.with { connection in
                let top = absolute(VersionsFolder.name)
                guard try directoryExists(top, connection) else { return }
                listing.entries = try tree(top, connection)
            }
        } catch {
            listing.errors.append(error)
        }
        return listing
    }

    /// What `folder` (from the login directory) holds, its folders with their contents: folder
    /// by folder, with a stack of its own (a tree on a server can be deep).
    private func tree(_ folder: FileName, _ connection: FTPConnection) throws -> [Entry] {
        var root: [Entry] = []
        var pending: [(folder: FileName, path: [Int])] = [(folder, [])]
        while let (folder, position) = pending.popLast() {
            var entries = try versionEntries(in: folder, connection)
            entries.sortByName()
            for index in entries.indices where entries[index].kind == .directory {
                pending.append((folder.appending(entries[index].name), position + [index]))
            }
            Self.place(entries, at: position, in: &root)
        }
        return root
    }

    /// The files and folders of one folder under the versions folder.
    private func versionEntries(in folder: FileName, _ connection: FTPConnection) throws -> [Entry] {
        var entries: [Entry] = []
        var coarseHere: [(FileName, Int64)] = []
        for item in try self.entries(of: folder, connection) {
            guard FTPListingParser.isSafeName(item.name), !item.name.starts(with: ListingFilter.temporaryPrefix)
            else { continue }
            let name = FileName(bytes: item.name)
            let mtime = Timestamp(seconds: item.time - clockOffset)
            switch item.kind {
            case .file:
                entries.append(Entry(name: name, kind: .file, size: item.size, mtime: mtime))
                // A coarse time is made exact on demand (`refineTimes`: a restore).
                if item.precision > 1 { coarseHere.append((relative(folder).appending(name), item.precision)) }
            case .directory: entries.append(Entry(name: name, kind: .directory, mtime: mtime, children: []))
            default: continue
            }
        }
        if !coarseHere.isEmpty {
            state.withLock { for (path, width) in coarseHere { coarse[path] = width } }
        }
        return entries
    }

    /// Puts a folder's entries at `position` (indexes from the root) of `tree`.
    private static func place(_ entries: [Entry], at position: [Int], in tree: inout [Entry]) {
        guard let first = position.first else {
            tree = entries
            return
        }
        var children = tree[first].children ?? []
        place(entries, at: Array(position.dropFirst()), in: &children)
        tree[first].children = children
    }
}

// MARK: pruning without listing the whole versions folder

extension FTPEndpoint: BatchVersionsEndpoint, VersionsLookup {
    public func listVersionRuns() -> Listing {
        var listing = Listing()
        do {
            try pool.with { connection in
                let top = absolute(VersionsFolder.name)
                do {
                    listing.entries = try versionEntries(in: top, connection).filter { $0.kind == .directory }
                    listing.entries.sortByName()
                } catch let error as FTPError where error.kind == .notFound || error.kind == .refused {
                    if try directoryExists(top, connection) { throw error }  // there, but not listed
                }
            }
        } catch {
            listing.errors.append(error)
        }
        return listing
    }

    /// The run folders listed on the connections of the pool at once, a run folder each.
    public func listVersionRuns(_ runs: [FileName]) -> Listing {
        var listing = Listing()
        var trees = [[Entry]?](repeating: nil, count: runs.count)
        var failure: Error?
        let lock = Lock()
        let queue = WorkQueue(count: runs.count)
        runOnThreads(min(pool.size, runs.count)) { _ in
            while let item = queue.next() {
                if lock.withLock({ failure != nil }) { return }
                do {
                    let children = try pool.with { try tree(absolute(VersionsFolder.name.appending(runs[item])), $0) }
                    lock.withLock { trees[item] = children }
                } catch {
                    lock.withLock { if failure == nil { failure = error } }
                    return
                }
            }
        }
        if let failure {
            listing.errors.append(failure)
            return listing
        }
        for (run, children) in zip(runs, trees) {
            listing.entries.append(Entry(name: run, kind: .directory, mtime: Timestamp(seconds: 0), children: children))
        }
        return listing
    }

    /// Kept in the state file with the remembered times (`saveRememberedTimes`).
    public func rememberedVersions() -> VersionsIndex? {
        memoryPath == nil ? nil : state.withLock { versionsIndex } ?? rememberedIndex
    }

    public func rememberVersions(_ index: VersionsIndex) { state.withLock { versionsIndex = index } }

    /// `MLST` (where the server has it) or `SIZE` for each path, pipelined, in batches shared by
    /// the connections; where many paths share a folder (`listingFrom`), one listing of the
    /// folder instead. Not SIZE on an MLST server: proftpd refuses it in ASCII mode, which a
    /// connection is in after a listing. A file's answer is `250` (MLST) or `213` (SIZE); `550`
    /// (or `450`) is nothing there; anything else (a server with neither) cannot tell.
    public func versionEntries(_ paths: [FileName]) throws -> [Entry?] {
        if paths.isEmpty { return [] }
        var byFolder: [FileName: [Int]] = [:]
        for (index, path) in paths.enumerated() { byFolder[path.parent, default: []].append(index) }
        var listed: [(folder: FileName, indexes: [Int])] = []
        var asked: [Int] = []
        for (folder, indexes) in byFolder {
            if indexes.count >= Self.listingFrom { listed.append((folder, indexes)) } else { asked += indexes }
        }
        asked.sort()
        var answers = [Entry?](repeating: nil, count: paths.count)
        var failure: Error?
        let lock = Lock()
        let batch = 64
        let chunks = (asked.count + batch - 1) / batch
        let queue = WorkQueue(count: listed.count + chunks)
        runOnThreads(min(pool.size, listed.count + chunks)) { _ in
            while let item = queue.next() {
                if lock.withLock({ failure != nil }) { return }
                do {
                    let found: [(Int, Entry?)]
                    if item < listed.count {
                        found = try pool.with {
                            try versionsListed(listed[item].indexes, in: listed[item].folder, paths, $0)
                        }
                    } else {
                        let start = (item - listed.count) * batch
                        let chunk = Array(asked[start..<min(asked.count, start + batch)])
                        found = try pool.with { try versionsAsked(chunk, paths, $0) }
                    }
                    lock.withLock { for (index, entry) in found { answers[index] = entry } }
                } catch {
                    lock.withLock { if failure == nil { failure = error } }
                    return
                }
            }
        }
        if let failure { throw failure }
        return answers
    }

    /// A folder holding at least this many of the paths `versionEntries` asks for is listed: one
    /// listing (a round trip by STAT, about four by MLSD) against as many commands.
    static let listingFrom = 16

    /// The answers for `paths[indexes]`, all in `folder`, from its listing (none where it is not).
    private func versionsListed(_ indexes: [Int], in folder: FileName, _ paths: [FileName], _ connection: FTPConnection)
        throws -> [(Int, Entry?)]
    {
        var files: [FileName: Entry] = [:]
        do {
            for entry in try versionEntries(in: absolute(VersionsFolder.name.appending(folder)), connection)
            where entry.kind == .file {
                files[entry.name] = entry
            }
        } catch let error as FTPError where error.kind == .notFound {
        }
        return indexes.map { ($0, files[paths[$0].lastComponent]) }
    }

    /// The answers for `paths[indexes]`, asked with one command each, pipelined.
    private func versionsAsked(_ indexes: [Int], _ paths: [FileName], _ connection: FTPConnection) throws
        -> [(Int, Entry?)]
    {
        let verb = features.names.contains("MLST") ? "MLST " : "SIZE "
        let commands = indexes.map {
            Array(("*" + verb).utf8) + connection.commandPath(absolute(VersionsFolder.name.appending(paths[$0])).bytes)
        }
        let replies = try connection.exchange(commands) ?? commands.map { try connection.command([$0]) }
        var found: [(Int, Entry?)] = []
        for (index, reply) in zip(indexes, replies) {
            let name = paths[index].lastComponent
            switch reply.code {
            case 213 where verb == "SIZE ":
                let size = Int64(reply.text.trimmingSpaces) ?? 0
                found.append((index, Entry(name: name, kind: .file, size: size, mtime: Timestamp(seconds: 0))))
            case 250 where verb == "MLST ":
                // ` type=file;size=12;modify=…; /path`: a folder is no version.
                let line = reply.lines.dropFirst().first { $0.contains("=") } ?? ""
                let facts = line.drop { $0 == " " }.prefix { $0 != " " }.lowercased()
                if facts.contains("type=dir") || facts.contains("type=cdir") || facts.contains("type=pdir") {
                    found.append((index, nil))
                    continue
                }
                var size: Int64 = 0
                for fact in facts.split(separator: ";") where fact.hasPrefix("size=") {
                    size = Int64(fact.dropFirst(5)) ?? 0
                }
                found.append((index, Entry(name: name, kind: .file, size: size, mtime: Timestamp(seconds: 0))))
            case 450, 550:
                found.append((index, nil))
            default:
                throw FTPError(
                    .protocolError, "\(options.display): \(verb)unexpected reply \(reply.code) \(reply.text)",
                    replyCode: reply.code)
            }
        }
        return found
    }

    public func removeVersions(_ versions: [FileName]) -> [Error?] {
        if versions.isEmpty { return [] }
        do {
            return try pool.with { connection in
                let groups = versions.map {
                    [Array("DELE ".utf8) + connection.commandPath(absolute(VersionsFolder.name.appending($0)).bytes)]
                }
                return try connection.pipeline(groups: groups).map { result -> Error? in
                    if case .failure(let error) = result { return error }
                    return nil
                }
            }
        } catch {
            return versions.map { _ in error }
        }
    }

    public func removeEmptyVersionFolders(_ folders: [FileName]) {
        if folders.isEmpty { return }
        _ = try? pool.with { connection in
            try connection.pipeline(
                folders.map {
                    Array("*RMD ".utf8) + connection.commandPath(absolute(VersionsFolder.name.appending($0)).bytes)
                })
        }
    }
}
