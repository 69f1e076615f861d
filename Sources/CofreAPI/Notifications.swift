public import Foundation

/// The body of a notification to a recipient's webhook (CONTRACT §9): what happened to which subject's
/// fields, and when. Never a value. Every retry of a delivery sends these same bytes under the same
/// `webhook-id`; `purpose` is always present (null when the change is not about one purpose).
public struct WebhookEventPayload: Codable, Sendable, Equatable {
    public let type: NotificationType
    public let subject: String
    public let fields: [String]
    public let purpose: String?
    public let at: Date
    public init(type: NotificationType, subject: String, fields: [String], purpose: String?, at: Date) {
        self.type = type
        self.subject = subject
        self.fields = fields
        self.purpose = purpose
        self.at = at
    }
    enum CodingKeys: String, CodingKey { case type, subject, fields, purpose, at }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encode(subject, forKey: .subject)
        try c.encode(fields, forKey: .fields)
        try c.encode(purpose, forKey: .purpose)  // explicit null
        try c.encode(at, forKey: .at)
    }
}

/// One notification's delivery to one recipient (`GET /v1/deliveries`, `GET /v1/deliveries/{id}`).
public struct DeliveryResponse: Codable, Sendable, Equatable {
    /// One try: when, how it ended (`delivered`, `http_<status>`, `timeout`, `connection_failed`,
    /// `redirect_refused`, `url_refused`, `no_webhook`) and how long it took.
    public struct Attempt: Codable, Sendable, Equatable {
        public let attempt: Int
        public let at: Date
        public let outcome: String
        public let httpStatus: Int?
        public let durationMs: Int
        public init(attempt: Int, at: Date, outcome: String, httpStatus: Int?, durationMs: Int) {
            self.attempt = attempt
            self.at = at
            self.outcome = outcome
            self.httpStatus = httpStatus
            self.durationMs = durationMs
        }
        enum CodingKeys: String, CodingKey {
            case attempt, at, outcome
            case httpStatus = "http_status", durationMs = "duration_ms"
        }
    }

    /// The `webhook-id` every attempt carries.
    public let id: String
    public let type: NotificationType
    public let subject: String
    /// The recipient: a service of the policy.
    public let service: String
    public let status: DeliveryStatus
    public let attempts: Int
    public let createdAt: Date
    /// When the next attempt is due (pending deliveries only).
    public let nextAttemptAt: Date?
    /// Until when failures are retried.
    public let retryUntil: Date
    public let lastAttemptAt: Date?
    public let lastOutcome: String?
    public let deliveredAt: Date?
    /// Every attempt, oldest first (`GET /v1/deliveries/{id}` only).
    public let attemptLog: [Attempt]?
    public init(id: String, type: NotificationType, subject: String, service: String, status: DeliveryStatus, attempts: Int,
                createdAt: Date, nextAttemptAt: Date?, retryUntil: Date, lastAttemptAt: Date?, lastOutcome: String?,
                deliveredAt: Date?, attemptLog: [Attempt]?) {
        self.id = id
        self.type = type
        self.subject = subject
        self.service = service
        self.status = status
        self.attempts = attempts
        self.createdAt = createdAt
        self.nextAttemptAt = nextAttemptAt
        self.retryUntil = retryUntil
        self.lastAttemptAt = lastAttemptAt
        self.lastOutcome = lastOutcome
        self.deliveredAt = deliveredAt
        self.attemptLog = attemptLog
    }
    enum CodingKeys: String, CodingKey {
        case id, type, subject, service, status, attempts
        case createdAt = "created_at", nextAttemptAt = "next_attempt_at", retryUntil = "retry_until"
        case lastAttemptAt = "last_attempt_at", lastOutcome = "last_outcome", deliveredAt = "delivered_at", attemptLog = "attempt_log"
    }
}

/// `GET /v1/deliveries`: oldest first; `next` is the cursor for `after` (explicit null on the last page).
public struct DeliveriesResponse: Codable, Sendable, Equatable {
    public let deliveries: [DeliveryResponse]
    public let next: String?
    public init(deliveries: [DeliveryResponse], next: String?) {
        self.deliveries = deliveries
        self.next = next
    }
    enum CodingKeys: String, CodingKey { case deliveries, next }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(deliveries, forKey: .deliveries)
        try c.encode(next, forKey: .next)  // explicit null
    }
}

/// `GET /v1/incidents/scope` (CONTRACT §10): which subjects and fields a service read in a window,
/// from the audit log. JSON streams `subjects` first and the counts after them.
public struct IncidentScopeResponse: Codable, Sendable, Equatable {
    /// One subject the service read: which fields, how often, first and last time.
    public struct Subject: Codable, Sendable, Equatable {
        public let subject: String
        public let fields: [String]
        public let purposes: [String]
        public let accesses: Int
        public let firstAccess: Date
        public let lastAccess: Date
        public init(subject: String, fields: [String], purposes: [String], accesses: Int, firstAccess: Date, lastAccess: Date) {
            self.subject = subject
            self.fields = fields
            self.purposes = purposes
            self.accesses = accesses
            self.firstAccess = firstAccess
            self.lastAccess = lastAccess
        }
        enum CodingKeys: String, CodingKey {
            case subject, fields, purposes, accesses
            case firstAccess = "first_access", lastAccess = "last_access"
        }
    }

    /// How many distinct subjects, and how many accesses, a field or purpose counts.
    public struct Count: Codable, Sendable, Equatable {
        public let subjects: Int
        public let accesses: Int
        public init(subjects: Int, accesses: Int) {
            self.subjects = subjects
            self.accesses = accesses
        }
    }

    public let service: String
    public let since: Date
    public let until: Date
    public let detectedAt: Date?
    /// The end of the third business day after `detected_at`, Brasília time (weekends and the policy's
    /// national holidays skipped); null without `detected_at`.
    public let notifyBy: Date?
    /// `notify_by`'s calendar day in Brasília, `YYYY-MM-DD`.
    public let notifyByDate: String?
    /// The audit log was read up to this sequence number.
    public let through: Int64
    public let subjects: [Subject]
    public let subjectCount: Int
    public let accessCount: Int
    public let byField: [String: Count]
    public let byPurpose: [String: Count]

    public init(service: String, since: Date, until: Date, detectedAt: Date?, notifyBy: Date?, notifyByDate: String?, through: Int64,
                subjects: [Subject], subjectCount: Int, accessCount: Int, byField: [String: Count], byPurpose: [String: Count]) {
        self.service = service
        self.since = since
        self.until = until
        self.detectedAt = detectedAt
        self.notifyBy = notifyBy
        self.notifyByDate = notifyByDate
        self.through = through
        self.subjects = subjects
        self.subjectCount = subjectCount
        self.accessCount = accessCount
        self.byField = byField
        self.byPurpose = byPurpose
    }
    enum CodingKeys: String, CodingKey {
        case service, since, until, through, subjects
        case detectedAt = "detected_at", notifyBy = "notify_by", notifyByDate = "notify_by_date"
        case subjectCount = "subject_count", accessCount = "access_count", byField = "by_field", byPurpose = "by_purpose"
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(service, forKey: .service)
        try c.encode(since, forKey: .since)
        try c.encode(until, forKey: .until)
        try c.encode(detectedAt, forKey: .detectedAt)  // explicit nulls: the shape never changes
        try c.encode(notifyBy, forKey: .notifyBy)
        try c.encode(notifyByDate, forKey: .notifyByDate)
        try c.encode(through, forKey: .through)
        try c.encode(subjects, forKey: .subjects)
        try c.encode(subjectCount, forKey: .subjectCount)
        try c.encode(accessCount, forKey: .accessCount)
        try c.encode(byField, forKey: .byField)
        try c.encode(byPurpose, forKey: .byPurpose)
    }

    /// The CSV form's header (one row per subject; fields and purposes joined with `;`).
    public static let csvHeader = "subject,fields,purposes,accesses,first_access,last_access"
}

/// `GET /v1/audit/stats` (auditor): reveal decisions (one per token of a `detokenize`) counted per time
/// bucket, by purpose, by denial code and, for allowed ones, by service — the console's charts.
public struct AuditStatsResponse: Codable, Sendable, Equatable {
    public struct Decisions: Codable, Sendable, Equatable {
        public var allow: Int
        public var deny: Int
        public init(allow: Int = 0, deny: Int = 0) {
            self.allow = allow
            self.deny = deny
        }
    }

    public struct Bucket: Codable, Sendable, Equatable {
        public let start: Date
        public var byPurpose: [String: Decisions]
        public var byCode: [String: Int]
        public var revealsByService: [String: Int]
        public init(start: Date, byPurpose: [String: Decisions] = [:], byCode: [String: Int] = [:], revealsByService: [String: Int] = [:]) {
            self.start = start
            self.byPurpose = byPurpose
            self.byCode = byCode
            self.revealsByService = revealsByService
        }
        enum CodingKeys: String, CodingKey {
            case start
            case byPurpose = "by_purpose", byCode = "by_code", revealsByService = "reveals_by_service"
        }
    }

    public let since: Date
    public let until: Date
    /// `hour` or `day` (UTC).
    public let bucket: String
    /// Every bucket of the window, oldest first, empty ones included.
    public let buckets: [Bucket]
    /// The whole window.
    public let totals: Bucket
    public init(since: Date, until: Date, bucket: String, buckets: [Bucket], totals: Bucket) {
        self.since = since
        self.until = until
        self.bucket = bucket
        self.buckets = buckets
        self.totals = totals
    }
}
