import Logging
import CofreCrypto
import Foundation

extension Vault {
    /// The answer to creating a subject.
    public struct CreatedSubject: Sendable, Equatable {
        public let subject: String
        public let tokens: [String: String]
    }

    func requireTokenize(_ p: Principal, action: String, requestID: String?, subject: String? = nil) async throws(VaultError) {
        guard p.role == .service, p.policy.tokenize else {
            throw await refuse(
                VaultError(.forbidden, .forbidden, "this service may not store personal data"),
                audit: draft(p, action: action, requestID: requestID, subject: subject, decision: .deny, code: "forbidden"))
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

    /// Encrypts each value under a fresh data key of its own and mints its token.
    func seal(subject: String, _ values: [(name: String, spec: FieldSpec, value: String)], generations: [String: Int],
              by service: String) throws -> (fields: [FieldRecord], keys: [WrappedDataKey], tokens: [TokenRecord],
                                             issued: [String: String], index: [BlindIndexEntry]) {
        let at = now
        var fields: [FieldRecord] = [], keys: [WrappedDataKey] = [], tokens: [TokenRecord] = []
        var issued: [String: String] = [:], index: [BlindIndexEntry] = []
        for (name, spec, value) in values {
            let generation = generations[name] ?? 1
            let id = DataKeyID(subject: subject, group: name, generation: generation)
            let (key, wrapped) = try dataKeys.generate(id, now: at)
            let ciphertext = try Envelope.seal(
                Array(value.utf8), key: key, keyVersion: UInt32(generation), context: Self.valueContext(subject: subject, field: name))
            fields.append(FieldRecord(subject: subject, field: name, type: spec.type, generation: generation, ciphertext: ciphertext,
                                      storedAt: at, storedBy: service))
            keys.append(wrapped)
            let token = try Identifiers.newToken()
            issued[name] = token
            tokens.append(TokenRecord(tokenHash: tokenHash(token), subject: subject, field: name, generation: generation,
                                      createdAt: at, createdBy: service))
            if spec.searchable {
                index.append(BlindIndexEntry(field: name, hash: indexHash(field: name, normalized: value), subject: subject))
            }
        }
        return (fields, keys, tokens, issued, index)
    }

    /// `POST /v1/subjects`: stores a new subject's fields and returns one token per field.
    public func createSubject(_ p: Principal, externalRef: String, fields raw: [String: String], requestID: String?) async throws(VaultError) -> CreatedSubject {
        try await requireTokenize(p, action: "subject.create", requestID: requestID)
        let ref = externalRef.trimmingCharacters(in: .whitespaces)
        guard !ref.isEmpty, ref.utf8.count <= 256, !ref.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw VaultError.badRequest("'external_ref' must be 1 to 256 characters without control characters")
        }
        let values = try normalize(raw)
        let subject: String
        let sealed: (fields: [FieldRecord], keys: [WrappedDataKey], tokens: [TokenRecord], issued: [String: String], index: [BlindIndexEntry])
        do {
            subject = try Identifiers.newSubject()
            sealed = try seal(subject: subject, values, generations: [:], by: p.name)
        } catch {
            logger.error("sealing failed", metadata: ["error.type": "\(type(of: error))"])
            throw VaultError(.unavailable, .unavailable, "the vault cannot encrypt right now")
        }
        let names = values.map(\.name)
        let record = SubjectRecord(id: subject, externalRefHash: externalRefHash(ref), createdAt: now, createdBy: p.name)
        let existing: String?
        do {
            // Keys first: a crash after this leaves an unused key, never a value without its key.
            try await dataKeys.store.insert(sealed.keys)
            existing = try await store.createSubject(
                record, fields: sealed.fields, tokens: sealed.tokens, index: sealed.index,
                audit: [draft(p, action: "subject.create", requestID: requestID, subject: subject, fields: names, decision: .allow)],
                conflictAudit: draft(p, action: "subject.create", requestID: requestID, fields: names, decision: .deny,
                                     code: "subject_exists"))
        } catch {
            try? await dataKeys.store.destroy(sealed.keys.map(\.id))
            throw mapStore(error)
        }
        if let existing {
            try? await dataKeys.store.destroy(sealed.keys.map(\.id))
            throw VaultError(.conflict, .subjectExists, "a subject with this external_ref already exists", existingSubject: existing)
        }
        logger.info("subject created", metadata: ["subject": "\(subject)", "fields": "\(names.joined(separator: ","))"])
        return CreatedSubject(subject: subject, tokens: sealed.issued)
    }

    /// `POST /v1/subjects/{subject}/fields` and `POST /v1/tokenize`: adds or replaces fields (LGPD Art. 18 III).
    /// A replaced value's data key is destroyed, so its old ciphertext is unreadable and its old tokens stop resolving.
    public func putFields(_ p: Principal, subject: String, fields raw: [String: String], requestID: String?, action: String = "fields.put") async throws(VaultError) -> [String: String] {
        try await requireTokenize(p, action: action, requestID: requestID, subject: subject)
        guard Identifiers.isSubject(subject) else { throw VaultError.subjectNotFound }
        let values = try normalize(raw)
        let names = values.map(\.name)
        let current: [FieldRecord]
        do {
            guard let s = try await store.subject(id: subject) else { throw VaultError.subjectNotFound }
            guard s.status == .active else {
                throw VaultError(.conflict, .subjectErased, "the subject was erased; its data cannot be changed")
            }
            current = try await store.fields(subject: subject)
        } catch {
            throw mapStore(error)
        }
        let byName = Dictionary(uniqueKeysWithValues: current.map { ($0.field, $0) })
        if let frozen = names.first(where: { byName[$0].map { $0.status != .active } ?? false }) {
            throw VaultError(.conflict, .subjectBlocked, "field '\(frozen)' is blocked or erased and cannot be changed", field: frozen)
        }
        var generations: [String: Int] = [:]
        for name in names { generations[name] = (byName[name]?.generation ?? 0) + 1 }
        let sealed: (fields: [FieldRecord], keys: [WrappedDataKey], tokens: [TokenRecord], issued: [String: String], index: [BlindIndexEntry])
        do {
            sealed = try seal(subject: subject, values, generations: generations, by: p.name)
        } catch {
            logger.error("sealing failed", metadata: ["error.type": "\(type(of: error))"])
            throw VaultError(.unavailable, .unavailable, "the vault cannot encrypt right now")
        }
        let writes = sealed.fields.map { FieldWrite(record: $0, replacing: byName[$0.field]?.generation) }
        do {
            try await dataKeys.store.insert(sealed.keys)
            try await store.putFields(
                subject: subject, writes, tokens: sealed.tokens, index: sealed.index,
                audit: [draft(p, action: action, requestID: requestID, subject: subject, fields: names, decision: .allow)])
        } catch {
            try? await dataKeys.store.destroy(sealed.keys.map(\.id))
            throw mapStore(error)
        }
        // Shred the replaced values: their keys go, so every copy of the old ciphertext is unreadable.
        let replaced = names.compactMap { byName[$0]?.keyID }
        if !replaced.isEmpty {
            do {
                try await dataKeys.store.destroy(replaced)
            } catch {
                logger.error("replaced data keys could not be destroyed; they will be left unused",
                             metadata: ["subject": "\(subject)", "error.type": "\(type(of: error))"])
            }
        }
        return sealed.issued
    }

    /// `POST /v1/tokenize`: sets or replaces one field and returns its new token.
    public func tokenize(_ p: Principal, subject: String, field: String, value: String, requestID: String?) async throws(VaultError) -> String {
        let issued = try await putFields(p, subject: subject, fields: [field: value], requestID: requestID, action: "tokenize")
        return issued[field]!
    }
}
