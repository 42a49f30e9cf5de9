import Foundation
import XCTest

// Loop devices, mounts and udevd for the tests that need real drives (moved out of DriveTests so
// that AgentTests can use them too).
extension IntegrationTestCase {
    // MARK: loop drives of each filesystem

    /// A loop drive: its device, where it is mounted, and its filesystem.
    struct LoopDrive {
        var device: String
        var mount: String
        var kind: String  // ext4, fat, exfat
    }

    /// A new loop drive of `kind` (`ext4`; `fat` through fusefat, `exfat` through exfat-fuse),
    /// mounted, and unmounted at the test's end. `label` defaults to PSFAT, PSEXFAT or none.
    func makeLoopDrive(_ name: String, kind: String, megabytes: Int = 64, label: String? = nil) throws -> LoopDrive {
        let image = path(name + ".img")
        try shell("truncate -s \(megabytes)M \(quote(image))")
        switch kind {
        case "fat": try shell("mkfs.vfat -n \(label ?? "PSFAT") \(quote(image)) >/dev/null")
        case "exfat": try shell("mkfs.exfat -L \(label ?? "PSEXFAT") \(quote(image)) >/dev/null")
        default: try shell("mkfs.ext4 -q -F -N 40000 \(label.map { "-L \($0) " } ?? "")\(quote(image))")
        }
        let drive = LoopDrive(device: try attach(image), mount: try mountPoint(name), kind: kind)
        try mountLoopDrive(drive)
        addTeardownBlock { [self] in unmount(drive.mount, fuse: drive.kind != "ext4") }
        return drive
    }

    func mountLoopDrive(_ drive: LoopDrive) throws {
        switch drive.kind {
        case "fat": try shell("fusefat -o rw+ \(drive.device) \(quote(drive.mount))")
        case "exfat": try shell("mount.exfat-fuse \(drive.device) \(quote(drive.mount)) >/dev/null 2>&1")
        default: try shell("mount \(drive.device) \(quote(drive.mount))")
        }
        try waitForMount(drive.mount)
    }

    /// Unmounts the drive, checks its filesystem read-only (nil when clean, else fsck's
    /// words), and mounts it again.
    func fsckLoopDrive(_ drive: LoopDrive) throws -> String? {
        unmount(drive.mount, fuse: drive.kind != "ext4")
        let tool = drive.kind == "fat" ? "fsck.vfat" : drive.kind == "exfat" ? "fsck.exfat" : "fsck.ext4"
        let output = try shell("\(tool) -n \(drive.device) 2>&1; echo \"exit $?\"")
        try mountLoopDrive(drive)
        return output.hasSuffix("exit 0\n") ? nil : output
    }

    func requireLoopDrives(_ kinds: [String]) throws {
        var tools = ["truncate", "losetup", "mount", "umount", "mkfs.ext4", "python3"]
        if kinds.contains("fat") { tools += ["mkfs.vfat", "fusefat", "fusermount", "fsck.vfat"] }
        if kinds.contains("exfat") { tools += ["mkfs.exfat", "mount.exfat-fuse", "fusermount", "fsck.exfat"] }
        try requireRoot("loop drives and FUSE mounts", tools: tools)
    }

    // MARK: devices and mounts

    func makeImage(_ name: String) throws -> String {
        let image = path(name)
        try shell("truncate -s 64M \(quote(image))")
        return image
    }

    /// `losetup -f --show`, detached at teardown, after the unmount registered later.
    func attach(_ image: String) throws -> String {
        let device = try shell("losetup -f --show \(quote(image))").trimmingCharacters(in: .whitespacesAndNewlines)
        guard device.hasPrefix("/dev/loop") else { throw HarnessError("losetup printed \(device)") }
        addTeardownBlock { [self] in
            for _ in 0..<20 {
                if (try? shell("losetup -d \(device)")) != nil { return }
                usleep(100_000)
            }
            XCTFail("could not detach \(device)")
        }
        return device
    }

    func mountPoint(_ name: String) throws -> String {
        try mkdir("mnt-\(name)")
        return path("mnt-\(name)")
    }

    func isMounted(_ dir: String) -> Bool {
        let table = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return table.split(separator: "\n").contains {
            $0.split(separator: " ").dropFirst(4).first.map(String.init) == dir
        }
    }

    func waitForMount(_ dir: String) throws {
        for _ in 0..<100 where !isMounted(dir) { usleep(50_000) }
        if !isMounted(dir) { throw HarnessError("\(dir) did not get mounted") }
    }

    /// Unmounts, retrying while a FUSE daemon is busy, lazily as a last resort.
    func unmount(_ dir: String, fuse: Bool) {
        for _ in 0..<30 {
            guard isMounted(dir) else { return }
            let command = fuse ? "fusermount -u \(quote(dir)) || umount \(quote(dir))" : "umount \(quote(dir))"
            if (try? shell(command)) != nil, !isMounted(dir) { return }
            usleep(100_000)
        }
        _ = try? shell("umount -l \(quote(dir))")
        if isMounted(dir) { XCTFail("could not unmount \(dir)") }
    }

    /// Starts `systemd-udevd --daemon` when no udevd answers on /run/udev/control.
    func ensureUdevd() throws {
        if FileManager.default.fileExists(atPath: "/run/udev/control"),
            (try? shell("udevadm control --ping --timeout=5")) != nil
        {
            return
        }
        let daemon = ["/lib/systemd/systemd-udevd", "/usr/lib/systemd/systemd-udevd"]
            .first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let daemon else { throw HarnessError("systemd-udevd is not installed (apt-get install udev)") }
        print("starting \(daemon) --daemon (no udevd was running)")
        try shell("\(daemon) --daemon >/dev/null 2>&1")
        for _ in 0..<50 {
            if (try? shell("udevadm control --ping --timeout=1")) != nil { return }
            usleep(100_000)
        }
        throw HarnessError("systemd-udevd did not come up")
    }

    /// udev's database can trail `udevadm settle` by a moment.
    func waitForUdevLabel(_ device: String, _ label: String) throws {
        for _ in 0..<50 {
            let properties = (try? shell("udevadm info --query=property --name=\(device)")) ?? ""
            if properties.contains("ID_FS_LABEL=\(label)\n") { return }
            usleep(100_000)
        }
        throw HarnessError("udev never reported ID_FS_LABEL=\(label) for \(device)")
    }
}
