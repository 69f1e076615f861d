import CofreCrypto
import Foundation
import Logging

extension Vault {
    /// One subject of a batch, as the caller sent it.
    public struct BatchSubject: Sendable {
        public let externalRef: String
        public let fields: [String: String]
        public init(externalRef: String, fields: [String: String]) {
            self.externalRef = externalRef
            self.fields = fields
        }
    }

    /// One subject's answer in a batch: created, or its own error.
    public struct BatchResult: Sendable {
        public let externalRef: String
        public let created: CreatedSubject?
        public let error: VaultError?
    }

    public static let maxSubjectsPerBatch = 1000

    /// `POST /v1/subjects/batch` (CONTRACT §4 v2): up to 1,000 subjects, each succeeding or failing on
    /// its own, answered in the order given. All keys go to the key store in one transaction; each
    /// subject is then its own `WriteBatch`, and group commit carries them in a few data-store
    /// transactions. An existing `external_ref` is `subject_exists` carrying the existing subject.
    public func createSubjects(_ p: Principal, _ items: [BatchSubject], requestID: String?) async throws(VaultError) -> [BatchResult] {
        try await requireTokenize(p, action: .subjectCreate, requestID: requestID)
        guard !items.isEmpty, items.count <= Self.maxSubjectsPerBatch else {
            throw VaultError.badRequest("'subjects' must list 1 to \(Self.maxSubjectsPerBatch) subjects")
        }
        try await enforceQuota(p, .writes, count: items.count, action: .subjectCreate, requestID: requestID)

        // Validate and seal each on its own: a bad subject fails alone.
        var prepared: [(index: Int, record: SubjectRecord, sealed: Sealed, names: [String])] = []
        var results = [BatchResult?](repeating: nil, count: items.count)
        var seenRefs: [String: Int] = [:]
        for (i, item) in items.enumerated() {
            do throws(VaultError) {
                let ref = try Self.checkedExternalRef(item.externalRef)
                if let first = seenRefs[ref] {
                    throw VaultError.badRequest("'external_ref' repeats subject \(first + 1) of this batch")
                }
                seenRefs[ref] = i
                let values = try normalize(item.fields)
                let subject: String
                do { subject = try Identifiers.newSubject() } catch { throw VaultError(.unavailable, .unavailable, "the vault cannot mint an id right now") }
                let sealed = try seal(subject: subject, values, generations: [:], by: p.name)
                let record = SubjectRecord(id: subject, externalRefHash: externalRefHash(ref), createdAt: now, createdBy: p.name)
                prepared.append((i, record, sealed, values.map(\.name)))
            } catch {
                results[i] = BatchResult(externalRef: item.externalRef, created: nil, error: error)
            }
        }
        // Keys first, all in one transaction: a crash after this leaves unused keys, never a value without its key.
        do {
            try await dataKeys.store.insert(prepared.flatMap(\.sealed.keys))
        } catch {
            throw mapStore(error)
        }
        let outcomes = await withTaskGroup(of: (Int, (any Error)?).self) { group in
            for (n, item) in prepared.enumerated() {
                let batch = WriteBatch(
                    [.expectExternalRefFree(item.record.externalRefHash), .insertSubject(item.record)] + item.sealed.fields.map { .putField($0) }
                        + [.insertTokens(item.sealed.tokens), .insertIndex(item.sealed.index)],
                    audit: [draft(p, action: .subjectCreate, requestID: requestID, subject: item.record.id, fields: item.names, decision: .allow)])
                group.addTask {
                    do {
                        _ = try await self.store.commit(batch)
                        return (n, nil)
                    } catch {
                        return (n, error)
                    }
                }
            }
            var out = [(any Error)?](repeating: nil, count: prepared.count)
            for await (n, error) in group { out[n] = error }
            return out
        }
        var abandoned: [DataKeyID] = []
        var refusals: [AuditDraft] = []
        for (n, item) in prepared.enumerated() {
            let ref = items[item.index].externalRef
            guard let error = outcomes[n] else {
                results[item.index] = BatchResult(externalRef: ref, created: CreatedSubject(subject: item.record.id, tokens: item.sealed.issued), error: nil)
                continue
            }
            if let e = error as? StoreError, e.certainlyNotCommitted { abandoned += item.sealed.keys.map(\.id) }
            if let e = error as? StoreError, e.code == .exists {
                var refused = draft(p, action: .subjectCreate, requestID: requestID, fields: item.names, decision: .deny, code: ErrorCode.subjectExists.rawValue)
                refused.subject = e.subject
                refusals.append(refused)
                results[item.index] = BatchResult(externalRef: ref, created: nil, error: VaultError(
                    .conflict, .subjectExists, "a subject with this external_ref already exists", existingSubject: e.subject))
            } else {
                results[item.index] = BatchResult(externalRef: ref, created: nil, error: mapStore(error))
            }
        }
        if !abandoned.isEmpty {
            do { try await dataKeys.destroy(abandoned) } catch {
                logger.warning("a batch's unused keys are left to the key sweeper", metadata: ["keys": "\(abandoned.count)"])
            }
        }
        if !refusals.isEmpty {
            do { try await store.appendAudit(refusals) } catch { throw mapStore(error) }
        }
        let created = results.filter { $0?.created != nil }.count
        logger.info("subjects created in a batch", metadata: ["created": "\(created)", "failed": "\(items.count - created)"])
        return results.map { $0! }
    }

    /// An external reference as stored (before hashing): trimmed, 1 to 256 bytes, no control characters.
    static func checkedExternalRef(_ raw: String) throws(VaultError) -> String {
        let ref = raw.trimmingCharacters(in: .whitespaces)
        guard !ref.isEmpty, ref.utf8.count <= 256, !ref.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw VaultError.badRequest("'external_ref' must be 1 to 256 bytes without control characters")
        }
        return ref
    }
}
