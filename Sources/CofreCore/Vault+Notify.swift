import CofreCrypto
public import Foundation
import Logging

/// Telling recipients (CONTRACT §9, LGPD Art. 18 §6). A change that recipients must hear of writes an
/// outbox row in its own transaction; the dispatcher later reads, from the audit log, which services
/// were ever allowed to reveal a value of the subject, inserts one delivery per such service that has
/// a webhook, and posts each one, signed, until its receiver answers 2xx or its retry period ends.
extension Vault {
    /// The outbox row of a change, for the change's own batch.
    func notification(_ type: NotificationType, subject: String, fields: [String], purpose: String?, at: Date) throws(VaultError) -> WriteOp {
        let id: String
        do { id = "evt_" + Identifiers.base32(try Random.bytes(10)) } catch { throw VaultError(.unavailable, .unavailable, "the vault cannot mint an id right now") }
        return .insertOutbox(OutboxEvent(id: id, type: type, subject: subject, fields: fields.sorted(), purpose: purpose, at: at))
    }

    /// `GET /v1/deliveries` (dpo): deliveries matching the filters, oldest first; audited.
    public func deliveries(_ p: Principal, query: DeliveryQuery, requestID: String?) async throws(VaultError) -> [DeliveryRecord] {
        try await requireDPO(p, action: .deliveryRead, requestID: requestID)
        var q = query
        q.dueAt = nil
        q.limit = min(max(q.limit, 1), 1000)
        do {
            let found = try await store.deliveries(q)
            var a = draft(p, action: .deliveryRead, requestID: requestID, subject: q.subject, decision: .allow)
            a.target = q.status?.rawValue
            try await store.appendAudit([a])
            return found
        } catch {
            throw mapStore(error)
        }
    }

    /// `GET /v1/deliveries/{id}` (dpo): one delivery and its attempt log; audited.
    public func delivery(_ p: Principal, id: String, requestID: String?) async throws(VaultError) -> (DeliveryRecord, [DeliveryAttemptRecord]) {
        try await requireDPO(p, action: .deliveryRead, requestID: requestID)
        guard Self.isDeliveryID(id) else { throw Self.deliveryUnknown }
        do {
            guard let d = try await store.deliveries(DeliveryQuery(id: id, limit: 1)).first else { throw Self.deliveryUnknown }
            let log = try await store.deliveryAttempts(delivery: id)
            try await store.appendAudit([draft(p, action: .deliveryRead, requestID: requestID, subject: d.subject, decision: .allow, ref: id)])
            return (d, log)
        } catch {
            throw mapStore(error)
        }
    }

    /// `POST /v1/deliveries/{id}/retry` (dpo): a pending or failed delivery is due now and retried for
    /// another full period, under the same `webhook-id`. A delivered one is refused (409).
    public func retryDelivery(_ p: Principal, id: String, requestID: String?) async throws(VaultError) -> DeliveryRecord {
        try await requireDPO(p, action: .deliveryRetry, requestID: requestID, ref: Self.isDeliveryID(id) ? id : nil)
        guard Self.isDeliveryID(id) else { throw Self.deliveryUnknown }
        let at = now
        do {
            guard let d = try await store.deliveries(DeliveryQuery(id: id, limit: 1)).first else { throw Self.deliveryUnknown }
            _ = try await store.commit(WriteBatch([.retryDelivery(id: id, at: at, retryUntil: at.addingTimeInterval(deliveryConfig.retryFor))],
                                                  audit: [draft(p, action: .deliveryRetry, requestID: requestID, subject: d.subject,
                                                                decision: .allow, ref: id)]))
            guard let after = try await store.deliveries(DeliveryQuery(id: id, limit: 1)).first else { throw Self.deliveryUnknown }
            return after
        } catch let e as StoreError where e.code == .conflict {
            throw await refuse(VaultError(.conflict, .alreadyDelivered, "this delivery was delivered; its receiver has it"),
                               audit: draft(p, action: .deliveryRetry, requestID: requestID, decision: .deny,
                                            code: ErrorCode.alreadyDelivered.rawValue, ref: id))
        } catch let e as StoreError where e.code == .notFound {
            throw Self.deliveryUnknown
        } catch {
            throw mapStore(error)
        }
    }

    static let deliveryUnknown = VaultError(.notFound, .deliveryUnknown, "no such delivery")

    static func isDeliveryID(_ s: String) -> Bool { Identifiers.looksLike(s, prefix: "msg_", length: 26) }

    static func newDeliveryID() throws -> String { "msg_" + Identifiers.base32(try Random.bytes(16)) }
}

/// Fans notifications out to their recipients and posts them (a service of `cofre serve`; every
/// instance runs one, and a lease in the data store gives each attempt to one instance).
public final class NotificationDispatcher: Sendable {
    let vault: Vault
    let transport: any WebhookTransport
    let secrets: WebhookSecrets
    let owner: String
    let config: DeliveryConfig

    public init(vault: Vault, transport: any WebhookTransport, secrets: WebhookSecrets, config: DeliveryConfig? = nil) {
        self.vault = vault
        self.config = config ?? vault.deliveryConfig
        self.transport = transport
        self.secrets = secrets
        owner = "disp_" + Identifiers.base32((try? Random.bytes(10)) ?? Array(UUID().uuidString.utf8.prefix(10)))
    }

    /// One round: fans out settled notifications, then tries every due delivery once.
    @discardableResult
    public func runOnce() async throws -> (fannedOut: Int, attempted: Int) {
        let fanned = try await fanOut()
        let attempted = try await deliverDue()
        return (fanned, attempted)
    }

    /// Reads each settled notification's recipients from the audit log and inserts their deliveries.
    func fanOut() async throws -> Int {
        let now = vault.now
        let events = try await vault.store.pendingOutbox(atOrBefore: now.addingTimeInterval(-config.settle), limit: 200)
        var done = 0
        for e in events {
            // Each recipient hears only of what it received: the fields it was shown, and for a consent or
            // an objection only if it received them under that purpose.
            let received = try await recipients(of: e.subject, purpose: e.type == .consentRevoked || e.type == .objectionRecorded ? e.purpose : nil)
            var deliveries: [DeliveryRecord] = []
            for (service, fields) in received.sorted(by: { $0.key < $1.key }) where vault.policy.services[service]?.webhook != nil {
                let told = e.fields.filter(fields.contains)
                guard !told.isEmpty else { continue }
                let payload = WebhookEventPayload(type: e.type, subject: e.subject, fields: told, purpose: e.purpose, at: e.at)
                let body = String(decoding: try WireJSON.encoder.encode(payload), as: UTF8.self)
                deliveries.append(DeliveryRecord(id: try Vault.newDeliveryID(), event: e.id, service: service, type: e.type, subject: e.subject,
                                                 body: body, createdAt: now, nextAttemptAt: now, retryUntil: now.addingTimeInterval(config.retryFor)))
            }
            do {
                _ = try await vault.store.commit(WriteBatch([.fanOut(event: e.id, deliveries)]))
                done += 1
            } catch let error as StoreError where error.code == .conflict {
                continue  // another instance fanned it out first
            }
            VaultMetrics.deliveriesCreated(deliveries.count)
        }
        return done
    }

    /// The services that received a value of the subject: an allowed reveal of a field at a level that
    /// shows one (`plain` or `masked`). A reveal only `redacted` under the current policy said that the
    /// field exists, not what it holds; one under a purpose the policy no longer names counts, to be safe.
    /// Per recipient, the fields whose values it received (under `purpose`, when given).
    func recipients(of subject: String, purpose: String? = nil) async throws -> [String: Set<String>] {
        var out: [String: Set<String>] = [:]
        for r in try await vault.store.revealRecipients(subject: subject) where purpose == nil || r.purpose == purpose {
            let known = r.purpose.flatMap { vault.policy.purposes[$0] }
            for field in r.fields where known?.fields[field] != .redacted {
                out[r.service, default: []].insert(field)
            }
        }
        return out
    }

    /// Tries the due deliveries, at most `concurrency` per recipient in a round, all at once: each
    /// attempt has a hard deadline, so a round lasts at most one deadline and a slow or dead receiver
    /// holds back neither the others nor the next fan-out.
    func deliverDue() async throws -> Int {
        let due = try await vault.store.deliveries(DeliveryQuery(status: .pending, dueAt: vault.now, limit: 1000))
        var perService: [String: Int] = [:]
        let chosen = due.filter { d in
            perService[d.service, default: 0] += 1
            return perService[d.service]! <= max(config.concurrency, 1)
        }.prefix(64)
        await withTaskGroup(of: Void.self) { group in
            for d in chosen { group.addTask { await self.attempt(d) } }
        }
        return chosen.count
    }

    /// One attempt: take the lease, post, record the outcome and its audit event together.
    func attempt(_ d: DeliveryRecord) async {
        let start = vault.now
        do {
            _ = try await vault.store.commit(WriteBatch([.leaseDelivery(id: d.id, attempts: d.attempts, owner: owner,
                                                                        until: start.addingTimeInterval(config.lease), now: start)]))
        } catch {
            return  // another instance holds it, or it moved on
        }
        let clock = ContinuousClock()
        let began = clock.now
        let result: WebhookSendResult?
        if let hook = vault.policy.services[d.service]?.webhook, let secret = secrets[service: d.service] {
            if Webhook.urlProblem(hook.url) != nil {
                result = .urlRefused
            } else {
                let timestamp = Int64(vault.now.timeIntervalSince1970)
                let body = Array(d.body.utf8)
                let headers = [("content-type", "application/json"), ("user-agent", "cofre/\(CofreVersion.current)"),
                               ("webhook-id", d.id), ("webhook-timestamp", String(timestamp)),
                               ("webhook-signature", WebhookSignature.sign(id: d.id, timestamp: timestamp, body: body, secret: secret))]
                result = await transport.post(url: hook.url, headers: headers, body: body)
            }
        } else {
            result = nil  // the policy no longer gives this service a webhook
        }
        let elapsed = clock.now - began
        let ms = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        let (outcome, httpStatus) = Self.outcome(result)
        let delivered = outcome == "delivered"
        let at = vault.now
        let attempts = d.attempts + 1
        let status: DeliveryStatus
        var next = at
        if delivered {
            status = .delivered
        } else if at >= d.retryUntil {
            status = .failed
        } else {
            // Any failure, a missing webhook included (an instance on an older policy during a rollout), is retried.
            status = .pending
            // The last try falls on the end of the retry period, never after it.
            next = min(at.addingTimeInterval(config.backoff(after: attempts, unit: Double.random(in: 0...1))), d.retryUntil)
        }
        let payload = try? WireJSON.decoder.decode(WebhookEventPayload.self, from: Data(d.body.utf8))
        var a = vault.draft(nil, action: .deliveryAttempt, requestID: nil, subject: d.subject, fields: payload?.fields ?? [],
                            purposeName: payload?.purpose, decision: delivered ? .allow : .deny, code: delivered ? nil : outcome, ref: d.id)
        a.service = "webhook-delivery"
        a.role = "system"
        a.target = d.service
        let record = DeliveryAttemptRecord(delivery: d.id, attempt: attempts, at: at, outcome: outcome, httpStatus: httpStatus, durationMs: ms)
        do {
            _ = try await vault.store.commit(WriteBatch([.recordDeliveryAttempt(record, owner: owner, status: status, nextAttemptAt: next,
                                                                                retryUntil: d.retryUntil)], audit: [a]))
        } catch {
            // Not recorded: the lease runs out and the delivery is tried again (at least once).
            vault.logger.warning("a delivery attempt could not be recorded; it will be tried again",
                                 metadata: ["delivery": "\(d.id)", "error.type": "\(type(of: error))"])
        }
        VaultMetrics.deliveryAttempt(service: d.service, outcome: Self.metricOutcome(outcome), final: status)
        if status == .failed {
            vault.logger.error("a notification could not be delivered and is no longer retried",
                               metadata: ["delivery": "\(d.id)", "service": "\(d.service)", "outcome": "\(outcome)"])
        }
    }

    /// The attempt log's words for a result.
    static func outcome(_ result: WebhookSendResult?) -> (String, Int?) {
        switch result {
        case nil: ("no_webhook", nil)
        case .status(let s) where (200..<300).contains(s): ("delivered", s)
        case .status(let s) where (300..<400).contains(s): ("redirect_refused", s)
        case .status(let s): ("http_\(s)", s)
        case .timeout: ("timeout", nil)
        case .connectionFailed: ("connection_failed", nil)
        case .urlRefused: ("url_refused", nil)
        }
    }

    /// Metric labels stay few: `http_5xx`, not one label per status.
    static func metricOutcome(_ outcome: String) -> String {
        guard outcome.hasPrefix("http_"), let s = Int(outcome.dropFirst(5)) else { return outcome }
        return "http_\(s / 100)xx"
    }
}
