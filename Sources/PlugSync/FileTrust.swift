import SyncEngine

#if canImport(Glibc)
    import Glibc
#endif

/// What root trusts: the definitions file, a `password_file` and a hook's program say what root
/// runs and sends, so root refuses them when a user other than root could change them, as sudo
/// does for sudoers and sshd's StrictModes for authorized_keys. And root's log lines never go
/// through a symbolic link another user planted.
///
/// A file is trusted when it is a regular file owned by root (or by the user running plugsync,
/// which is root here), not writable by group or others, and every folder on its real path up to
/// `/` is owned likewise and not writable by group or others. A sticky folder (`/tmp`, mode 1777)
/// is allowed: there nobody but root and an entry's owner may rename or delete the entry, and the
/// entry itself is checked. The folders are checked from `/` down, each with `lstat` on the path
/// `realpath` gave: once a folder is known to be root's, nobody else can swap what is below it,
/// so the check cannot be raced by another user. Users other than root are not checked: what
/// they can change runs with their own rights only.
enum FileTrust {
    /// Whether the checks apply: plugsync runs with root's rights.
    static var applies: Bool { geteuid() == 0 }

    /// Why a file cannot be trusted, and the command that fixes it.
    struct Distrust: Error {
        var problem: String
        var fix: String?
        /// `is writable by other users (mode 0666; <context>); run: chmod go-w /x`, one line.
        func message(_ context: String) -> String {
            problem + " (" + context + ")" + (fix.map { "; run: " + $0 } ?? "")
        }
    }

    /// Why `path` (already opened and `fstat`ed as `given`, when given) cannot be trusted; nil
    /// when it can, or when it does not exist (reading it fails later with its own message).
    static func problem(path: String, status given: stat? = nil) -> Distrust? {
        var st = stat()
        if let given {
            st = given
        } else if stat(path, &st) != 0 {
            return nil
        }
        if st.st_mode & S_IFMT != S_IFREG { return Distrust(problem: "is not a regular file") }
        if let owner = untrustedOwner(st) {
            return Distrust(problem: "is owned by \(owner), not root", fix: "chown root \(path)")
        }
        if st.st_mode & 0o022 != 0 {
            return Distrust(
                problem: "is writable by other users (mode \(octal(st.st_mode)))", fix: "chmod go-w \(path)")
        }
        guard let real = realPath(path) else {
            return Distrust(problem: "cannot be resolved: \(String(cString: strerror(errno)))")
        }
        // The file resolved now is the one that was opened (a link swapped meanwhile is caught).
        var now = stat()
        if stat(real, &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino {
            return Distrust(problem: "changed while it was checked")
        }
        var folder = ""
        let parts = real.split(separator: "/").dropLast()
        for index in -1..<parts.count {
            if index >= 0 { folder += "/" + parts[index] }
            let shown = folder.isEmpty ? "/" : folder
            var dir = stat()
            guard lstat(shown, &dir) == 0, dir.st_mode & S_IFMT == S_IFDIR else {
                return Distrust(problem: "its folder \(shown) is not a folder")
            }
            if let owner = untrustedOwner(dir) {
                return Distrust(
                    problem: "its folder \(shown) is owned by \(owner), not root, who could replace the file",
                    fix: "chown root \(shown), or move the file")
            }
            if dir.st_mode & 0o022 != 0 && dir.st_mode & S_ISVTX == 0 {
                return Distrust(
                    problem:
                        "its folder \(shown) is writable by other users (mode \(octal(dir.st_mode))), who could replace the file",
                    fix: "chmod go-w \(shown)")
            }
        }
        return nil
    }

    /// `uid 1000 (ana)` when `st`'s owner is neither root nor the user running plugsync.
    private static func untrustedOwner(_ st: stat) -> String? {
        if st.st_uid == 0 || st.st_uid == getuid() { return nil }
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        if getpwuid_r(st.st_uid, &entry, &buffer, buffer.count, &result) == 0, let result {
            return "\(String(cString: result.pointee.pw_name)) (uid \(st.st_uid))"
        }
        return "uid \(st.st_uid)"
    }

    private static func octal(_ mode: mode_t) -> String {
        let digits = String(mode & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    // MARK: hooks

    /// Shells and interpreters whose first argument is the script they run.
    private static let interpreters: Set<String> = [
        "sh", "bash", "dash", "zsh", "ksh", "python", "python3", "perl", "ruby", "node", "exec", "env",
    ]

    /// The files a hook command runs that are named by a path: its program when the program is
    /// written with a `/` (a bare name is found through root's PATH, which is root's own), and the
    /// script an interpreter is given (`sh /path/hook.sh`, `env VAR=1 /path/prog`). The words are
    /// split as the shell would for plain commands (blanks, single and double quotes); anything
    /// cleverer (`$(…)`, `;`) is the definitions file's own text, which is itself checked.
    static func programs(in command: String) -> [String] {
        var words: [String] = []
        var word = ""
        var quote: Character?
        var inWord = false
        for character in command {
            if let open = quote {
                if character == open { quote = nil } else { word.append(character) }
            } else if character == "'" || character == "\"" {
                quote = character
                inWord = true
            } else if character == " " || character == "\t" || character == "\n" {
                if inWord { words.append(word) }
                word = ""
                inWord = false
            } else if character == ";" || character == "|" || character == "&" {
                break
            } else {
                word.append(character)
                inWord = true
            }
        }
        if inWord { words.append(word) }
        var found: [String] = []
        var index = 0
        // Leading assignments (`LANG=C prog`) are not the program.
        while index < words.count, let equals = words[index].firstIndex(of: "="),
            !words[index][..<equals].contains("/")
        {
            index += 1
        }
        while index < words.count {
            let program = words[index]
            if program.contains("/") { found.append(program) }
            let name = program.split(separator: "/").last.map(String.init) ?? program
            guard interpreters.contains(name) else { break }
            // The script: the next word that is neither an option nor an assignment.
            index += 1
            while index < words.count, words[index].hasPrefix("-") || (name == "env" && words[index].contains("=")) {
                index += 1
            }
        }
        return found
    }

    // MARK: log files

    /// Opens `path` to append to it, creating it (mode 0640) and its missing folders (0755).
    ///
    /// The path is walked one component at a time from `/` with directory descriptors
    /// (`openat` with `O_NOFOLLOW`), so that what is checked is what is used: a symbolic link on
    /// the way, the last component included, is followed only when root or the user running
    /// plugsync owns it; a link another user planted (`log_file` in a folder that user can write,
    /// pointing at `/etc/passwd` or through a folder to `/etc/cron.d`) is refused with one line.
    /// The file must be a regular file (`O_NONBLOCK`: a FIFO planted there cannot block the run).
    /// Returns the descriptor, or throws a UsageError naming the path and the problem.
    static func openForAppend(_ path: String) throws -> Int32 {
        // O_PATH (folders are walked, never read; a folder root may only search is fine): the
        // Glibc module shows it only with _GNU_SOURCE; this is its value on x86-64 and arm64.
        let pathOnly: Int32 = 0o10000000
        func failure(_ problem: String) -> UsageError { UsageError("cannot open log file \(path): \(problem)") }
        var pending = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var directory = open(path.hasPrefix("/") ? "/" : ".", pathOnly | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw failure(String(cString: strerror(errno))) }
        defer { close(directory) }
        var walked = path.hasPrefix("/") ? "" : "."
        var links = 0
        while !pending.isEmpty {
            let name = pending.removeFirst()
            if name == "." { continue }
            let last = pending.isEmpty
            let flags =
                last
                ? O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC
                : pathOnly | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
            var fd = openat(directory, name, flags, 0o640)
            if fd < 0 && errno == ENOENT && !last {
                if mkdirat(directory, name, 0o755) != 0 && errno != EEXIST {
                    throw failure("cannot create \(walked)/\(name): \(String(cString: strerror(errno)))")
                }
                fd = openat(directory, name, flags, 0)
            }
            if fd < 0 {
                let error = errno
                // A FIFO nobody reads (ENXIO: O_NONBLOCK kept the open from waiting for one).
                if error == ENXIO && last { throw failure("not a regular file") }
                var link = stat()
                guard error == ELOOP || error == ENOTDIR,
                    fstatat(directory, name, &link, AT_SYMLINK_NOFOLLOW) == 0, link.st_mode & S_IFMT == S_IFLNK
                else {
                    let at = walked + "/" + name
                    throw failure((at == path ? "" : at + ": ") + String(cString: strerror(error)))
                }
                if let owner = untrustedOwner(link) {
                    throw failure(
                        "\(walked)/\(name) is a symbolic link owned by \(owner); it is not followed (remove it, or name the real file)"
                    )
                }
                links += 1
                var target = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let length = readlinkat(directory, name, &target, target.count - 1)
                guard links <= 40, length > 0 else {
                    throw failure("\(walked)/\(name): too many symbolic links, or one that cannot be read")
                }
                let text = String(decoding: target[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                pending.insert(contentsOf: text.split(separator: "/").map(String.init), at: 0)
                if text.hasPrefix("/") {
                    let root = open("/", pathOnly | O_DIRECTORY | O_CLOEXEC)
                    guard root >= 0 else { throw failure(String(cString: strerror(errno))) }
                    close(directory)
                    directory = root
                    walked = ""
                }
                continue
            }
            if last {
                var st = stat()
                guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
                    close(fd)
                    throw failure("not a regular file")
                }
                _ = fcntl(fd, F_SETFL, O_WRONLY | O_APPEND)  // writes may block again (a full disk waits)
                return fd
            }
            close(directory)
            directory = fd
            walked += "/" + name
        }
        throw failure("names no file")
    }
}
