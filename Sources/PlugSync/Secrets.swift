import SyncEngine

#if canImport(Glibc)
    import Glibc
#endif

/// Reading a server's password from where the definitions file says it is (FTP and SFTP).
enum Secrets {
    /// The password, read now (never stored in the definitions file's memory beyond the run);
    /// nil where none is given (the FTP client then reads ~/.netrc).
    static func password(_ password: ServerPassword, role: String) throws -> String? {
        switch password {
        case .none, .netrc:
            return nil
        case .literal(let value):
            return value
        case .environment(let name):
            guard let value = getenv(name) else {
                throw UsageError("the \(role)'s password_env names \(name), which is not set in the environment")
            }
            return String(cString: value)
        case .file(let path):
            let fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
            guard fd >= 0 else {
                throw UsageError("the \(role)'s password_file \(path): \(String(cString: strerror(errno)))")
            }
            defer { close(fd) }
            // Checked when it is read, through the descriptor read (the agent reads it long
            // after the definitions file): as root, one another user could change is refused.
            var st = stat()
            guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
                throw UsageError("the \(role)'s password_file \(path): not a regular file")
            }
            if FileTrust.applies, let distrust = FileTrust.problem(path: path, status: st) {
                throw UsageError(
                    "the \(role)'s password_file \(path) " + distrust.message("plugsync reads it as root"))
            }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n >= 0 else {
                throw UsageError("the \(role)'s password_file \(path): \(String(cString: strerror(errno)))")
            }
            let line = buffer[..<n].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).first ?? []
            var bytes = Array(line)
            if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
