import CofreAPI
import CofreCore
import CofreTestSupport
import Foundation
import HTTPTypes
import Testing

@Suite("Prometheus metrics")
struct MetricsTests {
    @Test("/metrics counts requests by route and reveal decisions by purpose and code, with no id, token or value in any label")
    func metrics() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let bot = try await tv.principal("whatsapp-bot").key
        try await withAPI(tv) { api in
            let c = try await api.createSubject(key: crm, ref: "metrics-1", joao)
            let s = try c.subject
            _ = try await api.detokenize(key: crm, purpose: "collection-call", [c.tokens["phone"]!, c.tokens["debt_amount"]!])
            _ = try await api.detokenize(key: bot, purpose: "collection-whatsapp", [c.tokens["phone"]!])
            _ = try await api.detokenize(key: bot, purpose: "purpose-\(s)", [c.tokens["phone"]!])
            _ = try await api.send(.put, "/v1/subjects/\(s)/consents/collection-whatsapp", key: bot, grant)
            _ = try await api.call(.get, "/v2/\(s)")

            let m = try await api.call(.get, "/metrics")
            #expect(m.status == .ok)
            let text = m.raw
            #expect(text.contains("cofre_reveal_decisions_total"))
            #expect(text.contains(#"purpose="collection-call""#))
            #expect(text.contains("code=\"\(DenialCode.fieldNotAllowed.rawValue)\""))
            #expect(text.contains("code=\"\(DenialCode.consentMissing.rawValue)\""))
            #expect(text.contains(#"purpose="unknown""#), "a purpose outside the policy is never a label")
            #expect(text.contains("cofre_consent_events_total"))
            #expect(text.contains("cofre_store_commit_seconds"))
            #expect(text.contains("/v1/subjects/{subject}/consents/{purpose}") || text.contains("/v1/subjects/:subject/consents/:purpose"),
                    "requests are labelled by route pattern")
            #expect(!text.contains(s), "no subject id in any label")
            for token in c.tokens.values { #expect(!text.contains(token)) }
            for v in joaoStored { #expect(!text.contains(v)) }
            #expect(!text.contains(crm))
        }
    }
}
