public import CofreCore
import CofrePostgres
import CofreSQLite
public import Foundation
import GRDB
import Logging
import PostgresNIO

/// The repository root, found from this file's path, so tests read the real policy example.
public let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

public let examplePolicyPath = repositoryRoot + "/deploy/policy.example.yaml"

/// A fresh private temporary directory.
public func makeTempDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("cofre-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    return path
}

/// A clock tests can move.
public final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date
    public init(_ start: Date = Date(timeIntervalSince1970: 1_790_000_000)) { current = start }
    public var now: Date { lock.withLock { current } }
    public func advance(days: Double) { lock.withLock { current += days * 86400 } }
    public func advance(seconds: Double) { lock.withLock { current += seconds } }
}

/// Which storage engine the tests run on. `COFRE_TEST_POSTGRES_URL` (an admin connection to a
/// throwaway cluster, as `.ci/run` starts) switches every storage and HTTP test to PostgreSQL.
public enum TestEngine: Sendable, Equatable {
    case sqlite
    case postgres(admin: String)

    public static let current: TestEngine = {
        if let url = ProcessInfo.processInfo.environment["COFRE_TEST_POSTGRES_URL"], !url.isEmpty { return .postgres(admin: url) }
        return .sqlite
    }()

    public var isSQLite: Bool { self == .sqlite }
}

/// Keeps PostgreSQL clients running for as long as a test vault is alive.
final class ClientRunner: @unchecked Sendable {
    let clients: [PostgresClient]
    private let task: Task<Void, Never>
    init(_ clients: [PostgresClient]) {
        self.clients = clients
        task = Task {
            await withDiscardingTaskGroup { group in
                for c in clients { group.addTask { await c.run() } }
            }
        }
    }
    deinit { task.cancel() }
}

/// A real vault over fresh stores — SQLite files in a temporary directory, or two new PostgreSQL
/// databases (data and keys) — with the example policy.
public struct TestVault: Sendable {
    public let directory: String
    public let vault: Vault
    public let logs: LogCapture
    public let clock: TestClock
    public let engine: TestEngine
    /// For PostgreSQL: the data and key databases' URLs.
    public let databases: (data: String, keys: String)?
    let runner: ClientRunner?

    public var dataPath: String { directory + "/data/cofre.sqlite" }
    public var keysPath: String { directory + "/keys" }
    public var keyStorePath: String { keysPath + "/datakeys.sqlite" }

    public static func make(policy: Policy? = nil, directory: String? = nil, clock: TestClock = TestClock(),
                            engine: TestEngine = .current, databases: (data: String, keys: String)? = nil,
                            wrapStore: @Sendable (any VaultStore) -> any VaultStore = { $0 },
                            wrapKeyStore: @Sendable (any DataKeyStore) -> any DataKeyStore = { $0 }) async throws -> TestVault {
        let dir = try directory ?? makeTempDirectory()
        let logs = LogCapture()
        let logger = logs.logger
        let policy = try policy ?? PolicyLoader.load(file: examplePolicyPath)
        let ring = try KeyRingProvider(source: .directory(dir + "/keys"), allowCreate: true, logger: logger)
        switch engine {
        case .sqlite:
            let keyStore = try SQLiteKeyStore(path: dir + "/keys/datakeys.sqlite")
            let vault = try await Vault.open(policy: policy, keyRing: ring, keyStore: wrapKeyStore(keyStore), logger: logger, clock: { clock.now }) { chain in
                wrapStore(try SQLiteVaultStore(path: dir + "/data/cofre.sqlite", chain: chain))
            }
            return TestVault(directory: dir, vault: vault, logs: logs, clock: clock, engine: engine, databases: nil, runner: nil)
        case .postgres(let admin):
            let dbs: (data: String, keys: String)
            if let databases { dbs = databases } else { dbs = try await createDatabases(admin: admin) }
            let silent = Logger(label: "pg") { _ in SwiftLogNoOpLogHandler() }
            var dataConfig = try PostgresDatabase.configuration(dbs.data)
            dataConfig.options.maximumConnections = 4
            var keyConfig = try PostgresDatabase.configuration(dbs.keys)
            keyConfig.options.maximumConnections = 2
            let dataClient = PostgresClient(configuration: dataConfig, backgroundLogger: silent)
            let keyClient = PostgresClient(configuration: keyConfig, backgroundLogger: silent)
            let runner = ClientRunner([dataClient, keyClient])
            let vault = try await Vault.open(policy: policy, keyRing: ring, keyStore: wrapKeyStore(PostgresKeyStore(client: keyClient)), logger: logger,
                                             clock: { clock.now }) { chain in
                wrapStore(PostgresVaultStore(client: dataClient, chain: chain))
            }
            return TestVault(directory: dir, vault: vault, logs: logs, clock: clock, engine: engine, databases: dbs, runner: runner)
        }
    }

    /// Two fresh databases on the admin's cluster, named for this test.
    public static func createDatabases(admin: String) async throws -> (data: String, keys: String) {
        let suffix = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        let names = ("cofre_data_\(suffix)", "cofre_keys_\(suffix)")
        try await adminExecute(admin, ["CREATE DATABASE \(names.0)", "CREATE DATABASE \(names.1)"])
        func url(_ db: String) -> String {
            var c = URLComponents(string: admin)!
            c.path = "/" + db
            return c.string!
        }
        return (url(names.0), url(names.1))
    }

    public static func adminExecute(_ url: String, _ statements: [String]) async throws {
        let silent = Logger(label: "pg") { _ in SwiftLogNoOpLogHandler() }
        var config = try PostgresDatabase.configuration(url)
        config.options.maximumConnections = 1
        let client = PostgresClient(configuration: config, backgroundLogger: silent)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            for sql in statements { try await client.query(PostgresQuery(unsafeSQL: sql), logger: silent) }
            group.cancelAll()
        }
    }

    /// A setting as a connection configured the vault's way (`PostgresDatabase.configuration`) sees it.
    public static func sessionSetting(_ url: String, _ name: String) async throws -> String? {
        let silent = Logger(label: "pg") { _ in SwiftLogNoOpLogHandler() }
        var config = try PostgresDatabase.configuration(url)
        config.options.maximumConnections = 1
        let client = PostgresClient(configuration: config, backgroundLogger: silent)
        return try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask { await client.run(); return nil }
            var value: String?
            for try await v in try await client.query("SELECT current_setting(\(name))", logger: silent).decode(String.self) { value = v }
            group.cancelAll()
            return value
        }
    }

    /// Opens `data`'s data store with `keys`' key store and key ring (another vault's, or a fresh one),
    /// as an operator who points the options at the wrong place would. Throws what `Vault.open` throws.
    public static func openMismatched(data: TestVault, keys: TestVault, freshKeyStore: Bool = false) async throws -> Vault {
        let silent = Logger(label: "pg") { _ in SwiftLogNoOpLogHandler() }
        let ring = try KeyRingProvider(source: .directory(keys.keysPath), allowCreate: false, logger: keys.logs.logger)
        switch data.engine {
        case .sqlite:
            let keyStore = try SQLiteKeyStore(path: freshKeyStore ? keys.directory + "/fresh-\(UUID().uuidString).sqlite" : keys.keyStorePath)
            return try await Vault.open(policy: data.vault.policy, keyRing: ring, keyStore: keyStore, logger: data.logs.logger) { chain in
                try SQLiteVaultStore(path: data.dataPath, chain: chain)
            }
        case .postgres(let admin):
            let keysURL = freshKeyStore ? try await createDatabases(admin: admin).keys : keys.databases!.keys
            let dataClient = PostgresClient(configuration: try PostgresDatabase.configuration(data.databases!.data), backgroundLogger: silent)
            let keyClient = PostgresClient(configuration: try PostgresDatabase.configuration(keysURL), backgroundLogger: silent)
            let runner = ClientRunner([dataClient, keyClient])
            defer { withExtendedLifetime(runner) {} }
            return try await Vault.open(policy: data.vault.policy, keyRing: ring, keyStore: PostgresKeyStore(client: keyClient),
                                        logger: data.logs.logger) { chain in
                PostgresVaultStore(client: dataClient, chain: chain)
            }
        }
    }

    /// Opens the same stores again, as a restarted (or second) server would.
    public func reopen() async throws -> TestVault {
        try await Self.make(policy: vault.policy, directory: directory, clock: clock, engine: engine, databases: databases)
    }

    /// Issues a key for `service` and resolves it, as a caller would.
    public func principal(_ service: String) async throws -> (key: String, principal: Principal) {
        let key = try await vault.issueServiceKey(service: service)
        return (key, try await vault.authenticate(bearer: key))
    }

    /// Runs SQL on the data store behind the vault's back, as an attacker with write access would.
    public func tamper(_ sql: String) async throws {
        switch engine {
        case .sqlite:
            let db = try DatabaseQueue(path: dataPath)
            try await db.write { try $0.execute(sql: sql) }
            try db.close()
        case .postgres:
            // One statement per query on PostgreSQL's extended protocol.
            let statements = sql.components(separatedBy: ";\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                .map { $0.hasSuffix(";") ? String($0.dropLast()) : $0 }.filter { !$0.isEmpty }
            try await Self.adminExecute(databases!.data, statements)
        }
    }

    /// Runs SQL on the key store behind the vault's back.
    public func tamperKeyStore(_ sql: String) async throws {
        switch engine {
        case .sqlite:
            let db = try DatabaseQueue(path: keyStorePath)
            try await db.write { try $0.execute(sql: sql) }
            try db.close()
        case .postgres:
            try await Self.adminExecute(databases!.keys, [sql])
        }
    }

    /// Every byte the data and key stores hold (SQLite files with their WAL; PostgreSQL rows as text
    /// and the raw bytes of their binary columns), to search for leaked values.
    public func storeBytes() async throws -> [UInt8] {
        switch engine {
        case .sqlite:
            var out: [UInt8] = []
            for base in [dataPath, keyStorePath] {
                for suffix in ["", "-wal", "-shm"] {
                    if let d = FileManager.default.contents(atPath: base + suffix) { out += d }
                }
            }
            return out
        case .postgres:
            let silent = Logger(label: "pg") { _ in SwiftLogNoOpLogHandler() }
            var out: [UInt8] = []
            for (url, tables, binary) in [
                (databases!.data, ["subjects", "fields", "tokens", "blind_index", "credentials", "audit_events", "consent_events", "consent_state", "erasures", "key_shred_queue"],
                 ["fields.ciphertext", "consent_events.evidence"]),
                (databases!.keys, ["data_keys"], ["data_keys.wrapped"]),
            ] {
                var config = try PostgresDatabase.configuration(url)
                config.options.maximumConnections = 1
                let client = PostgresClient(configuration: config, backgroundLogger: silent)
                out += try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { await client.run() }
                    var bytes: [UInt8] = []
                    for t in tables {
                        for try await text in try await client.query(PostgresQuery(unsafeSQL: "SELECT t::text FROM \(t) t"), logger: silent).decode(String.self) {
                            bytes += Array(text.utf8)
                        }
                    }
                    for column in binary {
                        let parts = column.split(separator: ".")
                        for try await data in try await client.query(PostgresQuery(unsafeSQL: "SELECT \(parts[1]) FROM \(parts[0]) WHERE \(parts[1]) IS NOT NULL"),
                                                                     logger: silent).decode(Data.self) {
                            bytes += Array(data)
                        }
                    }
                    group.cancelAll()
                    return bytes
                }
            }
            return out
        }
    }
}

extension Array where Element == UInt8 {
    /// Whether `needle` occurs anywhere in these bytes.
    public func contains(bytes needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        for i in 0...(count - needle.count) where self[i] == needle[0] {
            if Array(self[i..<i + needle.count]) == needle { return true }
        }
        return false
    }
}
