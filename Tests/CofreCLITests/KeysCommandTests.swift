import CofreAPI
import CofreTestSupport
import Foundation
import Testing

@Suite("cofre keys (the key lifecycle on the host)", .serialized)
struct KeysCommandTests {
    @Test("rotate while serving: the server picks up v2, rewrap empties v1, retire removes it, data still reads")
    func rotationRunbook() async throws {
        let dir = try makeWorkdir()
        let crm = try issueKey("crm", in: dir)
        let server = try Server(directory: dir, env: ["COFRE_KEY_RELOAD_SECONDS": "1"])
        try await server.waitReady()
        let before = try decode(CreateSubjectResponse.self, try server.curl(
            "POST", "/v1/subjects", key: crm, sending: CreateSubjectRequest(externalRef: "k-1", fields: ["name": "Ana", "cpf": "529.982.247-25"])).body)

        let rotate = try runCofre(["keys", "rotate"], in: dir)
        #expect(rotate.status == 0, "\(rotate.stderr)")
        #expect(rotate.stdout.contains("Added key-encryption key v2"))
        try await Task.sleep(for: .milliseconds(2500))
        _ = try server.curl("POST", "/v1/subjects", key: crm, sending: CreateSubjectRequest(externalRef: "k-2", fields: ["name": "Bia"]))
        var status = try keysStatus(in: dir)
        #expect(status.versions.first { $0.version == 2 }?.dataKeys == 1, "the running server wrapped the new key under v2")

        let refused = try runCofre(["keys", "retire", "v1"], in: dir)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("run `cofre keys rewrap` first"))

        let step = try runCofre(["keys", "rewrap", "--batch-size", "1", "--max-batches", "2"], in: dir)
        #expect(step.stdout.contains("Re-wrapped 2 data key(s); 2 remain"), "\(step.stdout)")
        let rest = try runCofre(["keys", "rewrap"], in: dir)
        #expect(rest.stdout.contains("0 remain"))
        status = try keysStatus(in: dir)
        #expect(status.versions.first { $0.version == 1 }?.dataKeys == 0)
        #expect(status.systemKeys.values.allSatisfy { $0 == 2 })

        // The running server reports (heartbeat) that it has used v2 as primary; retire waits until it
        // has for long enough, then archives v1 instead of deleting it.
        var retire = try runCofre(["keys", "retire", "1"], in: dir)
        for _ in 0..<90 where retire.status != 0 {
            #expect(retire.stderr.contains("less than 30 s ago"), "\(retire.stderr)")
            try await Task.sleep(for: .milliseconds(500))
            retire = try runCofre(["keys", "retire", "1"], in: dir)
        }
        #expect(retire.status == 0, "\(retire.stderr)")
        #expect(retire.stdout.contains("archived at"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/keys/kek-v1.key"))
        let archived = try FileManager.default.attributesOfItem(atPath: dir + "/keys/retired/kek-v1.key")
        #expect(archived[.posixPermissions] as? Int == 0o600)
        let instances = try keysStatus(in: dir).instances
        #expect(instances.count == 1 && instances.first?.primary == 2)
        let purge = try runCofre(["keys", "purge", "v1"], in: dir)
        #expect(purge.status != 0 && purge.stderr.contains("--backups-gone"))
        #expect(try runCofre(["keys", "purge", "v1", "--backups-gone"], in: dir).status == 0)
        #expect(!FileManager.default.fileExists(atPath: dir + "/keys/retired/kek-v1.key"))
        let primary = try runCofre(["keys", "retire", "v2"], in: dir)
        #expect(primary.stderr.contains("primary"))
        #expect(try runCofre(["keys", "retire", "version-one"], in: dir).stderr.contains("VERSION must be a number"))

        let tokens = before.tokens
        let r = try server.curl("POST", "/v1/detokenize", key: crm, sending: DetokenizeRequest(purpose: "payment", tokens: [tokens["name"]!, tokens["cpf"]!]))
        #expect(r.body.contains("Ana") && r.body.contains("52998224725"), "\(r.body)")
        #expect(try await server.stop() == 0)
    }

    @Test("rotate, rewrap and retire back to back under a client creating subjects: every subject reads back after a restart")
    func retireUnderLoad() async throws {
        let dir = try makeWorkdir()
        let crm = try issueKey("crm", in: dir)
        let server = try Server(directory: dir, env: ["COFRE_KEY_RELOAD_SECONDS": "1"])
        try await server.waitReady()
        // A client creating subjects without pause, through the whole runbook.
        let stop = LockedFlag()
        let creator = Task.detached { () -> [(ref: String, token: String)] in
            var made: [(String, String)] = []
            var i = 0
            while !stop.value && i < 400 {
                let r = try server.curl("POST", "/v1/subjects", key: crm,
                                        sending: CreateSubjectRequest(externalRef: "load-\(i)", fields: ["name": "Pessoa \(i)"]))
                if r.status == 201, let t = try decode(CreateSubjectResponse.self, r.body).tokens["name"] { made.append(("load-\(i)", t)) }
                i += 1
            }
            return made
        }
        #expect(try runCofre(["keys", "rotate"], in: dir).status == 0)
        var retired = false
        for _ in 0..<100 where !retired {
            #expect(try runCofre(["keys", "rewrap"], in: dir).status == 0)
            let r = try runCofre(["keys", "retire", "v1"], in: dir)
            retired = r.status == 0
            if !retired {
                #expect(r.stderr.contains("rewrap") || r.stderr.contains("ago") || r.stderr.contains("not all loaded"), "\(r.stderr)")
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        #expect(retired)
        try await Task.sleep(for: .milliseconds(500))
        stop.value = true
        let made = try await creator.value
        #expect(made.count > 10)
        #expect(try await server.stop() == 0)

        let again = try Server(directory: dir)
        try await again.waitReady()
        for chunk in stride(from: 0, to: made.count, by: 200) {
            let tokens = made[chunk..<min(chunk + 200, made.count)].map(\.token)
            let r = try again.curl("POST", "/v1/detokenize", key: crm, sending: DetokenizeRequest(purpose: "payment", tokens: tokens))
            #expect(r.status == 200, "\(r.body)")
            let results = try decode(DetokenizeResponse.self, r.body).results
            #expect(results.count == tokens.count && results.allSatisfy { $0.value?.hasPrefix("Pessoa ") == true },
                    "a subject created during the runbook no longer reads")
        }
        #expect(try await again.stop() == 0)
    }

    @Test("production: the KEK comes from COFRE_KEK or COFRE_KEK_FILE; without one, start fails with a clear message")
    func productionKeySources() async throws {
        let dir = try makeWorkdir(ring: false)
        let missing = try runCofre(["serve", "--port", "0"], in: dir, env: ["COFRE_ENV": "production"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("set COFRE_KEK or COFRE_KEK_FILE"))

        let kek = "v1:" + Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let env = ["COFRE_ENV": "production", "COFRE_KEK": kek]
        let issued = try runCofre(["service", "issue", "crm", "--json"], in: dir, env: env)
        #expect(issued.status == 0, "\(issued.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/keys/kek-v1.key"), "no key file is created in production")
        let status = try runCofre(["keys", "status"], in: dir, env: env)
        #expect(status.stdout.contains("source: environment variable COFRE_KEK"))
        #expect(!status.stdout.contains(String(kek.dropFirst(3).prefix(12))))
        let rotate = try runCofre(["keys", "rotate"], in: dir, env: env)
        #expect(rotate.status != 0)
        #expect(rotate.stderr.contains("add v2:"))

        // The same ring from a file: mode checked, rotation appends a line.
        _ = FileManager.default.createFile(atPath: dir + "/kek.txt", contents: Data((kek + "\n").utf8), attributes: [.posixPermissions: 0o640])
        let fileEnv = ["COFRE_ENV": "production", "COFRE_KEK_FILE": dir + "/kek.txt"]
        let open = try runCofre(["keys", "status"], in: dir, env: fileEnv)
        #expect(open.status != 0)
        #expect(open.stderr.contains("chmod 600"))
        chmod(dir + "/kek.txt", 0o600)
        #expect(try runCofre(["keys", "rotate"], in: dir, env: fileEnv).status == 0)
        #expect(try String(contentsOfFile: dir + "/kek.txt", encoding: .utf8).split(separator: "\n").count == 2)
        let listed = try runCofre(["service", "list"], in: dir, env: fileEnv)
        #expect(listed.status == 0, "the data written under the environment's v1 still opens: \(listed.stderr)")
    }
}
