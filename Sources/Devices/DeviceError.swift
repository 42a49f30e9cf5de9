#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The one error type of the `Devices` module.
///
/// `message` is a complete, human-readable sentence fragment such as
/// `cannot read /proc/self/mountinfo: No such file or directory`; it is also the `description`,
/// so it can be printed as is.
public struct DeviceError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, naming the file or device concerned.
    public let message: String
    /// The C `errno` value behind the failure, when there was one.
    public let errno: Int32?

    /// Creates an error with a message and an optional `errno` value.
    public init(_ message: String, errno: Int32? = nil) {
        self.message = message
        self.errno = errno
    }

    /// Creates an error for a failed system call: `"<what>: <strerror(code)>"`.
    static func system(_ what: String, errno code: Int32) -> DeviceError {
        DeviceError("\(what): \(errorString(code))", errno: code)
    }

    public var description: String { message }
}

/// `strerror` as a Swift string.
func errorString(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "error \(code)" }
    return String(cString: text)
}
