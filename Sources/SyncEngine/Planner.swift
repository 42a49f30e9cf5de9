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
                sourceOnly(source[i], path: parent.appending(source[i].name), into: &plan)
                i += 1
            } else if i == source.count || destination[j].name < source[i].name {
                let entry = destination[j]
                let path = parent.appending(entry.name)
                // A folder that was not descended into (recursive: false) is out of scope.
                if type == .mirror && !(entry.kind == .directory && entry.children == nil) {
                    if entry.kind == .directory && keptFolders.contains(path) {
                        merge(source: [], destination: entry.children ?? [], parent: path, into: &plan)
                    } else {
                        plan.actions.append(
                            Action(
                                kind: .delete, path: path, source: nil, destination: entry,
                                reason: .orphaned(entry.kind)))
                    }
                }
                j += 1
            } else {
                both(source[i], destination[j], path: parent.appending(source[i].name), into: &plan)
                i += 1
                j += 1
            }
        }
    }

    private func sourceOnly(_ entry: Entry, path: FileName, into plan: inout SyncPlan) {
        switch entry.kind {
        case .file, .symlink:
            plan.actions.append(
                Action(kind: .transfer, path: path, source: entry, destination: nil, reason: .fileNotFound))
        case .directory:
            guard let children = entry.children else { return }  // not recursive
            plan.actions.append(
                Action(kind: .createFolder, path: path, source: entry, destination: nil, reason: .folderNotFound))
            merge(source: children, destination: [], parent: path, into: &plan)
            plan.folderUpdates.append((path, entry))
        }
    }

    private func both(_ source: Entry, _ destination: Entry, path: FileName, into plan: inout SyncPlan) {
        if source.kind != destination.kind {
            if type == .backup {
                plan.actions.append(
                    Action(
                        kind: .conflict, path: path, source: source, destination: destination,
                        reason: .backupConflict(destination.kind)))
                return
            }
            if source.kind == .directory && source.children == nil { return }  // not recursive
            plan.actions.append(
                Action(
                    kind: .replace, path: path, source: source, destination: destination,
                    reason: .kindDiffers(destination.kind)))
            if source.kind == .directory, let children = source.children {
                merge(source: children, destination: [], parent: path, into: &plan)
                plan.folderUpdates.append((path, source))
            }
            return
        }
        switch source.kind {
        case .file:
            if let reason = difference(source: source, destination: destination) {
                plan.actions.append(
                    Action(kind: .transfer, path: path, source: source, destination: destination, reason: reason))
            } else {
                plan.actions.append(
                    Action(kind: .skip, path: path, source: source, destination: destination, reason: .upToDate))
            }
        case .symlink:
            if source.linkTarget != destination.linkTarget {
                plan.actions.append(
                    Action(kind: .transfer, path: path, source: source, destination: destination, reason: .linkDiffers))
            } else {
                plan.actions.append(
                    Action(kind: .skip, path: path, source: source, destination: destination, reason: .upToDate))
            }
        case .directory:
            guard let children = source.children else { return }
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
