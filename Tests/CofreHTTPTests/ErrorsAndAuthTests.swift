import CofreAPI
import CofreCore
import CofreTestSupport
import Foundation
import HTTPTypes
import NIOCore
import Testing

@Suite("Errors, limits and authentication over HTTP")
struct ErrorsAndAuthTests {
    @Test("a missing, malformed, unknown or revoked key is 401 with the contract's error body")
    func unauthenticated() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let revoked = try await tv.principal("whatsapp-bot").key
        _ = try await tv.vault.revokeServiceKeys(service: "whatsapp-bot")
        let unknown = "cofre_sk_" + String(repeating: "a", count: 52)
        try await withAPI(tv) { api in
            for key in [nil, "", "garbage", unknown, revoked, String(crm.dropLast())] as [String?] {
                let r = try await api.detokenize(key: key ?? "", purpose: "collection-call", ["tok_x"])
                #expect(r.status == .unauthorized)
                #expect(r.errorCode == .unauthenticated)
            }
            let noHeader = try await api.call(.post, "/v1/subjects", body: #"{"external_ref":"x","fields":{"name":"A"}}"#)
            #expect(noHeader.status == .unauthorized)
            #expect(try await api.createSubject(key: crm, ref: "ok", ["name": "Ana"]).status == .created)
        }
    }

    @Test("malformed JSON and wrong shapes are 400 naming the key, not the value")
    func malformed() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let cases: [(String, String?)] = [
                ("{bad", nil),
                ("", nil),
                (#"{"fields":{"name":"Ana"}}"#, "external_ref"),
                (#"{"external_ref":"x","fields":{"name":12345678909}}"#, "fields.name"),
                (#"{"external_ref":"x","fields":"Ana"}"#, "fields"),
                (#"[1,2]"#, nil),
            ]
            for (body, path) in cases {
                let r = try await api.call(.post, "/v1/subjects", key: crm, body: body)
                #expect(r.status == .badRequest, "\(body)")
                #expect(r.errorCode == .malformedRequest)
                if let path { #expect(r.errorMessage?.contains(path) == true, "\(r.raw)") }
                #expect(!r.raw.contains("12345678909"))
            }
            let empty = try await api.createSubject(key: crm, ref: "x", [:])
            #expect(empty.status == .badRequest)
            let blankRef = try await api.createSubject(key: crm, ref: " ", ["name": "Ana"])
            #expect(blankRef.status == .badRequest)
        }
    }

    @Test("a bad value is 422 with invalid_<type> and the field; the value is not echoed")
    func invalidValues() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let cases = [("cpf", "123.456.789-00"), ("phone", "98765"), ("email", "maria-at-example"), ("birth_date", "1985-13-01"),
                         ("debt_amount", "12,50")]
            for (field, value) in cases {
                let r = try await api.createSubject(key: crm, ref: "r-\(field)", ["name": "Maria", field: value])
                #expect(r.status == .unprocessableContent)
                #expect(r.errorCode == .invalid(policyType(field)))
                #expect(r.error?.field == field)
                #expect(!r.raw.contains(value))
            }
            let unknown = try await api.createSubject(key: crm, ref: "r-x", ["salary": "1000"])
            #expect(unknown.status == .unprocessableContent)
            #expect(unknown.errorCode == .fieldUnknown)
        }
    }

    func policyType(_ field: String) -> FieldType {
        ["birth_date": .date, "debt_amount": .decimal][field] ?? FieldType(rawValue: field)!
    }

    @Test("a body over 1 MiB is 413")
    func tooLarge() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let big = #"{"external_ref":"x","fields":{"name":""# + String(repeating: "a", count: 1 << 20) + #""}}"#
            let r = try await api.call(.post, "/v1/subjects", key: crm, body: big)
            #expect(r.status == .contentTooLarge)
            #expect(r.errorCode == .bodyTooLarge)
        }
    }

    @Test("more than 1000 tokens is 400 too_many_tokens; none is 400")
    func tokenLimits() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let many = try await api.detokenize(key: crm, purpose: "collection-call", Array(repeating: "tok_x", count: 1001))
            #expect(many.status == .badRequest)
            #expect(many.errorCode == .tooManyTokens)
            let exactly = try await api.detokenize(key: crm, purpose: "collection-call", Array(repeating: "tok_x", count: 1000))
            #expect(exactly.status == .ok)
            #expect(exactly.results.count == 1000)
            let none = try await api.detokenize(key: crm, purpose: "collection-call", [])
            #expect(none.status == .badRequest)
        }
    }

    @Test("an unknown route is a JSON 404; a known path with another method is a JSON 405 with Allow")
    func notFound() async throws {
        let tv = try await TestVault.make()
        try await withAPI(tv) { api in
            for uri in ["/v2/nothing", "/v1/subjects/sub_x/nothing", "/v1"] {
                let r = try await api.call(.get, uri)
                #expect(r.status == .notFound, "\(uri)")
                #expect(r.errorCode == .notFound)
                #expect(r.headers[.init("X-Request-Id")!]?.hasPrefix("req_") == true)
            }
            let cases: [(HTTPRequest.Method, String, String)] = [
                (.delete, "/v1/subjects", "POST"), (.get, "/v1/detokenize", "POST"), (.patch, "/healthz", "GET, HEAD"),
                (.post, "/v1/subjects/sub_x/consents", "GET, HEAD"), (.get, "/v1/subjects/sub_x/objections/collection-call", "PUT, DELETE"),
                (.init("QUERY")!, "/v1/audit/events", "GET, HEAD"), (.trace, "/v1/tokenize", "POST"), (.head, "/v1/lookup", "POST"),
            ]
            for (method, uri, allow) in cases {
                let r = try await api.call(method, uri)
                #expect(r.status == .methodNotAllowed, "\(method) \(uri)")
                #expect(r.errorCode == .methodNotAllowed)
                #expect(r.headers[.allow] == allow, "\(method) \(uri)")
            }
            // HEAD on a GET route answers like GET, without a body (load balancers' health checks).
            let head = try await api.call(.head, "/healthz")
            #expect(head.status == .ok && head.body.isEmpty)
        }
    }

    @Test("when the audit log cannot be written, detokenize is 503 and reveals nothing; writes change nothing")
    func failClosed() async throws {
        let failing = FailingStoreBox()
        let tv = try await TestVault.make(wrapStore: { base in failing.wrap(base) })
        let crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let created = try await api.createSubject(key: crm, ref: "crm-1", joao)
            failing.store!.failAudit = true
            let r = try await api.detokenize(key: crm, purpose: "collection-call", [created.tokens["phone"]!])
            #expect(r.status == .serviceUnavailable)
            #expect(r.errorCode == .auditUnavailable)
            #expect(!r.raw.contains("98765"))
            let w = try await api.createSubject(key: crm, ref: "crm-2", ["name": "Ana"])
            #expect(w.status == .serviceUnavailable)
            let p = try await api.tokenize(key: crm, subject: try created.subject, field: "phone", value: "11912345678")
            #expect(p.status == .serviceUnavailable)
            failing.store!.failAudit = false
            // Nothing changed: the old phone token still reads the old number, crm-2 was never created.
            let again = try await api.detokenize(key: crm, purpose: "collection-call", [created.tokens["phone"]!])
            #expect(again.results[0].value == "+5511987654321")
            #expect(try await api.createSubject(key: crm, ref: "crm-2", ["name": "Ana"]).status == .created)
        }
    }
}

/// Keeps the failing store that `TestVault.make` builds, so the test can flip it.
final class FailingStoreBox: @unchecked Sendable {
    var store: FailingAuditStore?
    func wrap(_ base: any VaultStore) -> any VaultStore {
        let s = FailingAuditStore(base)
        store = s
        return s
    }
}
