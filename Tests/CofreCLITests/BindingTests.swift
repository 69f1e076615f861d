import CofreTestSupport
import Foundation
import GRDB
import Testing

/// What a refused command must not change: the audit log's length and head, and the credentials.
func snapshot(_ path: String) throws -> [String] {
    let db = try DatabaseQueue(path: path)
    defer { try? db.close() }
    return try db.read { db in
        [try String.fetchOne(db, sql: "SELECT COUNT(*) || ':' || COALESCE(MAX(hash), '') FROM audit_events") ?? "",
         try String.fetchOne(db, sql: "SELECT COUNT(*) || ':' || COALESCE(GROUP_CONCAT(id), '') FROM credentials") ?? ""]
    }
}

/// CONTRACT §7 v2: the data store, the key store and the ring are bound; a command pointed at the wrong
/// one refuses, names what does not match, and changes nothing.
@Suite("Binding: the data store, its key store and its ring belong together", .serialized)
struct BindingTests {
    @Test("only `cofre serve` creates a development ring, marked as such, and production refuses it")
    func developmentRing() async throws {
        let dir = try makeWorkdir(ring: false)
        let issue = try runCofre(["service", "issue", "crm"], in: dir)
        #expect(issue.status != 0)
        #expect(issue.stderr.contains("only by `cofre serve`"), "\(issue.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/keys/kek-v1.key"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/data/cofre.sqlite"), "a refused command leaves no data store behind")

        let server = try Server(directory: dir)
        try await server.waitReady()
        #expect(server.log.contains("DEVELOPMENT KEY RING CREATED"))
        #expect(try await server.stop() == 0)
        #expect(FileManager.default.fileExists(atPath: dir + "/keys/DEVELOPMENT-RING"))
        #expect(try runCofre(["service", "issue", "crm"], in: dir).status == 0)

        let prod = try runCofre(["keys", "status"], in: dir, env: ["COFRE_ENV": "production"])
        #expect(prod.status != 0)
        #expect(prod.stderr.contains("development key ring") && prod.stderr.contains("COFRE_KEK or COFRE_KEK_FILE"), "\(prod.stderr)")
    }

    @Test("a mistyped --keys, a foreign ring, an empty or foreign key store and a random COFRE_KEK are refused; verify stays OK")
    func mismatches() async throws {
        let dir = try makeWorkdir()
        #expect(try runCofre(["service", "issue", "crm"], in: dir).status == 0)
        let dataBefore = try snapshot(dir + "/data/cofre.sqlite")

        // A mistyped --keys: no ring there, and none is created.
        let typo = try runCofre(["service", "issue", "crm", "--keys", "./keyz"], in: dir)
        #expect(typo.status != 0)
        #expect(typo.stderr.contains("./keyz"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/keyz"))

        // Another ring beside the right key store: its keys do not open.
        try writeRing(dir + "/other-ring")
        let foreignRing = try runCofre(["service", "issue", "crm", "--keys", "./other-ring", "--key-store", "sqlite:./keys/datakeys.sqlite"], in: dir)
        #expect(foreignRing.status != 0)
        #expect(foreignRing.stderr.contains("cannot open the keys in this key store"), "\(foreignRing.stderr)")

        // A random COFRE_KEK (production-style), with the right key store.
        let kek = "v1:" + Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let random = try runCofre(["serve", "--port", "0"], in: dir, env: ["COFRE_ENV": "production", "COFRE_KEK": kek])
        #expect(random.status != 0)
        #expect(random.stderr.contains("cannot open the keys"), "\(random.stderr)")

        // An empty key store beside the non-empty data store (also with a random COFRE_KEK).
        let empty = try runCofre(["serve", "--port", "0", "--key-store", "sqlite:./empty-keys.sqlite"], in: dir,
                                 env: ["COFRE_ENV": "production", "COFRE_KEK": kek])
        #expect(empty.status != 0)
        #expect(empty.stderr.contains("the key store is empty, but the data store holds a vault"), "\(empty.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/empty-keys.sqlite"), "nothing is left behind")

        // Another vault's key store and ring.
        let other = try makeWorkdir()
        #expect(try runCofre(["service", "issue", "crm"], in: other).status == 0)
        let foreign = try runCofre(["service", "list", "--keys", other + "/keys"], in: dir)
        #expect(foreign.status != 0)
        #expect(foreign.stderr.contains("belongs to key store"), "\(foreign.stderr)")
        // And this vault's key store beside a new data store: the key store serves another vault.
        let mistypedData = try runCofre(["service", "issue", "crm", "--database", "sqlite:./data/cofer.sqlite"], in: dir)
        #expect(mistypedData.status != 0)
        #expect(mistypedData.stderr.contains("already serves another data store"), "\(mistypedData.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/data/cofer.sqlite"))

        // Nothing was written to the real data store by any refusal, and its audit chain verifies.
        #expect(try snapshot(dir + "/data/cofre.sqlite") == dataBefore)
        let auditor = try issueKey("auditor", in: dir)
        let server = try Server(directory: dir)
        try await server.waitReady()
        #expect(try server.curl("GET", "/readyz").status == 200)
        let verify = try runCofre(["audit", "verify", "--addr", "http://127.0.0.1:\(server.port)"], in: dir, env: ["COFRE_TOKEN": auditor])
        #expect(verify.status == 0 && verify.stdout.contains("OK"), "\(verify.stdout)\(verify.stderr)")
        #expect(try await server.stop() == 0)
    }
}
