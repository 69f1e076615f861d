public import CofreCore
public import Foundation
import Logging
public import PostgresNIO

/// The data store on PostgreSQL through postgres-nio. Every value is a bind (string interpolation
/// on `PostgresQuery` turns values into parameters); SQL text is never built from input.
public final class PostgresVaultStore: VaultStore {
    let client: PostgresClient
    let chain: AuditChain
    let writer: PostgresWriteBatcher
    let log = PostgresDatabase.silent

    public init(client: PostgresClient, chain: AuditChain) {
        self.client = client
        self.chain = chain
        writer = PostgresWriteBatcher(client: client)
    }

    public func migrate() async throws {
        try await PostgresDatabase.migrate(client, table: "cofre_migrations", [
            ("v1-subjects-fields-tokens", [
                "CREATE TABLE subjects (id TEXT PRIMARY KEY, external_ref_hash TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL, created_by TEXT NOT NULL, status TEXT NOT NULL)",
                """
                CREATE TABLE fields (subject_id TEXT NOT NULL REFERENCES subjects(id), field TEXT NOT NULL, type TEXT NOT NULL,
                    generation INTEGER NOT NULL, ciphertext BYTEA, stored_at BIGINT NOT NULL, stored_by TEXT NOT NULL,
                    status TEXT NOT NULL, retained_for TEXT, retained_until BIGINT, PRIMARY KEY (subject_id, field))
                """,
                """
                CREATE TABLE tokens (token_hash TEXT PRIMARY KEY, subject_id TEXT NOT NULL REFERENCES subjects(id), field TEXT NOT NULL,
                    generation INTEGER NOT NULL, created_at BIGINT NOT NULL, created_by TEXT NOT NULL)
                """,
                "CREATE INDEX tokens_subject_field ON tokens(subject_id, field)",
                "CREATE TABLE blind_index (field TEXT NOT NULL, hash TEXT NOT NULL, subject_id TEXT NOT NULL REFERENCES subjects(id), PRIMARY KEY (field, hash, subject_id))",
                "CREATE INDEX blind_index_subject ON blind_index(subject_id, field)",
            ]),
            ("v1-credentials", [
                "CREATE TABLE credentials (id TEXT PRIMARY KEY, service TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL, revoked_at BIGINT)",
                "CREATE INDEX credentials_service ON credentials(service)",
            ]),
            ("v1-audit", [
                """
                CREATE TABLE audit_events (seq BIGINT PRIMARY KEY, time BIGINT NOT NULL, service TEXT NOT NULL, role TEXT NOT NULL,
                    action TEXT NOT NULL, subject_id TEXT, fields TEXT NOT NULL, purpose TEXT, legal_basis TEXT, decision TEXT NOT NULL,
                    code TEXT, request_id TEXT, ref TEXT, target TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)
                """,
                "CREATE INDEX audit_subject ON audit_events(subject_id, seq)",
                "CREATE INDEX audit_service ON audit_events(service, seq)",
                "CREATE INDEX audit_ref ON audit_events(ref)",
            ]),
            ("v2-consent-ledger", [
                """
                CREATE TABLE consent_events (seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, subject_id TEXT NOT NULL REFERENCES subjects(id),
                    purpose TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL, channel TEXT, evidence BYTEA, notice_version TEXT,
                    recorded_by TEXT NOT NULL, recorded_role TEXT NOT NULL, recorded_at BIGINT NOT NULL)
                """,
                "CREATE INDEX consent_events_subject ON consent_events(subject_id, seq)",
                """
                CREATE TABLE consent_state (subject_id TEXT NOT NULL REFERENCES subjects(id), purpose TEXT NOT NULL, consent TEXT NOT NULL,
                    objection BOOLEAN NOT NULL, updated_seq BIGINT NOT NULL, PRIMARY KEY (subject_id, purpose))
                """,
            ]),
            // Created with v1-audit on this engine before 0.7; kept under the shared id for one list of migrations.
            ("v3-audit-read-indexes", [
                "CREATE INDEX IF NOT EXISTS audit_service ON audit_events(service, seq)",
                "CREATE INDEX IF NOT EXISTS audit_ref ON audit_events(ref)",
            ]),
            ("v4-erasures", [
                "CREATE TABLE erasures (subject_id TEXT PRIMARY KEY REFERENCES subjects(id), erased_at BIGINT NOT NULL, receipt TEXT NOT NULL)",
                "CREATE INDEX fields_retention ON fields(status, retained_until)",
            ]),
            ("v5-atomic-writes", [
                "ALTER TABLE fields ADD COLUMN key_group TEXT",
                """
                CREATE TABLE key_shred_queue (subject_id TEXT NOT NULL, key_group TEXT NOT NULL, generation INTEGER NOT NULL,
                    queued_at BIGINT NOT NULL, PRIMARY KEY (subject_id, key_group, generation))
                """,
            ]),
            ("v6-binding-instances", [
                """
                CREATE TABLE vault_binding (id INTEGER PRIMARY KEY CHECK (id = 1), data_store_id TEXT NOT NULL, key_store_id TEXT NOT NULL,
                    kcv TEXT NOT NULL, created_at BIGINT NOT NULL, development_ring BOOLEAN NOT NULL)
                """,
                """
                CREATE TABLE instances (id TEXT PRIMARY KEY, host TEXT NOT NULL, pid BIGINT NOT NULL, started_at BIGINT NOT NULL,
                    seen_at BIGINT NOT NULL, versions TEXT NOT NULL, primary_version BIGINT NOT NULL, primary_since BIGINT NOT NULL)
                """,
            ]),
            ("v7-write-probe", ["CREATE TABLE write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), probed_at BIGINT NOT NULL)"]),
            ("v8-contact-attempts", [
                """
                CREATE TABLE contact_attempts (id BIGSERIAL PRIMARY KEY, subject_id TEXT NOT NULL, purpose TEXT NOT NULL,
                    service TEXT NOT NULL, channel TEXT, at BIGINT NOT NULL)
                """,
                "CREATE INDEX contact_attempts_by_subject ON contact_attempts (subject_id, purpose, at)",
            ]),
            ("v9-notifications", [
                """
                CREATE TABLE outbox_events (id TEXT PRIMARY KEY, type TEXT NOT NULL, subject_id TEXT NOT NULL, fields TEXT NOT NULL,
                    purpose TEXT, at BIGINT NOT NULL, fanned_out BOOLEAN NOT NULL DEFAULT FALSE)
                """,
                "CREATE INDEX outbox_pending ON outbox_events (fanned_out, at)",
                """
                CREATE TABLE deliveries (seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, event_id TEXT NOT NULL, service TEXT NOT NULL,
                    type TEXT NOT NULL, subject_id TEXT NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
                    created_at BIGINT NOT NULL, next_attempt_at BIGINT NOT NULL, retry_until BIGINT NOT NULL, last_attempt_at BIGINT,
                    last_outcome TEXT, delivered_at BIGINT, lease_owner TEXT, lease_until BIGINT, UNIQUE (event_id, service))
                """,
                "CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at)",
                "CREATE INDEX deliveries_subject ON deliveries (subject_id)",
                """
                CREATE TABLE delivery_attempts (delivery_id TEXT NOT NULL, attempt INTEGER NOT NULL, at BIGINT NOT NULL, outcome TEXT NOT NULL,
                    http_status INTEGER, duration_ms INTEGER NOT NULL, PRIMARY KEY (delivery_id, attempt))
                """,
                "CREATE INDEX audit_service_subject ON audit_events (service, subject_id, seq)",
                "CREATE INDEX audit_action_time ON audit_events (action, time)",
            ]),
        ])
    }

    public func appliedMigrations() async throws -> [String] {
        var out: [String] = []
        for try await name in try await client.run("SELECT name FROM cofre_migrations", logger: log).decode(String.self) { out.append(name) }
        // Applied in one transaction, so their times tie: report them in the shared list's order.
        let order = Dictionary(uniqueKeysWithValues: StoreMigrations.ids.enumerated().map { ($1, $0) })
        return out.sorted { (order[$0] ?? Int.max, $0) < (order[$1] ?? Int.max, $1) }
    }

    public func checkHealth() async throws {
        try await client.run("SELECT MAX(seq) FROM audit_events", logger: log)
    }

    // MARK: the write primitive

    public func commit(_ batch: WriteBatch) async throws -> CommitResult {
        try await writer.write { conn in
            var result = CommitResult()
            for op in batch.ops { try await self.apply(op, conn, &result) }
            try await self.append(batch.audit, conn)
            return result
        }
    }

    func status(_ subject: String, _ conn: PostgresConnection) async throws -> SubjectRecord.Status? {
        var status: SubjectRecord.Status?
        for try await s in try await conn.run("SELECT status FROM subjects WHERE id = \(subject) FOR UPDATE", logger: log).decode(String.self) {
            status = SubjectRecord.Status(rawValue: s) ?? .erased
        }
        return status
    }

    func apply(_ op: WriteOp, _ conn: PostgresConnection, _ result: inout CommitResult) async throws {
        let millis = PostgresDatabase.millis
        switch op {
        case .expectSubject(let id, let allowed):
            guard let status = try await status(id, conn) else { throw StoreError(.notFound) }
            guard allowed.contains(status) else { throw StoreError(.subjectGone) }
        case .expectExternalRefFree(let hash):
            for try await existing in try await conn.run("SELECT id FROM subjects WHERE external_ref_hash = \(hash)", logger: log).decode(String.self) {
                throw StoreError(.exists, subject: existing)
            }
        case .expectField(let subject, let field, let generation, let statuses):
            var found: (Int, String)?
            for try await row in try await conn.run("""
                SELECT generation, status FROM fields WHERE subject_id = \(subject) AND field = \(field) FOR UPDATE
                """, logger: log).decode((Int, String).self) { found = row }
            guard found?.0 == generation else { throw StoreError(.conflict) }
            if let statuses, let found, !statuses.contains(FieldRecord.Status(rawValue: found.1) ?? .erased) { throw StoreError(.conflict) }
        case .expectFieldSet(let subject, let expected):
            var found: [String: Int] = [:]
            for try await (f, g) in try await conn.run("SELECT field, generation FROM fields WHERE subject_id = \(subject) FOR UPDATE", logger: log)
                .decode((String, Int).self) { found[f] = g }
            guard found == expected else { throw StoreError(.conflict) }
        case .insertSubject(let s):
            try await conn.run("""
                INSERT INTO subjects (id, external_ref_hash, created_at, created_by, status)
                VALUES (\(s.id), \(s.externalRefHash), \(millis(s.createdAt)), \(s.createdBy), \(s.status.rawValue))
                """, logger: log)
        case .setSubjectStatus(let id, let status):
            try await conn.run("UPDATE subjects SET status = \(status.rawValue) WHERE id = \(id)", logger: log)
        case .releaseExternalRef(let id):
            try await conn.run("UPDATE subjects SET external_ref_hash = 'erased:' || id WHERE id = \(id)", logger: log)
        case .putField(let f):
            try await conn.run("""
                INSERT INTO fields (subject_id, field, type, generation, key_group, ciphertext, stored_at, stored_by, status, retained_for, retained_until)
                VALUES (\(f.subject), \(f.field), \(f.type.rawValue), \(f.generation), \(f.keyGroup), \(Data(f.ciphertext)), \(millis(f.storedAt)),
                    \(f.storedBy), \(f.status.rawValue), \(f.retainedFor), \(f.retainedUntil.map(millis)))
                ON CONFLICT (subject_id, field) DO UPDATE SET type = excluded.type, generation = excluded.generation,
                    key_group = excluded.key_group, ciphertext = excluded.ciphertext, stored_at = excluded.stored_at,
                    stored_by = excluded.stored_by, status = excluded.status, retained_for = excluded.retained_for,
                    retained_until = excluded.retained_until
                """, logger: log)
        case .setFieldState(let subject, let field, let status, let retainedFor, let retainedUntil):
            try await conn.run("""
                UPDATE fields SET status = \(status.rawValue), retained_for = \(retainedFor), retained_until = \(retainedUntil.map(millis)),
                    ciphertext = CASE WHEN \(status == .erased) THEN NULL ELSE ciphertext END
                WHERE subject_id = \(subject) AND field = \(field)
                """, logger: log)
        case .deleteTokens(let subject, let field):
            try await conn.run("DELETE FROM tokens WHERE subject_id = \(subject) AND field = \(field)", logger: log)
        case .deleteIndex(let subject, let field):
            try await conn.run("DELETE FROM blind_index WHERE subject_id = \(subject) AND field = \(field)", logger: log)
        case .insertTokens(let tokens):
            for t in tokens {
                try await conn.run("""
                    INSERT INTO tokens (token_hash, subject_id, field, generation, created_at, created_by)
                    VALUES (\(t.tokenHash), \(t.subject), \(t.field), \(t.generation), \(millis(t.createdAt)), \(t.createdBy))
                    """, logger: log)
            }
        case .insertIndex(let entries):
            for i in entries {
                try await conn.run("""
                    INSERT INTO blind_index (field, hash, subject_id) VALUES (\(i.field), \(i.hash), \(i.subject)) ON CONFLICT DO NOTHING
                    """, logger: log)
            }
        case .insertConsent(let r):
            for try await seq in try await conn.run("""
                INSERT INTO consent_events (id, subject_id, purpose, kind, status, channel, evidence, notice_version, recorded_by, recorded_role, recorded_at)
                VALUES (\(r.id), \(r.subject), \(r.purpose), \(r.kind.rawValue), \(r.status.rawValue), \(r.channel), \(r.evidence.map { Data($0) }),
                    \(r.noticeVersion), \(r.recordedBy), \(r.recordedRole), \(millis(r.recordedAt)))
                RETURNING seq
                """, logger: log).decode(Int64.self) { result.consentSeqs.append(seq) }
        case .setConsentState(let subject, let purpose, let consent):
            try await conn.run("""
                INSERT INTO consent_state (subject_id, purpose, consent, objection, updated_seq)
                VALUES (\(subject), \(purpose), \(consent.rawValue), FALSE, (SELECT COALESCE(MAX(seq), 0) FROM consent_events WHERE subject_id = \(subject)))
                ON CONFLICT (subject_id, purpose) DO UPDATE SET consent = excluded.consent, updated_seq = excluded.updated_seq
                """, logger: log)
        case .setObjectionState(let subject, let purpose, let objected):
            try await conn.run("""
                INSERT INTO consent_state (subject_id, purpose, consent, objection, updated_seq)
                VALUES (\(subject), \(purpose), 'none', \(objected), (SELECT COALESCE(MAX(seq), 0) FROM consent_events WHERE subject_id = \(subject)))
                ON CONFLICT (subject_id, purpose) DO UPDATE SET objection = excluded.objection, updated_seq = excluded.updated_seq
                """, logger: log)
        case .clearEvidence(let subject):
            try await conn.run("UPDATE consent_events SET evidence = NULL WHERE subject_id = \(subject)", logger: log)
        case .insertErasureReceipt(let subject, let at, let json):
            try await conn.run("INSERT INTO erasures (subject_id, erased_at, receipt) VALUES (\(subject), \(millis(at)), \(json))", logger: log)
        case .queueKeyShred(let ids):
            for id in ids {
                try await conn.run("""
                    INSERT INTO key_shred_queue (subject_id, key_group, generation, queued_at)
                    VALUES (\(id.subject), \(id.group), \(id.generation), \(millis(Date()))) ON CONFLICT DO NOTHING
                    """, logger: log)
            }
        case .dequeueKeyShred(let ids):
            for id in ids {
                try await conn.run("""
                    DELETE FROM key_shred_queue WHERE subject_id = \(id.subject) AND key_group = \(id.group) AND generation = \(id.generation)
                    """, logger: log)
            }
        case .insertCredential(let c):
            try await conn.run("""
                INSERT INTO credentials (id, service, key_hash, created_at) VALUES (\(c.id), \(c.service), \(c.keyHash), \(millis(c.createdAt)))
                """, logger: log)
        case .revokeCredentials(let ids, let at):
            try await conn.run("UPDATE credentials SET revoked_at = \(millis(at)) WHERE id = ANY(\(ids)) AND revoked_at IS NULL", logger: log)
        case .insertBinding(let b):
            for try await _ in try await conn.run("SELECT 1 FROM vault_binding", logger: log).decode(Int.self) { throw StoreError(.conflict) }
            try await conn.run("""
                INSERT INTO vault_binding (id, data_store_id, key_store_id, kcv, created_at, development_ring)
                VALUES (1, \(b.dataStoreID), \(b.keyStoreID), \(b.kcv), \(millis(b.createdAt)), \(b.developmentRing))
                """, logger: log)
        case .heartbeat(let h):
            let versions = h.versions.map(String.init).joined(separator: ",")
            try await conn.run("""
                INSERT INTO instances (id, host, pid, started_at, seen_at, versions, primary_version, primary_since)
                VALUES (\(h.id), \(h.host), \(Int64(h.pid)), \(millis(h.startedAt)), \(millis(h.seenAt)), \(versions), \(Int64(h.primary)),
                    \(millis(h.primarySince)))
                ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, versions = excluded.versions,
                    primary_version = excluded.primary_version, primary_since = excluded.primary_since
                """, logger: log)
        case .removeInstance(let id):
            try await conn.run("DELETE FROM instances WHERE id = \(id)", logger: log)
        case .probe(let at):
            try await conn.run("""
                INSERT INTO write_probe (id, probed_at) VALUES (1, \(millis(at))) ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at
                """, logger: log)
        case .expectContactsBelow(let subject, let purpose, let since, let max):
            // Instances count and insert one at a time per subject and purpose: a transaction lock on
            // their key, held until commit, so two dialers cannot both see the last free slot.
            let lockKey = "contact:\(subject):\(purpose)"
            try await conn.run("SELECT pg_advisory_xact_lock(hashtextextended(\(lockKey), 0))", logger: log)
            var n: Int64 = 0
            for try await c in try await conn.run("""
                SELECT COUNT(*) FROM contact_attempts WHERE subject_id = \(subject) AND purpose = \(purpose) AND at >= \(millis(since))
                """, logger: log).decode(Int64.self) { n = c }
            guard n < Int64(max) else { throw StoreError(.limitReached) }
        case .insertContact(let c):
            try await conn.run("""
                INSERT INTO contact_attempts (subject_id, purpose, service, channel, at)
                VALUES (\(c.subject), \(c.purpose), \(c.service), \(c.channel), \(millis(c.at)))
                """, logger: log)
        case .insertOutbox(let e):
            try await conn.run("""
                INSERT INTO outbox_events (id, type, subject_id, fields, purpose, at)
                VALUES (\(e.id), \(e.type.rawValue), \(e.subject), \(e.fields.joined(separator: ",")), \(e.purpose), \(millis(e.at)))
                """, logger: log)
        case .fanOut(let event, let deliveries):
            guard try await count(conn.run("UPDATE outbox_events SET fanned_out = TRUE WHERE id = \(event) AND NOT fanned_out RETURNING id",
                                           logger: log)) == 1 else { throw StoreError(.conflict) }
            for d in deliveries {
                try await conn.run("""
                    INSERT INTO deliveries (id, event_id, service, type, subject_id, body, status, attempts, created_at, next_attempt_at, retry_until)
                    VALUES (\(d.id), \(d.event), \(d.service), \(d.type.rawValue), \(d.subject), \(d.body), \(d.status.rawValue), \(d.attempts),
                        \(millis(d.createdAt)), \(millis(d.nextAttemptAt)), \(millis(d.retryUntil)))
                    """, logger: log)
            }
        case .leaseDelivery(let id, let attempts, let owner, let until, let now):
            guard try await count(conn.run("""
                UPDATE deliveries SET lease_owner = \(owner), lease_until = \(millis(until))
                WHERE id = \(id) AND status = 'pending' AND attempts = \(attempts) AND (lease_until IS NULL OR lease_until <= \(millis(now)))
                RETURNING id
                """, logger: log)) == 1 else { throw StoreError(.conflict) }
        case .recordDeliveryAttempt(let a, let owner, let status, let next, let retryUntil):
            let delivered: Int64? = status == .delivered ? millis(a.at) : nil
            guard try await count(conn.run("""
                UPDATE deliveries SET attempts = \(a.attempt),
                    status = CASE WHEN \(status.rawValue) = 'failed' AND retry_until > \(millis(retryUntil)) THEN 'pending' ELSE \(status.rawValue) END,
                    next_attempt_at = \(millis(next)),
                    last_attempt_at = \(millis(a.at)), last_outcome = \(a.outcome), delivered_at = COALESCE(\(delivered), delivered_at),
                    lease_owner = NULL, lease_until = NULL
                WHERE id = \(a.delivery) AND lease_owner = \(owner) AND attempts = \(a.attempt - 1)
                RETURNING id
                """, logger: log)) == 1 else { throw StoreError(.conflict) }
            try await conn.run("""
                INSERT INTO delivery_attempts (delivery_id, attempt, at, outcome, http_status, duration_ms)
                VALUES (\(a.delivery), \(a.attempt), \(millis(a.at)), \(a.outcome), \(a.httpStatus), \(a.durationMs))
                """, logger: log)
        case .retryDelivery(let id, let at, let until):
            var status: String?
            for try await s in try await conn.run("SELECT status FROM deliveries WHERE id = \(id) FOR UPDATE", logger: log).decode(String.self) { status = s }
            guard let status else { throw StoreError(.notFound) }
            guard status != DeliveryStatus.delivered.rawValue else { throw StoreError(.conflict) }
            try await conn.run("""
                UPDATE deliveries SET status = 'pending', next_attempt_at = \(millis(at)), retry_until = \(millis(until)) WHERE id = \(id)
                """, logger: log)
        }
    }

    // MARK: audit

    /// Chains and inserts events inside the batch's transaction (which holds the chain lock).
    func append(_ drafts: [AuditDraft], _ conn: PostgresConnection) async throws {
        guard !drafts.isEmpty else { return }
        do {
            var seq: Int64 = 0
            var prev = AuditChain.genesis
            for try await (s, h) in try await conn.run("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1", logger: log)
                .decode((Int64, String).self) {
                seq = s
                prev = h
            }
            // One multi-row INSERT per request's events (a 1,000-token reveal is one statement, not 1,000).
            var sql = """
                INSERT INTO audit_events (seq, time, service, role, action, subject_id, fields, purpose, legal_basis,
                    decision, code, request_id, ref, target, prev_hash, hash) VALUES
                """
            var binds = PostgresBindings(capacity: drafts.count * 16)
            for (i, d) in drafts.enumerated() {
                seq += 1
                let e = chain.seal(d, seq: seq, prevHash: prev)
                let base = i * 16
                sql += (i == 0 ? " " : ", ") + "(" + (1...16).map { "$\(base + $0)" }.joined(separator: ", ") + ")"
                binds.append(e.seq)
                binds.append(AuditChain.millis(e.draft.time))
                binds.append(e.draft.service)
                binds.append(e.draft.role)
                binds.append(e.draft.action)
                binds.append(e.draft.subject)
                binds.append(e.draft.fields.joined(separator: ","))
                binds.append(e.draft.purpose)
                binds.append(e.draft.legalBasis)
                binds.append(e.draft.decision.rawValue)
                binds.append(e.draft.code)
                binds.append(e.draft.requestID)
                binds.append(e.draft.ref)
                binds.append(e.draft.target)
                binds.append(e.prevHash)
                binds.append(e.hash)
                prev = e.hash
            }
            try await conn.run(PostgresQuery(unsafeSQL: sql, binds: binds), logger: log)
        } catch {
            throw StoreError(.auditUnavailable)
        }
    }

    // MARK: reads

    func credentials(_ rows: PostgresRowSequence) async throws -> [CredentialRecord] {
        var out: [CredentialRecord] = []
        for try await (id, service, hash, created, revoked) in rows.decode((String, String, String, Int64, Int64?).self) {
            out.append(CredentialRecord(id: id, service: service, keyHash: hash, createdAt: PostgresDatabase.date(created),
                                        revokedAt: revoked.map(PostgresDatabase.date)))
        }
        return out
    }

    public func credential(keyHash: String) async throws -> CredentialRecord? {
        try await credentials(client.run("SELECT id, service, key_hash, created_at, revoked_at FROM credentials WHERE key_hash = \(keyHash)", logger: log)).first
    }

    public func credentials() async throws -> [CredentialRecord] {
        try await credentials(client.run("SELECT id, service, key_hash, created_at, revoked_at FROM credentials ORDER BY created_at", logger: log))
    }

    public func subject(id: String) async throws -> SubjectRecord? {
        var out: SubjectRecord?
        for try await (id, ref, created, by, status) in try await client.run(
            "SELECT id, external_ref_hash, created_at, created_by, status FROM subjects WHERE id = \(id)", logger: log
        ).decode((String, String, Int64, String, String).self) {
            out = SubjectRecord(id: id, externalRefHash: ref, createdAt: PostgresDatabase.date(created), createdBy: by,
                                status: SubjectRecord.Status(rawValue: status) ?? .erased)
        }
        return out
    }

    static let fieldColumns = "subject_id, field, type, generation, key_group, ciphertext, stored_at, stored_by, status, retained_for, retained_until"

    func fieldRecords(_ rows: PostgresRowSequence) async throws -> [FieldRecord] {
        var out: [FieldRecord] = []
        for try await (s, f, t, g, k, c, at, by, st, rf, ru) in rows.decode(
            (String, String, String, Int, String?, Data?, Int64, String, String, String?, Int64?).self) {
            out.append(FieldRecord(subject: s, field: f, type: FieldType(rawValue: t) ?? .text, generation: g, keyGroup: k,
                                   ciphertext: c.map(Array.init) ?? [], storedAt: PostgresDatabase.date(at), storedBy: by,
                                   status: FieldRecord.Status(rawValue: st) ?? .erased, retainedFor: rf, retainedUntil: ru.map(PostgresDatabase.date)))
        }
        return out
    }

    public func fields(subjects: Set<String>) async throws -> [FieldRecord] {
        guard !subjects.isEmpty else { return [] }
        return try await fieldRecords(client.run("SELECT \(unescaped: Self.fieldColumns) FROM fields WHERE subject_id = ANY(\(Array(subjects)))", logger: log))
    }

    public func snapshot(tokenHashes: [String], subjects: Set<String>, index: BlindIndexQuery?) async throws -> StoreSnapshot {
        // One connection, one REPEATABLE READ transaction: tokens, fields, states and statuses as of one instant.
        try await client.withConnection { conn in
            try await conn.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: self.log)
            do {
                var snap = StoreSnapshot()
                if !tokenHashes.isEmpty {
                    let rows = try await conn.run("""
                        SELECT token_hash, subject_id, field, generation, created_at, created_by FROM tokens WHERE token_hash = ANY(\(Array(Set(tokenHashes))))
                        """, logger: self.log)
                    for try await (h, s, f, g, at, by) in rows.decode((String, String, String, Int, Int64, String).self) {
                        snap.tokens[h] = TokenRecord(tokenHash: h, subject: s, field: f, generation: g, createdAt: PostgresDatabase.date(at), createdBy: by)
                    }
                }
                if let index {
                    for try await subject in try await conn.run("""
                        SELECT subject_id FROM blind_index WHERE field = \(index.field) AND hash = \(index.hash) ORDER BY subject_id
                        """, logger: self.log).decode(String.self) { snap.indexed.append(subject) }
                }
                let all = Array(subjects.union(snap.tokens.values.map(\.subject)).union(snap.indexed))
                if !all.isEmpty {
                    for try await (id, status) in try await conn.run("SELECT id, status FROM subjects WHERE id = ANY(\(all))", logger: self.log)
                        .decode((String, String).self) { snap.subjects[id] = SubjectRecord.Status(rawValue: status) ?? .erased }
                    for f in try await self.fieldRecords(conn.run(
                        "SELECT \(unescaped: Self.fieldColumns) FROM fields WHERE subject_id = ANY(\(all))", logger: self.log)) {
                        snap.fields[f.subject, default: [:]][f.field] = f
                    }
                    for try await (s, p, c, o) in try await conn.run("""
                        SELECT subject_id, purpose, consent, objection FROM consent_state WHERE subject_id = ANY(\(all))
                        """, logger: self.log).decode((String, String, String, Bool).self) {
                        snap.states[s, default: [:]][p] = PurposeState(consent: ConsentState(rawValue: c) ?? .none, objection: o)
                    }
                }
                try await conn.run("COMMIT", logger: self.log)
                return snap
            } catch {
                _ = try? await conn.run("ROLLBACK", logger: self.log)
                throw error
            }
        }
    }

    public func lookup(field: String, hash: String) async throws -> [String] {
        var out: [String] = []
        for try await s in try await client.run("""
            SELECT subject_id FROM blind_index WHERE field = \(field) AND hash = \(hash) ORDER BY subject_id
            """, logger: log).decode(String.self) { out.append(s) }
        return out
    }

    public func consentHistory(subject: String) async throws -> [ConsentRecord] {
        var out: [ConsentRecord] = []
        let rows = try await client.run("""
            SELECT seq, id, subject_id, purpose, kind, status, channel, evidence, notice_version, recorded_by, recorded_role, recorded_at
            FROM consent_events WHERE subject_id = \(subject) ORDER BY seq
            """, logger: log)
        for try await (seq, id, s, p, k, st, ch, ev, nv, by, role, at) in rows.decode(
            (Int64, String, String, String, String, String, String?, Data?, String?, String, String, Int64).self) {
            out.append(ConsentRecord(id: id, subject: s, purpose: p, kind: ConsentRecord.Kind(rawValue: k) ?? .consent,
                                     status: ConsentRecord.Status(rawValue: st) ?? .revoked, channel: ch, evidence: ev.map(Array.init),
                                     noticeVersion: nv, recordedBy: by, recordedRole: role, recordedAt: PostgresDatabase.date(at), seq: seq))
        }
        return out
    }

    // MARK: reading the audit log

    static let auditColumns = "seq, time, service, role, action, subject_id, fields, purpose, legal_basis, decision, code, request_id, ref, target, prev_hash, hash"

    func events(_ rows: PostgresRowSequence) async throws -> [AuditEvent] {
        var out: [AuditEvent] = []
        for try await (seq, time, service, role, action, subject, fields, purpose, basis, decision, code, rid, ref, target, prev, hash) in rows.decode(
            (Int64, Int64, String, String, String, String?, String, String?, String?, String, String?, String?, String?, String?, String, String).self) {
            let draft = AuditDraft(time: PostgresDatabase.date(time), service: service, role: role, action: action, subject: subject,
                                   fields: fields.isEmpty ? [] : fields.split(separator: ",").map(String.init), purpose: purpose,
                                   legalBasis: basis, decision: AuditDraft.Decision(rawValue: decision) ?? .deny, code: code,
                                   requestID: rid, ref: ref, target: target)
            out.append(AuditEvent(seq: seq, draft: draft, prevHash: prev, hash: hash,
                                  stored: .init(timeMillis: time, fields: fields, decision: decision)))
        }
        return out
    }

    /// A `SELECT … WHERE` built from optional filters, each bound, never spliced.
    struct Filtered {
        var sql: String
        var binds = PostgresBindings()
        init(_ select: String) { sql = select + " WHERE TRUE" }
        mutating func add(_ clause: String, _ value: String?) {
            guard let value else { return }
            binds.append(value)
            sql += " AND \(clause) $\(binds.count)"
        }
        mutating func add(_ clause: String, _ value: Int64?) {
            guard let value else { return }
            binds.append(value)
            sql += " AND \(clause) $\(binds.count)"
        }
        /// Ordered by `seq`, at most `limit` rows.
        mutating func query(limit: Int, descending: Bool = false) -> PostgresQuery {
            binds.append(Int64(limit))
            return PostgresQuery(unsafeSQL: sql + " ORDER BY seq\(descending ? " DESC" : "") LIMIT $\(binds.count)", binds: binds)
        }
    }

    public func auditEvents(_ q: AuditQuery) async throws -> [AuditEvent] {
        var f = Filtered("SELECT \(Self.auditColumns) FROM audit_events")
        f.add("seq >", q.after)
        f.add("seq <=", q.through)
        f.add("subject_id =", q.subject)
        f.add("service =", q.service)
        f.add("purpose =", q.purpose)
        f.add("action =", q.action)
        f.add("decision =", q.decision?.rawValue)
        f.add("time >=", q.since.map(PostgresDatabase.millis))
        f.add("time <", q.until.map(PostgresDatabase.millis))
        f.add("ref =", q.ref)
        return try await events(client.run(f.query(limit: q.limit, descending: q.newestFirst), logger: log))
    }

    public func auditPage(after: Int64, limit: Int) async throws -> [AuditEvent] {
        try await events(client.run("SELECT \(unescaped: Self.auditColumns) FROM audit_events WHERE seq > \(after) ORDER BY seq LIMIT \(limit)", logger: log))
    }

    public func lastAuditEvent() async throws -> AuditEvent? {
        try await events(client.run("SELECT \(unescaped: Self.auditColumns) FROM audit_events ORDER BY seq DESC LIMIT 1", logger: log)).first
    }

    public func contactAttempts(subject: String, since: Date?) async throws -> [ContactAttempt] {
        var out: [ContactAttempt] = []
        let from = since.map(PostgresDatabase.millis) ?? Int64.min
        let rows = try await client.run("""
            SELECT subject_id, purpose, service, channel, at FROM contact_attempts WHERE subject_id = \(subject) AND at >= \(from) ORDER BY at, id
            """, logger: log)
        for try await (s, p, svc, ch, at) in rows.decode((String, String, String, String?, Int64).self) {
            out.append(ContactAttempt(subject: s, purpose: p, service: svc, channel: ch, at: PostgresDatabase.date(at)))
        }
        return out
    }

    public func erasureReceiptJSON(subject: String) async throws -> String? {
        var json: String?
        for try await r in try await client.run("SELECT receipt FROM erasures WHERE subject_id = \(subject)", logger: log).decode(String.self) { json = r }
        return json
    }

    public func expiredRetentions(now: Date, limit: Int) async throws -> [FieldRecord] {
        try await fieldRecords(client.run("""
            SELECT \(unescaped: Self.fieldColumns) FROM fields WHERE status = 'blocked' AND retained_until <= \(PostgresDatabase.millis(now))
            ORDER BY subject_id, field LIMIT \(limit)
            """, logger: log))
    }

    public func queuedKeyShreds(limit: Int) async throws -> [DataKeyID] {
        var out: [DataKeyID] = []
        for try await (s, g, n) in try await client.run("""
            SELECT subject_id, key_group, generation FROM key_shred_queue ORDER BY queued_at LIMIT \(limit)
            """, logger: log).decode((String, String, Int).self) { out.append(DataKeyID(subject: s, group: g, generation: n)) }
        return out
    }

    public func binding() async throws -> VaultBinding? {
        var out: VaultBinding?
        for try await (d, k, kcv, at, dev) in try await client.run("""
            SELECT data_store_id, key_store_id, kcv, created_at, development_ring FROM vault_binding WHERE id = 1
            """, logger: log).decode((String, String, String, Int64, Bool).self) {
            out = VaultBinding(dataStoreID: d, keyStoreID: k, kcv: kcv, createdAt: PostgresDatabase.date(at), developmentRing: dev)
        }
        return out
    }

    public func hasData() async throws -> Bool {
        var any = false
        for try await b in try await client.run("""
            SELECT EXISTS (SELECT 1 FROM subjects) OR EXISTS (SELECT 1 FROM credentials) OR EXISTS (SELECT 1 FROM audit_events)
            """, logger: log).decode(Bool.self) { any = b }
        return any
    }

    /// How many rows a statement returned (an `UPDATE … RETURNING` counts what it changed).
    func count(_ rows: PostgresRowSequence) async throws -> Int {
        var n = 0
        for try await _ in rows { n += 1 }
        return n
    }

    public func subjects(externalRefHash: String) async throws -> [String] {
        var out: [String] = []
        for try await id in try await client.run("SELECT id FROM subjects WHERE external_ref_hash = \(externalRefHash)", logger: log).decode(String.self) {
            out.append(id)
        }
        return out
    }

    public func auditStats(since: Date, until: Date, bucketMillis: Int64) async throws -> [AuditStatRow] {
        var out: [AuditStatRow] = []
        for try await (bucket, purpose, service, decision, code, n) in try await client.run("""
            SELECT time / \(bucketMillis) AS bucket, purpose, service, decision, code, COUNT(*) FROM audit_events
            WHERE action = \(AuditAction.detokenize.rawValue) AND time >= \(PostgresDatabase.millis(since)) AND time < \(PostgresDatabase.millis(until))
            GROUP BY bucket, purpose, service, decision, code
            """, logger: log).decode((Int64, String?, String, String, String?, Int64).self) {
            out.append(AuditStatRow(bucket: bucket, purpose: purpose, service: service, decision: AuditDraft.Decision(rawValue: decision) ?? .deny,
                                    code: code, count: Int(n)))
        }
        return out
    }

    public func pendingOutbox(atOrBefore: Date, limit: Int) async throws -> [OutboxEvent] {
        var out: [OutboxEvent] = []
        for try await (id, type, subject, fields, purpose, at) in try await client.run("""
            SELECT id, type, subject_id, fields, purpose, at FROM outbox_events WHERE NOT fanned_out AND at <= \(PostgresDatabase.millis(atOrBefore))
            ORDER BY at, id LIMIT \(limit)
            """, logger: log).decode((String, String, String, String, String?, Int64).self) {
            guard let t = NotificationType(rawValue: type) else { continue }
            out.append(OutboxEvent(id: id, type: t, subject: subject, fields: fields.isEmpty ? [] : fields.split(separator: ",").map(String.init),
                                   purpose: purpose, at: PostgresDatabase.date(at)))
        }
        return out
    }

    public func revealRecipients(subject: String) async throws -> Set<RevealRecord> {
        var out: Set<RevealRecord> = []
        for try await (service, purpose, fields) in try await client.run("""
            SELECT DISTINCT service, purpose, fields FROM audit_events
            WHERE subject_id = \(subject) AND action = \(AuditAction.detokenize.rawValue) AND decision = 'allow'
            """, logger: log).decode((String, String?, String).self) {
            out.insert(RevealRecord(service: service, purpose: purpose, fields: fields.isEmpty ? [] : fields.split(separator: ",").map(String.init)))
        }
        return out
    }

    static let deliveryColumns = """
        seq, id, event_id, service, type, subject_id, body, status, attempts, created_at, next_attempt_at, retry_until, last_attempt_at, \
        last_outcome, delivered_at
        """

    public func deliveries(_ q: DeliveryQuery) async throws -> [DeliveryRecord] {
        var f = Filtered("SELECT \(Self.deliveryColumns) FROM deliveries")
        f.add("seq >", q.after)
        f.add("id =", q.id)
        f.add("status =", q.status?.rawValue)
        f.add("service =", q.service)
        f.add("subject_id =", q.subject)
        f.add("next_attempt_at <=", q.dueAt.map(PostgresDatabase.millis))
        var out: [DeliveryRecord] = []
        let rows = try await client.run(f.query(limit: q.limit), logger: log)
        for try await (seq, id, event, service, type, subject, body, status, attempts, created, next, until, last, outcome, delivered) in rows.decode(
            (Int64, String, String, String, String, String, String, String, Int32, Int64, Int64, Int64, Int64?, String?, Int64?).self) {
            guard let t = NotificationType(rawValue: type), let st = DeliveryStatus(rawValue: status) else { continue }
            out.append(DeliveryRecord(seq: seq, id: id, event: event, service: service, type: t, subject: subject, body: body, status: st,
                                      attempts: Int(attempts), createdAt: PostgresDatabase.date(created), nextAttemptAt: PostgresDatabase.date(next),
                                      retryUntil: PostgresDatabase.date(until), lastAttemptAt: last.map(PostgresDatabase.date),
                                      lastOutcome: outcome, deliveredAt: delivered.map(PostgresDatabase.date)))
        }
        return out
    }

    public func deliveryAttempts(delivery: String) async throws -> [DeliveryAttemptRecord] {
        var out: [DeliveryAttemptRecord] = []
        for try await (id, attempt, at, outcome, status, ms) in try await client.run("""
            SELECT delivery_id, attempt, at, outcome, http_status, duration_ms FROM delivery_attempts WHERE delivery_id = \(delivery) ORDER BY attempt
            """, logger: log).decode((String, Int32, Int64, String, Int32?, Int32).self) {
            out.append(DeliveryAttemptRecord(delivery: id, attempt: Int(attempt), at: PostgresDatabase.date(at), outcome: outcome,
                                             httpStatus: status.map(Int.init), durationMs: Int(ms)))
        }
        return out
    }

    public func accessEvents(service: String, since: Date, until: Date, through: Int64, after: AccessCursor?, limit: Int) async throws -> [AuditEvent] {
        try await events(client.run("""
            SELECT \(unescaped: Self.auditColumns) FROM audit_events
            WHERE service = \(service) AND subject_id IS NOT NULL AND (subject_id, seq) > (\(after?.subject ?? ""), \(after?.seq ?? 0)) AND seq <= \(through)
                AND action IN (\(AuditAction.detokenize.rawValue), \(AuditAction.lookup.rawValue), \(AuditAction.consentRead.rawValue)) AND decision = 'allow'
                AND time >= \(PostgresDatabase.millis(since)) AND time < \(PostgresDatabase.millis(until))
            ORDER BY subject_id, seq LIMIT \(limit)
            """, logger: log))
    }

    public func instances() async throws -> [InstanceHeartbeat] {
        var out: [InstanceHeartbeat] = []
        for try await (id, host, pid, started, seen, versions, primary, since) in try await client.run("""
            SELECT id, host, pid, started_at, seen_at, versions, primary_version, primary_since FROM instances ORDER BY started_at, id
            """, logger: log).decode((String, String, Int64, Int64, Int64, String, Int64, Int64).self) {
            out.append(InstanceHeartbeat(id: id, host: host, pid: Int(pid), startedAt: PostgresDatabase.date(started),
                                         seenAt: PostgresDatabase.date(seen), versions: versions.split(separator: ",").compactMap { UInt32($0) },
                                         primary: UInt32(primary), primarySince: PostgresDatabase.date(since)))
        }
        return out
    }
}
