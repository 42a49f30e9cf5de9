import SystemSupport

/// Asks a running sync to stop: the executor starts no new transfer once it is set, and the
/// files in flight finish (each is written under a temporary name and renamed only when
/// complete, so nothing half-written ever carries a final name).
public final class Cancellation: @unchecked Sendable {
    private let lock = Lock()
    private var cancelled = false
    private var why: String?

    public init() {}

    /// `reason` says who asked, for the run's report: `SIGINT (Ctrl-C)`, `SIGTERM`.
    public func cancel(reason: String? = nil) {
        lock.lock()
        if !cancelled { why = reason }
        cancelled = true
        lock.unlock()
    }

    public var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return cancelled
    }

    /// Who asked the run to stop, when the one who did said so.
    public var reason: String? {
        lock.lock()
        defer { lock.unlock() }
        return why
    }
}
