import CurlFTP
import FTPBackend
import Foundation
import LocalBackend
import PlugSync
import SFTPBackend
import SyncEngine
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// One contract, every backend: the same checks through the `Endpoint` protocol alone, on a
/// local folder, ext4, FAT (fusefat) and exFAT (exfat-fuse) loop drives, vsftpd, proftpd,
/// pure-ftpd and OpenSSH's SFTP server.
/// Each check works in a fresh folder of the endpoint and reads back through the endpoint
/// itself: list, put, get, replace, a replace that fails half-way (the old file stays whole
/// under its name), delete, mkdir, rmdir of a non-empty folder (`notEmpty`), removing what is
/// not there, times, odd names (spaces, UTF-8, 255 bytes, a leading dash, quotes), empty and
/// large files, symbolic links where the endpoint keeps them. A new backend adds one test here.
final class EndpointConformanceTests: IntegrationTestCase {
    // MARK: the backends

    func testLocalFolder() throws {
        try check(EndpointResolver(mounts: [], devices: []).localEndpoint(path("local")), "local folder")
    }

    func testExt4Drive() throws {
        try check(drive: "ext4")
    }

    func testFATDrive() throws {
        try check(drive: "fat")
    }

    func testExFATDrive() throws {
        try check(drive: "exfat")
    }

    func testVsftpd() throws {
        try check(server: "vsftpd")
    }

    func testProftpd() throws {
        try check(server: "proftpd")
    }

    func testPureFTPd() throws {
        try check(server: "pure-ftpd")
    }

    func testSFTP() throws {
        let server = try SSHServer.start()
        defer { server.stop() }
        var options = SFTPOptions(
            host: server.host, port: server.port, username: server.user, knownHosts: server.knownHosts)
        options.keyFile = server.keyFile
        let folder = "conformance-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { _ = try? shell("rm -rf \(quote(server.home + "/" + folder))") }
        let endpoint = SFTPEndpoint(options: options, directory: folder + "/data", connections: 2)
        defer { endpoint.disconnect() }
        try endpoint.connect()
        try check(endpoint, "sftp")
    }

    private func check(drive kind: String) throws {
        try requireLoopDrives([kind])
        let drive = try makeLoopDrive("conformance-" + kind, kind: kind, label: "PSCONFORM")
        // As a run makes it: the mount's filesystem decides the capabilities. Released before the
        // unmount, as after a run: a folder descriptor still open would make the unmount lazy,
        // and fsck would read the drive before the FUSE daemon wrote its last changes.
        do {
            let endpoint = EndpointResolver().localEndpoint(drive.mount + "/data", mountPoint: drive.mount)
            endpoint.isRemovableDrive = true
            endpoint.fileSync = kind == "ext4" ? .data : .full
            try check(endpoint, kind + " drive")
        }
        if kind != "ext4", let problem = try fsckLoopDrive(drive) {
            XCTFail("\(kind): fsck after the checks:\n\(problem)")
        }
    }

    private func check(server name: String) throws {
        let server = try FTPServer.start(name)
        defer { server.stop() }
        var options = FTPOptions(host: server.host, port: server.port, username: server.user)
        options.password = server.password
        // A folder of its own: the server's root may hold an earlier test's files.
        let folder = "conformance-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let endpoint = FTPEndpoint(options: options, directory: folder, connections: 2, clock: .auto)
        defer { endpoint.disconnect() }
        try endpoint.connect()
        try check(endpoint, name)
    }

    // MARK: the checks

    /// A reader that gives `size` bytes of `byte` (or fails after `failAfter` bytes).
    private final class Source: ReadableFile {
        let bytes: [UInt8]
        let failAfter: Int?
        var offset = 0
        init(_ bytes: [UInt8], failAfter: Int? = nil) {
            self.bytes = bytes
            self.failAfter = failAfter
        }
        var localDescriptor: Int32? { nil }
        func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            if let failAfter, offset >= failAfter { throw SyncFailure("the source broke off") }
            let end = min(bytes.count, offset + buffer.count, failAfter ?? Int.max)
            let n = end - offset
            bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
            offset = end
            return n
        }
        func close() {}
    }

    private final class Checker {
        let endpoint: Endpoint
        let name: String
        var failures: [String] = []

        init(endpoint: Endpoint, name: String) {
            self.endpoint = endpoint
            self.name = name
        }

        var capabilities: EndpointCapabilities { endpoint.capabilities }
        /// A time on a two-second boundary in the past, exact on every backend.
        let time = Timestamp(seconds: 1_600_000_000)

        func entry(_ name: String, _ size: Int, kind: EntryKind = .file) -> Entry {
            Entry(name: FileName(name), kind: kind, size: Int64(size), mtime: time, mode: 0o640)
        }

        func put(_ path: String, _ bytes: [UInt8], replacing: Bool = false, failAfter: Int? = nil) throws {
            let file = FileName(path)
            try endpoint.receive(
                file, from: Source(bytes, failAfter: failAfter),
                entry: entry(file.lastComponent.description, bytes.count),
                replacing: replacing
            ) { _ in }
        }

        func get(_ path: String, size: Int) throws -> [UInt8] {
            let file = FileName(path)
            let reader = try endpoint.openForReading(file, entry: entry(file.lastComponent.description, size))
            defer { reader.close() }
            var out: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
                if n == 0 { return out }
                out += buffer[..<n]
            }
        }

        /// The listing, with coarse times made exact against what was written (as a run does).
        func list(expecting written: [Entry] = []) -> [String: Entry] {
            var listing = endpoint.list(recursive: true, filter: ListingFilter())
            endpoint.refineTimes(&listing, comparedWith: written)
            var flat: [String: Entry] = [:]
            var pending: [(String, [Entry])] = [("", listing.entries)]
            while let (base, entries) = pending.popLast() {
                for entry in entries {
                    let path = base + entry.name.description
                    flat[path] = entry
                    if let children = entry.children { pending.append((path + "/", children)) }
                }
            }
            for error in listing.errors { flat["!error: \(error)"] = nil }
            return flat
        }

        func expect(_ condition: Bool, _ what: @autoclosure () -> String) {
            if !condition { failures.append("\(name): \(what())") }
        }

        func run() throws {
            try endpoint.prepareRoot()
            expect(try endpoint.rootState() == .empty, "a new root is not empty")
            endpoint.beginRun(RunSettings(side: .destination, dryRun: false))
            try endpoint.prepare { _ in }

            // put, list, get
            let hello = Array("hello\n".utf8)
            try put("a.txt", hello)
            var listed = list(expecting: [entry("a.txt", hello.count)])
            expect(
                listed["a.txt"]?.kind == .file && listed["a.txt"]?.size == 6,
                "a.txt listed as \(String(describing: listed["a.txt"]))")
            if capabilities.setsModificationTimes, let got = listed["a.txt"]?.mtime {
                let off = abs(got.totalNanoseconds - time.totalNanoseconds)
                expect(off < max(capabilities.timePrecision, 1), "a.txt has time \(got), not \(time)")
            }
            expect(try get("a.txt", size: 6) == hello, "a.txt does not read back")

            // replace, then a replacement that breaks off: the old file stays whole
            let bye = Array("goodbye, world\n".utf8)
            try put("a.txt", bye, replacing: true)
            expect(try get("a.txt", size: bye.count) == bye, "a.txt was not replaced")
            let big = [UInt8](repeating: 0x41, count: 1 << 20)
            do {
                try put("a.txt", big, replacing: true, failAfter: 300_000)
                failures.append("\(name): a transfer whose source broke off did not fail")
            } catch {}
            listed = list()
            expect(
                listed["a.txt"]?.size == Int64(bye.count),
                "after a broken transfer a.txt is \(String(describing: listed["a.txt"]?.size)) bytes")
            expect(
                try get("a.txt", size: bye.count) == bye, "after a broken transfer a.txt does not hold its old content")
            let visible = listed.keys.filter { !$0.hasPrefix(".plugsync-tmp-") }.sorted()
            expect(visible == ["a.txt"], "after a broken transfer the folder shows \(visible)")

            // folders
            try endpoint.createDirectory(FileName("d"))
            try endpoint.createDirectory(FileName("d"))  // a folder that exists is no error
            try put("d/x", hello)
            do {
                try endpoint.remove(FileName("d"), kind: .directory)
                failures.append("\(name): removing a folder with a file in it worked")
            } catch {
                expect(
                    EndpointErrorKind.of(error) == .notEmpty, "removing a non-empty folder: \(error) is not notEmpty")
            }
            expect(list()["d/x"] != nil, "d/x is gone after a refused rmdir")
            try endpoint.remove(FileName("d/x"), kind: .file)
            try endpoint.remove(FileName("d"), kind: .directory)
            listed = list()
            expect(listed["d"] == nil && listed["d/x"] == nil, "d is still listed after its removal")
            do {
                try endpoint.remove(FileName("absent"), kind: .file)
            } catch {
                expect(EndpointErrorKind.of(error) == .notFound, "removing what is not there: \(error) is not notFound")
            }

            // odd names, empty and large files
            // Names with a character the endpoint says it refuses are left to the planner
            // (`nameNotAllowed`); FAT and exFAT must say so for `"`.
            let forbidden = capabilities.forbiddenNameBytes
            if capabilities.caseInsensitiveNames {
                expect(forbidden.contains(UInt8(ascii: "\"")), "a FAT or exFAT endpoint does not refuse \" in names")
            }
            let odd = [
                "with space.txt", "ünïcødé-名前.txt", "-rf", "it's \"quoted\"",
                String(repeating: "n", count: 251) + ".txt",
            ].filter { !$0.utf8.contains(where: forbidden.contains) }
            for name in odd { try put(name, Array(name.utf8)) }
            try put("empty", [])
            var large = [UInt8](repeating: 0, count: 20 << 20)
            var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
            for i in stride(from: 0, to: large.count, by: 8) {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                withUnsafeBytes(of: seed) { for j in 0..<8 { large[i + j] = $0[j] } }
            }
            try put("large.bin", large)
            listed = list()
            for name in odd {
                expect(
                    listed[name]?.size == Int64(name.utf8.count),
                    "\(name.prefix(40)) is listed as \(String(describing: listed[name]))")
                expect(
                    try get(name, size: name.utf8.count) == Array(name.utf8), "\(name.prefix(40)) does not read back")
            }
            let empty = try get("empty", size: 0)
            expect(listed["empty"]?.size == 0 && empty.isEmpty, "the empty file")
            expect(
                listed["large.bin"]?.size == Int64(large.count),
                "large.bin is \(String(describing: listed["large.bin"]?.size)) bytes")
            expect(try get("large.bin", size: large.count) == large, "large.bin does not read back")

            // folder times, symbolic links
            try endpoint.createDirectory(FileName("t"))
            try endpoint.setFolderAttributes(FileName("t"), entry: entry("t", 0, kind: .directory))
            if capabilities.keepsModes, let got = list()["t"]?.mtime {
                expect(
                    abs(got.totalNanoseconds - time.totalNanoseconds) < capabilities.timePrecision,
                    "folder t has time \(got)")
            }
            let link = Entry(name: FileName("link"), kind: .symlink, mtime: time, linkTarget: FileName("a.txt"))
            if capabilities.keepsSymlinks {
                try endpoint.createSymlink(FileName("link"), entry: link)
                let got = list()["link"]
                expect(
                    got?.kind == .symlink && got?.linkTarget == FileName("a.txt"), "link is \(String(describing: got))")
            } else {
                expect(
                    (try? endpoint.createSymlink(FileName("link"), entry: link)) == nil,
                    "a symbolic link was made where none is kept")
            }
            try endpoint.flush()
        }
    }

    private func check(_ endpoint: Endpoint, _ name: String) throws {
        let checker = Checker(endpoint: endpoint, name: name)
        do { try checker.run() } catch { checker.failures.append("\(name): \(error)") }
        for failure in checker.failures { XCTFail(failure) }
        print("conformance: \(name): \(checker.failures.isEmpty ? "held" : "\(checker.failures.count) failures")")
    }
}
