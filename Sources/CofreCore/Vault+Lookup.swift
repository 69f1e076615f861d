import CofreCrypto
import Foundation
import Logging

extension Vault {
    /// A lookup's answer: the subject, and a fresh token for the searched field.
    public struct LookupResult: Sendable, Equatable {
        public let subject: String
        public let token: String
    }

    /// `POST /v1/lookup`: exact match through the keyed blind index, never by decrypting rows.
    ///
    /// The match is subject to the same decision as a reveal of that field for that purpose. A miss and
    /// a denial that depends on the subject (consent, objection, erasure, blocking) answer the same 404
    /// after the same work, so a lookup cannot probe who is in the vault; the audit log keeps the real reason.
    public func lookup(_ p: Principal, purpose purposeName: String, field: String, value: String, requestID: String?) async throws(VaultError) -> LookupResult {
        guard p.role == .service else {
            throw await refuse(VaultError(.forbidden, .forbidden, "this caller may not do this"),
                               audit: draft(p, action: .lookup, requestID: requestID, purposeName: purposeName, decision: .deny,
                                            code: ErrorCode.forbidden.rawValue))
        }
        let purpose = try await purpose(purposeName, for: p, mustHold: true, action: .lookup, fields: [field], requestID: requestID)
        // Every lookup past the purpose check, hit or miss, valid or not, counts against the caller's quota.
        try await enforceQuota(p, .lookups, count: 1, action: .lookup, purpose: purpose, fields: [field], requestID: requestID)
        guard let spec = policy.fields[field] else {
            throw await refuse(VaultError(.unprocessable, .fieldUnknown, "the field is not in the policy"),
                               audit: draft(p, action: .lookup, requestID: requestID, fields: [field], purpose: purpose,
                                            decision: .deny, code: VaultError.Code.fieldUnknown.rawValue))
        }
        // A lookup answers whether a value belongs to a subject: on a field the purpose shows masked or
        // redacted it would undo the mask (CONTRACT §2 v2), so only a `plain` field may be looked up.
        // Decided before the value is even read.
        guard purpose.fields[field] == .plain else {
            throw await refuse(
                VaultError(.forbidden, .fieldNotAllowed, "a lookup needs the field at level 'plain' in the purpose", field: field),
                audit: draft(p, action: .lookup, requestID: requestID, fields: [field], purpose: purpose,
                             decision: .deny, code: DenialCode.fieldNotAllowed.rawValue))
        }
        guard spec.searchable else {
            throw VaultError(.unprocessable, .fieldNotSearchable, "field '\(field)' is not searchable", field: field)
        }
        let normalized = try spec.type.normalize(value, field: field)
        let ref = chain.ref("lookup:\(field)", normalized)

        let at = now
        var allowed: [FieldRecord] = []
        var reasons: [String] = []
        do {
            // One read: the index match, and the candidates' fields and consent state, as of one instant after
            // the request arrived. A miss reads the same, against an id that cannot exist.
            let absent = "sub_" + Identifiers.base32(try Random.bytes(16))
            let snap = try await store.snapshot(tokenHashes: [], subjects: [absent],
                                                index: BlindIndexQuery(field: field, hash: indexHash(field: field, normalized: normalized)))
            let found = snap.indexed
            for subject in found.sorted() {
                guard let record = snap.fields[subject]?[field] else { continue }
                let consent = snap.states[subject]?[purposeName] ?? PurposeState()
                let decision = RevealPolicy.decide(RevealRequest(
                    service: p.policy, purposeName: purposeName, purpose: purpose, field: field, fieldState: record.state,
                    consent: consent.consent, objection: consent.objection, now: at))
                switch decision {
                case .allow: allowed.append(record)
                case .deny(let code): reasons.append(code.rawValue)
                }
            }
        } catch {
            throw mapStore(error)
        }

        guard allowed.count == 1, let match = allowed.first else {
            let ambiguous = allowed.count > 1
            let code = ambiguous ? "ambiguous_match" : (reasons.first ?? "no_match")
            let error = ambiguous
                ? VaultError(.conflict, .ambiguousMatch, "more than one subject matches; look up by a more specific field")
                : VaultError(.notFound, .noMatch, "no subject matches")
            throw await refuse(error, audit: draft(p, action: .lookup, requestID: requestID, fields: [field], purpose: purpose,
                                                   decision: .deny, code: code, ref: ref))
        }
        let token: String
        do { token = try Identifiers.newToken() } catch { throw VaultError(.unavailable, .unavailable, "the vault cannot mint a token right now") }
        let record = TokenRecord(tokenHash: tokenHash(token), subject: match.subject, field: field, generation: match.generation,
                                 createdAt: at, createdBy: p.name)
        do {
            // The token is minted only if the field is still the version the decision saw.
            _ = try await store.commit(WriteBatch(
                [.expectField(subject: match.subject, field: field, generation: match.generation, statuses: [.active, .blocked]),
                 .insertTokens([record])],
                audit: [draft(p, action: .lookup, requestID: requestID, subject: match.subject, fields: [field], purpose: purpose,
                              decision: .allow, ref: ref)]))
        } catch let error as StoreError where error.certainlyNotCommitted {
            // The field was corrected or erased since it was read: the value may no longer match.
            throw await refuse(VaultError(.notFound, .noMatch, "no subject matches"),
                               audit: draft(p, action: .lookup, requestID: requestID, fields: [field], purpose: purpose,
                                            decision: .deny, code: ErrorCode.concurrentUpdate.rawValue, ref: ref))
        } catch {
            throw mapStore(error)
        }
        return LookupResult(subject: match.subject, token: token)
    }
}
