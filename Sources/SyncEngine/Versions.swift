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
    /// `versioned`: the paths this run kept versions of, in run folder `run`
    /// (`2026-10-01_120000`). Where the endpoint reads its versions folder in parts
    /// (`VersionsLookup`) and this is given, only what can go is read (`pruneInParts`); else the
    /// whole folder is listed.
    public static func prune(
        _ endpoint: Endpoint, policy: VersionPolicy, now: Int, versioned: Set<FileName>? = nil, run: String? = nil,
        say: (String) -> Void, sayError: (String) -> Void
    ) -> Int {
        if let lookup = endpoint as? VersionsLookup, let versioned,
            let pruned = pruneInParts(
                lookup, policy: policy, now: now, versioned: versioned, run: run, say: say, sayError: sayError)
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
        // An endpoint that remembers what its run folders hold now knows all of them.
        if let lookup = endpoint as? VersionsLookup, lookup.rememberedVersions() != nil {
            var held: [String: Set<FileName>] = [:]
            for run in listing.entries
            where run.kind == .directory && VersionsFolder.seconds(ofStamp: run.name.description) != nil {
                held[run.name.description] = []
            }
            for version in KeptVersion.all(in: listing.entries) where !removed.contains(version.pathInVersions) {
                held[version.stamp, default: []].insert(version.path)
            }
            var index = VersionsIndex()
            for (stamp, paths) in held { index.set(stamp, paths) }
            index.bound()
            lookup.rememberVersions(index)
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
    /// What the endpoint remembers of its run folders from earlier runs (`VersionsIndex`), or nil
    /// where it keeps no such memory (every run folder is then asked about by name).
    func rememberedVersions() -> VersionsIndex?
    /// Keeps `index` for the next run's `rememberedVersions` (saved when the run finishes).
    func rememberVersions(_ index: VersionsIndex)
}

extension VersionsLookup {
    public func rememberedVersions() -> VersionsIndex? { nil }
    public func rememberVersions(_ index: VersionsIndex) {}
}

/// What an endpoint remembers of its versions folder between runs: for each run folder it
/// knows, the paths of the versions in it (what the run that made it versioned, less what
/// pruning removed since). Pruning uses it only to choose which paths it asks about, and in
/// which run folders; every version it removes, and every version that counts for `keep_min`
/// and `keep_max`, it has found on the endpoint itself in that run.
public struct VersionsIndex: Sendable, Equatable {
    /// Per run folder (`2026-10-01_120000`): the paths of its versions (relative to it).
    public private(set) var runs: [String: Set<FileName>] = [:]
    /// Run folders that hold more versions than are remembered (`largestRun`): asked about for
    /// every path, as before there was an index.
    public private(set) var unknown: Set<String> = []

    /// A run folder holding more versions than this is remembered as `unknown`: a large run
    /// (a deleted folder) does not make the state file grow with it.
    public static let largestRun = 1000
    /// Nor do all of them together: beyond this many paths the largest run folders are
    /// remembered as `unknown`.
    public static let largest = 20_000

    public init() {}

    /// Whether the index knows run folder `stamp` (what it holds, or that it holds too much).
    public func knows(_ stamp: String) -> Bool { runs[stamp] != nil || unknown.contains(stamp) }

    /// Run folder `stamp` holds exactly `paths`.
    public mutating func set(_ stamp: String, _ paths: Set<FileName>) {
        if paths.count > Self.largestRun {
            runs[stamp] = nil
            unknown.insert(stamp)
        } else {
            runs[stamp] = paths
            unknown.remove(stamp)
        }
    }

    /// Run folder `stamp` holds `paths` too.
    public mutating func add(_ stamp: String, _ paths: Set<FileName>) {
        if unknown.contains(stamp) { return }
        set(stamp, runs[stamp, default: []].union(paths))
    }

    /// Run folder `stamp` no longer holds `path`.
    public mutating func remove(_ stamp: String, _ path: FileName) { runs[stamp]?.remove(path) }

    /// Whether the index says run folder `stamp` holds `path` (false for an unknown folder).
    public func holds(_ stamp: String, _ path: FileName) -> Bool { runs[stamp]?.contains(path) == true }

    /// Forgets the run folders not among `stamps` (removed, by pruning or by hand).
    public mutating func keepOnly(_ stamps: Set<String>) {
        runs = runs.filter { stamps.contains($0.key) }
        unknown.formIntersection(stamps)
    }

    /// Within `largest` paths in all: the run folders holding the most become `unknown`.
    mutating func bound() {
        var total = runs.values.reduce(0) { $0 + $1.count }
        if total <= Self.largest { return }
        for (stamp, paths) in runs.sorted(by: { $0.value.count > $1.value.count }) where total > Self.largest {
            runs[stamp] = nil
            unknown.insert(stamp)
            total -= paths.count
        }
    }

    /// The index as lines of a state file: `versions STAMP COUNT`, then a line `v PATH` for each
    /// of its COUNT paths, or `versions STAMP unknown`. No field of these is a number first.
    public var stateLines: [UInt8] {
        var bytes: [UInt8] = []
        for stamp in unknown.sorted() { bytes += Array("versions \(stamp) unknown\n".utf8) }
        for (stamp, paths) in runs.sorted(by: { $0.key < $1.key }) {
            bytes += Array("versions \(stamp) \(paths.count)\n".utf8)
            for path in paths.sorted() { bytes += Self.pathTag + path.bytes + [UInt8(ascii: "\n")] }
        }
        return bytes
    }
    private static let runTag = Array("versions ".utf8)
    private static let pathTag = Array("v ".utf8)

    /// The index in a state file's lines (`stateLines`); other lines are passed over. A run
    /// folder whose paths are not all there (a damaged file) is unknown.
    public init<Lines: Sequence>(stateLines lines: Lines) where Lines.Element == ArraySlice<UInt8> {
        var current: (stamp: String, count: Int, paths: Set<FileName>)?
        func close() {
            guard let run = current else { return }
            if run.paths.count == run.count { runs[run.stamp] = run.paths } else { unknown.insert(run.stamp) }
            current = nil
        }
        for line in lines {
            if line.starts(with: Self.pathTag), current != nil {
                let path = line.dropFirst(Self.pathTag.count)
                if !path.isEmpty { current!.paths.insert(FileName(bytes: Array(path))) }
                continue
            }
            close()
            guard line.starts(with: Self.runTag) else { continue }
            let fields = line.dropFirst(Self.runTag.count).split(separator: UInt8(ascii: " "))
                .map { String(decoding: $0, as: UTF8.self) }
            guard fields.count == 2, VersionsFolder.seconds(ofStamp: fields[0]) != nil else { continue }
            if let count = Int(fields[1]), count >= 0 {
                current = (fields[0], count, [])
            } else {
                unknown.insert(fields[0])
            }
        }
        close()
    }
}

extension VersionPruning {
    /// A run folder: its name (`2026-10-01_120000`) and when that run started.
    typealias Run = (name: FileName, seconds: Int)

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
    /// run folders for each path (on a server, a batch of commands in one round trip), not by
    /// listing them: the counts that `keepMin` and `keepMax` need are then exact.
    ///
    /// Where the endpoint remembers what its run folders hold (`VersionsIndex`, with `run`, this
    /// run's folder, and `versioned`, what it put there), a path is asked for only in the run
    /// folders the index says hold it, and only when those (with the folders the index does not
    /// know) are more than `keepMax`, or when it is in an old run folder; a run folder the index
    /// does not know (made by another computer, by hand, or by a run that did not prune) is
    /// listed whole, then known; one the index remembers as too large is asked about for every
    /// path, as without an index. The index may be wrong: anyone can change the folder. It only
    /// chooses what is asked; what is removed and every version counted are found on the
    /// endpoint in this run. A version the index does not know of is then not counted (its
    /// path keeps more than `keepMax`, or more than `keepMin` old versions, until its folder
    /// grows old and is listed whole); one it knows of that is gone is not found, and
    /// forgotten. Not counting a version can only move the others of its path towards the
    /// newest, never past where the whole listing has them: a stale index makes pruning keep
    /// more, never remove a version that pruning from the whole listing would keep.
    static func pruneInParts(
        _ lookup: VersionsLookup, policy: VersionPolicy, now: Int, versioned: Set<FileName>, run: String?,
        say: (String) -> Void, sayError: (String) -> Void
    ) -> Int? {
        if policy.keepDays == 0 && policy.keepMax == 0 { return 0 }  // nothing ever goes
        let top = lookup.listVersionRuns()
        if !top.errors.isEmpty { return nil }
        var runs: [Run] = []
        for entry in top.entries where entry.kind == .directory {
            if let seconds = VersionsFolder.seconds(ofStamp: entry.name.description) {
                runs.append((entry.name, seconds))
            }
        }
        runs.sort { $0.seconds < $1.seconds }  // oldest first
        // What earlier runs put in the run folders there are, and what this one did.
        var index = lookup.rememberedVersions()
        if index != nil {
            index!.keepOnly(Set(runs.map(\.name.description)))
            // (A folder of this run's time that this run put nothing in is another's: not known.)
            if let run, !versioned.isEmpty, runs.contains(where: { $0.name.description == run }) {
                index!.add(run, versioned)
            }
        }
        defer {
            if var index {
                index.bound()
                lookup.rememberVersions(index)
            }
        }
        let isOld = { (seconds: Int) in policy.keepDays > 0 && now - seconds > policy.keepDays * 86400 }
        let old = runs.filter { isOld($0.seconds) }
        let recent = runs.filter { !isOld($0.seconds) }
        // No path has more versions than there are run folders.
        let counted = policy.keepMax > 0 && runs.count > policy.keepMax
        if old.isEmpty && !counted { return 0 }
        // Listed whole: the old run folders, and the recent ones the index does not know.
        let unindexed = index.map { index in recent.filter { !index.knows($0.name.description) } } ?? []
        let whole = old + unindexed
        var listing = Listing()
        if !whole.isEmpty {
            listing = lookup.listVersionRuns(whole.map(\.name))
            if !listing.errors.isEmpty { return nil }
        }
        var versions = KeptVersion.all(in: listing.entries)
        if index != nil {
            var held: [String: Set<FileName>] = [:]
            for version in versions { held[version.stamp, default: []].insert(version.path) }
            for run in whole { index!.set(run.name.description, held[run.name.description] ?? []) }
        }
        // A path in an old run folder: all its versions (keep_min counts the newer ones).
        let aged = Set(versions.lazy.filter { isOld($0.seconds) }.map(\.path))
        // Recent run folders listed whole, by the paths they hold.
        let listedNames = Set(unindexed.map(\.name))
        var listedHolding: [FileName: [Run]] = [:]
        for version in versions where !isOld(version.seconds) {
            listedHolding[version.path, default: []].append((FileName(version.stamp), version.seconds))
        }
        // The run folders asked by name, and those of them that may hold a path: those the index
        // says hold it and those it remembers as too large; without an index, all.
        let asked = recent.filter { !listedNames.contains($0.name) }
        func mayHold(_ path: FileName) -> [Run] {
            guard let index else { return asked }
            return asked.filter {
                let stamp = $0.name.description
                return index.unknown.contains(stamp) || index.holds(stamp, path)
            }
        }
        var emptied = Set<FileName>()  // folders that may be empty now (relative to the versions folder)
        // Each path's versions in the run folders asked: the paths found.
        func ask(_ pairs: [(run: Run, path: FileName)]) throws -> Set<FileName> {
            var found = Set<FileName>()
            if pairs.isEmpty { return found }
            let answers = try lookup.versionEntries(pairs.map { $0.run.name.appending($0.path) })
            for ((run, path), entry) in zip(pairs, answers) {
                let stamp = run.name.description
                guard let entry else {
                    // Gone, though the index had it (removed by hand): forgotten, and its folders
                    // tidied as a pruned version's.
                    if index?.holds(stamp, path) == true {
                        index!.remove(stamp, path)
                        var folder = run.name.appending(path).parent
                        while !folder.isEmpty && emptied.insert(folder).inserted { folder = folder.parent }
                    }
                    continue
                }
                found.insert(path)
                versions.append(KeptVersion(stamp: stamp, seconds: run.seconds, path: path, entry: entry))
            }
            return found
        }
        var first: [(run: Run, path: FileName)] = []
        for path in aged.sorted() { first += mayHold(path).map { ($0, path) } }
        // A path not in an old run folder goes over keep_max only with a version in more than
        // keep_max of the folders that may hold it, so with one in any (those - keep_max) of them:
        // first the oldest of those (where versions would go), the rest only for the paths found
        // there; all at once where a folder listed whole or the index says a probed one holds it.
        var later: [(path: FileName, runs: [Run])] = []
        if counted {
            var candidates = versioned
            if let index {
                // And paths the index says are over keep_max already (a run that failed).
                var held: [FileName: Int] = [:]
                for run in asked {
                    for path in index.runs[run.name.description] ?? [] { held[path, default: 0] += 1 }
                }
                for (path, runs) in listedHolding { held[path, default: 0] += runs.count }
                for (path, count) in held where count > policy.keepMax { candidates.insert(path) }
            }
            for path in candidates.subtracting(aged).sorted() {
                let listedHere = listedHolding[path] ?? []
                let askable = mayHold(path)
                let count = listedHere.count + askable.count
                if count <= policy.keepMax { continue }
                let all = (listedHere.map { ($0, true) } + askable.map { ($0, false) })
                    .sorted { $0.0.seconds < $1.0.seconds }
                let probe = all.prefix(count - policy.keepMax)
                if probe.contains(where: { $0.1 || index?.holds($0.0.name.description, path) == true }) {
                    first += askable.map { ($0, path) }
                } else {
                    first += probe.map { ($0.0, path) }
                    later.append((path, all.dropFirst(probe.count).filter { !$0.1 }.map(\.0)))
                }
            }
        }
        do {
            let found = try ask(first)
            _ = try ask(later.filter { found.contains($0.path) }.flatMap { item in item.runs.map { ($0, item.path) } })
        } catch {
            return nil
        }
        let plan = plan(versions, policy: policy, now: now)
        var pruned = 0
        for ((version, reason), error) in zip(plan, lookup.removeVersions(plan.map { $0.0.pathInVersions })) {
            let inVersions = version.pathInVersions
            if let error, EndpointErrorKind.of(error) != .notFound {
                sayError("Cannot prune \(VersionsFolder.name.appending(inVersions)): \(error)")
                continue
            }
            pruned += 1
            index?.remove(version.stamp, version.path)
            say(ActionFormatter.format(verb: "Pruning", reason: reason, path: inVersions.description))
            var folder = inVersions.parent
            while !folder.isEmpty && emptied.insert(folder).inserted { folder = folder.parent }
        }
        // The listed run folders' own empty folders too, as the whole listing would have found them.
        func collect(_ entries: [Entry], _ base: FileName) {
            for entry in entries where entry.kind == .directory {
                let path = base.appending(entry.name)
                emptied.insert(path)
                collect(entry.children ?? [], path)
            }
        }
        collect(listing.entries, .empty)
        if !emptied.isEmpty {
            // Deepest first: a folder is emptied by removing its empty folders.
            let depth = { (path: FileName) in path.bytes.reduce(0) { $0 + ($1 == UInt8(ascii: "/") ? 1 : 0) } }
            lookup.removeEmptyVersionFolders(
                emptied.sorted { depth($0) != depth($1) ? depth($0) > depth($1) : $0 < $1 })
        }
        return pruned
    }
}
