import CofreAPI
import CofreTestSupport
import Foundation
import Testing

@Suite("cofre serve (a real process on loopback)", .serialized)
struct ServeTests {
    @Test("serves the walk-through, stops cleanly on SIGTERM, and a restart keeps every subject readable")
    func walkThroughAndRestart() async throws {
        let dir = try makeWorkdir()
        let crm = try issueKey("crm", in: dir)
        let server = try Server(directory: dir)
        try await server.waitReady()
        #expect(try server.curl("GET", "/readyz").status == 200)

        // A key issued while the server runs works at once (shared database).
        let bot = try issueKey("whatsapp-bot", in: dir)

        let created = try server.curl("POST", "/v1/subjects", key: crm,
                                      sending: CreateSubjectRequest(externalRef: "crm-1",
                                                                    fields: ["name": "Maria Souza", "cpf": "529.982.247-25", "phone": "11 98888-7777"]))
        #expect(created.status == 201, "\(created.body)")
        let tokens = try decode(CreateSubjectResponse.self, created.body).tokens
        let reveal = DetokenizeRequest(purpose: "collection-call", tokens: [tokens["phone"]!, tokens["cpf"]!])
        let r = try server.curl("POST", "/v1/detokenize", key: crm, sending: reveal)
        #expect(r.status == 200)
        #expect(r.body.contains("+5511988887777"))
        #expect(r.body.contains("***.982.247-**"))
        let denied = try server.curl("POST", "/v1/detokenize", key: bot,
                                     sending: DetokenizeRequest(purpose: "collection-whatsapp", tokens: [tokens["phone"]!]))
        #expect(denied.body.contains("consent_missing"))
        #expect(try server.curl("POST", "/v1/detokenize", sending: reveal).status == 401)

        #expect(try await server.stop() == 0)
        #expect(server.log.contains("cofre stopped"))
        #expect(!server.log.contains("Maria"))
        #expect(!server.log.contains("98888"))
        #expect(!server.log.contains(crm))

        let again = try Server(directory: dir)
        try await again.waitReady()
        let after = try again.curl("POST", "/v1/detokenize", key: crm, sending: reveal)
        #expect(after.body.contains("+5511988887777"))
        #expect(try await again.stop() == 0)
    }
}
