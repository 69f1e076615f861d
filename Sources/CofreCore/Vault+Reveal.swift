import Logging
import CofreCrypto
import Foundation

extension Vault {
    /// One token's answer in a detokenize call.
    public struct RevealResult: Sendable, Equatable {
        public let token: String
        public let field: String?
        public let value: String?
        public let reveal: RevealLevel?
        public let denied: DenialCode?
    }

    /// `POST /v1/detokenize`: each token gets its own decision, and every decision is durably
    /// audited before any value is returned. A purpose the service does not hold fails the whole call.
    public func detokenize(_ p: Principal, purpose purposeName: String, tokens: [String], requestID: String?) async throws(VaultError) -> [RevealResult] {
        guard !tokens.isEmpty else { throw VaultError.badRequest("'tokens' must list at least one token") }
        guard tokens.count <= Self.maxTokensPerCall else {
            throw VaultError.badRequest("at most \(Self.maxTokensPerCall) tokens per call", code: .tooManyTokens)
        }
        let purpose = policy.purposes[purposeName]
        guard p.role == .service, p.policy.purposes.contains(purposeName), let purpose else {
            VaultMetrics.decision(purpose: purposeName, policy: policy, denied: .purposeNotAllowed)
            throw await refuse(
                VaultError(.forbidden, .purposeNotAllowed, "this service does not hold that purpose"),
                audit: draft(p, action: "detokenize", requestID: requestID, purpose: purpose, purposeName: purposeName,
                             decision: .deny, code: DenialCode.purposeNotAllowed.rawValue))
        }

        // Resolve tokens to fields; malformed tokens never reach the store.
        let hashes = tokens.map { Identifiers.isToken($0) ? tokenHash($0) : nil }
        let records: [String: TokenRecord]
        let fields: [String: [String: FieldRecord]]
        let states: [String: [String: PurposeState]]
        do {
            records = try await store.tokens(hashes: hashes.compactMap { $0 })
            let subjects = Set(records.values.map(\.subject))
            var bySubject: [String: [String: FieldRecord]] = [:]
            for f in try await store.fields(subjects: subjects) { bySubject[f.subject, default: [:]][f.field] = f }
            fields = bySubject
            // Read fresh on every call: a revocation or objection takes effect on the very next request.
            states = try await store.consentStates(subjects: subjects)
        } catch {
            throw mapStore(error)
        }

        // Decide each token.
        let at = now
        var decisions: [(token: String, record: TokenRecord?, field: FieldRecord?, decision: RevealDecision)] = []
        for (i, token) in tokens.enumerated() {
            guard let hash = hashes[i], let record = records[hash] else {
                decisions.append((token, nil, nil, .deny(.tokenUnknown)))
                continue
            }
            guard let field = fields[record.subject]?[record.field], field.generation == record.generation else {
                decisions.append((token, record, nil, .deny(.tokenUnknown)))
                continue
            }
            let consent = states[record.subject]?[purposeName] ?? PurposeState()
            let decision = RevealPolicy.decide(RevealRequest(
                service: p.policy, purposeName: purposeName, purpose: purpose, field: record.field, fieldState: field.state,
                consent: consent.consent, objection: consent.objection, now: at))
            decisions.append((token, record, field, decision))
        }

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
        var results: [RevealResult] = []
        var audit: [AuditDraft] = []
        for d in decisions {
            var decision = d.decision
            var value: String?
            if case .allow(let level) = decision, let field = d.field, level != .redacted {
                if let key = keys[field.keyID] {
                    do {
                        let plain = try Envelope.open(field.ciphertext, key: key, context: Self.valueContext(subject: field.subject, field: field.field))
                        let text = String(decoding: plain, as: UTF8.self)
                        if level == .plain {
                            value = text
                        } else if let masked = Masking.mask(text, type: field.type) {
                            value = masked
                        } else {
                            decision = .allow(.redacted)
                        }
                    } catch {
                        logger.error("stored value failed its integrity check",
                                     metadata: ["subject": "\(field.subject)", "field": "\(field.field)"])
                        throw VaultError(.unavailable, .init("integrity_failure"), "a stored value failed its integrity check; nothing was revealed")
                    }
                } else {
                    // The key is gone: the value was shredded.
                    decision = .deny(.subjectErased)
                }
            }
            let code: String? = if case .deny(let c) = decision { c.rawValue } else { nil }
            VaultMetrics.decision(purpose: purposeName, policy: policy, denied: code.flatMap(DenialCode.init(rawValue:)))
            audit.append(draft(p, action: "detokenize", requestID: requestID, subject: d.record?.subject,
                               fields: d.record.map { [$0.field] } ?? [], purpose: purpose,
                               decision: code == nil ? .allow : .deny, code: code, ref: chain.ref("token", d.token)))
            switch decision {
            case .allow(let level):
                results.append(RevealResult(token: d.token, field: d.record?.field, value: value, reveal: level, denied: nil))
            case .deny(let c):
                results.append(RevealResult(token: d.token, field: nil, value: nil, reveal: nil, denied: c))
            }
        }
        // Fail closed: no durable record, no value.
        do {
            try await store.appendAudit(audit)
        } catch {
            throw mapStore(error)
        }
        return results
    }
}
