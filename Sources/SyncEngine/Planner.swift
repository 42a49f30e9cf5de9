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

    public init(
        type: SyncType, tolerance: Int64, destinationKeepsTimes: Bool = true, keptFolders: Set<FileName> = []
    ) {
        self.type = type
        self.tolerance = max(1, tolerance)
        self.destinationKeepsTimes = destinationKeepsTimes
        self.keptFolders = keptFolders
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

    /// The plan for making `destination` follow `source`.
    public func plan(source: [Entry], destination: [Entry]) -> SyncPlan {
        var plan = SyncPlan()
        // At most one action per entry of either side; reserved once (untouched pages cost
        // nothing) instead of growing by copies.
        plan.actions.reserveCapacity(
            source.reduce(0) { $0 + $1.treeCount } + destination.reduce(0) { $0 + $1.treeCount })
        merge(source: source, destination: destination, parent: .empty, into: &plan)
        return plan
    }

    /// Compares two files; nil when the destination is up to date.
    public func difference(source: Entry, destination: Entry) -> Reason? {
        if source.size != destination.size { return .sizeDiffers }
        let delta = source.mtime.totalNanoseconds &- destination.mtime.totalNanoseconds
        if delta >= tolerance { return .older }
        if destinationKeepsTimes && -delta >= tolerance { return .newer }
        return nil
    }

    private func merge(source: [Entry], destination: [Entry], parent: FileName, into plan: inout SyncPlan) {
        var i = 0
        var j = 0
        while i < source.count || j < destination.count {
            if j == destination.count || (i < source.count && source[i].name < destination[j].name) {
                sourceOnly(EntryRef(source, i), parent: parent, into: &plan)
                i += 1
            } else if i == source.count || destination[j].name < source[i].name {
                let entry = destination[j]
                // A folder that was not descended into (recursive: false) is out of scope.
                if type == .mirror && !(entry.kind == .directory && entry.children == nil) {
                    let path = parent.appending(entry.name)
                    if entry.kind == .directory && keptFolders.contains(path) {
                        merge(source: [], destination: entry.children ?? [], parent: path, into: &plan)
                    } else {
                        plan.actions.append(
                            Action(
                                kind: .delete, parent: parent, source: nil, destination: EntryRef(destination, j),
                                reason: .orphaned(entry.kind)))
                    }
                }
                j += 1
            } else {
                both(EntryRef(source, i), EntryRef(destination, j), parent: parent, into: &plan)
                i += 1
                j += 1
            }
        }
    }

    private func sourceOnly(_ ref: EntryRef, parent: FileName, into plan: inout SyncPlan) {
        let entry = ref.entry
        switch entry.kind {
        case .file, .symlink:
            plan.actions.append(
                Action(kind: .transfer, parent: parent, source: ref, destination: nil, reason: .fileNotFound))
        case .directory:
            guard let children = entry.children else { return }  // not recursive
            plan.actions.append(
                Action(kind: .createFolder, parent: parent, source: ref, destination: nil, reason: .folderNotFound))
            let path = parent.appending(entry.name)
            merge(source: children, destination: [], parent: path, into: &plan)
            plan.folderUpdates.append((path, entry))
        }
    }

    private func both(_ sourceRef: EntryRef, _ destinationRef: EntryRef, parent: FileName, into plan: inout SyncPlan) {
        let source = sourceRef.entry
        let destination = destinationRef.entry
        func add(_ kind: Action.Kind, _ reason: Reason) {
            plan.actions.append(
                Action(kind: kind, parent: parent, source: sourceRef, destination: destinationRef, reason: reason))
        }
        if source.kind != destination.kind {
            if type == .backup {
                add(.conflict, .backupConflict(destination.kind))
                return
            }
            if source.kind == .directory && source.children == nil { return }  // not recursive
            add(.replace, .kindDiffers(destination.kind))
            if source.kind == .directory, let children = source.children {
                let path = parent.appending(source.name)
                merge(source: children, destination: [], parent: path, into: &plan)
                plan.folderUpdates.append((path, source))
            }
            return
        }
        switch source.kind {
        case .file:
            if let reason = difference(source: source, destination: destination) {
                add(.transfer, reason)
            } else {
                add(.skip, .upToDate)
            }
        case .symlink:
            if source.linkTarget != destination.linkTarget {
                add(.transfer, .linkDiffers)
            } else {
                add(.skip, .upToDate)
            }
        case .directory:
            guard let children = source.children else { return }
            let path = parent.appending(source.name)
            let before = plan.actions.count
            merge(source: children, destination: destination.children ?? [], parent: path, into: &plan)
            let changed = plan.actions[before...].contains { $0.kind != .skip }
            let timeDiffers = abs(source.mtime.totalNanoseconds &- destination.mtime.totalNanoseconds) >= tolerance
            let modeDiffers = source.mode != nil && destination.mode != nil && source.mode != destination.mode
            if changed || timeDiffers || modeDiffers {
                plan.folderUpdates.append((path, source))
            }
        }
    }
}
