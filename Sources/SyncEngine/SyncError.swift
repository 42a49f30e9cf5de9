import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// What an endpoint's failure means to a run. The executor acts on the kind alone, never on a
/// backend's own error type or wording.
public enum EndpointErrorKind: Sendable, Equatable {
    /// Nothing is there (deleting it is then done).
    case notFound
    /// A folder still holds entries (ignored ones): it is kept.
    case notEmpty
    /// Transient (a dropped connection, a 4xx reply): the transfer is tried again after a pause.
    case retryable
    /// The endpoint itself went away (a drive pulled): nothing more is started.
    case gone
    /// Anything else: the entry fails with the error's text.
    case permanent

    /// The kind of any error: an endpoint's own errors say theirs (`EndpointFailure`).
    public static func of(_ error: Error) -> EndpointErrorKind {
        (error as? EndpointFailure)?.endpointErrorKind ?? .permanent
    }
}

/// An error that says what it means to a run; a backend's errors conform.
public protocol EndpointFailure: Error {
    var endpointErrorKind: EndpointErrorKind { get }
}

/// A failure an endpoint reports in its own words, with its kind.
public struct EndpointError: EndpointFailure, CustomStringConvertible, Sendable {
    public var endpointErrorKind: EndpointErrorKind
    public var description: String

    public init(_ kind: EndpointErrorKind, _ description: String) {
        self.endpointErrorKind = kind
        self.description = description
    }
}

extension SystemError: EndpointFailure {
    public var endpointErrorKind: EndpointErrorKind {
        switch errno {
        case ENOENT: .notFound
        case ENOTEMPTY: .notEmpty
        default: .permanent
        }
    }
}

/// Runs `body`, and again after each pause of `delays` in turn while it throws a transient
/// error (`EndpointErrorKind.retryable`); `onRetry` hears of each retry before its pause. Any
/// other error, or the transient one after the last pause, is thrown.
public func retrying<T>(
    delays: [Double], onRetry: (_ error: Error, _ delay: Double) -> Void = { _, _ in }, _ body: () throws -> T
) throws -> T {
    var attempt = 0
    while true {
        do {
            return try body()
        } catch  where EndpointErrorKind.of(error) == .retryable && attempt < delays.count {
            onRetry(error, delays[attempt])
            usleep(useconds_t(delays[attempt] * 1_000_000))
            attempt += 1
        }
    }
}

/// A transfer that cannot happen, with the reason shown in its action line.
public struct SyncFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The destination's filesystem is not the one the run started on any more (the drive was pulled
/// or unmounted during the run): a later write would land on whatever lies under the mount point,
/// so the executor starts no further transfer.
public struct EndpointGone: EndpointFailure, CustomStringConvertible, Sendable {
    public var endpointErrorKind: EndpointErrorKind { .gone }
    /// What happened, with the path: "the destination drive is gone: /mnt/x is no longer …".
    public var description: String
    /// The short form for the entries not started because of it.
    public static let summary = "the destination drive is gone"
    public init(_ detail: String) { self.description = Self.summary + ": " + detail }
}
