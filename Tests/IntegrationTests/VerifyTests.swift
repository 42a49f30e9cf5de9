import Foundation
import XCTest

/// `plugsync verify`: content, not metadata; a sample that a seed repeats; a drive read from the
/// disk, not from the page cache.
final class VerifyTests: IntegrationTestCase {
    func testVerifyFindsWhatDiffersWhereSizeAndTimeAgree() throws {
        let t = FileTime(Int(Date().timeIntervalSince1970) - 3600)
        try write("src/a.txt", "alpha alpha alpha\n", mtime: t)
        try write("src/b.txt", "bravo bravo\n", mtime: t)
        try write("src/sub/c.txt", "charlie\n", mtime: t)
        try write("src/gone/d.txt", "delta\n", mtime: t)
        try write("src/empty", "", mtime: t)
        try writeConfig(
            definition("m", source: path("src"), destination: path("dst"), ["type: mirror"]),
            definition("b", source: path("src"), destination: path("dst"), ["type: backup"]))
        XCTAssertEqual(try plugsync("run", "m").status, 0)

        let clean = try plugsync("verify", "m")
        XCTAssertEqual(clean.status, 0, "\(clean)")
        XCTAssertEqual(clean.lines, ["m: same: 5 files compared (44 B)"], "\(clean)")

        // Behind plugsync's back: one byte changed with size and time kept (a run sees nothing),
        // a file cut short, a file and a folder deleted, a file added.
        try write("dst/a.txt", "alpha alphA alpha\n", mtime: t)
        try write("dst/b.txt", "bravo\n", mtime: t)
        try FileManager.default.removeItem(atPath: path("dst/sub/c.txt"))
        try FileManager.default.removeItem(atPath: path("dst/gone"))
        try write("dst/extra.txt", "extra\n", mtime: t)
        XCTAssertEqual(
            try plugsync("run", "m", "--dry-run").lines.filter { $0.hasSuffix(" a.txt") && !$0.hasPrefix("Skipping") },
            [], "a run compares size and time: it sees no change in a.txt")

        let found = try plugsync("verify", "m")
        XCTAssertEqual(found.status, 1, "\(found)")
        XCTAssertEqual(
            found.lines,
            [
                "Different (content differs from byte 10) a.txt",
                "Different (size 6 bytes, the source's 12) b.txt",
                "Different (missing (a folder)) gone",
                "Different (missing) sub/c.txt",
                "Different (not in the source) extra.txt",
                "m: 5 different: 2 files compared (18 B)",
            ], "\(found)")

        // A backup may hold more than its source: an extra file is no difference there.
        let backup = try plugsync("verify", "b")
        XCTAssertEqual(backup.status, 1)
        XCTAssertFalse(backup.stdout.contains("extra.txt"), "\(backup)")

        let json = try plugsync("verify", "m", "--json")
        XCTAssertEqual(json.status, 1)
        let object = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], json.stdout)
        XCTAssertEqual(object["same"] as? Bool, false)
        XCTAssertEqual(object["files_compared"] as? Int, 2)
        let differences = try XCTUnwrap(object["differences"] as? [[String: String]])
        XCTAssertEqual(differences.first?["path"], "a.txt")
        XCTAssertEqual(differences.count, 5)

        // Nothing was changed by any of it.
        XCTAssertEqual(read("dst/a.txt"), "alpha alphA alpha\n")
        XCTAssertTrue(exists("dst/extra.txt"))

        let bad = try plugsync("verify", "m", "--sample", "0")
        XCTAssertEqual(bad.status, 2, "\(bad)")
        XCTAssertTrue(bad.stderr.contains("--sample"), "\(bad)")
    }

    func testASampleTheSameSeedRepeats() throws {
        for i in 0..<200 { try write("src/f\(i)", "file \(i)\n") }
        try writeConfig(definition("m", source: path("src"), destination: path("dst"), ["type: mirror"]))
        XCTAssertEqual(try plugsync("run", "m").status, 0)
        func compared(_ seed: String) throws -> (Int, String) {
            let result = try plugsync("verify", "m", "--sample", "10", "--seed", seed, "--json")
            XCTAssertEqual(result.status, 0, "\(result)")
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            let count = try XCTUnwrap(object["files_compared"] as? Int)
            XCTAssertEqual(count + (object["files_left_out"] as? Int ?? -1), 200)
            return (count, result.stdout)
        }
        let (first, firstText) = try compared("7")
        XCTAssertTrue((5...40).contains(first), "about 10 % of 200 files, got \(first)")
        XCTAssertEqual(try compared("7").1, firstText, "the same seed, the same sample")
        XCTAssertNotEqual(try compared("8").1, firstText, "another seed, another sample")
        let text = try plugsync("verify", "m", "--sample", "10", "--seed", "7")
        XCTAssertTrue(text.lines.last?.contains("--seed 7 chooses the same files") == true, "\(text)")
    }

    /// A byte changed on the drive's disk under a file whose pages are still in memory: verify
    /// reads the disk and finds it (reading the page cache would see the old bytes).
    func testADriveIsReadFromTheDiskNotFromMemory() throws {
        try requireLoopDrives(["ext4"])
        try requireRoot("direct writes to a loop device", tools: ["filefrag", "dd"])
        let drive = try makeLoopDrive("verify", kind: "ext4", megabytes: 32)
        let content = String(repeating: "0123456789abcdef", count: 512)  // 8 KiB
        try write("src/data.bin", content)
        try writeConfig(definition("m", source: path("src"), destination: drive.mount + "/backup", ["type: mirror"]))
        XCTAssertEqual(try plugsync("run", "m").status, 0)
        let file = drive.mount + "/backup/data.bin"
        XCTAssertEqual(try String(contentsOfFile: file, encoding: .utf8), content)  // in the page cache now

        // Where the file's first block lies on the device (FIEMAP, through the mounted file
        // system, in 512-byte units), then one byte of it changed there with O_DIRECT, past the
        // page cache of the file and of the device.
        _ = try shell("sync")  // a local destination is not flushed by the run: give the data its blocks
        let sector = try shell(
            "filefrag -v -b512 \(quote(file)) | awk '$1 == \"0:\" { sub(/\\.\\.$/, \"\", $4); print $4 }'"
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertNotNil(Int(sector), sector)
        let (blockSize, block) = ("512", sector)
        let scratch = path("block")
        try shell(
            "dd if=\(drive.device) of=\(quote(scratch)) bs=\(blockSize) skip=\(block) count=1 iflag=direct status=none")
        let original = try Data(contentsOf: URL(fileURLWithPath: scratch))
        XCTAssertEqual(original.prefix(16), Data("0123456789abcdef".utf8), "the block holds the file's start")
        var changed = original
        changed[3] = UInt8(ascii: "X")
        try changed.write(to: URL(fileURLWithPath: scratch))
        try shell(
            "dd if=\(quote(scratch)) of=\(drive.device) bs=\(blockSize) seek=\(block) count=1 oflag=direct conv=notrunc status=none"
        )
        XCTAssertEqual(
            try String(contentsOfFile: file, encoding: .utf8), content, "the page cache still holds the old bytes")

        let found = try plugsync("verify", "m")
        XCTAssertEqual(found.status, 1, "\(found)")
        XCTAssertEqual(found.lines.first, "Different (content differs from byte 3) data.bin", "\(found)")
    }
}
