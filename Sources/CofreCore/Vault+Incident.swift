public import Foundation

/// Incident scope (CONTRACT §10, LGPD Art. 48, Res. CD/ANPD 15/2024): which subjects and fields a
/// service read in a window, from the audit log, streamed subject by subject so that any number fits
/// in memory.
public struct IncidentScan: Sendable {
    public let service: String
    public let since: Date
    public let until: Date
    public let detectedAt: Date?
    public let notifyBy: Date?
    public let notifyByDate: String?
    /// The log is read up to here (its head when the query started).
    public let through: Int64
}

/// What a scan counted, known once every subject has been streamed.
public struct IncidentTotals: Sendable, Equatable {
    public var subjects = 0
    public var accesses = 0
    public var byField: [String: IncidentScopeResponse.Count] = [:]
    public var byPurpose: [String: IncidentScopeResponse.Count] = [:]
}

/// Business days for the ANPD's deadlines: weekends and the given holidays (Brasília's local dates,
/// `YYYY-MM-DD`) do not count.
public enum BusinessDays {
    public static let zone = TimeZone(identifier: "America/Sao_Paulo")!

    /// The end (23:59:59.999, Brasília) of the `days`-th business day after the day of `start`, and
    /// that day as `YYYY-MM-DD`. The day of `start` itself is not counted.
    public static func deadline(after start: Date, days: Int = 3, holidays: Set<String>) -> (end: Date, day: String) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        var day = calendar.startOfDay(for: start)
        var counted = 0
        while counted < days {
            day = calendar.startOfDay(for: calendar.date(byAdding: .day, value: 1, to: day)!.addingTimeInterval(3 * 3600))
            let c = calendar.dateComponents([.year, .month, .day, .weekday], from: day)
            let text = String(format: "%04d-%02d-%02d", c.year!, c.month!, c.day!)
            if c.weekday != 1, c.weekday != 7, !holidays.contains(text) { counted += 1 }
        }
        let c = calendar.dateComponents([.year, .month, .day], from: day)
        let next = calendar.startOfDay(for: calendar.date(byAdding: .day, value: 1, to: day)!.addingTimeInterval(3 * 3600))
        return (next.addingTimeInterval(-0.001), String(format: "%04d-%02d-%02d", c.year!, c.month!, c.day!))
    }
}

extension Vault {
    static let incidentPage = 1000
    /// How an incident scope names a read of a subject's consents (and their evidence).
    public static let consentsScopeField = "(consents)"

    /// `GET /v1/incidents/scope` (dpo): checks the query, records it in the audit log (before anything
    /// is read, so a scan is never unrecorded) and pins the log's head. The subjects are then read with
    /// `scanIncident`. A service the policy no longer names can still be scoped (a decommissioned
    /// service whose key leaked); the audit event then holds its keyed hash, not the name.
    public func incidentScope(_ p: Principal, service: String, since: Date, until: Date, detectedAt: Date?,
                              requestID: String?) async throws(VaultError) -> IncidentScan {
        try await requireDPO(p, action: .incidentScope, requestID: requestID)
        guard !service.isEmpty, service.count <= 128, service.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
            throw VaultError.badRequest("'service' must be a service name")
        }
        guard since < until else { throw VaultError.badRequest("'since' must be before 'until'") }
        // Its deadline must still be a four-digit year (RFC 3339).
        if let detectedAt, detectedAt > Date(timeIntervalSince1970: 253_370_764_800) {  // 9999-01-01
            throw VaultError.badRequest("'detected_at' is out of range")
        }
        let deadline = detectedAt.map { BusinessDays.deadline(after: $0, holidays: policy.contactRules.nationalHolidays) }
        do {
            let head = try await store.lastAuditEvent()?.seq ?? 0
            var a = draft(p, action: .incidentScope, requestID: requestID, decision: .allow)
            a.target = policy.services[service] == nil ? unknownName(service) : service
            // The window scoped, for auditors: since/until[/detected_at].
            a.ref = ([since, until] + (detectedAt.map { [$0] } ?? [])).map(WireJSON.formatDate).joined(separator: "/")
            try await store.appendAudit([a])
            return IncidentScan(service: service, since: since, until: until, detectedAt: detectedAt, notifyBy: deadline?.end,
                                notifyByDate: deadline?.day, through: head)
        } catch {
            throw mapStore(error)
        }
    }

    /// Streams the scan's subjects, in subject order, page by page, and returns the counts.
    public func scanIncident(_ scan: IncidentScan, _ page: ([IncidentScopeResponse.Subject]) async throws -> Void) async throws -> IncidentTotals {
        var totals = IncidentTotals()
        var cursor: AccessCursor?
        var current: Accumulator?
        func close(_ acc: Accumulator) -> IncidentScopeResponse.Subject {
            totals.subjects += 1
            totals.accesses += acc.accesses
            for (field, n) in acc.fields {
                let c = totals.byField[field] ?? .init(subjects: 0, accesses: 0)
                totals.byField[field] = .init(subjects: c.subjects + 1, accesses: c.accesses + n)
            }
            for (purpose, n) in acc.purposes {
                let c = totals.byPurpose[purpose] ?? .init(subjects: 0, accesses: 0)
                totals.byPurpose[purpose] = .init(subjects: c.subjects + 1, accesses: c.accesses + n)
            }
            return .init(subject: acc.subject, fields: acc.fields.keys.sorted(), purposes: acc.purposes.keys.sorted(),
                         accesses: acc.accesses, firstAccess: acc.first, lastAccess: acc.last)
        }
        while true {
            let events = try await store.accessEvents(service: scan.service, since: scan.since, until: scan.until, through: scan.through,
                                                      after: cursor, limit: Self.incidentPage)
            var done: [IncidentScopeResponse.Subject] = []
            for e in events {
                guard let subject = e.draft.subject else { continue }
                if current?.subject != subject {
                    if let c = current { done.append(close(c)) }
                    current = Accumulator(subject: subject, first: e.draft.time, last: e.draft.time)
                }
                current!.add(e.draft)
            }
            if !done.isEmpty { try await page(done) }
            guard events.count == Self.incidentPage, let last = events.last, let subject = last.draft.subject else { break }
            cursor = AccessCursor(subject: subject, seq: last.seq)
        }
        if let c = current { try await page([close(c)]) }
        return totals
    }

    struct Accumulator {
        let subject: String
        var first: Date
        var last: Date
        var accesses = 0
        var fields: [String: Int] = [:]
        var purposes: [String: Int] = [:]
        init(subject: String, first: Date, last: Date) {
            self.subject = subject
            self.first = first
            self.last = last
        }
        mutating func add(_ d: AuditDraft) {
            accesses += 1
            first = min(first, d.time)
            last = max(last, d.time)
            for f in d.fields { fields[f, default: 0] += 1 }
            // Reading a subject's consents shows their evidence: counted as a field of its own.
            if d.action == AuditAction.consentRead.rawValue { fields[Vault.consentsScopeField, default: 0] += 1 }
            purposes[d.purpose ?? "none", default: 0] += 1
        }
    }
}
