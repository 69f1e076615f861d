import Logging
import CofreCrypto
public import Foundation

extension Vault {
    /// One token's answer in a detokenize call.
    public struct RevealResult: Sendable, Equatable {
        public let token: String
        public let field: String?
        public let value: String?
        public let reveal: RevealLevel?
        public let denied: DenialCode?
        /// For a contact-rule denial: when a contact will next be allowed.
        public var nextWindowAt: Date? = nil
    }

    /// `POST /v1/detokenize`: each token gets its own decision, and every decision is durably
    /// audited before any value is returned. A purpose the service does not hold fails the whole call.
    public func detokenize(_ p: Principal, purpose purposeName: String, tokens: [String], requestID: String?) async throws(VaultError) -> [RevealResult] {
        let purpose = try await tokenCall(p, purpose: purposeName, tokens: tokens, action: .detokenize, requestID: requestID)
        // Each token is one reveal against the quota, denied or not.
        try await enforceQuota(p, .reveals, count: tokens.count, action: .detokenize, purpose: purpose, requestID: requestID)

        // Resolve tokens to fields; malformed tokens never reach the store.
        let hashes = tokens.map { Identifiers.isToken($0) ? tokenHash($0) : nil }
        var decided: [Decided]?
        for attempt in 1...2 where decided == nil {
            decided = try await decideAndOpen(p, purpose: purpose, tokens: tokens, hashes: hashes, finalAttempt: attempt == 2)
        }
        guard let decided else { throw VaultError.integrityFailure }

        var results: [RevealResult] = []
        var audit: [AuditDraft] = []
        // Contact rules: one decision (and at most one counted attempt) per subject per call.
        let at = now
        var contacts: [String: ContactRefusal?] = [:]
        for d in decided {
            var decision = d.decision
            var next: Date?
            var claimed = false
            if case .allow(let level) = decision, let limit = purpose.contact, let record = d.record, record.field == limit.field,
               let fields = d.subjectFields {
                let outcome: ContactRefusal?
                if let known = contacts[record.subject] {
                    outcome = known
                } else {
                    // The contact value is already open when revealed in plain: not decrypted twice.
                    let opened = level == .plain ? d.value.map { [record.field: $0] } ?? [:] : [:]
                    let window = try await windowCheck(fields: fields, opened: opened, at: at)
                    if let refusal = window.refusal {
                        outcome = refusal
                    } else {
                        // The attempt is counted with its allowing event, in one transaction whose
                        // preconditions hold the caps across instances.
                        let allowed = draft(p, action: .detokenize, requestID: requestID, subject: record.subject, fields: [record.field],
                                            purpose: purpose, decision: .allow, ref: chain.ref("token", d.token))
                        do {
                            _ = try await store.commit(WriteBatch(
                                contactClaim(subject: record.subject, purpose: purpose, limit: limit, place: window.place, service: p.name, at: at),
                                audit: [allowed]))
                            outcome = nil
                            claimed = true
                        } catch let e as StoreError where e.code == .limitReached {
                            let next = try await capsRefusal(subject: record.subject, purpose: purpose, limit: limit, place: window.place, at: at)?.next
                            outcome = ContactRefusal(code: .contactLimitReached, next: next)
                        } catch {
                            throw mapStore(error)
                        }
                    }
                    contacts[record.subject] = outcome
                }
                if let outcome {
                    decision = .deny(outcome.code)
                    next = outcome.next
                    VaultMetrics.contactDenied(purpose: purposeName, policy: policy, code: outcome.code)
                }
            }
            let code: String? = if case .deny(let c) = decision { c.rawValue } else { nil }
            VaultMetrics.decision(purpose: purposeName, policy: policy, denied: code.flatMap(DenialCode.init(rawValue:)))
            if !claimed {
                audit.append(draft(p, action: .detokenize, requestID: requestID, subject: d.record?.subject,
                                   fields: d.record.map { [$0.field] } ?? [], purpose: purpose,
                                   decision: code == nil ? .allow : .deny, code: code, ref: chain.ref("token", d.token)))
            }
            switch decision {
            case .allow(let level):
                results.append(RevealResult(token: d.token, field: d.record?.field, value: d.value, reveal: level, denied: nil))
            case .deny(let c):
                results.append(RevealResult(token: d.token, field: nil, value: nil, reveal: nil, denied: c, nextWindowAt: next))
            }
        }
        // Fail closed: no durable record, no value.
        do {
            try await store.appendAudit(audit)
        } catch {
            throw mapStore(error)
        }
        await noteReveals(p, count: results.filter { $0.value != nil }.count, requestID: requestID)
        return results
    }

    /// What a call over a list of tokens checks first: a service, holding the purpose; then (only once
    /// the caller is known to hold it) 1 to 1000 tokens.
    func tokenCall(_ p: Principal, purpose purposeName: String, tokens: [String], action: AuditAction, requestID: String?) async throws(VaultError) -> Purpose {
        guard p.role == .service else {
            throw await refuse(VaultError(.forbidden, .forbidden, "this caller may not do this"),
                               audit: draft(p, action: action, requestID: requestID, purposeName: purposeName, decision: .deny,
                                            code: ErrorCode.forbidden.rawValue))
        }
        let purpose = try await purpose(purposeName, for: p, mustHold: true, action: action, requestID: requestID)
        guard !tokens.isEmpty else { throw VaultError.badRequest("'tokens' must list at least one token") }
        guard tokens.count <= Self.maxTokensPerCall else {
            throw VaultError.badRequest("at most \(Self.maxTokensPerCall) tokens per call", code: .tooManyTokens)
        }
        return purpose
    }

    /// Each token's reveal decision from one snapshot (shared by detokenize and contact eligibility):
    /// an unknown token, or one whose field has moved on to another version, is `token_unknown`.
    func decide(_ p: Principal, purpose: Purpose, tokens: [String], hashes: [String?], snap: StoreSnapshot,
                at: Date) -> [(token: String, record: TokenRecord?, field: FieldRecord?, decision: RevealDecision)] {
        tokens.enumerated().map { i, token in
            guard let hash = hashes[i], let record = snap.tokens[hash] else { return (token, nil, nil, .deny(.tokenUnknown)) }
            guard let field = snap.fields[record.subject]?[record.field], field.generation == record.generation else {
                return (token, record, nil, .deny(.tokenUnknown))
            }
            let consent = snap.states[record.subject]?[purpose.name] ?? PurposeState()
            return (token, record, field, RevealPolicy.decide(RevealRequest(
                service: p.policy, purposeName: purpose.name, purpose: purpose, field: record.field, fieldState: field.state,
                consent: consent.consent, objection: consent.objection, now: at)))
        }
    }

    /// One token's decision and, when allowed, its revealed form.
    struct Decided {
        let token: String
        let record: TokenRecord?
        let decision: RevealDecision
        let value: String?
        /// The subject's fields as read with the decision (for the contact rules).
        var subjectFields: [String: FieldRecord]? = nil
    }

    /// Reads everything the decisions need in one snapshot (taken after the request arrived), decides
    /// each token and decrypts what is allowed. Returns nil when an allowed field's key is missing and
    /// this is not the final attempt: a correction or erasure may have superseded the version read, so
    /// the caller reads again. On the final attempt a missing key is an integrity failure (503).
    func decideAndOpen(_ p: Principal, purpose: Purpose, tokens: [String], hashes: [String?], finalAttempt: Bool) async throws(VaultError) -> [Decided]? {
        let snap: StoreSnapshot
        do {
            // Read fresh on every call: a revocation or objection takes effect on the very next request.
            snap = try await store.snapshot(tokenHashes: hashes.compactMap { $0 }, subjects: [])
        } catch {
            throw mapStore(error)
        }
        let decisions = decide(p, purpose: purpose, tokens: tokens, hashes: hashes, snap: snap, at: now)

        // Decrypt what is allowed, in memory only.
        let needed = decisions.compactMap { d -> DataKeyID? in
            if case .allow(let level) = d.decision, level != .redacted { return d.field?.keyID }
            return nil
        }
        let keys: [DataKeyID: SymmetricKey]
        do {
            keys = try await dataKeys.load(Array(Set(needed)))
        } catch {
            logger.error("data keys could not be loaded", metadata: ["error.type": "\(type(of: error))"])
            throw VaultError(.unavailable, .unavailable, "the vault cannot decrypt right now")
        }
        if needed.contains(where: { keys[$0] == nil }) {
            guard finalAttempt else { return nil }
            let field = decisions.first { d in d.field.map { keys[$0.keyID] == nil && needed.contains($0.keyID) } ?? false }?.field
            throw integrityFailure(subject: field?.subject ?? "", "an active field's data key is missing")
        }
        var out: [Decided] = []
        for d in decisions {
            var decision = d.decision
            var value: String?
            if case .allow(let level) = decision, let field = d.field, level != .redacted, let key = keys[field.keyID] {
                do {
                    let text = try Envelope.openText(field.ciphertext, key: key, context: Self.valueContext(subject: field.subject, field: field.field))
                    if level == .plain {
                        value = text
                    } else if let masked = Masking.mask(text, type: field.type) {
                        value = masked
                    } else {
                        decision = .allow(.redacted)
                    }
                } catch {
                    throw integrityFailure(subject: field.subject, "a stored value failed its integrity check")
                }
            }
            out.append(Decided(token: d.token, record: d.record, decision: decision, value: value,
                               subjectFields: d.record.flatMap { snap.fields[$0.subject] }))
        }
        return out
    }
}
