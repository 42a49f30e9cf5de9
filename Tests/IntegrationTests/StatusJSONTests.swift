import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `status NAME` (a definition's last runs), `--json` on `status`, `list`, `devices`, `check`
/// and `run`, and drives rotating under one definition: each keeps its own last run and
/// `max_age`.
final class StatusJSONTests: IntegrationTestCase {
    // MARK: JSON helpers

    /// Standard output as JSON objects, one per line (no other line allowed).
    func objects(_ result: CommandResult, file: StaticString = #filePath, line: UInt = #line) -> [[String: Any]] {
        var found: [[String: Any]] = []
        for text in result.stdout.split(separator: "\n") {
            guard let data = text.data(using: .utf8),
                let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
            else {
                XCTFail("not a JSON object: \(text)\n\(result)", file: file, line: line)
                continue
            }
            found.append(object)
        }
        return found
    }

    func object(_ result: CommandResult, file: StaticString = #filePath, line: UInt = #line) -> [String: Any] {
        let all = objects(result, file: file, line: line)
        XCTAssertEqual(all.count, 1, "one JSON object\n\(result)", file: file, line: line)
        return all.first ?? [:]
    }

    /// A JSON number that is an integer (not a boolean, not a fraction).
    func integer(_ value: Any?) -> Int? {
        guard let number = value as? NSNumber, !isBoolean(number) else { return nil }
        let double = number.doubleValue
        return double == double.rounded() ? number.intValue : nil
    }

    func number(_ value: Any?) -> Double? {
        guard let number = value as? NSNumber, !isBoolean(number) else { return nil }
        return number.doubleValue
    }

    func boolean(_ value: Any?) -> Bool? {
        if let bool = value as? Bool, let number = value as? NSNumber, isBoolean(number) { return bool }
        return nil
    }

    private func isBoolean(_ number: NSNumber) -> Bool {
        // JSONSerialization gives true and false as numbers whose type is a C `char` or `bool`.
        ["c", "B"].contains(String(cString: number.objCType))
    }

    func isNull(_ value: Any?) -> Bool { value is NSNull }

    /// An ISO 8601 time in UTC (`2026-12-03T09:12:02Z`).
    func time(_ value: Any?) -> Date? {
        (value as? String).flatMap { ISO8601DateFormatter().date(from: $0) }
    }

    // MARK: run --json

    /// One object per definition on standard output, the action lines on standard error; a
    /// success, an entry that fails, and a refusal, each with its exit code.
    func testRunJSONForSuccessFailureAndRefusal() throws {
        try write("src/a.txt", "hello\n")
        try write("src/sub/b.txt", "four\n")
        try write("bk/x/inside.txt", "in a folder\n")
        try write("bk/ok.txt", "ok\n")
        try write("bkdst/x", "a file in the way\n")
        try writeConfig(
            definition("ok", source: path("src"), destination: path("dst")),
            definition("keep", source: path("bk"), destination: path("bkdst"), ["type: backup"]),
            definition("gone", source: path("missing"), destination: path("dst3")))

        let success = try plugsync("run", "ok", "--json")
        assertExit(success, 0)
        assertNoCrash(success)
        let done = object(success)
        XCTAssertEqual(done["definition"] as? String, "ok")
        XCTAssertEqual(done["result"] as? String, "success")
        XCTAssertEqual(integer(done["exit_code"]), 0)
        XCTAssertEqual(integer(done["copied"]), 2)
        XCTAssertEqual(integer(done["deleted"]), 0)
        XCTAssertEqual(integer(done["failed"]), 0)
        XCTAssertEqual(integer(done["folders_created"]), 1)
        XCTAssertEqual(integer(done["bytes"]), 11)
        XCTAssertEqual(boolean(done["dry_run"]), false)
        XCTAssertEqual(done["trigger"] as? String, "manual")
        XCTAssertNotNil(number(done["duration_seconds"]), "\(done)")
        XCTAssertLessThan(abs(time(done["started"])?.timeIntervalSinceNow ?? 1e9), 120, "\(done)")
        XCTAssertTrue((done["summary"] as? String)?.hasPrefix("Done: 2 copied") == true, "\(done)")
        XCTAssertEqual((done["failures"] as? [Any])?.count, 0, "\(done)")
        XCTAssertEqual(boolean(done["failures_truncated"]), false)
        XCTAssertTrue(isNull(done["drive"]), "\(done)")
        XCTAssertEqual(done["message"] as? String, "")
        // The report went to standard error, the summary with it.
        XCTAssertEqual(
            Set(success.stderrActions),
            [
                action("Copying", "destination file not found", "a.txt"),
                action("Creating", "destination folder not found", "sub/"),
                action("Copying", "destination file not found", "sub/b.txt"),
            ], "\(success)")
        XCTAssertTrue(success.stderr.contains("Done: 2 copied"), "\(success)")

        let failing = try plugsync("run", "keep", "--json")
        assertExit(failing, 1)
        let failures = object(failing)
        XCTAssertEqual(failures["result"] as? String, "failures")
        XCTAssertEqual(integer(failures["exit_code"]), 1)
        XCTAssertEqual(integer(failures["failed"]), 1)
        XCTAssertEqual(integer(failures["copied"]), 1)
        let listed = failures["failures"] as? [[String: Any]] ?? []
        XCTAssertEqual(listed.count, 1, "\(failures)")
        XCTAssertEqual(listed.first?["path"] as? String, "x", "\(failures)")
        XCTAssertTrue((listed.first?["reason"] as? String)?.hasPrefix("destination is a file") == true, "\(failures)")
        XCTAssertEqual(failing.stderrActions.filter { $0.hasPrefix("Failed ") }.count, 1, "\(failing)")

        // Several definitions: one line each, in order; the worst exit code.
        let refused = try plugsync("run", "ok", "gone", "--json", "--quiet")
        assertExit(refused, 3)
        let both = objects(refused)
        XCTAssertEqual(both.map { $0["definition"] as? String }, ["ok", "gone"], "\(refused)")
        XCTAssertEqual(both.last?["result"] as? String, "refused")
        XCTAssertEqual(integer(both.last?["exit_code"]), 3)
        XCTAssertTrue((both.last?["message"] as? String)?.hasPrefix("Refused: ") == true, "\(refused)")
        XCTAssertEqual(integer(both.first?["copied"]), 0)
        XCTAssertTrue(refused.stderr.contains("ok: Done: 0 copied"), "--quiet's summary on stderr\n\(refused)")
    }

    // MARK: status NAME

    /// A definition's last runs, newest first, `-n` of them; the same as JSON.
    func testStatusOfOneDefinitionListsItsLastRuns() throws {
        try write("src/a.txt", "a\n")
        try writeConfig(definition("hist", source: path("src"), destination: path("dst"), ["max_age: 7d"]))
        assertExit(try plugsync("run", "hist"), 0)
        try write("src/b.txt", "bb\n")
        assertExit(try plugsync("run", "hist"), 0)
        assertExit(try plugsync("run", "hist"), 0)
        try writeConfig(definition("hist", source: path("missing"), destination: path("dst"), ["max_age: 7d"]))
        assertExit(try plugsync("run", "hist"), 3)

        let two = try plugsync("status", "hist", "-n", "2")
        assertExit(two, 0)
        XCTAssertEqual(
            two.lines.first, "STARTED TRIGGER DRIVE RESULT COPIED DELETED FAILED BYTES DURATION MESSAGE", "\(two)")
        XCTAssertEqual(two.lines.count, 3, "\(two)")
        XCTAssertTrue(two.lines[1].contains(" manual - refused 0 0 0 0 B "), "\(two)")
        XCTAssertTrue(two.lines[1].hasSuffix("does not exist") || two.lines[1].contains("Refused: "), "\(two)")
        XCTAssertTrue(two.lines[2].contains(" manual - success 0 0 0 0 B "), "\(two)")
        XCTAssertTrue(two.lines[2].hasSuffix(" s -"), "\(two)")

        let all = try plugsync("status", "hist")
        XCTAssertEqual(all.lines.count, 5, "all four runs (at most 10)\n\(all)")
        XCTAssertTrue(all.lines[3].contains(" manual - success 1 0 0 3 B "), "\(all)")
        XCTAssertTrue(all.lines[4].contains(" manual - success 1 0 0 2 B "), "\(all)")

        let json = try plugsync("status", "hist", "--json", "-n", "3")
        assertExit(json, 0)
        let history = object(json)
        let runs = history["runs"] as? [[String: Any]] ?? []
        XCTAssertEqual(runs.map { $0["result"] as? String }, ["refused", "success", "success"], "\(json)")
        XCTAssertEqual(integer(runs[0]["exit_code"]), 3)
        XCTAssertTrue((runs[0]["message"] as? String)?.hasPrefix("Refused: ") == true, "\(json)")
        XCTAssertEqual(integer(runs[2]["copied"]), 1)
        XCTAssertEqual(integer(runs[2]["bytes"]), 3)
        XCTAssertNotNil(number(runs[2]["duration_seconds"]))
        XCTAssertTrue(isNull(runs[2]["drive"]))
        let started = runs.compactMap { time($0["started"]) }
        XCTAssertEqual(started.count, 3, "\(json)")
        XCTAssertEqual(started, started.sorted(by: >), "newest first\n\(json)")
        for run in runs {
            XCTAssertLessThanOrEqual(time(run["started"])!, time(run["ended"]) ?? .distantPast, "\(run)")
        }
        let definition = history["definition"] as? [String: Any] ?? [:]
        XCTAssertEqual(definition["name"] as? String, "hist")
        XCTAssertEqual(integer(definition["max_age_seconds"]), 7 * 86400)
        XCTAssertEqual(boolean(definition["overdue"]), false)
        XCTAssertTrue(isNull(definition["overdue_seconds"]))
        XCTAssertEqual((definition["last_run"] as? [String: Any])?["result"] as? String, "refused")
        XCTAssertEqual((definition["last_success"] as? [String: Any])?["result"] as? String, "success")
        XCTAssertEqual((definition["drives"] as? [Any])?.count, 0)

        // Nine days on: overdue, counted from the last success.
        let later = ["PLUGSYNC_NOW": "\(Int(Date().timeIntervalSince1970 + 9.5 * 86400))"]
        let late = object(try plugsync("status", "--json", environment: later))
        let entry = (late["definitions"] as? [[String: Any]])?.first ?? [:]
        XCTAssertEqual(boolean(entry["overdue"]), true, "\(late)")
        XCTAssertGreaterThan(number(entry["overdue_seconds"]) ?? 0, 9 * 86400, "\(late)")

        assertExit(try plugsync("status", "nope"), 2)
        assertExit(try plugsync("status", "hist", "-n", "0"), 2)
    }

    // MARK: list, check, devices, status as JSON

    func testListCheckDevicesAndStatusAsJSON() throws {
        try write("src/a.txt", "a\n")
        try writeConfig(
            definition("one", source: path("src"), destination: path("dst"), ["group: g", "max_age: 1d"]),
            definition(
                "two", source: path("src"), destination: path("dst2"), ["enabled: false"],
                sourceExtra: ["file_check: .plugsync-id"]))

        let list = try plugsync("list", "--json")
        assertExit(list, 0)
        let definitions = object(list)["definitions"] as? [[String: Any]] ?? []
        XCTAssertEqual(definitions.map { $0["name"] as? String }, ["one", "two"], "\(list)")
        XCTAssertEqual(definitions.first?["type"] as? String, "mirror")
        XCTAssertEqual(definitions.first?["group"] as? String, "g")
        XCTAssertEqual(definitions.first?["source"] as? String, path("src"))
        XCTAssertEqual(boolean(definitions.first?["enabled"]), true)
        XCTAssertEqual(boolean(definitions.last?["enabled"]), false)
        XCTAssertEqual(boolean(definitions.first?["runs_on_mount"]), false)
        XCTAssertEqual(integer(definitions.first?["max_age_seconds"]), 86400)
        XCTAssertTrue(isNull(definitions.last?["group"]), "\(list)")
        XCTAssertTrue(isNull(definitions.first?["next_run"]), "\(list)")

        let check = try plugsync("check", "one", "--json")
        assertExit(check, 0)
        let checked = object(check)
        XCTAssertEqual(checked["definition"] as? String, "one")
        XCTAssertEqual(boolean(checked["ok"]), true)
        let sides = checked["endpoints"] as? [[String: Any]] ?? []
        XCTAssertEqual(sides.map { $0["role"] as? String }, ["source", "destination"], "\(check)")
        XCTAssertEqual(sides.map { $0["folder"] as? String }, ["exists", "missing"], "\(check)")
        XCTAssertEqual(sides.first?["root"] as? String, path("src"))
        XCTAssertTrue(isNull(sides.first?["problem"]) && isNull(sides.first?["drive"]), "\(check)")

        let refused = try plugsync("check", "two", "--json")
        assertExit(refused, 3)
        let refusal = object(refused)
        XCTAssertEqual(boolean(refusal["ok"]), false)
        let source = (refusal["endpoints"] as? [[String: Any]])?.first ?? [:]
        XCTAssertEqual(boolean(source["ok"]), false)
        XCTAssertTrue(
            (source["problem"] as? String)?.hasPrefix("File Check of the source failed") == true, "\(refused)")
        XCTAssertEqual(source["file_check"] as? String, ".plugsync-id", "\(refused)")
        XCTAssertTrue(isNull(source["folder"]), "\(refused)")

        let devices = try plugsync("devices", "--json")
        assertExit(devices, 0)
        let seen = object(devices)
        XCTAssertNotNil(boolean(seen["udev_data"]), "\(devices)")
        for device in seen["devices"] as? [[String: Any]] ?? [] {
            XCTAssertTrue((device["device"] as? String)?.hasPrefix("/dev/") == true, "\(device)")
            XCTAssertNotNil(device["mount_points"] as? [String], "\(device)")
            XCTAssertNotNil(device["matches"] as? [Any], "\(device)")
            for key in ["label", "uuid", "serial", "fs_type"] {
                XCTAssertTrue(device[key] is String || isNull(device[key]), "\(key): \(device)")
            }
        }

        assertExit(try plugsync("run", "one"), 0)
        let status = try plugsync("status", "--json")
        assertExit(status, 0)
        let states = object(status)["definitions"] as? [[String: Any]] ?? []
        XCTAssertEqual(states.map { $0["name"] as? String }, ["one", "two"], "\(status)")
        let one = states.first ?? [:]
        XCTAssertEqual(boolean(one["running"]), false)
        XCTAssertEqual(one["starts"] as? String, "manual")
        XCTAssertEqual(boolean(one["overdue"]), false)
        let last = one["last_run"] as? [String: Any] ?? [:]
        XCTAssertEqual(last["result"] as? String, "success")
        XCTAssertEqual(integer(last["copied"]), 1)
        XCTAssertEqual(integer(last["exit_code"]), 0)
        XCTAssertEqual(states.last?["starts"] as? String, "disabled")
        XCTAssertTrue(isNull(states.last?["last_run"]), "\(status)")

        // A configuration error: one line on stderr, nothing on stdout, exit 2.
        try "definitions: [".write(toFile: configPath, atomically: true, encoding: .utf8)
        for arguments in [["status", "--json"], ["list", "--json"], ["run", "one", "--json"]] {
            let broken = try plugsync(arguments: arguments)
            assertExit(broken, 2)
            XCTAssertEqual(broken.stdout, "", "\(broken)")
        }
    }

    /// A history written before runs recorded their drive is read as it is, and written on.
    func testAHistoryWithoutDrivesIsReadAndExtended() throws {
        guard hasTool("python3") else {
            throw HarnessError("python3 is not installed (scripts/setup installs it): it writes the old history")
        }
        try mkdir("state")
        let started = Date().timeIntervalSince1970 - 3600
        try shell(
            """
            python3 - \(quote(stateDirectory + "/history.sqlite")) <<'EOF'
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            db.execute('''CREATE TABLE runs (
              id INTEGER PRIMARY KEY, definition TEXT NOT NULL, trigger TEXT NOT NULL,
              started REAL NOT NULL, seconds REAL NOT NULL, result TEXT NOT NULL,
              transferred INTEGER NOT NULL, deleted INTEGER NOT NULL, skipped INTEGER NOT NULL,
              failed INTEGER NOT NULL, bytes INTEGER NOT NULL, message TEXT NOT NULL)''')
            db.execute("INSERT INTO runs (definition, trigger, started, seconds, result, transferred, deleted, skipped, failed, bytes, message) VALUES ('old', 'schedule', \(started), 2.5, 'success', 7, 1, 0, 0, 700, '')")
            db.commit()
            EOF
            """)
        try write("src/a.txt", "a\n")
        try writeConfig(definition("old", source: path("src"), destination: path("dst")))
        let before = try plugsync("status", "old", environment: ["PLUGSYNC_STATE_DIR": stateDirectory])
        assertExit(before, 0)
        XCTAssertTrue(before.lines.last?.contains(" schedule - success 7 1 0 700 B 2.50 s -") == true, "\(before)")
        assertExit(try plugsync("run", "old", environment: ["PLUGSYNC_STATE_DIR": stateDirectory]), 0)
        let after = try plugsync("status", "old", "--json", environment: ["PLUGSYNC_STATE_DIR": stateDirectory])
        let runs = object(after)["runs"] as? [[String: Any]] ?? []
        XCTAssertEqual(runs.map { $0["trigger"] as? String }, ["manual", "schedule"], "\(after)")
        XCTAssertEqual(integer(runs.last?["copied"]), 7)
        XCTAssertTrue(runs.allSatisfy { isNull($0["drive"]) }, "\(after)")
    }

    // MARK: drive rotation

    struct Sample: Decodable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    /// The metrics file's samples as prometheus_client's text parser reads them.
    func prometheusSamples(_ file: String) throws -> [Sample] {
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            print(json.dumps([{"name": s.name, "labels": s.labels, "value": s.value}
                for family in text_string_to_metric_families(open(sys.argv[1]).read()) for s in family.samples]))
            """
        try write("parse.py", script)
        let output = try shell("python3 \(quote(path("parse.py"))) \(quote(file))")
        return try JSONDecoder().decode([Sample].self, from: Data(output.utf8))
    }

    /// Two drives with the same label under one definition: each keeps its last run, `status`
    /// shows a row for each, and `max_age` holds for each drive on its own.
    func testTwoDrivesRotateUnderOneDefinition() throws {
        try requireRoot(
            "loop devices, mounts and udevd",
            tools: ["truncate", "mkfs.ext4", "losetup", "udevadm", "mount", "umount", "blkid"])
        try ensureUdevd()
        let label = "PSROT" + String(UInt32.random(in: 0...UInt32.max), radix: 16, uppercase: true)
        var drives: [(device: String, mount: String, uuid: String)] = []
        for name in ["a", "b"] {
            let image = try makeImage("\(name).img")
            try shell("mkfs.ext4 -q -F -L \(label) \(quote(image))")
            let device = try attach(image)
            try shell("udevadm trigger --action=change \(device) && udevadm settle --timeout=20")
            try waitForUdevLabel(device, label)
            let uuid = try shell("blkid -s UUID -o value \(device)").trimmingCharacters(in: .whitespacesAndNewlines)
            let mount = try mountPoint(name)
            addTeardownBlock { [self] in unmount(mount, fuse: false) }
            drives.append((device, mount, uuid))
        }
        XCTAssertNotEqual(drives[0].uuid, drives[1].uuid)
        try write("src/a.txt", "a\n")
        let metrics = path("plugsync.prom")
        try [
            "settings:", "  metrics_file: '\(metrics)'", "definitions:", "  - name: offsite", "    max_age: 7d",
            "    source:", "      local: '\(path("src"))'", "    destination:", "      device:",
            "        label: \(label)", "        directory: backup", "",
        ].joined(separator: "\n").write(toFile: configPath, atomically: true, encoding: .utf8)
        let now = Date().timeIntervalSince1970

        // Drive A, 20 days ago; then drive B, now.
        try shell("mount \(drives[0].device) \(quote(drives[0].mount))")
        let first = try plugsync("run", "offsite", environment: ["PLUGSYNC_NOW": "\(Int(now - 20 * 86400))"])
        assertExit(first, 0)
        unmount(drives[0].mount, fuse: false)
        try shell("mount \(drives[1].device) \(quote(drives[1].mount))")
        let second = try plugsync("run", "offsite", "--json")
        assertExit(second, 0)
        let ran = object(second)
        let usedDrive = ran["drive"] as? [String: Any] ?? [:]
        XCTAssertEqual(usedDrive["uuid"] as? String, drives[1].uuid, "\(second)")
        XCTAssertEqual(usedDrive["label"] as? String, label, "\(second)")
        XCTAssertEqual(usedDrive["device"] as? String, drives[1].device, "\(second)")
        XCTAssertEqual(read("mnt-b/backup/a.txt"), "a\n")

        // One row per drive, the label with the start of each UUID; A is overdue, B is not.
        let status = try plugsync("status")
        assertExit(status, 0)
        let rows = status.lines.filter { $0.hasPrefix("offsite ") }
        XCTAssertEqual(rows.count, 2, "\(status)")
        let nameA = "\(label) [\(drives[0].uuid.prefix(8))]"
        let nameB = "\(label) [\(drives[1].uuid.prefix(8))]"
        XCTAssertTrue(rows[0].hasPrefix("offsite \(nameB) ") && rows[0].hasSuffix(" ok"), "\(status)")
        XCTAssertTrue(rows[0].contains(" manual success 1 0 0 "), "\(status)")
        XCTAssertTrue(rows[1].hasPrefix("offsite \(nameA) ") && rows[1].hasSuffix(" OVERDUE 20 days"), "\(status)")

        let json = object(try plugsync("status", "--json"))
        let definition = (json["definitions"] as? [[String: Any]])?.first ?? [:]
        XCTAssertEqual(boolean(definition["overdue"]), true, "\(json)")
        let perDrive = definition["drives"] as? [[String: Any]] ?? []
        XCTAssertEqual(perDrive.count, 2, "\(json)")
        let uuids = perDrive.map { ($0["drive"] as? [String: Any])?["uuid"] as? String }
        XCTAssertEqual(uuids, [drives[1].uuid, drives[0].uuid], "\(json)")
        XCTAssertEqual(perDrive.map { boolean($0["overdue"]) }, [false, true], "\(json)")
        XCTAssertGreaterThan(number(perDrive[1]["overdue_seconds"]) ?? 0, 19.9 * 86400, "\(json)")
        XCTAssertTrue(isNull(perDrive[0]["overdue_seconds"]), "\(json)")
        XCTAssertEqual((perDrive[0]["drive"] as? [String: Any])?["name"] as? String, nameB)
        XCTAssertEqual((perDrive[1]["last_success"] as? [String: Any])?["result"] as? String, "success")

        // Ten days on, B is overdue too (from its own run), A still counts from its own.
        let later = object(
            try plugsync("status", "--json", environment: ["PLUGSYNC_NOW": "\(Int(now + 10.5 * 86400))"]))
        let laterDrives = ((later["definitions"] as? [[String: Any]])?.first?["drives"] as? [[String: Any]]) ?? []
        let days = laterDrives.map { Int((number($0["overdue_seconds"]) ?? 0) / 86400) }
        XCTAssertEqual(days, [10, 30], "\(later)")

        // The metrics file: the definition is overdue, and each drive has its own series.
        if hasTool("python3"), (try? shell("python3 -c 'import prometheus_client'")) != nil {
            let overdue = try prometheusSamples(metrics).filter { $0.name == "plugsync_overdue" }
            XCTAssertEqual(overdue.first { $0.labels == ["definition": "offsite"] }?.value, 1, "\(overdue)")
            XCTAssertEqual(
                overdue.first { $0.labels == ["definition": "offsite", "drive": nameA] }?.value, 1, "\(overdue)")
            XCTAssertEqual(
                overdue.first { $0.labels == ["definition": "offsite", "drive": nameB] }?.value, 0, "\(overdue)")
        } else {
            let text = read("plugsync.prom") ?? ""
            XCTAssertTrue(text.contains("drive=\"\(nameA)\"} 1"), text)
        }

        // The history names each run's drive.
        let history = try plugsync("status", "offsite")
        XCTAssertTrue(history.lines[1].contains(" manual \(nameB) success "), "\(history)")
        XCTAssertTrue(history.lines[2].contains(" manual \(nameA) success "), "\(history)")

        // No drive plugged in: the refusal gets a row of its own, the drives keep theirs.
        unmount(drives[1].mount, fuse: false)
        assertExit(try plugsync("run", "offsite"), 3)
        let absent = try plugsync("status")
        let absentRows = absent.lines.filter { $0.hasPrefix("offsite ") }
        XCTAssertEqual(absentRows.count, 3, "\(absent)")
        XCTAssertTrue(absentRows[0].hasPrefix("offsite - ") && absentRows[0].contains(" refused "), "\(absent)")
        XCTAssertTrue(absentRows[1].hasPrefix("offsite \(nameB) ") && absentRows[1].hasSuffix(" ok"), "\(absent)")

        // The agent's overdue check names the drive that is late, and only that one.
        let agent = try startPlugsync(["agent", "--config", configPath])
        defer {
            if agent.process.isRunning {
                kill(agent.process.processIdentifier, SIGTERM)
                agent.process.waitUntilExit()
            }
        }
        func log() -> String { (try? String(contentsOfFile: agent.errPath, encoding: .utf8)) ?? "" }
        for _ in 0..<500 where !log().contains("offsite: OVERDUE") && agent.process.isRunning { usleep(20_000) }
        usleep(200_000)
        XCTAssertTrue(
            log().contains("offsite: OVERDUE 20 days: \(nameA) last backed up 20 days ago (max_age 7d)"), log())
        XCTAssertEqual(log().components(separatedBy: "offsite: OVERDUE").count - 1, 1, log())

        // Drive A plugged in again: the agent's run records it, and it is on time again.
        try shell("mount \(drives[0].device) \(quote(drives[0].mount))")
        for _ in 0..<500 where !log().contains("offsite: Done: 0 copied") && agent.process.isRunning {
            usleep(20_000)
        }
        XCTAssertTrue(log().contains("offsite: Done: 0 copied"), log())
        let back = object(try plugsync("status", "--json"))
        let returned = ((back["definitions"] as? [[String: Any]])?.first?["drives"] as? [[String: Any]]) ?? []
        XCTAssertEqual(
            returned.map { ($0["drive"] as? [String: Any])?["uuid"] as? String }, [drives[0].uuid, drives[1].uuid],
            "\(back)")
        XCTAssertEqual((returned.first?["last_run"] as? [String: Any])?["trigger"] as? String, "mount", "\(back)")
        XCTAssertEqual(returned.map { boolean($0["overdue"]) }, [false, false], "\(back)")
    }

    /// Two clones (one image copied: the same label and UUID) given their own ids, as
    /// `init-drive --force --id` does: the File Check file tells them apart, each keeps its own
    /// last run and `max_age`; `forget-drive` takes the retired one out of the rotation until
    /// it runs again.
    func testClonedDrivesAreToldApartByTheirFileCheckAndCanBeForgotten() throws {
        try requireRoot(
            "loop devices, mounts and udevd",
            tools: ["truncate", "mkfs.ext4", "losetup", "udevadm", "mount", "umount", "blkid"])
        try ensureUdevd()
        let label = "PSCLN" + String(UInt32.random(in: 0...UInt32.max), radix: 16, uppercase: true)
        let imageA = try makeImage("a.img")
        try shell("mkfs.ext4 -q -F -L \(label) \(quote(imageA))")
        let imageB = path("b.img")
        try shell("cp --sparse=always \(quote(imageA)) \(quote(imageB))")
        var drives: [(device: String, mount: String)] = []
        for (name, image) in [("a", imageA), ("b", imageB)] {
            let device = try attach(image)
            try shell("udevadm trigger --action=change \(device) && udevadm settle --timeout=20")
            try waitForUdevLabel(device, label)
            let mount = try mountPoint(name)
            addTeardownBlock { [self] in unmount(mount, fuse: false) }
            drives.append((device, mount))
        }
        let uuids = try drives.map {
            try shell("blkid -s UUID -o value \($0.device)").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        XCTAssertEqual(uuids[0], uuids[1], "the clone has the original's UUID")
        try write("src/a.txt", "a\n")
        try [
            "settings:", "  metrics_file: '\(path("plugsync.prom"))'",
            "definitions:", "  - name: offsite", "    max_age: 7d", "    source:", "      local: '\(path("src"))'",
            "    destination:", "      device:", "        label: \(label)", "      file_check: .plugsync-id=^offsite-",
            "",
        ].joined(separator: "\n").write(toFile: configPath, atomically: true, encoding: .utf8)
        let now = Date().timeIntervalSince1970
        for (index, drive) in drives.enumerated() {
            try shell("mount \(drive.device) \(quote(drive.mount))")
            let id = index == 0 ? "offsite-a" : "offsite-b"
            assertExit(try plugsync("init-drive", drive.mount, "--id", id, "--force", config: nil), 0)
            let at = index == 0 ? ["PLUGSYNC_NOW": "\(Int(now - 20 * 86400))"] : [:]
            assertExit(try plugsync("run", "offsite", environment: at), 0)
            unmount(drive.mount, fuse: false)
        }

        let nameA = "\(label) [offsite-a]"
        let nameB = "\(label) [offsite-b]"
        let status = try plugsync("status")
        let rows = status.lines.filter { $0.hasPrefix("offsite ") }
        XCTAssertEqual(rows.count, 2, "\(status)")
        XCTAssertTrue(
            rows.first?.hasPrefix("offsite \(nameB) ") == true && rows.first?.hasSuffix(" ok") == true, "\(status)")
        XCTAssertTrue(
            rows.last?.hasPrefix("offsite \(nameA) ") == true && rows.last?.hasSuffix(" OVERDUE 20 days") == true,
            "\(status)")
        let json = object(try plugsync("status", "--json"))
        let perDrive = ((json["definitions"] as? [[String: Any]])?.first?["drives"] as? [[String: Any]]) ?? []
        XCTAssertEqual(
            perDrive.map { ($0["drive"] as? [String: Any])?["check"] as? String }, ["offsite-b", "offsite-a"])

        // A name that fits no drive, or both: one line, exit 2, nothing forgotten.
        let unknown = try plugsync("forget-drive", "offsite", "NOSUCH")
        assertExit(unknown, 2)
        XCTAssertEqual(unknown.stderr.split(separator: "\n").count, 1, "\(unknown)")
        XCTAssertTrue(unknown.stderr.contains("'\(nameA)'") && unknown.stderr.contains("'\(nameB)'"), "\(unknown)")
        let both = try plugsync("forget-drive", "offsite", label)
        assertExit(both, 2)
        XCTAssertTrue(both.stderr.contains("names 2 drives"), "\(both)")

        // The retired drive forgotten: one row, on time.
        let forget = try plugsync("forget-drive", "offsite", "offsite-a")
        assertExit(forget, 0)
        XCTAssertTrue(forget.stdout.contains("offsite: \(nameA) forgotten"), "\(forget)")
        let after = try plugsync("status")
        let left = after.lines.filter { $0.hasPrefix("offsite ") }
        XCTAssertEqual(left.count, 1, "\(after)")
        XCTAssertTrue(
            left.first?.hasPrefix("offsite \(label) ") == true && left.first?.hasSuffix(" ok") == true, "\(after)")
        // The metrics file has lost the retired drive's series.
        let metrics = read("plugsync.prom") ?? ""
        XCTAssertFalse(metrics.contains("drive=\"\(nameA)\""), metrics)
        XCTAssertTrue(metrics.contains("plugsync_overdue{definition=\"offsite\"} 0"), metrics)
        let calm = object(try plugsync("status", "--json"))
        XCTAssertEqual(boolean((calm["definitions"] as? [[String: Any]])?.first?["overdue"]), false, "\(calm)")
        // Its runs stay in the history.
        XCTAssertEqual(try plugsync("status", "offsite").lines.count, 3)

        // Plugged in again, the agent's run (the drive as it matched it) brings it back.
        let agent = try startPlugsync(["agent", "--config", configPath])
        defer {
            if agent.process.isRunning {
                kill(agent.process.processIdentifier, SIGTERM)
                agent.process.waitUntilExit()
            }
        }
        func log() -> String { (try? String(contentsOfFile: agent.errPath, encoding: .utf8)) ?? "" }
        for _ in 0..<500 where !log().contains("started") && agent.process.isRunning { usleep(20_000) }
        try shell("mount \(drives[0].device) \(quote(drives[0].mount))")
        for _ in 0..<500 where !log().contains("offsite: Done: ") && agent.process.isRunning { usleep(20_000) }
        XCTAssertTrue(log().contains("offsite: Done: 0 copied"), log())
        let back = try plugsync("status")
        let backRows = back.lines.filter { $0.hasPrefix("offsite ") }
        XCTAssertEqual(backRows.count, 2, "\(back)")
        XCTAssertTrue(backRows.first?.hasPrefix("offsite \(nameA) ") == true, "\(back)")
    }
}
