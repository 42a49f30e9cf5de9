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
