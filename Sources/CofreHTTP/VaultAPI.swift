import CofreAPI
import CofreCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Prometheus

/// The HTTP handlers: parse, authenticate, call the vault, encode. No rule lives here.
struct VaultAPI: Sendable {
    let vault: Vault

    func register(on routes: RouteRecorder) {
        routes.get("/healthz") { _, _ in try Self.json(StatusResponse(status: "ok")) }
        routes.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: MetricsExport.registry.emitToBuffer())))
        }
        routes.get("/v1/openapi.json") { _, _ in
            guard let json = OpenAPIDocument.json else {
                throw VaultError(.internalFailure, .internalError, "the OpenAPI document compiled into this build does not convert to JSON")
            }
            return Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: json)))
        }
        routes.get("/readyz") { _, context in
            guard await vault.isReady() else {
                throw VaultError(.unavailable, .notReady, "the database, key ring or audit log is not usable")
            }
            return try Self.json(StatusResponse(status: "ready"))
        }
        routes.post("/v1/subjects") { request, context in
            let principal = try await authorize(request, context, .init(roles: [.service], tokenize: true), action: .subjectCreate)
            let body = try await Self.decode(CreateSubjectRequest.self, request, context)
            let created = try await vault.createSubject(principal, externalRef: body.externalRef, fields: body.fields,
                                                        requestID: context.requestID)
            return try Self.json(CreateSubjectResponse(subject: created.subject, tokens: created.tokens), status: .created)
        }
        routes.post("/v1/subjects/batch") { request, context in
            let principal = try await authorize(request, context, .init(roles: [.service], tokenize: true), action: .subjectCreate)
            let body = try await Self.decode(BatchCreateRequest.self, request, context)
            let results = try await vault.createSubjects(principal, body.subjects.map { .init(externalRef: $0.externalRef, fields: $0.fields) },
                                                         requestID: context.requestID)
            return try Self.json(BatchCreateResponse(results: results.map { r in
                .init(externalRef: r.externalRef, subject: r.created?.subject, tokens: r.created?.tokens,
                      error: r.error.map { .init(code: $0.code, message: $0.message, subject: $0.existingSubject) })
            }))
        }
        routes.post("/v1/subjects/:subject/fields") { request, context in
            let subject = try context.parameters.require("subject")
            let principal = try await authorize(request, context, .init(roles: [.service], tokenize: true), action: .fieldsPut, subject: subject)
            let body = try await Self.decode(PutFieldsRequest.self, request, context)
            let tokens = try await vault.putFields(principal, subject: subject, fields: body.fields, requestID: context.requestID)
            return try Self.json(PutFieldsResponse(subject: subject, tokens: tokens))
        }
        routes.post("/v1/tokenize") { request, context in
            let principal = try await authorize(request, context, .init(roles: [.service], tokenize: true), action: .tokenize)
            let body = try await Self.decode(TokenizeRequest.self, request, context)
            let token = try await vault.tokenize(principal, subject: body.subject, field: body.field, value: body.value,
                                                 requestID: context.requestID)
            return try Self.json(TokenizeResponse(token: token))
        }
        routes.post("/v1/detokenize") { request, context in
            let principal = try await authorize(request, context, .init(roles: [.service]), action: .detokenize)
            let body = try await Self.decode(DetokenizeRequest.self, request, context)
            let results = try await vault.detokenize(principal, purpose: body.purpose, tokens: body.tokens, requestID: context.requestID)
            return try Self.json(DetokenizeResponse(results: results.map { r in
                .init(token: r.token, field: r.field, value: r.value, reveal: r.reveal,
                      denied: r.denied.map { .init(code: $0, message: $0.message, nextWindowAt: r.nextWindowAt) })
            }))
        }
        routes.post("/v1/contact/eligibility") { request, context in
            let principal = try await authorize(request, context, .init(roles: [.service]), action: .contactEligibility)
            let body = try await Self.decode(ContactEligibilityRequest.self, request, context)
            let results = try await vault.contactEligibility(principal, purpose: body.purpose, tokens: body.tokens, requestID: context.requestID)
            return try Self.json(ContactEligibilityResponse(results: results.map { r in
                .init(token: r.token, field: r.field, eligible: r.eligible,
                      denied: r.denied.map { .init(code: $0, message: $0.message, nextWindowAt: r.nextWindowAt) })
            }))
        }
        routes.post("/v1/lookup") { request, context in
            let principal = try await authorize(request, context, .init(roles: [.service]), action: .lookup)
            let body = try await Self.decode(LookupRequest.self, request, context)
            let found = try await vault.lookup(principal, purpose: body.purpose, field: body.field, value: body.value,
                                               requestID: context.requestID)
            return try Self.json(LookupResponse(subject: found.subject, token: found.token))
        }
        routes.get("/v1/subjects/:subject/consents") { request, context in
            let subject = try context.parameters.require("subject")
            let principal = try await authorize(request, context, .init(roles: [.service, .dpo]), action: .consentRead, subject: subject)
            _ = try AuditAPI.parameters(request, allowed: [])
            let all = try await vault.consents(principal, subject: subject, requestID: context.requestID)
            var purposes: [String: ConsentsResponse.PurposeState] = [:]
            for p in all {
                purposes[p.purpose] = .init(legalBasis: p.legalBasis, consent: p.consent, objection: p.objection,
                                            objectionBlocks: p.objectionBlocks, history: p.history.map(ConsentEvent.init))
            }
            return try Self.json(ConsentsResponse(subject: subject, purposes: purposes))
        }
        routes.put("/v1/subjects/:subject/consents/:purpose") { request, context in
            let subject = try context.parameters.require("subject")
            let purpose = try context.parameters.require("purpose")
            let principal = try await authorize(request, context, .init(roles: [.service, .dpo], servicePurpose: purpose),
                                                action: .consentRecord, subject: subject)
            let body = try await Self.decode(ConsentRequest.self, request, context)
            let event = try await vault.recordConsent(
                principal, subject: subject, purpose: purpose,
                .init(status: body.status, channel: body.channel, evidence: body.evidence, noticeVersion: body.noticeVersion),
                requestID: context.requestID)
            return try Self.json(ConsentEvent(event))
        }
        for (method, objected) in [(HTTPRequest.Method.put, true), (.delete, false)] {
            routes.on("/v1/subjects/:subject/objections/:purpose", method: method) { request, context in
                let subject = try context.parameters.require("subject")
                let purpose = try context.parameters.require("purpose")
                // Anyone may record an objection; withdrawing it takes the DPO or a service holding the purpose.
                let principal = try await authorize(request, context, .init(roles: [.service, .dpo], servicePurpose: objected ? nil : purpose),
                                                    action: objected ? .objectionRecord : .objectionWithdraw, subject: subject)
                let body = try await Self.decodeOptional(ConsentRequest.self, request, context)
                let event = try await vault.recordObjection(
                    principal, subject: subject, purpose: purpose, objected: objected,
                    .init(channel: body?.channel, evidence: body?.evidence), requestID: context.requestID)
                return try Self.json(ConsentEvent(event))
            }
        }
    }

    /// Authenticates, then checks the route's roles before anything of the request is read or validated
    /// (CONTRACT §4 v2): a wrong caller gets the same audited 403 whatever its body says.
    func authorize(_ request: Request, _ context: CofreRequestContext, _ access: Vault.Access, action: AuditAction,
                   subject: String? = nil) async throws -> Principal {
        let principal = try await authenticate(request)
        try await vault.authorize(principal, access, action: action, subject: subject, requestID: context.requestID)
        return principal
    }

    /// `Authorization: Bearer <key>`; anything else is the same 401.
    func authenticate(_ request: Request) async throws -> Principal {
        let header = request.headers[.authorization]
        var key: String?
        if let header, header.count > 7, header.prefix(7).lowercased() == "bearer " {
            key = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        }
        return try await vault.authenticate(bearer: key)
    }

    /// Reads at most 1 MiB of body.
    static func body(_ request: Request, _ context: CofreRequestContext) async throws -> ByteBuffer {
        var request = request
        do {
            return try await request.collectBody(upTo: context.maxUploadSize)
        } catch is NIOTooManyBytesError {
            throw VaultError(.payloadTooLarge, .bodyTooLarge, "the request body exceeds 1 MiB")
        }
    }

    /// Reads and decodes a required JSON body.
    static func decode<T: Decodable>(_ type: T.Type, _ request: Request, _ context: CofreRequestContext) async throws -> T {
        let buffer = try await body(request, context)
        guard buffer.readableBytes > 0 else { throw VaultError(.badRequest, .malformedRequest, "a JSON body is required") }
        return try parse(type, buffer)
    }

    /// Like `decode`, for routes whose body may be absent.
    static func decodeOptional<T: Decodable>(_ type: T.Type, _ request: Request, _ context: CofreRequestContext) async throws -> T? {
        let buffer = try await body(request, context)
        return buffer.readableBytes == 0 ? nil : try parse(type, buffer)
    }

    /// Decodes a body the one way every route does (`RequestDecoding`): control characters refused in
    /// every string, a failure naming the JSON path, never the value.
    static func parse<T: Decodable>(_ type: T.Type, _ buffer: ByteBuffer) throws -> T {
        do {
            return try RequestDecoding.decode(T.self, from: Data(buffer.readableBytesView))
        } catch {
            throw VaultError(.badRequest, .malformedRequest, error.message)
        }
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try WireJSON.encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
