import CofreAPI
import CofreTestReceiver
import CofreTestSupport
import Foundation
import Testing

/// Recipients and incidents with the real binary: `cofre serve` delivering through an outage and a
/// restart, and the DPO's `cofre deliveries` and `cofre incident scope`.
@Suite("cofre serve's notifications, cofre deliveries and cofre incident scope", .serialized)
struct RecipientsCommandTests {
    static let botSecret = "whsec_" + Data((0..<32).map { UInt8(($0 * 13 + 5) % 256) }).base64EncodedString()
    static let crmSecret = "crm-webhook-secret-0123456789"

    /// The example policy with webhooks for the bot and the CRM to `port` on loopback.
    static func addWebhooks(_ dir: String, port: Int) throws {
        let path = dir + "/deploy/policy.example.yaml"
        var policy = try String(contentsOfFile: path, encoding: .utf8)
        policy = policy.replacingOccurrences(
            of: "whatsapp-bot: { role: service, purposes: [collection-whatsapp] }",
            with: "whatsapp-bot: { role: service, purposes: [collection-whatsapp], webhook: { url: \"http://127.0.0.1:\(port)/bot\", secret_env: BOT_WEBHOOK_SECRET } }")
        policy = policy.replacingOccurrences(
            of: "crm:          { role: service, purposes: [collection-call, payment, legal-defense], tokenize: true }",
            with: "crm: { role: service, purposes: [collection-call, payment, legal-defense], tokenize: true, webhook: { url: \"http://127.0.0.1:\(port)/crm\", secret_env: CRM_WEBHOOK_SECRET } }")
        #expect(policy.contains("BOT_WEBHOOK_SECRET") && policy.contains("CRM_WEBHOOK_SECRET"))
        try policy.write(toFile: path, atomically: true, encoding: .utf8)
    }

    @Test("a corrected phone reaches the bot that revealed it, signed, through a receiver outage and a vault killed and restarted")
    func deliveryThroughOutageAndRestart() async throws {
        // A port for the receiver, which is down at first.
        let probe = try await WebhookReceiver.start()
        let port = probe.port
        await probe.stop()
        let dir = try makeWorkdir()
        try Self.addWebhooks(dir, port: port)
        // The operator's commands do not need the webhook secrets.
        let crm = try issueKey("crm", in: dir), bot = try issueKey("whatsapp-bot", in: dir), dpo = try issueKey("dpo", in: dir)
        let env = ["BOT_WEBHOOK_SECRET": Self.botSecret, "CRM_WEBHOOK_SECRET": Self.crmSecret, "COFRE_WEBHOOK_RETRY_BASE_SECONDS": "0.5"]
        var server = try Server(directory: dir, env: env)
        try await server.waitReady()

        let created = try decode(CreateSubjectResponse.self, try server.curl(
            "POST", "/v1/subjects", key: crm,
            sending: CreateSubjectRequest(externalRef: "w-1", fields: ["name": "Maria Souza", "phone": "11 98888-7777"])).body)
        #expect(try server.curl("PUT", "/v1/subjects/\(created.subject)/consents/collection-whatsapp", key: dpo,
                                sending: ConsentRequest(status: "granted", channel: "whatsapp", evidence: "wamid.X", noticeVersion: "2026-01")).status == 200)
        let reveal = try server.curl("POST", "/v1/detokenize", key: bot, sending: DetokenizeRequest(purpose: "collection-whatsapp", tokens: [created.tokens["phone"]!]))
        #expect(reveal.body.contains("+5511988887777"))
        #expect(try server.curl("POST", "/v1/subjects/\(created.subject)/fields", key: crm,
                                sending: PutFieldsRequest(fields: ["phone": "11 97777-6666"])).status == 200)

        // The receiver is down: the delivery fails and waits for its next try.
        let cli = ["COFRE_ADDR": "http://127.0.0.1:\(server.port)", "COFRE_TOKEN": dpo]
        var pending: [DeliveryResponse] = []
        for _ in 0..<100 {
            let list = try runCofre(["deliveries", "list", "--status", "pending", "--json"], in: dir, env: cli)
            #expect(list.status == 0, "\(list.stderr)")
            pending = try decode(DeliveriesResponse.self, list.stdout).deliveries
            if pending.first.map({ $0.attempts >= 1 }) == true { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let first = try #require(pending.first)
        #expect(pending.count == 1 && first.service == "whatsapp-bot" && first.type == .subjectCorrected)
        #expect(first.lastOutcome == "connection_failed")

        // The vault dies; the receiver comes up; a new vault process delivers what the old one could not.
        server.kill9()
        let receiver = try await WebhookReceiver.start(port: port)
        defer { Task { await receiver.stop() } }
        server = try Server(directory: dir, env: env)
        try await server.waitReady()
        // Within the backoff the old process reached (well under a second at a 0.5 s base), or after
        // the 60 s lease of an attempt the kill cut short.
        let hits = try await receiver.waitForHits(1, seconds: 90)
        if hits.isEmpty {
            let show = try runCofre(["deliveries", "show", first.id], in: dir, env: ["COFRE_ADDR": "http://127.0.0.1:\(server.port)", "COFRE_TOKEN": dpo])
            Issue.record("no delivery after the restart: \(show.stdout)\(show.stderr)\n\(server.log.suffix(3000))")
        }
        let hit = try #require(hits.first)
        #expect(hit.path == "/bot" && hit.headers["webhook-id"] == first.id)
        #expect(try hit.verifies(secret: Self.botSecret))
        #expect(try !hit.verifies(secret: Self.crmSecret))
        let payload = try WireJSON.decoder.decode(WebhookEventPayload.self, from: hit.body)
        #expect(payload.type == .subjectCorrected && payload.subject == created.subject && payload.fields == ["phone"])
        #expect(!hit.text.contains("97777") && !hit.text.contains("98888"))

        let cli2 = ["COFRE_ADDR": "http://127.0.0.1:\(server.port)", "COFRE_TOKEN": dpo]
        var shown = ""
        for _ in 0..<50 {
            let show = try runCofre(["deliveries", "show", first.id], in: dir, env: cli2)
            shown = show.stdout
            if shown.contains("— delivered") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(shown.contains("subject.corrected of \(created.subject) to whatsapp-bot — delivered"), "\(shown)")
        #expect(shown.contains("connection_failed") && shown.contains(" delivered ("))
        let list = try runCofre(["deliveries", "list"], in: dir, env: cli2)
        #expect(list.stdout.contains(first.id) && list.stdout.contains("delivered"))
        // A delivered one cannot be re-driven; a bad id is refused before any request.
        let again = try runCofre(["deliveries", "retry", first.id], in: dir, env: cli2)
        #expect(again.status != 0 && again.stderr.contains("already_delivered"), "\(again.stderr)")
        let bad = try runCofre(["deliveries", "retry", "../etc"], in: dir, env: cli2)
        #expect(bad.status != 0)
        let wrongRole = try runCofre(["deliveries", "list"], in: dir, env: ["COFRE_ADDR": cli2["COFRE_ADDR"]!, "COFRE_TOKEN": bot])
        #expect(wrongRole.status != 0 && wrongRole.stderr.contains("forbidden"), "\(wrongRole.stderr)")
        _ = try await server.stop()
        for value in ["98888", "97777", "Maria"] { #expect(!server.log.contains(value), "no personal data in the vault's log") }
    }

    @Test("cofre serve refuses to start without a webhook's secret and names the variable")
    func missingSecret() async throws {
        let dir = try makeWorkdir()
        try Self.addWebhooks(dir, port: 9)
        let r = try runCofre(["serve", "--port", "0"], in: dir, env: ["CRM_WEBHOOK_SECRET": Self.crmSecret])
        #expect(r.status != 0)
        #expect(r.stderr.contains("BOT_WEBHOOK_SECRET is not set") && r.stderr.contains("whatsapp-bot"), "\(r.stderr)")
        #expect(!r.stderr.contains(Self.crmSecret))
        #expect(!FileManager.default.fileExists(atPath: dir + "/data/cofre.sqlite"), "refused before any store was touched")
        let short = try runCofre(["serve", "--port", "0"], in: dir, env: ["CRM_WEBHOOK_SECRET": Self.crmSecret, "BOT_WEBHOOK_SECRET": "tiny"])
        #expect(short.status != 0 && short.stderr.contains("shorter than 16 bytes") && !short.stderr.contains("tiny"), "\(short.stderr)")
    }

    @Test("cofre incident scope: JSON and CSV of what the bot read, to a private file, with notify_by; bad input and the wrong role refused")
    func incidentScope() async throws {
        let dir = try makeWorkdir()
        let crm = try issueKey("crm", in: dir), bot = try issueKey("whatsapp-bot", in: dir), dpo = try issueKey("dpo", in: dir)
        let auditor = try issueKey("auditor", in: dir)
        let server = try Server(directory: dir)
        try await server.waitReady()
        let start = Date()
        var subjects: [String] = []
        for i in 0..<3 {
            let c = try decode(CreateSubjectResponse.self, try server.curl(
                "POST", "/v1/subjects", key: crm, sending: CreateSubjectRequest(externalRef: "i-\(i)", fields: ["name": "Pessoa \(i)", "phone": "11 9000\(i)-0000"])).body)
            _ = try server.curl("PUT", "/v1/subjects/\(c.subject)/consents/collection-whatsapp", key: dpo,
                                sending: ConsentRequest(status: "granted", channel: "whatsapp", evidence: "w", noticeVersion: "2026-01"))
            if i < 2 { _ = try server.curl("POST", "/v1/detokenize", key: bot, sending: DetokenizeRequest(purpose: "collection-whatsapp", tokens: [c.tokens["phone"]!])) }
            subjects.append(c.subject)
        }
        let end = Date().addingTimeInterval(1)
        let env = ["COFRE_ADDR": "http://127.0.0.1:\(server.port)", "COFRE_TOKEN": dpo]
        let window = ["--service", "whatsapp-bot", "--since", WireJSON.formatDate(start.addingTimeInterval(-1)), "--until", WireJSON.formatDate(end)]
        let json = try runCofre(["incident", "scope"] + window + ["--detected-at", "2026-12-24T15:00:00-03:00"], in: dir, env: env)
        #expect(json.status == 0, "\(json.stderr)")
        let scope = try decode(IncidentScopeResponse.self, json.stdout)
        #expect(Set(scope.subjects.map(\.subject)) == Set(subjects.prefix(2)) && scope.subjectCount == 2)
        #expect(scope.byField == ["phone": .init(subjects: 2, accesses: 2)] && scope.notifyByDate == "2026-12-30")
        #expect(!json.stdout.contains("Pessoa") && !json.stdout.contains("+55"))

        let none = try runCofre(["deliveries", "list", "--status", "failed"], in: dir, env: env)
        #expect(none.status == 0 && none.stdout == "No deliveries failed.\n", "\(none.stdout)\(none.stderr)")
        let csv = try runCofre(["incident", "scope"] + window + ["--format", "csv", "--out", "scope.csv"], in: dir, env: env)
        #expect(csv.status == 0, "\(csv.stderr)")
        let attrs = try FileManager.default.attributesOfItem(atPath: dir + "/scope.csv")
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        let rows = try String(contentsOfFile: dir + "/scope.csv", encoding: .utf8).split(separator: "\r\n")
        #expect(rows.count == 3 && rows.first.map(String.init) == IncidentScopeResponse.csvHeader)

        for (args, words) in [(["--since", "yesterday"], "--since must be an ISO 8601 time"), (["--format", "xml"], "--format must be json or csv")] {
            var a = ["incident", "scope", "--service", "crm", "--since", "2026-01-01T00:00:00Z", "--until", "2026-01-02T00:00:00Z"]
            for (i, x) in args.enumerated() where i % 2 == 0 {
                if let at = a.firstIndex(of: x) { a[at + 1] = args[i + 1] } else { a += [x, args[i + 1]] }
            }
            let r = try runCofre(a, in: dir, env: env)
            #expect(r.status != 0 && r.stderr.contains(words), "\(r.stderr)")
        }
        let asAuditor = try runCofre(["incident", "scope"] + window, in: dir, env: ["COFRE_ADDR": env["COFRE_ADDR"]!, "COFRE_TOKEN": auditor])
        #expect(asAuditor.status != 0 && asAuditor.stderr.contains("forbidden"), "\(asAuditor.stderr)")
        _ = try await server.stop()
    }
}
