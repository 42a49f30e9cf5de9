import SyncEngine

#if canImport(Glibc)
    import Glibc
#endif

/// `plugsync versions`: the versions a definition's destination keeps, newest first.
public enum VersionHistory {
    public struct Result {
        /// The destination, as runs name it.
        public var destination: String
        public var versions: [KeptVersion]
    }

    /// Resolves the destination as a run does (a drive found by its identity and File Check),
    /// lists its versions folder, and keeps the versions of `path` (a file, or a folder's files;
    /// relative to the synchronized folder, or an absolute path inside a local source), or all.
    public static func list(_ definition: Definition, path: String?) throws -> Result {
        let filter = path.map { relativePath($0, source: definition.source) }
        let resolved = try EndpointResolver().resolve(
            definition.destination, role: "destination", connections: 1)
        defer { resolved.endpoint.disconnect() }
        let listing = resolved.endpoint.listVersions()
        if let error = listing.errors.first {
            throw PreconditionError("cannot list the versions on \(resolved.endpoint.displayName): \(error)")
        }
        var versions = KeptVersion.all(in: listing.entries)
        if let filter, !filter.isEmpty {
            let prefix = filter.bytes + [UInt8(ascii: "/")]
            versions = versions.filter { $0.path == filter || $0.path.bytes.starts(with: prefix) }
        }
        return Result(destination: resolved.endpoint.displayName, versions: versions)
    }

    /// `docs/report.odt` from `docs/report.odt`, `./docs/report.odt/` or, for a local source
    /// `/home/ana`, `/home/ana/docs/report.odt`.
    static func relativePath(_ text: String, source: EndpointSpec) -> FileName {
        var text = text
        if case .local(let root) = source.location, text.hasPrefix("/") {
            let base = root.hasSuffix("/") ? root : root + "/"
            if text.hasPrefix(base) { text = String(text.dropFirst(base.count)) }
        }
        let parts = text.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        return FileName(parts.joined(separator: "/"))
    }

    /// `2026-10-01 12:00:00`, a run's start in local time.
    public static func timeText(_ seconds: Int) -> String {
        let stamp = VersionsFolder.stamp(seconds)  // 2026-10-01_120000
        let chars = Array(stamp)
        return String(chars[0..<10]) + " " + String(chars[11..<13]) + ":" + String(chars[13..<15]) + ":"
            + String(chars[15..<17])
    }
}
