import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A 64-bit hash of a stream of bytes, fed as they pass, in the manner of xxHash64: four lanes
/// of 8-byte words, each multiplied, rotated and multiplied again, then folded together.
///
/// Why this one: `verify: true` hashes every byte a run sends and every byte it reads back, so
/// the hash must cost little next to the copy itself, and it guards against storage faults (a
/// flipped bit, a block from elsewhere, zeros where data never landed), not against someone
/// who crafts a collision: a cryptographic hash would cost several times as much for nothing
/// here. A multiply-rotate over whole words mixes every input bit into the state, so any such
/// fault changes the result but for a chance of 2^-64. Written here because the engine links
/// no hashing library, and the same value need only be computed twice in one process.
public struct ContentHash: Sendable, Equatable {
    private static let prime1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let prime2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let prime3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let prime4: UInt64 = 0x85EB_CA77_C2B2_AE63

    private var lanes: (UInt64, UInt64, UInt64, UInt64) = (
        0x60EA_27EE_ADC0_B5D6, 0xC2B2_AE3D_27D4_EB4F, 0, 0x61C8_864E_7A14_3579
    )
    /// Bytes that did not fill a 32-byte block yet (at most 31).
    private var pending: [UInt8] = []
    /// Bytes fed in all.
    public private(set) var count: Int64 = 0

    public init() {}

    @inline(__always)
    private static func round(_ lane: UInt64, _ word: UInt64) -> UInt64 {
        var lane = lane &+ word &* prime2
        lane = (lane << 31) | (lane >> 33)
        return lane &* prime1
    }

    @inline(__always)
    private mutating func block(_ base: UnsafeRawPointer) {
        lanes.0 = Self.round(lanes.0, UInt64(littleEndian: base.loadUnaligned(as: UInt64.self)))
        lanes.1 = Self.round(lanes.1, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        lanes.2 = Self.round(lanes.2, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 16, as: UInt64.self)))
        lanes.3 = Self.round(lanes.3, UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 24, as: UInt64.self)))
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var base = bytes.baseAddress, bytes.count > 0 else { return }
        count += Int64(bytes.count)
        var left = bytes.count
        if !pending.isEmpty {
            let take = min(32 - pending.count, left)
            pending.append(contentsOf: UnsafeRawBufferPointer(start: base, count: take))
            base += take
            left -= take
            if pending.count < 32 { return }
            pending.withUnsafeBytes { block($0.baseAddress!) }
            pending.removeAll(keepingCapacity: true)
        }
        while left >= 32 {
            block(base)
            base += 32
            left -= 32
        }
        if left > 0 { pending.append(contentsOf: UnsafeRawBufferPointer(start: base, count: left)) }
    }

    /// The hash of everything fed so far (its length included).
    public var value: UInt64 {
        var hash =
            ((lanes.0 << 1) | (lanes.0 >> 63)) &+ ((lanes.1 << 7) | (lanes.1 >> 57))
            &+ ((lanes.2 << 12) | (lanes.2 >> 52)) &+ ((lanes.3 << 18) | (lanes.3 >> 46))
        hash = (hash ^ UInt64(bitPattern: count)) &* Self.prime3
        for byte in pending {
            hash = (hash ^ (UInt64(byte) &* Self.prime4)) &* Self.prime1
            hash = (hash << 11) | (hash >> 53)
        }
        hash ^= hash >> 33
        hash = hash &* Self.prime2
        hash ^= hash >> 29
        hash = hash &* Self.prime3
        hash ^= hash >> 32
        return hash
    }

    public static func == (a: ContentHash, b: ContentHash) -> Bool { a.count == b.count && a.value == b.value }
}

/// The check `verify: true` asks of a destination for each file it receives: the bytes sent are
/// hashed as they are read from the source, and the destination reads its complete temporary
/// file back (from the disk, not from memory, where it can) and has it compared here before the
/// file gets its final name (`Endpoint.receive`).
public final class WriteCheck: @unchecked Sendable {
    private var sent = ContentHash()
    private let lock = Lock()

    public init() {}

    /// Bytes as they are sent.
    func add(_ bytes: UnsafeRawBufferPointer) {
        lock.lock()
        sent.update(bytes)
        lock.unlock()
    }

    /// The hash of what was sent.
    public var sentHash: ContentHash { lock.withLock { sent } }

    /// Reads `copy` (the file as it was written, read back) to its end and compares it with what
    /// was sent: `ReadBackDiffers` when it differs, `ReadBackFailed` when it cannot be read (a
    /// transient error, or the endpoint gone, is thrown as it is).
    public func compare(readBack copy: ReadableFile) throws {
        try compare { consume in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 18, alignment: 4096)
            defer { buffer.deallocate() }
            while true {
                let n = try copy.read(into: buffer)
                if n == 0 { return }
                consume(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            }
        }
    }

    /// As `compare(readBack:)`, for a read that hands its bytes over as they come (a download):
    /// `read` gives each piece to `consume`, in order, and returns at the end of the file.
    public func compare(reading read: (_ consume: (UnsafeRawBufferPointer) -> Void) throws -> Void) throws {
        var stored = ContentHash()
        do {
            try read { stored.update($0) }
        } catch {
            let kind = EndpointErrorKind.of(error)
            if kind == .retryable || kind == .gone { throw error }
            throw ReadBackFailed("\(error)")
        }
        if stored != sentHash { throw ReadBackDiffers() }
    }

    /// Drops a local file's pages from the page cache after writing out what is dirty, so that
    /// what is read next comes from the disk (as `plugsync verify` reads a drive).
    public static func dropCachedPages(_ fd: Int32) {
        _ = fdatasync(fd)
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
    }
}

/// What a file read back after it was written differs from what was sent: the temporary file is
/// removed and the final name keeps what it held.
public struct ReadBackDiffers: EndpointFailure, CustomStringConvertible, Sendable {
    public var endpointErrorKind: EndpointErrorKind { .permanent }
    public var description: String { "read back differs from what was sent" }
    public init() {}
}

/// A file written could not be read back for the comparison (treated like a difference).
public struct ReadBackFailed: EndpointFailure, CustomStringConvertible, Sendable {
    public var endpointErrorKind: EndpointErrorKind { .permanent }
    public var description: String
    public init(_ reason: String) { description = "cannot read it back: \(reason)" }
}

/// A source file whose bytes are hashed as a destination reads them (`verify: true`). It hides
/// the source's local descriptor, so every byte passes through `read` (a kernel-side copy,
/// `copy_file_range`, would pass none of them here).
public final class CheckedFile: ReadableFile {
    /// The source's own file, for what a destination may take from it besides the bytes
    /// (a local file's owner).
    public let original: ReadableFile
    public let check = WriteCheck()

    public init(_ original: ReadableFile) { self.original = original }

    public var localDescriptor: Int32? { nil }
    public var writeCheck: WriteCheck? { check }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try original.read(into: buffer)
        if n > 0 { check.add(UnsafeRawBufferPointer(rebasing: buffer[..<n])) }
        return n
    }

    public func close() { original.close() }
}
