import ArgumentParser
import PlugSync

/// `plugsync init-drive`: the File Check file on a drive, and the lines that recognize it.
struct InitDrive: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init-drive",
        abstract: "Give a mounted drive a File Check file with a new id, and print the definition lines that match it.",
        discussion: """
            Example: plugsync init-drive /media/ana/BLUEDISK
            The file (.plugsync-id at the drive's root unless --file says otherwise) holds a random id; \
            a definition whose File Check asks for that id runs on this drive and no other, even one \
            with the same label. The file is written atomically and an existing one is kept unless \
            --force is given (definitions that check its old id then refuse the drive).
            """)
    @Argument(
        help: ArgumentHelp(
            "The drive: its mount point (or a folder on it, which the printed lines then name), or device:label=….",
            valueName: "drive"))
    var drive: String
    @Option(help: "The File Check file's name at the drive's root.") var file = DriveSetup.defaultFile
    @Option(help: "The id to write (letters, digits, '.', '_', '-'); a random one when not given.") var id: String?
    @Flag(help: "Replace an existing File Check file.") var force = false

    func run() throws {
        try failing {
            let setup = try DriveSetup.locate(drive, currentDirectory: SyncNow.currentDirectory())
            let id = self.id ?? DriveSetup.freshID()
            if let problem = Definition.nameProblem(id) { throw UsageError("--id: \(problem)") }
            let check = try setup.fileCheck(id, file: file)
            let path = try setup.writeID(id, file: file, replace: force)
            let quotedCheck = "'" + check.description + "'"
            print("Wrote \(path) with the id \(id) on \(setup.drive).")
            print("For the definitions file, the drive as the destination (write source: for the other side):")
            for line in setup.yaml(role: "destination", check: check) { print(line) }
            print("With add or edit:")
            print("  --destination \(setup.argument) --destination-check \(quotedCheck)")
        }
    }
}
