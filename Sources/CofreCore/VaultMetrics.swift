import Metrics

/// The vault's own metrics (swift-metrics; exported as Prometheus text at `/metrics`).
/// Label values are only names from the policy or fixed codes: never a subject id, token or value,
/// and a purpose that the policy does not know is counted as `unknown`, so callers cannot grow the label set.
public enum VaultMetrics {
    static func purposeLabel(_ name: String?, _ policy: Policy) -> String {
        guard let name, policy.purposes[name] != nil else { return "unknown" }
        return name
    }

    static func decision(purpose: String?, policy: Policy, denied: DenialCode?) {
        Counter(label: "cofre_reveal_decisions_total", dimensions: [
            ("purpose", purposeLabel(purpose, policy)), ("decision", denied == nil ? "allow" : "deny"), ("code", denied?.rawValue ?? "none"),
        ]).increment()
    }

    /// A contact attempt refused by the contact rules (window or caps), by purpose and code.
    static func contactDenied(purpose: String, policy: Policy, code: DenialCode) {
        Counter(label: "cofre_contact_denials_total", dimensions: [("purpose", purposeLabel(purpose, policy)), ("code", code.rawValue)]).increment()
    }

    static func consent(purpose: String, policy: Policy, status: ConsentRecord.Status) {
        Counter(label: "cofre_consent_events_total", dimensions: [("purpose", purposeLabel(purpose, policy)), ("status", status.rawValue)]).increment()
    }

    /// One commit of the store's writer: how long it took and how many requests shared it.
    static func commit(engine: String, seconds: Double, batch: Int) {
        Timer(label: "cofre_store_commit_seconds", dimensions: [("engine", engine)]).recordSeconds(seconds)
        Recorder(label: "cofre_store_commit_batch_size", dimensions: [("engine", engine)]).record(batch)
    }

    /// Write requests waiting for the store's writer (back-pressure on the database).
    static func pendingWrites(engine: String, _ n: Int) {
        Gauge(label: "cofre_store_pending_writes", dimensions: [("engine", engine)]).record(n)
    }

    /// Superseded keys whose immediate destruction failed and that wait in the shred queue.
    static func keyShredDeferred(_ n: Int) {
        Counter(label: "cofre_key_shred_deferred_total").increment(by: n)
    }

    /// Keys the sweeper destroyed, by why they were no longer needed.
    static func keysSwept(superseded: Int, orphans: Int) {
        Counter(label: "cofre_keys_swept_total", dimensions: [("reason", "superseded")]).increment(by: superseded)
        Counter(label: "cofre_keys_swept_total", dimensions: [("reason", "orphan")]).increment(by: orphans)
    }

    /// A stored value that cannot be read although the vault says it should be (a missing key, a failed tag).
    static func integrityFailure(_ what: String) {
        Counter(label: "cofre_integrity_failures_total", dimensions: [("kind", what)]).increment()
    }

    /// A reload of the key ring that failed (the instance keeps the ring it has; `/readyz` turns 503 after a grace period).
    static func keyRingReloadFailed() {
        Counter(label: "cofre_key_ring_reload_failures_total").increment()
    }

    /// A call refused past its quota. The service label is a policy name, never an id or a value.
    static func quotaRefused(service: String, kind: String) {
        Counter(label: "cofre_quota_refusals_total", dimensions: [("service", service), ("kind", kind)]).increment()
    }

    /// A minute of reveals far above the service's hourly average.
    static func bulkReveal(service: String) {
        Counter(label: "cofre_bulk_reveal_alerts_total", dimensions: [("service", service)]).increment()
    }

    /// Deliveries created when notifications were fanned out to their recipients.
    static func deliveriesCreated(_ n: Int) {
        Counter(label: "cofre_webhook_deliveries_created_total").increment(by: n)
    }

    /// One delivery attempt, by recipient (a policy name) and outcome (`delivered`, `http_5xx`, `timeout`, …);
    /// deliveries given up on are counted apart.
    static func deliveryAttempt(service: String, outcome: String, final: DeliveryStatus) {
        Counter(label: "cofre_webhook_attempts_total", dimensions: [("service", service), ("outcome", outcome)]).increment()
        if final == .failed {
            Counter(label: "cofre_webhook_failed_total", dimensions: [("service", service)]).increment()
        }
    }
}
