import CofreTestSupport
import Foundation
import Testing

@Suite("cofre serve (a real process on loopback)", .serialized)
struct ServeTests {
    @Test("serves the walk-through, stops cleanly on SIGTERM, and a restart keeps every subject readable")
    func walkThroughAndRestart() async throws {
        let dir = try makeWorkdir()
        let crm = json(try runCofre(["service", "issue", "crm", "--json"], in: dir).stdout)["key"] as! String
        let server = try Server(directory: dir)
        try await server.waitReady()
        #expect(try server.curl("GET", "/readyz").status == 200)

        // A key issued while the server runs works at once (shared database).
        let bot = json(try runCofre(["service", "issue", "whatsapp-bot", "--json"], in: dir).stdout)["key"] as! String

        let created = try server.curl("POST", "/v1/subjects", key: crm,
                                      body: #"{"external_ref":"crm-1","fields":{"name":"Maria Souza","cpf":"529.982.247-25","phone":"11 98888-7777"}}"#)
        #expect(created.status == 201, "\(created.body)")
        let tokens = try #require(json(created.body)["tokens"] as? [String: String])
        let reveal = #"{"purpose":"collection-call","tokens":["\#(tokens["phone"]!)","\#(tokens["cpf"]!)"]}"#
        let r = try server.curl("POST", "/v1/detokenize", key: crm, body: reveal)
        #expect(r.status == 200)
        #expect(r.body.contains("+5511988887777"))
        #expect(r.body.contains("***.982.247-**"))
        let denied = try server.curl("POST", "/v1/detokenize", key: bot,
                                     body: #"{"purpose":"collection-whatsapp","tokens":["\#(tokens["phone"]!)"]}"#)
        #expect(denied.body.contains("consent_missing"))
        #expect(try server.curl("POST", "/v1/detokenize", body: reveal).status == 401)

        #expect(try await server.stop() == 0)
        #expect(server.log.contains("cofre stopped"))
        #expect(!server.log.contains("Maria"))
        #expect(!server.log.contains("98888"))
        #expect(!server.log.contains(crm))

        let again = try Server(directory: dir)
        try await again.waitReady()
        let after = try again.curl("POST", "/v1/detokenize", key: crm, body: reveal)
        #expect(after.body.contains("+5511988887777"))
        #expect(try await again.stop() == 0)
    }
}
