import CofreCrypto
public import Foundation

/// Contact rules at reveal (CONTRACT §8): a reveal of a contact purpose's field is a contact attempt,
/// allowed only inside the debtor's window (state law, local time, holidays) and within the purpose's
/// caps, counted in the data store in the same transaction as the allowing audit event.
extension Vault {
    /// One token's answer to `POST /v1/contact/eligibility`.
    public struct EligibilityResult: Sendable, Equatable {
        public let token: String
        public let field: String?
        public let eligible: Bool
        public let denied: DenialCode?
        /// For a window or cap denial: when a contact will next be allowed.
        public let nextWindowAt: Date?
    }

    /// The window part of a contact decision, and where the debtor is.
    struct ContactWindowCheck {
        let place: ContactRules.Place
        /// nil when the window is open now.
        let closedUntil: Date??
        var open: Bool { closedUntil == nil }
    }

    /// Where the debtor is, from the subject's `uf` field, else a phone field's area code.
    func contactPlace(fields: [String: FieldRecord]) async throws(VaultError) -> ContactRules.Place {
        let live = fields.values.filter { $0.status != .erased }
        let uf = live.first { $0.type == .uf }
        let phone = live.filter { $0.type == .phone }.sorted { $0.field < $1.field }.first
        var values: [String: String] = [:]
        let wanted = [uf, phone].compactMap { $0 }
        if !wanted.isEmpty {
            let keys: [DataKeyID: SymmetricKey]
            do {
                keys = try await dataKeys.load(wanted.map(\.keyID))
            } catch {
                throw VaultError(.unavailable, .unavailable, "the vault cannot decrypt right now")
            }
            for f in wanted {
                guard let key = keys[f.keyID] else { continue }
                values[f.field] = try? Envelope.openText(f.ciphertext, key: key, context: Self.valueContext(subject: f.subject, field: f.field))
            }
        }
        return policy.contactRules.place(uf: uf.flatMap { values[$0.field] }, phone: phone.flatMap { values[$0.field] })
    }

    func windowCheck(fields: [String: FieldRecord], at: Date) async throws(VaultError) -> ContactWindowCheck {
        let place = try await contactPlace(fields: fields)
        let rules = policy.contactRules
        if rules.isOpen(at: at, place: place) { return ContactWindowCheck(place: place, closedUntil: nil) }
        return ContactWindowCheck(place: place, closedUntil: .some(rules.nextOpening(atOrAfter: at, place: place)))
    }

    /// When the caps next allow a contact (already inside a window), or nil when they allow one now.
    func capsNextWindow(subject: String, purpose: Purpose, limit: ContactLimit, place: ContactRules.Place, at: Date) async throws(VaultError) -> Date?? {
        let rules = policy.contactRules
        let attempts: [Date]
        do {
            attempts = try await store.contactAttempts(subject: subject, since: at.addingTimeInterval(-7 * 86400))
                .filter { $0.purpose == purpose.name }.map(\.at)
        } catch {
            throw mapStore(error)
        }
        let dayStart = rules.startOfDay(at, place: place)
        let nextDay = rules.startOfDay(dayStart.addingTimeInterval(36 * 3600), place: place)
        guard let free = ContactRules.capsFree(at: at, attempts: attempts, limit: limit, dayStart: dayStart, nextDayStart: nextDay) else {
            return nil
        }
        return .some(rules.nextOpening(atOrAfter: free, place: place))
    }

    /// The preconditions that hold a contact within its caps, and the attempt they protect.
    func contactClaim(subject: String, purpose: Purpose, limit: ContactLimit, place: ContactRules.Place, service: String, at: Date) -> [WriteOp] {
        var ops: [WriteOp] = []
        if let perDay = limit.maxPerDay {
            ops.append(.expectContactsBelow(subject: subject, purpose: purpose.name, since: policy.contactRules.startOfDay(at, place: place), max: perDay))
        }
        if let perWeek = limit.maxPerWeek {
            ops.append(.expectContactsBelow(subject: subject, purpose: purpose.name, since: at.addingTimeInterval(-7 * 86400), max: perWeek))
        }
        ops.append(.insertContact(ContactAttempt(subject: subject, purpose: purpose.name, service: service, channel: purpose.channel, at: at)))
        return ops
    }

    /// `POST /v1/contact/eligibility`: whether a contact through each token is allowed now, without
    /// revealing, counting or contacting. One audit event per call.
    public func contactEligibility(_ p: Principal, purpose purposeName: String, tokens: [String], requestID: String?) async throws(VaultError) -> [EligibilityResult] {
        let purpose = try await tokenCall(p, purpose: purposeName, tokens: tokens, action: .contactEligibility, requestID: requestID)
        try await enforceQuota(p, .lookups, count: 1, action: .contactEligibility, purpose: purpose, requestID: requestID)
        let hashes = tokens.map { Identifiers.isToken($0) ? tokenHash($0) : nil }
        let snap: StoreSnapshot
        do {
            snap = try await store.snapshot(tokenHashes: hashes.compactMap { $0 }, subjects: [])
        } catch {
            throw mapStore(error)
        }
        let at = now
        var results: [EligibilityResult] = []
        var bySubject: [String: (DenialCode?, Date?)] = [:]
        for (i, token) in tokens.enumerated() {
            guard let hash = hashes[i], let record = snap.tokens[hash], let fields = snap.fields[record.subject],
                  let field = fields[record.field], field.generation == record.generation else {
                results.append(EligibilityResult(token: token, field: nil, eligible: false, denied: .tokenUnknown, nextWindowAt: nil))
                continue
            }
            let consent = snap.states[record.subject]?[purpose.name] ?? PurposeState()
            let decision = RevealPolicy.decide(RevealRequest(
                service: p.policy, purposeName: purpose.name, purpose: purpose, field: record.field, fieldState: field.state,
                consent: consent.consent, objection: consent.objection, now: at))
            if case .deny(let code) = decision {
                results.append(EligibilityResult(token: token, field: record.field, eligible: false, denied: code, nextWindowAt: nil))
                continue
            }
            guard let limit = purpose.contact, limit.field == record.field else {
                results.append(EligibilityResult(token: token, field: record.field, eligible: true, denied: nil, nextWindowAt: nil))
                continue
            }
            let outcome: (DenialCode?, Date?)
            if let known = bySubject[record.subject] {
                outcome = known
            } else {
                let window = try await windowCheck(fields: fields, at: at)
                if let closed = window.closedUntil {
                    outcome = (.outsideContactWindow, closed)
                } else if let capped = try await capsNextWindow(subject: record.subject, purpose: purpose, limit: limit, place: window.place, at: at) {
                    outcome = (.contactLimitReached, capped)
                } else {
                    outcome = (nil, nil)
                }
                bySubject[record.subject] = outcome
            }
            results.append(EligibilityResult(token: token, field: record.field, eligible: outcome.0 == nil, denied: outcome.0, nextWindowAt: outcome.1))
        }
        var event = draft(p, action: .contactEligibility, requestID: requestID, fields: purpose.contact.map { [$0.field] } ?? [], purpose: purpose,
                          decision: .allow, code: "tokens_\(tokens.count)_eligible_\(results.filter(\.eligible).count)")
        event.target = nil
        do {
            try await store.appendAudit([event])
        } catch {
            throw mapStore(error)
        }
        return results
    }

    /// A subject's contact attempts, oldest first, for the export.
    func contactHistory(subject: String) async throws(VaultError) -> [ContactAttempt] {
        do {
            return try await store.contactAttempts(subject: subject, since: nil)
        } catch {
            throw mapStore(error)
        }
    }
}
