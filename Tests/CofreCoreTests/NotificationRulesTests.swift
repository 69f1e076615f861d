import CofreCore
import Foundation
import Testing

/// The pure rules behind recipients and incidents: business days, receiver URLs, secrets, backoff.
@Suite("Recipients and incidents: business days, receiver URLs, secrets and backoff")
struct NotificationRulesTests {
    static let holidays: Set<String> = ["2026-12-25", "2027-01-01", "2026-11-20"]

    static func brasilia(_ text: String) -> Date {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "America/Sao_Paulo")
        f.dateFormat = "yyyy-MM-dd HH:mm"
        return f.date(from: text)!
    }

    @Test("three business days after detection, skipping weekends and national holidays, counted in Brasília", arguments: [
        ("2026-12-01 10:00", "2026-12-04"),  // Tuesday → Friday
        ("2026-12-03 10:00", "2026-12-08"),  // Thursday → Tuesday (weekend)
        ("2026-12-24 15:00", "2026-12-30"),  // Thursday: Christmas Friday, weekend → Wednesday
        ("2026-12-26 09:00", "2026-12-30"),  // Saturday → Wednesday
        ("2026-12-30 23:30", "2027-01-05"),  // late Wednesday: New Year, weekend → Tuesday
        ("2026-11-19 08:00", "2026-11-25"),  // Thursday before a Friday holiday (Consciência Negra)
        ("2026-12-04 01:30", "2026-12-09"),  // Friday 01:30 in Brasília is still Friday: → Wednesday
    ])
    func businessDays(_ detected: String, _ day: String) {
        let d = BusinessDays.deadline(after: Self.brasilia(detected), holidays: Self.holidays)
        #expect(d.day == day)
        #expect(d.end == Self.brasilia("\(day) 00:00").addingTimeInterval(86400 - 0.001), "the end of that day in Brasília")
    }

    @Test("a UTC instant late in the evening belongs to the Brasília day it falls on")
    func zoneOfDetection() {
        // 2026-12-04T02:00Z is Thursday 23:00 in Brasília: counting starts on Friday.
        let d = BusinessDays.deadline(after: Date(timeIntervalSince1970: 1_796_349_600), holidays: [])
        #expect(d.day == "2026-12-08")
    }

    @Test("receiver URLs: https anywhere, http only to loopback, never credentials or another scheme")
    func urls() {
        for ok in ["https://crm.example.com/hooks/cofre", "https://10.0.0.5:8443/x", "http://127.0.0.1:9000/hook", "http://localhost/h", "http://[::1]:8080/h"] {
            #expect(Webhook.urlProblem(ok) == nil, "\(ok)")
        }
        for bad in ["http://crm.example.com/h", "http://10.0.0.5/h", "http://127.0.0.1.evil.com/h", "ftp://x/h", "https://u:p@x/h",
                    "https://x/h#frag", "crm/hook", "", "http://1270.0.0.1/h"] {
            #expect(Webhook.urlProblem(bad) != nil, "\(bad)")
        }
    }

    @Test("secrets come from the environment: whsec_ is base64, anything else its bytes; a missing or short one names the variable")
    func secrets() throws {
        var policy = Policy(fields: [:], purposes: [:], services: [
            "crm": ServicePolicy(name: "crm", role: .service, webhook: Webhook(url: "https://crm/h", secretEnv: "CRM_HOOK")),
            "bot": ServicePolicy(name: "bot", role: .service),
        ])
        let std = "whsec_" + Data(repeating: 7, count: 24).base64EncodedString()
        let resolved = try WebhookSecrets.resolve(policy, environment: ["CRM_HOOK": std])
        #expect(resolved[service: "crm"] == Array(repeating: 7, count: 24))
        #expect(resolved[service: "bot"] == nil)
        #expect(try WebhookSecrets.resolve(policy, environment: ["CRM_HOOK": "a-long-enough-secret"])[service: "crm"] == Array("a-long-enough-secret".utf8))
        for (env, words) in [([String: String](), "CRM_HOOK is not set"), (["CRM_HOOK": ""], "CRM_HOOK is not set"),
                             (["CRM_HOOK": "short"], "shorter than 16 bytes"), (["CRM_HOOK": "whsec_***"], "not base64")] {
            let error = try #require(throws: WebhookSecrets.Missing.self) { try WebhookSecrets.resolve(policy, environment: env) }
            #expect(error.description.contains(words) && error.description.contains("crm"), "\(error)")
            #expect(!error.description.contains("short") || words.contains("short"))
        }
        policy.services["crm"]!.webhook = nil
        #expect(try WebhookSecrets.resolve(policy, environment: [:])[service: "crm"] == nil)
    }

    @Test("backoff doubles from the base to an hour, with 50–100 % jitter, and a Standard Webhooks signature has its published form")
    func backoffAndSignature() {
        let c = DeliveryConfig()
        #expect(c.backoff(after: 1, unit: 0) == 15 && c.backoff(after: 1, unit: 1) == 30)
        #expect(c.backoff(after: 3, unit: 1) == 120)
        #expect(c.backoff(after: 12, unit: 1) == 3600 && c.backoff(after: 500, unit: 0.5) == 2700)
        // The example of the Standard Webhooks specification (id, timestamp, body, secret → signature).
        let secret = Array(Data(base64Encoded: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")!)
        let sig = WebhookSignature.sign(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330,
                                        body: Array(#"{"test": 2432232314}"#.utf8), secret: secret)
        #expect(sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }
}
