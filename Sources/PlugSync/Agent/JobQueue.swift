import Dispatch
import SyncEngine
import SystemSupport

/// One run of a definition at a time, whichever triggers fire.
///
/// `submit` starts a run when the definition is idle. While it runs, further submissions are
/// coalesced into ONE follow-up run (with the latest trigger), started as soon as the current
/// one ends: a trigger is never lost, and never duplicated. Across processes, the runs are
/// serialized again by `DefinitionLock` inside `SyncRunner`.
public final class JobQueue: @unchecked Sendable {
    /// What `submit` did with a request.
    public enum Admission: Equatable, Sendable {
        /// The definition was idle: a run started.
        case started
        /// A run is going on: a follow-up run was queued.
        case queued
        /// A run is going on and a follow-up is queued already: merged into it.
        case merged
    }

    private struct State {
        var running = false
        var pending: RunTrigger?
        var currentWaiters: [@Sendable () -> Void] = []
        var pendingWaiters: [@Sendable () -> Void] = []
    }

    private let condition = Condition()
    private var states: [String: State] = [:]
    private var accepting = true
    private let work: @Sendable (_ name: String, _ trigger: RunTrigger) -> Void

    /// `work` runs one definition (blocking); it is called on a background thread.
    public init(work: @escaping @Sendable (_ name: String, _ trigger: RunTrigger) -> Void) {
        self.work = work
    }

    /// Asks for a run of `name`; `done` is called when the run that covers this request ends.
    @discardableResult
    public func submit(_ name: String, trigger: RunTrigger, done: (@Sendable () -> Void)? = nil) -> Admission? {
        condition.lock()
        defer { condition.unlock() }
        guard accepting else { return nil }
        var state = states[name] ?? State()
        let admission: Admission
        if !state.running {
            state.running = true
            if let done { state.currentWaiters.append(done) }
            admission = .started
            start(name, trigger)
        } else {
            admission = state.pending == nil ? .queued : .merged
            state.pending = trigger
            if let done { state.pendingWaiters.append(done) }
        }
        states[name] = state
        return admission
    }

    private func start(_ name: String, _ trigger: RunTrigger) {
        startThread { [self] in
            var trigger = trigger
            while true {
                work(name, trigger)
                condition.lock()
                var state = states[name]!
                let waiters = state.currentWaiters
                state.currentWaiters = state.pendingWaiters
                state.pendingWaiters = []
                let next = accepting ? state.pending : nil
                state.pending = nil
                if next == nil {
                    state.running = false
                    for waiter in state.currentWaiters { DispatchQueue.global().async(execute: waiter) }
                    state.currentWaiters = []
                }
                states[name] = state
                condition.broadcast()
                condition.unlock()
                for waiter in waiters { waiter() }
                guard let next else { return }
                trigger = next
            }
        }
    }

    /// Whether a run of `name` is going on.
    public func isRunning(_ name: String) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return states[name]?.running ?? false
    }

    /// Whether nothing runs.
    public var isIdle: Bool {
        condition.lock()
        defer { condition.unlock() }
        return !states.values.contains { $0.running }
    }

    /// Stops accepting work (queued follow-ups are dropped) and waits up to `timeout` seconds for
    /// the runs going on; returns whether they all ended.
    public func drain(timeout: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        accepting = false
        let deadline = Condition.now() + timeout
        while states.values.contains(where: { $0.running }) {
            if !condition.wait(until: deadline) { return false }
        }
        return true
    }

    /// Waits until nothing runs (for tests and the bench); returns whether it got there.
    public func waitUntilIdle(timeout: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Condition.now() + timeout
        while states.values.contains(where: { $0.running }) {
            if !condition.wait(until: deadline) { return false }
        }
        return true
    }
}
