public import CofreCore
public import Foundation
import Logging
import NIOConcurrencyHelpers
public import PostgresNIO

/// The data-key store on PostgreSQL: a database of its own (`--key-store`), backed up apart from the data.
public final class PostgresKeyStore: DataKeyStore {
    let client: PostgresClient
    let log = PostgresDatabase.silent
    private let vacuum = NIOLockedValueBox<ContinuousClock.Instant?>(nil)

    public init(client: PostgresClient) { self.client = client }

    public func migrate() async throws {
        try await PostgresDatabase.migrate(client, table: "cofre_keystore_migrations", [
            ("v1-data-keys", [
                """
                CREATE TABLE data_keys (
                    subject_id TEXT NOT NULL, key_group TEXT NOT NULL, generation INTEGER NOT NULL,
                    kek_version BIGINT NOT NULL, wrapped BYTEA NOT NULL, created_at BIGINT NOT NULL,
                    uses BIGINT NOT NULL DEFAULT 0,
                    PRIMARY KEY (subject_id, key_group, generation))
                """,
                "CREATE INDEX data_keys_kek ON data_keys(kek_version)",
            ]),
            ("v3-sweeper", [
                "CREATE INDEX data_keys_created ON data_keys(created_at, subject_id, key_group, generation)",
                "CREATE TABLE sweep_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            ]),
            ("v4-identity", [
                "CREATE TABLE identity (id INTEGER PRIMARY KEY CHECK (id = 1), store_id TEXT NOT NULL, bound_data_store TEXT)",
                "INSERT INTO identity (id, store_id) VALUES (1, 'ks_' || replace(gen_random_uuid()::text, '-', ''))",
            ]),
        ])
    }

    public func insert(_ keys: [WrappedDataKey]) async throws {
        guard !keys.isEmpty else { return }
        try await client.transaction(logger: log) { conn in
            for k in keys {
                try await conn.run("""
                    INSERT INTO data_keys (subject_id, key_group, generation, kek_version, wrapped, created_at)
                    VALUES (\(k.id.subject), \(k.id.group), \(k.id.generation), \(Int64(k.kekVersion)), \(Data(k.wrapped)), \(PostgresDatabase.millis(k.createdAt)))
                    """, logger: log)
            }
        }
    }

    func wrapped(_ id: DataKeyID, _ version: Int64, _ data: Data, _ created: Int64) -> WrappedDataKey {
        WrappedDataKey(id: id, kekVersion: UInt32(version), wrapped: Array(data), createdAt: PostgresDatabase.date(created))
    }

    public func fetch(_ ids: [DataKeyID]) async throws -> [DataKeyID: WrappedDataKey] {
        guard !ids.isEmpty else { return [:] }
        // One round trip for the whole set: the ids travel as three parallel arrays.
        let subjects = ids.map(\.subject), groups = ids.map(\.group), generations = ids.map { Int64($0.generation) }
        var out: [DataKeyID: WrappedDataKey] = [:]
        let rows = try await client.run("""
            SELECT d.subject_id, d.key_group, d.generation, d.kek_version, d.wrapped, d.created_at
            FROM data_keys d
            JOIN unnest(\(subjects)::text[], \(groups)::text[], \(generations)::bigint[]) AS k(s, g, n)
              ON d.subject_id = k.s AND d.key_group = k.g AND d.generation = k.n
            """, logger: log)
        for try await (s, g, n, v, w, c) in rows.decode((String, String, Int, Int64, Data, Int64).self) {
            let id = DataKeyID(subject: s, group: g, generation: n)
            out[id] = wrapped(id, v, w, c)
        }
        return out
    }

    public func destroy(_ ids: [DataKeyID]) async throws {
        guard !ids.isEmpty else { return }
        try await client.transaction(logger: log) { conn in
            for id in ids {
                try await conn.run("""
                    DELETE FROM data_keys WHERE subject_id = \(id.subject) AND key_group = \(id.group) AND generation = \(id.generation)
                    """, logger: log)
            }
        }
        try await vacuumIfDue()
    }

    /// Destroyed keys must not linger in dead tuples: VACUUM reclaims them. Run at most every few
    /// seconds after destructions (it is not free), and at every key sweep.
    public func compact() async throws {
        try await client.run("VACUUM data_keys", logger: log, deadline: nil)
        vacuum.withLockedValue { $0 = ContinuousClock.now }
    }

    func vacuumIfDue() async throws {
        let due = vacuum.withLockedValue { last in last.map { ContinuousClock.now - $0 > .seconds(5) } ?? true }
        if due { try await compact() }
    }

    public func countByKEKVersion() async throws -> [UInt32: Int] {
        var out: [UInt32: Int] = [:]
        let rows = try await client.run("SELECT kek_version, COUNT(*) FROM data_keys GROUP BY kek_version", logger: log)
        for try await (v, n) in rows.decode((Int64, Int64).self) { out[UInt32(v)] = Int(n) }
        return out
    }

    public func checkWritable() async throws {
        let now = String(Int64(Date().timeIntervalSince1970 * 1000))
        try await client.run("""
            INSERT INTO sweep_state (name, value) VALUES ('write_probe', \(now)) ON CONFLICT (name) DO UPDATE SET value = excluded.value
            """, logger: log)
    }

    public func checkHealth() async throws {
        try await client.run("SELECT 1 FROM data_keys LIMIT 1", logger: log)
    }

    public func fetch(notWrappedBy version: UInt32, limit: Int) async throws -> [WrappedDataKey] {
        var out: [WrappedDataKey] = []
        let rows = try await client.run("""
            SELECT subject_id, key_group, generation, kek_version, wrapped, created_at FROM data_keys
            WHERE kek_version <> \(Int64(version)) ORDER BY subject_id, key_group, generation LIMIT \(limit)
            """, logger: log)
        for try await (s, g, n, v, w, c) in rows.decode((String, String, Int, Int64, Data, Int64).self) {
            out.append(wrapped(DataKeyID(subject: s, group: g, generation: n), v, w, c))
        }
        return out
    }

    public func replace(_ updates: [(old: WrappedDataKey, new: WrappedDataKey)]) async throws -> Int {
        guard !updates.isEmpty else { return 0 }
        let rows = updates.map { ($0.old.id, Int64($0.old.kekVersion), Data($0.old.wrapped), Int64($0.new.kekVersion), Data($0.new.wrapped)) }
        return try await client.transaction(logger: log) { conn in
            var n = 0
            for (id, oldVersion, oldWrapped, newVersion, newWrapped) in rows {
                let result = try await conn.run("""
                    UPDATE data_keys SET kek_version = \(newVersion), wrapped = \(newWrapped)
                    WHERE subject_id = \(id.subject) AND key_group = \(id.group) AND generation = \(id.generation)
                      AND kek_version = \(oldVersion) AND wrapped = \(oldWrapped)
                    RETURNING 1
                    """, logger: log)
                for try await _ in result.decode(Int.self) { n += 1 }
            }
            return n
        }
    }

    public func reserveUses(_ id: DataKeyID, count: Int64, limit: Int64) async throws -> Bool {
        let rows = try await client.run("""
            UPDATE data_keys SET uses = uses + \(count)
            WHERE subject_id = \(id.subject) AND key_group = \(id.group) AND generation = \(id.generation) AND uses + \(count) <= \(limit)
            RETURNING 1
            """, logger: log)
        var hit = false
        for try await _ in rows.decode(Int.self) { hit = true }
        return hit
    }

    public func ids(subject: String) async throws -> [DataKeyID] {
        var out: [DataKeyID] = []
        let rows = try await client.run("SELECT key_group, generation FROM data_keys WHERE subject_id = \(subject)", logger: log)
        for try await (g, n) in rows.decode((String, Int).self) { out.append(DataKeyID(subject: subject, group: g, generation: n)) }
        return out
    }

    public func scan(after cursor: KeyScanCursor?, createdThrough: Date, limit: Int) async throws -> [(id: DataKeyID, createdAt: Date)] {
        let c = cursor ?? KeyScanCursor(createdAtMillis: Int64.min, subject: "", group: "", generation: Int(Int32.min))
        var out: [(id: DataKeyID, createdAt: Date)] = []
        let rows = try await client.run("""
            SELECT subject_id, key_group, generation, created_at FROM data_keys
            WHERE (created_at, subject_id, key_group, generation) > (\(c.createdAtMillis), \(c.subject), \(c.group), \(Int64(c.generation)))
              AND created_at <= \(PostgresDatabase.millis(createdThrough))
            ORDER BY created_at, subject_id, key_group, generation LIMIT \(limit)
            """, logger: log)
        for try await (s, g, n, at) in rows.decode((String, String, Int, Int64).self) {
            out.append((DataKeyID(subject: s, group: g, generation: n), PostgresDatabase.date(at)))
        }
        return out
    }

    public func sweepCursor() async throws -> KeyScanCursor? {
        var json: String?
        for try await v in try await client.run("SELECT value FROM sweep_state WHERE name = 'orphan_cursor'", logger: log).decode(String.self) {
            json = v
        }
        return try json.map { try JSONDecoder().decode(KeyScanCursor.self, from: Data($0.utf8)) }
    }

    public func setSweepCursor(_ cursor: KeyScanCursor) async throws {
        let json = String(decoding: try JSONEncoder().encode(cursor), as: UTF8.self)
        try await client.run("""
            INSERT INTO sweep_state (name, value) VALUES ('orphan_cursor', \(json)) ON CONFLICT (name) DO UPDATE SET value = excluded.value
            """, logger: log)
    }

    public func identity() async throws -> KeyStoreIdentity {
        var out: KeyStoreIdentity?
        for try await (id, bound) in try await client.run("SELECT store_id, bound_data_store FROM identity WHERE id = 1", logger: log)
            .decode((String, String?).self) { out = KeyStoreIdentity(id: id, boundDataStore: bound) }
        guard let out else { throw BindingError("the key store has no identity; it was not created by Cofre") }
        return out
    }

    public func bind(dataStore: String) async throws {
        var current: String?
        for try await (bound) in try await client.run("""
            UPDATE identity SET bound_data_store = COALESCE(bound_data_store, \(dataStore)) WHERE id = 1 RETURNING bound_data_store
            """, logger: log).decode(String?.self) { current = bound }
        if let current, current != dataStore { throw BindingError("this key store serves another data store (\(current))") }
    }
}
