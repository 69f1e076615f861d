// swift-tools-version:6.1
import PackageDescription

/// One set of Swift settings for every target: Swift 6 mode, explicit existentials,
/// and imports that are visible only where a file asks for them.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "cofre",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "cofre", targets: ["cofre"]),
        .executable(name: "cofre-bench", targets: ["cofre-bench"]),
        // For the fuzz package (Fuzz/), which builds the domain core alone with sanitizers.
        .library(name: "CofreCore", targets: ["CofreCore"]),
        .library(name: "CofreAPI", targets: ["CofreAPI"]),
        // A typed Swift client of the HTTP API, for the services that integrate with the vault.
        .library(name: "CofreClient", targets: ["CofreClient"]),
        .library(name: "CofreCrypto", targets: ["CofreCrypto"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // The only door to the system OpenSSL. Nothing but CofreCrypto imports it.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "CofreCrypto",
            dependencies: ["COpenSSL"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CofreCore",
            dependencies: [
                "CofreCrypto",
                "CofreAPI",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CofreSQLite",
            dependencies: [
                "CofreCore",
                "CofreCrypto",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CofrePostgres",
            dependencies: [
                "CofreCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // The wire types of the HTTP API, Foundation only: shared by the server, clients and the fuzz targets.
        .target(
            name: "CofreAPI",
            swiftSettings: swiftSettings
        ),
        // The typed client (AsyncHTTPClient): used by the DPO's and auditor's commands and by services.
        .target(
            name: "CofreClient",
            dependencies: [
                "CofreAPI",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CofreHTTP",
            dependencies: [
                "CofreCore",
                "CofreCrypto",
                "CofreAPI",
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                // Outgoing notifications to recipients' webhooks.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // docs/openapi.yaml (linked here), compiled into the binary and served at /v1/openapi.json.
            // The console's stylesheet and script, served from the binary (no CDN, no network at runtime).
            resources: [.embedInCode("openapi.yaml"), .embedInCode("Console/console.css"), .embedInCode("Console/console.js")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CofreCLI",
            dependencies: [
                "CofreCore",
                "CofreCrypto",
                "CofreSQLite",
                "CofrePostgres",
                "CofreHTTP",
                "CofreClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "cofre",
            dependencies: ["CofreCLI"],
            swiftSettings: swiftSettings
        ),
        // Performance figures people can compare: `swift run -c release cofre-bench`.
        .executableTarget(
            name: "cofre-bench",
            dependencies: [
                "CofreCore", "CofreCrypto", "CofreSQLite", "CofrePostgres", "CofreHTTP", "CofreAPI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        // The reliability suite's SQLite VFS (tests only): a disk image of synced writes for power-cut
        // simulation, and injected disk-full and I/O errors.
        .target(
            name: "CFaultVFS",
            path: "Tests/CFaultVFS",
            linkerSettings: [.linkedLibrary("sqlite3")]
        ),
        // Shared fixtures for the test targets: a vault on temporary files, log capture.
        .target(
            name: "CofreTestSupport",
            dependencies: [
                "CofreCore", "CofreCrypto", "CofreSQLite", "CofrePostgres", "CFaultVFS",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Tests/CofreTestSupport",
            swiftSettings: swiftSettings
        ),
        // The webhook receiver that notification tests start (a real HTTP server on a loopback port).
        .target(
            name: "CofreTestReceiver",
            dependencies: [
                "CofreTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/CofreTestReceiver",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CofreCryptoTests",
            dependencies: ["CofreCrypto"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CofreCoreTests",
            dependencies: ["CofreCore", "CofreCrypto", "CofreSQLite", "CofreTestSupport",
                           .product(name: "Logging", package: "swift-log"), .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CofreHTTPTests",
            dependencies: [
                "CofreHTTP", "CofreAPI", "CofreClient", "CofreCore", "CofreCrypto", "CofreSQLite", "CofreTestSupport", "CofreTestReceiver",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CofreCLITests",
            dependencies: ["CofreAPI", "CofreTestSupport", "CofreTestReceiver", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings
        ),
    ]
)
