import CofreAPI
import CofreClient
import CofreCore
import CofreHTTP
import CofreTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// `CofreClient` against a live server on a loopback port: every method, decoded into its wire type,
/// and errors as `CofreClientError` with the vault's code.
@Suite("CofreClient, the typed Swift client, over a live server")
struct ClientTests {
    func withLiveClient(_ tv: TestVault, _ body: @Sendable @escaping (_ base: String) async throws -> Void) async throws {
        let app = buildApplication(vault: tv.vault, settings: HTTPSettings(port: 0), logger: tv.logs.logger)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            try await body("http://127.0.0.1:\(port)")
        }
    }

    @Test("every route through the client: a service's flow, the DPO's rights, the auditor's log")
    func everyRoute() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key, bot = try await tv.principal("whatsapp-bot").key
        let dpo = try await tv.principal("dpo").key, auditor = try await tv.principal("auditor").key
        try await withLiveClient(tv) { base in
            let service = CofreClient(baseURL: base, key: crm), whatsapp = CofreClient(baseURL: base, key: bot)
            let officer = CofreClient(baseURL: base, key: dpo), audit = CofreClient(baseURL: base, key: auditor)
            #expect(try await service.health().status == "ok")
            #expect(try await service.ready().status == "ready")
            #expect(try await service.openAPIDocument().count > 10_000)

            let created = try await service.createSubject(externalRef: "cli-1", fields: joao)
            let subject = created.subject
            let batch = try await service.createSubjects([.init(externalRef: "cli-2", fields: ["name": "Ana"]),
                                                          .init(externalRef: "cli-1", fields: ["name": "x"])])
            #expect(batch.results[0].subject != nil)
            #expect(batch.results[1].error?.code == .subjectExists && batch.results[1].error?.subject == subject)
            let corrected = try await service.putFields(subject: subject, fields: ["phone": "+55 21 99999-0000"])
            let phone = try #require(corrected.tokens["phone"])
            #expect(try await service.tokenize(subject: subject, field: "email", value: "j@example.com").hasPrefix("tok_"))

            let revealed = try await service.detokenize(purpose: "collection-call", tokens: [phone, created.tokens["cpf"]!, created.tokens["phone"]!])
            #expect(revealed[0].value == "+5521999990000" && revealed[0].reveal == .plain)
            #expect(revealed[1].value == "***.456.789-**" && revealed[1].reveal == .masked)
            #expect(revealed[2].denied?.code == .tokenUnknown)
            #expect(try await service.lookup(purpose: "payment", field: "cpf", value: "123.456.789-09").subject == subject)
            let eligible = try await service.contactEligibility(purpose: "collection-call", tokens: [phone, "tok_x"])
            #expect(eligible.map(\.eligible) == [true, false] && eligible[1].denied?.code == .tokenUnknown)

            let consent = try await whatsapp.recordConsent(subject: subject, purpose: "collection-whatsapp", grant)
            #expect(consent.status == .granted && consent.kind == .consent)
            let objection = try await service.recordObjection(subject: subject, purpose: "collection-call", channel: "phone", evidence: "call-1")
            #expect(objection.status == .objected)
            #expect(try await service.withdrawObjection(subject: subject, purpose: "collection-call", evidence: "call-2").status == .withdrawn)
            let consents = try await officer.consents(subject: subject)
            #expect(consents.purposes["collection-whatsapp"]?.consent == .granted)
            #expect(consents.purposes["collection-whatsapp"]?.history == [consent])

            let export = try await officer.export(subject: subject)
            #expect(export.schema == ExportResponse.schemaName && export.subject.id == subject)
            #expect(export.fields.first { $0.field == "phone" }?.corrected == true)
            #expect(export.accessHistory.contains { $0.action == .detokenize && $0.decision == .allow })
            var streamed = Data()
            try await officer.streamExport(subject: subject) { streamed.append($0) }
            #expect(try WireJSON.decoder.decode(ExportResponse.self, from: streamed).fields == export.fields)
            #expect(try await officer.exportSimple(subject: subject).fields.contains("phone"))
            let receipt = try await officer.erase(subject: subject, reason: "Art. 18 VI", ticket: "T-1")
            #expect(receipt.fields.first { $0.field == "phone" }?.outcome == .erased)

            let page = try await audit.auditEvents(.init(subject: subject, decision: .allow, limit: 5))
            #expect(page.events.count == 5 && page.next != nil)
            let rest = try await audit.auditEvents(.init(subject: subject, decision: .allow, after: page.next, through: String(page.head), limit: 1000))
            #expect(rest.next == nil)
            let checkpoint = try await audit.checkpoint()
            let verified = try await audit.verifyAudit(checkpoint: checkpoint)
            #expect(verified.ok && verified.broken.isEmpty)
        }
    }

    @Test("errors carry the vault's code, status and request id; a refused connection is a transport error")
    func errors() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        try await withLiveClient(tv) { base in
            let service = CofreClient(baseURL: base, key: crm)
            await #expect { try await service.detokenize(purpose: "marketing", tokens: ["tok_x"]) } throws: { error in
                let e = error as? CofreClientError
                return e?.status == 404 && e?.code == .purposeUnknown && e?.requestID?.hasPrefix("req_") == true
            }
            await #expect { try await service.createSubject(externalRef: "x", fields: ["cpf": "123.456.789-00"]) } throws: { error in
                (error as? CofreClientError)?.code == .invalid(.cpf) && (error as? CofreClientError)?.field == "cpf"
            }
            await #expect { try await CofreClient(baseURL: base, key: "cofre_sk_bogus").consents(subject: "sub_x") } throws: { error in
                (error as? CofreClientError)?.status == 401
            }
            await #expect { try await service.export(subject: "sub_x") } throws: { error in (error as? CofreClientError)?.code == .forbidden }
            await #expect { try await service.consents(subject: "../audit/events") } throws: { error in
                (error as? CofreClientError)?.code == .malformedRequest && (error as? CofreClientError)?.status == nil
            }
            // The message never holds the submitted value.
            do {
                _ = try await service.createSubject(externalRef: "y", fields: ["email": "not-an-email-joao"])
            } catch {
                #expect(!"\(error)".contains("joao"))
            }
        }
        let closed = CofreClient(baseURL: "http://127.0.0.1:1", key: crm, retries: 0)
        await #expect { try await closed.health() } throws: { error in
            (error as? CofreClientError)?.code == CofreClientError.transport && (error as? CofreClientError)?.status == nil
        }
    }
}
