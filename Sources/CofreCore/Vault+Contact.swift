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

    /// A contact the rules refuse now, and when one will next be allowed (nil: no opening within 60 days).
    struct ContactRefusal {
        let code: DenialCode
        let next: Date?
    }

    /// Where the debtor is, from the subject's `uf` field, else a phone field's area code. `opened` holds
    /// values the caller already decrypted, by field name; the others are decrypted here.
    func contactPlace(fields: [String: FieldRecord], opened: [String: String]) async throws(VaultError) -> ContactRules.Place {
        let live = fields.values.filter { $0.status != .erased }
        let uf = live.first { $0.type == .uf }
        let phone = live.filter { $0.type == .phone }.sorted { $0.field < $1.field }.first
        var values = opened
        let wanted = [uf, phone].compactMap { $0 }.filter { values[$0.field] == nil }
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

    /// Where the debtor is, and, when the window is closed now, the refusal with its next opening.
    func windowCheck(fields: [String: FieldRecord], opened: [String: String] = [:], at: Date) async throws(VaultError)
        -> (place: ContactRules.Place, refusal: ContactRefusal?) {
        let place = try await contactPlace(fields: fields, opened: opened)
        let rules = policy.contactRules
        if rules.isOpen(at: at, place: place) { return (place, nil) }
        return (place, ContactRefusal(code: .outsideContactWindow, next: rules.nextOpening(atOrAfter: at, place: place)))
    }

    /// The caps' refusal (already inside a window), with when they next allow a contact; nil when they allow one now.
    func capsRefusal(subject: String, purpose: Purpose, limit: ContactLimit, place: ContactRules.Place, at: Date) async throws(VaultError) -> ContactRefusal? {
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
        return ContactRefusal(code: .contactLimitReached, next: rules.nextOpening(atOrAfter: free, place: place))
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
        var results: [EligibilityResult] = []
        var bySubject: [String: ContactRefusal?] = [:]
        let at = now
        for d in decide(p, purpose: purpose, tokens: tokens, hashes: hashes, snap: snap, at: at) {
            guard let record = d.record, let fields = snap.fields[record.subject], d.field != nil else {
                results.append(EligibilityResult(token: d.token, field: nil, eligible: false, denied: .tokenUnknown, nextWindowAt: nil))
                continue
            }
            if case .deny(let code) = d.decision {
                results.append(EligibilityResult(token: d.token, field: record.field, eligible: false, denied: code, nextWindowAt: nil))
                continue
            }
            guard let limit = purpose.contact, limit.field == record.field else {
                results.append(EligibilityResult(token: d.token, field: record.field, eligible: true, denied: nil, nextWindowAt: nil))
                continue
            }
            let refusal: ContactRefusal?
            if let known = bySubject[record.subject] {
                refusal = known
            } else {
                let window = try await windowCheck(fields: fields, at: at)
                if let closed = window.refusal {
                    refusal = closed
                } else {
                    refusal = try await capsRefusal(subject: record.subject, purpose: purpose, limit: limit, place: window.place, at: at)
                }
                bySubject[record.subject] = refusal
            }
            results.append(EligibilityResult(token: d.token, field: record.field, eligible: refusal == nil, denied: refusal?.code,
                                             nextWindowAt: refusal?.next))
        }
        let event = draft(p, action: .contactEligibility, requestID: requestID, fields: purpose.contact.map { [$0.field] } ?? [], purpose: purpose,
                          decision: .allow, code: "tokens_\(tokens.count)_eligible_\(results.filter(\.eligible).count)")
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
