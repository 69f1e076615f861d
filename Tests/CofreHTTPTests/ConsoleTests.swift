import CofreAPI
import CofreCore
import CofreTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// A browser's part, through the router: cookies kept between calls, forms posted urlencoded.
final class ConsoleBrowser: @unchecked Sendable {
    let api: API
    private(set) var cookies: [String: String] = [:]
    init(_ api: API) { self.api = api }

    struct Page {
        let status: HTTPResponse.Status
        let headers: HTTPFields
        let text: String
        var location: String? { headers[.location] }
        /// The value of `<input … name="NAME" value="…">`, the first one.
        func input(_ name: String) -> String? {
            guard let r = text.range(of: "name=\"\(name)\" value=\"") else { return nil }
            return String(text[r.upperBound...].prefix { $0 != "\"" })
        }
    }

    func request(_ method: HTTPRequest.Method, _ uri: String, form: [String: String]? = nil, headers extra: HTTPFields = [:]) async throws -> Page {
        var headers = extra
        if !cookies.isEmpty { headers[.cookie] = cookies.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "; ") }
        var body: ByteBuffer?
        if let form {
            headers[.contentType] = "application/x-www-form-urlencoded"
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            body = ByteBuffer(string: form.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(separator: "&"))
        }
        let r = try await api.client.executeRequest(uri: uri, method: method, headers: headers, body: body)
        for c in r.headers[values: .setCookie] {
            let pair = c.split(separator: ";")[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(pair[0]), value = pair.count > 1 ? String(pair[1]) : ""
            if value.isEmpty || c.contains("Max-Age=0") { cookies[name] = nil } else { cookies[name] = value }
        }
        return Page(status: r.status, headers: r.headers, text: String(buffer: r.body))
    }

    func get(_ uri: String) async throws -> Page { try await request(.get, uri) }
    func post(_ uri: String, _ form: [String: String]) async throws -> Page { try await request(.post, uri, form: form) }

    /// Opens the sign-in page (for its CSRF cookie and field) and signs in with `key`.
    @discardableResult
    func signIn(_ key: String) async throws -> Page {
        let login = try await get("/console/login")
        return try await post("/console/login", ["csrf": login.input("csrf") ?? "", "key": key])
    }

    func dropCookie(_ name: String) { cookies[name] = nil }
}

@Suite("Console: sessions, CSRF, headers, and the DPO's and auditor's pages, through the router")
struct ConsoleTests {
    @Test("sign-in: the DPO and an auditor get a session; a service key, an unknown key and a form without its CSRF token are refused; all audited")
    func signIn() async throws {
        let tv = try await TestVault.make()
        let dpo = try await tv.principal("dpo").key, auditor = try await tv.principal("auditor").key, crm = try await tv.principal("crm").key
        try await withAPI(tv) { api in
            let b = ConsoleBrowser(api)
            #expect(try await b.get("/console/").location == "/console/login")
            let refusedService = try await b.signIn(crm)
            #expect(refusedService.status == .forbidden && refusedService.text.contains("chave é de um serviço"))
            #expect(b.cookies["cofre_session"] == nil)
            let bogus = try await b.signIn("cofre_sk_" + String(repeating: "a", count: 52))
            #expect(bogus.status == .unauthorized && b.cookies["cofre_session"] == nil)
            // A forged sign-in: the right key, but not through the page (no CSRF cookie and field).
            let forged = ConsoleBrowser(api)
            let f = try await forged.post("/console/login", ["key": dpo, "csrf": "x"])
            #expect(f.status == .forbidden && forged.cookies["cofre_session"] == nil)

            let ok = try await b.signIn(dpo)
            #expect(ok.status == .seeOther && ok.location == "/console/")
            let cookie = try #require(ok.headers[values: .setCookie].first { $0.hasPrefix("cofre_session=") })
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/console") && !cookie.contains("Secure"))
            #expect(try await b.get("/console/").location == "/console/subjects")
            let home = try await b.get("/console/subjects")
            #expect(home.status == .ok && home.text.contains("<strong id=\"who\">dpo</strong>"))

            // Behind a proxy that terminates TLS the cookie is Secure.
            let tls = ConsoleBrowser(api)
            let page = try await tls.request(.get, "/console/login", headers: [HTTPField.Name("X-Forwarded-Proto")!: "https"])
            let signed = try await tls.request(.post, "/console/login", form: ["csrf": page.input("csrf") ?? "", "key": auditor],
                                               headers: [HTTPField.Name("X-Forwarded-Proto")!: "https"])
            #expect(signed.headers[values: .setCookie].first { $0.hasPrefix("cofre_session=") }?.contains("; Secure") == true)
            #expect(try await tls.get("/console/").location == "/console/audit/events")

            let auditorKey = try await tv.principal("auditor").key
            let events = try await api.call(.get, "/v1/audit/events?action=console.login", key: auditorKey).decode(AuditEventsResponse.self).events
            #expect(events.map(\.decision) == [.deny, .deny, .allow, .allow])
            #expect(events.map(\.code) == ["forbidden", "unauthenticated", nil, nil])
            #expect(events.map(\.service) == ["crm", "console", "dpo", "auditor"])
        }
    }

    @Test("sign-in attempts are limited per address: the eleventh in a minute is 429 with Retry-After, and audited")
    func rateLimited() async throws {
        let clock = TestClock()
        let tv = try await TestVault.make(clock: clock)
        let dpo = try await tv.principal("dpo").key
        try await withAPI(tv) { api in
            let b = ConsoleBrowser(api)
            for _ in 0..<10 { #expect(try await b.signIn("wrong").status == .unauthorized) }
            let limited = try await b.signIn(dpo)
            #expect(limited.status == .tooManyRequests && limited.headers[.retryAfter] == "60" && b.cookies["cofre_session"] == nil)
            clock.advance(seconds: 61)
            #expect(try await b.signIn(dpo).status == .seeOther)
        }
    }

    @Test("a revoked key ends its console sessions at their next request")
    func revocationEndsSessions() async throws {
        let tv = try await TestVault.make()
        let dpo = try await tv.principal("dpo")
        try await withAPI(tv) { api in
            let b = ConsoleBrowser(api)
            try await b.signIn(dpo.key)
            #expect(try await b.get("/console/subjects").status == .ok)
            _ = try await tv.vault.revokeServiceKeys(service: "dpo")
            #expect(try await b.get("/console/subjects").location == "/console/login?expired=1")
            #expect(b.cookies["cofre_session"] == nil)
            #expect(try await b.signIn(dpo.key).status == .unauthorized)
        }
    }

    @Test("refused sign-ins from many clients: each client is limited, and the log takes at most 60 a minute, then says how many it left out")
    func refusalsCannotFloodTheLog() async throws {
        let clock = TestClock()
        let tv = try await TestVault.make(clock: clock)
        let auditor = try await tv.principal("auditor").key
        try await withAPI(tv) { api in
            for i in 0..<70 {
                let b = ConsoleBrowser(api)
                let ip: HTTPFields = [HTTPField.Name("X-Forwarded-For")!: "203.0.113.\(i)"]
                let login = try await b.request(.get, "/console/login", headers: ip)
                let r = try await b.request(.post, "/console/login", form: ["csrf": login.input("csrf") ?? "", "key": "nope"], headers: ip)
                #expect(r.status == .unauthorized)
            }
            clock.advance(seconds: 60)
            let b = ConsoleBrowser(api)
            _ = try await b.signIn("still-wrong")
            let events = try await api.call(.get, "/v1/audit/events?action=console.login&limit=1000", key: auditor).decode(AuditEventsResponse.self).events
            #expect(events.count == 61)
            #expect(events.last?.target == "suppressed_10")
        }
    }

    @Test("every console answer carries a CSP without inline script or style, nosniff, no-referrer and no framing")
    func headers() async throws {
        let tv = try await TestVault.make()
        let auditor = try await tv.principal("auditor").key
        try await withAPI(tv) { api in
            let b = ConsoleBrowser(api)
            var pages = [try await b.get("/console/login"), try await b.get("/console/static/console.css"), try await b.get("/console/static/console.js")]
            try await b.signIn(auditor)
            for path in ["/console/audit/events", "/console/audit/charts", "/console/audit/verify", "/console/audit/checkpoint.json"] {
                pages.append(try await b.get(path))
            }
            for p in pages {
                #expect(p.status == .ok)
                let csp = try #require(p.headers[.contentSecurityPolicy])
                #expect(csp.contains("script-src 'self'") && csp.contains("style-src 'self'") && csp.contains("frame-ancestors 'none'"))
                #expect(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"))
                #expect(p.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
                #expect(p.headers[HTTPField.Name("Referrer-Policy")!] == "no-referrer")
                #expect(!p.text.contains("<script>") && !p.text.contains(" style=\"") && !p.text.contains("onclick"), "no inline script or style")
            }
            #expect(pages[1].headers[.contentType] == "text/css; charset=utf-8" && pages[2].headers[.contentType] == "text/javascript; charset=utf-8")
            #expect(pages.last?.headers[.contentDisposition]?.hasPrefix("attachment;") == true)
        }
    }

    @Test("a session ends after 30 idle minutes and at sign-out; one role cannot open the other's pages")
    func sessionLife() async throws {
        let clock = TestClock()
        let tv = try await TestVault.make(clock: clock)
        let dpo = try await tv.principal("dpo").key
        try await withAPI(tv) { api in
            let b = ConsoleBrowser(api)
            try await b.signIn(dpo)
            clock.advance(seconds: 29 * 60)
            #expect(try await b.get("/console/subjects").status == .ok, "activity keeps it alive")
            #expect(try await b.get("/console/audit/events").status == .forbidden, "a DPO is not an auditor")
            clock.advance(seconds: 31 * 60)
            #expect(try await b.get("/console/subjects").location == "/console/login?expired=1")
            try await b.signIn(dpo)
            let csrf = try #require(try await b.get("/console/subjects").input("csrf"))
            let session = b.cookies["cofre_session"]
            #expect(try await b.post("/console/logout", ["csrf": "forged"]).status == .forbidden, "sign-out needs the token too")
            #expect(try await b.post("/console/logout", ["csrf": csrf]).location == "/console/login")
            #expect(b.cookies["cofre_session"] == nil)
            let replay = ConsoleBrowser(api)
            _ = try await replay.request(.get, "/console/subjects", headers: [.cookie: "cofre_session=\(session ?? "")"])
            #expect(try await replay.request(.get, "/console/subjects", headers: [.cookie: "cofre_session=\(session ?? "")"]).location
                    == "/console/login?expired=1", "a closed session is gone on the server, not only in the browser")
        }
    }

    @Test("the DPO finds a subject by id, external_ref and searchable value, sees no value, erases it only with the typed id and the CSRF token")
    func dpoFlow() async throws {
        let tv = try await TestVault.make()
        let dpo = try await tv.principal("dpo").key, crm = try await tv.principal("crm").key, auditor = try await tv.principal("auditor").key
        try await withAPI(tv) { api in
            let created = try await api.createSubject(key: crm, ref: "CRM-777", ["name": "Maria Souza", "cpf": "529.982.247-25", "phone": "(11) 98765-4321"])
            let subject = try created.subject
            #expect(try await api.detokenize(key: crm, purpose: "collection-call", [created.tokens["phone"]!]).status == .ok)
            let b = ConsoleBrowser(api)
            try await b.signIn(dpo)
            let token = try #require(try await b.get("/console/subjects").input("csrf"))
            for (by, q) in [("id", subject), ("external_ref", "CRM-777"), ("field:cpf", "529.982.247-25"), ("field:phone", "11987654321")] {
                let found = try await b.post("/console/subjects", ["csrf": token, "by": by, "q": q])
                #expect(found.status == .ok && found.text.contains("href=\"/console/subjects/\(subject)\""), "\(by)")
                #expect(!found.text.contains(q) || by == "id", "the searched value is not echoed")
            }
            #expect(try await b.post("/console/subjects", ["csrf": token, "by": "field:name", "q": "Maria"]).status == .unprocessableContent,
                    "name is not searchable")
            #expect(try await b.post("/console/subjects", ["csrf": token, "by": "id", "q": "sub_nope"]).text.contains("found-none"))
            #expect(try await b.post("/console/subjects", ["by": "id", "q": subject]).status == .forbidden, "the search needs the token too")

            let page = try await b.get("/console/subjects/\(subject)")
            #expect(page.status == .ok)
            for value in ["Maria", "52998224725", "529.982", "98765", "tok_"] { #expect(!page.text.contains(value), "no value on the page: \(value)") }
            #expect(page.text.contains("data-field=\"cpf\"") && page.text.contains("collection-call"))
            let csrf = try #require(page.input("csrf"))

            // Forged: no token, a wrong one; wrong confirmation. Nothing happens.
            #expect(try await b.post("/console/subjects/\(subject)/erase", ["reason": "r", "ticket": "t", "confirm": subject]).status == .forbidden)
            #expect(try await b.post("/console/subjects/\(subject)/erase", ["csrf": "x", "reason": "r", "ticket": "t", "confirm": subject]).status == .forbidden)
            let mismatch = try await b.post("/console/subjects/\(subject)/erase", ["csrf": csrf, "reason": "r", "ticket": "t", "confirm": "sub_other"])
            #expect(mismatch.status == .unprocessableContent)
            #expect(try await api.detokenize(key: crm, purpose: "collection-call", [created.tokens["phone"]!]).results.first?.value == "+5511987654321")

            let export = try await b.get("/console/subjects/\(subject)/export.json")
            #expect(export.status == .ok && export.headers[.contentDisposition]?.contains("cofre-export-\(subject).json") == true)
            #expect(try WireJSON.decoder.decode(ExportResponse.self, from: Data(export.text.utf8)).subject.id == subject)

            let erased = try await b.post("/console/subjects/\(subject)/erase", ["csrf": csrf, "reason": "Art. 18 VI", "ticket": "T-9", "confirm": subject])
            #expect(erased.status == .ok && erased.text.contains("id=\"receipt\"") && erased.text.contains("T-9"))
            #expect(try await api.detokenize(key: crm, purpose: "collection-call", [created.tokens["phone"]!]).results.first?.denied?.code == .subjectErased)
            let receipt = try await b.get("/console/subjects/\(subject)/receipt.json")
            #expect(try WireJSON.decoder.decode(ErasureReceipt.self, from: Data(receipt.text.utf8)).ticket == "T-9")
            let after = try await b.get("/console/subjects/\(subject)")
            #expect(after.text.contains("id=\"subject-status\">erased") && !after.text.contains("erase-form"))

            let actions = try await api.call(.get, "/v1/audit/events?subject=\(subject)", key: auditor).decode(AuditEventsResponse.self).events
                .filter { $0.service == "dpo" }.map(\.action)
            #expect(actions.contains("subject.view") && actions.contains("subject.export") && actions.contains("subject.erase"))
            let finds = try await api.call(.get, "/v1/audit/events?action=subject.find", key: auditor).decode(AuditEventsResponse.self).events
            #expect(finds.count == 5 && finds.allSatisfy { !($0.ref ?? "").contains("529") && !($0.ref ?? "").contains("CRM-777") })
        }
    }

    @Test("the charts' aggregates equal the decisions made; the auditor's events page filters and pages; stats refuse bad input")
    func auditorPages() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key, bot = try await tv.principal("whatsapp-bot").key
        let auditor = try await tv.principal("auditor").key, dpo = try await tv.principal("dpo").key
        let start = tv.clock.now
        try await withAPI(tv) { api in
            var tokens: [String] = []
            for i in 0..<5 { tokens.append(try await api.createSubject(key: crm, ref: "a-\(i)", ["phone": "(11) 9000\(i)-0000"]).tokens["phone"]!) }
            _ = try await api.detokenize(key: crm, purpose: "collection-call", tokens)             // 5 allowed
            _ = try await api.detokenize(key: bot, purpose: "collection-whatsapp", tokens)         // 5 denied: consent_missing
            _ = try await api.detokenize(key: crm, purpose: "collection-call", ["tok_" + String(repeating: "a", count: 32)])  // 1 token_unknown
            for typo in ["colection-call", "collection_call"] {  // 2 purpose_unknown, under one key however many names
                #expect(try await api.detokenize(key: crm, purpose: typo, tokens).status == .notFound)
            }
            let q = "since=\(WireJSON.formatDate(start.addingTimeInterval(-3600)))&until=\(WireJSON.formatDate(start.addingTimeInterval(3600)))"
            let stats = try await api.call(.get, "/v1/audit/stats?\(q)&bucket=hour", key: auditor).decode(AuditStatsResponse.self)
            #expect(stats.totals.byPurpose == ["collection-call": .init(allow: 5, deny: 1), "collection-whatsapp": .init(allow: 0, deny: 5),
                                               "unknown": .init(allow: 0, deny: 2)])
            #expect(stats.totals.byCode == ["consent_missing": 5, "token_unknown": 1, "purpose_unknown": 2])
            #expect(stats.totals.revealsByService == ["crm": 5])
            #expect(stats.buckets.count == 3 && stats.buckets.map { $0.byPurpose.values.map { $0.allow + $0.deny }.reduce(0, +) }.reduce(0, +) == 13)
            for (uri, status) in [("/v1/audit/stats?\(q)&bucket=minute", HTTPResponse.Status.badRequest),
                                  ("/v1/audit/stats?since=2020-01-01T00:00:00Z&until=2026-01-01T00:00:00Z&bucket=hour", .badRequest),
                                  ("/v1/audit/stats?bucket=hour", .badRequest)] {
                #expect(try await api.call(.get, uri, key: auditor).status == status, "\(uri)")
            }
            #expect(try await api.call(.get, "/v1/audit/stats?\(q)", key: dpo).status == .forbidden)

            let b = ConsoleBrowser(api)
            try await b.signIn(auditor)
            let charts = try await b.get("/console/audit/charts?\(q)&bucket=hour")
            #expect(charts.text.contains("id=\"chart-purpose\" class=\"chart\" viewBox=\"0 0 760 220\" role=\"img\" data-total=\"13\""))
            #expect(charts.text.contains("id=\"chart-code\" class=\"chart\" viewBox=\"0 0 760 220\" role=\"img\" data-total=\"8\""))
            #expect(charts.text.contains("data-key=\"crm\">5</text>"))
            #expect(charts.text.contains("<tr data-purpose=\"collection-call\"><td>collection-call</td><td class=\"allow\">5</td><td class=\"deny\">1</td></tr>"))

            let denied = try await b.get("/console/audit/events?action=detokenize&decision=deny&limit=4")
            #expect(denied.text.components(separatedBy: "data-decision=\"deny\"").count - 1 == 4)
            #expect(!denied.text.contains("data-decision=\"allow\""))
            let nextHref = try #require(denied.text.range(of: "id=\"next\" href=\"").map { String(denied.text[$0.upperBound...].prefix { $0 != "\"" }) })
            let second = try await b.get(nextHref.replacingOccurrences(of: "&amp;", with: "&"))
            #expect(second.text.components(separatedBy: "data-decision=\"deny\"").count - 1 == 4)
            #expect(try await b.get("/console/audit/events?decision=maybe").status == .badRequest)
            let verify = try await b.get("/console/audit/verify")
            #expect(verify.text.contains("data-ok=\"true\"") && verify.text.contains("id=\"bulk-none\""))
        }
    }
}
