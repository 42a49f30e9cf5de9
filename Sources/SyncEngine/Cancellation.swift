import SystemSupport

/// Asks a running sync to stop: the executor starts no new transfer once it is set, and the
/// files in flight finish (each is written under a temporary name and renamed only when
/// complete, so nothing half-written ever carries a final name).
public final class Cancellation: @unchecked Sendable {
    private let lock = Lock()
    private var cancelled = false

    public init() {}

    public func cancel() {
        lock.lock()
        cancelled = true
        lock.unlock()
    }

    public var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return cancelled
    }
}
