import CofreAPI
import CofreCore
import CofreHTTP
import CofreTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import Testing

/// Who calls: no key, a malformed or unknown key, a revoked key, and each role of the example policy —
/// `crm` (a service with `tokenize` and collection-call, payment, legal-defense), `whatsapp-bot` (a
/// service without `tokenize`, holding only collection-whatsapp), `dpo`, `auditor`.
enum Caller: String, CaseIterable, Sendable {
    case none, bogus, revoked, crm, bot, dpo, auditor
}

/// What a row's path and body are filled with: a fresh subject for each call, the token of its phone,
/// the call's number and the phone number itself.
struct Fill: Sendable {
    let subject: String, token: String, n: Int, phone: String
}

/// One route of the API and what each caller gets from it.
struct RouteRow: Sendable, CustomTestStringConvertible {
    let method: HTTPRequest.Method
    /// The router's pattern, as `Router.routes` lists it.
    let pattern: String
    /// The concrete path; `{s}` is the fresh subject.
    let path: String
    /// The request body (a typed request of `CofreAPI`), if the route takes one.
    let body: (@Sendable (Fill) -> any Encodable & Sendable)?
    let expected: [Caller: HTTPResponse.Status]
    var testDescription: String { "\(method) \(pattern)" }

    init(method: HTTPRequest.Method, pattern: String, path: String, body: (@Sendable (Fill) -> any Encodable & Sendable)?,
         expected: [Caller: HTTPResponse.Status]) {
        self.method = method
        self.pattern = pattern
        self.path = path
        self.body = body
        self.expected = expected
    }
}

let open: [Caller: HTTPResponse.Status] = Dictionary(uniqueKeysWithValues: Caller.allCases.map { ($0, .ok) })
/// The answer for callers without a valid key, on every authenticated route.
let unauthenticated: [Caller: HTTPResponse.Status] = [.none: .unauthorized, .bogus: .unauthorized, .revoked: .unauthorized]
func only(_ allowed: [Caller: HTTPResponse.Status]) -> [Caller: HTTPResponse.Status] {
    var out = unauthenticated
    for c in [Caller.crm, .bot, .dpo, .auditor] { out[c] = allowed[c] ?? .forbidden }
    return out
}

/// Every route × every kind of caller → the status, driven through the router (CONTRACT §3, §4).
/// A route added to the router without a row here fails `everyRouteHasARow`.
let matrix: [RouteRow] = [
    RouteRow(method: .get, pattern: "/healthz", path: "/healthz", body: nil, expected: open),
    RouteRow(method: .get, pattern: "/readyz", path: "/readyz", body: nil, expected: open),
    RouteRow(method: .get, pattern: "/metrics", path: "/metrics", body: nil, expected: open),
    RouteRow(method: .get, pattern: "/v1/openapi.json", path: "/v1/openapi.json", body: nil, expected: open),
    RouteRow(method: .post, pattern: "/v1/subjects", path: "/v1/subjects",
             body: { CreateSubjectRequest(externalRef: "m-\($0.n)", fields: ["name": "Ana"]) }, expected: only([.crm: .created])),
    RouteRow(method: .post, pattern: "/v1/subjects/batch", path: "/v1/subjects/batch",
             body: { BatchCreateRequest(subjects: [CreateSubjectRequest(externalRef: "b-\($0.n)", fields: ["name": "Ana"])]) },
             expected: only([.crm: .ok])),
    RouteRow(method: .post, pattern: "/v1/subjects/{subject}/fields", path: "/v1/subjects/{s}/fields",
             body: { _ in PutFieldsRequest(fields: ["name": "Bia"]) }, expected: only([.crm: .ok])),
    RouteRow(method: .post, pattern: "/v1/tokenize", path: "/v1/tokenize",
             body: { TokenizeRequest(subject: $0.subject, field: "name", value: "Bia") }, expected: only([.crm: .ok])),
    RouteRow(method: .post, pattern: "/v1/detokenize", path: "/v1/detokenize",
             body: { DetokenizeRequest(purpose: "collection-call", tokens: [$0.token]) }, expected: only([.crm: .ok])),
    RouteRow(method: .post, pattern: "/v1/contact/eligibility", path: "/v1/contact/eligibility",
             body: { ContactEligibilityRequest(purpose: "collection-call", tokens: [$0.token]) }, expected: only([.crm: .ok])),
    RouteRow(method: .post, pattern: "/v1/lookup", path: "/v1/lookup",
             body: { LookupRequest(purpose: "collection-call", field: "phone", value: $0.phone) }, expected: only([.crm: .ok])),
    RouteRow(method: .get, pattern: "/v1/subjects/{subject}/consents", path: "/v1/subjects/{s}/consents", body: nil,
             expected: only([.crm: .ok, .bot: .ok, .dpo: .ok])),
    RouteRow(method: .put, pattern: "/v1/subjects/{subject}/consents/{purpose}", path: "/v1/subjects/{s}/consents/collection-whatsapp",
             body: { _ in ConsentRequest(status: ConsentStatus.granted.rawValue, channel: "whatsapp", evidence: "wamid.1", noticeVersion: "2026-01") },
             expected: only([.bot: .ok, .dpo: .ok])),
    RouteRow(method: .put, pattern: "/v1/subjects/{subject}/objections/{purpose}", path: "/v1/subjects/{s}/objections/collection-call",
             body: { _ in ConsentRequest(channel: "phone") }, expected: only([.crm: .ok, .bot: .ok, .dpo: .ok])),
    RouteRow(method: .delete, pattern: "/v1/subjects/{subject}/objections/{purpose}", path: "/v1/subjects/{s}/objections/collection-call",
             body: { _ in ConsentRequest(evidence: "call 42") }, expected: only([.crm: .ok, .dpo: .ok])),
    RouteRow(method: .get, pattern: "/v1/subjects/{subject}/export", path: "/v1/subjects/{s}/export", body: nil, expected: only([.dpo: .ok])),
    RouteRow(method: .post, pattern: "/v1/subjects/{subject}/erase", path: "/v1/subjects/{s}/erase",
             body: { _ in EraseRequest(reason: "Art. 18 VI", ticket: "T-1") }, expected: only([.dpo: .ok])),
    RouteRow(method: .get, pattern: "/v1/deliveries", path: "/v1/deliveries", body: nil, expected: only([.dpo: .ok])),
    RouteRow(method: .get, pattern: "/v1/deliveries/{id}", path: "/v1/deliveries/msg_AAAAAAAAAAAAAAAAAAAAAAAAAA", body: nil,
             expected: only([.dpo: .notFound])),
    RouteRow(method: .post, pattern: "/v1/deliveries/{id}/retry", path: "/v1/deliveries/msg_AAAAAAAAAAAAAAAAAAAAAAAAAA/retry", body: nil,
             expected: only([.dpo: .notFound])),
    RouteRow(method: .get, pattern: "/v1/incidents/scope",
             path: "/v1/incidents/scope?service=crm&since=2026-01-01T00:00:00Z&until=2026-12-31T00:00:00Z", body: nil, expected: only([.dpo: .ok])),
    RouteRow(method: .get, pattern: "/v1/audit/events", path: "/v1/audit/events", body: nil, expected: only([.auditor: .ok])),
    RouteRow(method: .get, pattern: "/v1/audit/verify", path: "/v1/audit/verify", body: nil, expected: only([.auditor: .ok])),
    RouteRow(method: .get, pattern: "/v1/audit/checkpoint", path: "/v1/audit/checkpoint", body: nil, expected: only([.auditor: .ok])),
    RouteRow(method: .get, pattern: "/v1/audit/stats", path: "/v1/audit/stats?since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z", body: nil,
             expected: only([.auditor: .ok])),
]

@Suite("Authorization matrix: every route × every kind of caller")
struct AuthorizationMatrixTests {
    @Test("every route the router serves has a row in the matrix, and every row is a route")
    func everyRouteHasARow() async throws {
        let tv = try await TestVault.make()
        // The console's pages authenticate by session cookie: ConsoleTests covers them.
        let served = Set(buildRouter(vault: tv.vault).routes.filter { !$0.path.description.hasPrefix("/console") }.map { "\($0.method) \($0.path)" })
        let rows = Set(matrix.map { "\($0.method) \($0.pattern)" })
        #expect(served == rows, "routes without a row: \(served.subtracting(rows).sorted()); rows without a route: \(rows.subtracting(served).sorted())")
    }

    @Test("each caller gets exactly its status; every refusal of a valid key is audited", arguments: matrix)
    func row(_ row: RouteRow) async throws {
        let tv = try await TestVault.make()
        var keys: [Caller: String] = [:]
        keys[.crm] = try await tv.principal("crm").key
        keys[.dpo] = try await tv.principal("dpo").key
        keys[.auditor] = try await tv.principal("auditor").key
        keys[.revoked] = try await tv.principal("whatsapp-bot").key
        _ = try await tv.vault.revokeServiceKeys(service: "whatsapp-bot")
        keys[.bot] = try await tv.principal("whatsapp-bot").key
        keys[.bogus] = "cofre_sk_" + String(repeating: "a", count: 52)
        let crm = keys[.crm]!
        let callers = keys
        try await withAPI(tv) { api in
            for (n, caller) in Caller.allCases.enumerated() {
                let phone = "11 98888-77" + String(format: "%02d", n)
                let created = try await api.createSubject(key: crm, ref: "row-\(n)", ["name": "Ana", "cpf": "529.982.247-25", "phone": phone])
                let fill = Fill(subject: try created.subject, token: created.tokens["phone"]!, n: n, phone: phone)
                if row.pattern.contains("objections"), row.method == .delete {
                    _ = try await api.send(.put, "/v1/subjects/\(fill.subject)/objections/collection-call", key: crm, ConsentRequest(channel: "phone"))
                }
                let before = try await tv.vault.store.lastAuditEvent()?.seq ?? 0
                let path = row.path.replacingOccurrences(of: "{s}", with: fill.subject)
                let answer = try await api.call(row.method, path, key: callers[caller], body: row.body.map { jsonText($0(fill)) })
                let expected = row.expected[caller] ?? .forbidden
                #expect(answer.status == expected, "\(caller.rawValue): \(answer.status) \(answer.raw.prefix(200))")
                if expected == .forbidden, [.crm, .bot, .dpo, .auditor].contains(caller) {
                    let events = try await tv.vault.store.auditEvents(AuditQuery(after: before, limit: 10))
                    #expect(events.contains { $0.draft.decision == .deny }, "\(caller.rawValue)'s refusal was not audited")
                }
            }
        }
    }
}
