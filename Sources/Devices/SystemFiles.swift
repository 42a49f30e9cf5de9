import SystemSupport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Small helpers for reading kernel-provided files without Foundation.
enum SystemFiles {
    /// Reads a whole file, including `/proc` and `/sys` files whose reported size is 0.
    static func readAll(_ path: String, limit: Int = 64 << 20) throws -> [UInt8] {
        guard let bytes = Posix.readFile(path, limit: limit) else {
            throw DeviceError.system("cannot read \(path)", errno: errno)
        }
        return bytes
    }

    /// Reads up to `count` bytes at offset 0 of a file or device; `nil` when it cannot be opened
    /// or read (missing, permission denied, …).
    static func readPrefix(_ path: String, count: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        if fd < 0 { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = buffer.withUnsafeMutableBytes {
                pread(fd, $0.baseAddress! + filled, count - filled, off_t(filled))
            }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            filled += n
        }
        return Array(buffer[0..<filled])
    }

    /// Reads a small text file (a sysfs attribute) and trims trailing whitespace; `nil` on error.
    static func readAttribute(_ path: String) -> String? {
        guard let bytes = try? readAll(path, limit: 4096) else { return nil }
        var end = bytes.endIndex
        while end > bytes.startIndex, [0x0A, 0x20, 0x09, 0x0D, 0x00].contains(bytes[end - 1]) { end -= 1 }
        return String(decoding: bytes[bytes.startIndex..<end], as: UTF8.self)
    }

    /// The device number (`st_rdev`) split into major and minor if `path` is a block device.
    static func blockDeviceNumber(of path: String) -> (major: UInt32, minor: UInt32)? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFBLK else { return nil }
        return DeviceNumber.split(UInt64(info.st_rdev))
    }
}

/// Linux `dev_t` encoding (glibc's `gnu_dev_major/minor/makedev`, which Swift does not import).
enum DeviceNumber {
    static func make(major: UInt32, minor: UInt32) -> UInt64 {
        let ma = UInt64(major)
        let mi = UInt64(minor)
        return ((ma & 0xffff_f000) << 32) | ((ma & 0x0000_0fff) << 8)
            | ((mi & 0xffff_ff00) << 12) | (mi & 0x0000_00ff)
    }

    static func split(_ dev: UInt64) -> (major: UInt32, minor: UInt32) {
        let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)
        let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)
        return (UInt32(truncatingIfNeeded: major), UInt32(truncatingIfNeeded: minor))
    }
}
