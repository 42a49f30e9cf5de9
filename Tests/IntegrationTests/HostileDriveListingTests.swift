import Foundation
import XCTest

/// Reliability case 10, "hostile drive": what a drive's tree can hold that a listing, plan and
/// run must survive. Real loop drives (ext4; FAT through fusefat, exFAT through exfat-fuse),
/// the built binary, `fsck -n` after every FAT and exFAT trial. Needs root.
final class HostileDriveListingTests: IntegrationTestCase {
    private func report(mode: Int, _ name: String, held: Int, of trials: Int, _ detail: String = "") {
        print(
            "reliability: case 10 hostile drive mode \(mode) \(name): held \(held) of \(trials)"
                + (detail.isEmpty ? "" : " (\(detail))"))
        XCTAssertEqual(held, trials, "mode \(mode) \(name) did not hold in every trial")
    }

    /// Files, by relative path, below `folder` (not its folders).
    private func inodes(_ folder: String) throws -> [String: (inode: UInt64, links: Int, size: Int64)] {
        var result: [String: (UInt64, Int, Int64)] = [:]
        for case let relative as String in FileManager.default.enumerator(atPath: folder)?.allObjects ?? [] {
            var st = stat()
            guard lstat(folder + "/" + relative, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
            result[relative] = (UInt64(st.st_ino), Int(st.st_nlink), Int64(st.st_size))
        }
        return result
    }

    /// Kilobytes the files below `folder` take on disk (`du -sk`).
    private func diskUsage(_ folder: String) throws -> Int {
        Int(try shell("du -sk \(quote(folder))").split(separator: "\t").first ?? "") ?? -1
    }

    // MARK: mode 5, hard links

    /// A file of 1.1 MB with 300 names on a stick became 300 copies, 330 MB, on the host. Now
    /// the names stay one file where the destination holds hard links (a local folder, an ext4
    /// drive); a FAT drive, which holds none, gets copies as before, and stays consistent.
    func testMode5HardLinksInsideATreeStayHardLinks() throws {
        try requireLoopDrives(["ext4", "fat"])
        let stick = try makeLoopDrive("stick", kind: "ext4")
        try shell(
            "python3 -c \"import os,random; r=random.Random(5); os.makedirs('\(stick.mount)/tree/sub'); "
                + "open('\(stick.mount)/tree/big','wb').write(bytes(r.getrandbits(8) for _ in range(1_100_000))); "
                + "[os.link('\(stick.mount)/tree/big', '\(stick.mount)/tree/%s/n%03d' % ('sub' if i % 2 else '.', i)) "
                + "for i in range(299)]; os.makedirs('\(stick.mount)/small'); "
                + "open('\(stick.mount)/small/f','wb').write(bytes(100_000)); "
                + "[os.link('\(stick.mount)/small/f', '\(stick.mount)/small/n%02d' % i) for i in range(29)]\"")
        let source = stick.mount + "/tree"
        let host = path("host")
        let other = try makeLoopDrive("other", kind: "ext4")
        let fat = try makeLoopDrive("fat", kind: "fat")
        try writeConfig(
            definition("host", source: source, destination: host, ["parallel: 4"]),
            definition("ext4", source: source, destination: other.mount + "/backup", ["parallel: 4"]),
            definition("fat", source: stick.mount + "/small", destination: fat.mount + "/backup", ["parallel: 4"]))
        var held = 0
        var trials = 0
        var detail = ""
        for (name, destination, keepsLinks) in [
            ("host", host, true), ("ext4", other.mount + "/backup", true), ("fat", fat.mount + "/backup", false),
        ] {
            trials += 1
            let first = try plugsync("run", name, timeout: 120)
            assertNoCrash(first)
            let second = try plugsync("run", name, timeout: 120)
            let files = try inodes(destination)
            let expected = keepsLinks ? 300 : 30
            var ok = first.status == 0 && second.status == 0 && files.count == expected
            ok =
                ok && second.actions.allSatisfy { $0.hasPrefix("Skipping ") }
                && !second.lines.contains { $0.hasPrefix("Linking ") }
            ok = ok && files.values.allSatisfy { $0.size == (keepsLinks ? 1_100_000 : 100_000) }
            if keepsLinks {
                let usage = try diskUsage(destination)
                ok =
                    ok && Set(files.values.map(\.inode)).count == 1 && files.values.first?.links == 300 && usage < 2_200
                ok = ok && first.lines.filter { $0.hasPrefix("Linking ") }.count == 299
                if name == "host" { detail = "300 names of 1.1 MB take \(usage) KiB on the host" }
            } else {
                ok = ok && Set(files.values.map(\.inode)).count == 30
                if let problem = try fsckLoopDrive(fat) {
                    ok = false
                    XCTFail("fsck.vfat after the FAT trial: \(problem)")
                }
            }
            XCTAssertTrue(ok, "\(name)\n\(first.summary ?? "")\n\(second)")
            if ok { held += 1 }
        }
        report(mode: 5, "hard-links", held: held, of: trials, detail)
    }

    // MARK: mode 6, deep trees

    /// `depth` folders `d` inside each other under `folder`, with a file `f` every 100 levels
    /// (made through descriptors: the paths are longer than the system takes).
    private func makeDeepTree(_ folder: String, depth: Int) throws {
        try shell(
            "python3 -c \"import os\nos.makedirs('\(folder)')\nfd=os.open('\(folder)',os.O_RDONLY)\n"
                + "for i in range(\(depth)):\n  os.mkdir('d',dir_fd=fd); n=os.open('d',os.O_RDONLY,dir_fd=fd); os.close(fd); fd=n\n"
                + "  if i%100==0: f=os.open('f',os.O_WRONLY|os.O_CREAT,0o644,dir_fd=fd); os.write(f,b'x'); os.close(f)\n\""
        )
    }

    /// A source 3,000 folders deep overflowed the stack of the listing (SIGSEGV) whenever the
    /// descriptor limit let it go that deep. Now a tree within what paths can reach (1,000 levels) syncs whole,
    /// and a deeper one (10,000 levels) syncs down to there and fails with one line, every run.
    func testMode6ATreeTenThousandFoldersDeepNeverCrashesTheRun() throws {
        try requireLoopDrives(["ext4"])
        // A descriptor limit that lets a walk holding one per level go all the way down (the
        // crash needed it; runs started from here inherit it).
        let files = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var limit = rlimit()
        getrlimit(files, &limit)
        let saved = limit
        limit.rlim_cur = max(limit.rlim_cur, min(limit.rlim_max, 20_000))
        setrlimit(files, &limit)
        defer {
            var restore = saved
            setrlimit(files, &restore)
        }
        let stick = try makeLoopDrive("deep", kind: "ext4", megabytes: 160)
        try makeDeepTree(stick.mount + "/shallow", depth: 1_000)
        try makeDeepTree(stick.mount + "/deep", depth: 10_000)
        try writeConfig(
            definition("shallow", source: stick.mount + "/shallow", destination: path("shallow")),
            definition("deep", source: stick.mount + "/deep", destination: path("deep")))
        var held = 0
        for (name, depth) in [("shallow", 1_000), ("deep", 10_000)] {
            let first = try plugsync("run", name, timeout: 120)
            assertNoCrash(first)
            let second = try plugsync("run", name, timeout: 120)
            assertNoCrash(second)
            // (Each `actions` goes through all the output: megabytes of long paths here.)
            let actions = first.actions
            let failed = actions.filter { $0.hasPrefix("Failed ") }
            let copied = actions.filter { $0.hasPrefix("Copying ") }.count
            var ok = !first.signaled && !second.signaled
            if depth == 1_000 {
                ok = ok && first.status == 0 && copied == 10 && failed.isEmpty
                ok =
                    ok
                    && FileManager.default.fileExists(
                        atPath: path("shallow/" + Array(repeating: "d", count: 901).joined(separator: "/") + "/f"))
            } else {
                ok = ok && first.status == 1 && failed.count == 1 && failed.first?.contains("path too long") == true
                ok = ok && copied > 5 && copied < 30
            }
            // The second run copies, creates and deletes nothing; the same one line, if any.
            let again = second.actions
            ok = ok && again.allSatisfy { $0.hasPrefix("Skipping ") || $0.hasPrefix("Failed ") }
            ok = ok && again.filter { $0.hasPrefix("Failed ") } == failed
            XCTAssertTrue(
                ok, "\(name)\n\(first.summary ?? "")\n\(failed.map { String($0.prefix(200)) })\n\(second.summary ?? "")"
            )
            if ok { held += 1 }
        }
        report(mode: 6, "deep-tree", held: held, of: 2)
    }

    // MARK: mode 7, case-insensitive drives

    /// On FAT and exFAT, `A.txt` and `a.txt` are one name. Two big ones written by 4 workers
    /// through one temporary name corrupted both FATs and killed the exFAT daemon; every run
    /// copied one over the other. Now one is kept, the other fails with one line each run, the
    /// second run changes nothing, a spelling the drive already holds is never deleted, and
    /// fsck finds the drive clean after every run.
    func testMode7NamesThatDifferOnlyInCaseOnFATAndExFAT() throws {
        try requireLoopDrives(["fat", "exfat"])
        try write("src/A.txt", randomData(3_000_000, seed: 1), mtime: FileTime(1_700_000_000, 0))
        try write("src/a.txt", randomData(3_000_000, seed: 2), mtime: FileTime(1_700_000_000, 0))
        try write("src/X/one", "upper\n", mtime: FileTime(1_700_000_002, 0))
        try write("src/x/two", "lower\n", mtime: FileTime(1_700_000_002, 0))
        try write("src/Docs/readme", "folder\n", mtime: FileTime(1_700_000_004, 0))
        try write("src/docs", "file\n", mtime: FileTime(1_700_000_004, 0))
        try write("src/Mixed.TXT", "kept as the drive spells it\n", mtime: FileTime(1_700_000_006, 0))
        var held = 0
        var trials = 0
        for kind in ["fat", "exfat"] {
            let drive = try makeLoopDrive(kind, kind: kind)
            // The drive already holds one spelling, from before: matched, not deleted.
            try FileManager.default.createDirectory(atPath: drive.mount + "/backup", withIntermediateDirectories: true)
            try shell("cp \(quote(path("src/Mixed.TXT"))) \(quote(drive.mount + "/backup/mixed.txt"))")
            try shell("touch -d @1700000006 \(quote(drive.mount + "/backup/mixed.txt"))")
            try writeConfig(
                definition(
                    kind, source: path("src"), destination: drive.mount + "/backup",
                    ["parallel: 4", "max_delete: 100%"]))
            for round in 1...2 {
                trials += 1
                let result = try plugsync("run", kind, timeout: 120)
                assertNoCrash(result)
                let clash = { (kept: String, other: String) in
                    result.actions("Failed").contains {
                        $0.contains("the destination cannot hold both \(kept) and \(other): names differ only in case")
                    }
                }
                var ok = result.status == 1 && result.actions("Failed").count == 3
                ok = ok && clash("A.txt", "a.txt") && clash("X", "x") && clash("Docs", "docs")
                ok = ok && result.actions("Deleting").isEmpty
                if round == 2 {
                    ok = ok && result.actions.allSatisfy { $0.hasPrefix("Skipping ") || $0.hasPrefix("Failed ") }
                }
                let names = Set((try? FileManager.default.contentsOfDirectory(atPath: drive.mount + "/backup")) ?? [])
                ok = ok && names == ["A.txt", "X", "Docs", "mixed.txt"]
                ok =
                    ok
                    && FileManager.default.contents(atPath: drive.mount + "/backup/A.txt")
                        == randomData(3_000_000, seed: 1)
                ok = ok && read("mnt-\(kind)/backup/X/one") == "upper\n" && !exists("mnt-\(kind)/backup/X/two")
                ok = ok && temporaryFiles(in: drive.mount).isEmpty
                if let problem = try fsckLoopDrive(drive) {
                    ok = false
                    XCTFail("fsck after \(kind) round \(round): \(problem)")
                }
                XCTAssertTrue(ok, "\(kind) round \(round): \(names.sorted())\n\(result)")
                if ok { held += 1 }
            }
        }
        report(mode: 7, "case-insensitive", held: held, of: trials)
    }
}
