import CofreAPI
import CofreCore
import CofreTestSupport
import Foundation
import HTTPTypes
import Testing

@Suite("Nothing sensitive at rest or in output")
struct NoLeakTests {
    @Test("after a full flow, neither the logs nor the store files hold a value, a token or a key")
    func fullFlow() async throws {
        let tv = try await TestVault.make()
        let crm = try await tv.principal("crm").key
        let bot = try await tv.principal("whatsapp-bot").key
        let (subject, tokens) = try await withAPI(tv) { api in
            let created = try await api.createSubject(key: crm, ref: "crm-secret-ref-42", joao)
            let subject = try created.subject
            let t = created.tokens
            _ = try await api.detokenize(key: crm, purpose: "collection-call", Array(t.values))
            _ = try await api.detokenize(key: crm, purpose: "legal-defense", Array(t.values))
            _ = try await api.detokenize(key: bot, purpose: "collection-whatsapp", Array(t.values))
            _ = try await api.createSubject(key: crm, ref: "crm-2", ["cpf": "123.456.789-00", "name": "Maria Souza"])
            _ = try await api.call(.post, "/v1/subjects", key: crm, body: "{not json 12345678909")
            let fix = try await api.putFields(key: crm, subject: subject, ["phone": "+55 21 99999-0000"])
            return (subject, Array(t.values) + Array(fix.tokens.values))
        }
        let logs = tv.logs.text
        // Positive controls: the searches do find what is meant to be there (ids, not values).
        #expect(logs.contains(subject), "the capture must have seen the flow's log lines")
        let secrets = joaoStored + joao.values + ["+5521999990000", "Maria Souza", "crm-secret-ref-42", crm, bot] + tokens
        for secret in secrets {
            #expect(!logs.contains(secret), "log leaks a value")
        }
        let bytes = try await tv.storeBytes()
        #expect(bytes.contains(bytes: Array(subject.utf8)), "the store files must have been read")
        for secret in secrets {
            #expect(!bytes.contains(bytes: Array(secret.utf8)), "store holds a value in clear")
        }
        // The key-encryption key's own bytes never reach the key store or data store either.
        // (The KEK lives in the key directory in both engines.)
        let kek = try #require(FileManager.default.contents(atPath: tv.keysPath + "/kek-v1.key"))
        let raw = try #require(Data(base64Encoded: String(decoding: kek, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(!bytes.contains(bytes: Array(raw)))
    }
}
