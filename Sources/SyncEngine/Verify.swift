import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Compares a destination with its source by content, not by metadata (as `rclone check` or
/// `rsync -c` do): every file of the source (or a seeded sample of them) is read on both sides
/// and compared byte for byte.
///
/// A destination read through a local descriptor (a folder, a drive) is flushed and dropped from
/// the page cache before it is read (`fdatasync`, then `posix_fadvise(DONTNEED)`), so its bytes
/// come from the disk: a file whose pages only exist in memory, or a block changed on the disk
/// behind the file system's back, is not reported good.
public struct Verifier {
    public struct Difference: Sendable, Equatable {
        public var path: FileName
        public var problem: String
    }

    public struct Report: Sendable {
        /// In the order of the source's listing (by path), then the destination's extras.
        public var differences: [Difference] = []
        /// Files compared by content, and their bytes (the source's).
        public var filesCompared = 0
        public var bytesCompared: Int64 = 0
        /// Source files the sample left out.
        public var filesSkipped = 0
        /// Entries that could not be listed on either side: the comparison is incomplete.
        public var listingErrors: [String] = []
    }

    public var ignore: IgnoreList = .none
    public var recursive = true
    /// A mirror's destination holds nothing but the source's files: its extras are differences.
    public var extrasAreDifferences = true
    /// Percent of the source's files to compare (0 < sample <= 100); 100: all.
    public var sample = 100.0
    /// Picks the sample: the same seed picks the same files.
    public var seed: UInt64 = 0

    public init() {}

    /// Whether `path` is in the sample (a hash of the seed and the path's bytes).
    public func isSampled(_ path: FileName) -> Bool {
        guard sample < 100 else { return true }
        // FNV-1a, which is the same in every process (Swift's Hasher is not).
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for byte in path.bytes {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        hash ^= hash >> 29
        hash = hash &* 0xbf58_476d_1ce4_e5b9
        hash ^= hash >> 32
        return Double(hash % 1_000_000) < sample * 10_000
    }

    public func verify(
        source: Endpoint, sourceExcluded: Set<FileName> = [], destination: Endpoint,
        destinationExcluded: Set<FileName> = []
    ) -> Report {
        var report = Report()
        // The versions folder is no data of the tree: left out on both sides, as a run does.
        let sourceListing = source.list(
            recursive: recursive,
            filter: ListingFilter(ignore: ignore, excludedPaths: sourceExcluded.union([VersionsFolder.name])))
        let destinationListing = destination.list(
            recursive: recursive,
            filter: ListingFilter(ignore: ignore, excludedPaths: destinationExcluded.union([VersionsFolder.name])))
        report.listingErrors =
            sourceListing.errors.map { "source: \($0)" } + destinationListing.errors.map { "destination: \($0)" }

        func walk(_ mine: [Entry], _ theirs: [Entry]?, _ parent: FileName) {
            var other: [FileName: Entry] = [:]
            for entry in theirs ?? [] { other[entry.name] = entry }
            for entry in mine {
                let path = parent.appending(entry.name)
                let copy = other.removeValue(forKey: entry.name)
                switch entry.kind {
                case .directory:
                    if let copy, copy.kind != .directory {
                        report.differences.append(Difference(path: path, problem: "a folder in the source, not here"))
                    } else if copy == nil {
                        // Once for the folder, not for each file in it.
                        report.differences.append(Difference(path: path, problem: "missing (a folder)"))
                    } else {
                        walk(entry.children ?? [], copy?.children, path)
                    }
                case .symlink:
                    guard let copy else {
                        report.differences.append(Difference(path: path, problem: "missing (a symbolic link)"))
                        continue
                    }
                    // An endpoint that keeps no links holds no link: nothing to compare.
                    if destination.capabilities.keepsSymlinks && copy.linkTarget != entry.linkTarget {
                        report.differences.append(Difference(path: path, problem: "the link points elsewhere"))
                    }
                case .file:
                    guard isSampled(path) else {
                        report.filesSkipped += 1
                        continue
                    }
                    guard let copy else {
                        report.differences.append(Difference(path: path, problem: "missing"))
                        continue
                    }
                    guard copy.kind == .file else {
                        report.differences.append(Difference(path: path, problem: "not a file here"))
                        continue
                    }
                    if copy.size != entry.size {
                        report.differences.append(
                            Difference(path: path, problem: "size \(copy.size) bytes, the source's \(entry.size)"))
                        continue
                    }
                    report.filesCompared += 1
                    report.bytesCompared += entry.size
                    if let problem = compare(path, entry, copy, source: source, destination: destination) {
                        report.differences.append(Difference(path: path, problem: problem))
                    }
                }
            }
            guard extrasAreDifferences else { return }
            for entry in other.values.sorted(by: { $0.name < $1.name }) {
                report.differences.append(
                    Difference(path: parent.appending(entry.name), problem: "not in the source"))
            }
        }
        walk(sourceListing.entries, destinationListing.entries, .empty)
        return report
    }

    /// nil when the two files hold the same bytes; else what differs.
    private func compare(_ path: FileName, _ entry: Entry, _ copy: Entry, source: Endpoint, destination: Endpoint)
        -> String?
    {
        let original: ReadableFile
        let stored: ReadableFile
        do { original = try source.openForReading(path, entry: entry) } catch {
            return "cannot read the source: \(error)"
        }
        defer { original.close() }
        do { stored = try destination.openForReading(path, entry: copy) } catch { return "cannot read it: \(error)" }
        defer { stored.close() }
        if let fd = stored.localDescriptor {
            // From the disk, not from memory: written out first, then dropped from the cache.
            _ = fdatasync(fd)
            _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        }
        let chunk = 1 << 20
        let a = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer {
            a.deallocate()
            b.deallocate()
        }
        var offset: Int64 = 0
        while true {
            let n: Int
            let m: Int
            do { n = try fill(a, from: original) } catch { return "cannot read the source: \(error)" }
            do { m = try fill(b, from: stored) } catch { return "cannot read it: \(error)" }
            if n != m || memcmp(a.baseAddress!, b.baseAddress!, n) != 0 {
                var at = 0
                while at < min(n, m), a[at] == b[at] { at += 1 }
                return "content differs from byte \(offset + Int64(at))"
            }
            if n < chunk { return nil }
            offset += Int64(n)
        }
    }

    /// Reads until `buffer` is full or the file ends.
    private func fill(_ buffer: UnsafeMutableRawBufferPointer, from file: ReadableFile) throws -> Int {
        var filled = 0
        while filled < buffer.count {
            let n = try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            if n == 0 { break }
            filled += n
        }
        return filled
    }
}
