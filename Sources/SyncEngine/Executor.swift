import Dispatch
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Carries out a plan between two endpoints.
///
/// Order: leftovers of interrupted runs are removed; deletions and replacements happen in plan
/// order (so a file can replace a folder of the same name); folders are created parents first;
/// files and links are transferred by `parallelism` workers; folders get their times last,
/// because writing into a folder changes its mtime.
public final class Executor: @unchecked Sendable {
    public let source: Endpoint
    public let destination: Endpoint
    public let parallelism: Int
    public let observer: SyncObserver
    /// When set, transfers not yet started are not started (they fail as "stopped").
    public let cancellation: Cancellation?
    /// Where this run keeps what it replaces or deletes (`.plugsync-versions/<run start>`);
    /// nil keeps nothing.
    public var versionFolder: FileName?
    /// `verify: true`: each file sent is hashed as it is read, and the destination reads it back
    /// and compares before it gets its final name (`WriteCheck`).
    public var verifyWrites = false

    public init(
        source: Endpoint, destination: Endpoint, parallelism: Int = 4, observer: SyncObserver,
        cancellation: Cancellation? = nil
    ) {
        self.source = source
        self.destination = destination
        self.parallelism = max(1, parallelism)
        self.observer = observer
        self.cancellation = cancellation
    }

    /// Executes `plan` (or only reports it, with `dryRun`) and returns the counts.
    public func execute(
        _ plan: SyncPlan, temporaryFiles: [FileName], temporaryFolders: [FileName] = [], dryRun: Bool
    ) -> SyncStatistics {
        let stats = Counter()
        if !dryRun {
            for path in temporaryFiles {
                if (try? destination.remove(path, kind: .file)) != nil {
                    stats.update { $0.temporaryFilesRemoved += 1 }
                    observer.removedTemporaryFile(path, folder: false)
                }
            }
            for path in temporaryFolders {
                if (try? (destination as? StagingEndpoint)?.removeTemporaryFolder(path)) != nil {
                    stats.update { $0.temporaryFilesRemoved += 1 }
                    observer.removedTemporaryFile(path, folder: true)
                }
            }
        }
        let buildable = dryRun || staging == nil ? [:] : Self.buildableFolders(plan.actions)
        var transfers: [Int] = []  // indexes into plan.actions: no copies of the actions
        var links: [Int] = []  // likewise; done once the files they link to are in place
        linkedFiles = Set(plan.hardLinks.values)
        for (index, action) in plan.actions.enumerated() {
            if dryRun {
                if versionFolder != nil, action.kind == .delete || action.kind == .replace,
                    let entry = action.destination
                {
                    planVersions(action.path, entry: entry, reason: action.reason, stats)
                }
                record(action, .planned, stats)
                continue
            }
            if stopped.value != nil && action.kind != .skip {
                record(action, .failed("not done: \(EndpointGone.summary)"), stats)
                continue
            }
            if action.kind != .skip && cancellation?.isCancelled == true {
                record(action, .stopped, stats)  // no deletion or folder either once asked to stop
                continue
            }
            if action.kind == .delete, versionMover != nil {
                deletions.append(index)  // their files go to the versions folder together
                continue
            }
            // Gathered deletions go first where a change here may depend on them.
            if action.kind == .createFolder || action.kind == .replace { deleteTogether(plan.actions, stats) }
            switch action.kind {
            case .skip:
                record(action, .done, stats)
            case .conflict:
                record(action, .failed("not copied"), stats)
            case .delete:
                record(action, deleteTree(action.path, entry: action.destination!, reason: action.reason, stats), stats)
            case .createFolder:
                if let staging, buildable[action.path] != nil, (try? staging.buildFolder(action.path)) != nil {
                    building[action.path] = FolderBuild(action)  // recorded when it is in place
                    continue
                }
                do {
                    try destination.createDirectory(action.path)
                    record(action, .done, stats)
                } catch let error as EndpointGone {
                    stop(error)
                    record(action, .failed("\(error)"), stats)
                } catch {
                    record(action, .failed(Self.message(error)), stats)
                }
            case .replace where Self.unstorable(action, on: destination):
                record(action, .kept(Self.noSymlinks), stats)  // what is there stays
            case .replace:
                let outcome = deleteTree(action.path, entry: action.destination!, reason: action.reason, stats)
                if case .done = outcome, let entry = action.source {
                    if entry.kind == .directory {
                        do {
                            try destination.createDirectory(action.path)
                            record(action, .done, stats)
                        } catch {
                            record(action, .failed(Self.message(error)), stats)
                        }
                    } else {
                        transfers.append(index)
                    }
                } else {
                    record(action, outcome, stats)
                }
            case .transfer:
                transfers.append(index)
            case .link:
                links.append(index)
            }
        }
        deleteTogether(plan.actions, stats)
        if !dryRun {
            for index in transfers { building[plan.actions[index].path.parent]?.outstanding += 1 }
            runTransfers(plan.actions, transfers, stats: stats)
            makeLinks(plan, links, stats: stats)
            for folder in building.values where folder.outstanding > 0 {  // not expected: each file settles
                finish(folder, folder.settled, stats)
            }
            building = [:]
            if stopped.value == nil {
                for (path, entry) in plan.folderUpdates {
                    // The owner first: the mode set after it is then the one that stays.
                    if let owner = source.owner(of: path) { try? destination.setOwner(path, owner) }
                    try? destination.setFolderAttributes(path, entry: entry)
                }
            }
        }
        var result = stats.value
        result.stoppedBecause = stopped.value
        return result
    }

    /// Whether a transfer keeps the file it replaces in the versions folder.
    private func keepsVersion(_ action: Action) -> Bool {
        versionFolder != nil && action.kind == .transfer && action.destination?.kind == .file
            && action.source?.kind == .file
    }

    /// Counts and tells of a file or link kept in the versions folder.
    private func versioned(_ path: FileName, reason: Reason, _ stats: Counter) {
        stats.update { $0.versioned += 1 }
        if versionFolder != nil { keptPaths.update { $0.insert(path) } }
        observer.versioned(path, reason: reason)
    }

    /// The paths this run kept a version of (pruning looks at these: `VersionPruning.prune`).
    public var versionedPaths: Set<FileName> { keptPaths.value }
    private let keptPaths = Guarded<Set<FileName>>([])

    /// The reason told for a version of `entry`, kept for an action with `reason`: an orphan
    /// folder's files are orphans themselves.
    private static func versionReason(_ reason: Reason, _ entry: Entry) -> Reason {
        if case .orphaned = reason { return .orphaned(entry.kind) }
        return reason
    }

    /// A dry run's versions for a deletion: every file and link of the tree.
    private func planVersions(_ path: FileName, entry: Entry, reason: Reason, _ stats: Counter) {
        var pending: [(FileName, Entry)] = [(path, entry)]
        while let (path, entry) = pending.popLast() {
            if entry.kind == .directory {
                for child in (entry.children ?? []).reversed() { pending.append((path.appending(child.name), child)) }
            } else {
                versioned(path, reason: Self.versionReason(reason, entry), stats)
            }
        }
    }

    private func record(_ action: Action, _ outcome: Outcome, _ stats: Counter) {
        if keepsVersion(action) {
            switch outcome {
            case .done, .planned: versioned(action.path, reason: action.reason, stats)
            default: break
            }
        }
        if !linkedFiles.isEmpty, case .failed = outcome, linkedFiles.contains(action.path) {
            failedLinkedFiles.update { $0.insert(action.path) }
        }
        stats.update { s in
            switch outcome {
            case .failed:
                s.failed += 1
            case .kept:
                s.skipped += 1
            case .stopped:
                s.notStarted += 1
            case .done, .planned:
                switch action.kind {
                case .transfer, .replace:
                    if action.source?.kind == .directory {
                        s.foldersCreated += 1
                    } else {
                        s.transferred += 1
                        s.bytes += action.source?.size ?? 0
                    }
                    if action.kind == .replace { s.deleted += action.destination?.treeCount ?? 1 }
                case .link: s.transferred += 1
                case .createFolder: s.foldersCreated += 1
                case .delete: s.deleted += action.destination?.treeCount ?? 1
                case .skip: s.skipped += 1
                case .conflict: s.failed += 1
                }
            }
        }
        observer.finished(action, outcome: outcome)
    }

    /// Deletes a destination entry, a folder's contents first. With a stack of its own, not
    /// recursion: a tree can be deeper than a thread's stack.
    ///
    /// With a versions folder, files and links are moved there instead (folders are removed
    /// once emptied, as without).
    private func deleteTree(_ path: FileName, entry: Entry, reason: Reason, _ stats: Counter) -> Outcome {
        // Each folder is removed once its entries are: it is visited again after them.
        var pending: [(path: FileName, entry: Entry, emptied: Bool)] = [(path, entry, false)]
        do {
            while let (path, entry, emptied) = pending.popLast() {
                if entry.kind == .directory && !emptied, let children = entry.children, !children.isEmpty {
                    pending.append((path, entry, true))
                    for child in children.reversed() { pending.append((path.appending(child.name), child, false)) }
                    continue
                }
                do {
                    if let versionFolder, entry.kind != .directory {
                        try destination.moveToVersions(path, to: versionFolder.appending(path), entry: entry)
                        versioned(path, reason: Self.versionReason(reason, entry), stats)
                    } else {
                        try destination.remove(path, kind: entry.kind)
                    }
                } catch
                    where EndpointErrorKind.of(error) == .notFound
                {
                    // Gone already (deleted by someone else since the listing): what was wanted.
                }
            }
            return .done
        } catch  where EndpointErrorKind.of(error) == .notEmpty {
            return .kept("folder still holds ignored entries")
        } catch let error as EndpointGone {
            stop(error)
            return .failed("\(error)")
        } catch {
            return .failed(Self.message(error))
        }
    }

    /// The destination, when it moves files to the versions folder many at once.
    private var versionMover: BatchVersionsEndpoint? {
        versionFolder == nil ? nil : destination as? BatchVersionsEndpoint
    }

    /// Deletions waiting for `deleteTogether` (indexes into the plan's actions).
    private var deletions: [Int] = []

    /// Carries out the deletions gathered since the last change of another kind, with versions
    /// on an endpoint that moves files many at once: every file and link of their trees goes to
    /// the versions folder together (in batches of `moveBatch`), then each tree's folders are
    /// removed, children first, and each deletion is recorded in plan order, its files'
    /// `Versioning` lines before its own. A tree one of whose files could not be moved keeps its
    /// folders and fails with that file's error, as one deleted file by file would.
    private func deleteTogether(_ actions: [Action], _ stats: Counter) {
        guard let mover = versionMover, let versionFolder, !deletions.isEmpty else { return }
        let indexes = deletions
        deletions = []
        // Each deletion's files (and links), then its folders, children before parents.
        var files: [(action: Int, path: FileName, entry: Entry)] = []
        var folders: [Int: [(FileName, Entry)]] = [:]
        for index in indexes {
            let action = actions[index]
            var pending: [(FileName, Entry, Bool)] = [(action.path, action.destination!, false)]
            while let (path, entry, emptied) = pending.popLast() {
                if entry.kind == .directory {
                    if emptied {
                        folders[index, default: []].append((path, entry))
                    } else {
                        pending.append((path, entry, true))
                        for child in (entry.children ?? []).reversed() {
                            pending.append((path.appending(child.name), child, false))
                        }
                    }
                } else {
                    files.append((index, path, entry))
                }
            }
        }
        var results: [Error?] = []
        results.reserveCapacity(files.count)
        var start = 0
        while start < files.count {
            let end = min(files.count, start + Self.moveBatch)
            if let gone = stopped.value {
                results += Array(repeating: SyncFailure("not done: \(gone)"), count: end - start)
            } else {
                results += mover.moveToVersions(
                    files[start..<end].map {
                        VersionMove(path: $0.path, version: versionFolder.appending($0.path), entry: $0.entry)
                    })
            }
            start = end
        }
        var next = 0
        for index in indexes {
            let action = actions[index]
            var failure: Outcome?
            while next < files.count && files[next].action == index {
                let (_, path, entry) = files[next]
                let error = results[next]
                next += 1
                guard let error else {
                    versioned(path, reason: Self.versionReason(action.reason, entry), stats)
                    continue
                }
                if EndpointErrorKind.of(error) == .notFound || failure != nil { continue }
                failure = outcome(error)
            }
            if let failure {
                record(action, failure, stats)
                continue
            }
            var outcome = Outcome.done
            for (path, _) in folders[index] ?? [] {
                do {
                    try destination.remove(path, kind: .directory)
                } catch  where EndpointErrorKind.of(error) == .notFound {
                } catch  where EndpointErrorKind.of(error) == .notEmpty {
                    outcome = .kept("folder still holds ignored entries")
                    break
                } catch {
                    outcome = self.outcome(error)
                    break
                }
            }
            record(action, outcome, stats)
        }
    }

    /// Files moved to the versions folder in one call of `moveToVersions`.
    static let moveBatch = 256

    /// Files that `link` actions make further names of, and those of them whose copy failed
    /// in this run (a link to such a file would give the old contents another name).
    private var linkedFiles: Set<FileName> = []
    private let failedLinkedFiles = Guarded<Set<FileName>>([])

    /// Makes each `link` action's file a hard link to the file copied before it; where that
    /// cannot be (the copy failed, the destination holds no links, too many links), copies it.
    private func makeLinks(_ plan: SyncPlan, _ indexes: [Int], stats: Counter) {
        var copies: [Int] = []
        for index in indexes {
            let action = plan.actions[index]
            if cancellation?.isCancelled == true {
                record(action, .stopped, stats)
                continue
            }
            if stopped.value != nil {
                record(action, .failed("not copied: \(EndpointGone.summary)"), stats)
                continue
            }
            guard let existing = plan.hardLinks[action.path], !failedLinkedFiles.value.contains(existing) else {
                copies.append(index)
                continue
            }
            // The file a link replaces is kept like any other (moved, then the link made: a kill
            // between leaves the name absent, and the next run links it again).
            if let versionFolder, let old = action.destination, old.kind == .file {
                do {
                    try destination.moveToVersions(action.path, to: versionFolder.appending(action.path), entry: old)
                    versioned(action.path, reason: action.reason, stats)
                } catch  where EndpointErrorKind.of(error) == .notFound {
                } catch {
                    record(action, outcome(error), stats)
                    continue
                }
            }
            do {
                try destination.link(action.path, to: existing)
                record(action, .done, stats)
            } catch let error as EndpointGone {
                stop(error)
                record(action, .failed("\(error)"), stats)
            } catch {
                copies.append(index)
            }
        }
        if copies.isEmpty { return }
        let fallbacks = copies.map { index -> Action in
            var copy = plan.actions[index]
            copy.kind = .transfer
            if versionFolder != nil { copy.destination = nil }  // kept above already, or not there
            return copy
        }
        runTransfers(fallbacks, Array(fallbacks.indices), stats: stats)
    }

    private func runTransfers(_ actions: [Action], _ indexes: [Int], stats: Counter) {
        if indexes.isEmpty { return }
        // Each worker in a folder of its own where the destination asks for it (an FTP server's
        // create and rename wait on the folder's lock: 7 % of a 10,000-file upload's time was
        // spent spinning on it); a local disk keeps plan order, where new inodes stay together.
        let spread = destination.capabilities.spreadsWritesOverFolders
        let queue = FolderQueue(folders: indexes.map { spread ? actions[$0].path.parent : .empty })
        let staging = self.staging
        // One writer where the destination cannot take two at once (fusefat).
        let workers = destination.capabilities.serialWrites ? 1 : parallelism
        runOnThreads(min(workers, indexes.count)) { worker in
            // Files staged by this worker and not yet put in place: all in one folder.
            var batch: [Action] = []
            var batchBytes: Int64 = 0
            while let next = queue.next(worker: worker) {
                let action = actions[indexes[next]]
                if let staging, let first = batch.first,
                    first.path.parent != action.path.parent || batch.count >= Self.batchFiles
                        || batchBytes >= Self.batchBytes
                {
                    commit(batch, staging, stats)
                    batch = []
                    batchBytes = 0
                }
                if cancellation?.isCancelled == true {
                    settle(action, .stopped, stats)
                    continue
                }
                if stopped.value != nil {
                    settle(action, .failed("not copied: \(EndpointGone.summary)"), stats)
                    continue
                }
                if let staging, action.source?.kind == .file {
                    if let outcome = stage(action, staging) {
                        settle(action, outcome, stats)
                    } else {
                        batch.append(action)
                        batchBytes += action.source?.size ?? 0
                    }
                } else {
                    settle(action, transfer(action), stats)
                }
            }
            if let staging, !batch.isEmpty { commit(batch, staging, stats) }
        }
    }

    /// The destination, when it stages files in batches (an FTP server without TLS). With
    /// versions, only where it keeps them within its batches (`BatchVersionsEndpoint`); else
    /// they are kept file by file (`receive(…keepingVersion:…)`).
    private var staging: StagingEndpoint? {
        // A file read back is checked before its own rename: no batches then.
        guard !verifyWrites, let staging = destination as? StagingEndpoint, staging.stagesInBatches,
            versionFolder == nil || staging is BatchVersionsEndpoint
        else {
            return nil
        }
        return staging
    }

    /// New folders that hold only files (and links), up to `buildFiles` and `buildBytes`: each is
    /// built under a temporary name and renamed into place with all its files, which saves the
    /// rename of each file. The limits bound what an interrupted run loses (the next run removes
    /// the unfinished folder). Values: the folder's file count and bytes.
    static func buildableFolders(_ actions: [Action]) -> [FileName: (files: Int, bytes: Int64)] {
        var folders: [FileName: (files: Int, bytes: Int64)] = [:]
        for action in actions where action.kind == .createFolder { folders[action.path] = (0, 0) }
        if folders.isEmpty { return [:] }  // a re-run that creates no folder: no parent to look up
        var excluded = Set<FileName>()
        for action in actions {
            let parent = action.path.parent
            guard folders[parent] != nil else { continue }
            if action.kind == .transfer, let entry = action.source, entry.kind != .directory {
                folders[parent]!.files += 1
                folders[parent]!.bytes += entry.size
            } else {
                excluded.insert(parent)
            }
        }
        return folders.filter {
            !excluded.contains($0.key) && $0.value.files > 0 && $0.value.files <= buildFiles
                && $0.value.bytes <= buildBytes
        }
    }
    static let buildFiles = 1024
    static let buildBytes: Int64 = 64 << 20

    /// A folder being built (`StagingEndpoint.buildFolder`): its files' outcomes wait until it is
    /// renamed into place, because until then they are not where the report would say.
    final class FolderBuild: @unchecked Sendable {
        let action: Action
        /// Files not settled yet; set before the workers start.
        var outstanding = 0
        var settled: [(Action, Outcome)] = []
        private let lock = Lock()
        init(_ action: Action) { self.action = action }

        /// Adds a file's outcome; returns all of them when it was the last.
        func add(_ action: Action, _ outcome: Outcome) -> [(Action, Outcome)]? {
            lock.lock()
            defer { lock.unlock() }
            settled.append((action, outcome))
            outstanding -= 1
            return outstanding == 0 ? settled : nil
        }
    }

    /// Folders being built, by path: filled before the workers start, read-only while they run.
    private var building: [FileName: FolderBuild] = [:]

    /// Records a file's outcome, or keeps it until its folder is in place.
    private func settle(_ action: Action, _ outcome: Outcome, _ stats: Counter) {
        guard let folder = building[action.path.parent] else { return record(action, outcome, stats) }
        if let settled = folder.add(action, outcome) { finish(folder, settled, stats) }
    }

    /// Renames a built folder into place (tried again like a transfer), then records it and its
    /// files. When it cannot be, its files are recorded as failed: they are not in place.
    private func finish(_ folder: FolderBuild, _ settled: [(Action, Outcome)], _ stats: Counter) {
        folder.outstanding = 0
        var files: [StagedFile] = []
        var failures = false
        for (action, outcome) in settled {
            switch outcome {
            case .done: files.append(StagedFile(path: action.path, entry: action.source!, replacing: false))
            case .failed, .stopped: failures = true
            case .kept, .planned: break
            }
        }
        do {
            if let gone = stopped.value { throw SyncFailure("not done: \(gone)") }  // no retries in vain
            try retrying(delays: retryDelays, onRetry: tell(folder.action)) {
                try staging!.commitFolder(folder.action.path, holding: files, verify: failures)
            }
            record(folder.action, .done, stats)
            for (action, outcome) in settled { record(action, outcome, stats) }
        } catch {
            let failure = outcome(error)
            record(folder.action, failure, stats)
            for (action, outcome) in settled {
                if case .done = outcome {
                    record(action, .failed("not put in place: its folder was not (\(Self.message(error)))"), stats)
                } else {
                    record(action, outcome, stats)
                }
            }
        }
    }

    /// A worker puts its staged files in place after this many files or bytes, or when it moves
    /// to another folder: a batch is what a failed connection makes the worker send again.
    static let batchFiles = 64
    static let batchBytes: Int64 = 64 << 20

    /// Pauses before the second, third and fourth try of a transfer whose error is transient.
    public var retryDelays: [Double] = [0.5, 2, 5]

    /// A symbolic link for a destination that cannot store one (FAT, FTP): skipped with the
    /// reason on every run, not a failure (a failure would withhold a mirror's deletions forever).
    static func unstorable(_ action: Action, on destination: Endpoint) -> Bool {
        action.source?.kind == .symlink && !destination.capabilities.keepsSymlinks
    }
    static let noSymlinks = "the destination cannot store symbolic links"

    private func transfer(_ action: Action, delays: [Double]? = nil) -> Outcome {
        if Self.unstorable(action, on: destination) { return .kept(Self.noSymlinks) }
        do {
            try retrying(delays: delays ?? retryDelays, onRetry: tell(action)) {
                try transferOnce(action)
            }
            return .done
        } catch {
            return outcome(error)
        }
    }

    /// The first half of a transfer to a `StagingEndpoint`, tried again like a transfer: nil
    /// when the file waits under its temporary name for `commit`, else the outcome.
    private func stage(_ action: Action, _ staging: StagingEndpoint) -> Outcome? {
        guard let entry = action.source else { return .failed("no source entry") }
        do {
            try retrying(delays: retryDelays, onRetry: tell(action)) {
                let file = try source.openForReading(action.path, entry: entry)
                defer { file.close() }
                try staging.stage(action.path, from: file, entry: entry) { [observer] bytes in
                    observer.transferred(bytes: bytes)
                }
            }
            return nil
        } catch {
            return outcome(error)
        }
    }

    /// Puts a worker's staged files in place. A file the endpoint could not put in place for a
    /// transient reason (a cut connection, a short upload) is transferred again on its own,
    /// with the pauses of a transfer's later tries.
    private func commit(_ batch: [Action], _ staging: StagingEndpoint, _ stats: Counter) {
        let files = batch.map {
            StagedFile(path: $0.path, entry: $0.source!, replacing: $0.destination?.kind == .file)
        }
        var again: [Action] = []
        let results: [Error?]
        if let versionFolder, let keeper = staging as? BatchVersionsEndpoint {
            // The files replaced are kept: moved to the versions folder within the batch.
            results = keeper.commit(
                files, keepingVersions: batch.map { keepsVersion($0) ? versionFolder.appending($0.path) : nil })
        } else {
            results = staging.commit(files)
        }
        for (action, error) in zip(batch, results) {
            guard let error else {
                settle(action, .done, stats)
                continue
            }
            if EndpointErrorKind.of(error) == .retryable, let delay = retryDelays.first,
                stopped.value == nil
            {
                tell(action)(error, delay)
                again.append(action)
            } else {
                settle(action, outcome(error), stats)
            }
        }
        guard let delay = retryDelays.first, !again.isEmpty else { return }
        usleep(useconds_t(delay * 1_000_000))  // once for the batch (a cut connection fails them all)
        for action in again { settle(action, transfer(action, delays: Array(retryDelays.dropFirst())), stats) }
    }

    private func tell(_ action: Action) -> (Error, Double) -> Void {
        { error, delay in self.observer.retrying(action, error: Self.message(error), delay: delay) }
    }

    private func outcome(_ error: Error) -> Outcome {
        if let error = error as? EndpointGone {
            stop(error)
            return .failed("\(error)")
        }
        return .failed(Self.message(error))
    }

    /// Set when the destination went away (`EndpointGone`): nothing more is started.
    private let stopped = Guarded<String?>(nil)

    private func stop(_ error: EndpointGone) {
        stopped.update { if $0 == nil { $0 = error.description } }
    }

    private func transferOnce(_ action: Action) throws {
        guard let entry = action.source else { throw SyncFailure("no source entry") }
        do {
            if entry.kind == .symlink {
                try destination.createSymlink(action.path, entry: entry)
                if let owner = source.owner(of: action.path) { try destination.setOwner(action.path, owner) }
                return
            }
            let opened = try source.openForReading(action.path, entry: entry)
            let file: ReadableFile = verifyWrites ? CheckedFile(opened) : opened
            defer { file.close() }
            let replacing = action.destination?.kind == .file
            if let versionFolder, replacing, let old = action.destination {
                try destination.receive(
                    action.path, from: file, entry: entry, keepingVersion: versionFolder.appending(action.path), of: old
                ) { [observer] bytes in
                    observer.transferred(bytes: bytes)
                }
                return
            }
            try destination.receive(action.path, from: file, entry: entry, replacing: replacing) { [observer] bytes in
                observer.transferred(bytes: bytes)
            }
        }
    }

    static func message(_ error: Error) -> String {
        if let error = error as? SystemError { return "\(error.operation): \(error.reason)" }
        return "\(error)"
    }

    /// Statistics shared by the workers.
    final class Counter: @unchecked Sendable {
        private var stats = SyncStatistics()
        private let lock = Lock()
        func update(_ body: (inout SyncStatistics) -> Void) {
            lock.lock()
            body(&stats)
            lock.unlock()
        }
        var value: SyncStatistics {
            lock.lock()
            defer { lock.unlock() }
            return stats
        }
    }

    /// A value several workers read and write.
    final class Guarded<Value>: @unchecked Sendable {
        private var stored: Value
        private let lock = Lock()
        init(_ value: Value) { stored = value }
        var value: Value {
            lock.lock()
            defer { lock.unlock() }
            return stored
        }
        func update(_ body: (inout Value) -> Void) {
            lock.lock()
            body(&stored)
            lock.unlock()
        }
    }

    /// Hands out the indexes of `folders` once each, to several workers, each worker keeping to
    /// one folder while it has files and the others taking other folders: workers writing into
    /// the same folder wait for each other on its lock. With one folder for all, plan order.
    /// A worker whose folder is done takes the next untouched folder, or else helps with the
    /// folder that has the most left.
    final class FolderQueue: @unchecked Sendable {
        private var groups: [[Int]] = []
        private var cursors: [Int] = []
        private var nextGroup = 0
        private var current: [Int: Int] = [:]  // worker -> group
        private let lock = Lock()

        init(folders: [FileName]) {
            var groupOf: [FileName: Int] = [:]
            for (index, folder) in folders.enumerated() {
                if let group = groupOf[folder] {
                    groups[group].append(index)
                } else {
                    groupOf[folder] = groups.count
                    groups.append([index])
                }
            }
            cursors = Array(repeating: 0, count: groups.count)
        }

        func next(worker: Int) -> Int? {
            lock.lock()
            defer { lock.unlock() }
            var group = current[worker] ?? -1
            if group < 0 || cursors[group] == groups[group].count {
                if nextGroup < groups.count {
                    group = nextGroup
                    nextGroup += 1
                } else {
                    var most = 0
                    group = -1
                    for g in groups.indices where groups[g].count - cursors[g] > most {
                        most = groups[g].count - cursors[g]
                        group = g
                    }
                    if group < 0 { return nil }
                }
                current[worker] = group
            }
            cursors[group] += 1
            return groups[group][cursors[group] - 1]
        }
    }
}
