import CofreCore
import Foundation
import GRDB

/// A copy of the data store, as a nightly backup would take it.
public struct DataStoreBackup: Sendable {
    let path: String
}

extension TestVault {
    /// SQLite: `VACUUM INTO` (consistent while the vault runs). PostgreSQL: `pg_dump -Fc`.
    public func backupDataStore() async throws -> DataStoreBackup {
        let path = try makeTempDirectory() + "/backup"
        switch engine {
        case .sqlite:
            let db = try DatabaseQueue(path: dataPath)
            try await db.writeWithoutTransaction { try $0.execute(sql: "VACUUM INTO ?", arguments: [path]) }
            try db.close()
        case .postgres:
            try run(Self.postgresTool("pg_dump"), ["-Fc", "-f", path, "--dbname=\(Self.libpqURL(databases!.data))"])
        }
        return DataStoreBackup(path: path)
    }

    /// A vault over the backup's data store and the *current* key store and key ring, as an operator
    /// restoring the data after a disaster would run it.
    public func restored(from backup: DataStoreBackup) async throws -> TestVault {
        switch engine {
        case .sqlite:
            let dir = try makeTempDirectory()
            try FileManager.default.createDirectory(atPath: dir + "/data", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: backup.path, toPath: dir + "/data/cofre.sqlite")
            try FileManager.default.copyItem(atPath: keysPath, toPath: dir + "/keys")
            return try await TestVault.make(policy: vault.policy, directory: dir, clock: clock, engine: engine)
        case .postgres(let admin):
            let fresh = try await TestVault.createDatabases(admin: admin)
            try run(Self.postgresTool("pg_restore"), ["--no-owner", "--dbname=\(Self.libpqURL(fresh.data))", backup.path])
            return try await TestVault.make(policy: vault.policy, directory: directory, clock: clock, engine: engine,
                                            databases: (data: fresh.data, keys: databases!.keys))
        }
    }

    /// libpq does not know postgres-nio's `sslmode` spelling only: it does, but drop the query to be safe.
    static func libpqURL(_ url: String) -> String {
        var c = URLComponents(string: url)!
        c.query = nil
        return c.string!
    }

    static func postgresTool(_ name: String) throws -> String {
        let dirs = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for d in dirs.sorted(by: >) where FileManager.default.isExecutableFile(atPath: "/usr/lib/postgresql/\(d)/bin/\(name)") {
            return "/usr/lib/postgresql/\(d)/bin/\(name)"
        }
        return "/usr/bin/\(name)"
    }

    func run(_ tool: String, _ args: [String]) throws {
        let p = try ChildProcess(tool, args, stderr: .pipe)
        let message = String(decoding: try p.communicate().stderr, as: UTF8.self)
        guard p.terminationStatus == 0 else { throw BackupError(description: "\(tool) failed: \(message)") }
    }
}

struct BackupError: Error, CustomStringConvertible {
    let description: String
}
