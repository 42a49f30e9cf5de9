#if canImport(Glibc)
    import Glibc
#endif

/// A condition variable with its own mutex (NSCondition without Foundation).
public final class Condition: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    public init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }
    public func broadcast() { pthread_cond_broadcast(condition) }

    /// Waits (the lock held) until signalled or `deadline` (monotonic seconds) passes; false on
    /// timeout.
    public func wait(until deadline: Double) -> Bool {
        var time = timespec()
        time.tv_sec = Int(deadline)
        time.tv_nsec = Int((deadline - Double(Int(deadline))) * 1e9)
        return pthread_cond_timedwait(condition, mutex, &time) != ETIMEDOUT
    }

    /// Seconds on the monotonic clock, for `wait(until:)`.
    public static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}

/// Starts `body` on a detached thread of its own (Foundation's `Thread` without Foundation).
public func startThread(_ body: @escaping () -> Void) {
    final class Job {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }
    var thread = pthread_t()
    let job = Unmanaged.passRetained(Job(body)).toOpaque()
    let created = pthread_create(
        &thread, nil,
        { raw in
            Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, job)
    if created == 0 {
        pthread_detach(thread)
    } else {
        Unmanaged<Job>.fromOpaque(job).takeRetainedValue().body()
    }
}

/// A value computed on a thread of its own while its starter goes on; `value` waits for it.
/// Read `value` on every way out (a `defer`) so the work does not outlive its caller.
public final class Background<Value>: @unchecked Sendable {
    private let done = Condition()
    private var result: Value?

    public init(_ body: @escaping () -> Value) {
        startThread { [self] in
            let value = body()
            done.lock()
            result = value
            done.broadcast()
            done.unlock()
        }
    }

    public var value: Value {
        done.lock()
        defer { done.unlock() }
        while result == nil { _ = done.wait(until: Condition.now() + 1) }
        return result!
    }
}

/// Runs `body(0) … body(count - 1)` on `count` threads of their own and waits for them all.
///
/// Not `DispatchQueue.concurrentPerform`: it runs at most one iteration per CPU at a time, so on
/// a 2-core machine 4 FTP workers, each mostly waiting on the network, ran 2 at a time.
public func runOnThreads(_ count: Int, _ body: (Int) -> Void) {
    if count <= 1 {
        if count == 1 { body(0) }
        return
    }
    // Every thread is joined before this returns, so `body` does not outlive the call.
    withoutActuallyEscaping(body) { startThreads(count, $0) }
}

private func startThreads(_ count: Int, _ body: @escaping (Int) -> Void) {
    final class Job {
        let body: (Int) -> Void
        let index: Int
        init(_ body: @escaping (Int) -> Void, _ index: Int) {
            self.body = body
            self.index = index
        }
    }
    var threads: [pthread_t] = []
    for index in 0..<count {
        var thread = pthread_t()
        let job = Unmanaged.passRetained(Job(body, index)).toOpaque()
        let created = pthread_create(
            &thread, nil,
            { raw in
                let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
                job.body(job.index)
                return nil
            }, job)
        if created == 0 {
            threads.append(thread)
        } else {
            Unmanaged<Job>.fromOpaque(job).release()
            body(index)  // no thread to be had: do the share here
        }
    }
    for thread in threads { pthread_join(thread, nil) }
}

/// Hands out the indexes 0..<count once each, to several workers.
public final class WorkQueue: @unchecked Sendable {
    private let count: Int
    private var taken = 0
    private let lock = Lock()
    public init(count: Int) { self.count = count }
    public func next() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard taken < count else { return nil }
        taken += 1
        return taken - 1
    }
}
