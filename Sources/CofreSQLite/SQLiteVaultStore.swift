public import CofreCore
public import Foundation
import GRDB

/// The data store on SQLite through GRDB. SQL only with bound parameters.
public final class SQLiteVaultStore: VaultStore {
    let pool: DatabasePool
    let chain: AuditChain
    /// Every write goes through here, so concurrent requests share commits.
    let writer: WriteBatcher

    public init(path: String, chain: AuditChain) throws {
        pool = try SQLiteDatabase.open(path: path, label: "cofre.data")
        writer = WriteBatcher(pool: pool)
        self.chain = chain
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-subjects-fields-tokens") { db in
            try db.execute(sql: """
                CREATE TABLE subjects (
                    id TEXT PRIMARY KEY,
                    external_ref_hash TEXT NOT NULL UNIQUE,
                    created_at INTEGER NOT NULL,
                    created_by TEXT NOT NULL,
                    status TEXT NOT NULL
                );
                CREATE TABLE fields (
                    subject_id TEXT NOT NULL REFERENCES subjects(id),
                    field TEXT NOT NULL,
                    type TEXT NOT NULL,
                    generation INTEGER NOT NULL,
                    ciphertext BLOB,
                    stored_at INTEGER NOT NULL,
                    stored_by TEXT NOT NULL,
                    status TEXT NOT NULL,
                    retained_for TEXT,
                    retained_until INTEGER,
                    PRIMARY KEY (subject_id, field)
                );
                CREATE TABLE tokens (
                    token_hash TEXT PRIMARY KEY,
                    subject_id TEXT NOT NULL REFERENCES subjects(id),
                    field TEXT NOT NULL,
                    generation INTEGER NOT NULL,
                    created_at INTEGER NOT NULL,
                    created_by TEXT NOT NULL
                );
                CREATE INDEX tokens_subject_field ON tokens(subject_id, field);
                CREATE TABLE blind_index (
                    field TEXT NOT NULL,
                    hash TEXT NOT NULL,
                    subject_id TEXT NOT NULL REFERENCES subjects(id),
                    PRIMARY KEY (field, hash, subject_id)
                );
                CREATE INDEX blind_index_subject ON blind_index(subject_id, field);
                """)
        }
        m.registerMigration("v1-credentials") { db in
            try db.execute(sql: """
                CREATE TABLE credentials (
                    id TEXT PRIMARY KEY,
                    service TEXT NOT NULL,
                    key_hash TEXT NOT NULL UNIQUE,
                    created_at INTEGER NOT NULL,
                    revoked_at INTEGER
                );
                CREATE INDEX credentials_service ON credentials(service);
                """)
        }
        m.registerMigration("v1-audit") { db in
            try db.execute(sql: """
                CREATE TABLE audit_events (
                    seq INTEGER PRIMARY KEY,
                    time INTEGER NOT NULL,
                    service TEXT NOT NULL,
                    role TEXT NOT NULL,
                    action TEXT NOT NULL,
                    subject_id TEXT,
                    fields TEXT NOT NULL,
                    purpose TEXT,
                    legal_basis TEXT,
                    decision TEXT NOT NULL,
                    code TEXT,
                    request_id TEXT,
                    ref TEXT,
                    target TEXT,
                    prev_hash TEXT NOT NULL,
                    hash TEXT NOT NULL
                );
                CREATE INDEX audit_subject ON audit_events(subject_id, seq);
                """)
        }
        m.registerMigration("v2-consent-ledger") { db in
            try db.execute(sql: """
                CREATE TABLE consent_events (
                    seq INTEGER PRIMARY KEY,
                    id TEXT NOT NULL UNIQUE,
                    subject_id TEXT NOT NULL REFERENCES subjects(id),
                    purpose TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    status TEXT NOT NULL,
                    channel TEXT,
                    evidence BLOB,
                    notice_version TEXT,
                    recorded_by TEXT NOT NULL,
                    recorded_role TEXT NOT NULL,
                    recorded_at INTEGER NOT NULL
                );
                CREATE INDEX consent_events_subject ON consent_events(subject_id, seq);
                CREATE TABLE consent_state (
                    subject_id TEXT NOT NULL REFERENCES subjects(id),
                    purpose TEXT NOT NULL,
                    consent TEXT NOT NULL,
                    objection INTEGER NOT NULL,
                    updated_seq INTEGER NOT NULL,
                    PRIMARY KEY (subject_id, purpose)
                );
                """)
        }
        m.registerMigration("v3-audit-read-indexes") { db in
            try db.execute(sql: """
                CREATE INDEX audit_service ON audit_events(service, seq);
                CREATE INDEX audit_ref ON audit_events(ref);
                """)
        }
        m.registerMigration("v4-erasures") { db in
            try db.execute(sql: """
                CREATE TABLE erasures (
                    subject_id TEXT PRIMARY KEY REFERENCES subjects(id),
                    erased_at INTEGER NOT NULL,
                    receipt TEXT NOT NULL
                );
                CREATE INDEX fields_retention ON fields(status, retained_until);
                """)
        }
        m.registerMigration("v5-atomic-writes") { db in
            try db.execute(sql: """
                ALTER TABLE fields ADD COLUMN key_group TEXT;
                CREATE TABLE key_shred_queue (
                    subject_id TEXT NOT NULL,
                    key_group TEXT NOT NULL,
                    generation INTEGER NOT NULL,
                    queued_at INTEGER NOT NULL,
                    PRIMARY KEY (subject_id, key_group, generation)
                );
                """)
        }
        m.registerMigration("v6-binding-instances") { db in
            try db.execute(sql: """
                CREATE TABLE vault_binding (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    data_store_id TEXT NOT NULL,
                    key_store_id TEXT NOT NULL,
                    kcv TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    development_ring INTEGER NOT NULL
                );
                CREATE TABLE instances (
                    id TEXT PRIMARY KEY,
                    host TEXT NOT NULL,
                    pid INTEGER NOT NULL,
                    started_at INTEGER NOT NULL,
                    seen_at INTEGER NOT NULL,
                    versions TEXT NOT NULL,
                    primary_version INTEGER NOT NULL,
                    primary_since INTEGER NOT NULL
                );
                """)
        }
        m.registerMigration("v7-write-probe") { db in
            try db.execute(sql: "CREATE TABLE write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), probed_at INTEGER NOT NULL)")
        }
        m.registerMigration("v8-contact-attempts") { db in
            try db.execute(sql: """
                CREATE TABLE contact_attempts (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    subject_id TEXT NOT NULL,
                    purpose TEXT NOT NULL,
                    service TEXT NOT NULL,
                    channel TEXT,
                    at INTEGER NOT NULL
                );
                CREATE INDEX contact_attempts_by_subject ON contact_attempts (subject_id, purpose, at);
                """)
        }
        m.registerMigration("v9-notifications") { db in
            try db.execute(sql: """
                CREATE TABLE outbox_events (
                    id TEXT PRIMARY KEY,
                    type TEXT NOT NULL,
                    subject_id TEXT NOT NULL,
                    fields TEXT NOT NULL,
                    purpose TEXT,
                    at INTEGER NOT NULL,
                    fanned_out INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX outbox_pending ON outbox_events (fanned_out, at);
                CREATE TABLE deliveries (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    event_id TEXT NOT NULL,
                    service TEXT NOT NULL,
                    type TEXT NOT NULL,
                    subject_id TEXT NOT NULL,
                    body TEXT NOT NULL,
                    status TEXT NOT NULL,
                    attempts INTEGER NOT NULL,
                    created_at INTEGER NOT NULL,
                    next_attempt_at INTEGER NOT NULL,
                    retry_until INTEGER NOT NULL,
                    last_attempt_at INTEGER,
                    last_outcome TEXT,
                    delivered_at INTEGER,
                    lease_owner TEXT,
                    lease_until INTEGER,
                    UNIQUE (event_id, service)
                );
                CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
                CREATE INDEX deliveries_subject ON deliveries (subject_id);
                CREATE TABLE delivery_attempts (
                    delivery_id TEXT NOT NULL,
                    attempt INTEGER NOT NULL,
                    at INTEGER NOT NULL,
                    outcome TEXT NOT NULL,
                    http_status INTEGER,
                    duration_ms INTEGER NOT NULL,
                    PRIMARY KEY (delivery_id, attempt)
                );
                CREATE INDEX audit_service_subject ON audit_events (service, subject_id, seq);
                CREATE INDEX audit_action_time ON audit_events (action, time);
                """)
        }
        return m
    }

    public func migrate() async throws {
        try Self.migrator.migrate(pool)
    }

    public func appliedMigrations() async throws -> [String] {
        try await pool.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid") }
    }

    public func checkHealth() async throws {
        _ = try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM audit_events") }
    }

    // MARK: the write primitive

    public func commit(_ batch: WriteBatch) async throws -> CommitResult {
        try await writer.write { db in
            var result = CommitResult()
            for op in batch.ops { try Self.apply(op, db, &result) }
            try self.append(batch.audit, db)
            return result
        }
    }

    static func status(_ subject: String, _ db: Database) throws -> SubjectRecord.Status? {
        try String.fetchOne(db, sql: "SELECT status FROM subjects WHERE id = ?", arguments: [subject]).map { SubjectRecord.Status(rawValue: $0) ?? .erased }
    }

    static func apply(_ op: WriteOp, _ db: Database, _ result: inout CommitResult) throws {
        switch op {
        case .expectSubject(let id, let allowed):
            guard let status = try status(id, db) else { throw StoreError(.notFound) }
            guard allowed.contains(status) else { throw StoreError(.subjectGone) }
        case .expectExternalRefFree(let hash):
            if let existing = try String.fetchOne(db, sql: "SELECT id FROM subjects WHERE external_ref_hash = ?", arguments: [hash]) {
                throw StoreError(.exists, subject: existing)
            }
        case .expectField(let subject, let field, let generation, let statuses):
            let row = try Row.fetchOne(db, sql: "SELECT generation, status FROM fields WHERE subject_id = ? AND field = ?", arguments: [subject, field])
            guard row?["generation"] as Int? == generation else { throw StoreError(.conflict) }
            if let statuses, let row, !statuses.contains(FieldRecord.Status(rawValue: row["status"]) ?? .erased) { throw StoreError(.conflict) }
        case .expectFieldSet(let subject, let expected):
            var found: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT field, generation FROM fields WHERE subject_id = ?", arguments: [subject]) {
                found[row["field"]] = row["generation"]
            }
            guard found == expected else { throw StoreError(.conflict) }
        case .insertSubject(let s):
            try db.execute(
                sql: "INSERT INTO subjects (id, external_ref_hash, created_at, created_by, status) VALUES (?, ?, ?, ?, ?)",
                arguments: [s.id, s.externalRefHash, SQLiteDatabase.millis(s.createdAt), s.createdBy, s.status.rawValue])
        case .setSubjectStatus(let id, let status):
            try db.execute(sql: "UPDATE subjects SET status = ? WHERE id = ?", arguments: [status.rawValue, id])
        case .releaseExternalRef(let id):
            try db.execute(sql: "UPDATE subjects SET external_ref_hash = 'erased:' || id WHERE id = ?", arguments: [id])
        case .putField(let f):
            try db.execute(
                sql: """
                    INSERT INTO fields (subject_id, field, type, generation, key_group, ciphertext, stored_at, stored_by, status,
                        retained_for, retained_until)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (subject_id, field) DO UPDATE SET type = excluded.type, generation = excluded.generation,
                        key_group = excluded.key_group, ciphertext = excluded.ciphertext, stored_at = excluded.stored_at,
                        stored_by = excluded.stored_by, status = excluded.status, retained_for = excluded.retained_for,
                        retained_until = excluded.retained_until
                    """,
                arguments: [f.subject, f.field, f.type.rawValue, f.generation, f.keyGroup, Data(f.ciphertext), SQLiteDatabase.millis(f.storedAt),
                            f.storedBy, f.status.rawValue, f.retainedFor, f.retainedUntil.map(SQLiteDatabase.millis)])
        case .setFieldState(let subject, let field, let status, let retainedFor, let retainedUntil):
            try db.execute(
                sql: """
                    UPDATE fields SET status = ?, retained_for = ?, retained_until = ?,
                        ciphertext = CASE WHEN ? = 'erased' THEN NULL ELSE ciphertext END
                    WHERE subject_id = ? AND field = ?
                    """,
                arguments: [status.rawValue, retainedFor, retainedUntil.map(SQLiteDatabase.millis), status.rawValue, subject, field])
        case .deleteTokens(let subject, let field):
            try db.execute(sql: "DELETE FROM tokens WHERE subject_id = ? AND field = ?", arguments: [subject, field])
        case .deleteIndex(let subject, let field):
            try db.execute(sql: "DELETE FROM blind_index WHERE subject_id = ? AND field = ?", arguments: [subject, field])
        case .insertTokens(let tokens):
            for t in tokens {
                try db.execute(
                    sql: "INSERT INTO tokens (token_hash, subject_id, field, generation, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [t.tokenHash, t.subject, t.field, t.generation, SQLiteDatabase.millis(t.createdAt), t.createdBy])
            }
        case .insertIndex(let entries):
            for i in entries {
                try db.execute(sql: "INSERT OR IGNORE INTO blind_index (field, hash, subject_id) VALUES (?, ?, ?)",
                               arguments: [i.field, i.hash, i.subject])
            }
        case .insertConsent(let r):
            try db.execute(
                sql: """
                    INSERT INTO consent_events (id, subject_id, purpose, kind, status, channel, evidence, notice_version,
                        recorded_by, recorded_role, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [r.id, r.subject, r.purpose, r.kind.rawValue, r.status.rawValue, r.channel, r.evidence.map { Data($0) },
                            r.noticeVersion, r.recordedBy, r.recordedRole, SQLiteDatabase.millis(r.recordedAt)])
            result.consentSeqs.append(db.lastInsertedRowID)
        case .setConsentState(let subject, let purpose, let consent):
            try db.execute(
                sql: """
                    INSERT INTO consent_state (subject_id, purpose, consent, objection, updated_seq)
                    VALUES (?, ?, ?, 0, (SELECT COALESCE(MAX(seq), 0) FROM consent_events WHERE subject_id = ?))
                    ON CONFLICT (subject_id, purpose) DO UPDATE SET consent = excluded.consent, updated_seq = excluded.updated_seq
                    """,
                arguments: [subject, purpose, consent.rawValue, subject])
        case .setObjectionState(let subject, let purpose, let objected):
            try db.execute(
                sql: """
                    INSERT INTO consent_state (subject_id, purpose, consent, objection, updated_seq)
                    VALUES (?, ?, 'none', ?, (SELECT COALESCE(MAX(seq), 0) FROM consent_events WHERE subject_id = ?))
                    ON CONFLICT (subject_id, purpose) DO UPDATE SET objection = excluded.objection, updated_seq = excluded.updated_seq
                    """,
                arguments: [subject, purpose, objected ? 1 : 0, subject])
        case .clearEvidence(let subject):
            try db.execute(sql: "UPDATE consent_events SET evidence = NULL WHERE subject_id = ?", arguments: [subject])
        case .insertErasureReceipt(let subject, let at, let json):
            try db.execute(sql: "INSERT INTO erasures (subject_id, erased_at, receipt) VALUES (?, ?, ?)",
                           arguments: [subject, SQLiteDatabase.millis(at), json])
        case .queueKeyShred(let ids):
            for id in ids {
                try db.execute(
                    sql: "INSERT OR IGNORE INTO key_shred_queue (subject_id, key_group, generation, queued_at) VALUES (?, ?, ?, ?)",
                    arguments: [id.subject, id.group, id.generation, SQLiteDatabase.millis(Date())])
            }
        case .dequeueKeyShred(let ids):
            for id in ids {
                try db.execute(sql: "DELETE FROM key_shred_queue WHERE subject_id = ? AND key_group = ? AND generation = ?",
                               arguments: [id.subject, id.group, id.generation])
            }
        case .insertCredential(let c):
            try db.execute(
                sql: "INSERT INTO credentials (id, service, key_hash, created_at, revoked_at) VALUES (?, ?, ?, ?, NULL)",
                arguments: [c.id, c.service, c.keyHash, SQLiteDatabase.millis(c.createdAt)])
        case .revokeCredentials(let ids, let at):
            for id in ids {
                try db.execute(sql: "UPDATE credentials SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                               arguments: [SQLiteDatabase.millis(at), id])
            }
        case .insertBinding(let b):
            guard try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM vault_binding") == 0 else { throw StoreError(.conflict) }
            try db.execute(
                sql: "INSERT INTO vault_binding (id, data_store_id, key_store_id, kcv, created_at, development_ring) VALUES (1, ?, ?, ?, ?, ?)",
                arguments: [b.dataStoreID, b.keyStoreID, b.kcv, SQLiteDatabase.millis(b.createdAt), b.developmentRing ? 1 : 0])
        case .heartbeat(let h):
            try db.execute(
                sql: """
                    INSERT INTO instances (id, host, pid, started_at, seen_at, versions, primary_version, primary_since)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, versions = excluded.versions,
                        primary_version = excluded.primary_version, primary_since = excluded.primary_since
                    """,
                arguments: [h.id, h.host, h.pid, SQLiteDatabase.millis(h.startedAt), SQLiteDatabase.millis(h.seenAt),
                            h.versions.map(String.init).joined(separator: ","), Int64(h.primary), SQLiteDatabase.millis(h.primarySince)])
        case .removeInstance(let id):
            try db.execute(sql: "DELETE FROM instances WHERE id = ?", arguments: [id])
        case .probe(let at):
            try db.execute(sql: "INSERT INTO write_probe (id, probed_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
                           arguments: [SQLiteDatabase.millis(at)])
        case .expectContactsBelow(let subject, let purpose, let since, let max):
            // One writer: the count and the insert after it cannot interleave with another's.
            let n = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM contact_attempts WHERE subject_id = ? AND purpose = ? AND at >= ?",
                                     arguments: [subject, purpose, SQLiteDatabase.millis(since)]) ?? 0
            guard n < max else { throw StoreError(.limitReached) }
        case .insertContact(let c):
            try db.execute(sql: "INSERT INTO contact_attempts (subject_id, purpose, service, channel, at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [c.subject, c.purpose, c.service, c.channel, SQLiteDatabase.millis(c.at)])
        case .insertOutbox(let e):
            try db.execute(sql: "INSERT INTO outbox_events (id, type, subject_id, fields, purpose, at) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [e.id, e.type.rawValue, e.subject, e.fields.joined(separator: ","), e.purpose, SQLiteDatabase.millis(e.at)])
        case .fanOut(let event, let deliveries):
            try db.execute(sql: "UPDATE outbox_events SET fanned_out = 1 WHERE id = ? AND fanned_out = 0", arguments: [event])
            guard db.changesCount == 1 else { throw StoreError(.conflict) }
            for d in deliveries {
                try db.execute(sql: """
                    INSERT INTO deliveries (id, event_id, service, type, subject_id, body, status, attempts, created_at, next_attempt_at, retry_until)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [d.id, d.event, d.service, d.type.rawValue, d.subject, d.body, d.status.rawValue, d.attempts,
                                     SQLiteDatabase.millis(d.createdAt), SQLiteDatabase.millis(d.nextAttemptAt), SQLiteDatabase.millis(d.retryUntil)])
            }
        case .leaseDelivery(let id, let attempts, let owner, let until, let now):
            try db.execute(sql: """
                UPDATE deliveries SET lease_owner = ?, lease_until = ?
                WHERE id = ? AND status = 'pending' AND attempts = ? AND (lease_until IS NULL OR lease_until <= ?)
                """, arguments: [owner, SQLiteDatabase.millis(until), id, attempts, SQLiteDatabase.millis(now)])
            guard db.changesCount == 1 else { throw StoreError(.conflict) }
        case .recordDeliveryAttempt(let a, let owner, let status, let next, let retryUntil):
            try db.execute(sql: """
                UPDATE deliveries SET attempts = ?,
                    status = CASE WHEN ? = 'failed' AND retry_until > ? THEN 'pending' ELSE ? END,
                    next_attempt_at = ?, last_attempt_at = ?, last_outcome = ?,
                    delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END, lease_owner = NULL, lease_until = NULL
                WHERE id = ? AND lease_owner = ? AND attempts = ?
                """, arguments: [a.attempt, status.rawValue, SQLiteDatabase.millis(retryUntil), status.rawValue, SQLiteDatabase.millis(next),
                                 SQLiteDatabase.millis(a.at), a.outcome, status.rawValue, SQLiteDatabase.millis(a.at), a.delivery, owner, a.attempt - 1])
            guard db.changesCount == 1 else { throw StoreError(.conflict) }
            try db.execute(sql: "INSERT INTO delivery_attempts (delivery_id, attempt, at, outcome, http_status, duration_ms) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [a.delivery, a.attempt, SQLiteDatabase.millis(a.at), a.outcome, a.httpStatus, a.durationMs])
        case .retryDelivery(let id, let at, let until):
            guard let status = try String.fetchOne(db, sql: "SELECT status FROM deliveries WHERE id = ?", arguments: [id]) else {
                throw StoreError(.notFound)
            }
            guard status != DeliveryStatus.delivered.rawValue else { throw StoreError(.conflict) }
            try db.execute(sql: """
                UPDATE deliveries SET status = 'pending', next_attempt_at = ?, retry_until = ? WHERE id = ?
                """, arguments: [SQLiteDatabase.millis(at), SQLiteDatabase.millis(until), id])
        }
    }

    // MARK: audit

    /// Chains and inserts events inside the caller's transaction; any failure is `auditUnavailable`.
    func append(_ drafts: [AuditDraft], _ db: Database) throws {
        guard !drafts.isEmpty else { return }
        do {
            let last = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            var seq: Int64 = last?["seq"] ?? 0
            var prev: String = last?["hash"] ?? AuditChain.genesis
            for d in drafts {
                seq += 1
                let e = chain.seal(d, seq: seq, prevHash: prev)
                try db.execute(
                    sql: """
                        INSERT INTO audit_events (seq, time, service, role, action, subject_id, fields, purpose, legal_basis,
                            decision, code, request_id, ref, target, prev_hash, hash)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        e.seq, AuditChain.millis(e.draft.time), e.draft.service, e.draft.role, e.draft.action, e.draft.subject,
                        e.draft.fields.joined(separator: ","), e.draft.purpose, e.draft.legalBasis, e.draft.decision.rawValue,
                        e.draft.code, e.draft.requestID, e.draft.ref, e.draft.target, e.prevHash, e.hash,
                    ])
                prev = e.hash
            }
        } catch {
            throw StoreError(.auditUnavailable)
        }
    }

    // MARK: reads

    static func credential(_ row: Row) -> CredentialRecord {
        CredentialRecord(id: row["id"], service: row["service"], keyHash: row["key_hash"],
                         createdAt: SQLiteDatabase.date(row["created_at"] as Int64),
                         revokedAt: SQLiteDatabase.date(row["revoked_at"] as Int64?))
    }

    public func credential(keyHash: String) async throws -> CredentialRecord? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM credentials WHERE key_hash = ?", arguments: [keyHash]).map(Self.credential)
        }
    }

    public func credentials() async throws -> [CredentialRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM credentials ORDER BY created_at").map(Self.credential)
        }
    }

    public func subject(id: String) async throws -> SubjectRecord? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM subjects WHERE id = ?", arguments: [id]).map { row in
                SubjectRecord(id: row["id"], externalRefHash: row["external_ref_hash"],
                              createdAt: SQLiteDatabase.date(row["created_at"] as Int64), createdBy: row["created_by"],
                              status: SubjectRecord.Status(rawValue: row["status"]) ?? .erased)
            }
        }
    }

    static func field(_ row: Row) -> FieldRecord {
        let ciphertext: Data? = row["ciphertext"]
        return FieldRecord(
            subject: row["subject_id"], field: row["field"], type: FieldType(rawValue: row["type"]) ?? .text,
            generation: row["generation"], keyGroup: row["key_group"], ciphertext: ciphertext.map(Array.init) ?? [],
            storedAt: SQLiteDatabase.date(row["stored_at"] as Int64), storedBy: row["stored_by"],
            status: FieldRecord.Status(rawValue: row["status"]) ?? .erased, retainedFor: row["retained_for"],
            retainedUntil: SQLiteDatabase.date(row["retained_until"] as Int64?))
    }

    public func fields(subjects: Set<String>) async throws -> [FieldRecord] {
        guard !subjects.isEmpty else { return [] }
        return try await pool.read { db in
            var out: [FieldRecord] = []
            for s in subjects {
                out += try Row.fetchAll(db, sql: "SELECT * FROM fields WHERE subject_id = ?", arguments: [s]).map(Self.field)
            }
            return out
        }
    }

    public func snapshot(tokenHashes: [String], subjects: Set<String>, index: BlindIndexQuery?) async throws -> StoreSnapshot {
        try await pool.read { db in
            var snap = StoreSnapshot()
            if let index {
                snap.indexed = try String.fetchAll(db, sql: "SELECT subject_id FROM blind_index WHERE field = ? AND hash = ? ORDER BY subject_id",
                                                   arguments: [index.field, index.hash])
            }
            for h in Set(tokenHashes) {
                if let row = try Row.fetchOne(db, sql: "SELECT * FROM tokens WHERE token_hash = ?", arguments: [h]) {
                    snap.tokens[h] = TokenRecord(tokenHash: row["token_hash"], subject: row["subject_id"], field: row["field"],
                                                 generation: row["generation"], createdAt: SQLiteDatabase.date(row["created_at"] as Int64),
                                                 createdBy: row["created_by"])
                }
            }
            for s in subjects.union(snap.tokens.values.map(\.subject)).union(snap.indexed) {
                guard let status = try Self.status(s, db) else { continue }
                snap.subjects[s] = status
                for f in try Row.fetchAll(db, sql: "SELECT * FROM fields WHERE subject_id = ?", arguments: [s]).map(Self.field) {
                    snap.fields[s, default: [:]][f.field] = f
                }
                for row in try Row.fetchAll(db, sql: "SELECT purpose, consent, objection FROM consent_state WHERE subject_id = ?", arguments: [s]) {
                    snap.states[s, default: [:]][row["purpose"]] = PurposeState(
                        consent: ConsentState(rawValue: row["consent"]) ?? .none, objection: (row["objection"] as Int) != 0)
                }
            }
            return snap
        }
    }

    public func lookup(field: String, hash: String) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: "SELECT subject_id FROM blind_index WHERE field = ? AND hash = ? ORDER BY subject_id",
                                arguments: [field, hash])
        }
    }

    public func consentHistory(subject: String) async throws -> [ConsentRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM consent_events WHERE subject_id = ? ORDER BY seq", arguments: [subject]).map { row in
                let evidence: Data? = row["evidence"]
                return ConsentRecord(
                    id: row["id"], subject: row["subject_id"], purpose: row["purpose"],
                    kind: ConsentRecord.Kind(rawValue: row["kind"]) ?? .consent,
                    status: ConsentRecord.Status(rawValue: row["status"]) ?? .revoked, channel: row["channel"],
                    evidence: evidence.map(Array.init), noticeVersion: row["notice_version"], recordedBy: row["recorded_by"],
                    recordedRole: row["recorded_role"], recordedAt: SQLiteDatabase.date(row["recorded_at"] as Int64), seq: row["seq"])
            }
        }
    }

    static func event(_ row: Row) -> AuditEvent {
        let fields: String = row["fields"]
        let draft = AuditDraft(
            time: SQLiteDatabase.date(row["time"] as Int64), service: row["service"], role: row["role"], action: row["action"],
            subject: row["subject_id"], fields: fields.isEmpty ? [] : fields.split(separator: ",").map(String.init),
            purpose: row["purpose"], legalBasis: row["legal_basis"],
            decision: AuditDraft.Decision(rawValue: row["decision"]) ?? .deny, code: row["code"], requestID: row["request_id"],
            ref: row["ref"], target: row["target"])
        return AuditEvent(seq: row["seq"], draft: draft, prevHash: row["prev_hash"], hash: row["hash"],
                          stored: .init(timeMillis: row["time"], fields: fields, decision: row["decision"]))
    }

    /// A `SELECT … WHERE` built from optional filters, each bound, never spliced.
    struct Filtered {
        let select: String
        var clauses: [String] = []
        var args: [(any DatabaseValueConvertible)?] = []
        init(_ select: String) { self.select = select }
        mutating func add(_ clause: String, _ value: (any DatabaseValueConvertible)?) {
            guard let value else { return }
            clauses.append(clause)
            args.append(value)
        }
        /// Ordered by `seq`, at most `limit` rows.
        func query(limit: Int, descending: Bool = false) -> (sql: String, arguments: StatementArguments) {
            (select + (clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")) + " ORDER BY seq\(descending ? " DESC" : "") LIMIT ?",
             StatementArguments(args + [limit]))
        }
    }

    public func auditEvents(_ q: AuditQuery) async throws -> [AuditEvent] {
        var f = Filtered("SELECT * FROM audit_events")
        f.add("seq > ?", q.after)
        f.add("seq <= ?", q.through)
        f.add("subject_id = ?", q.subject)
        f.add("service = ?", q.service)
        f.add("purpose = ?", q.purpose)
        f.add("action = ?", q.action)
        f.add("decision = ?", q.decision?.rawValue)
        f.add("time >= ?", q.since.map(SQLiteDatabase.millis))
        f.add("time < ?", q.until.map(SQLiteDatabase.millis))
        f.add("ref = ?", q.ref)
        let (sql, arguments) = f.query(limit: q.limit, descending: q.newestFirst)
        return try await pool.read { db in try Row.fetchAll(db, sql: sql, arguments: arguments).map(Self.event) }
    }

    public func auditPage(after: Int64, limit: Int) async throws -> [AuditEvent] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?", arguments: [after, limit]).map(Self.event)
        }
    }

    public func lastAuditEvent() async throws -> AuditEvent? {
        try await pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM audit_events ORDER BY seq DESC LIMIT 1").map(Self.event) }
    }

    public func contactAttempts(subject: String, since: Date?) async throws -> [ContactAttempt] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT subject_id, purpose, service, channel, at FROM contact_attempts WHERE subject_id = ? AND at >= ? ORDER BY at, id
                """, arguments: [subject, since.map(SQLiteDatabase.millis) ?? Int64.min]).map { row in
                ContactAttempt(subject: row["subject_id"], purpose: row["purpose"], service: row["service"], channel: row["channel"],
                               at: SQLiteDatabase.date(row["at"]))
            }
        }
    }

    public func erasureReceiptJSON(subject: String) async throws -> String? {
        try await pool.read { db in try String.fetchOne(db, sql: "SELECT receipt FROM erasures WHERE subject_id = ?", arguments: [subject]) }
    }

    public func expiredRetentions(now: Date, limit: Int) async throws -> [FieldRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM fields WHERE status = 'blocked' AND retained_until <= ? ORDER BY subject_id, field LIMIT ?",
                             arguments: [SQLiteDatabase.millis(now), limit]).map(Self.field)
        }
    }

    public func queuedKeyShreds(limit: Int) async throws -> [DataKeyID] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT subject_id, key_group, generation FROM key_shred_queue ORDER BY queued_at LIMIT ?",
                             arguments: [limit]).map { DataKeyID(subject: $0["subject_id"], group: $0["key_group"], generation: $0["generation"]) }
        }
    }

    public func binding() async throws -> VaultBinding? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM vault_binding WHERE id = 1").map { row in
                VaultBinding(dataStoreID: row["data_store_id"], keyStoreID: row["key_store_id"], kcv: row["kcv"],
                             createdAt: SQLiteDatabase.date(row["created_at"] as Int64), developmentRing: (row["development_ring"] as Int) != 0)
            }
        }
    }

    public func hasData() async throws -> Bool {
        try await pool.read { db in
            try Bool.fetchOne(db, sql: """
                SELECT EXISTS (SELECT 1 FROM subjects) OR EXISTS (SELECT 1 FROM credentials) OR EXISTS (SELECT 1 FROM audit_events)
                """) ?? false
        }
    }

    public func subjects(externalRefHash: String) async throws -> [String] {
        try await pool.read { db in try String.fetchAll(db, sql: "SELECT id FROM subjects WHERE external_ref_hash = ?", arguments: [externalRefHash]) }
    }

    public func auditStats(since: Date, until: Date, bucketMillis: Int64) async throws -> [AuditStatRow] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT time / ? AS bucket, purpose, service, decision, code, COUNT(*) AS n FROM audit_events
                WHERE action = ? AND time >= ? AND time < ?
                GROUP BY bucket, purpose, service, decision, code
                """, arguments: [bucketMillis, AuditAction.detokenize.rawValue, SQLiteDatabase.millis(since), SQLiteDatabase.millis(until)]).map { row in
                AuditStatRow(bucket: row["bucket"], purpose: row["purpose"], service: row["service"],
                             decision: AuditDraft.Decision(rawValue: row["decision"]) ?? .deny, code: row["code"], count: row["n"])
            }
        }
    }

    public func pendingOutbox(atOrBefore: Date, limit: Int) async throws -> [OutboxEvent] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT id, type, subject_id, fields, purpose, at FROM outbox_events WHERE fanned_out = 0 AND at <= ? ORDER BY at, id LIMIT ?
                """, arguments: [SQLiteDatabase.millis(atOrBefore), limit]).compactMap { row in
                let fields: String = row["fields"]
                guard let type = NotificationType(rawValue: row["type"]) else { return nil }
                return OutboxEvent(id: row["id"], type: type, subject: row["subject_id"],
                                   fields: fields.isEmpty ? [] : fields.split(separator: ",").map(String.init),
                                   purpose: row["purpose"], at: SQLiteDatabase.date(row["at"] as Int64))
            }
        }
    }

    public func revealRecipients(subject: String) async throws -> Set<RevealRecord> {
        try await pool.read { db in
            Set(try Row.fetchAll(db, sql: """
                SELECT DISTINCT service, purpose, fields FROM audit_events WHERE subject_id = ? AND action = ? AND decision = 'allow'
                """, arguments: [subject, AuditAction.detokenize.rawValue]).map { row in
                let fields: String = row["fields"]
                return RevealRecord(service: row["service"], purpose: row["purpose"], fields: fields.isEmpty ? [] : fields.split(separator: ",").map(String.init))
            })
        }
    }

    public func deliveries(_ q: DeliveryQuery) async throws -> [DeliveryRecord] {
        var f = Filtered("SELECT * FROM deliveries")
        f.add("seq > ?", q.after)
        f.add("id = ?", q.id)
        f.add("status = ?", q.status?.rawValue)
        f.add("service = ?", q.service)
        f.add("subject_id = ?", q.subject)
        f.add("next_attempt_at <= ?", q.dueAt.map(SQLiteDatabase.millis))
        let (sql, arguments) = f.query(limit: q.limit)
        return try await pool.read { db in
            try Row.fetchAll(db, sql: sql, arguments: arguments).compactMap { row in
                guard let type = NotificationType(rawValue: row["type"]), let status = DeliveryStatus(rawValue: row["status"]) else { return nil }
                return DeliveryRecord(
                    seq: row["seq"], id: row["id"], event: row["event_id"], service: row["service"], type: type, subject: row["subject_id"],
                    body: row["body"], status: status, attempts: row["attempts"], createdAt: SQLiteDatabase.date(row["created_at"] as Int64),
                    nextAttemptAt: SQLiteDatabase.date(row["next_attempt_at"] as Int64), retryUntil: SQLiteDatabase.date(row["retry_until"] as Int64),
                    lastAttemptAt: SQLiteDatabase.date(row["last_attempt_at"] as Int64?), lastOutcome: row["last_outcome"],
                    deliveredAt: SQLiteDatabase.date(row["delivered_at"] as Int64?))
            }
        }
    }

    public func deliveryAttempts(delivery: String) async throws -> [DeliveryAttemptRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM delivery_attempts WHERE delivery_id = ? ORDER BY attempt", arguments: [delivery]).map { row in
                DeliveryAttemptRecord(delivery: row["delivery_id"], attempt: row["attempt"], at: SQLiteDatabase.date(row["at"] as Int64),
                                      outcome: row["outcome"], httpStatus: row["http_status"], durationMs: row["duration_ms"])
            }
        }
    }

    public func accessEvents(service: String, since: Date, until: Date, through: Int64, after: AccessCursor?, limit: Int) async throws -> [AuditEvent] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM audit_events
                WHERE service = ? AND subject_id IS NOT NULL AND (subject_id, seq) > (?, ?) AND seq <= ?
                    AND action IN (?, ?, ?) AND decision = 'allow' AND time >= ? AND time < ?
                ORDER BY subject_id, seq LIMIT ?
                """, arguments: [service, after?.subject ?? "", after?.seq ?? 0, through, AuditAction.detokenize.rawValue, AuditAction.lookup.rawValue,
                                 AuditAction.consentRead.rawValue,
                                 SQLiteDatabase.millis(since), SQLiteDatabase.millis(until), limit]).map(Self.event)
        }
    }

    public func instances() async throws -> [InstanceHeartbeat] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM instances ORDER BY started_at, id").map { row in
                let versions: String = row["versions"]
                return InstanceHeartbeat(
                    id: row["id"], host: row["host"], pid: row["pid"], startedAt: SQLiteDatabase.date(row["started_at"] as Int64),
                    seenAt: SQLiteDatabase.date(row["seen_at"] as Int64), versions: versions.split(separator: ",").compactMap { UInt32($0) },
                    primary: UInt32(row["primary_version"] as Int64), primarySince: SQLiteDatabase.date(row["primary_since"] as Int64))
            }
        }
    }
}
