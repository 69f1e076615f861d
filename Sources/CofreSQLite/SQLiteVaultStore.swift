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
        return m
    }

    public func migrate() async throws {
        try Self.migrator.migrate(pool)
    }

    public func checkHealth() async throws {
        _ = try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM audit_events") }
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

    public func appendAudit(_ events: [AuditDraft]) async throws {
        try await writer.write { db in try self.append(events, db) }
    }

    // MARK: credentials

    public func insertCredential(_ c: CredentialRecord, audit: AuditDraft) async throws {
        try await writer.write { db in
            try db.execute(
                sql: "INSERT INTO credentials (id, service, key_hash, created_at, revoked_at) VALUES (?, ?, ?, ?, NULL)",
                arguments: [c.id, c.service, c.keyHash, SQLiteDatabase.millis(c.createdAt)])
            try self.append([audit], db)
        }
    }

    public func revokeCredentials(service: String, at: Date, audit: AuditDraft) async throws -> Int {
        try await writer.write { db in
            try db.execute(sql: "UPDATE credentials SET revoked_at = ? WHERE service = ? AND revoked_at IS NULL",
                           arguments: [SQLiteDatabase.millis(at), service])
            let n = db.changesCount
            var a = audit
            a.code = "revoked_\(n)"
            try self.append([a], db)
            return n
        }
    }

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

    // MARK: subjects and fields

    static func insert(_ f: FieldRecord, _ db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO fields (subject_id, field, type, generation, ciphertext, stored_at, stored_by, status, retained_for, retained_until)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (subject_id, field) DO UPDATE SET type = excluded.type, generation = excluded.generation,
                    ciphertext = excluded.ciphertext, stored_at = excluded.stored_at, stored_by = excluded.stored_by,
                    status = excluded.status, retained_for = excluded.retained_for, retained_until = excluded.retained_until
                """,
            arguments: [f.subject, f.field, f.type.rawValue, f.generation, Data(f.ciphertext), SQLiteDatabase.millis(f.storedAt),
                        f.storedBy, f.status.rawValue, f.retainedFor, f.retainedUntil.map(SQLiteDatabase.millis)])
    }

    static func insert(_ tokens: [TokenRecord], _ index: [BlindIndexEntry], _ db: Database) throws {
        for t in tokens {
            try db.execute(
                sql: "INSERT INTO tokens (token_hash, subject_id, field, generation, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [t.tokenHash, t.subject, t.field, t.generation, SQLiteDatabase.millis(t.createdAt), t.createdBy])
        }
        for i in index {
            try db.execute(sql: "INSERT OR IGNORE INTO blind_index (field, hash, subject_id) VALUES (?, ?, ?)",
                           arguments: [i.field, i.hash, i.subject])
        }
    }

    public func createSubject(_ s: SubjectRecord, fields: [FieldRecord], tokens: [TokenRecord], index: [BlindIndexEntry],
                              audit: [AuditDraft], conflictAudit: AuditDraft) async throws -> String? {
        // Decide the conflict and write in one transaction, so two racing creates cannot both win.
        return try await writer.write { db in
            if let existing = try String.fetchOne(db, sql: "SELECT id FROM subjects WHERE external_ref_hash = ?", arguments: [s.externalRefHash]) {
                var refused = conflictAudit
                refused.subject = existing
                try self.append([refused], db)
                return existing
            }
            try db.execute(
                sql: "INSERT INTO subjects (id, external_ref_hash, created_at, created_by, status) VALUES (?, ?, ?, ?, ?)",
                arguments: [s.id, s.externalRefHash, SQLiteDatabase.millis(s.createdAt), s.createdBy, s.status.rawValue])
            for f in fields { try Self.insert(f, db) }
            try Self.insert(tokens, index, db)
            try self.append(audit, db)
            return nil
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
            generation: row["generation"], ciphertext: ciphertext.map(Array.init) ?? [],
            storedAt: SQLiteDatabase.date(row["stored_at"] as Int64), storedBy: row["stored_by"],
            status: FieldRecord.Status(rawValue: row["status"]) ?? .erased, retainedFor: row["retained_for"],
            retainedUntil: SQLiteDatabase.date(row["retained_until"] as Int64?))
    }

    public func fields(subject: String) async throws -> [FieldRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM fields WHERE subject_id = ? ORDER BY field", arguments: [subject]).map(Self.field)
        }
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

    public func putFields(subject: String, _ writes: [FieldWrite], tokens: [TokenRecord], index: [BlindIndexEntry], audit: [AuditDraft]) async throws {
        try await writer.write { db in
            guard try String.fetchOne(db, sql: "SELECT status FROM subjects WHERE id = ?", arguments: [subject]) == "active" else {
                throw StoreError(.notFound)
            }
            for w in writes {
                let current = try Int.fetchOne(db, sql: "SELECT generation FROM fields WHERE subject_id = ? AND field = ?",
                                               arguments: [subject, w.record.field])
                guard current == w.replacing else { throw StoreError(.conflict) }
                try Self.insert(w.record, db)
                // Old tokens and index entries of a replaced field stop resolving.
                try db.execute(sql: "DELETE FROM tokens WHERE subject_id = ? AND field = ?", arguments: [subject, w.record.field])
                try db.execute(sql: "DELETE FROM blind_index WHERE subject_id = ? AND field = ?", arguments: [subject, w.record.field])
            }
            try Self.insert(tokens, index, db)
            try self.append(audit, db)
        }
    }

    public func tokens(hashes: [String]) async throws -> [String: TokenRecord] {
        guard !hashes.isEmpty else { return [:] }
        return try await pool.read { db in
            var out: [String: TokenRecord] = [:]
            for h in Set(hashes) {
                if let row = try Row.fetchOne(db, sql: "SELECT * FROM tokens WHERE token_hash = ?", arguments: [h]) {
                    out[h] = TokenRecord(tokenHash: row["token_hash"], subject: row["subject_id"], field: row["field"],
                                         generation: row["generation"], createdAt: SQLiteDatabase.date(row["created_at"] as Int64),
                                         createdBy: row["created_by"])
                }
            }
            return out
        }
    }

    // MARK: lookup and consent

    public func insertTokens(_ tokens: [TokenRecord], audit: [AuditDraft]) async throws {
        try await writer.write { db in
            for t in tokens {
                let current = try Int.fetchOne(db, sql: "SELECT generation FROM fields WHERE subject_id = ? AND field = ? AND status != 'erased'",
                                               arguments: [t.subject, t.field])
                guard current == t.generation else { throw StoreError(.conflict) }
            }
            try Self.insert(tokens, [], db)
            try self.append(audit, db)
        }
    }

    public func lookup(field: String, hash: String) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: "SELECT subject_id FROM blind_index WHERE field = ? AND hash = ? ORDER BY subject_id",
                                arguments: [field, hash])
        }
    }

    public func appendConsent(_ r: ConsentRecord, audit: AuditDraft) async throws -> Int64 {
        try await writer.write { db in
            guard try String.fetchOne(db, sql: "SELECT status FROM subjects WHERE id = ?", arguments: [r.subject]) == "active" else {
                throw StoreError(.notFound)
            }
            try db.execute(
                sql: """
                    INSERT INTO consent_events (id, subject_id, purpose, kind, status, channel, evidence, notice_version,
                        recorded_by, recorded_role, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [r.id, r.subject, r.purpose, r.kind.rawValue, r.status.rawValue, r.channel, r.evidence.map { Data($0) },
                            r.noticeVersion, r.recordedBy, r.recordedRole, SQLiteDatabase.millis(r.recordedAt)])
            let seq = db.lastInsertedRowID
            // The folded state, kept in the same transaction so reads never replay the ledger.
            let (consentColumn, consentValue, objectionValue): (String, String, Int) = switch r.status {
            case .granted: ("consent", "granted", 0)
            case .revoked: ("consent", "revoked", 0)
            case .objected: ("objection", "none", 1)
            case .withdrawn: ("objection", "none", 0)
            }
            try db.execute(
                sql: """
                    INSERT INTO consent_state (subject_id, purpose, consent, objection, updated_seq) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (subject_id, purpose) DO UPDATE SET
                        consent = CASE WHEN ? = 'consent' THEN excluded.consent ELSE consent END,
                        objection = CASE WHEN ? = 'objection' THEN excluded.objection ELSE objection END,
                        updated_seq = excluded.updated_seq
                    """,
                arguments: [r.subject, r.purpose, consentValue, objectionValue, seq, consentColumn, consentColumn])
            try self.append([audit], db)
            return seq
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

    public func consentStates(subjects: Set<String>) async throws -> [String: [String: PurposeState]] {
        guard !subjects.isEmpty else { return [:] }
        return try await pool.read { db in
            var out: [String: [String: PurposeState]] = [:]
            for s in subjects {
                for row in try Row.fetchAll(db, sql: "SELECT purpose, consent, objection FROM consent_state WHERE subject_id = ?", arguments: [s]) {
                    let consent: ConsentState = switch row["consent"] as String {
                    case "granted": .granted
                    case "revoked": .revoked
                    default: .none
                    }
                    out[s, default: [:]][row["purpose"]] = PurposeState(consent: consent, objection: (row["objection"] as Int) != 0)
                }
            }
            return out
        }
    }

    // MARK: reading the audit log

    static func event(_ row: Row) -> AuditEvent {
        let fields: String = row["fields"]
        let draft = AuditDraft(
            time: SQLiteDatabase.date(row["time"] as Int64), service: row["service"], role: row["role"], action: row["action"],
            subject: row["subject_id"], fields: fields.isEmpty ? [] : fields.split(separator: ",").map(String.init),
            purpose: row["purpose"], legalBasis: row["legal_basis"],
            decision: AuditDraft.Decision(rawValue: row["decision"]) ?? .deny, code: row["code"], requestID: row["request_id"],
            ref: row["ref"], target: row["target"])
        return AuditEvent(seq: row["seq"], draft: draft, prevHash: row["prev_hash"], hash: row["hash"])
    }

    public func auditEvents(_ q: AuditQuery) async throws -> [AuditEvent] {
        var clauses: [String] = []
        var args: [(any DatabaseValueConvertible)?] = []
        func add(_ clause: String, _ value: (any DatabaseValueConvertible)?) {
            guard let value else { return }
            clauses.append(clause)
            args.append(value)
        }
        add("seq > ?", q.after)
        add("seq <= ?", q.through)
        add("subject_id = ?", q.subject)
        add("service = ?", q.service)
        add("purpose = ?", q.purpose)
        add("action = ?", q.action)
        add("decision = ?", q.decision?.rawValue)
        add("time >= ?", q.since.map(SQLiteDatabase.millis))
        add("time < ?", q.until.map(SQLiteDatabase.millis))
        add("ref = ?", q.ref)
        let sql = "SELECT * FROM audit_events" + (clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND "))
            + " ORDER BY seq LIMIT ?"
        args.append(q.limit)
        let arguments = StatementArguments(args)
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

    // MARK: erasure and retention

    static let receiptEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .millisecondsSince1970
        return e
    }()

    public func erase(subject: String, erased: [String], retained: [RetainedField], receipt: ErasureReceipt, audit: AuditDraft) async throws {
        let json = String(decoding: try Self.receiptEncoder.encode(receipt), as: UTF8.self)
        try await writer.write { db in
            guard try String.fetchOne(db, sql: "SELECT status FROM subjects WHERE id = ?", arguments: [subject]) != nil else {
                throw StoreError(.notFound)
            }
            for field in erased {
                try db.execute(sql: "UPDATE fields SET status = 'erased', ciphertext = NULL, retained_for = NULL, retained_until = NULL WHERE subject_id = ? AND field = ?",
                               arguments: [subject, field])
                try db.execute(sql: "DELETE FROM blind_index WHERE subject_id = ? AND field = ?", arguments: [subject, field])
            }
            for r in retained {
                try db.execute(sql: "UPDATE fields SET status = 'blocked', retained_for = ?, retained_until = ? WHERE subject_id = ? AND field = ?",
                               arguments: [r.purpose, SQLiteDatabase.millis(r.until), subject, r.field])
            }
            // The external reference no longer leads to this subject; the CRM may register the person anew.
            try db.execute(sql: "UPDATE subjects SET status = 'erased', external_ref_hash = 'erased:' || id WHERE id = ?", arguments: [subject])
            try db.execute(sql: "UPDATE consent_events SET evidence = NULL WHERE subject_id = ?", arguments: [subject])
            try db.execute(sql: "INSERT INTO erasures (subject_id, erased_at, receipt) VALUES (?, ?, ?)",
                           arguments: [subject, SQLiteDatabase.millis(receipt.erasedAt), json])
            try self.append([audit], db)
        }
    }

    public func erasureReceipt(subject: String) async throws -> ErasureReceipt? {
        let json = try await pool.read { db in try String.fetchOne(db, sql: "SELECT receipt FROM erasures WHERE subject_id = ?", arguments: [subject]) }
        guard let json else { return nil }
        let d = JSONDecoder()
        d.dateDecodingStrategy = .millisecondsSince1970
        return try d.decode(ErasureReceipt.self, from: Data(json.utf8))
    }

    public func expiredRetentions(now: Date) async throws -> [FieldRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM fields WHERE status = 'blocked' AND retained_until <= ? ORDER BY subject_id, field LIMIT 10000",
                             arguments: [SQLiteDatabase.millis(now)]).map(Self.field)
        }
    }

    public func shredExpired(_ fields: [FieldRecord], audit: [AuditDraft]) async throws {
        try await writer.write { db in
            for f in fields {
                try db.execute(sql: "UPDATE fields SET status = 'erased', ciphertext = NULL WHERE subject_id = ? AND field = ? AND status = 'blocked'",
                               arguments: [f.subject, f.field])
                try db.execute(sql: "DELETE FROM blind_index WHERE subject_id = ? AND field = ?", arguments: [f.subject, f.field])
            }
            try self.append(audit, db)
        }
    }
}
