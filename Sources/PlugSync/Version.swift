/// The one place the version is written; packaging reads it from here.
public enum PlugSyncVersion {
    public static let current = "0.1.0"
}
