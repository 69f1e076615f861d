import CofreCrypto
import Foundation
import Logging

extension Vault {
    /// The answer to creating a subject.
    public struct CreatedSubject: Sendable, Equatable {
        public let subject: String
        public let tokens: [String: String]
    }

    func requireTokenize(_ p: Principal, action: AuditAction, requestID: String?, subject: String? = nil) async throws(VaultError) {
        guard p.role == .service, p.policy.tokenize else {
            throw await refuse(
                VaultError(.forbidden, .forbidden, "this service may not store personal data"),
                audit: draft(p, action: action, requestID: requestID, subject: subject, decision: .deny, code: ErrorCode.forbidden.rawValue))
        }
    }

    /// Validates and normalises every value first, so a bad value stores nothing.
    func normalize(_ fields: [String: String]) throws(VaultError) -> [(name: String, spec: FieldSpec, value: String)] {
        guard !fields.isEmpty else { throw VaultError.badRequest("'fields' must name at least one field") }
        var out: [(String, FieldSpec, String)] = []
        for name in fields.keys.sorted() {
            guard let spec = policy.fields[name] else {
                throw VaultError(.unprocessable, .fieldUnknown, "field '\(name)' is not in the policy", field: name)
            }
            out.append((name, spec, try spec.type.normalize(fields[name]!, field: name)))
        }
        return out
    }

    /// One write attempt's sealed values: fields, their fresh keys, tokens and index entries.
    struct Sealed {
        var fields: [FieldRecord] = []
        var keys: [WrappedDataKey] = []
        var tokens: [TokenRecord] = []
        var issued: [String: String] = [:]
        var index: [BlindIndexEntry] = []
    }

    /// Encrypts each value under a fresh data key of its own, in a key group unique to this attempt,
    /// and mints its token.
    func seal(subject: String, _ values: [(name: String, spec: FieldSpec, value: String)], generations: [String: Int],
              by service: String) throws(VaultError) -> Sealed {
        do {
            let at = now
            let attempt = Identifiers.base32(try Random.bytes(10))
            var out = Sealed()
            for (name, spec, value) in values {
                let generation = generations[name] ?? 1
                let group = DataKeyID.attemptGroup(field: name, attempt: attempt)
                let (key, wrapped) = try dataKeys.generate(DataKeyID(subject: subject, group: group, generation: generation), now: at)
                let ciphertext = try Envelope.sealText(
                    value, key: key, keyVersion: UInt32(generation), context: Self.valueContext(subject: subject, field: name))
                out.fields.append(FieldRecord(subject: subject, field: name, type: spec.type, generation: generation, keyGroup: group,
                                              ciphertext: ciphertext, storedAt: at, storedBy: service))
                out.keys.append(wrapped)
                let token = try Identifiers.newToken()
                out.issued[name] = token
                out.tokens.append(TokenRecord(tokenHash: tokenHash(token), subject: subject, field: name, generation: generation,
                                              createdAt: at, createdBy: service))
                if spec.searchable {
                    out.index.append(BlindIndexEntry(field: name, hash: indexHash(field: name, normalized: value), subject: subject))
                }
            }
            return out
        } catch {
            logger.error("sealing failed", metadata: ["error.type": "\(type(of: error))"])
            throw VaultError(.unavailable, .unavailable, "the vault cannot encrypt right now")
        }
    }

    /// `POST /v1/subjects`: stores a new subject's fields and returns one token per field.
    public func createSubject(_ p: Principal, externalRef: String, fields raw: [String: String], requestID: String?) async throws(VaultError) -> CreatedSubject {
        try await requireTokenize(p, action: .subjectCreate, requestID: requestID)
        try await enforceQuota(p, .writes, count: 1, action: .subjectCreate, requestID: requestID)
        let ref = try Self.checkedExternalRef(externalRef)
        let values = try normalize(raw)
        let subject: String
        do { subject = try Identifiers.newSubject() } catch { throw VaultError(.unavailable, .unavailable, "the vault cannot mint an id right now") }
        let sealed = try seal(subject: subject, values, generations: [:], by: p.name)
        let names = values.map(\.name)
        let refHash = externalRefHash(ref)
        let record = SubjectRecord(id: subject, externalRefHash: refHash, createdAt: now, createdBy: p.name)
        let batch = WriteBatch(
            [.expectExternalRefFree(refHash), .insertSubject(record)] + sealed.fields.map { .putField($0) }
                + [.insertTokens(sealed.tokens), .insertIndex(sealed.index)],
            audit: [draft(p, action: .subjectCreate, requestID: requestID, subject: subject, fields: names, decision: .allow)])
        do {
            _ = try await commit(batch, storing: sealed.keys)
        } catch let error as StoreError where error.code == .exists {
            var refused = draft(p, action: .subjectCreate, requestID: requestID, fields: names, decision: .deny, code: ErrorCode.subjectExists.rawValue)
            refused.subject = error.subject
            throw await refuse(VaultError(.conflict, .subjectExists, "a subject with this external_ref already exists",
                                          existingSubject: error.subject), audit: refused)
        } catch {
            throw mapStore(error)
        }
        logger.info("subject created", metadata: ["subject": "\(subject)", "fields": "\(names.joined(separator: ","))"])
        return CreatedSubject(subject: subject, tokens: sealed.issued)
    }

    /// `POST /v1/subjects/{subject}/fields` and `POST /v1/tokenize`: adds or replaces fields (LGPD Art. 18 III).
    /// One transaction compares every field's generation with the one read and swaps in the new version;
    /// the replaced version's key is queued in it and destroyed after the commit, so its old ciphertext
    /// is unreadable and its old tokens stop resolving. A lost race is retried, then answered 409.
    public func putFields(_ p: Principal, subject: String, fields raw: [String: String], requestID: String?, action: AuditAction = .fieldsPut) async throws(VaultError) -> [String: String] {
        try await requireTokenize(p, action: action, requestID: requestID, subject: subject)
        try await enforceQuota(p, .writes, count: 1, action: action, subject: subject, requestID: requestID)
        guard Identifiers.isSubject(subject) else { throw VaultError.subjectNotFound }
        let values = try normalize(raw)
        let names = values.map(\.name)
        for attempt in 1...Self.maxWriteAttempts {
            let snap: StoreSnapshot
            do { snap = try await store.snapshot(tokenHashes: [], subjects: [subject]) } catch { throw mapStore(error) }
            guard let status = snap.subjects[subject] else { throw VaultError.subjectNotFound }
            guard status == .active else { throw VaultError.subjectErasedWrite }
            let byName = snap.fields[subject] ?? [:]
            if let frozen = names.first(where: { byName[$0].map { $0.status != .active } ?? false }) {
                throw VaultError(.conflict, .subjectBlocked, "field '\(frozen)' is blocked or erased and cannot be changed", field: frozen)
            }
            var generations: [String: Int] = [:]
            for name in names { generations[name] = (byName[name]?.generation ?? 0) + 1 }
            let sealed = try seal(subject: subject, values, generations: generations, by: p.name)
            let replaced = names.compactMap { byName[$0] }.filter(\.needsKey).map(\.keyID)
            var ops: [WriteOp] = [.expectSubject(subject, in: [.active])]
            for f in sealed.fields {
                ops += [.expectField(subject: subject, field: f.field, generation: byName[f.field]?.generation), .putField(f),
                        .deleteTokens(subject: subject, field: f.field), .deleteIndex(subject: subject, field: f.field)]
            }
            ops += [.insertTokens(sealed.tokens), .insertIndex(sealed.index), .queueKeyShred(replaced)]
            // A correction of a value someone may hold (Art. 18 III and §6): the recipients are told.
            let corrected = names.filter { byName[$0] != nil }
            if !corrected.isEmpty { ops.append(try notification(.subjectCorrected, subject: subject, fields: corrected, purpose: nil, at: now)) }
            let batch = WriteBatch(ops, audit: [draft(p, action: action, requestID: requestID, subject: subject, fields: names, decision: .allow)])
            do {
                _ = try await commit(batch, storing: sealed.keys)
            } catch let error as StoreError where error.code == .conflict && attempt < Self.maxWriteAttempts {
                continue
            } catch {
                throw mapStore(error)
            }
            await shredSuperseded(replaced)
            return sealed.issued
        }
        throw VaultError.concurrentUpdate
    }
    /// `POST /v1/tokenize`: sets or replaces one field and returns its new token.
    public func tokenize(_ p: Principal, subject: String, field: String, value: String, requestID: String?) async throws(VaultError) -> String {
        let issued = try await putFields(p, subject: subject, fields: [field: value], requestID: requestID, action: .tokenize)
        return issued[field]!
    }
}
