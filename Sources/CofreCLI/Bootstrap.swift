import CofreCore
import CofrePostgres
import CofreSQLite
import Foundation
import Logging
import PostgresNIO

/// Opens the policy, key ring, key store and data store, in that order, and runs `body` with the
/// vault. PostgreSQL clients run in a task group around `body` and stop when it returns.
enum Bootstrap {
    enum Store {
        case sqlite(String)
        case postgres(String)
    }

    static func store(_ url: String, option: String) throws -> Store {
        if url.hasPrefix("sqlite:") {
            let path = String(url.dropFirst("sqlite:".count))
            guard !path.isEmpty else { throw CLIError("\(option): 'sqlite:' needs a path, e.g. sqlite:./data/cofre.sqlite") }
            return .sqlite(path)
        }
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") { return .postgres(url) }
        throw CLIError("\(option): expected sqlite:PATH or postgres://user:password@host:port/database")
    }

    /// The data store and the key store must be backed up apart: never the same file or database.
    static func checkSeparate(_ data: Store, _ keys: Store) throws {
        switch (data, keys) {
        case (.sqlite(let a), .sqlite(let b)) where (a as NSString).standardizingPath == (b as NSString).standardizingPath:
            throw CLIError("--key-store and --database must be different files: erasure relies on keys living apart from data")
        case (.postgres(let a), .postgres(let b)):
            let ca = URLComponents(string: a), cb = URLComponents(string: b)
            if ca?.host == cb?.host, ca?.port == cb?.port, ca?.path == cb?.path {
                throw CLIError("--key-store and --database must be different PostgreSQL databases (a schema inside the data database is not enough)")
            }
        default:
            break
        }
    }

    /// The key store must live in another PostgreSQL cluster than the data store (CONTRACT §7 v2): one
    /// cluster's backups, point-in-time recovery and WAL archives would hold keys and data together, and
    /// an erasure could be undone from them. Clusters are compared by `system_identifier`.
    static func checkClusters(data: PostgresClient, keys: PostgresClient, allowShared: Bool, logger: Logger) async throws {
        let silent = Logger(label: "cofre.postgres") { _ in SwiftLogNoOpLogHandler() }
        // A cluster that does not fsync loses acknowledged commits at a power cut, whatever the vault does.
        for (name, c) in [("--database", data), ("--key-store", keys)] {
            for try await setting in try await c.query("SELECT current_setting('fsync')", logger: silent).decode(String.self) where setting != "on" {
                logger.warning("the PostgreSQL cluster of \(name) runs with fsync=\(setting): acknowledged writes can be lost at a crash or power cut")
            }
        }
        func identity(_ c: PostgresClient) async throws -> (cluster: Int64?, database: String?) {
            var out: (Int64?, String?) = (nil, nil)
            for try await row in try await c.query("SELECT (SELECT system_identifier FROM pg_control_system()), current_database()", logger: silent)
                .decode((Int64?, String?).self) { out = row }
            return out
        }
        func databases(_ c: PostgresClient) async throws -> String? {
            var name: String?
            for try await n in try await c.query("SELECT current_database()", logger: silent).decode(String.self) { name = n }
            return name
        }
        let shared = "the key store shares the data store's PostgreSQL cluster (--allow-shared-cluster): this cluster's backups and WAL archives hold keys and data together, and an erasure can be undone from them"
        let a: (cluster: Int64?, database: String?), b: (cluster: Int64?, database: String?)
        do {
            a = try await identity(data)
            b = try await identity(keys)
        } catch {
            guard allowShared else {
                throw CLIError("cannot compare the PostgreSQL clusters of --database and --key-store (pg_control_system()); "
                    + "grant the vault's role EXECUTE on it, or pass --allow-shared-cluster if they are knowingly one cluster")
            }
            // Still never the same database, even when the clusters cannot be told apart.
            if let x = try? await databases(data), let y = try? await databases(keys), x == y {
                throw CLIError("--key-store and --database are the same PostgreSQL database: keys must live apart from data")
            }
            logger.warning("cannot compare the PostgreSQL clusters of --database and --key-store; \(shared)")
            return
        }
        guard a.cluster == b.cluster else { return }
        if a.database == b.database {
            throw CLIError("--key-store and --database are the same PostgreSQL database: keys must live apart from data (--allow-shared-cluster does not allow this)")
        }
        guard allowShared else {
            throw CLIError("--key-store and --database are in the same PostgreSQL cluster: its backups, PITR and WAL archives would hold "
                + "keys and data together, so an erasure could be undone from them. Put the key store in another cluster, "
                + "or pass --allow-shared-cluster (COFRE_ALLOW_SHARED_CLUSTER=1) to accept that risk")
        }
        logger.warning("\(shared)")
    }

    /// Opens the vault for `body`. Only `serve` (with `serve: true`) may create a development ring, and
    /// only outside production for a vault whose data store does not exist yet; with
    /// `COFRE_ENV=production` a ring marked as a development ring is refused. A refused open (a binding
    /// that does not hold) removes whatever this run created, so it changes nothing.
    /// `checkPolicy` runs on the loaded policy before any store or ring is touched (serve: every
    /// webhook's secret must be in the environment).
    static func withVault<T: Sendable>(_ r: RuntimeOptions.Resolved, logger: Logger, serve: Bool = false,
                                       checkPolicy: (Policy) throws -> Void = { _ in },
                                       _ body: @escaping @Sendable (Vault) async throws -> T) async throws -> T {
        let policy = try PolicyLoader.load(file: r.policy)
        try checkPolicy(policy)
        let dataStore = try store(r.database, option: "--database")
        let keyStoreKind = try store(r.keyStore, option: "--key-store")
        try checkSeparate(dataStore, keyStoreKind)
        // Files this run would create, to remove if the open is refused.
        var created: [String] = []
        for case .sqlite(let path) in [dataStore, keyStoreKind] where !FileManager.default.fileExists(atPath: path) {
            created += ["", "-wal", "-shm"].map { path + $0 }
        }
        let newVault: Bool = if case .sqlite(let path) = dataStore { !FileManager.default.fileExists(atPath: path) } else { true }

        let ring: KeyRingProvider
        if let value = r.kekEnvironment {
            ring = try KeyRingProvider(environmentValue: value, logger: logger)
            // Parsed once: the ring is not kept as text, nor left for child processes.
            unsetenv("COFRE_KEK")
        } else if let file = r.kekFile {
            ring = try KeyRingProvider(source: .file(file), allowCreate: false, refuseDevelopment: r.production, logger: logger)
        } else {
            ring = try KeyRingProvider(source: .directory(r.keys), allowCreate: serve && !r.production && newVault,
                                       refuseDevelopment: r.production, logger: logger)
        }
        func undo() {
            if ring.createdDevelopmentRing { KeyRingDirectory.removeCreated(directory: r.keys) }
            for path in created { unlink(path) }
        }

        var clients: [PostgresClient] = []
        func client(_ url: String) throws -> PostgresClient {
            let c: PostgresClient
            do {
                c = PostgresClient(configuration: try PostgresDatabase.configuration(url), backgroundLogger: Logger(label: "cofre.postgres") { _ in SwiftLogNoOpLogHandler() })
            } catch {
                throw CLIError("PostgreSQL URL: \(error)")
            }
            clients.append(c)
            return c
        }
        let keyStore: any DataKeyStore
        let dataClient: PostgresClient?
        do {
            keyStore = switch keyStoreKind {
            case .sqlite(let path): try SQLiteKeyStore(path: path)
            case .postgres(let url): PostgresKeyStore(client: try client(url))
            }
            dataClient = if case .postgres(let url) = dataStore { try client(url) } else { nil }
        } catch {
            undo()
            throw error
        }
        let pools = clients
        // The key store's client was made first (above).
        let keyClient: PostgresClient? = if case .postgres = keyStoreKind { clients.first } else { nil }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for c in pools { group.addTask { await c.run() } }
            let vault: Vault
            do {
                if let dataClient, let keyClient {
                    try await checkClusters(data: dataClient, keys: keyClient, allowShared: r.allowSharedCluster, logger: logger)
                }
                vault = try await Vault.open(policy: policy, keyRing: ring, keyStore: keyStore, logger: logger,
                                             developmentRing: ring.createdDevelopmentRing) { chain in
                    switch dataStore {
                    case .sqlite(let path): try SQLiteVaultStore(path: path, chain: chain)
                    case .postgres: PostgresVaultStore(client: dataClient!, chain: chain)
                    }
                }
            } catch {
                group.cancelAll()
                undo()
                throw error
            }
            if r.production, vault.binding.developmentRing {
                group.cancelAll()
                throw CLIError("this vault was created with a development key ring, whose key has lived on a developer's disk; "
                    + "COFRE_ENV=production refuses it. Start production with a new data store and key store, and the KEK from the "
                    + "platform's secret store (COFRE_KEK or COFRE_KEK_FILE)")
            }
            do {
                let result = try await body(vault)
                group.cancelAll()
                return result
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }
}
