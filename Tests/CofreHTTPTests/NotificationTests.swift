import CofreAPI
import CofreCore
import CofreHTTP
import CofreTestReceiver
import CofreTestSupport
import Foundation
import HTTPTypes
import NIOCore
import Testing

/// Telling recipients (CONTRACT §9, LGPD Art. 18 §6): signed webhooks to a real receiver, through the
/// router for the changes and the DPO's routes, and the dispatcher that `cofre serve` runs.
@Suite("Recipients: signed notifications of corrections, erasures, revocations and objections")
struct NotificationTests {
    static let secrets = ["crm": "crm-secret-0123456789abcdef", "whatsapp-bot": "whsec_" + Data((0..<32).map { UInt8($0 * 7 % 256) }).base64EncodedString(),
                          "dialer": "dialer-secret-0123456789abcdef"]

    /// The example policy with webhooks on the three services, to `receiver`.
    static func policy(_ receiver: WebhookReceiver) throws -> Policy {
        var policy = try PolicyLoader.load(file: examplePolicyPath)
        policy.services["crm"]!.webhook = Webhook(url: receiver.url("/crm"), secretEnv: "CRM_WEBHOOK_SECRET")
        policy.services["whatsapp-bot"]!.webhook = Webhook(url: receiver.url("/bot"), secretEnv: "BOT_WEBHOOK_SECRET")
        policy.services["dialer"]!.webhook = Webhook(url: receiver.url("/dialer"), secretEnv: "DIALER_WEBHOOK_SECRET")
        // The dialer may learn that a CPF exists, never what it is: that alone does not make it a recipient.
        policy.purposes["collection-dialer"]!.fields["cpf"] = .redacted
        return policy
    }

    static func environment() -> [String: String] {
        ["CRM_WEBHOOK_SECRET": secrets["crm"]!, "BOT_WEBHOOK_SECRET": secrets["whatsapp-bot"]!, "DIALER_WEBHOOK_SECRET": secrets["dialer"]!]
    }

    struct Setup {
        let tv: TestVault
        let receiver: WebhookReceiver
        let dispatcher: NotificationDispatcher
        let crm: String, bot: String, dpo: String, auditor: String
    }

    /// A vault whose services have webhooks to a fresh receiver, and a dispatcher with a short timeout.
    static func setup(wrapStore: @Sendable @escaping (any VaultStore) -> any VaultStore = { $0 }) async throws -> Setup {
        let receiver = try await WebhookReceiver.start()
        let tv = try await TestVault.make(policy: try policy(receiver), wrapStore: wrapStore)
        let secrets = try WebhookSecrets.resolve(tv.vault.policy, environment: environment())
        let dispatcher = NotificationDispatcher(vault: tv.vault, transport: WebhookHTTPTransport(timeout: .seconds(1)), secrets: secrets)
        return Setup(tv: tv, receiver: receiver, dispatcher: dispatcher, crm: try await tv.principal("crm").key,
                     bot: try await tv.principal("whatsapp-bot").key, dpo: try await tv.principal("dpo").key,
                     auditor: try await tv.principal("auditor").key)
    }

    /// A subject created by the CRM whose phone and name the WhatsApp bot revealed (with consent).
    static func revealedSubject(_ api: API, _ s: Setup, ref: String) async throws -> (subject: String, tokens: [String: String]) {
        let created = try await api.createSubject(key: s.crm, ref: ref, ["name": "Maria Silva", "phone": "(11) 98765-4321", "cpf": "529.982.247-25"])
        let subject = try created.subject
        let consent = try await api.send(.put, "/v1/subjects/\(subject)/consents/collection-whatsapp", key: s.bot,
                                         ConsentRequest(status: "granted", channel: "whatsapp", evidence: "wamid.1", noticeVersion: "2026-01"))
        #expect(consent.status == .ok)
        let r = try await api.detokenize(key: s.bot, purpose: "collection-whatsapp", [created.tokens["phone"]!, created.tokens["name"]!])
        #expect(r.results.map(\.value) == ["+5511987654321", "Maria Silva"])
        return (subject, created.tokens)
    }

    /// Past the settle time, then one dispatcher round.
    static func deliver(_ s: Setup) async throws {
        s.tv.clock.advance(seconds: 3)
        try await s.dispatcher.runOnce()
    }

    static func verifies(_ hit: WebhookReceiver.Hit, secret: String) throws -> Bool { try hit.verifies(secret: secret) }

    @Test("correcting a phone sends one signed subject.corrected to the service that revealed it, and to no other; no value in it")
    func correctionReachesOnlyRecipients() async throws {
        let s = try await Self.setup()
        defer { Task { await s.receiver.stop() } }
        try await withAPI(s.tv) { api in
            let (subject, tokens) = try await Self.revealedSubject(api, s, ref: "c-1")
            let dialer = try await s.tv.principal("dialer").key
            let redacted = try await api.detokenize(key: dialer, purpose: "collection-dialer", [tokens["cpf"]!])
            #expect(redacted.results.first?.reveal == .redacted && redacted.results.first?.value == nil)
            // Another subject nobody revealed: its correction tells no one.
            let quiet = try await api.createSubject(key: s.crm, ref: "c-2", ["name": "João", "phone": "(21) 91111-2222"])
            #expect(try await api.putFields(key: s.crm, subject: try quiet.subject, ["phone": "(21) 93333-4444"]).status == .ok)
            #expect(try await api.putFields(key: s.crm, subject: subject, ["phone": "(11) 91234-0000"]).status == .ok)

            // Before the settle time nothing is fanned out.
            try await s.dispatcher.runOnce()
            #expect(s.receiver.hits.isEmpty)
            try await Self.deliver(s)
            let hits = s.receiver.hits
            #expect(hits.count == 1, "only the bot revealed a value (the CRM created the subject but never read it; the dialer saw only that a CPF exists)")
            let hit = try #require(hits.first)
            #expect(hit.path == "/bot")
            let payload = try WireJSON.decoder.decode(WebhookEventPayload.self, from: hit.body)
            #expect(payload == WebhookEventPayload(type: .subjectCorrected, subject: subject, fields: ["phone"], purpose: nil, at: payload.at))
            #expect(hit.text.contains(#""purpose":null"#), "purpose is always present")
            for secretish in ["98765", "91234", "Maria", "529", "tok_"] { #expect(!hit.text.contains(secretish), "no value or token in the payload") }
            #expect(hit.headers["content-type"] == "application/json")
            #expect(hit.headers["webhook-id"]?.hasPrefix("msg_") == true)
            #expect(Int64(hit.headers["webhook-timestamp"] ?? "") == Int64(s.tv.clock.now.timeIntervalSince1970))
            #expect(try Self.verifies(hit, secret: Self.secrets["whatsapp-bot"]!))
            #expect(try !Self.verifies(hit, secret: Self.secrets["crm"]!), "each service has its own secret")

            // Delivered once: another round sends nothing.
            try await Self.deliver(s)
            #expect(s.receiver.hits.count == 1)
            let list = try await api.call(.get, "/v1/deliveries?status=delivered", key: s.dpo).decode(DeliveriesResponse.self)
            #expect(list.deliveries.map(\.service) == ["whatsapp-bot"])
            #expect(list.deliveries.first?.id == hit.headers["webhook-id"])
            #expect(list.deliveries.first?.attempts == 1 && list.next == nil)
        }
    }

    @Test("a 500 and a timeout are retried with backoff under the same webhook-id; the attempt log and the audit log record each try")
    func retriesAfterFailures() async throws {
        let s = try await Self.setup()
        defer { Task { await s.receiver.stop() } }
        s.receiver.script([.status(500), .hang(seconds: 3)])
        try await withAPI(s.tv) { api in
            let (subject, _) = try await Self.revealedSubject(api, s, ref: "r-1")
            #expect(try await api.putFields(key: s.crm, subject: subject, ["name": "Maria S. Souza"]).status == .ok)
            try await Self.deliver(s)  // 500
            #expect(s.receiver.hits.count == 1)
            try await s.dispatcher.runOnce()  // not due yet: the first retry waits 15 to 30 s
            #expect(s.receiver.hits.count == 1)
            s.tv.clock.advance(seconds: 31)
            try await s.dispatcher.runOnce()  // times out after 1 s
            s.tv.clock.advance(seconds: 61)
            try await s.dispatcher.runOnce()  // 200
            let hits = s.receiver.hits
            #expect(hits.count == 3)
            #expect(Set(hits.compactMap { $0.headers["webhook-id"] }).count == 1, "the same id on every retry")
            #expect(Set(hits.map(\.body)).count == 1, "the same body on every retry")
            for hit in hits { #expect(try Self.verifies(hit, secret: Self.secrets["whatsapp-bot"]!)) }

            let id = try #require(hits.first?.headers["webhook-id"])
            let d = try await api.call(.get, "/v1/deliveries/\(id)", key: s.dpo).decode(DeliveryResponse.self)
            #expect(d.status == .delivered && d.attempts == 3 && d.nextAttemptAt == nil && d.deliveredAt != nil)
            #expect(d.attemptLog?.map(\.outcome) == ["http_500", "timeout", "delivered"])
            #expect(d.attemptLog?.map(\.httpStatus) == [500, nil, 200])

            let events = try await api.call(.get, "/v1/audit/events?action=delivery.attempt", key: s.auditor).decode(AuditEventsResponse.self).events
            #expect(events.map(\.code) == ["http_500", "timeout", nil])
            #expect(events.map(\.decision) == [.deny, .deny, .allow])
            #expect(events.allSatisfy { $0.service == "webhook-delivery" && $0.role == "system" && $0.target == "whatsapp-bot" && $0.ref == id })
            #expect(events.allSatisfy { $0.subject == subject && $0.fields == ["name"] })
        }
    }

    @Test("a receiver down for over 24 h ends failed; the DPO re-drives it; a delivered one cannot be; only the DPO may")
    func failedThenRetried() async throws {
        let s = try await Self.setup()
        defer { Task { await s.receiver.stop() } }
        s.receiver.script([], then: .status(503))
        try await withAPI(s.tv) { api in
            let (subject, _) = try await Self.revealedSubject(api, s, ref: "f-1")
            #expect(try await api.call(.post, "/v1/subjects/\(subject)/erase", key: s.dpo, body: jsonText(EraseRequest(reason: "Art. 18 VI", ticket: "T-1"))).status == .ok)
            try await Self.deliver(s)
            var rounds = 1
            while rounds < 100 {
                let pending = try await api.call(.get, "/v1/deliveries?status=pending", key: s.dpo).decode(DeliveriesResponse.self).deliveries
                if pending.isEmpty { break }
                s.tv.clock.advance(seconds: 3600)
                try await s.dispatcher.runOnce()
                rounds += 1
            }
            let failed = try await api.call(.get, "/v1/deliveries?status=failed", key: s.dpo).decode(DeliveriesResponse.self).deliveries
            let d = try #require(failed.first)
            #expect(failed.count == 1 && d.type == .subjectErased && d.subject == subject)
            #expect(d.lastAttemptAt.map { $0 >= d.retryUntil } == true, "retried until the end of its period, at least 24 hours")
            #expect(d.retryUntil.timeIntervalSince(d.createdAt) >= 86400)
            #expect(s.receiver.hits.count == d.attempts && d.attempts >= 20)
            #expect(s.tv.logs.text.contains("no longer retried"))

            // Only the DPO; an unknown or malformed id is 404.
            #expect(try await api.call(.post, "/v1/deliveries/\(d.id)/retry", key: s.crm).status == .forbidden)
            #expect(try await api.call(.get, "/v1/deliveries", key: s.auditor).status == .forbidden)
            #expect(try await api.call(.post, "/v1/deliveries/msg_AAAAAAAAAAAAAAAAAAAAAAAAAA/retry", key: s.dpo).errorCode == .deliveryUnknown)
            #expect(try await api.call(.get, "/v1/deliveries/nope", key: s.dpo).errorCode == .deliveryUnknown)
            #expect(try await api.call(.get, "/v1/deliveries?status=lost", key: s.dpo).errorCode == .malformedRequest)
            #expect(try await api.call(.get, "/v1/deliveries?limit=0", key: s.dpo).errorCode == .malformedRequest)
            #expect(try await api.call(.get, "/v1/deliveries?colour=red", key: s.dpo).errorCode == .malformedRequest)

            s.receiver.script([], then: .status(204))
            let retried = try await api.call(.post, "/v1/deliveries/\(d.id)/retry", key: s.dpo).decode(DeliveryResponse.self)
            #expect(retried.status == .pending && retried.nextAttemptAt == s.tv.clock.now)
            try await s.dispatcher.runOnce()
            let after = try await api.call(.get, "/v1/deliveries/\(d.id)", key: s.dpo).decode(DeliveryResponse.self)
            #expect(after.status == .delivered && after.lastOutcome == "delivered")
            #expect(s.receiver.hits.last?.headers["webhook-id"] == d.id, "re-driven under the same id")
            let again = try await api.call(.post, "/v1/deliveries/\(d.id)/retry", key: s.dpo)
            #expect(again.status == .conflict && again.errorCode == .alreadyDelivered)

            let retries = try await api.call(.get, "/v1/audit/events?action=delivery.retry", key: s.auditor).decode(AuditEventsResponse.self).events
            #expect(retries.map(\.decision) == [.deny, .allow, .deny], "a refused role and a delivered one are audited, as is the retry")
        }
    }

    @Test("erasure, consent revocation and an objection notify the recipients, with the fields and purpose concerned")
    func everyKindOfChange() async throws {
        let s = try await Self.setup()
        defer { Task { await s.receiver.stop() } }
        try await withAPI(s.tv) { api in
            let (subject, tokens) = try await Self.revealedSubject(api, s, ref: "k-1")
            // The CRM reveals the phone too (collection-call), so both are recipients from now on.
            #expect(try await api.detokenize(key: s.crm, purpose: "collection-call", [tokens["phone"]!]).results.first?.value == "+5511987654321")
            #expect(try await api.putFields(key: s.crm, subject: subject, ["address": "Rua A, 1"]).status == .ok, "a new field is not a correction")
            try await Self.deliver(s)
            #expect(s.receiver.hits.isEmpty)

            #expect(try await api.send(.put, "/v1/subjects/\(subject)/consents/collection-whatsapp", key: s.bot,
                                       ConsentRequest(status: "revoked", channel: "whatsapp", evidence: "wamid.2")).status == .ok)
            #expect(try await api.send(.put, "/v1/subjects/\(subject)/objections/collection-call", key: s.crm,
                                       ConsentRequest(channel: "phone", evidence: "call 2026-11-29")).status == .ok)
            #expect(try await api.call(.post, "/v1/subjects/\(subject)/erase", key: s.dpo, body: jsonText(EraseRequest(reason: "Art. 18 VI", ticket: "T-2"))).status == .ok)
            try await Self.deliver(s)
            let later = s.receiver.hits
            let payloads = try later.map { ($0.path, try WireJSON.decoder.decode(WebhookEventPayload.self, from: $0.body)) }
            let byType = Dictionary(grouping: payloads, by: { $0.1.type })
            // Each recipient hears only of what it received: a consent or an objection only under its
            // purpose, and only the fields it was shown.
            #expect(byType[.consentRevoked]?.map(\.0) == ["/bot"], "the CRM never received anything under collection-whatsapp")
            #expect(byType[.consentRevoked]?.first?.1.purpose == "collection-whatsapp")
            #expect(byType[.consentRevoked]?.first?.1.fields == ["name", "phone"])
            #expect(byType[.objectionRecorded]?.map(\.0) == ["/crm"])
            #expect(byType[.objectionRecorded]?.first?.1.purpose == "collection-call" && byType[.objectionRecorded]?.first?.1.fields == ["phone"])
            let erased = Dictionary(uniqueKeysWithValues: (byType[.subjectErased] ?? []).map { ($0.0, $0.1.fields) })
            #expect(erased == ["/bot": ["name", "phone"], "/crm": ["phone"]], "never a field the recipient was not shown (address, cpf)")
            #expect(later.count == 4)
            for (path, hit) in later.map({ ($0.path, $0) }) {
                let secret = path == "/bot" ? Self.secrets["whatsapp-bot"]! : Self.secrets["crm"]!
                #expect(try Self.verifies(hit, secret: secret))
            }
        }
    }

    @Test("a receiver that answers 200 and then drips its body cannot hold the dispatcher: the attempt ends at its deadline")
    func drippingReceiver() async throws {
        let s = try await Self.setup()
        defer { Task { await s.receiver.stop() } }
        s.receiver.script([.drip(every: 2)])
        try await withAPI(s.tv) { api in
            let (subject, _) = try await Self.revealedSubject(api, s, ref: "drip-1")
            #expect(try await api.putFields(key: s.crm, subject: subject, ["name": "Outra"]).status == .ok)
            let clock = ContinuousClock()
            let began = clock.now
            try await Self.deliver(s)
            #expect(clock.now - began < .seconds(5), "the round ends at the attempt's deadline (1 s + 1 s), not when the body ends")
            let d = try await api.call(.get, "/v1/deliveries?status=pending", key: s.dpo).decode(DeliveriesResponse.self).deliveries
            #expect(d.count == 1 && d.first?.lastOutcome == "timeout" && d.first?.attempts == 1)
        }
    }

    @Test("a DPO re-drive that races a failing attempt past the retry period wins: the delivery stays pending, and is then delivered")
    func redriveRacesAnAttempt() async throws {
        let s = try await Self.setup()
        defer { Task { await s.receiver.stop() } }
        s.receiver.script([.status(503), .slow(seconds: 3, status: 503)], then: .status(200))
        // A dispatcher whose attempts may take 10 s: the slow answer is a 503, never a timeout, however loaded the machine.
        let patient = NotificationDispatcher(vault: s.tv.vault, transport: WebhookHTTPTransport(timeout: .seconds(10)),
                                             secrets: try WebhookSecrets.resolve(s.tv.vault.policy, environment: Self.environment()))
        try await withAPI(s.tv) { api in
            let (subject, _) = try await Self.revealedSubject(api, s, ref: "race-1")
            #expect(try await api.putFields(key: s.crm, subject: subject, ["name": "Outra"]).status == .ok)
            try await Self.deliver(s)  // 503
            s.tv.clock.advance(seconds: 86400 + 60)  // past the retry period: the next failure would be final
            let round = Task { try await patient.runOnce() }
            _ = try await s.receiver.waitForHits(2)  // the attempt is in flight (the receiver takes 3 s)
            let id = try #require(s.receiver.hits.first?.headers["webhook-id"])
            let retried = try await api.call(.post, "/v1/deliveries/\(id)/retry", key: s.dpo).decode(DeliveryResponse.self)
            #expect(retried.status == .pending)
            try await round.value
            let d = try await api.call(.get, "/v1/deliveries/\(id)", key: s.dpo).decode(DeliveryResponse.self)
            #expect(d.status == .pending, "the attempt's failure does not undo the re-drive")
            #expect(d.attemptLog?.map(\.outcome) == ["http_503", "http_503"])
            try await s.dispatcher.runOnce()
            let after = try await api.call(.get, "/v1/deliveries/\(id)", key: s.dpo).decode(DeliveryResponse.self)
            #expect(after.status == .delivered && s.receiver.hits.count == 3)
        }
    }

    @Test("two instances' dispatchers racing: every notification is fanned out once and every delivery sent once")
    func oneDeliveryAcrossInstances() async throws {
        let s = try await Self.setup()
        defer { Task { await s.receiver.stop() } }
        let other = NotificationDispatcher(vault: s.tv.vault, transport: WebhookHTTPTransport(timeout: .seconds(1)),
                                           secrets: try WebhookSecrets.resolve(s.tv.vault.policy, environment: Self.environment()))
        try await withAPI(s.tv) { api in
            var subjects: [String] = []
            for i in 0..<12 { subjects.append(try await Self.revealedSubject(api, s, ref: "two-\(i)").subject) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (i, subject) in subjects.enumerated() {
                    group.addTask { _ = try await api.putFields(key: s.crm, subject: subject, ["name": "Nome \(i)"]) }
                }
                try await group.waitForAll()
            }
            s.tv.clock.advance(seconds: 3)
            // Rounds of both dispatchers at once until nothing is pending (each takes at most 4 deliveries
            // to one recipient per round).
            for _ in 0..<10 {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for d in [s.dispatcher, other, s.dispatcher, other] { group.addTask { try await d.runOnce() } }
                    try await group.waitForAll()
                }
                if try await s.tv.vault.store.deliveries(DeliveryQuery(status: .pending, limit: 1)).isEmpty { break }
            }
            let hits = s.receiver.hits
            #expect(hits.count == 12)
            #expect(Set(hits.compactMap { $0.headers["webhook-id"] }).count == 12)
            let bodies = try hits.map { try WireJSON.decoder.decode(WebhookEventPayload.self, from: $0.body).subject }
            #expect(Set(bodies) == Set(subjects))
        }
    }

    @Test("failures injected at each step: a change that fails writes no notification; an attempt whose record fails is sent again under its id")
    func failureInjection() async throws {
        let box = StoreBox()
        let s = try await Self.setup(wrapStore: { base in box.wrap(base) })
        defer { Task { await s.receiver.stop() } }
        try await withAPI(s.tv) { api in
            let (subject, _) = try await Self.revealedSubject(api, s, ref: "fi-1")
            // The correction's transaction fails: no outbox row, so no notification.
            box.store!.commitFault = { batch in batch.ops.contains { if case .insertOutbox = $0 { true } else { false } } ? .failBefore : nil }
            #expect(try await api.putFields(key: s.crm, subject: subject, ["name": "Outra"]).status == .serviceUnavailable)
            box.store!.commitFault = nil
            try await Self.deliver(s)
            #expect(s.receiver.hits.isEmpty)

            // The fan-out fails: tried again next round, once.
            #expect(try await api.putFields(key: s.crm, subject: subject, ["name": "Outra"]).status == .ok)
            box.store!.commitFault = { batch in batch.ops.contains { if case .fanOut = $0 { true } else { false } } ? .failBefore : nil }
            s.tv.clock.advance(seconds: 3)
            await #expect(throws: (any Error).self) { try await s.dispatcher.runOnce() }
            #expect(s.receiver.hits.isEmpty)
            box.store!.commitFault = nil

            // The attempt is sent, but recording it fails: after the lease it is sent again, same id.
            box.store!.commitFault = { batch in batch.ops.contains { if case .recordDeliveryAttempt = $0 { true } else { false } } ? .failBefore : nil }
            try await s.dispatcher.runOnce()
            #expect(s.receiver.hits.count == 1)
            box.store!.commitFault = nil
            try await s.dispatcher.runOnce()
            #expect(s.receiver.hits.count == 1, "the lease holds it for 60 s")
            s.tv.clock.advance(seconds: 61)
            try await s.dispatcher.runOnce()
            let hits = s.receiver.hits
            #expect(hits.count == 2 && hits[0].headers["webhook-id"] == hits[1].headers["webhook-id"])
            let d = try await api.call(.get, "/v1/deliveries?status=delivered", key: s.dpo).decode(DeliveriesResponse.self).deliveries
            #expect(d.count == 1 && d.first?.attempts == 1)

            // Recording fails after the store committed it (outcome unknown): never sent twice.
            #expect(try await api.putFields(key: s.crm, subject: subject, ["name": "Terceira"]).status == .ok)
            box.store!.commitFault = { batch in
                batch.ops.contains { if case .recordDeliveryAttempt = $0 { true } else { false } } ? .failAfterCommit : nil
            }
            try await Self.deliver(s)  // fan out and send (the receiver has it); the record commits, its answer is lost
            box.store!.commitFault = nil
            #expect(s.receiver.hits.count == 3)
            s.tv.clock.advance(seconds: 120)
            try await s.dispatcher.runOnce()
            #expect(s.receiver.hits.count == 3)
        }
    }
}

/// Holds the failing store that `TestVault.make` wraps around the real one.
final class StoreBox: @unchecked Sendable {
    private let lock = NSLock()
    private var wrapped: FailingAuditStore?
    var store: FailingAuditStore? { lock.withLock { wrapped } }
    func wrap(_ base: any VaultStore) -> any VaultStore {
        let s = FailingAuditStore(base)
        lock.withLock { wrapped = s }
        return s
    }
}
