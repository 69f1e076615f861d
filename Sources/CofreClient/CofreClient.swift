public import AsyncHTTPClient
public import CofreAPI
public import Foundation
public import NIOCore
import NIOHTTP1

/// A typed client of Cofre's HTTP API (docs/openapi.yaml), for services, the DPO and auditors.
///
/// Every route is one async method; a non-2xx answer throws `CofreClientError` with the vault's error
/// code. Only what is safe to repeat is retried: any request whose connection could not be opened (it
/// never reached the vault), and reads (GET) answered 503. Nothing is retried after it was sent and
/// then lost (a timeout, a dropped connection): a write may have been applied, so that failure is
/// `CofreClientError.outcomeUnknown`, and a consent, an objection or an erasure is never recorded twice.
///
/// ```swift
/// let vault = CofreClient(baseURL: "http://127.0.0.1:8200", key: key)
/// let r = try await vault.detokenize(purpose: "collection-whatsapp", tokens: [token])
/// ```
public struct CofreClient: Sendable {
    public let baseURL: String
    private let key: String
    private let http: HTTPClient
    /// Extra attempts for a request that may safely be repeated.
    public var retries: Int
    /// The longest a single request may take (exports stream for longer: see `streamExport`).
    public var timeout: TimeAmount

    /// - Parameters:
    ///   - baseURL: `http://host:port` or `https://…`, without a path.
    ///   - key: the caller's key (`Authorization: Bearer`). Never logged, never in an error.
    ///   - httpClient: defaults to `CofreClient.defaultHTTPClient`; pass your own for TLS settings.
    public init(baseURL: String, key: String, httpClient: HTTPClient = CofreClient.defaultHTTPClient, retries: Int = 2,
                timeout: TimeAmount = .seconds(120)) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.key = key
        self.http = httpClient
        self.retries = retries
        self.timeout = timeout
    }

    /// A process-wide client (never shut down, like `HTTPClient.shared`) that gives up on a connection
    /// after 5 s instead of retrying a refused one until the request's deadline, and never follows a
    /// redirect (the vault answers none; following one could carry the key to another host).
    public static let defaultHTTPClient = HTTPClient(
        eventLoopGroupProvider: .singleton,
        configuration: .init(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5), read: .seconds(120))))

    // MARK: data plane (services)

    public func createSubject(externalRef: String, fields: [String: String]) async throws(CofreClientError) -> CreateSubjectResponse {
        try await send(.POST, "/v1/subjects", body: CreateSubjectRequest(externalRef: externalRef, fields: fields))
    }

    /// Up to 1000 subjects; each one succeeds or fails on its own (`BatchCreateResponse.Item.error`).
    public func createSubjects(_ subjects: [CreateSubjectRequest]) async throws(CofreClientError) -> BatchCreateResponse {
        try await send(.POST, "/v1/subjects/batch", body: BatchCreateRequest(subjects: subjects))
    }

    public func putFields(subject: String, fields: [String: String]) async throws(CofreClientError) -> PutFieldsResponse {
        try await send(.POST, "/v1/subjects/\(try Self.segment(subject))/fields", body: PutFieldsRequest(fields: fields))
    }

    public func tokenize(subject: String, field: String, value: String) async throws(CofreClientError) -> String {
        let r: TokenizeResponse = try await send(.POST, "/v1/tokenize", body: TokenizeRequest(subject: subject, field: field, value: value))
        return r.token
    }

    /// One result per token, in order: a value (or its mask) or the reason it was refused.
    public func detokenize(purpose: String, tokens: [String]) async throws(CofreClientError) -> [DetokenizeResponse.Result] {
        let r: DetokenizeResponse = try await send(.POST, "/v1/detokenize", body: DetokenizeRequest(purpose: purpose, tokens: tokens))
        return r.results
    }

    /// Whether a contact through each token is allowed now (contact rules), without revealing or counting.
    public func contactEligibility(purpose: String, tokens: [String]) async throws(CofreClientError) -> [ContactEligibilityResponse.Result] {
        let r: ContactEligibilityResponse = try await send(.POST, "/v1/contact/eligibility",
                                                           body: ContactEligibilityRequest(purpose: purpose, tokens: tokens))
        return r.results
    }

    /// The subject whose `field` holds exactly `value`; `CofreClientError.code == .noMatch` when none does.
    public func lookup(purpose: String, field: String, value: String) async throws(CofreClientError) -> LookupResponse {
        try await send(.POST, "/v1/lookup", body: LookupRequest(purpose: purpose, field: field, value: value))
    }

    // MARK: consent and objections (services, DPO)

    public func consents(subject: String) async throws(CofreClientError) -> ConsentsResponse {
        try await send(.GET, "/v1/subjects/\(try Self.segment(subject))/consents")
    }

    public func recordConsent(subject: String, purpose: String, _ consent: ConsentRequest) async throws(CofreClientError) -> ConsentEvent {
        try await send(.PUT, "/v1/subjects/\(try Self.segment(subject))/consents/\(try Self.segment(purpose))", body: consent)
    }

    public func recordObjection(subject: String, purpose: String, channel: String?, evidence: String?) async throws(CofreClientError) -> ConsentEvent {
        try await send(.PUT, "/v1/subjects/\(try Self.segment(subject))/objections/\(try Self.segment(purpose))",
                       body: ConsentRequest(channel: channel, evidence: evidence))
    }

    public func withdrawObjection(subject: String, purpose: String, evidence: String) async throws(CofreClientError) -> ConsentEvent {
        try await send(.DELETE, "/v1/subjects/\(try Self.segment(subject))/objections/\(try Self.segment(purpose))",
                       body: ConsentRequest(evidence: evidence))
    }

    // MARK: subject rights (DPO)

    /// The whole export in memory. For a subject with a long access history, prefer `streamExport`.
    public func export(subject: String) async throws(CofreClientError) -> ExportResponse {
        try await send(.GET, "/v1/subjects/\(try Self.segment(subject))/export")
    }

    public func exportSimple(subject: String) async throws(CofreClientError) -> SimpleExportResponse {
        try await send(.GET, "/v1/subjects/\(try Self.segment(subject))/export", query: [("format", "simple")])
    }

    /// The export's JSON bytes as they arrive, handed to `sink` chunk by chunk (never held whole).
    public func streamExport(subject: String, simple: Bool = false, timeout: TimeAmount = .hours(1),
                             into sink: (Data) async throws -> Void) async throws(CofreClientError) {
        let path = "/v1/subjects/\(try Self.segment(subject))/export"
        try await stream(path, query: simple ? [("format", "simple")] : [], what: "export", timeout: timeout, into: sink)
    }

    /// A GET whose answer is handed to `sink` chunk by chunk as it arrives (never held whole).
    func stream(_ path: String, query: [(String, String)], what: String, timeout: TimeAmount,
                into sink: (Data) async throws -> Void) async throws(CofreClientError) {
        let request = try makeRequest(.GET, path, query: query, body: nil)
        let response = try await execute(request, idempotent: true, timeout: timeout)
        guard (200..<300).contains(response.status.code) else { throw await Self.failure(response) }
        do {
            for try await chunk in response.body { try await sink(Data(chunk.readableBytesView)) }
        } catch let e as CofreClientError {
            throw e
        } catch {
            throw CofreClientError(status: nil, code: CofreClientError.transport, message: "the \(what) was interrupted (\(Self.describe(error)))")
        }
    }

    public func erase(subject: String, reason: String, ticket: String) async throws(CofreClientError) -> ErasureReceipt {
        try await send(.POST, "/v1/subjects/\(try Self.segment(subject))/erase", body: EraseRequest(reason: reason, ticket: ticket))
    }

    // MARK: audit (auditors)

    /// One page of events, oldest first. Pass the page's `next` as `query.after` and its `head` as
    /// `query.through` to read the following page of the same snapshot.
    // MARK: recipients and incidents (dpo)

    /// Notification deliveries, oldest first; pass `next` as `after` for the following page.
    public func deliveries(status: DeliveryStatus? = nil, service: String? = nil, subject: String? = nil, after: String? = nil,
                           limit: Int? = nil) async throws(CofreClientError) -> DeliveriesResponse {
        var query: [(String, String)] = []
        if let status { query.append(("status", status.rawValue)) }
        if let service { query.append(("service", service)) }
        if let subject { query.append(("subject", subject)) }
        if let after { query.append(("after", after)) }
        if let limit { query.append(("limit", String(limit))) }
        return try await send(.GET, "/v1/deliveries", query: query)
    }

    /// One delivery with its attempt log.
    public func delivery(id: String) async throws(CofreClientError) -> DeliveryResponse {
        try await send(.GET, "/v1/deliveries/\(try Self.segment(id))")
    }

    /// Makes a pending or failed delivery due now, retried for another full period under the same id.
    public func retryDelivery(id: String) async throws(CofreClientError) -> DeliveryResponse {
        try await send(.POST, "/v1/deliveries/\(try Self.segment(id))/retry")
    }

    /// Which subjects and fields `service` read in `since..<until` (CONTRACT §10), as the vault streams
    /// it: JSON (`IncidentScopeResponse`) or CSV, handed to `sink` chunk by chunk.
    public func streamIncidentScope(service: String, since: Date, until: Date, detectedAt: Date? = nil, csv: Bool = false,
                                    timeout: TimeAmount = .hours(1), into sink: (Data) async throws -> Void) async throws(CofreClientError) {
        var query = [("service", service), ("since", WireJSON.formatDate(since)), ("until", WireJSON.formatDate(until))]
        if let detectedAt { query.append(("detected_at", WireJSON.formatDate(detectedAt))) }
        if csv { query.append(("format", "csv")) }
        try await stream("/v1/incidents/scope", query: query, what: "incident scope", timeout: timeout, into: sink)
    }

    /// The whole incident scope, decoded (for scopes that fit in memory).
    public func incidentScope(service: String, since: Date, until: Date, detectedAt: Date? = nil) async throws(CofreClientError) -> IncidentScopeResponse {
        var data = Data()
        try await streamIncidentScope(service: service, since: since, until: until, detectedAt: detectedAt) { data.append($0) }
        do {
            return try WireJSON.decoder.decode(IncidentScopeResponse.self, from: data)
        } catch {
            throw CofreClientError(status: nil, code: CofreClientError.unexpectedAnswer,
                                   message: "the vault's answer is not an IncidentScopeResponse (\(Self.describe(error)))")
        }
    }

    public func auditEvents(_ query: AuditEventsQuery = .init()) async throws(CofreClientError) -> AuditEventsResponse {
        try await send(.GET, "/v1/audit/events", query: query.items)
    }

    /// Reveal decisions counted per hour or day, by purpose, denial code and service.
    public func auditStats(since: Date, until: Date, bucket: String = "hour") async throws(CofreClientError) -> AuditStatsResponse {
        try await send(.GET, "/v1/audit/stats", query: [("since", WireJSON.formatDate(since)), ("until", WireJSON.formatDate(until)), ("bucket", bucket)])
    }

    /// Verifies the chain, and against `checkpoint` when given (a log cut back or rewritten before it).
    public func verifyAudit(checkpoint: AuditCheckpoint? = nil) async throws(CofreClientError) -> VerifyResponse {
        var query: [(String, String)] = []
        if let c = checkpoint {
            query = [("checkpoint_seq", String(c.seq)), ("checkpoint_head", c.head), ("checkpoint_time", WireJSON.formatDate(c.time)),
                     ("checkpoint_mac", c.mac)]
        }
        return try await send(.GET, "/v1/audit/verify", query: query)
    }

    public func checkpoint() async throws(CofreClientError) -> AuditCheckpoint {
        try await send(.GET, "/v1/audit/checkpoint")
    }

    // MARK: operations (anyone)

    public func health() async throws(CofreClientError) -> StatusResponse { try await send(.GET, "/healthz", authenticated: false) }

    /// Throws `CofreClientError` with `code == .notReady` when the vault cannot serve safely.
    public func ready() async throws(CofreClientError) -> StatusResponse { try await send(.GET, "/readyz", authenticated: false) }

    /// The OpenAPI document the vault serves, as JSON bytes.
    public func openAPIDocument() async throws(CofreClientError) -> Data {
        let request = try makeRequest(.GET, "/v1/openapi.json", query: [], body: nil, authenticated: false)
        return try await collect(request, idempotent: true)
    }

    // MARK: transport

    func send<T: Decodable>(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: (any Encodable)? = nil,
                            authenticated: Bool = true) async throws(CofreClientError) -> T {
        let request = try makeRequest(method, path, query: query, body: body, authenticated: authenticated)
        let data = try await collect(request, idempotent: method == .GET)
        do {
            return try WireJSON.decoder.decode(T.self, from: data)
        } catch {
            throw CofreClientError(status: nil, code: CofreClientError.unexpectedAnswer,
                                   message: "the vault's answer is not a \(T.self) (\(Self.describe(error)))")
        }
    }

    func makeRequest(_ method: HTTPMethod, _ path: String, query: [(String, String)], body: (any Encodable)?,
                     authenticated: Bool = true) throws(CofreClientError) -> HTTPClientRequest {
        guard baseURL.hasPrefix("http://") || baseURL.hasPrefix("https://"), let parts = URLComponents(string: baseURL), parts.host != nil,
              parts.user == nil, parts.password == nil, parts.path.isEmpty, parts.query == nil, parts.fragment == nil else {
            throw CofreClientError(status: nil, code: CofreClientError.transport,
                                   message: "the vault's address must be http(s)://HOST[:PORT], without credentials, path or query")
        }
        var url = baseURL + path
        if !query.isEmpty {
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            url += "?" + query.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&")
        }
        var request = HTTPClientRequest(url: url)
        request.method = method
        if authenticated { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        request.headers.add(name: "Accept", value: "application/json")
        if let body {
            do {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: try WireJSON.encoder.encode(body)))
            } catch {
                throw CofreClientError(status: nil, code: .malformedRequest, message: "the request could not be encoded")
            }
        }
        return request
    }

    func collect(_ request: HTTPClientRequest, idempotent: Bool) async throws(CofreClientError) -> Data {
        let response = try await execute(request, idempotent: idempotent, timeout: timeout)
        guard (200..<300).contains(response.status.code) else { throw await Self.failure(response) }
        do {
            return Data(try await response.body.collect(upTo: 256 << 20).readableBytesView)
        } catch {
            throw CofreClientError(status: Int(response.status.code), code: CofreClientError.transport,
                                   message: "the answer was cut off (\(Self.describe(error)))")
        }
    }

    /// Sends, retrying only what cannot do harm twice (see the type's documentation), with a growing pause.
    func execute(_ request: HTTPClientRequest, idempotent: Bool, timeout: TimeAmount) async throws(CofreClientError) -> HTTPClientResponse {
        var attempt = 0
        while true {
            do {
                let response = try await http.execute(request, timeout: timeout)
                if idempotent, response.status == .serviceUnavailable, attempt < retries {
                    _ = try? await response.body.collect(upTo: 1 << 20)
                } else {
                    return response
                }
            } catch {
                let neverSent = Self.isConnectFailure(error)
                guard neverSent else {
                    throw CofreClientError(status: nil, code: idempotent ? CofreClientError.transport : CofreClientError.outcomeUnknown,
                                           message: idempotent ? "the vault at \(displayURL) did not answer: \(Self.describe(error))"
                                               : "the request reached the vault at \(displayURL) but its answer was lost (\(Self.describe(error))): it may or may not have been applied; check before sending it again")
                }
                guard attempt < retries else {
                    throw CofreClientError(status: nil, code: CofreClientError.transport,
                                           message: "cannot reach the vault at \(displayURL): \(Self.describe(error))")
                }
            }
            attempt += 1
            try? await Task.sleep(for: .milliseconds(200 * (1 << min(attempt, 5))))
        }
    }

    /// The address as errors show it: scheme, host and port only.
    var displayURL: String {
        guard let parts = URLComponents(string: baseURL), let host = parts.host else { return "the configured address" }
        return "\(parts.scheme ?? "http")://\(host)" + (parts.port.map { ":\($0)" } ?? "")
    }

    static func failure(_ response: HTTPClientResponse) async -> CofreClientError {
        let status = Int(response.status.code)
        let data = (try? await response.body.collect(upTo: 1 << 20)).map { Data($0.readableBytesView) } ?? Data()
        let requestID = response.headers.first(name: "X-Request-Id")
        guard let e = try? WireJSON.decoder.decode(ErrorResponse.self, from: data) else {
            return CofreClientError(status: status, code: CofreClientError.unexpectedAnswer,
                                    message: "the vault answered \(status) without an error body", requestID: requestID)
        }
        var retryAfter: Int?
        if let header = response.headers.first(name: "Retry-After") { retryAfter = Int(header) }
        return CofreClientError(status: status, code: e.error.code, message: e.error.message, field: e.error.field,
                                existingSubject: e.error.subject, requestID: e.error.requestID ?? requestID, retryAfter: retryAfter)
    }

    /// A path segment: refused rather than escaped when it holds anything a vault name never does.
    static func segment(_ s: String) throws(CofreClientError) -> String {
        let ok = !s.isEmpty && s.utf8.count <= 128 && s.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" || $0 == "."
        } && s != "." && s != ".."
        guard ok else { throw CofreClientError(status: nil, code: .malformedRequest, message: "not a valid identifier for a URL path") }
        return s
    }

    static func isConnectFailure(_ error: any Error) -> Bool {
        let text = "\(error)"
        return text.contains("connectionRefused") || text.contains("Connection refused") || text.contains("connectTimeout")
    }

    static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        if text.contains("connectTimeout") || text.contains("deadlineExceeded") { return "timed out" }
        if error is DecodingError { return "unexpected JSON" }
        return "network error"
    }
}

/// The filters of `GET /v1/audit/events`.
public struct AuditEventsQuery: Sendable, Equatable {
    public var subject: String?
    public var service: String?
    public var purpose: String?
    public var action: String?
    public var decision: AuditDecision?
    public var since: Date?
    public var until: Date?
    /// A token: its events are found through its keyed reference.
    public var token: String?
    public var after: String?
    public var through: String?
    public var limit: Int?

    public init(subject: String? = nil, service: String? = nil, purpose: String? = nil, action: String? = nil, decision: AuditDecision? = nil,
                since: Date? = nil, until: Date? = nil, token: String? = nil, after: String? = nil, through: String? = nil, limit: Int? = nil) {
        self.subject = subject
        self.service = service
        self.purpose = purpose
        self.action = action
        self.decision = decision
        self.since = since
        self.until = until
        self.token = token
        self.after = after
        self.through = through
        self.limit = limit
    }

    var items: [(String, String)] {
        var q: [(String, String)] = []
        func add(_ k: String, _ v: String?) { if let v { q.append((k, v)) } }
        add("subject", subject)
        add("service", service)
        add("purpose", purpose)
        add("action", action)
        add("decision", decision?.rawValue)
        add("since", since.map(WireJSON.formatDate))
        add("until", until.map(WireJSON.formatDate))
        add("token", token)
        add("after", after)
        add("through", through)
        add("limit", limit.map(String.init))
        return q
    }
}

/// A failed call: the vault's answer (status and contract code), or a transport failure (`status` nil).
public struct CofreClientError: Error, Sendable, CustomStringConvertible {
    /// The vault could not be reached, or the answer was cut off.
    public static let transport = ErrorCode("client_transport")
    /// The vault answered something that is not the interface's JSON.
    public static let unexpectedAnswer = ErrorCode("client_unexpected_answer")
    /// A write was sent but its answer was lost: it may or may not have been applied.
    public static let outcomeUnknown = ErrorCode("client_outcome_unknown")

    public let status: Int?
    public let code: ErrorCode
    public let message: String
    public let field: String?
    /// For `subject_exists`: the subject that already holds the external reference.
    public let existingSubject: String?
    public let requestID: String?
    /// For `rate_limited`: seconds to wait.
    public let retryAfter: Int?

    public init(status: Int?, code: ErrorCode, message: String, field: String? = nil, existingSubject: String? = nil,
                requestID: String? = nil, retryAfter: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.existingSubject = existingSubject
        self.requestID = requestID
        self.retryAfter = retryAfter
    }

    public var description: String {
        (status.map { "\($0) " } ?? "") + "\(code.rawValue): \(message)" + (requestID.map { " (request \($0))" } ?? "")
    }
}
