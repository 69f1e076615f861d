import CofreAPI
import CofreTestSupport
import Foundation
import Testing

@Suite("cofre subject import (a portfolio through the batch API)", .serialized)
struct ImportCommandTests {
    @Test("CSV and JSON Lines import; rejected rows go to a private report by line number, never by value; a re-run adds nothing twice")
    func importFiles() async throws {
        let dir = try makeWorkdir()
        let crm = try issueKey("crm", in: dir)
        let server = try Server(directory: dir)
        try await server.waitReady()
        let env = ["COFRE_ADDR": "http://127.0.0.1:\(server.port)", "COFRE_TOKEN": crm]
        let csv = """
            external_ref,name,cpf,phone
            p-1,Maria Souza,529.982.247-25,11 98888-7777
            p-2,"Souza, João",123.456.789-09,
            p-3,Ana,111.111.111-12,11 97777-6666
            p-4,only,two
            p-5,Bia,,11 96666-5555
            """
        try csv.write(toFile: dir + "/portfolio.csv", atomically: true, encoding: .utf8)
        let first = try runCofre(["subject", "import", "portfolio.csv", "--batch", "2"], in: dir, env: env)
        #expect(first.status == 3, "\(first.stderr)")
        #expect(first.stdout.contains("imported 3, already present 0, rejected 2"), "\(first.stdout)")
        let report = try String(contentsOfFile: dir + "/portfolio.csv.rejected.txt", encoding: .utf8)
        #expect(report.contains("line 4: invalid_cpf") && report.contains("line 5: malformed_row"), "\(report)")
        #expect(!report.contains("111.111.111-12") && !report.contains("Ana"), "no value in the report")
        #expect((try FileManager.default.attributesOfItem(atPath: dir + "/portfolio.csv.rejected.txt")[.posixPermissions] as? Int) == 0o600)

        // Interrupted or not, a re-run imports nothing twice.
        let again = try runCofre(["subject", "import", "portfolio.csv", "--force"], in: dir, env: env)
        #expect(again.stdout.contains("imported 0, already present 3, rejected 2"), "\(again.stdout)")

        let lines = try (0..<7).map { try wire(CreateSubjectRequest(externalRef: "j-\($0)", fields: ["name": "Pessoa \($0)"])) } + ["not json"]
        try lines.joined(separator: "\n").write(toFile: dir + "/more.jsonl", atomically: true, encoding: .utf8)
        let jsonl = try runCofre(["subject", "import", "more.jsonl", "--batch", "3"], in: dir, env: env)
        #expect(jsonl.stdout.contains("imported 7, already present 0, rejected 1"), "\(jsonl.stdout)\(jsonl.stderr)")

        let missing = try runCofre(["subject", "import", "nope.csv"], in: dir, env: env)
        #expect(missing.status != 0 && missing.stderr.contains("no such file"))
        #expect(try await server.stop() == 0)
        #expect(!server.log.contains("Maria") && !server.log.contains("52998224725"))
    }
}
