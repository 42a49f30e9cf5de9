import SystemSupport

/// The folders one side of a run holds, handed to the other side's listing while it runs: a
/// server's listing can then ask for the folders it expects before their parents are listed,
/// instead of one level of the tree after the other (`FTPEndpoint.list`).
///
/// Only a guess: the listing keeps what the server's own parent listings confirm and drops the
/// rest, so a wrong or missing hint costs time, never a wrong listing.
public final class ListingHint: @unchecked Sendable {
    private let lock = Lock()
    private var given: [FileName]?

    public init() {}

    /// The folders of `listing` (relative paths), those with the most entries first: the longest
    /// listings start first and the last ones to finish are short.
    public func provide(_ listing: Listing) {
        var folders: [(path: FileName, entries: Int)] = []
        func walk(_ entries: [Entry], _ base: FileName) {
            for entry in entries where entry.kind == .directory {
                let path = base.appending(entry.name)
                let children = entry.children ?? []
                folders.append((path, children.count))
                walk(children, path)
            }
        }
        walk(listing.entries, .empty)
        folders.sort { $0.entries > $1.entries }
        let paths = folders.map(\.path)
        lock.withLock { given = paths }
    }

    /// The folders, once `provide` has been called.
    public var folders: [FileName]? { lock.withLock { given } }
}
