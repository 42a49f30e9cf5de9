// swift-tools-version:6.0
import PackageDescription

// Layers: each target depends only on the ones below it (docs/ARCHITECTURE.md).
//   plugsync (CLI) -> PlugSync -> backends -> SyncEngine -> SystemSupport;
//   the CLI imports PlugSync and SystemSupport only (PlugSync/EngineTypes.swift);
//   backends: LocalBackend (folders and drives), FTPBackend -> CurlFTP -> CTLS, SFTPBackend -> CSSH2;
//   PlugSync -> Devices -> CUdev, SystemSupport; PlugSync -> CCurl (pings), Prometheus (the metrics file);
//   PlugSync -> DesktopNotifications (Sources/Notifications) -> CSystemd, SystemSupport;
//   C shims: CCurl (libcurl), CSSH2 (libssh2), CTLS (libssl), CUdev (libudev), CSQLite, CYAML (libyaml), CSystemd (libsystemd, loaded with dlopen), CPosix
let package = Package(
    name: "plugsync",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "plugsync", targets: ["plugsync"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CUdev", path: "Sources/CUdev", pkgConfig: "libudev",
            providers: [.apt(["libudev-dev"])]),
        .systemLibrary(
            name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(
            name: "CYAML", path: "Sources/CYAML", pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]),
        // libsystemd's sd-bus and sd-login (headers from libsystemd-dev), for desktop
        // notifications: loaded with dlopen at the first notification (CSystemd.h says why).
        .target(name: "CSystemd", path: "Sources/CSystemd", linkerSettings: [.linkedLibrary("dl")]),
        .target(
            name: "DesktopNotifications", dependencies: ["CSystemd", "CPosix", "SystemSupport"],
            path: "Sources/Notifications"),
        .target(name: "Devices", dependencies: ["CUdev", "SystemSupport"], path: "Sources/Devices"),
        .target(name: "CPosix", path: "Sources/CPosix", cSettings: [.define("_GNU_SOURCE")]),
        // libcurl is loaded with dlopen at the first ping (CCurl.h says why).
        .target(
            name: "CCurl", path: "Sources/CCurl", cSettings: [.define("_GNU_SOURCE")],
            linkerSettings: [.linkedLibrary("dl")]),
        // libssh2 likewise, at the first SFTP connection (CSSH2.h; headers from libssh2-1-dev).
        .target(
            name: "CSSH2", path: "Sources/CSSH2", cSettings: [.define("_GNU_SOURCE")],
            linkerSettings: [.linkedLibrary("dl")]),
        // libssl likewise, at the first TLS connection of the FTP client (CTLS.h).
        .target(name: "CTLS", path: "Sources/CTLS", linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "SystemSupport", dependencies: ["CPosix"], path: "Sources/SystemSupport"),
        .target(name: "SyncEngine", dependencies: ["SystemSupport"], path: "Sources/SyncEngine"),
        // Backends: each one folder under Sources/Backends.
        .target(
            name: "LocalBackend", dependencies: ["SyncEngine", "SystemSupport", "CPosix"],
            path: "Sources/Backends/Local"),
        // The FTP client: its own sockets, TLS through CTLS; no curl.
        .target(name: "CurlFTP", dependencies: ["CTLS"], path: "Sources/Backends/FTP/Client"),
        .target(
            name: "FTPBackend", dependencies: ["SyncEngine", "SystemSupport", "CurlFTP"],
            path: "Sources/Backends/FTP/Endpoint"),
        .target(
            name: "SFTPBackend", dependencies: ["SyncEngine", "SystemSupport", "CSSH2"], path: "Sources/Backends/SFTP"),
        .target(
            name: "PlugSync",
            dependencies: [
                "SystemSupport", "SyncEngine", "LocalBackend", "FTPBackend", "CurlFTP", "SFTPBackend", "Devices",
                "CSQLite", "CYAML", "CCurl", "DesktopNotifications",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Sources/PlugSync"),
        .executableTarget(
            name: "plugsync",
            dependencies: ["PlugSync", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/plugsync",
            // Release, to keep a run's resident memory small (bench/README.md, "Peak memory"):
            // - lld packs the relative relocations (DT_RELR, glibc >= 2.36): ~0.9 MiB;
            // - with -static-stdlib, libstdc++ comes from its archive (packaging/link holds a link
            //   to it, found before the shared one) and no symbol is exported: ~1.5 MiB;
            // - the functions a run executes are placed together (packaging/link/plugsync.order,
            //   made by packaging/link/make-order): ~2 MiB.
            linkerSettings: [
                .unsafeFlags(
                    [
                        "-Xclang-linker", "-fuse-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                        "-Xlinker", "--no-export-dynamic", "-L", Context.packageDirectory + "/packaging/link",
                        "-Xlinker",
                        "--symbol-ordering-file=" + Context.packageDirectory + "/packaging/link/plugsync.order",
                        "-Xlinker", "--no-warn-symbol-ordering",
                    ],
                    .when(platforms: [.linux], configuration: .release))
            ]),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "CurlFTPTests", dependencies: ["CurlFTP", "TestSupport"]),
        .testTarget(
            name: "SyncEngineTests", dependencies: ["SyncEngine", "LocalBackend", "FTPBackend", "TestSupport"]),
        .testTarget(name: "DevicesTests", dependencies: ["Devices", "TestSupport"]),
        .testTarget(name: "PlugSyncTests", dependencies: ["PlugSync"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "PlugSync", "SyncEngine", "LocalBackend", "FTPBackend", "CurlFTP", "SFTPBackend", "TestSupport",
            ]),
    ],
    swiftLanguageModes: [.v5]
)
