import CofreTestSupport
import Foundation
import Testing

@Suite("cofre service and keys (operator commands)", .serialized)
struct OperatorCommandTests {
    @Test("service issue prints a key once (text and --json); list and revoke report it")
    func issueListRevoke() throws {
        let dir = try makeWorkdir()
        let issued = try runCofre(["service", "issue", "crm", "--json"], in: dir)
        #expect(issued.status == 0, "\(issued.stderr)")
        let answer = try decodeOperator(IssuedKey.self, issued.stdout)
        #expect(answer.service == "crm")
        let key = answer.key
        #expect(key.hasPrefix("cofre_sk_") && key.count == 61)
        #expect(!issued.stderr.contains("DEVELOPMENT KEY RING CREATED"), "only `cofre serve` creates a development ring")

        let text = try runCofre(["service", "issue", "whatsapp-bot"], in: dir)
        #expect(text.status == 0)
        #expect(text.stdout.contains("shown only this once"))
        #expect(text.stdout.contains("cofre_sk_"))

        // Only the key's hash is stored: the database never holds the key itself.
        let db = try #require(FileManager.default.contents(atPath: dir + "/data/cofre.sqlite"))
        let wal = FileManager.default.contents(atPath: dir + "/data/cofre.sqlite-wal") ?? Data()
        #expect(!(Array(db) + Array(wal)).contains(bytes: Array(key.utf8)))
        #expect((Array(db) + Array(wal)).contains(bytes: Array("crm".utf8)))

        let list = try runCofre(["service", "list", "--json"], in: dir)
        #expect(list.status == 0)
        let rows = try decodeOperator([ServiceRow].self, list.stdout)
        let crm = try #require(rows.first { $0.service == "crm" })
        #expect(crm.activeKeys == 1)
        #expect(!list.stdout.contains(key))

        let revoke = try runCofre(["service", "revoke", "crm"], in: dir)
        #expect(revoke.status == 0)
        #expect(revoke.stdout.contains("Revoked 1 key"))
        let table = try runCofre(["service", "list"], in: dir)
        #expect(table.stdout.contains("SERVICE"))
        let crmLine = try #require(table.stdout.split(separator: "\n").first { $0.hasPrefix("crm ") })
        #expect(crmLine.split(separator: " ", omittingEmptySubsequences: true)[2...3] == ["0", "1"])
    }

    @Test("issuing for a name not in the policy fails with a clear message")
    func unknownService() throws {
        let dir = try makeWorkdir()
        let r = try runCofre(["service", "issue", "marketing-bot"], in: dir)
        #expect(r.status != 0)
        #expect(r.stderr.contains("'marketing-bot' is not a service in the policy"))
        #expect(try runCofre(["service", "revoke", "marketing-bot"], in: dir).status != 0)
    }

    @Test("keys status reports the primary KEK and its data keys")
    func keysStatus() throws {
        let dir = try makeWorkdir()
        let r = try runCofre(["keys", "status", "--json"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let s = try decodeOperator(KeysStatus.self, r.stdout)
        #expect(s.primary == 1)
        let versions = s.versions
        #expect(versions.count == 1)
        #expect(versions.first?.dataKeys == 2)  // the blind-index and audit-chain keys
    }

    @Test("a bad policy stops start-up with the file, the key path and what was expected")
    func badPolicy() throws {
        let dir = try makeWorkdir()
        let policy = try String(contentsOfFile: examplePolicyPath, encoding: .utf8)
            .replacingOccurrences(of: "legal_basis: contract", with: "legal_basis: because")
        try policy.write(toFile: dir + "/bad.yaml", atomically: true, encoding: .utf8)
        let r = try runCofre(["serve", "--policy", "bad.yaml", "--port", "0"], in: dir)
        #expect(r.status != 0)
        #expect(r.stderr.contains("bad.yaml"))
        #expect(r.stderr.contains("purposes.payment.legal_basis"))
        #expect(r.stderr.contains("expected one of consent"))
    }

    @Test("COFRE_ENV=production refuses to create a key ring; a 0644 key file is refused")
    func productionKeys() throws {
        let fresh = try makeWorkdir(ring: false)
        let r = try runCofre(["serve", "--port", "0"], in: fresh, env: ["COFRE_ENV": "production"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("production") && r.stderr.contains("COFRE_KEK or COFRE_KEK_FILE"))
        #expect(!FileManager.default.fileExists(atPath: fresh + "/keys/kek-v1.key"))
        #expect(!FileManager.default.fileExists(atPath: fresh + "/data/cofre.sqlite"), "a refused start leaves no data store behind")

        let dir = try makeWorkdir()
        #expect(try runCofre(["keys", "status"], in: dir).status == 0)
        chmod(dir + "/keys/kek-v1.key", 0o644)
        let open = try runCofre(["keys", "status"], in: dir)
        #expect(open.status != 0)
        #expect(open.stderr.contains("chmod 600"))
    }

    @Test("options resolve as flag, then COFRE_* environment, then --config file")
    func configuration() throws {
        let dir = try makeWorkdir()
        try writeRing(dir + "/ring")
        try "database: sqlite:./from-config.sqlite\nkeys: ./ring\n".write(toFile: dir + "/cofre.yaml", atomically: true, encoding: .utf8)
        #expect(try runCofre(["service", "issue", "crm", "--config", "cofre.yaml"], in: dir).status == 0)
        #expect(FileManager.default.fileExists(atPath: dir + "/from-config.sqlite"))
        #expect(FileManager.default.fileExists(atPath: dir + "/ring/datakeys.sqlite"))
        // Each data store needs its own key store: a key store serves one vault.
        let viaEnv = try runCofre(["service", "issue", "crm", "--config", "cofre.yaml"], in: dir,
                                  env: ["COFRE_DATABASE": "sqlite:./from-env.sqlite", "COFRE_KEY_STORE": "sqlite:./env-keys.sqlite"])
        #expect(viaEnv.status == 0, "\(viaEnv.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/from-env.sqlite"))
        #expect(try runCofre(["service", "issue", "crm", "--config", "cofre.yaml", "--database", "sqlite:./from-flag.sqlite",
                              "--key-store", "sqlite:./flag-keys.sqlite"], in: dir,
                             env: ["COFRE_DATABASE": "sqlite:./from-env.sqlite"]).status == 0)
        #expect(FileManager.default.fileExists(atPath: dir + "/from-flag.sqlite"))

        try "databse: typo\n".write(toFile: dir + "/typo.yaml", atomically: true, encoding: .utf8)
        let typo = try runCofre(["service", "list", "--config", "typo.yaml"], in: dir)
        #expect(typo.status != 0)
        #expect(typo.stderr.contains("unknown key 'databse'"))
        let pg = try runCofre(["service", "list", "--database", "mysql://x"], in: dir)
        #expect(pg.status != 0)
        #expect(pg.stderr.contains("expected sqlite:PATH"))
        let same = try runCofre(["service", "list", "--database", "sqlite:./k/x.sqlite", "--key-store", "sqlite:./k/x.sqlite"], in: dir)
        #expect(same.status != 0)
        #expect(same.stderr.contains("must be different files"))
    }
}
