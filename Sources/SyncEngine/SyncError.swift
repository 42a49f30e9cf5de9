#if canImport(Glibc)
    import Glibc
#endif

/// A failed system call: which call, on which path, and errno.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var path: String
    public var errno: Int32

    public init(_ operation: String, path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    /// The C library's text for the errno, e.g. "No space left on device".
    public var reason: String { String(cString: strerror(errno)) }

    public var description: String { "\(path): \(operation): \(reason)" }
}

/// An error an endpoint classifies as transient (a dropped connection, a 4xx reply): the
/// executor tries the transfer again after a pause before recording it as failed.
public protocol RetryableError: Error {
    var isRetryable: Bool { get }
}

/// A transfer that cannot happen, with the reason shown in its action line.
struct SyncFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
