import Devices
import Dispatch
import FoundationEssentials
import LocalBackend
import Logging
import ServiceLifecycle
import SyncEngine
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The long-running agent: device and mount events and the schedule become runs, one at a time
/// per definition (`JobQueue`), recorded with trigger `mount` or `schedule`.
///
/// It logs one line per trigger, run and skip on standard error (journald adds the time).
public final class Agent: @unchecked Sendable {
    public let configPath: String
    private let runner: SyncRunner
    private let lock = Lock()
    private var definitions: [Definition]
    /// Mount IDs already acted on (or deliberately left alone), until they go away.
    private var handledMounts: Set<Int> = []
    /// Mount IDs in the mount table as the device loop last saw it: a mount looked at on a
    /// thread of its own is marked handled only while it is still there.
    private var liveMounts: Set<Int> = []
    /// Mount points the agent made itself (`mount: auto`); their runs are driven by the mounter.
    private var autoMountPoints: Set<String> = []
    private var autoMounting: Set<String> = []
    /// Devices auto-mounted, synced and released, until they are plugged in again.
    private var autoMountDone: Set<String> = []
    private var nextRuns: [String: Date] = [:]
    private let cancellation = Cancellation()
    public private(set) var queue: JobQueue!
    let watch: DeviceWatch
    private let timer: DispatchSourceTimer
    private let timerQueue = DispatchQueue(label: "plugsync-scheduler")
    private let isRoot = getuid() == 0
    /// Overdue definitions (or drives of one: `name<TAB>drive key`) already logged (until they
    /// are on time again), and when each was last pinged as failing for it (once a day).
    private var overdueLogged: Set<String> = []
    private var overduePinged: [String: Date] = [:]
    /// When each overdue definition was last shown on a desktop (once a day).
    private var overdueShown: [String: Date] = [:]
    /// The overdue checks: at start, after each run, every hour; one at a time.
    private let overdueQueue = DispatchQueue(label: "plugsync-overdue")
    private let overdueTimer: DispatchSourceTimer

    /// Loads the definitions file (a bad one is an error here: nothing to keep yet).
    public init(configPath: String, stateDirectory: String) throws {
        self.configPath = configPath
        loadedBytes = Posix.readFile(configPath)
        let file = try DefinitionsFile.load(path: configPath)
        definitions = file.definitions
        for warning in file.warnings { Self.say(warning) }
        runner = try SyncRunner(stateDirectory: stateDirectory)
        runner.use(file)
        runner.desktopAudience = getuid() == 0 ? .graphicalSessions : .ownSession
        watch = try DeviceWatch()
        timer = DispatchSource.makeTimerSource(queue: timerQueue)
        overdueTimer = DispatchSource.makeTimerSource(queue: overdueQueue)
        queue = JobQueue { [weak self] name, trigger in self?.execute(name, trigger: trigger) }
        timer.setEventHandler { [weak self] in self?.scheduleFired() }
        timer.resume()
        overdueTimer.setEventHandler { [weak self] in self?.checkOverdue() }
        overdueTimer.schedule(wallDeadline: .distantFuture)
        overdueTimer.resume()  // a suspended source must not be released
    }

    public static func say(_ line: String) {
        var text = "plugsync agent: " + TerminalText.escaped(line) + "\n"  // labels, mount points, server text
        text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }
    private func say(_ line: String) { Self.say(line) }

    // MARK: definitions

    private func snapshot() -> [Definition] {
        lock.lock()
        defer { lock.unlock() }
        return definitions
    }

    /// The definitions file's bytes as last read (`reloadIfChanged`).
    private var loadedBytes: [UInt8]?

    /// The file may have changed (`FileWatcher`): read again if its bytes differ from the ones
    /// last read, so a save that changes nothing (or a touch) does not reschedule.
    public func reloadIfChanged() {
        let bytes = Posix.readFile(configPath)
        if lock.withLock({ bytes == loadedBytes }) { return }
        say("\(configPath) changed")
        reload()
    }

    /// SIGHUP: reads the file again; a bad file keeps the old definitions.
    public func reload() {
        let bytes = Posix.readFile(configPath)
        lock.withLock { loadedBytes = bytes }
        do {
            let file = try DefinitionsFile.load(path: configPath)
            let fresh = file.definitions
            for warning in file.warnings { say(warning) }
            lock.lock()
            definitions = fresh
            lock.unlock()
            runner.use(file)
            say("reloaded \(configPath): \(fresh.count) definitions")
            reschedule()
            overdueQueue.async { [self] in checkOverdue() }
        } catch {
            say("reload failed, keeping the previous \(snapshot().count) definitions: \(error)")
        }
    }

    // MARK: runs

    private func execute(_ name: String, trigger: RunTrigger) {
        guard let definition = snapshot().first(where: { $0.name == name }) else {
            say("\(name): no longer defined; \(trigger) run skipped")
            return
        }
        say("\(name): run started (trigger: \(trigger))")
        var options = RunOptions()
        options.trigger = trigger.kind
        options.drive = trigger.drive
        options.verbosity = .silent
        options.cancellation = cancellation
        let outcome = runner.run(definition, options: options)
        say("\(name): \(outcome.summary) (trigger: \(trigger))")
        overdueQueue.async { [self] in checkOverdue() }
    }

    // MARK: overdue

    /// Starts the overdue checks: now, then every hour.
    func startOverdueChecks() {
        overdueTimer.schedule(deadline: .now(), repeating: .seconds(3600), leeway: .seconds(10))
    }

    /// Logs a definition that became overdue (once, until it is on time again), pings it as a
    /// failure and shows it on the desktop (`desktop: true`) once a day when its `notify: events`
    /// has `overdue`, and rewrites the metrics file.
    private func checkOverdue() {
        let now = FeedbackClock.now()
        let watched = snapshot().filter { $0.enabled && $0.maxAge != nil }
        // Each overdue definition, or each overdue drive of a definition whose drives rotate.
        let late =
            runner.withHistory { history in
                watched.map { ($0, Overdue.late($0, history: history, now: now)) }
            } ?? []
        var pings: [(Definition, String, key: String)] = []
        var notices: [(Definition, String, key: String)] = []
        for (definition, parts) in late {
            let keys = parts.map { definition.name + "\t" + ($0.drive?.drive.key ?? "") }
            lock.withLock {
                // On time again: logged anew, pinged and shown, when it is late again.
                for key in overdueLogged
                where key.hasPrefix(definition.name + "\t") && !keys.contains(key) {
                    overdueLogged.remove(key)
                    overduePinged[key] = nil
                    overdueShown[key] = nil
                }
            }
            for (part, key) in zip(parts, keys) {
                let line = Overdue.line(definition, drive: part.drive, age: part.age)
                let (fresh, ping, show) = lock.withLock {
                    let fresh = overdueLogged.insert(key).inserted
                    var ping = false
                    if let notify = definition.notify, notify.url != nil, notify.wants(.overdue),
                        overduePinged[key].map({ now.timeIntervalSince($0) >= 86400 }) ?? true
                    {
                        overduePinged[key] = now
                        ping = true
                    }
                    var show = false
                    if let notify = definition.notify, notify.desktopWants(.overdue),
                        overdueShown[key].map({ now.timeIntervalSince($0) >= 86400 }) ?? true
                    {
                        overdueShown[key] = now
                        show = true
                    }
                    return (fresh, ping, show)
                }
                if fresh { say(line) }
                if ping { pings.append((definition, line, key)) }
                if show { notices.append((definition, line, key)) }
            }
        }
        runner.writeMetrics()
        for (definition, line, key) in notices {
            let shown = DesktopNotices.show(
                DesktopNotices.overdue(definition.name, line: line), to: runner.desktopAudience,
                name: definition.name, log: say)
            // Nobody saw it (no desktop session yet): tried again at the next check.
            if !shown { lock.withLock { overdueShown[key] = nil } }
        }
        for (definition, line, key) in pings {
            let url = definition.notify!.url!
            if let problem = Ping.send(Ping.url(url, suffix: "fail"), body: line + "\n") {
                say("\(definition.name): the overdue ping to \(Ping.host(url)) was not delivered: \(problem)")
                lock.withLock { overduePinged[key] = nil }  // tried again at the next check
            }
        }
    }

    /// Submits a run and logs what became of the request.
    private func request(_ name: String, trigger: RunTrigger, why: String, done: (@Sendable () -> Void)? = nil) {
        switch queue.submit(name, trigger: trigger, done: done) {
        case .started: say("\(name): \(why): starting a run")
        case .queued: say("\(name): \(why): a run is going on; one more run follows it")
        case .merged: say("\(name): \(why): a run is going on and one more is queued already")
        case nil: done?()
        }
    }

    // MARK: devices

    /// Runs the device loop on its own thread until `stop()`.
    func watchDevices() {
        if let problem = watch.udevProblem { say("no udev events (\(problem)); watching the mount table only") }
        lock.lock()
        handledMounts = Set(watch.mountTable.map(\.mountID))  // mounted before the agent started
        liveMounts = handledMounts
        lock.unlock()
        watch.run { [self] event in
            switch event {
            case .mounts(let change): mountsChanged(change)
            case .device(let event): deviceEvent(event)
            }
        }
    }

    private func mountsChanged(_ change: MountChange) {
        lock.lock()
        for entry in change.removed { handledMounts.remove(entry.mountID) }
        liveMounts = Set(change.table.map(\.mountID))
        lock.unlock()
        for entry in change.added { consider(entry, table: change.table) }
    }

    private func deviceEvent(_ event: DeviceEvent) {
        let block = event.device
        // A drive the agent auto-mounted is not mounted again until it is plugged in anew
        // (remove/add) or its medium changes: an unmount must not start another round.
        if event.action != "change" || block.fsUsage != "filesystem" {
            lock.lock()
            autoMountDone.remove(block.devnode)
            lock.unlock()
        }
        guard event.action == "add" || event.action == "change" else {
            if event.action == "remove" { say("drive \(block.devnode) removed") }
            return
        }
        guard block.fsUsage == "filesystem" else { return }
        let table = watch.mountTable
        let mounts = MountTable.mounts(ofDevice: block.major, minor: block.minor, in: table)
        if mounts.isEmpty {
            autoMount(block)
        } else {
            // udev may know the drive only now: look again at its mounts not acted on yet.
            for entry in mounts { consider(entry, table: table, block: block) }
        }
    }

    /// A new mount: every enabled on-mount definition whose drive it is runs once.
    ///
    /// Its File Checks read the drive, which anyone may have prepared (a FIFO, content made to
    /// be slow to match) or which may stop answering: they are evaluated on a thread of their
    /// own, each bounded in time (`FileCheck.failure`), so the device loop goes on at once to
    /// the next event and one drive never delays another.
    private func consider(_ entry: MountEntry, table: [MountEntry], block known: BlockDevice? = nil) {
        guard EndpointResolver.couldBeDrive(entry) else { return }
        lock.lock()
        let skip = handledMounts.contains(entry.mountID) || autoMountPoints.contains(entry.mountPoint)
        lock.unlock()
        if skip { return }
        let block =
            known ?? (entry.major != 0 ? BlockDevices.device(major: entry.major, minor: entry.minor) : nil)
            ?? (entry.source.hasPrefix("/dev/") ? BlockDevices.device(path: entry.source) : nil)
        startThread { [self] in evaluate(entry, block: block) }
    }

    /// The File Checks of a new mount and the runs they call for (on a thread of its own).
    private func evaluate(_ entry: MountEntry, block: BlockDevice?) {
        var matched: [(Definition, DeviceSpec, role: String, check: String?)] = []
        var waitForUdev = false
        for definition in snapshot() where definition.enabled && definition.runsOnMount {
            for (spec, role) in [(definition.source, "source"), (definition.destination, "destination")] {
                guard case .device(let device) = spec.location else { continue }
                let hasIdentity = device.label != nil || device.uuid != nil || device.serial != nil
                if hasIdentity {
                    guard let block else { continue }
                    if !block.udevInitialized && block.label == nil && block.uuid == nil {
                        waitForUdev = true
                        continue
                    }
                    guard EndpointResolver.matches(block, device) else { continue }
                }
                let outcome = spec.fileCheck?.outcome(root: entry.mountPoint, drive: true)
                if let failure = outcome?.failure {
                    if hasIdentity {
                        say(
                            "\(definition.name): drive \(entry.source) at \(entry.mountPoint) left alone: File Check failed: \(failure)"
                        )
                        if definition.notify?.desktopWants(.failure) == true {
                            let notice = DesktopNotices.leftAlone(
                                drive: Self.driveName(block, entry.source), definition: definition.name, why: failure)
                            startThread { [self] in
                                DesktopNotices.show(
                                    notice, to: runner.desktopAudience.about(driveAt: entry.mountPoint),
                                    name: definition.name, log: say)
                            }
                        }
                    }
                    continue
                }
                if !hasIdentity && spec.fileCheck == nil { continue }
                matched.append((definition, device, role, outcome?.content))
                break
            }
        }
        if matched.isEmpty && waitForUdev { return }  // decided when udev has described the drive
        lock.lock()
        let fresh = liveMounts.contains(entry.mountID) && handledMounts.insert(entry.mountID).inserted
        lock.unlock()
        guard fresh, !matched.isEmpty else { return }
        say("mount: \(entry.source) at \(entry.mountPoint) matches \(matched.map(\.0.name).joined(separator: ", "))")
        let unmount = matched.contains { $0.1.unmountAfter || $0.1.powerOffAfter }
        let powerOff = matched.contains { $0.1.powerOffAfter }
        let group = DispatchGroup()
        // The run uses this mount, as matched here (`MatchedDrive`).
        let description =
            block.map { "\($0.devnode) (\(EndpointResolver.identity($0)))" } ?? "\(entry.source) (\(entry.fsType))"
        for (definition, _, role, check) in matched {
            group.enter()
            let drive = MatchedDrive(
                mountID: entry.mountID, mountPoint: entry.mountPoint, description: description, role: role,
                check: check)
            request(
                definition.name, trigger: RunTrigger("mount", drive: drive), why: "drive mounted at \(entry.mountPoint)"
            ) {
                group.leave()
            }
        }
        if unmount {
            let notified = matched.map(\.0).filter { $0.notify?.desktopWants(.removable) == true }
            let drive = Self.driveName(block, entry.source)
            group.notify(queue: .global()) { [self] in
                release(
                    mountPoint: entry.mountPoint, device: entry.source, powerOff: powerOff, drive: drive,
                    notified: notified)
            }
        }
    }

    /// How a notification names a drive: its label, else its device.
    static func driveName(_ block: BlockDevice?, _ device: String) -> String {
        if let label = block?.label, !label.isEmpty { return label }
        return block?.devnode ?? device
    }

    /// Flushes and unmounts a drive after its runs (and powers it off when asked); `notified`
    /// (the definitions with `desktop: true` and the `removable` event) are told whether it is
    /// safe to remove, once.
    private func release(
        mountPoint: String, device: String, powerOff: Bool, drive: String, notified: [Definition]
    ) {
        try? LocalEndpoint(root: mountPoint).flush()
        let status = Hooks.program(["umount", mountPoint], environment: pathEnvironment())
        let line: String
        if status != 0 {
            line = "cannot unmount \(mountPoint) (umount exit status \(status)); the drive is NOT safe to remove"
        } else if powerOff {
            let off = Hooks.program(["udisksctl", "power-off", "-b", device], environment: pathEnvironment())
            line =
                off == 0
                ? "\(device) unmounted and powered off: safe to remove"
                : "\(device) unmounted (power-off unavailable or failed): safe to remove"
        } else {
            line = "\(device) unmounted from \(mountPoint): safe to remove"
        }
        say(line)
        guard !notified.isEmpty else { return }
        DesktopNotices.show(
            DesktopNotices.released(drive: drive, detail: line, safe: status == 0),
            to: runner.desktopAudience.about(driveAt: mountPoint),
            name: notified.map(\.name).joined(separator: ", "), log: say)
    }

    /// `mount: auto`: a matching drive nobody mounted is mounted under /run/plugsync/, its
    /// definitions run, then it is flushed and unmounted.
    private func autoMount(_ block: BlockDevice) {
        let wanting = snapshot().filter { definition in
            definition.enabled && definition.runsOnMount
                && [definition.source, definition.destination].contains {
                    guard case .device(let device) = $0.location, device.mountAuto,
                        device.label != nil || device.uuid != nil || device.serial != nil
                    else { return false }
                    return EndpointResolver.matches(block, device)
                }
        }
        guard !wanting.isEmpty else { return }
        guard isRoot else {
            say(
                "\(block.devnode) matches \(wanting.map(\.name).joined(separator: ", ")) (mount: auto), but mounting needs root: run the system agent, or mount the drive yourself"
            )
            return
        }
        let name = (block.uuid ?? block.label ?? block.sysName).filter { $0.isLetter || $0.isNumber || $0 == "-" }
        let point = "/run/plugsync/" + (name.isEmpty ? block.sysName : name)
        lock.lock()
        let busy = autoMountDone.contains(block.devnode) || !autoMounting.insert(block.devnode).inserted
        if !busy { autoMountPoints.insert(point) }
        lock.unlock()
        if busy { return }
        DispatchQueue.global().async { [self] in
            defer {
                lock.lock()
                autoMounting.remove(block.devnode)
                autoMountPoints.remove(point)
                lock.unlock()
            }
            mkdir("/run/plugsync", 0o755)
            mkdir(point, 0o700)
            let status = Hooks.program(
                ["mount", "-o", "nosuid,nodev", block.devnode, point], environment: pathEnvironment())
            guard status == 0 else {
                say("cannot mount \(block.devnode) at \(point) (mount exit status \(status))")
                rmdir(point)
                return
            }
            say("mounted \(block.devnode) at \(point) (mount: auto)")
            let group = DispatchGroup()
            for definition in wanting {
                group.enter()
                request(definition.name, trigger: "mount", why: "drive mounted at \(point)") { group.leave() }
            }
            group.wait()
            release(
                mountPoint: point, device: block.devnode, powerOff: false, drive: Self.driveName(block, block.devnode),
                notified: wanting.filter { $0.notify?.desktopWants(.removable) == true })
            rmdir(point)
            lock.lock()
            autoMountDone.insert(block.devnode)
            lock.unlock()
        }
    }

    // MARK: schedule

    /// Sets the timer to the earliest next scheduled run.
    func reschedule(after date: Date = Date()) {
        var next: [String: Date] = [:]
        for definition in snapshot() where definition.enabled && !definition.schedule.isEmpty {
            if let when = definition.schedule.nextRun(after: date) { next[definition.name] = when }
        }
        lock.lock()
        nextRuns = next
        lock.unlock()
        guard let earliest = next.values.min() else {
            timer.schedule(wallDeadline: .distantFuture)
            return
        }
        let seconds = max(0, earliest.timeIntervalSinceNow)
        timer.schedule(wallDeadline: .now() + seconds, leeway: .milliseconds(50))
    }

    private func scheduleFired() {
        let now = Date()
        lock.lock()
        let due = nextRuns.filter { $0.value <= now.addingTimeInterval(0.2) }
        lock.unlock()
        let definitions = snapshot()
        for (name, when) in due.sorted(by: { $0.key < $1.key }) {
            guard let definition = definitions.first(where: { $0.name == name }) else { continue }
            if let absent = absentDrive(definition) {
                say("\(name): scheduled run skipped: \(absent)")
                continue
            }
            request(name, trigger: "schedule", why: "scheduled for \(when)")
        }
        reschedule(after: max(now, due.values.max() ?? now))
    }

    /// Why a scheduled run cannot find its drive, or nil when every device endpoint is there.
    private func absentDrive(_ definition: Definition) -> String? {
        let specs = [definition.source, definition.destination].filter { $0.location.isDevice }
        if specs.isEmpty { return nil }
        let resolver = EndpointResolver()
        for spec in specs {
            guard case .device(let device) = spec.location else { continue }
            if resolver.candidates(for: device).isEmpty { return "the drive \(device.summary) is not mounted" }
        }
        return nil
    }

    // MARK: shutdown

    /// SIGTERM: no new file starts; files in flight finish; waits up to `timeout` seconds.
    func shutdown(timeout: Double) {
        timer.cancel()
        overdueTimer.cancel()
        watch.stop()
        cancellation.cancel()
        if !queue.drain(timeout: timeout) { say("runs still going on after \(Int(timeout)) s; exiting anyway") }
    }

    private func pathEnvironment() -> [String: String] {
        ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    }
}

// MARK: services

/// The agent's parts as services of one `ServiceGroup`: SIGTERM and SIGINT shut it down
/// gracefully, SIGHUP reloads the definitions file.
public enum AgentServices {
    public static func run(configPath: String, stateDirectory: String) async throws {
        let agent = try Agent(configPath: configPath, stateDirectory: stateDirectory)
        var logger = Logger(label: "plugsync.agent")
        logger.logLevel = .warning
        let group = ServiceGroup(
            services: [
                JobRunnerService(agent: agent), DeviceWatcherService(agent: agent), SchedulerService(agent: agent),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger)
        signal(SIGHUP, SIG_IGN)
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hangup.setEventHandler { agent.reload() }
        hangup.resume()
        // The file is followed as it changes: `plugsync add` and editors replace it by a rename.
        let watcher: FileWatcher?
        do {
            watcher = try FileWatcher(path: configPath) { agent.reloadIfChanged() }
        } catch {
            watcher = nil
            Agent.say("cannot follow changes of \(configPath) (\(error)): send SIGHUP after editing it")
        }
        watcher?.start()
        defer { watcher?.stop() }
        if let other = AgentPresence.announce(stateDirectory: stateDirectory, configPath: configPath) {
            Agent.say(
                "another agent (pid \(other.pid), definitions \(other.configPath)) uses the state folder \(stateDirectory): both will run the same definitions"
            )
        }
        Agent.say(
            "started (pid \(getpid()), \(getuid() == 0 ? "system" : "user") mode, definitions \(configPath), \(agent.definitionCount) definitions)"
        )
        try await group.run()
        hangup.cancel()
        Agent.say("stopped")
    }
}

extension Agent {
    var definitionCount: Int { snapshot().count }
}

/// Waits for shutdown, then stops new files and waits for the runs going on.
struct JobRunnerService: Service {
    let agent: Agent
    func run() async throws {
        try? await gracefulShutdown()
        agent.shutdown(timeout: 4)
    }
}

/// The udev + mount-table event loop on its own thread.
struct DeviceWatcherService: Service {
    let agent: Agent
    func run() async throws {
        startThread { agent.watchDevices() }
        try? await gracefulShutdown()
        agent.watch.stop()
    }
}

/// The schedule timer: set to the earliest next run, reset on reload.
struct SchedulerService: Service {
    let agent: Agent
    func run() async throws {
        agent.reschedule()
        agent.startOverdueChecks()
        try? await gracefulShutdown()
    }
}
