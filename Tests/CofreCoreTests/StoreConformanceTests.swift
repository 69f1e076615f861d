import CofreCore
import CofreTestSupport
import Foundation
import Testing

/// One suite for every storage engine: it runs on SQLite always, and on PostgreSQL when
/// `COFRE_TEST_POSTGRES_URL` is set (as `.ci/run` does). It drives the engine primitives directly,
/// so an engine that interprets an operation differently fails here, not in production.
@Suite("Storage conformance: the engine primitives behave the same on every engine")
struct StoreConformanceTests {
    static let at = Date(timeIntervalSince1970: 1_790_000_000)

    func subject(_ id: String, ref: String) -> SubjectRecord {
        SubjectRecord(id: id, externalRefHash: ref, createdAt: Self.at, createdBy: "crm")
    }

    func field(_ subject: String, _ name: String, generation: Int, group: String? = nil) -> FieldRecord {
        FieldRecord(subject: subject, field: name, type: .text, generation: generation, keyGroup: group ?? "field:\(name):g\(generation)",
                    ciphertext: [1, 2, 3, UInt8(generation)], storedAt: Self.at, storedBy: "crm")
    }

    func audit(_ action: String, subject: String? = nil) -> AuditDraft {
        AuditDraft(time: Self.at, service: "crm", role: "service", action: action, subject: subject, fields: [], purpose: nil,
                   legalBasis: nil, decision: .allow, code: nil, requestID: nil, ref: nil)
    }

    func code(_ body: () async throws -> Void) async -> StoreError.Code? {
        do { try await body() } catch let e as StoreError { return e.code } catch { return nil }
        return nil
    }

    @Test("both engines apply the same list of migrations")
    func migrations() async throws {
        let tv = try await TestVault.make()
        #expect(try await tv.vault.store.appliedMigrations() == StoreMigrations.ids)
        // Migrating again is a no-op.
        try await tv.vault.store.migrate()
        #expect(try await tv.vault.store.appliedMigrations() == StoreMigrations.ids)
    }

    @Test("a batch is all or nothing: a failed precondition after writes leaves no trace, not even audit")
    func atomicity() async throws {
        let tv = try await TestVault.make()
        let store = tv.vault.store
        let head = try await store.lastAuditEvent()?.seq ?? 0
        let failed = await code {
            _ = try await store.commit(WriteBatch(
                [.insertSubject(subject("sub_a", ref: "r-a")), .putField(field("sub_a", "phone", generation: 1)),
                 .expectField(subject: "sub_a", field: "phone", generation: 7)],
                audit: [audit("test.write", subject: "sub_a")]))
        }
        #expect(failed == .conflict)
        #expect(try await store.subject(id: "sub_a") == nil)
        #expect(try await store.fields(subject: "sub_a").isEmpty)
        #expect(try await store.lastAuditEvent()?.seq ?? 0 == head)
        // The same batch without the bad precondition commits, with its audit event after the head.
        _ = try await store.commit(WriteBatch(
            [.insertSubject(subject("sub_a", ref: "r-a")), .putField(field("sub_a", "phone", generation: 1))],
            audit: [audit("test.write", subject: "sub_a")]))
        #expect(try await store.fields(subject: "sub_a").map(\.generation) == [1])
        let last = try #require(try await store.lastAuditEvent())
        #expect(last.seq == head + 1 && last.draft.action == "test.write")
        #expect(try await tv.vault.verifyAudit().ok)
    }

    @Test("preconditions: subject status, free external reference, field generation and field set")
    func preconditions() async throws {
        let tv = try await TestVault.make()
        let store = tv.vault.store
        _ = try await store.commit(WriteBatch([.insertSubject(subject("sub_b", ref: "r-b")), .putField(field("sub_b", "phone", generation: 1))]))

        #expect(await code { _ = try await store.commit(WriteBatch([.expectSubject("sub_none", in: [.active])])) } == .notFound)
        #expect(await code { _ = try await store.commit(WriteBatch([.expectSubject("sub_b", in: [.erasing])])) } == .subjectGone)
        _ = try await store.commit(WriteBatch([.expectSubject("sub_b", in: [.active])]))

        do {
            _ = try await store.commit(WriteBatch([.expectExternalRefFree("r-b")]))
            Issue.record("a taken external reference passed")
        } catch let e as StoreError {
            #expect(e.code == .exists && e.subject == "sub_b")
        }
        _ = try await store.commit(WriteBatch([.expectExternalRefFree("r-free")]))

        #expect(await code { _ = try await store.commit(WriteBatch([.expectField(subject: "sub_b", field: "phone", generation: 2)])) } == .conflict)
        #expect(await code { _ = try await store.commit(WriteBatch([.expectField(subject: "sub_b", field: "phone", generation: nil)])) } == .conflict)
        #expect(await code { _ = try await store.commit(WriteBatch([.expectField(subject: "sub_b", field: "email", generation: 1)])) } == .conflict)
        _ = try await store.commit(WriteBatch([.expectField(subject: "sub_b", field: "email", generation: nil)]))
        _ = try await store.commit(WriteBatch([.expectField(subject: "sub_b", field: "phone", generation: 1, statuses: [.active])]))
        #expect(await code {
            _ = try await store.commit(WriteBatch([.expectField(subject: "sub_b", field: "phone", generation: 1, statuses: [.blocked])]))
        } == .conflict)

        _ = try await store.commit(WriteBatch([.expectFieldSet(subject: "sub_b", ["phone": 1])]))
        #expect(await code { _ = try await store.commit(WriteBatch([.expectFieldSet(subject: "sub_b", ["phone": 2])])) } == .conflict)
        #expect(await code { _ = try await store.commit(WriteBatch([.expectFieldSet(subject: "sub_b", [:])])) } == .conflict)
        #expect(await code { _ = try await store.commit(WriteBatch([.expectFieldSet(subject: "sub_b", ["phone": 1, "email": 1])])) } == .conflict)
    }

    @Test("field versions, tokens, index, states and erasure operations read back the same on every engine")
    func operations() async throws {
        let tv = try await TestVault.make()
        let store = tv.vault.store
        let token = TokenRecord(tokenHash: "h1", subject: "sub_c", field: "phone", generation: 1, createdAt: Self.at, createdBy: "crm")
        _ = try await store.commit(WriteBatch([
            .insertSubject(subject("sub_c", ref: "r-c")), .putField(field("sub_c", "phone", generation: 1)),
            .putField(field("sub_c", "cpf", generation: 1)),
            .insertTokens([token]), .insertIndex([BlindIndexEntry(field: "phone", hash: "ix", subject: "sub_c")]),
        ]))
        var snap = try await store.snapshot(tokenHashes: ["h1", "h-none"], subjects: [])
        #expect(snap.tokens == ["h1": token])
        #expect(snap.subjects == ["sub_c": .active])
        #expect(snap.fields["sub_c"]?["phone"]?.keyGroup == "field:phone:g1")
        #expect(snap.fields["sub_c"]?["phone"]?.ciphertext == [1, 2, 3, 1])
        #expect(try await store.lookup(field: "phone", hash: "ix") == ["sub_c"])
        // A lookup's one read: the index match with the matched subjects' fields and statuses.
        let indexed = try await store.snapshot(tokenHashes: [], subjects: [], index: BlindIndexQuery(field: "phone", hash: "ix"))
        #expect(indexed.indexed == ["sub_c"] && indexed.fields["sub_c"]?.count == 2 && indexed.subjects["sub_c"] == .active)
        #expect(try await store.snapshot(tokenHashes: [], subjects: [], index: BlindIndexQuery(field: "phone", hash: "none")).indexed.isEmpty)

        // A correction: the new version replaces the old, and the old key is queued.
        let old = try #require(snap.fields["sub_c"]?["phone"])
        _ = try await store.commit(WriteBatch([
            .putField(field("sub_c", "phone", generation: 2)), .deleteTokens(subject: "sub_c", field: "phone"),
            .deleteIndex(subject: "sub_c", field: "phone"), .queueKeyShred([old.keyID]),
        ]))
        snap = try await store.snapshot(tokenHashes: ["h1"], subjects: ["sub_c"])
        #expect(snap.tokens.isEmpty)
        #expect(snap.fields["sub_c"]?["phone"]?.generation == 2)
        #expect(try await store.lookup(field: "phone", hash: "ix").isEmpty)
        #expect(try await store.queuedKeyShreds(limit: 10) == [old.keyID])
        _ = try await store.commit(WriteBatch([.dequeueKeyShred([old.keyID])]))
        #expect(try await store.queuedKeyShreds(limit: 10).isEmpty)

        // Consent ledger and folded state.
        let consent = ConsentRecord(id: "cev_1", subject: "sub_c", purpose: "collection-whatsapp", kind: .consent, status: .granted,
                                    channel: "whatsapp", evidence: [9], noticeVersion: "2026-01", recordedBy: "dpo", recordedRole: "dpo",
                                    recordedAt: Self.at)
        let r = try await store.commit(WriteBatch([.insertConsent(consent), .setConsentState(subject: "sub_c", purpose: "collection-whatsapp", .granted),
                                                   .setObjectionState(subject: "sub_c", purpose: "collection-call", true)]))
        #expect(r.consentSeqs.count == 1)
        snap = try await store.snapshot(tokenHashes: [], subjects: ["sub_c"])
        #expect(snap.states["sub_c"]?["collection-whatsapp"] == PurposeState(consent: .granted, objection: false))
        #expect(snap.states["sub_c"]?["collection-call"] == PurposeState(consent: .none, objection: true))
        #expect(try await store.consentHistory(subject: "sub_c").map(\.seq) == r.consentSeqs)

        // Erasure operations: blocked keeps the ciphertext, erased drops it.
        _ = try await store.commit(WriteBatch([
            .setFieldState(subject: "sub_c", field: "cpf", status: .blocked, retainedFor: "legal-defense", retainedUntil: Self.at + 86400),
            .setFieldState(subject: "sub_c", field: "phone", status: .erased, retainedFor: nil, retainedUntil: nil),
            .setSubjectStatus("sub_c", .erased), .releaseExternalRef("sub_c"), .clearEvidence(subject: "sub_c"),
            .insertErasureReceipt(subject: "sub_c", at: Self.at, json: "{\"x\":1}"),
        ]))
        let fields = Dictionary(uniqueKeysWithValues: try await store.fields(subject: "sub_c").map { ($0.field, $0) })
        #expect(fields["cpf"]?.status == .blocked && fields["cpf"]?.ciphertext == [1, 2, 3, 1] && fields["cpf"]?.retainedFor == "legal-defense")
        #expect(fields["phone"]?.status == .erased && fields["phone"]?.ciphertext == [])
        #expect(try await store.subject(id: "sub_c")?.status == .erased)
        #expect(try await store.consentHistory(subject: "sub_c").first?.evidence == nil)
        #expect(try await store.erasureReceiptJSON(subject: "sub_c") == "{\"x\":1}")
        #expect(try await store.expiredRetentions(now: Self.at + 86400, limit: 10).map(\.field) == ["cpf"])
        #expect(try await store.expiredRetentions(now: Self.at, limit: 10).isEmpty)
        // The external reference is free again.
        _ = try await store.commit(WriteBatch([.expectExternalRefFree("r-c")]))
    }

    @Test("credentials: insert, revoke exactly the listed ids")
    func credentials() async throws {
        let tv = try await TestVault.make()
        let store = tv.vault.store
        let a = CredentialRecord(id: "cred_a", service: "crm", keyHash: "ha", createdAt: Self.at)
        let b = CredentialRecord(id: "cred_b", service: "crm", keyHash: "hb", createdAt: Self.at + 1)
        _ = try await store.commit(WriteBatch([.insertCredential(a), .insertCredential(b)]))
        _ = try await store.commit(WriteBatch([.revokeCredentials(ids: ["cred_a"], at: Self.at + 2)]))
        #expect(try await store.credential(keyHash: "ha")?.revokedAt == Self.at + 2)
        #expect(try await store.credential(keyHash: "hb")?.revokedAt == nil)
    }

    @Test("the key store lists a subject's keys and scans by creation with a persistent cursor")
    func keyStoreScan() async throws {
        let tv = try await TestVault.make()
        let keys = tv.vault.dataKeys
        let ids = (0..<5).map { DataKeyID(subject: "sub_k", group: "field:phone:a\($0)", generation: 1) }
        let wrapped = try ids.enumerated().map { i, id in try keys.generate(id, now: Self.at + Double(i)).wrapped }
        try await keys.store.insert(wrapped)
        #expect(Set(try await keys.store.ids(subject: "sub_k")) == Set(ids))
        let first = try await keys.store.scan(after: nil, createdThrough: Self.at + 2, limit: 100).filter { $0.id.subject == "sub_k" }
        #expect(first.map(\.id) == Array(ids[0...2]))
        let last = first.last!
        let cursor = KeyScanCursor(createdAtMillis: Int64(last.createdAt.timeIntervalSince1970 * 1000), subject: last.id.subject,
                                   group: last.id.group, generation: last.id.generation)
        try await keys.store.setSweepCursor(cursor)
        #expect(try await keys.store.sweepCursor() == cursor)
        let rest = try await keys.store.scan(after: cursor, createdThrough: Self.at + 100, limit: 100).filter { $0.id.subject == "sub_k" }
        #expect(rest.map(\.id) == Array(ids[3...4]))
    }
}
