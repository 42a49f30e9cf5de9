import SyncEngine

#if canImport(Glibc)
    import Glibc
#endif

/// `plugsync restore`: files or whole folders brought back from a definition's destination as
/// they were at a time, from its current copy and the versions it keeps.
///
/// What a path held at time T: the version kept by the first run that started after T (that run
/// moved it aside, so it is what the path held until then); with no such run, the current copy
/// on the destination. A path that has neither was deleted before T and is not brought back.
/// Without a time ("now"): the current copy, or for a deleted path its newest version.
public struct Restore {
    public struct Options {
        /// Seconds since 1970; nil: now.
        public var at: Int?
        /// A local folder to restore into instead of the definition's source.
        public var to: String?
        public var dryRun = false
        /// Replace target files that are newer than what is restored.
        public var force = false
        public init() {}
    }

    public struct Result {
        public var restored = 0
        public var bytes: Int64 = 0
        public var skipped = 0
        public var failed = 0
        /// Paths asked for that had nothing to restore.
        public var notFound: [String] = []
    }

    public init() {}

    /// `2026-10-01 12:00` (or with `:SS`), local time, as seconds since 1970.
    public static func parseTime(_ text: String) -> Int? {
        let parts = text.split(separator: " ")
        guard parts.count == 2 else { return nil }
        let clock = parts[1].split(separator: ":")
        guard clock.count == 2 || clock.count == 3, clock.allSatisfy({ $0.count == 2 }) else { return nil }
        return VersionsFolder.seconds(ofStamp: parts[0] + "_" + clock.joined() + (clock.count == 2 ? "00" : ""))
    }

    /// Restores `paths` (relative to the synchronized folder, or absolute inside a local source);
    /// each line goes to `say`, failures to `sayError`.
    public func restore(
        _ definition: Definition, paths: [String], options: Options, say: (String) -> Void,
        sayError: (String) -> Void
    ) throws -> Result {
        let resolver = EndpointResolver()
        let destination = try resolver.resolve(definition.destination, role: "destination", connections: 1)
        defer { destination.endpoint.disconnect() }
        let target: Endpoint
        var targetExcluded: Set<FileName> = []
        if let folder = options.to {
            target = resolver.localEndpoint(folder)
        } else {
            let source = try resolver.resolve(definition.source, role: "source", connections: 1)
            target = source.endpoint
            targetExcluded = source.excluded
        }
        defer { if options.to == nil { target.disconnect() } }

        // The destination gives files, as a run's source does: a server's listed times that are
        // coarse (an FTP LIST: the minute, or only the day for older files) are made exact for
        // the files restored (`refineTimes`), which get them back.
        destination.endpoint.beginRun(RunSettings(side: .source, dryRun: options.dryRun))
        let current = destination.endpoint.list(
            recursive: true, filter: ListingFilter(excludedPaths: destination.excluded.union([VersionsFolder.name])))
        let versionsListing = destination.endpoint.listVersions()
        if let error = current.errors.first ?? versionsListing.errors.first {
            throw PreconditionError("cannot list \(destination.endpoint.displayName): \(error); nothing was restored")
        }
        let versions = KeptVersion.all(in: versionsListing.entries)
        var currentFiles: [FileName: Entry] = [:]
        Self.files(current.entries, .empty) { currentFiles[$0] = $1 }

        // What each asked path held at the time: (path, where to read it, its entry, words).
        var chosen: [(path: FileName, from: FileName, entry: Entry, what: String)] = []
        var result = Result()
        for text in paths {
            let asked = VersionHistory.relativePath(text, source: definition.source)
            let prefix = asked.bytes + [UInt8(ascii: "/")]
            func under(_ path: FileName) -> Bool { asked.isEmpty || path == asked || path.bytes.starts(with: prefix) }
            var candidates = Set(currentFiles.keys.filter(under))
            for version in versions where under(version.path) { candidates.insert(version.path) }
            var found = false
            for path in candidates.sorted() {
                let mine = versions.filter { $0.path == path }  // newest first
                if let at = options.at, let later = mine.last(where: { $0.seconds > at }) {
                    chosen.append(
                        (path, VersionsFolder.name.appending(later.pathInVersions), later.entry, Self.words(later)))
                } else if let entry = currentFiles[path] {
                    chosen.append((path, path, entry, "current copy"))
                } else if options.at == nil, let newest = mine.first {
                    chosen.append(
                        (path, VersionsFolder.name.appending(newest.pathInVersions), newest.entry, Self.words(newest)))
                } else {
                    continue  // deleted before that time
                }
                found = true
            }
            if !found { result.notFound.append(text) }
        }

        Self.refineTimes(&chosen, on: destination.endpoint)

        if !options.dryRun, try target.rootState() == .missing { try target.prepareRoot() }
        let there = target.list(recursive: true, filter: ListingFilter(excludedPaths: targetExcluded))
        var targetFiles: [FileName: Entry] = [:]
        var targetFolders: Set<FileName> = []
        Self.files(there.entries, .empty, folders: { targetFolders.insert($0) }, { targetFiles[$0] = $1 })

        for (path, from, entry, what) in chosen {
            if targetExcluded.contains(path) { continue }
            if let existing = targetFiles[path] {
                if existing.size == entry.size && existing.mtime.seconds == entry.mtime.seconds {
                    result.skipped += 1
                    say(ActionFormatter.format(verb: "Skipping", reason: "target file is the same", path: "\(path)"))
                    continue
                }
                if existing.mtime > entry.mtime && !options.force {
                    result.skipped += 1
                    say(
                        ActionFormatter.format(
                            verb: "Skipping", reason: "target file is newer; --force replaces it", path: "\(path)"))
                    continue
                }
            }
            let line = ActionFormatter.format(verb: "Restoring", reason: what, path: "\(path)")
            if options.dryRun {
                say(line)
                result.restored += 1
                result.bytes += entry.size
                continue
            }
            do {
                var missing: [FileName] = []
                var folder = path.parent
                while !folder.isEmpty && !targetFolders.contains(folder) {
                    missing.append(folder)
                    folder = folder.parent
                }
                for folder in missing.reversed() {
                    try target.createDirectory(folder)
                    targetFolders.insert(folder)
                }
                let file = try destination.endpoint.openForReading(from, entry: entry)
                defer { file.close() }
                try target.receive(path, from: file, entry: entry, replacing: targetFiles[path] != nil) { _ in }
                say(line)
                result.restored += 1
                result.bytes += entry.size
            } catch {
                result.failed += 1
                sayError(ActionFormatter.format(verb: "Failed", reason: "\(what); \(error)", path: "\(path)"))
            }
        }
        return result
    }

    /// Gives the chosen files their exact times where the destination listed coarse ones: a
    /// listing of just these files (at the paths they are read from) goes through
    /// `refineTimes` as a run's source listing does.
    static func refineTimes(
        _ chosen: inout [(path: FileName, from: FileName, entry: Entry, what: String)], on endpoint: Endpoint
    ) {
        if chosen.isEmpty { return }
        var listing = Listing()
        listing.entries = tree(chosen.map { ($0.from, $0.entry) })
        endpoint.refineTimes(&listing, comparedWith: [])
        var times: [FileName: Timestamp] = [:]
        files(listing.entries, .empty) { times[$0] = $1.mtime }
        for index in chosen.indices {
            if let time = times[chosen[index].from] { chosen[index].entry.mtime = time }
        }
    }

    /// The tree of entries that holds these files at their paths, with the folders on the way
    /// (each folder's entries sorted by name).
    static func tree(_ files: [(path: FileName, entry: Entry)]) -> [Entry] {
        final class Folder {
            var files: [Entry] = []
            var folders: [FileName: Folder] = [:]
        }
        let root = Folder()
        for (path, entry) in files {
            var names: [FileName] = []
            var rest = path.parent
            while !rest.isEmpty {
                names.append(rest.lastComponent)
                rest = rest.parent
            }
            var folder = root
            for name in names.reversed() {
                if let next = folder.folders[name] {
                    folder = next
                } else {
                    let next = Folder()
                    folder.folders[name] = next
                    folder = next
                }
            }
            var file = entry
            file.name = path.lastComponent
            folder.files.append(file)
        }
        // As deep as a path (within PATH_MAX), not as a tree on a drive could be.
        func entries(_ folder: Folder) -> [Entry] {
            var out = folder.files
            for (name, child) in folder.folders {
                out.append(Entry(name: name, kind: .directory, mtime: Timestamp(seconds: 0), children: entries(child)))
            }
            out.sort { $0.name < $1.name }
            return out
        }
        return entries(root)
    }

    static func words(_ version: KeptVersion) -> String {
        "version of \(VersionHistory.timeText(version.seconds))"
    }

    /// Calls `body` with every file (and link) of a tree, `folders` with every folder.
    static func files(
        _ entries: [Entry], _ base: FileName, folders: (FileName) -> Void = { _ in },
        _ body: (FileName, Entry) -> Void
    ) {
        var pending: [(FileName, Entry)] = entries.map { (base.appending($0.name), $0) }
        while let (path, entry) = pending.popLast() {
            if entry.kind == .directory {
                folders(path)
                for child in entry.children ?? [] { pending.append((path.appending(child.name), child)) }
            } else if entry.kind == .file {
                body(path, entry)
            }
        }
    }
}
