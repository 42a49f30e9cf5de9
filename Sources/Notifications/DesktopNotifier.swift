import CPosix
import CSystemd
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// One notification for the desktop (the freedesktop Notifications interface).
public struct DesktopNotification: Sendable, Equatable {
    public enum Urgency: UInt8, Sendable {
        case low = 0
        case normal = 1
        case critical = 2
    }
    public var summary: String
    public var body: String
    public var urgency: Urgency
    /// A freedesktop icon name ("drive-removable-media", "dialog-error"), or "".
    public var icon: String

    public init(summary: String, body: String, urgency: Urgency = .normal, icon: String = "") {
        self.summary = summary
        self.body = body
        self.urgency = urgency
        self.icon = icon
    }
}

/// Shows notifications through `org.freedesktop.Notifications.Notify` on a session D-Bus, with
/// sd-bus (libsystemd). Every wait is bounded: a bus that is absent, does not answer or has no
/// notification server costs at most `timeout` seconds and gives one line saying why.
public enum DesktopNotifier {
    public static let appName = "plugsync"
    /// The most one notification may take: connecting, authenticating and the call.
    public static let timeout = 2.0

    /// Why notifications cannot be sent at all (libsystemd cannot be loaded), or nil. Loads
    /// libsystemd at the first call.
    public static var unavailable: String? { csd_load() == 0 ? nil : String(cString: csd_load_error()) }

    /// The session bus of this process: `DBUS_SESSION_BUS_ADDRESS`, else /run/user/UID/bus.
    public static var sessionBusAddress: String {
        if let address = Posix.environment("DBUS_SESSION_BUS_ADDRESS"), !address.isEmpty { return address }
        return "unix:path=/run/user/\(getuid())/bus"
    }

    /// Shows `notification` on this process's session bus; nil when the server took it, else
    /// why not (one line).
    public static func send(_ notification: DesktopNotification, timeout: Double = timeout) -> String? {
        deliver(notification, address: sessionBusAddress, deadline: Condition.now() + timeout)
    }

    /// Shows `notification` on the session bus of user `uid` (/run/user/UID/bus), connected as
    /// that user: the bus admits its owner only. For another user than this process's, this
    /// needs root; the user's IDs are taken by one thread of its own for the connection, never
    /// by the process.
    public static func send(_ notification: DesktopNotification, toUser uid: uid_t, timeout: Double = timeout)
        -> String?
    {
        if let unavailable { return unavailable }  // loaded with root's IDs, before they change
        let address = "unix:path=/run/user/\(uid)/bus"
        let deadline = Condition.now() + timeout
        if uid == geteuid() { return deliver(notification, address: address, deadline: deadline) }
        guard let gid = primaryGroup(of: uid) else { return "user \(uid) is not known to the system" }
        let result = Background<String?> {
            guard cposix_thread_become(uid, gid) == 0 else {
                return "cannot act as user \(uid): \(String(cString: strerror(errno)))"
            }
            let problem = deliver(notification, address: address, deadline: deadline)
            if cposix_thread_restore() != 0 {
                // The thread ends here either way; its IDs go with it.
                return problem ?? "cannot return to root's IDs: \(String(cString: strerror(errno)))"
            }
            return problem
        }
        return result.value
    }

    /// The users with an active graphical session (logind's sessions of type x11, wayland or
    /// mir), each once, in logind's order.
    public static func graphicalSessionUsers() -> [uid_t] {
        guard unavailable == nil else { return [] }
        var sessions: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        let count = csd_get_sessions(&sessions)
        guard count > 0, let sessions else { return [] }
        defer {
            for index in 0..<Int(count) { free(sessions[index]) }
            free(sessions)
        }
        var users: [uid_t] = []
        for index in 0..<Int(count) {
            guard let session = sessions[index], csd_session_is_active(session) > 0 else { continue }
            var type: UnsafeMutablePointer<CChar>?
            guard csd_session_get_type(session, &type) >= 0, let type else { continue }
            let kind = String(cString: type)
            free(type)
            var uid = uid_t()
            guard ["x11", "wayland", "mir"].contains(kind), csd_session_get_uid(session, &uid) >= 0,
                !users.contains(uid)
            else { continue }
            users.append(uid)
        }
        return users
    }

    // MARK: sd-bus

    private static func primaryGroup(of uid: uid_t) -> gid_t? {
        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &found) == 0, found != nil else { return nil }
        return entry.pw_gid
    }

    private static func text(_ code: Int32) -> String { String(cString: strerror(-code)) }

    /// Connects to `address`, waits for the bus's greeting and calls Notify, all before `deadline`.
    static func deliver(_ notification: DesktopNotification, address: String, deadline: Double) -> String? {
        if let unavailable { return unavailable }
        var made: OpaquePointer?
        guard csd_bus_new(&made) >= 0, let bus = made else { return "cannot create a D-Bus connection" }
        // Closed without a flush: a flush waits for a bus that may never answer.
        defer { csd_bus_close_unref(bus) }
        var code = csd_bus_set_address(bus, address)
        if code >= 0 { code = csd_bus_set_bus_client(bus, 1) }
        if code >= 0 { code = csd_bus_start(bus) }
        if code < 0 { return "no session bus at \(address): \(text(code))" }
        // Authentication and Hello, within the deadline (sd-bus would wait its own 90 s).
        while true {
            code = csd_bus_is_ready(bus)
            if code > 0 { break }
            if code < 0 || csd_bus_is_open(bus) <= 0 {
                return "the session bus at \(address) closed the connection" + (code < 0 ? ": \(text(code))" : "")
            }
            let left = deadline - Condition.now()
            if left <= 0 { return "the session bus at \(address) did not answer in time" }
            code = csd_bus_process(bus, nil)
            if code < 0 { return "the session bus at \(address) refused the connection: \(text(code))" }
            if code > 0 { continue }
            code = csd_bus_wait(bus, UInt64(left * 1e6))
            if code < 0 { return "the session bus at \(address) failed: \(text(code))" }
        }
        var made2: OpaquePointer?
        code = csd_bus_message_new_method_call(
            bus, &made2, "org.freedesktop.Notifications", "/org/freedesktop/Notifications",
            "org.freedesktop.Notifications", "Notify")
        guard code >= 0, let message = made2 else { return "cannot make the Notify call: \(text(code))" }
        defer { csd_bus_message_unref(message) }
        code = append(notification, to: message)
        if code < 0 { return "cannot make the Notify call: \(text(code))" }
        let left = deadline - Condition.now()
        if left <= 0 { return "the session bus at \(address) did not answer in time" }
        var error = sd_bus_error()
        defer { csd_bus_error_free(&error) }
        var reply: OpaquePointer?
        code = csd_bus_call(bus, message, UInt64(left * 1e6), &error, &reply)
        if let reply { csd_bus_message_unref(reply) }
        guard code >= 0 else {
            if let text = error.message { return "Notify failed: " + String(cString: text) }
            if let name = error.name { return "Notify failed: " + String(cString: name) }
            return "Notify failed: \(text(code))"
        }
        return nil
    }

    /// Notify's arguments (susssasa{sv}i): app name, replaces id, icon, summary, body, actions,
    /// hints (urgency), expiry (-1: the server's default).
    private static func append(_ notification: DesktopNotification, to message: OpaquePointer) -> Int32 {
        func type(_ character: Unicode.Scalar) -> CChar { CChar(UInt8(ascii: character)) }
        func string(_ value: String) -> Int32 {
            value.withCString { csd_bus_message_append_basic(message, type("s"), $0) }
        }
        var steps: [() -> Int32] = []
        steps.append { string(appName) }
        steps.append {
            var replaces: UInt32 = 0
            return csd_bus_message_append_basic(message, type("u"), &replaces)
        }
        steps.append { string(notification.icon) }
        steps.append { string(notification.summary) }
        steps.append { string(notification.body) }
        steps.append { csd_bus_message_open_container(message, type("a"), "s") }
        steps.append { csd_bus_message_close_container(message) }
        steps.append { csd_bus_message_open_container(message, type("a"), "{sv}") }
        steps.append { csd_bus_message_open_container(message, type("e"), "sv") }
        steps.append { string("urgency") }
        steps.append { csd_bus_message_open_container(message, type("v"), "y") }
        steps.append {
            var urgency = notification.urgency.rawValue
            return csd_bus_message_append_basic(message, type("y"), &urgency)
        }
        steps.append { csd_bus_message_close_container(message) }
        steps.append { csd_bus_message_close_container(message) }
        steps.append { csd_bus_message_close_container(message) }
        steps.append {
            var expiry: Int32 = -1
            return csd_bus_message_append_basic(message, type("i"), &expiry)
        }
        for step in steps {
            let code = step()
            if code < 0 { return code }
        }
        return 0
    }
}
