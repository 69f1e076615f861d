import CofreCore
import CofreSQLite
import Foundation
import Logging

/// Opens the policy, key ring, key store and data store, in that order, and returns the vault.
enum Bootstrap {
    static func sqlitePath(_ url: String, option: String) throws -> String {
        if url.hasPrefix("sqlite:") {
            let path = String(url.dropFirst("sqlite:".count))
            guard !path.isEmpty else { throw CLIError("\(option): 'sqlite:' needs a path, e.g. sqlite:./data/cofre.sqlite") }
            return path
        }
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            throw CLIError("\(option): PostgreSQL is not supported by this version yet; use sqlite:PATH")
        }
        throw CLIError("\(option): expected sqlite:PATH")
    }

    static func openVault(_ r: RuntimeOptions.Resolved, logger: Logger) async throws -> Vault {
        let policy = try PolicyLoader.load(file: r.policy)
        let source: KeyRingSource
        if let value = r.kekEnvironment {
            source = .environment(value)
        } else if let file = r.kekFile {
            source = .file(file)
        } else {
            source = .directory(r.keys)
        }
        let ring = try KeyRingProvider(source: source, allowCreate: !r.production, logger: logger)
        let keyStorePath = try sqlitePath(r.keyStore, option: "--key-store")
        let dataPath = try sqlitePath(r.database, option: "--database")
        guard (keyStorePath as NSString).standardizingPath != (dataPath as NSString).standardizingPath else {
            throw CLIError("--key-store and --database must be different files: erasure relies on keys living apart from data")
        }
        let keyStore = try SQLiteKeyStore(path: keyStorePath)
        return try await Vault.open(policy: policy, keyRing: ring, keyStore: keyStore, logger: logger) { chain in
            try SQLiteVaultStore(path: dataPath, chain: chain)
        }
    }
}
