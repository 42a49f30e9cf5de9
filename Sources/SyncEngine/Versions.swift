#if canImport(Glibc)
    import Glibc
#endif

/// How long a definition keeps what its runs replace or delete (`versions:` in the definitions
/// file): versions older than `keepDays` are pruned, but each path keeps at least `keepMin` of
/// them whatever their age, and at most `keepMax`.
public struct VersionPolicy: Sendable, Equatable {
    /// Versions older than this many days are pruned (0: never by age).
    public var keepDays: Int
    /// Whatever their age, at least this many versions of each path stay.
    public var keepMin: Int
    /// At most this many versions of each path stay (0: no limit).
    public var keepMax: Int

    public static let defaultKeepDays = 30
    public static let defaultKeepMin = 3
    public static let defaultKeepMax = 20

    public init(
        keepDays: Int = VersionPolicy.defaultKeepDays, keepMin: Int = VersionPolicy.defaultKeepMin,
        keepMax: Int = VersionPolicy.defaultKeepMax
    ) {
        self.keepDays = keepDays
        self.keepMin = keepMin
        self.keepMax = keepMax
    }

    /// Why these values do not go together, or nil when they do.
    public var problem: String? {
        if keepDays < 0 { return "keep_days must be 0 or more" }
        if keepMin < 0 { return "keep_min must be 0 or more" }
        if keepMax < 0 { return "keep_max must be 0 or more" }
        if keepMax > 0 && keepMin > keepMax { return "keep_min (\(keepMin)) is more than keep_max (\(keepMax))" }
        return nil
    }
}

/// Where versions live on a destination: `.plugsync-versions/<run start>/<relative path>`, the
/// run's start in local time as `YYYY-MM-DD_HHMMSS`. A user can restore by hand from there with a
/// file manager: each run's folder holds the files it replaced or deleted, at their old paths.
public enum VersionsFolder {
    /// The folder's name at the destination's root. Never synchronized, never an orphan.
    public static let name = FileName(".plugsync-versions")

    /// `2026-10-01_120000` for a time in seconds since 1970, in local time.
    public static func stamp(_ seconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        localtime_r(&time, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))_"
            + "\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))"
    }

    /// The seconds since 1970 of a stamp (local time), or nil when `text` is not one.
    public static func seconds(ofStamp text: String) -> Int? {
        let bytes = Array(text.utf8)
        guard bytes.count == 17, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] == UInt8(ascii: "_")
        else { return nil }
        func number(_ range: Range<Int>) -> Int32? {
            var value: Int32 = 0
            for byte in bytes[range] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int32(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(13..<15), let second = number(15..<17),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var parts = tm()
        parts.tm_year = year - 1900
        parts.tm_mon = month - 1
        parts.tm_mday = day
        parts.tm_hour = hour
        parts.tm_min = minute
        parts.tm_sec = second
        parts.tm_isdst = -1
        let result = mktime(&parts)
        return result == -1 ? nil : Int(result)
    }

    /// The run's folder for versions: `.plugsync-versions/<stamp>`.
    public static func runFolder(stamp: String) -> FileName {
        name.appending(FileName(stamp))
    }
}

/// One version kept on a destination: a file (or link) below a run's folder.
public struct KeptVersion: Sendable {
    /// The run folder's name, `2026-10-01_120000`.
    public var stamp: String
    /// When that run started (seconds since 1970).
    public var seconds: Int
    /// The file's path relative to the synchronized folder (and to the run folder).
    public var path: FileName
    public var entry: Entry

    /// Its path relative to `.plugsync-versions`: `2026-10-01_120000/report.odt`.
    public var pathInVersions: FileName { FileName(stamp).appending(path) }

    /// Every version a listing of the versions folder (`Endpoint.listVersions`) holds, newest
    /// first (then by path). Folders whose name is not a run's time are left alone.
    public static func all(in entries: [Entry]) -> [KeptVersion] {
        var result: [KeptVersion] = []
        for run in entries where run.kind == .directory {
            let stamp = run.name.description
            guard let seconds = VersionsFolder.seconds(ofStamp: stamp) else { continue }
            var pending: [(FileName, Entry)] = (run.children ?? []).reversed().map { ($0.name, $0) }
            while let (path, entry) = pending.popLast() {
                if entry.kind == .directory {
                    for child in (entry.children ?? []).reversed() {
                        pending.append((path.appending(child.name), child))
                    }
                } else {
                    result.append(KeptVersion(stamp: stamp, seconds: seconds, path: path, entry: entry))
                }
            }
        }
        result.sort { $0.seconds != $1.seconds ? $0.seconds > $1.seconds : $0.path < $1.path }
        return result
    }
}

/// Decides which versions go, by the definition's `VersionPolicy`.
public enum VersionPruning {
    /// The versions to prune, each with its reason (`older than 30 days`, `more than 20
    /// versions`): per path, the newest `keepMin` always stay; beyond `keepMax` they go, and
    /// beyond `keepDays` (counted back from `now`, seconds since 1970).
    public static func plan(_ versions: [KeptVersion], policy: VersionPolicy, now: Int) -> [(KeptVersion, String)] {
        var byPath: [FileName: [KeptVersion]] = [:]
        for version in versions { byPath[version.path, default: []].append(version) }
        var result: [(KeptVersion, String)] = []
        for (_, group) in byPath {
            let newestFirst = group.sorted { $0.seconds > $1.seconds }
            for (index, version) in newestFirst.enumerated() where index >= policy.keepMin {
                if policy.keepMax > 0 && index >= policy.keepMax {
                    result.append((version, "more than \(policy.keepMax) versions"))
                } else if policy.keepDays > 0 && now - version.seconds > policy.keepDays * 86400 {
                    result.append((version, "older than \(policy.keepDays) day\(policy.keepDays == 1 ? "" : "s")"))
                }
            }
        }
        result.sort { $0.0.seconds != $1.0.seconds ? $0.0.seconds < $1.0.seconds : $0.0.path < $1.0.path }
        return result
    }

    /// Prunes `endpoint`'s versions by `policy`, then removes the version folders left empty.
    /// Each pruned version is told to `say` as a `Pruning` line; what cannot be removed to
    /// `sayError`. Returns how many versions were pruned.
    ///
    /// `versioned`: the paths this run kept versions of. Where the endpoint reads its versions
    /// folder in parts (`VersionsLookup`) and this is given, only what can go is read
    /// (`pruneInParts`); else the whole folder is listed.
    public static func prune(
        _ endpoint: Endpoint, policy: VersionPolicy, now: Int, versioned: Set<FileName>? = nil,
        say: (String) -> Void, sayError: (String) -> Void
    ) -> Int {
        if let lookup = endpoint as? VersionsLookup, let versioned,
            let pruned = pruneInParts(
                lookup, policy: policy, now: now, versioned: versioned, say: say, sayError: sayError)
        {
            return pruned
        }
        return pruneAll(endpoint, policy: policy, now: now, say: say, sayError: sayError)
    }

    /// Pruning from a listing of the whole versions folder.
    static func pruneAll(
        _ endpoint: Endpoint, policy: VersionPolicy, now: Int, say: (String) -> Void, sayError: (String) -> Void
    ) -> Int {
        let listing = endpoint.listVersions()
        for error in listing.errors { sayError("Cannot list the versions: \(error)") }
        if !listing.errors.isEmpty { return 0 }
        var pruned = 0
        var removed = Set<FileName>()  // relative to the versions folder
        for (version, reason) in plan(KeptVersion.all(in: listing.entries), policy: policy, now: now) {
            let inVersions = version.pathInVersions
            do {
                try endpoint.remove(VersionsFolder.name.appending(inVersions), kind: version.entry.kind)
                removed.insert(inVersions)
                pruned += 1
                say(ActionFormatter.format(verb: "Pruning", reason: reason, path: inVersions.description))
            } catch {
                sayError("Cannot prune \(VersionsFolder.name.appending(inVersions)): \(error)")
            }
        }
        // Folders left empty, children before parents: the run folders too, not the versions
        // folder itself.
        func removeEmpty(_ entry: Entry, _ path: FileName) -> Bool {
            guard entry.kind == .directory else { return removed.contains(path) }
            var empty = true
            for child in entry.children ?? [] where !removeEmpty(child, path.appending(child.name)) { empty = false }
            guard empty, entry.children != nil else { return false }
            do {
                try endpoint.remove(VersionsFolder.name.appending(path), kind: .directory)
                return true
            } catch {
                return false  // something else is in it (a leftover temporary file)
            }
        }
        for run in listing.entries
        where run.kind == .directory && VersionsFolder.seconds(ofStamp: run.name.description) != nil {
            _ = removeEmpty(run, run.name)
        }
        return pruned
    }
}

/// A file or link to move into the versions folder (`BatchVersionsEndpoint.moveToVersions`).
public struct VersionMove: Sendable {
    /// Where it is (relative to the endpoint's root).
    public var path: FileName
    /// Where it goes: `.plugsync-versions/<run start>/<path>`.
    public var version: FileName
    public var entry: Entry

    public init(path: FileName, version: FileName, entry: Entry) {
        self.path = path
        self.version = version
        self.entry = entry
    }
}

/// A destination that keeps versions within its batches: on a server, where each rename is a
/// round trip, the files a batch replaces go to the versions folder together, and so do the
/// files a run deletes.
public protocol BatchVersionsEndpoint: StagingEndpoint {
    /// As `commit`, but each file with a version path (`versions`, one per file, nil for none)
    /// first has the file at its final name, if there is one, moved there (as
    /// `receive(…keepingVersion:…)`): the final name holds the whole old file, then for a moment
    /// none, then the whole new one.
    func commit(_ files: [StagedFile], keepingVersions versions: [FileName?]) -> [Error?]
    /// `moveToVersions` for each of `moves`, together: one result each, in order (nil when
    /// moved; a `notFound` error where nothing was there).
    func moveToVersions(_ moves: [VersionMove]) -> [Error?]
}

/// An endpoint whose versions folder can be read in parts: its run folders alone, some of them
/// whole, single versions by path. Pruning then reads only where something can go, instead of
/// the whole folder after every run (on a server, each folder listed costs a round trip or more,
/// and the versions folder grows with what it keeps).
public protocol VersionsLookup: Endpoint {
    /// The run folders at the top of the versions folder, without what they hold (no entries
    /// when there is no versions folder).
    func listVersionRuns() -> Listing
    /// The run folders named (in the versions folder), each with everything it holds.
    func listVersionRuns(_ runs: [FileName]) -> Listing
    /// For each path (relative to the versions folder, `2026-10-01_120000/report.odt`), the file
    /// there, or nil where there is none. Throws where the endpoint cannot tell.
    func versionEntries(_ paths: [FileName]) throws -> [Entry?]
    /// Removes versions (paths relative to the versions folder), together: one result each.
    func removeVersions(_ versions: [FileName]) -> [Error?]
    /// Removes those of these folders (relative to the versions folder, deepest first) that are
    /// empty; the others stay.
    func removeEmptyVersionFolders(_ folders: [FileName])
}

extension VersionPruning {
    /// Pruning that reads only what can go, or nil where the endpoint could not tell (the
    /// whole folder is then listed).
    ///
    /// Only the top of the versions folder is listed: its folders' names are the runs' times.
    /// A version goes when it is older than `keepDays`, or when its path has more than `keepMax`
    /// versions, and never when it is one of its path's newest `keepMin`. So only two kinds of
    /// path can lose a version: those in run folders older than `keepDays` (those folders are
    /// listed whole), and, when there are more run folders than `keepMax`, those this run kept a
    /// version of (every earlier run that succeeded left each path within `keepMax`; a path
    /// versioned by a run that failed is brought back within it the next time it is versioned,
    /// or when its versions grow old). For these paths every version is then found by asking the
    /// other run folders for each path (on a server, a batch of commands in one round
    /// trip), not by listing them: the counts that `keepMin` and `keepMax` need are then exact.
    /// An index kept between runs was the other choice; it would be wrong as soon as anyone
    /// (another computer, a user restoring by hand) changed the folder.
    static func pruneInParts(
        _ lookup: VersionsLookup, policy: VersionPolicy, now: Int, versioned: Set<FileName>,
        say: (String) -> Void, sayError: (String) -> Void
    ) -> Int? {
        if policy.keepDays == 0 && policy.keepMax == 0 { return 0 }  // nothing ever goes
        let top = lookup.listVersionRuns()
        if !top.errors.isEmpty { return nil }
        var runs: [(name: FileName, seconds: Int)] = []
        for entry in top.entries where entry.kind == .directory {
            if let seconds = VersionsFolder.seconds(ofStamp: entry.name.description) {
                runs.append((entry.name, seconds))
            }
        }
        let isOld = { (seconds: Int) in policy.keepDays > 0 && now - seconds > policy.keepDays * 86400 }
        let old = runs.filter { isOld($0.seconds) }
        let recent = runs.filter { !isOld($0.seconds) }
        // No path has more versions than there are run folders.
        let counted = policy.keepMax > 0 && runs.count > policy.keepMax
        if old.isEmpty && !counted { return 0 }
        var oldListing = Listing()
        if !old.isEmpty {
            oldListing = lookup.listVersionRuns(old.map(\.name))
            if !oldListing.errors.isEmpty { return nil }
        }
        var versions = KeptVersion.all(in: oldListing.entries)
        let aged = Set(versions.map(\.path))
        // Each path's versions in the recent run folders, asked in `runs` for `paths`.
        func ask(_ paths: [FileName], in runs: [(name: FileName, seconds: Int)]) throws -> Set<FileName> {
            var asked: [(run: (name: FileName, seconds: Int), path: FileName)] = []
            asked.reserveCapacity(paths.count * runs.count)
            for path in paths { for run in runs { asked.append((run, path)) } }
            var found = Set<FileName>()
            let answers = try lookup.versionEntries(asked.map { $0.run.name.appending($0.path) })
            for ((run, path), entry) in zip(asked, answers) {
                guard let entry else { continue }
                found.insert(path)
                versions.append(
                    KeptVersion(stamp: run.name.description, seconds: run.seconds, path: path, entry: entry))
            }
            return found
        }
        do {
            // A path in an old run folder: all its versions (keep_min counts the newer ones).
            _ = try ask(aged.sorted(), in: recent)
            // A path only this run kept is over keep_max only with a version in each of more than
            // keep_max run folders, so with one in any (run folders - keep_max) of them: first
            // the oldest of those (where versions would go), the rest only for the paths found.
            let fresh = counted ? versioned.subtracting(aged).sorted() : []
            let probe = max(0, runs.count - policy.keepMax - old.count)
            let oldest = recent.sorted { $0.seconds < $1.seconds }
            let found = try ask(fresh, in: Array(oldest.prefix(probe)))
            _ = try ask(fresh.filter { found.contains($0) }, in: Array(oldest.dropFirst(probe)))
        } catch {
            return nil
        }
        let plan = plan(versions, policy: policy, now: now)
        var pruned = 0
        var emptied = Set<FileName>()  // folders that may be empty now (relative to the versions folder)
        for ((version, reason), error) in zip(plan, lookup.removeVersions(plan.map { $0.0.pathInVersions })) {
            let inVersions = version.pathInVersions
            if let error, EndpointErrorKind.of(error) != .notFound {
                sayError("Cannot prune \(VersionsFolder.name.appending(inVersions)): \(error)")
                continue
            }
            pruned += 1
            say(ActionFormatter.format(verb: "Pruning", reason: reason, path: inVersions.description))
            var folder = inVersions.parent
            while !folder.isEmpty && emptied.insert(folder).inserted { folder = folder.parent }
        }
        // The old run folders' own empty folders too, as the whole listing would have found them.
        func collect(_ entries: [Entry], _ base: FileName) {
            for entry in entries where entry.kind == .directory {
                let path = base.appending(entry.name)
                emptied.insert(path)
                collect(entry.children ?? [], path)
            }
        }
        collect(oldListing.entries, .empty)
        if !emptied.isEmpty {
            // Deepest first: a folder is emptied by removing its empty folders.
            let depth = { (path: FileName) in path.bytes.reduce(0) { $0 + ($1 == UInt8(ascii: "/") ? 1 : 0) } }
            lookup.removeEmptyVersionFolders(
                emptied.sorted { depth($0) != depth($1) ? depth($0) > depth($1) : $0 < $1 })
        }
        return pruned
    }
}
