public import CofreCore
public import Foundation
import GRDB

/// The data-key store on SQLite (`keys/datakeys.sqlite` by default), a file apart from the data store.
public final class SQLiteKeyStore: DataKeyStore {
    let pool: DatabasePool

    public init(path: String) throws {
        pool = try SQLiteDatabase.open(path: path, label: "cofre.keystore")
    }

    public func migrate() async throws {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-data-keys") { db in
            try db.execute(sql: """
                CREATE TABLE data_keys (
                    subject_id TEXT NOT NULL,
                    key_group TEXT NOT NULL,
                    generation INTEGER NOT NULL,
                    kek_version INTEGER NOT NULL,
                    wrapped BLOB NOT NULL,
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (subject_id, key_group, generation)
                );
                CREATE INDEX data_keys_kek ON data_keys(kek_version);
                """)
        }
        migrator.registerMigration("v2-usage-counter") { db in
            try db.execute(sql: "ALTER TABLE data_keys ADD COLUMN uses INTEGER NOT NULL DEFAULT 0")
        }
        migrator.registerMigration("v3-sweeper") { db in
            try db.execute(sql: """
                CREATE INDEX data_keys_created ON data_keys(created_at, subject_id, key_group, generation);
                CREATE TABLE sweep_state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
                """)
        }
        migrator.registerMigration("v4-identity") { db in
            try db.execute(sql: "CREATE TABLE identity (id INTEGER PRIMARY KEY CHECK (id = 1), store_id TEXT NOT NULL, bound_data_store TEXT)")
            try db.execute(sql: "INSERT INTO identity (id, store_id) VALUES (1, ?)", arguments: [try KeyStoreIdentity.newID()])
        }
        try migrator.migrate(pool)
    }

    public func insert(_ keys: [WrappedDataKey]) async throws {
        guard !keys.isEmpty else { return }
        try await pool.write { db in
            for k in keys {
                try db.execute(
                    sql: "INSERT INTO data_keys (subject_id, key_group, generation, kek_version, wrapped, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [k.id.subject, k.id.group, k.id.generation, Int64(k.kekVersion), Data(k.wrapped), SQLiteDatabase.millis(k.createdAt)])
            }
        }
    }

    public func fetch(_ ids: [DataKeyID]) async throws -> [DataKeyID: WrappedDataKey] {
        guard !ids.isEmpty else { return [:] }
        return try await pool.read { db in
            var out: [DataKeyID: WrappedDataKey] = [:]
            for id in ids {
                if let row = try Row.fetchOne(
                    db, sql: "SELECT kek_version, wrapped, created_at FROM data_keys WHERE subject_id = ? AND key_group = ? AND generation = ?",
                    arguments: [id.subject, id.group, id.generation]) {
                    let wrapped: Data = row["wrapped"]
                    let version: Int64 = row["kek_version"]
                    out[id] = WrappedDataKey(id: id, kekVersion: UInt32(version), wrapped: Array(wrapped),
                                             createdAt: SQLiteDatabase.date(row["created_at"] as Int64))
                }
            }
            return out
        }
    }

    public func destroy(_ ids: [DataKeyID]) async throws {
        guard !ids.isEmpty else { return }
        try await pool.write { db in
            for id in ids {
                try db.execute(sql: "DELETE FROM data_keys WHERE subject_id = ? AND key_group = ? AND generation = ?",
                               arguments: [id.subject, id.group, id.generation])
            }
        }
        try await compact()
    }

    public func compact() async throws {
        // Move deletions out of the WAL into the main file, whose freed pages secure_delete zeroes. A
        // checkpoint that cannot complete (readers in the way) leaves the old pages in the WAL: that is a
        // failure to report, and the caller keeps the keys queued so the sweeper destroys them again.
        let busy = try await pool.writeWithoutTransaction { db in
            try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)").map { ($0[0] as Int?) ?? 0 } ?? 0
        }
        guard busy == 0 else { throw StoreError(.unavailable) }
    }

    public func countByKEKVersion() async throws -> [UInt32: Int] {
        try await pool.read { db in
            var out: [UInt32: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT kek_version, COUNT(*) AS n FROM data_keys GROUP BY kek_version") {
                out[UInt32(row["kek_version"] as Int64)] = row["n"]
            }
            return out
        }
    }

    public func checkWritable() async throws {
        try await pool.write { db in
            try db.execute(sql: "INSERT INTO sweep_state (name, value) VALUES ('write_probe', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                           arguments: [String(SQLiteDatabase.millis(Date()))])
        }
    }

    public func checkHealth() async throws {
        _ = try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM data_keys WHERE subject_id = ?", arguments: [DataKeyID.systemSubject]) }
    }

    public func fetch(notWrappedBy version: UInt32, limit: Int) async throws -> [WrappedDataKey] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT subject_id, key_group, generation, kek_version, wrapped, created_at FROM data_keys
                WHERE kek_version != ? ORDER BY subject_id, key_group, generation LIMIT ?
                """, arguments: [Int64(version), limit]).map { row in
                let wrapped: Data = row["wrapped"]
                return WrappedDataKey(id: DataKeyID(subject: row["subject_id"], group: row["key_group"], generation: row["generation"]),
                                      kekVersion: UInt32(row["kek_version"] as Int64), wrapped: Array(wrapped),
                                      createdAt: SQLiteDatabase.date(row["created_at"] as Int64))
            }
        }
    }

    public func replace(_ updates: [(old: WrappedDataKey, new: WrappedDataKey)]) async throws -> Int {
        guard !updates.isEmpty else { return 0 }
        let rows = updates.map { ($0.old.id, Int64($0.old.kekVersion), Data($0.old.wrapped), Int64($0.new.kekVersion), Data($0.new.wrapped)) }
        return try await pool.write { db in
            var n = 0
            for (id, oldVersion, oldWrapped, newVersion, newWrapped) in rows {
                try db.execute(sql: """
                    UPDATE data_keys SET kek_version = ?, wrapped = ?
                    WHERE subject_id = ? AND key_group = ? AND generation = ? AND kek_version = ? AND wrapped = ?
                    """, arguments: [newVersion, newWrapped, id.subject, id.group, id.generation, oldVersion, oldWrapped])
                n += db.changesCount
            }
            return n
        }
    }

    public func reserveUses(_ id: DataKeyID, count: Int64, limit: Int64) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: """
                UPDATE data_keys SET uses = uses + ? WHERE subject_id = ? AND key_group = ? AND generation = ? AND uses + ? <= ?
                """, arguments: [count, id.subject, id.group, id.generation, count, limit])
            return db.changesCount == 1
        }
    }

    public func ids(subject: String) async throws -> [DataKeyID] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT key_group, generation FROM data_keys WHERE subject_id = ?", arguments: [subject]).map {
                DataKeyID(subject: subject, group: $0["key_group"], generation: $0["generation"])
            }
        }
    }

    public func scan(after cursor: KeyScanCursor?, createdThrough: Date, limit: Int) async throws -> [(id: DataKeyID, createdAt: Date)] {
        let c = cursor ?? KeyScanCursor(createdAtMillis: Int64.min, subject: "", group: "", generation: Int.min)
        return try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT subject_id, key_group, generation, created_at FROM data_keys
                WHERE (created_at, subject_id, key_group, generation) > (?, ?, ?, ?) AND created_at <= ?
                ORDER BY created_at, subject_id, key_group, generation LIMIT ?
                """, arguments: [c.createdAtMillis, c.subject, c.group, c.generation, SQLiteDatabase.millis(createdThrough), limit]).map {
                (DataKeyID(subject: $0["subject_id"], group: $0["key_group"], generation: $0["generation"]),
                 SQLiteDatabase.date($0["created_at"] as Int64))
            }
        }
    }

    public func sweepCursor() async throws -> KeyScanCursor? {
        let json = try await pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM sweep_state WHERE name = 'orphan_cursor'") }
        return try json.map { try JSONDecoder().decode(KeyScanCursor.self, from: Data($0.utf8)) }
    }

    public func setSweepCursor(_ cursor: KeyScanCursor) async throws {
        let json = String(decoding: try JSONEncoder().encode(cursor), as: UTF8.self)
        try await pool.write { db in
            try db.execute(sql: "INSERT INTO sweep_state (name, value) VALUES ('orphan_cursor', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                           arguments: [json])
        }
    }

    public func identity() async throws -> KeyStoreIdentity {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT store_id, bound_data_store FROM identity WHERE id = 1") else {
                throw BindingError("the key store has no identity; it was not created by Cofre")
            }
            return KeyStoreIdentity(id: row["store_id"], boundDataStore: row["bound_data_store"])
        }
    }

    public func bind(dataStore: String) async throws {
        try await pool.write { db in
            let current = try String.fetchOne(db, sql: "SELECT bound_data_store FROM identity WHERE id = 1")
            if let current, current != dataStore {
                throw BindingError("this key store serves another data store (\(current))")
            }
            try db.execute(sql: "UPDATE identity SET bound_data_store = ? WHERE id = 1", arguments: [dataStore])
        }
    }
}
