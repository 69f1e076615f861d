import CofreAPI
import CofreTestSupport
import Foundation
import Testing

@Suite("cofre subject and consent (the DPO's commands over HTTP)", .serialized)
struct DPOCommandTests {
    @Test("the DPO's workflow: consent, export to a private file, erase with confirmation, receipt again")
    func workflow() async throws {
        let dir = try makeWorkdir()
        let crm = try issueKey("crm", in: dir)
        let bot = try issueKey("whatsapp-bot", in: dir)
        let dpo = try issueKey("dpo", in: dir)
        let server = try Server(directory: dir)
        try await server.waitReady()
        let env = ["COFRE_ADDR": "http://127.0.0.1:\(server.port)", "COFRE_TOKEN": dpo]

        let created = try decode(CreateSubjectResponse.self, try server.curl(
            "POST", "/v1/subjects", key: crm,
            sending: CreateSubjectRequest(externalRef: "d-1", fields: ["name": "Maria Souza", "cpf": "529.982.247-25", "phone": "11 98888-7777"])).body)
        let subject = created.subject
        let tokens = created.tokens

        let grant = try runCofre(["consent", "grant", subject, "collection-whatsapp", "--evidence", "wamid.ABC", "--notice-version", "2026-01",
                                  "--channel", "whatsapp"], in: dir, env: env)
        #expect(grant.status == 0, "\(grant.stderr)")
        #expect(grant.stdout.contains("Consent granted for collection-whatsapp"))
        let reveal = try server.curl("POST", "/v1/detokenize", key: bot,
                                     sending: DetokenizeRequest(purpose: "collection-whatsapp", tokens: [tokens["phone"]!]))
        #expect(reveal.body.contains("+5511988887777"))
        let show = try runCofre(["consent", "show", subject], in: dir, env: env)
        #expect(show.stdout.contains("collection-whatsapp"))
        #expect(show.stdout.contains("granted by dpo via whatsapp, notice 2026-01"))
        #expect(try runCofre(["consent", "revoke", subject, "collection-whatsapp"], in: dir, env: env).status == 0)
        let denied = try server.curl("POST", "/v1/detokenize", key: bot,
                                     sending: DetokenizeRequest(purpose: "collection-whatsapp", tokens: [tokens["phone"]!]))
        #expect(denied.body.contains("consent_revoked"))

        let export = try runCofre(["subject", "export", subject, "--out", "maria.json"], in: dir, env: env)
        #expect(export.status == 0, "\(export.stderr)")
        let attrs = try FileManager.default.attributesOfItem(atPath: dir + "/maria.json")
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        let doc = try decode(ExportResponse.self, try String(contentsOfFile: dir + "/maria.json", encoding: .utf8))
        let values = doc.fields.compactMap(\.value)
        #expect(Set(values) == ["Maria Souza", "52998224725", "+5511988887777"])
        // An existing file is never overwritten without --force; a planted symlink is never followed,
        // and a 0666 target never keeps its mode.
        let existing = try runCofre(["subject", "export", subject, "--out", "maria.json"], in: dir, env: env)
        #expect(existing.status != 0 && existing.stderr.contains("already exists; pass --force"), "\(existing.stderr)")
        _ = FileManager.default.createFile(atPath: dir + "/public.json", contents: Data(), attributes: [.posixPermissions: 0o666])
        try FileManager.default.createSymbolicLink(atPath: dir + "/planted.json", withDestinationPath: dir + "/public.json")
        let planted = try runCofre(["subject", "export", subject, "--out", "planted.json"], in: dir, env: env)
        #expect(planted.status != 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/public.json")).isEmpty, "nothing reached the link's target")
        let forced = try runCofre(["subject", "export", subject, "--out", "planted.json", "--force"], in: dir, env: env)
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/public.json")).isEmpty, "--force replaces the link itself")
        let replaced = try FileManager.default.attributesOfItem(atPath: dir + "/planted.json")
        #expect(replaced[.type] as? FileAttributeType == .typeRegular && (replaced[.posixPermissions] as? Int) == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".part-") }.isEmpty)
        #expect(doc.accessHistory.contains { $0.service == "whatsapp-bot" && $0.purpose == "collection-whatsapp" && $0.decision == .allow })
        let simple = try runCofre(["subject", "export", subject, "--format", "simple"], in: dir, env: env)
        #expect(simple.stdout.contains("\"processing\":true"))
        #expect(!simple.stdout.contains("Maria"))

        // Without a terminal and without --yes, nothing is erased.
        let refused = try runCofre(["subject", "erase", subject, "--reason", "Art. 18 VI", "--ticket", "T-1"], in: dir, env: env)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("pass --yes"))
        // On a terminal, the DPO types the subject id to confirm.
        let tty = try runCofre([], in: dir, env: env, viaScript: "\(cofreBinary) subject erase \(subject) --reason 'Art. 18 VI' --ticket T-1",
                               stdin: subject + "\n")
        #expect(tty.status == 0, "\(tty.stdout)\(tty.stderr)")
        #expect(tty.stdout.contains("Type the subject id to confirm"))
        #expect(tty.stdout.contains("Erasure receipt"))
        #expect(tty.stdout.contains("legal-defense"))
        let again = try runCofre(["subject", "erase", subject, "--reason", "Art. 18 VI", "--ticket", "T-1", "--yes", "--json"], in: dir, env: env)
        #expect(again.status == 0)
        let receipt = try decode(ErasureReceipt.self, again.stdout)
        let outcomes = Dictionary(uniqueKeysWithValues: receipt.fields.map { ($0.field, $0.outcome) })
        #expect(outcomes == ["name": .retained, "cpf": .retained, "phone": .erased])
        let after = try server.curl("POST", "/v1/detokenize", key: crm,
                                    sending: DetokenizeRequest(purpose: "collection-call", tokens: [tokens["phone"]!, tokens["name"]!]))
        #expect(after.body.contains("subject_erased"))
        #expect(after.body.contains("subject_blocked"))

        // Clear failures.
        let unknown = try runCofre(["subject", "export", "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa"], in: dir, env: env)
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("404"))
        let wrongRole = try runCofre(["subject", "export", subject], in: dir, env: ["COFRE_ADDR": env["COFRE_ADDR"]!, "COFRE_TOKEN": crm])
        #expect(wrongRole.stderr.contains("403"))
        let badID = try runCofre(["subject", "erase", "../audit/events", "--reason", "x", "--ticket", "y", "--yes"], in: dir, env: env)
        #expect(badID.stderr.contains("is not a subject id"))
        #expect(try await server.stop() == 0)
        let down = try runCofre(["consent", "show", subject], in: dir, env: env)
        #expect(down.stderr.contains("cannot reach the vault"))
    }
}
