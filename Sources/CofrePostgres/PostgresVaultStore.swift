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
            ("v4-erasures", [
                "CREATE TABLE erasures (subject_id TEXT PRIMARY KEY REFERENCES subjects(id), erased_at BIGINT NOT NULL, receipt TEXT NOT NULL)",
                "CREATE INDEX fields_retention ON fields(status, retained_until)",
            ]),
        ])
    }

    public func checkHealth() async throws {
        try await client.query("SELECT MAX(seq) FROM audit_events", logger: log)
    }

    // MARK: audit

    /// Chains and inserts events inside the batch's transaction (which holds the chain lock).
    func append(_ drafts: [AuditDraft], _ conn: PostgresConnection) async throws {
        guard !drafts.isEmpty else { return }
        do {
            var seq: Int64 = 0
            var prev = AuditChain.genesis
            for try await (s, h) in try await conn.query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1", logger: log)
                .decode((Int64, String).self) {
                seq = s
                prev = h
            }
            for d in drafts {
                seq += 1
                let e = chain.seal(d, seq: seq, prevHash: prev)
                let fields = e.draft.fields.joined(separator: ",")
                try await conn.query("""
                    INSERT INTO audit_events (seq, time, service, role, action, subject_id, fields, purpose, legal_basis,
                        decision, code, request_id, ref, target, prev_hash, hash)
                    VALUES (\(e.seq), \(AuditChain.millis(e.draft.time)), \(e.draft.service), \(e.draft.role), \(e.draft.action),
                        \(e.draft.subject), \(fields), \(e.draft.purpose), \(e.draft.legalBasis), \(e.draft.decision.rawValue),
                        \(e.draft.code), \(e.draft.requestID), \(e.draft.ref), \(e.draft.target), \(e.prevHash), \(e.hash))
                    """, logger: log)
                prev = e.hash
            }
        } catch {
            throw StoreError(.auditUnavailable)
        }
    }

    public func appendAudit(_ events: [AuditDraft]) async throws {
        try await writer.write { conn in try await self.append(events, conn) }
    }

    // MARK: credentials

    public func insertCredential(_ c: CredentialRecord, audit: AuditDraft) async throws {
        try await writer.write { conn in
            try await conn.query("""
                INSERT INTO credentials (id, service, key_hash, created_at) VALUES (\(c.id), \(c.service), \(c.keyHash), \(PostgresDatabase.millis(c.createdAt)))
                """, logger: self.log)
            try await self.append([audit], conn)
        }
    }

    public func revokeCredentials(service: String, at: Date, audit: AuditDraft) async throws -> Int {
        try await writer.write { conn in
            var n = 0
            for try await _ in try await conn.query("""
                UPDATE credentials SET revoked_at = \(PostgresDatabase.millis(at)) WHERE service = \(service) AND revoked_at IS NULL RETURNING 1
                """, logger: self.log).decode(Int.self) { n += 1 }
            var a = audit
            a.code = "revoked_\(n)"
            try await self.append([a], conn)
            return n
        }
    }

    func credentials(_ rows: PostgresRowSequence) async throws -> [CredentialRecord] {
        var out: [CredentialRecord] = []
        for try await (id, service, hash, created, revoked) in rows.decode((String, String, String, Int64, Int64?).self) {
            out.append(CredentialRecord(id: id, service: service, keyHash: hash, createdAt: PostgresDatabase.date(created),
                                        revokedAt: revoked.map(PostgresDatabase.date)))
        }
        return out
    }

    public func credential(keyHash: String) async throws -> CredentialRecord? {
        try await credentials(client.query("SELECT id, service, key_hash, created_at, revoked_at FROM credentials WHERE key_hash = \(keyHash)", logger: log)).first
    }

    public func credentials() async throws -> [CredentialRecord] {
        try await credentials(client.query("SELECT id, service, key_hash, created_at, revoked_at FROM credentials ORDER BY created_at", logger: log))
    }

    // MARK: subjects and fields

    static func insert(_ f: FieldRecord, _ conn: PostgresConnection, _ log: Logger) async throws {
        try await conn.query("""
            INSERT INTO fields (subject_id, field, type, generation, ciphertext, stored_at, stored_by, status, retained_for, retained_until)
            VALUES (\(f.subject), \(f.field), \(f.type.rawValue), \(f.generation), \(Data(f.ciphertext)), \(PostgresDatabase.millis(f.storedAt)),
                \(f.storedBy), \(f.status.rawValue), \(f.retainedFor), \(f.retainedUntil.map(PostgresDatabase.millis)))
            ON CONFLICT (subject_id, field) DO UPDATE SET type = excluded.type, generation = excluded.generation,
                ciphertext = excluded.ciphertext, stored_at = excluded.stored_at, stored_by = excluded.stored_by,
                status = excluded.status, retained_for = excluded.retained_for, retained_until = excluded.retained_until
            """, logger: log)
    }

    static func insert(_ tokens: [TokenRecord], _ index: [BlindIndexEntry], _ conn: PostgresConnection, _ log: Logger) async throws {
        for t in tokens {
            try await conn.query("""
                INSERT INTO tokens (token_hash, subject_id, field, generation, created_at, created_by)
                VALUES (\(t.tokenHash), \(t.subject), \(t.field), \(t.generation), \(PostgresDatabase.millis(t.createdAt)), \(t.createdBy))
                """, logger: log)
        }
        for i in index {
            try await conn.query("""
                INSERT INTO blind_index (field, hash, subject_id) VALUES (\(i.field), \(i.hash), \(i.subject)) ON CONFLICT DO NOTHING
                """, logger: log)
        }
    }

    func status(of subject: String, _ conn: PostgresConnection) async throws -> String? {
        var status: String?
        for try await s in try await conn.query("SELECT status FROM subjects WHERE id = \(subject)", logger: log).decode(String.self) { status = s }
        return status
    }

    public func createSubject(_ s: SubjectRecord, fields: [FieldRecord], tokens: [TokenRecord], index: [BlindIndexEntry],
                              audit: [AuditDraft], conflictAudit: AuditDraft) async throws -> String? {
        try await writer.write { conn in
            var existing: String?
            for try await id in try await conn.query("SELECT id FROM subjects WHERE external_ref_hash = \(s.externalRefHash)", logger: self.log)
                .decode(String.self) { existing = id }
            if let existing {
                var refused = conflictAudit
                refused.subject = existing
                try await self.append([refused], conn)
                return existing
            }
            try await conn.query("""
                INSERT INTO subjects (id, external_ref_hash, created_at, created_by, status)
                VALUES (\(s.id), \(s.externalRefHash), \(PostgresDatabase.millis(s.createdAt)), \(s.createdBy), \(s.status.rawValue))
                """, logger: self.log)
            for f in fields { try await Self.insert(f, conn, self.log) }
            try await Self.insert(tokens, index, conn, self.log)
            try await self.append(audit, conn)
            return nil
        }
    }

    public func subject(id: String) async throws -> SubjectRecord? {
        var out: SubjectRecord?
        for try await (id, ref, created, by, status) in try await client.query(
            "SELECT id, external_ref_hash, created_at, created_by, status FROM subjects WHERE id = \(id)", logger: log
        ).decode((String, String, Int64, String, String).self) {
            out = SubjectRecord(id: id, externalRefHash: ref, createdAt: PostgresDatabase.date(created), createdBy: by,
                                status: SubjectRecord.Status(rawValue: status) ?? .erased)
        }
        return out
    }

    static let fieldColumns = "subject_id, field, type, generation, ciphertext, stored_at, stored_by, status, retained_for, retained_until"

    func fieldRecords(_ rows: PostgresRowSequence) async throws -> [FieldRecord] {
        var out: [FieldRecord] = []
        for try await (s, f, t, g, c, at, by, st, rf, ru) in rows.decode((String, String, String, Int, Data?, Int64, String, String, String?, Int64?).self) {
            out.append(FieldRecord(subject: s, field: f, type: FieldType(rawValue: t) ?? .text, generation: g, ciphertext: c.map(Array.init) ?? [],
                                   storedAt: PostgresDatabase.date(at), storedBy: by, status: FieldRecord.Status(rawValue: st) ?? .erased,
                                   retainedFor: rf, retainedUntil: ru.map(PostgresDatabase.date)))
        }
        return out
    }

    public func fields(subject: String) async throws -> [FieldRecord] {
        try await fieldRecords(client.query("SELECT \(unescaped: Self.fieldColumns) FROM fields WHERE subject_id = \(subject) ORDER BY field", logger: log))
    }

    public func fields(subjects: Set<String>) async throws -> [FieldRecord] {
        guard !subjects.isEmpty else { return [] }
        return try await fieldRecords(client.query("SELECT \(unescaped: Self.fieldColumns) FROM fields WHERE subject_id = ANY(\(Array(subjects)))", logger: log))
    }

    public func putFields(subject: String, _ writes: [FieldWrite], tokens: [TokenRecord], index: [BlindIndexEntry], audit: [AuditDraft]) async throws {
        try await writer.write { conn in
            guard try await self.status(of: subject, conn) == "active" else { throw StoreError(.notFound) }
            for w in writes {
                var current: Int?
                for try await g in try await conn.query("SELECT generation FROM fields WHERE subject_id = \(subject) AND field = \(w.record.field)",
                                                        logger: self.log).decode(Int.self) { current = g }
                guard current == w.replacing else { throw StoreError(.conflict) }
                try await Self.insert(w.record, conn, self.log)
                try await conn.query("DELETE FROM tokens WHERE subject_id = \(subject) AND field = \(w.record.field)", logger: self.log)
                try await conn.query("DELETE FROM blind_index WHERE subject_id = \(subject) AND field = \(w.record.field)", logger: self.log)
            }
            try await Self.insert(tokens, index, conn, self.log)
            try await self.append(audit, conn)
        }
    }

    public func tokens(hashes: [String]) async throws -> [String: TokenRecord] {
        guard !hashes.isEmpty else { return [:] }
        var out: [String: TokenRecord] = [:]
        let rows = try await client.query("""
            SELECT token_hash, subject_id, field, generation, created_at, created_by FROM tokens WHERE token_hash = ANY(\(Array(Set(hashes))))
            """, logger: log)
        for try await (h, s, f, g, at, by) in rows.decode((String, String, String, Int, Int64, String).self) {
            out[h] = TokenRecord(tokenHash: h, subject: s, field: f, generation: g, createdAt: PostgresDatabase.date(at), createdBy: by)
        }
        return out
    }

    // MARK: lookup and consent

    public func insertTokens(_ tokens: [TokenRecord], audit: [AuditDraft]) async throws {
        try await writer.write { conn in
            for t in tokens {
                var current: Int?
                for try await g in try await conn.query("""
                    SELECT generation FROM fields WHERE subject_id = \(t.subject) AND field = \(t.field) AND status <> 'erased'
                    """, logger: self.log).decode(Int.self) { current = g }
                guard current == t.generation else { throw StoreError(.conflict) }
            }
            try await Self.insert(tokens, [], conn, self.log)
            try await self.append(audit, conn)
        }
    }

    public func lookup(field: String, hash: String) async throws -> [String] {
        var out: [String] = []
        for try await s in try await client.query("""
            SELECT subject_id FROM blind_index WHERE field = \(field) AND hash = \(hash) ORDER BY subject_id
            """, logger: log).decode(String.self) { out.append(s) }
        return out
    }

    public func appendConsent(_ r: ConsentRecord, audit: AuditDraft) async throws -> Int64 {
        try await writer.write { conn in
            guard try await self.status(of: r.subject, conn) == "active" else { throw StoreError(.notFound) }
            var seq: Int64 = 0
            for try await s in try await conn.query("""
                INSERT INTO consent_events (id, subject_id, purpose, kind, status, channel, evidence, notice_version, recorded_by, recorded_role, recorded_at)
                VALUES (\(r.id), \(r.subject), \(r.purpose), \(r.kind.rawValue), \(r.status.rawValue), \(r.channel), \(r.evidence.map { Data($0) }),
                    \(r.noticeVersion), \(r.recordedBy), \(r.recordedRole), \(PostgresDatabase.millis(r.recordedAt)))
                RETURNING seq
                """, logger: self.log).decode(Int64.self) { seq = s }
            let isConsent = r.kind == .consent
            let consent = r.status == .granted ? "granted" : (r.status == .revoked ? "revoked" : "none")
            let objection = r.status == .objected
            try await conn.query("""
                INSERT INTO consent_state (subject_id, purpose, consent, objection, updated_seq)
                VALUES (\(r.subject), \(r.purpose), \(consent), \(objection), \(seq))
                ON CONFLICT (subject_id, purpose) DO UPDATE SET
                    consent = CASE WHEN \(isConsent) THEN excluded.consent ELSE consent_state.consent END,
                    objection = CASE WHEN \(isConsent) THEN consent_state.objection ELSE excluded.objection END,
                    updated_seq = excluded.updated_seq
                """, logger: self.log)
            try await self.append([audit], conn)
            return seq
        }
    }

    public func consentHistory(subject: String) async throws -> [ConsentRecord] {
        var out: [ConsentRecord] = []
        let rows = try await client.query("""
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

    public func consentStates(subjects: Set<String>) async throws -> [String: [String: PurposeState]] {
        guard !subjects.isEmpty else { return [:] }
        var out: [String: [String: PurposeState]] = [:]
        for try await (s, p, c, o) in try await client.query("""
            SELECT subject_id, purpose, consent, objection FROM consent_state WHERE subject_id = ANY(\(Array(subjects)))
            """, logger: log).decode((String, String, String, Bool).self) {
            let consent: ConsentState = c == "granted" ? .granted : (c == "revoked" ? .revoked : .none)
            out[s, default: [:]][p] = PurposeState(consent: consent, objection: o)
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
            out.append(AuditEvent(seq: seq, draft: draft, prevHash: prev, hash: hash))
        }
        return out
    }

    public func auditEvents(_ q: AuditQuery) async throws -> [AuditEvent] {
        var sql = "SELECT \(Self.auditColumns) FROM audit_events WHERE TRUE"
        var binds = PostgresBindings()
        func add(_ clause: String, _ value: String?) {
            guard let value else { return }
            binds.append(value)
            sql += " AND \(clause) $\(binds.count)"
        }
        func add(_ clause: String, _ value: Int64?) {
            guard let value else { return }
            binds.append(value)
            sql += " AND \(clause) $\(binds.count)"
        }
        add("seq >", q.after)
        add("seq <=", q.through)
        add("subject_id =", q.subject)
        add("service =", q.service)
        add("purpose =", q.purpose)
        add("action =", q.action)
        add("decision =", q.decision?.rawValue)
        add("time >=", q.since.map(PostgresDatabase.millis))
        add("time <", q.until.map(PostgresDatabase.millis))
        add("ref =", q.ref)
        binds.append(Int64(q.limit))
        sql += " ORDER BY seq LIMIT $\(binds.count)"
        return try await events(client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: log))
    }

    public func auditPage(after: Int64, limit: Int) async throws -> [AuditEvent] {
        try await events(client.query("SELECT \(unescaped: Self.auditColumns) FROM audit_events WHERE seq > \(after) ORDER BY seq LIMIT \(limit)", logger: log))
    }

    public func lastAuditEvent() async throws -> AuditEvent? {
        try await events(client.query("SELECT \(unescaped: Self.auditColumns) FROM audit_events ORDER BY seq DESC LIMIT 1", logger: log)).first
    }

    // MARK: erasure and retention

    static let receiptEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .millisecondsSince1970
        return e
    }()

    public func erase(subject: String, erased: [String], retained: [RetainedField], receipt: ErasureReceipt, audit: AuditDraft) async throws {
        let json = String(decoding: try Self.receiptEncoder.encode(receipt), as: UTF8.self)
        try await writer.write { conn in
            guard try await self.status(of: subject, conn) != nil else { throw StoreError(.notFound) }
            for field in erased {
                try await conn.query("""
                    UPDATE fields SET status = 'erased', ciphertext = NULL, retained_for = NULL, retained_until = NULL
                    WHERE subject_id = \(subject) AND field = \(field)
                    """, logger: self.log)
                try await conn.query("DELETE FROM blind_index WHERE subject_id = \(subject) AND field = \(field)", logger: self.log)
            }
            for r in retained {
                try await conn.query("""
                    UPDATE fields SET status = 'blocked', retained_for = \(r.purpose), retained_until = \(PostgresDatabase.millis(r.until))
                    WHERE subject_id = \(subject) AND field = \(r.field)
                    """, logger: self.log)
            }
            try await conn.query("UPDATE subjects SET status = 'erased', external_ref_hash = 'erased:' || id WHERE id = \(subject)", logger: self.log)
            try await conn.query("UPDATE consent_events SET evidence = NULL WHERE subject_id = \(subject)", logger: self.log)
            try await conn.query("""
                INSERT INTO erasures (subject_id, erased_at, receipt) VALUES (\(subject), \(PostgresDatabase.millis(receipt.erasedAt)), \(json))
                """, logger: self.log)
            try await self.append([audit], conn)
        }
    }

    public func erasureReceipt(subject: String) async throws -> ErasureReceipt? {
        var json: String?
        for try await r in try await client.query("SELECT receipt FROM erasures WHERE subject_id = \(subject)", logger: log).decode(String.self) { json = r }
        guard let json else { return nil }
        let d = JSONDecoder()
        d.dateDecodingStrategy = .millisecondsSince1970
        return try d.decode(ErasureReceipt.self, from: Data(json.utf8))
    }

    public func expiredRetentions(now: Date) async throws -> [FieldRecord] {
        try await fieldRecords(client.query("""
            SELECT \(unescaped: Self.fieldColumns) FROM fields WHERE status = 'blocked' AND retained_until <= \(PostgresDatabase.millis(now))
            ORDER BY subject_id, field LIMIT 10000
            """, logger: log))
    }

    public func shredExpired(_ fields: [FieldRecord], audit: [AuditDraft]) async throws {
        try await writer.write { conn in
            for f in fields {
                try await conn.query("""
                    UPDATE fields SET status = 'erased', ciphertext = NULL WHERE subject_id = \(f.subject) AND field = \(f.field) AND status = 'blocked'
                    """, logger: self.log)
                try await conn.query("DELETE FROM blind_index WHERE subject_id = \(f.subject) AND field = \(f.field)", logger: self.log)
            }
            try await self.append(audit, conn)
        }
    }
}
