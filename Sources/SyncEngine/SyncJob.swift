import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// What a run of one definition is asked to do (the definition's settings and the command's).
public struct SyncSettings: Sendable {
    public var type: SyncType
    public var recursive = true
    public var ignore: IgnoreList = .none
    /// How many destination entries a mirror may delete in one run.
    public var maxDelete: MaxDelete = .percent(50)
    public var dryRun = false
    /// Lets a mirror delete more than `maxDelete`, or empty a destination from an empty source.
    public var forceDelete = false
    /// Files transferred at once.
    public var parallel = 4
    /// `parallel` was chosen by the user: the endpoints may not raise it (`transfersAtOnce`).
    public var parallelGiven = false
    public var cancellation: Cancellation?
    /// Keep what the run replaces or deletes in `.plugsync-versions`, and prune by this.
    public var versions: VersionPolicy?
    /// Read each copied file back and compare it with what was sent (`verify: true`).
    public var verifyWrites = false
    /// When the run started (seconds since 1970): its versions folder's name.
    public var started = Int(time(nil))
    /// "Now" for pruning (seconds since 1970); nil: the clock.
    public var now: Int?

    public init(type: SyncType) { self.type = type }
}

/// The limit on a mirror's deletions in one run (`max_delete`).
public enum MaxDelete: Sendable, Equatable, CustomStringConvertible {
    case count(Int)
    case percent(Double)

    /// A count (`100`) or a percentage (`50%`, at most 100), as the definitions file and the
    /// command line write it; nil for anything else.
    public init?(parsing text: String) {
        if text.hasSuffix("%"), let value = Double(text.dropLast()), value >= 0, value <= 100, value.isFinite {
            self = .percent(value)
        } else if let count = Int(text), count >= 0 {
            self = .count(count)
        } else {
            return nil
        }
    }

    /// Whether deleting `deletions` of `total` destination entries stays within the limit.
    public func allows(_ deletions: Int, of total: Int) -> Bool {
        switch self {
        case .count(let limit): return deletions <= limit
        case .percent(let limit):
            if deletions == 0 { return true }
            return Double(deletions) * 100 <= limit * Double(max(total, 1))
        }
    }

    public var description: String {
        switch self {
        case .count(let n): return "\(n)"
        case .percent(let p): return p == p.rounded() ? "\(Int(p))%" : "\(p)%"
        }
    }
}

/// One side of a run, made concrete for it.
public struct SyncSide {
    public var endpoint: Endpoint
    /// Paths its listing leaves out (a File Check file, a drive's `lost+found`); left out on
    /// both sides, so they are neither copied, overwritten nor deleted.
    public var excluded: Set<FileName>
    /// A removable drive: written data is flushed before the run reports success.
    public var isDrive: Bool
    /// A file of the state directory the endpoint may keep between runs (`RunSettings`).
    public var memoryFile: String?
    /// Turns this side's errors into what the run reports (a lost server: a refusal).
    public var translate: @Sendable (Error) -> Error

    public init(
        endpoint: Endpoint, excluded: Set<FileName> = [], isDrive: Bool = false, memoryFile: String? = nil,
        translate: @escaping @Sendable (Error) -> Error = { $0 }
    ) {
        self.endpoint = endpoint
        self.excluded = excluded
        self.isDrive = isDrive
        self.memoryFile = memoryFile
        self.translate = translate
    }

    func translating<R>(_ body: () throws -> R) throws -> R {
        do { return try body() } catch { throw translate(error) }
    }
}

/// Hears a run's report: its action lines (`SyncObserver`) and the lines between them.
public protocol RunObserver: SyncObserver {
    /// A line that is not an action: a header, a clock measurement.
    func say(_ line: String)
    /// A line about something that went wrong or is withheld: a listing error, withheld
    /// deletions. Shown even where the other lines are not (standard error).
    func sayError(_ line: String)
    /// The plan is made: how actions are worded, and how many files and bytes it transfers.
    func begin(formatter: ActionFormatter, files: Int, bytes: Int64)
    /// The run reached the end of a phase (`start`, `resolve`, `list`, `plan`, `execute`).
    func phase(_ name: String)
}

extension RunObserver {
    public func phase(_ name: String) {}
    public func sayError(_ line: String) { say(line) }
}

/// A run between two endpoints: list both sides, plan, hold to the safety rails, execute.
///
/// Safety rails, each a refusal (`PreconditionError`) before anything is changed: an absent
/// source never empties a mirror, nor does an empty one; a listing with errors, or a run that
/// must copy a file it may not read, deletes nothing; a mirror deletes no more than
/// `maxDelete`. Nothing before the executor writes.
public final class SyncJob: @unchecked Sendable {
    private let settings: SyncSettings
    private let observer: RunObserver
    /// A side listed early (`startListing`), and the hint its folders give the other side.
    private var early: (endpoint: ObjectIdentifier, listing: Background<Listing>)?
    private let hint = ListingHint()
    private let lock = Lock()

    public init(_ settings: SyncSettings, observer: RunObserver) {
        self.settings = settings
        self.observer = observer
    }

    deinit { _ = early?.listing.value }  // no listing outlives its run

    /// Starts listing a side that lists quickly (a local folder) as soon as it is known, on a
    /// thread of its own, while the other side still connects: its folders become the other
    /// side's listing hint as soon as they are known. At most one side is listed early.
    public func startListing(_ endpoint: Endpoint, excluded: Set<FileName>) {
        let filter = ListingFilter(ignore: settings.ignore, excludedPaths: excluded.union([VersionsFolder.name]))
        let recursive = settings.recursive
        let hint = self.hint
        let listing = Background {
            let listing = endpoint.list(recursive: recursive, filter: filter)
            hint.provide(listing)
            return listing
        }
        lock.withLock { early = (ObjectIdentifier(endpoint), listing) }
    }

    public func run(source: SyncSide, destination: SyncSide) throws -> SyncStatistics {
        let early = lock.withLock { self.early }
        let earlyIndex: Int? =
            early.map { $0.endpoint == ObjectIdentifier(source.endpoint) ? 0 : 1 }
        if settings.versions != nil && !destination.endpoint.capabilities.keepsVersions {
            throw PreconditionError(
                "the destination \(destination.endpoint.displayName) cannot keep versions yet (versions: is set on the definition); nothing was changed"
            )
        }
        if settings.verifyWrites && !destination.endpoint.capabilities.readsBack {
            throw PreconditionError(
                "the destination \(destination.endpoint.displayName) cannot read back what a run writes yet (verify: true is set on the definition); nothing was changed"
            )
        }
        // What the last run learned (a server's exact times and clock: how the first listing may
        // go), then what this run needs to learn (the clock difference and how times are set: a
        // server uploads a probe file and deletes it again; a dry run takes the last run's
        // measurement where there is one).
        source.endpoint.beginRun(RunSettings(side: .source, dryRun: settings.dryRun, memoryFile: source.memoryFile))
        destination.endpoint.beginRun(
            RunSettings(side: .destination, dryRun: settings.dryRun, memoryFile: destination.memoryFile))
        // Safety rail 1: an absent source never empties a mirror.
        if try source.translating({ try source.endpoint.rootState() }) == .missing {
            throw PreconditionError(
                "the source folder \(source.endpoint.displayName) does not exist; nothing was changed")
        }
        // The versions folder is never synchronized, on either side, nor an orphan.
        let filter = ListingFilter(
            ignore: settings.ignore,
            excludedPaths: source.excluded.union(destination.excluded).union([VersionsFolder.name]))
        // The preparations and the listings at once: a listing does not wait for the other's
        // round trips (`willPrepare`), once the synchronized folder is listed without a probe in
        // it (the source's was, for safety rail 1).
        _ = try destination.translating { try destination.endpoint.rootState() }
        observer.phase("resolve")
        source.endpoint.willPrepare()
        destination.endpoint.willPrepare()
        // A side listed early hands its folders to the other side's listing (`ListingHint`).
        if earlyIndex == 0 { destination.endpoint.useListingHint(hint) }
        if earlyIndex == 1 { source.endpoint.useListingHint(hint) }
        var prepareError: Error?
        var sourceListing = Listing()
        var destinationListing = Listing()
        runOnThreads(3) { task in
            switch task {
            case 0:
                do {
                    try source.translating { try source.endpoint.prepare(say: observer.say) }
                    try destination.translating { try destination.endpoint.prepare(say: observer.say) }
                } catch {
                    prepareError = error
                    source.endpoint.cancelPrepare()
                    destination.endpoint.cancelPrepare()
                }
            case 1:
                if earlyIndex != 0 {
                    sourceListing = source.endpoint.list(recursive: settings.recursive, filter: filter)
                }
            default:
                if earlyIndex != 1 {
                    destinationListing = destination.endpoint.list(recursive: settings.recursive, filter: filter)
                }
            }
        }
        if let prepareError { throw prepareError }
        if var listed = early?.listing.value {
            listed.leaveOut(filter.excludedPaths)  // the other side's File Check path
            if earlyIndex == 0 { sourceListing = listed } else { destinationListing = listed }
        }
        // Coarse listed times (FTP LIST: a minute, a day) are made exact where a comparison needs it.
        source.endpoint.refineTimes(&sourceListing, comparedWith: destinationListing.entries)
        destination.endpoint.refineTimes(&destinationListing, comparedWith: sourceListing.entries)
        observer.phase("list")
        for error in sourceListing.errors { observer.sayError("Cannot list \(error)") }
        for error in destinationListing.errors { observer.sayError("Cannot list \(error)") }
        let destinationCount = destinationListing.count
        if settings.type == .mirror && sourceListing.entries.isEmpty && destinationCount > 0 && !settings.forceDelete {
            throw PreconditionError(
                "the source folder \(source.endpoint.displayName) is empty but the destination holds \(destinationCount) entries; an empty source must not wipe a mirror (use --force-delete if you mean it)"
            )
        }

        let planner = Planner(
            type: settings.type, source: source.endpoint.capabilities,
            destination: destination.endpoint.capabilities, keptFolders: Planner.ancestors(of: destination.excluded))
        var plan = planner.plan(
            source: sourceListing.entries, destination: destinationListing.entries,
            sourceLinks: sourceListing.hardLinks)
        observer.phase("plan")
        let listingFailed = !sourceListing.errors.isEmpty || !destinationListing.errors.isEmpty
        withholdDeletions(&plan, listingFailed: listingFailed, unreadable: sourceListing.unreadableFiles)
        // Safety rail 3: max_delete. A dry run goes on to show the whole plan, and says why the
        // real run would be refused.
        // With versions, what a mirror deletes goes to the versions folder: nothing is lost, and
        // only what would be lost counts.
        let deletions = settings.versions == nil ? plan.deletionCount : 0
        var refusal: String?
        if settings.type == .mirror && !settings.maxDelete.allows(deletions, of: destinationCount)
            && !settings.forceDelete
        {
            let reason =
                "the mirror would delete \(deletions) of \(destinationCount) destination entries, more than max_delete (\(settings.maxDelete))"
            guard settings.dryRun else {
                throw PreconditionError(reason + "; nothing was changed (use --force-delete if you mean it)")
            }
            refusal = reason + " (use --force-delete if you mean it)"
        }

        if !settings.dryRun, try destination.endpoint.rootState() == .missing {
            do { try destination.endpoint.prepareRoot() } catch is EndpointGone {
                // A drive pulled since the listing: the executor stops at its first entry and says so.
            }
        }
        let formatter = ActionFormatter(
            source: source.endpoint.capabilities, destination: destination.endpoint.capabilities)
        let transfers = plan.actions.filter { $0.kind == .transfer || $0.kind == .replace }
        observer.begin(formatter: formatter, files: transfers.count, bytes: plan.transferBytes)
        var parallelism = settings.parallel
        if !settings.parallelGiven {
            parallelism = max(
                source.endpoint.transfersAtOnce(settings.parallel),
                destination.endpoint.transfersAtOnce(settings.parallel))
        }
        let executor = Executor(
            source: source.endpoint, destination: destination.endpoint, parallelism: parallelism,
            observer: observer, cancellation: settings.cancellation)
        if settings.versions != nil {
            executor.versionFolder = VersionsFolder.runFolder(stamp: VersionsFolder.stamp(settings.started))
        }
        executor.verifyWrites = settings.verifyWrites
        var statistics = executor.execute(
            plan, temporaryFiles: destinationListing.temporaryFiles,
            temporaryFolders: destinationListing.temporaryFolders, dryRun: settings.dryRun)
        // Pruning, only after a run that succeeded.
        if let policy = settings.versions, !settings.dryRun, statistics.failed == 0, statistics.notStarted == 0,
            statistics.stoppedBecause == nil, !listingFailed, settings.cancellation?.isCancelled != true
        {
            statistics.pruned = VersionPruning.prune(
                destination.endpoint, policy: policy, now: settings.now ?? Int(time(nil)),
                versioned: executor.versionedPaths, run: executor.versionFolder?.lastComponent.description,
                say: observer.say, sayError: observer.sayError)
        }
        if !settings.dryRun && destination.isDrive && statistics.stoppedBecause == nil {
            do { try destination.endpoint.flush() } catch {
                observer.sayError("Cannot flush the destination drive: \(error)")
                statistics.failed += 1
            }
        }
        observer.phase("execute")
        if !settings.dryRun {
            source.endpoint.finishRun()
            destination.endpoint.finishRun()
        }
        if listingFailed { statistics.failed += sourceListing.errors.count + destinationListing.errors.count }
        statistics.refusal = refusal
        return statistics
    }

    /// Safety rail 2: a listing with errors deletes nothing (an unreadable folder is not empty),
    /// and neither does a run that must copy a source file it may not read. A replacement
    /// becomes a conflict: what is there stays.
    private func withholdDeletions(_ plan: inout SyncPlan, listingFailed: Bool, unreadable files: [FileName]) {
        let unreadable = Set(files)
        let cannotRead =
            !unreadable.isEmpty
            && plan.actions.contains { ($0.kind == .transfer || $0.kind == .replace) && unreadable.contains($0.path) }
        guard (listingFailed || cannotRead) && plan.deletionCount > 0 else { return }
        let withheld = plan.deletionCount
        plan.actions = plan.actions.compactMap { action in
            switch action.kind {
            case .delete: return nil
            case .replace:
                var conflict = action
                conflict.kind = .conflict
                return conflict
            default: return action
            }
        }
        observer.sayError(
            listingFailed
                ? "Not deleting \(withheld) entries: the listing had errors, so nothing is deleted this run"
                : "Not deleting \(withheld) entries: source files that must be copied cannot be read, so nothing is deleted this run"
        )
    }
}

/// A refusal before anything was touched: a failed File Check, an absent drive, a safety rail.
/// Exit code 3.
public struct PreconditionError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
