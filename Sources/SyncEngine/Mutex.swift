#if canImport(Glibc)
    import Glibc
#endif

/// A pthread mutex (Foundation's NSLock without Foundation).
final class Mutex: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func locked<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// Runs `body(0) … body(count - 1)` on `count` threads of their own and waits for them all.
///
/// Not `DispatchQueue.concurrentPerform`: it runs at most one iteration per CPU at a time, so on
/// a 2-core machine 4 FTP workers, each mostly waiting on the network, ran 2 at a time.
func runOnThreads(_ count: Int, _ body: (Int) -> Void) {
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
