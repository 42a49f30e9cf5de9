/// Decides, for every entry of either side, what a run does and why.
///
/// The planner walks the two sorted listings in step, folder by folder (rclone's "march"):
/// source-only entries are transferred, destination-only entries are orphans (deleted in a
/// mirror), and entries on both sides are compared by kind, size and modification time.
public struct Planner: Sendable {
    public var type: SyncType
    /// Nanoseconds within which two modification times count as equal: the coarser precision of
    /// the two sides (1 ns when both are exact, 2 s with FAT, 60 s with FTP `LIST`).
    public var tolerance: Int64
    /// When the destination cannot be given the source's mtime, its times are upload times and
    /// only a source that is newer counts as a change.
    public var destinationKeepsTimes: Bool

    /// Destination folders that must stay even when the source lacks them: those on the way to
    /// a File Check file. What else they hold is still synchronized.
    public var keptFolders: Set<FileName>
    /// The destination sees no case in names (FAT, exFAT): names are matched regardless of case,
    /// and of source names that differ only in case, one is synchronized.
    public var caseInsensitive: Bool
    /// The destination can hold hard links: a source file's further names become links to the
    /// first one (`Action.Kind.link`), as `rsync -H` does.
    public var destinationKeepsHardLinks: Bool
    /// Paths longer than this are not synchronized (the shorter limit of the two endpoints):
    /// one failure for the folder or file, nothing below it.
    public var maximumPathLength: Int?
    /// Bytes the destination refuses in a name (`EndpointCapabilities.forbiddenNameBytes`).
    public var forbiddenNameBytes: [UInt8] = []

    public init(
        type: SyncType, tolerance: Int64, destinationKeepsTimes: Bool = true, keptFolders: Set<FileName> = [],
        caseInsensitive: Bool = false, destinationKeepsHardLinks: Bool = false
    ) {
        self.type = type
        self.tolerance = max(1, tolerance)
        self.destinationKeepsTimes = destinationKeepsTimes
        self.keptFolders = keptFolders
        self.caseInsensitive = caseInsensitive
        self.destinationKeepsHardLinks = destinationKeepsHardLinks
        self.maximumPathLength = nil
    }

    /// A planner for these two endpoints.
    public init(
        type: SyncType, source: EndpointCapabilities, destination: EndpointCapabilities,
        keptFolders: Set<FileName> = []
    ) {
        self.init(
            type: type, tolerance: max(source.timePrecision, destination.timePrecision),
            destinationKeepsTimes: destination.setsModificationTimes, keptFolders: keptFolders,
            caseInsensitive: destination.caseInsensitiveNames, destinationKeepsHardLinks: destination.keepsHardLinks)
        let limits = [source.maximumPathLength, destination.maximumPathLength].compactMap { $0 }
        maximumPathLength = limits.min()
        forbiddenNameBytes = destination.forbiddenNameBytes
    }

    /// The folders leading to each path: `a/b/c` gives `a` and `a/b`.
    public static func ancestors(of paths: Set<FileName>) -> Set<FileName> {
        var result = Set<FileName>()
        for path in paths {
            var parent = path.parent
            while !parent.isEmpty {
                result.insert(parent)
                parent = parent.parent
            }
        }
        return result
    }

    /// The plan for making `destination` follow `source`. `sourceLinks`: the source's hard
    /// links (`Listing.hardLinks`).
    public func plan(source: [Entry], destination: [Entry], sourceLinks: HardLinks = HardLinks()) -> SyncPlan {
        var walk = Walk(planner: self, links: destinationKeepsHardLinks ? sourceLinks : HardLinks())
        // At most one action per entry of either side; reserved once (untouched pages cost
        // nothing) instead of growing by copies.
        walk.plan.actions.reserveCapacity(
            source.reduce(0) { $0 + $1.treeCount } + destination.reduce(0) { $0 + $1.treeCount })
        walk.run(source: source, destination: destination)
        return walk.plan
    }

    /// Compares two files; nil when the destination is up to date.
    public func difference(source: Entry, destination: Entry) -> Reason? {
        if source.size != destination.size { return .sizeDiffers }
        let delta = source.mtime.totalNanoseconds &- destination.mtime.totalNanoseconds
        if delta >= tolerance { return .older }
        if destinationKeepsTimes && -delta >= tolerance { return .newer }
        return nil
    }

    /// A name as a case-insensitive filesystem compares it: ASCII letters folded, and other
    /// UTF-8 text lowercased (exFAT's table and FAT's code pages fold those too).
    static func foldedCase(_ name: FileName) -> [UInt8] {
        name.withBytes { bytes in
            if bytes.allSatisfy({ $0 < 0x80 }) {
                return bytes.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }
            }
            guard let text = String(validating: bytes, as: UTF8.self) else { return Array(bytes) }
            return Array(text.lowercased().utf8)
        }
    }

    /// One step of a folder's comparison: a source entry, a destination entry, or both.
    private struct Step {
        var source: Int32 = -1
        var destination: Int32 = -1
        /// For a source entry that a case-insensitive destination cannot hold beside another:
        /// that other (synchronized) entry's index.
        var clashesWith: Int32 = -1
    }

    /// What is left to do when a folder's comparison is done.
    private enum Finish {
        case nothing
        /// The folder gets the source's time and mode.
        case setAttributes(FileName, Entry)
        /// Likewise, if anything below changed or the folders differ.
        case compare(FileName, source: Entry, destination: Entry, changesBefore: Int)
    }

    /// One folder being compared.
    private struct Level {
        var source: [Entry]
        var destination: [Entry]
        var parent: FileName
        var finish: Finish
        /// Byte-order merge position (case-sensitive destinations).
        var i = 0
        var j = 0
        /// The steps, for a case-insensitive destination (matched by folded name).
        var steps: [Step]? = nil
        var k = 0
        /// Whether the folder holds hard-linked source files.
        var hasLinks = false
        /// The longest name the folder's entries can have (`maximumPathLength`).
        var room = Int.max
    }

    /// The walk over both trees, folder by folder (rclone's "march"), with a stack of its own:
    /// a recursive one overflowed a thread's stack on a tree a few thousand folders deep.
    private struct Walk {
        let planner: Planner
        let links: HardLinks
        var plan = SyncPlan()
        /// Actions that change the destination, so far: a folder whose contents changed gets
        /// its time again (not for a conflict, which changes nothing: a failure deep in a tree
        /// would have every folder above it touched on every run).
        var changes = 0
        /// The first path of each hard-link group met, copied or up to date on the destination.
        var linkLeaders: [Int: FileName] = [:]
        var stack: [Level] = []

        init(planner: Planner, links: HardLinks) {
            self.planner = planner
            self.links = links
        }

        mutating func run(source: [Entry], destination: [Entry]) {
            push(source: source, destination: destination, parent: .empty, finish: .nothing)
            while let top = stack.indices.last {
                // A folder's entries are taken in one loop, until one is a folder to go into
                // (pushed on the stack); the folder is resumed from `i`, `j`, `k` after it.
                let level = stack[top]
                var i = level.i
                var j = level.j
                var k = level.k
                var descended = false
                while !descended {
                    let step: Step
                    if let steps = level.steps {
                        guard k < steps.count else { break }
                        step = steps[k]
                        k += 1
                    } else {
                        let source = level.source
                        let destination = level.destination
                        if i == source.count && j == destination.count { break }
                        if j == destination.count || (i < source.count && source[i].name < destination[j].name) {
                            step = Step(source: Int32(i))
                            i += 1
                        } else if i == source.count || destination[j].name < source[i].name {
                            step = Step(destination: Int32(j))
                            j += 1
                        } else {
                            step = Step(source: Int32(i), destination: Int32(j))
                            i += 1
                            j += 1
                        }
                    }
                    let depth = stack.count
                    take(step, of: level)
                    descended = stack.count > depth
                }
                if descended {
                    stack[top].i = i
                    stack[top].j = j
                    stack[top].k = k
                } else {
                    finish(stack.removeLast().finish)
                }
            }
        }

        /// Why the destination cannot hold a source entry of this name, if it cannot: its path
        /// would be too long (`room` bytes are left in this folder), or its filesystem refuses
        /// one of the name's characters.
        private func refusal(of name: FileName, room: Int) -> Reason? {
            name.withBytes { bytes in
                if room < Int.max && bytes.count > room { return .pathTooLong }
                let forbidden = planner.forbiddenNameBytes
                if !forbidden.isEmpty && bytes.contains(where: forbidden.contains) { return .nameNotAllowed }
                return nil
            }
        }

        /// Plans one entry (or pair) of a folder; a subfolder to compare is pushed.
        private mutating func take(_ step: Step, of level: Level) {
            let parent = level.parent
            // (Only looked at where there is a limit: most endpoints have none.)
            if step.source >= 0, level.room < Int.max || !planner.forbiddenNameBytes.isEmpty,
                let refusal = refusal(of: level.source[Int(step.source)].name, room: level.room)
            {
                add(
                    Action(
                        kind: .conflict, parent: parent, source: EntryRef(level.source, Int(step.source)),
                        destination: step.destination >= 0 ? EntryRef(level.destination, Int(step.destination)) : nil,
                        reason: refusal))
                return
            }
            switch (step.source >= 0, step.destination >= 0) {
            case (true, false) where step.clashesWith >= 0:
                // Kept out; the destination ref names the entry synchronized instead.
                add(
                    Action(
                        kind: .conflict, parent: parent, source: EntryRef(level.source, Int(step.source)),
                        destination: EntryRef(level.source, Int(step.clashesWith)), reason: .namesDifferInCase))
            case (true, false):
                sourceOnly(EntryRef(level.source, Int(step.source)), parent: parent, hasLinks: level.hasLinks)
            case (false, true):
                destinationOnly(EntryRef(level.destination, Int(step.destination)), parent: parent)
            default:
                both(
                    EntryRef(level.source, Int(step.source)), EntryRef(level.destination, Int(step.destination)),
                    parent: parent, hasLinks: level.hasLinks)
            }
        }

        private mutating func push(source: [Entry], destination: [Entry], parent: FileName, finish: Finish) {
            var level = Level(source: source, destination: destination, parent: parent, finish: finish)
            if planner.caseInsensitive { level.steps = Self.caseInsensitiveSteps(source, destination) }
            level.hasLinks = !links.isEmpty && links.folders.contains(parent)
            if let limit = planner.maximumPathLength {
                level.room = parent.isEmpty ? limit : limit - parent.withBytes { $0.count } - 1
            }
            stack.append(level)
        }

        /// Matches a folder's entries by folded name. Of source names that fold alike, the one
        /// the destination holds under that exact name is synchronized, else the first in byte
        /// order; the others clash with it. A destination entry matched by a source entry is
        /// never an orphan, whatever its case.
        static func caseInsensitiveSteps(_ source: [Entry], _ destination: [Entry]) -> [Step] {
            func keyed(_ entries: [Entry]) -> [(key: [UInt8], index: Int)] {
                entries.indices.map { (Planner.foldedCase(entries[$0].name), $0) }
                    .sorted { $0.key != $1.key ? $0.key.lexicographicallyPrecedes($1.key) : $0.index < $1.index }
            }
            let s = keyed(source)
            let d = keyed(destination)
            var steps: [Step] = []
            steps.reserveCapacity(max(s.count, d.count))
            var i = 0
            var j = 0
            while i < s.count || j < d.count {
                let key =
                    j == d.count || (i < s.count && !d[j].key.lexicographicallyPrecedes(s[i].key)) ? s[i].key : d[j].key
                var sources: [Int] = []
                while i < s.count && s[i].key == key {
                    sources.append(s[i].index)
                    i += 1
                }
                var destinations: [Int] = []
                while j < d.count && d[j].key == key {
                    destinations.append(d[j].index)
                    j += 1
                }
                guard !sources.isEmpty else {
                    for index in destinations { steps.append(Step(destination: Int32(index))) }
                    continue
                }
                // Indexes are in byte order (the listings are sorted), so the first is the lowest.
                let exact = sources.first { index in
                    destinations.contains { destination[$0].name == source[index].name }
                }
                let kept = exact ?? sources[0]
                let partner = destinations.first { destination[$0].name == source[kept].name } ?? destinations.first
                steps.append(Step(source: Int32(kept), destination: Int32(partner ?? -1)))
                for index in sources where index != kept {
                    steps.append(Step(source: Int32(index), clashesWith: Int32(kept)))
                }
                for index in destinations where index != partner { steps.append(Step(destination: Int32(index))) }
            }
            return steps
        }

        private mutating func add(_ action: Action) {
            if action.kind != .skip && action.kind != .conflict { changes += 1 }
            plan.actions.append(action)
        }

        private mutating func finish(_ finish: Finish) {
            switch finish {
            case .nothing: break
            case .setAttributes(let path, let entry):
                plan.folderUpdates.append((path, entry))
            case .compare(let path, let source, let destination, let changesBefore):
                let tolerance = planner.tolerance
                let timeDiffers = abs(source.mtime.totalNanoseconds &- destination.mtime.totalNanoseconds) >= tolerance
                let modeDiffers = source.mode != nil && destination.mode != nil && source.mode != destination.mode
                if changes > changesBefore || timeDiffers || modeDiffers {
                    plan.folderUpdates.append((path, source))
                }
            }
        }

        private mutating func destinationOnly(_ ref: EntryRef, parent: FileName) {
            let entry = ref.entry
            // A folder that was not descended into (recursive: false) is out of scope.
            guard planner.type == .mirror && !(entry.kind == .directory && entry.children == nil) else { return }
            let path = parent.appending(entry.name)
            if entry.kind == .directory && planner.keptFolders.contains(path) {
                push(source: [], destination: entry.children ?? [], parent: path, finish: .nothing)
            } else {
                add(
                    Action(
                        kind: .delete, parent: parent, source: nil, destination: ref, reason: .orphaned(entry.kind)))
            }
        }

        private mutating func sourceOnly(_ ref: EntryRef, parent: FileName, hasLinks: Bool) {
            let entry = ref.entry
            switch entry.kind {
            case .file, .symlink:
                let transfer = Action(
                    kind: .transfer, parent: parent, source: ref, destination: nil, reason: .fileNotFound)
                add(hasLinks ? transferOrLink(transfer) : transfer)
            case .directory:
                guard let children = entry.children else { return }  // not recursive
                add(Action(kind: .createFolder, parent: parent, source: ref, destination: nil, reason: .folderNotFound))
                let path = parent.appending(entry.name)
                push(source: children, destination: [], parent: path, finish: .setAttributes(path, entry))
            }
        }

        /// A file transfer, or a link to a file of its hard-link group that is copied before it
        /// or already up to date (only called in folders that hold hard-linked files).
        private mutating func transferOrLink(_ action: Action) -> Action {
            guard action.source?.kind == .file else { return action }
            let path = action.path
            guard let group = links.groups[path] else { return action }
            if action.kind == .skip {
                if linkLeaders[group] == nil { linkLeaders[group] = path }
                return action
            }
            guard let leader = linkLeaders[group] else {
                linkLeaders[group] = path
                return action
            }
            var link = action
            link.kind = .link
            link.reason = .hardLink
            plan.hardLinks[path] = leader
            return link
        }

        private mutating func both(_ sourceRef: EntryRef, _ destinationRef: EntryRef, parent: FileName, hasLinks: Bool)
        {
            let source = sourceRef.entry
            let destination = destinationRef.entry
            func action(_ kind: Action.Kind, _ reason: Reason) -> Action {
                Action(kind: kind, parent: parent, source: sourceRef, destination: destinationRef, reason: reason)
            }
            if source.kind != destination.kind {
                if planner.type == .backup {
                    add(action(.conflict, .backupConflict(destination.kind)))
                    return
                }
                if source.kind == .directory && source.children == nil { return }  // not recursive
                add(action(.replace, .kindDiffers(destination.kind)))
                if source.kind == .directory, let children = source.children {
                    let path = parent.appending(source.name)
                    push(source: children, destination: [], parent: path, finish: .setAttributes(path, source))
                }
                return
            }
            switch source.kind {
            case .file:
                if let reason = planner.difference(source: source, destination: destination) {
                    add(hasLinks ? transferOrLink(action(.transfer, reason)) : action(.transfer, reason))
                } else {
                    add(hasLinks ? transferOrLink(action(.skip, .upToDate)) : action(.skip, .upToDate))
                }
            case .symlink:
                if source.linkTarget != destination.linkTarget {
                    add(action(.transfer, .linkDiffers))
                } else {
                    add(action(.skip, .upToDate))
                }
            case .directory:
                guard let children = source.children else { return }
                let path = parent.appending(source.name)
                push(
                    source: children, destination: destination.children ?? [], parent: path,
                    finish: .compare(path, source: source, destination: destination, changesBefore: changes))
            }
        }
    }
}
