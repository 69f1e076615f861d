import CofreAPI
import CofreCore
import CofreTestSupport
import Foundation
import HTTPTypes
import Testing

/// Contact rules at reveal (CONTRACT §8), through the router, with the vault's clock set by the test.
@Suite("Contact rules: collection hours by the debtor's state, holidays and caps, at reveal")
struct ContactRulesHTTPTests {
    /// An instant given as a wall-clock time in `zone`.
    static func local(_ text: String, _ zone: String = "America/Sao_Paulo") -> Date {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: zone)
        f.dateFormat = "yyyy-MM-dd HH:mm"
        return f.date(from: text)!
    }

    static let purpose = "collection-dialer"

    @Test("20:01 in São Paulo: the SP debtor is denied until the next morning, the Manaus debtor by Manaus time; inside the window it is allowed")
    func windowAtReveal() async throws {
        let clock = TestClock(Self.local("2026-11-30 20:01"))  // a Monday
        let tv = try await TestVault.make(clock: clock)
        let crm = try await tv.principal("crm").key, dialer = try await tv.principal("dialer").key
        try await withAPI(tv) { api in
            let sp = try await api.createSubject(key: crm, ref: "sp-1", ["name": "Maria", "phone": "(11) 98765-4321"])
            let manaus = try await api.createSubject(key: crm, ref: "am-1", ["name": "Ana", "phone": "(92) 98765-4321"])
            let rioByField = try await api.createSubject(key: crm, ref: "rj-1", ["name": "Rui", "phone": "(11) 91234-5678", "state": "rj"])

            var r = try await api.detokenize(key: dialer, purpose: Self.purpose, [sp.tokens["phone"]!, sp.tokens["name"]!])
            #expect(r.results[0].denied?.code == .outsideContactWindow)
            #expect(r.results[0].denied?.nextWindowAt == Self.local("2026-12-01 08:00"), "the next allowed morning in São Paulo")
            #expect(r.results[0].value == nil && !r.raw.contains("98765"))
            #expect(r.results[1].value == "Maria", "other fields of the purpose are not contacts")

            // 20:01 in São Paulo is 19:01 in Manaus: closed there too (AM ends at 18:00), next opening 08:00 Manaus time.
            r = try await api.detokenize(key: dialer, purpose: Self.purpose, [manaus.tokens["phone"]!])
            #expect(r.results[0].denied?.code == .outsideContactWindow)
            #expect(r.results[0].denied?.nextWindowAt == Self.local("2026-12-01 08:00", "America/Manaus"))

            // 18:30 in São Paulo (17:30 in Manaus): both open; the state field (RJ) wins over the SP area code: RJ ends at 19:00.
            clock.advance(seconds: -(91 * 60))
            r = try await api.detokenize(key: dialer, purpose: Self.purpose, [sp.tokens["phone"]!, manaus.tokens["phone"]!, rioByField.tokens["phone"]!])
            #expect(r.results.map(\.value) == ["+5511987654321", "+5592987654321", "+5511912345678"])
            clock.advance(seconds: 45 * 60)  // 19:15: RJ closed, judged by the state field
            let rio = try await api.createSubject(key: crm, ref: "rj-2", ["name": "Rosa", "phone": "(11) 90000-1111", "state": "RJ"])
            r = try await api.detokenize(key: dialer, purpose: Self.purpose, [rio.tokens["phone"]!])
            #expect(r.results[0].denied?.code == .outsideContactWindow)
            #expect(r.results[0].denied?.nextWindowAt == Self.local("2026-12-01 09:00"))

            // A purpose without `contact:` is not bound by the window.
            let call = try await api.detokenize(key: crm, purpose: "collection-call", [sp.tokens["phone"]!])
            #expect(call.results[0].value == "+5511987654321")
        }
    }

    @Test("caps: a second call the same day is denied until the next window; a denied attempt does not count; the week cap rolls")
    func capsAtReveal() async throws {
        let clock = TestClock(Self.local("2026-11-23 07:30"))  // a Monday, before the window
        let tv = try await TestVault.make(clock: clock)
        let crm = try await tv.principal("crm").key, dialer = try await tv.principal("dialer").key
        let auditor = try await tv.principal("auditor").key, dpo = try await tv.principal("dpo").key
        try await withAPI(tv) { api in
            let s = try await api.createSubject(key: crm, ref: "c-1", ["name": "Maria", "phone": "11987654321"])
            let phone = s.tokens["phone"]!
            // Outside the window: denied, and not counted.
            #expect(try await api.detokenize(key: dialer, purpose: Self.purpose, [phone]).results[0].denied?.code == .outsideContactWindow)
            clock.advance(seconds: 3600)  // 08:30
            #expect(try await api.detokenize(key: dialer, purpose: Self.purpose, [phone, phone]).results.map(\.value) == ["+5511987654321", "+5511987654321"],
                    "one call is one attempt, however many times the token is listed")
            let second = try await api.detokenize(key: dialer, purpose: Self.purpose, [phone])
            #expect(second.results[0].denied?.code == .contactLimitReached)
            #expect(second.results[0].denied?.nextWindowAt == Self.local("2026-11-24 08:00"))
            // Tuesday and Wednesday: one each; Thursday the week cap (3 in 7 days) holds until Monday's attempt ages out.
            for day in ["2026-11-24 10:00", "2026-11-25 10:00"] {
                clock.advance(seconds: Self.local(day).timeIntervalSince(clock.now))
                #expect(try await api.detokenize(key: dialer, purpose: Self.purpose, [phone]).results[0].value != nil, "\(day)")
            }
            clock.advance(seconds: Self.local("2026-11-26 10:00").timeIntervalSince(clock.now))
            let weekly = try await api.detokenize(key: dialer, purpose: Self.purpose, [phone])
            #expect(weekly.results[0].denied?.code == .contactLimitReached)
            #expect(weekly.results[0].denied?.nextWindowAt == Self.local("2026-11-30 08:30"), "Monday 08:30 + 7 days, inside Monday's window")

            // The export lists the three attempts; the audit log has every decision with its code.
            let export = try await api.call(.get, "/v1/subjects/\(try s.subject)/export", key: dpo).decode(ExportResponse.self)
            #expect(export.contactAttempts.map(\.at) == [Self.local("2026-11-23 08:30"), Self.local("2026-11-24 10:00"), Self.local("2026-11-25 10:00")])
            #expect(export.contactAttempts.allSatisfy { $0.purpose == Self.purpose && $0.channel == "phone" && $0.service == "dialer" })
            let events = try await api.call(.get, "/v1/audit/events?subject=\(try s.subject)&action=detokenize&limit=100", key: auditor)
                .decode(AuditEventsResponse.self).events
            #expect(events.compactMap(\.code) == ["outside_contact_window", "contact_limit_reached", "contact_limit_reached"])
            #expect(events.filter { $0.decision == .allow }.count == 4, "two tokens on Monday, one on Tuesday, one on Wednesday")
        }
    }

    @Test("caps hold across two instances and many concurrent dialers: exactly one call a day gets the number")
    func capsAcrossInstances() async throws {
        let clock = TestClock(Self.local("2026-11-30 10:00"))
        let a = try await TestVault.make(clock: clock)
        let b = try await a.reopen()
        let crm = try await a.principal("crm").key, dialer = try await a.principal("dialer").key
        let subject = try await withAPI(a) { api in try await api.createSubject(key: crm, ref: "race-1", ["phone": "11987654321"]).tokens["phone"]! }
        let revealed = LockedCounter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for instance in [a, b] {
                group.addTask {
                    try await withAPI(instance) { api in
                        try await withThrowingTaskGroup(of: Void.self) { inner in
                            for _ in 0..<8 {
                                inner.addTask {
                                    let r = try await api.detokenize(key: dialer, purpose: Self.purpose, [subject])
                                    #expect(r.status == .ok)
                                    if r.results.first?.value != nil { revealed.increment() }
                                    else { #expect(r.results.first?.denied?.code == .contactLimitReached) }
                                }
                            }
                            try await inner.waitForAll()
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(revealed.value == 1)
    }

    @Test("eligibility: the same decision per token, without revealing or counting; one audit event per call; 1000 tokens in one call")
    func eligibility() async throws {
        let clock = TestClock(Self.local("2026-11-30 10:00"))
        let tv = try await TestVault.make(clock: clock)
        let crm = try await tv.principal("crm").key, dialer = try await tv.principal("dialer").key
        let auditor = try await tv.principal("auditor").key, bot = try await tv.principal("whatsapp-bot").key
        try await withAPI(tv) { api in
            let batch = try await api.post("/v1/subjects/batch", key: crm, BatchCreateRequest(subjects: (0..<1000).map {
                CreateSubjectRequest(externalRef: "camp-\($0)", fields: ["name": "Pessoa \($0)", "phone": $0 % 2 == 0 ? "11 9\(String(format: "%08d", $0))" : "92 9\(String(format: "%08d", $0))"])
            })).decode(BatchCreateResponse.self)
            let phones = batch.results.map { $0.tokens!["phone"]! }
            clock.advance(seconds: Self.local("2026-11-30 19:30").timeIntervalSince(clock.now))  // SP open, Manaus (18:30) closed
            for _ in 0..<2 {
                let r = try await api.post("/v1/contact/eligibility", key: dialer, ContactEligibilityRequest(purpose: Self.purpose, tokens: phones))
                #expect(r.status == .ok, "\(r.raw.prefix(300))")
                let results = try r.decode(ContactEligibilityResponse.self).results
                #expect(results.count == 1000)
                #expect(results.enumerated().allSatisfy { i, e in i % 2 == 0 ? e.eligible : (!e.eligible && e.denied?.code == .outsideContactWindow) })
                #expect(results[1].denied?.nextWindowAt == Self.local("2026-12-01 08:00", "America/Manaus"))
                #expect(!r.raw.contains("+55"), "no value in an eligibility answer")
            }
            // Nothing was counted: the dialer still gets the first SP number, then the cap applies.
            #expect(try await api.detokenize(key: dialer, purpose: Self.purpose, [phones[0]]).results[0].value != nil)
            let after = try await api.post("/v1/contact/eligibility", key: dialer, ContactEligibilityRequest(purpose: Self.purpose, tokens: [phones[0], "tok_x"]))
                .decode(ContactEligibilityResponse.self).results
            #expect(after[0].denied?.code == .contactLimitReached && after[0].denied?.nextWindowAt == Self.local("2026-12-01 08:00"))
            #expect(after[1].denied?.code == .tokenUnknown)
            let events = try await api.call(.get, "/v1/audit/events?action=contact.eligibility&limit=100", key: auditor).decode(AuditEventsResponse.self)
            #expect(events.events.count == 3)
            #expect(events.events.first?.code == "tokens_1000_eligible_500")
            // Roles and purposes: the bot does not hold the purpose; an unknown purpose is 404.
            #expect(try await api.post("/v1/contact/eligibility", key: bot, ContactEligibilityRequest(purpose: Self.purpose, tokens: [phones[0]])).errorCode
                    == .purposeNotAllowed)
            #expect(try await api.post("/v1/contact/eligibility", key: dialer, ContactEligibilityRequest(purpose: "nope", tokens: [phones[0]])).errorCode
                    == .purposeUnknown)
            #expect(try await api.post("/v1/contact/eligibility", key: dialer, ContactEligibilityRequest(purpose: Self.purpose, tokens: [])).status
                    == .badRequest)
        }
    }

    @Test("a failure at the attempt's commit: before it, nothing revealed or counted; after it (outcome unknown), nothing revealed and the attempt counted once")
    func claimFailures() async throws {
        let clock = TestClock(Self.local("2026-11-30 10:00"))
        let failing = FailingStoreBox()
        let tv = try await TestVault.make(clock: clock, wrapStore: { failing.wrap($0) })
        let crm = try await tv.principal("crm").key, dialer = try await tv.principal("dialer").key, dpo = try await tv.principal("dpo").key
        let claims: @Sendable (WriteBatch) -> Bool = { batch in batch.ops.contains { if case .insertContact = $0 { true } else { false } } }
        try await withAPI(tv) { api in
            let s = try await api.createSubject(key: crm, ref: "f-1", ["phone": "11987654321"])
            let phone = s.tokens["phone"]!
            func attempts() async throws -> Int {
                try await api.call(.get, "/v1/subjects/\(try s.subject)/export", key: dpo).decode(ExportResponse.self).contactAttempts.count
            }
            failing.store!.commitFault = { claims($0) ? .failBefore : nil }
            var r = try await api.detokenize(key: dialer, purpose: Self.purpose, [phone])
            #expect(r.status == .serviceUnavailable && !r.raw.contains("98765"))
            failing.store!.commitFault = nil
            #expect(try await attempts() == 0, "nothing committed, nothing counted")
            r = try await api.detokenize(key: dialer, purpose: Self.purpose, [phone])
            #expect(r.results[0].value == "+5511987654321", "the cap is still free")

            clock.advance(seconds: 86400)  // Tuesday
            failing.store!.commitFault = { claims($0) ? .failAfterCommit : nil }
            r = try await api.detokenize(key: dialer, purpose: Self.purpose, [phone])
            #expect(r.status == .serviceUnavailable && !r.raw.contains("98765"), "an unknown outcome reveals nothing")
            failing.store!.commitFault = nil
            #expect(try await attempts() == 2, "the committed attempt counts, once")
            r = try await api.detokenize(key: dialer, purpose: Self.purpose, [phone])
            #expect(r.results[0].denied?.code == .contactLimitReached)
        }
    }

    @Test("a Sunday and a national holiday are closed whatever the hour")
    func sundayAndHoliday() async throws {
        let clock = TestClock(Self.local("2026-11-29 10:00"))  // Sunday
        let tv = try await TestVault.make(clock: clock)
        let crm = try await tv.principal("crm").key, dialer = try await tv.principal("dialer").key
        try await withAPI(tv) { api in
            let s = try await api.createSubject(key: crm, ref: "h-1", ["phone": "11987654321"])
            var r = try await api.detokenize(key: dialer, purpose: Self.purpose, [s.tokens["phone"]!])
            #expect(r.results[0].denied?.code == .outsideContactWindow && r.results[0].denied?.nextWindowAt == Self.local("2026-11-30 08:00"))
            clock.advance(seconds: Self.local("2026-12-25 10:00").timeIntervalSince(clock.now))  // Christmas, a Friday
            r = try await api.detokenize(key: dialer, purpose: Self.purpose, [s.tokens["phone"]!])
            #expect(r.results[0].denied?.code == .outsideContactWindow && r.results[0].denied?.nextWindowAt == Self.local("2026-12-26 08:00"))
        }
    }
}

/// A counter tasks may share.
final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func increment() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}
