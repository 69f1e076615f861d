import CofreAPI
import CofreCore
import CofreTestSupport
import Foundation
import HTTPTypes
import Testing

/// Incident scope (CONTRACT §10, LGPD Art. 48): from a generated audit log whose answer the test knows.
@Suite("Incident scope: which subjects and fields a service read in a window")
struct IncidentScopeTests {
    static func local(_ text: String) -> Date { ContactRulesHTTPTests.local(text) }

    static func scopeURI(service: String, since: Date, until: Date, detectedAt: Date? = nil, format: String? = nil) -> String {
        func q(_ d: Date) -> String { WireJSON.formatDate(d).replacingOccurrences(of: "+", with: "%2B") }
        var uri = "/v1/incidents/scope?service=\(service)&since=\(q(since))&until=\(q(until))"
        if let detectedAt { uri += "&detected_at=\(q(detectedAt))" }
        if let format { uri += "&format=\(format)" }
        return uri
    }

    @Test("1,200 subjects, reveals and lookups inside and outside the window, denials: exactly the known subjects, fields, counts and first/last access, in JSON and CSV")
    func knownAnswer() async throws {
        let clock = TestClock(Self.local("2026-12-21 09:00"))  // a Monday
        let tv = try await TestVault.make(clock: clock)
        let crm = try await tv.principal("crm").key, bot = try await tv.principal("whatsapp-bot").key
        let dpo = try await tv.principal("dpo").key, auditor = try await tv.principal("auditor").key
        try await withAPI(tv) { api in
            // 1,200 subjects in two batches.
            var subjects: [(id: String, tokens: [String: String])] = []
            for batch in 0..<2 {
                let items = (0..<600).map { i in
                    CreateSubjectRequest(externalRef: "inc-\(batch)-\(i)", fields: ["name": "Pessoa \(batch)-\(i)", "phone": "+55119\(String(format: "%08d", batch * 600 + i))"])
                }
                let r = try await api.post("/v1/subjects/batch", key: crm, BatchCreateRequest(subjects: items)).decode(BatchCreateResponse.self)
                subjects += r.results.map { ($0.subject!, $0.tokens!) }
            }
            // Consent for the bot on the first 1,000; the rest are denied (consent_missing) and must not count.
            for s in subjects.prefix(1000) {
                _ = try await api.send(.put, "/v1/subjects/\(s.id)/consents/collection-whatsapp", key: dpo,
                                       ConsentRequest(status: "granted", channel: "whatsapp", evidence: "w", noticeVersion: "2026-01"))
            }
            // Before the window: the bot reads subjects 0..<100's phone (not counted).
            _ = try await api.detokenize(key: bot, purpose: "collection-whatsapp", subjects[0..<100].map { $0.tokens["phone"]! })
            clock.advance(seconds: 3600)  // 10:00: the window opens
            let since = clock.now
            // In the window: phones of 0..<1000 and 1000..<1200 (those are denied), then names of 500..<700.
            _ = try await api.detokenize(key: bot, purpose: "collection-whatsapp", subjects[0..<1000].map { $0.tokens["phone"]! })
            let denied = try await api.detokenize(key: bot, purpose: "collection-whatsapp", subjects[1000..<1200].map { $0.tokens["phone"]! })
            #expect(denied.results.allSatisfy { $0.denied?.code == .consentMissing })
            clock.advance(seconds: 60)
            _ = try await api.detokenize(key: bot, purpose: "collection-whatsapp", subjects[500..<700].map { $0.tokens["name"]! })
            // The CRM's reads are another service's: not in the bot's scope.
            _ = try await api.detokenize(key: crm, purpose: "collection-call", subjects[0..<50].map { $0.tokens["phone"]! })
            // A lookup by the CRM (plain phone in collection-call) tells it which subject holds a value.
            let lookedUp = try await api.lookup(key: crm, purpose: "collection-call", field: "phone", value: "+5511900001007")
            #expect(lookedUp.status == .ok)
            clock.advance(seconds: 60)
            let until = clock.now
            // After the window: not counted.
            _ = try await api.detokenize(key: bot, purpose: "collection-whatsapp", subjects[900..<1000].map { $0.tokens["name"]! })

            let detected = Self.local("2026-12-24 15:00")  // Thursday before Christmas
            let r = try await api.call(.get, Self.scopeURI(service: "whatsapp-bot", since: since, until: until, detectedAt: detected), key: dpo)
            #expect(r.status == .ok)
            let scope = try r.decode(IncidentScopeResponse.self)
            #expect(scope.subjectCount == 1000 && scope.subjects.count == 1000)
            #expect(scope.accessCount == 1200)
            #expect(scope.byField == ["phone": .init(subjects: 1000, accesses: 1000), "name": .init(subjects: 200, accesses: 200)])
            #expect(scope.byPurpose == ["collection-whatsapp": .init(subjects: 1000, accesses: 1200)])
            let inOrder = scope.subjects.map(\.subject) == subjects.prefix(1000).map(\.id).sorted()
            #expect(inOrder, "every subject once, in subject order")
            let byID = Dictionary(uniqueKeysWithValues: scope.subjects.map { ($0.subject, $0) })
            let both = try #require(byID[subjects[600].id])
            #expect(both.fields == ["name", "phone"] && both.accesses == 2 && both.firstAccess == since && both.lastAccess == since.addingTimeInterval(60))
            let phoneOnly = try #require(byID[subjects[10].id])
            #expect(phoneOnly.fields == ["phone"] && phoneOnly.accesses == 1 && phoneOnly.firstAccess == since && phoneOnly.lastAccess == since)
            #expect(scope.detectedAt == detected)
            #expect(scope.notifyByDate == "2026-12-30", "Friday 25 is Christmas, then the weekend: Mon 28, Tue 29, Wed 30")
            #expect(scope.notifyBy.map(WireJSON.formatDate) == "2026-12-31T02:59:59.999Z", "the end of that day in Brasília")
            #expect(!r.raw.contains("Pessoa") && !r.raw.contains("+5511"), "values never appear")

            // The CRM: its 50 reads plus the lookup's subject.
            let crmScope = try await api.call(.get, Self.scopeURI(service: "crm", since: since, until: until), key: dpo).decode(IncidentScopeResponse.self)
            #expect(crmScope.subjectCount == 51 && crmScope.accessCount == 51 && crmScope.notifyBy == nil)
            #expect(crmScope.byField == ["phone": .init(subjects: 51, accesses: 51)])

            // CSV: the same subjects, one row each.
            let csv = try await api.call(.get, Self.scopeURI(service: "whatsapp-bot", since: since, until: until, format: "csv"), key: dpo)
            #expect(csv.headers[.contentType] == "text/csv; charset=utf-8")
            let rows = csv.raw.split(separator: "\r\n").map(String.init)
            #expect(rows.first == IncidentScopeResponse.csvHeader)
            #expect(rows.count == 1001)
            let row600 = rows.first { $0.hasPrefix(subjects[600].id + ",") }
            #expect(row600 == "\(subjects[600].id),name;phone,collection-whatsapp,2,\(WireJSON.formatDate(since)),\(WireJSON.formatDate(since.addingTimeInterval(60)))")

            // Nothing in an empty window; a service the policy does not know answers an empty scope too.
            let empty = try await api.call(.get, Self.scopeURI(service: "whatsapp-bot", since: until.addingTimeInterval(3600), until: until.addingTimeInterval(7200)), key: dpo)
                .decode(IncidentScopeResponse.self)
            #expect(empty.subjectCount == 0 && empty.subjects.isEmpty && empty.byField.isEmpty)
            let gone = try await api.call(.get, Self.scopeURI(service: "old-bot", since: since, until: until), key: dpo).decode(IncidentScopeResponse.self)
            #expect(gone.subjectCount == 0)

            // Each query is audited, naming the scoped service (a name the policy lacks only by its keyed hash).
            let audit = try await api.call(.get, "/v1/audit/events?action=incident.scope", key: auditor).decode(AuditEventsResponse.self).events
            #expect(audit.count == 5 && audit.allSatisfy { $0.decision == .allow && $0.service == "dpo" })
            #expect(audit.map(\.target).prefix(4) == ["whatsapp-bot", "crm", "whatsapp-bot", "whatsapp-bot"])
            #expect(audit.last?.target?.hasPrefix("unknown") == true && audit.last?.target?.contains("old-bot") == false)
        }
    }

    @Test("a service that read a subject's consents (and their evidence) has that subject in its scope")
    func consentReadsCount() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key, bot = try await tv.principal("whatsapp-bot").key, dpo = try await tv.principal("dpo").key
        let since = tv.clock.now.addingTimeInterval(-1), until = tv.clock.now.addingTimeInterval(60)
        try await withAPI(tv) { api in
            let subject = try await api.createSubject(key: crm, ref: "c-1", ["name": "Ana"]).subject
            #expect(try await api.call(.get, "/v1/subjects/\(subject)/consents", key: bot).status == .ok)
            let scope = try await api.call(.get, Self.scopeURI(service: "whatsapp-bot", since: since, until: until), key: dpo).decode(IncidentScopeResponse.self)
            #expect(scope.subjects.map(\.subject) == [subject] && scope.subjects.first?.fields == [Vault.consentsScopeField])
            #expect(scope.byField == [Vault.consentsScopeField: .init(subjects: 1, accesses: 1)])
        }
    }

    @Test("only the DPO; bad input is 400 with a clear message")
    func refusals() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key, dpo = try await tv.principal("dpo").key, auditor = try await tv.principal("auditor").key
        let since = Date(timeIntervalSince1970: 1_790_000_000), until = since.addingTimeInterval(3600)
        try await withAPI(tv) { api in
            #expect(try await api.call(.get, Self.scopeURI(service: "crm", since: since, until: until), key: crm).status == .forbidden)
            #expect(try await api.call(.get, Self.scopeURI(service: "crm", since: since, until: until), key: auditor).status == .forbidden)
            #expect(try await api.call(.get, Self.scopeURI(service: "crm", since: since, until: until)).status == .unauthorized)
            for (uri, words) in [
                ("/v1/incidents/scope?since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z", "'service' is required"),
                ("/v1/incidents/scope?service=crm&until=2026-01-02T00:00:00Z", "'since' and 'until' are required"),
                ("/v1/incidents/scope?service=crm&since=yesterday&until=2026-01-02T00:00:00Z", "ISO 8601"),
                ("/v1/incidents/scope?service=crm&since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "'since' must be before 'until'"),
                ("/v1/incidents/scope?service=crm&since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z&format=xml", "'format' must be json or csv"),
                ("/v1/incidents/scope?service=crm&since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z&detected_at=soon", "ISO 8601"),
                ("/v1/incidents/scope?service=crm&since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z&subject=x", "unknown query parameter"),
            ] {
                let r = try await api.call(.get, uri, key: dpo)
                #expect(r.status == .badRequest && r.errorCode == .malformedRequest, "\(uri)")
                #expect(r.errorMessage?.contains(words) == true, "\(uri): \(r.errorMessage ?? "")")
            }
        }
    }
}
