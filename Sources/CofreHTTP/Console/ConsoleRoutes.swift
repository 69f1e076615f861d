import CofreAPI
import CofreCore
import CofreCrypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `/console/` (CONTRACT §11): the DPO's and auditors' web console. Server-rendered pages over the
/// same use cases as the API, with the signed-in role's principal, so authorisation and audit are the
/// API's own. Sessions live in a cookie (`HttpOnly`, `SameSite=Strict`, `Secure` behind TLS); every
/// form that changes something carries the session's CSRF token; every answer carries a strict
/// Content-Security-Policy (no inline script or style), `nosniff`, `no-referrer` and no framing.
struct ConsoleRoutes: Sendable {
    let vault: Vault
    let sessions = ConsoleSessions()

    static let sessionCookie = "cofre_session"
    static let loginCookie = "cofre_login"
    static let langCookie = "cofre_lang"
    static let securityHeaders: HTTPFields = [
        .contentSecurityPolicy: "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
        HTTPField.Name("X-Frame-Options")!: "DENY",
        .cacheControl: "no-store",
    ]

    // MARK: the request's context

    struct Visit {
        let request: Request
        let context: CofreRequestContext
        let lang: Lang
        let setLang: Bool
        let path: String
        var query: [String: String]
        var secure: Bool
    }

    func visit(_ request: Request, _ context: CofreRequestContext) -> Visit {
        var query: [String: String] = [:]
        for (k, v) in request.uri.queryParameters { query[String(k)] = String(v) }
        let chosen = query["lang"].flatMap(Lang.init(rawValue:))
        let lang = chosen ?? Self.cookies(request)[Self.langCookie].flatMap(Lang.init(rawValue:)) ?? .pt
        query["lang"] = nil
        // Behind TLS: a proxy that terminates it says so (a header that can only add `Secure`).
        let proto = request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased()
        let forwarded = request.headers[HTTPField.Name("Forwarded")!]?.lowercased().contains("proto=https") ?? false
        return Visit(request: request, context: context, lang: lang, setLang: chosen != nil, path: request.uri.path, query: query,
                     secure: proto == "https" || forwarded || request.uri.scheme == .https)
    }

    static func cookies(_ request: Request) -> [String: String] {
        var out: [String: String] = [:]
        for header in request.headers[values: .cookie] {
            for part in header.split(separator: ";") {
                let kv = part.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { continue }
                out[kv[0].trimmingCharacters(in: .whitespaces)] = kv[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return out
    }

    static func cookie(_ name: String, _ value: String, _ v: Visit, maxAge: Int? = nil) -> String {
        var c = "\(name)=\(value); Path=/console; HttpOnly; SameSite=Strict"
        if let maxAge { c += "; Max-Age=\(maxAge)" }
        if v.secure { c += "; Secure" }
        return c
    }

    func html(_ v: Visit, status: HTTPResponse.Status = .ok, _ page: String, cookies: [String] = []) -> Response {
        var headers = Self.securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        for c in cookies { headers.append(HTTPField(name: .setCookie, value: c)) }
        if v.setLang { headers.append(HTTPField(name: .setCookie, value: Self.cookie(Self.langCookie, v.lang.rawValue, v, maxAge: 31_536_000))) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: page)))
    }

    func redirect(_ v: Visit, to location: String, cookies: [String] = []) -> Response {
        var headers = Self.securityHeaders
        headers[.location] = location
        for c in cookies { headers.append(HTTPField(name: .setCookie, value: c)) }
        if v.setLang { headers.append(HTTPField(name: .setCookie, value: Self.cookie(Self.langCookie, v.lang.rawValue, v, maxAge: 31_536_000))) }
        return Response(status: .seeOther, headers: headers)
    }

    func download(_ response: Response, filename: String) -> Response {
        var r = response
        for field in Self.securityHeaders { r.headers[field.name] = field.value }
        r.headers[.contentDisposition] = "attachment; filename=\"\(filename)\""
        return r
    }

    /// A urlencoded form body (at most 64 KiB).
    static func form(_ request: Request, _ context: CofreRequestContext) async throws -> [String: String] {
        var request = request
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: 64 * 1024) } catch { throw VaultError(.payloadTooLarge, .bodyTooLarge, "the form is too large") }
        var out: [String: String] = [:]
        for pair in String(buffer: buffer).split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { (String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding) ?? "" }
            guard let k = kv.first else { continue }
            out[decode(k)] = kv.count > 1 ? decode(kv[1]) : ""
        }
        return out
    }

    func errorPage(_ v: Visit, _ session: ConsoleSessions.Session?, status: HTTPResponse.Status, message: String) -> Response {
        let page = Page(lang: v.lang, title: v.lang.t("error"), principal: session?.principal, csrf: session?.csrf, path: v.path)
        return html(v, status: status, page.render("<p class=\"error\" id=\"error\">\(HTML.esc(message))</p><p><a href=\"/console/\">\(HTML.esc(v.lang.t("back")))</a></p>"))
    }

    /// Runs a page for a signed-in DPO or auditor: no session is a redirect to the sign-in page; a
    /// session of another role is 403; a vault error is an HTML page with the API's status and message.
    func signedIn(_ roles: Set<Role>, _ action: AuditAction, _ request: Request, _ context: CofreRequestContext,
                  _ body: @escaping @Sendable (Visit, ConsoleSessions.Session) async throws -> Response) async throws -> Response {
        let v = visit(request, context)
        guard let session = sessions.session(Self.cookies(request)[Self.sessionCookie], now: vault.now) else {
            if request.method == .get { return redirect(v, to: "/console/login?expired=1") }
            return errorPage(v, nil, status: .unauthorized, message: v.lang.t("login.expired"))
        }
        // A key revoked since sign-in ends its sessions now, not 30 minutes later.
        guard await vault.credentialIsLive(session.principal) else {
            sessions.close(Self.cookies(request)[Self.sessionCookie])
            if request.method == .get { return redirect(v, to: "/console/login?expired=1", cookies: [Self.cookie(Self.sessionCookie, "", v, maxAge: 0)]) }
            return errorPage(v, nil, status: .unauthorized, message: v.lang.t("login.expired"))
        }
        guard roles.contains(session.principal.role) else {
            // Refused and audited as the API refuses the same use case to this role.
            try await vault.recordConsole(action, principal: session.principal, allowed: false, code: .forbidden, requestID: context.requestID)
            return errorPage(v, session, status: .forbidden, message: v.lang.t("role.wrong"))
        }
        do {
            return try await body(v, session)
        } catch let e as VaultError {
            return errorPage(v, session, status: ErrorMiddleware.status(e.kind), message: "\(e.code.rawValue): \(e.message)")
        }
    }

    /// The form's CSRF token must be the session's (constant-time comparison).
    func checkCSRF(_ form: [String: String], _ session: ConsoleSessions.Session) -> Bool {
        guard let given = form["csrf"] else { return false }
        return Digest.constantTimeEquals(Array(given.utf8), Array(session.csrf.utf8))
    }

    func page(_ v: Visit, _ s: ConsoleSessions.Session, _ title: String, _ body: String, status: HTTPResponse.Status = .ok) -> Response {
        html(v, status: status, Page(lang: v.lang, title: title, principal: s.principal, csrf: s.csrf, path: v.path).render(body))
    }

    // MARK: routes

    func register(on routes: RouteRecorder) {
        routes.get("/console/static/console.css") { _, _ in Self.asset(PackageResources.console_css, type: "text/css; charset=utf-8") }
        routes.get("/console/static/console.js") { _, _ in Self.asset(PackageResources.console_js, type: "text/javascript; charset=utf-8") }
        routes.get("/console") { request, context in
            let v = visit(request, context)
            guard let s = sessions.session(Self.cookies(request)[Self.sessionCookie], now: vault.now) else { return redirect(v, to: "/console/login") }
            return redirect(v, to: s.principal.role == .dpo ? "/console/subjects" : "/console/audit/events")
        }
        registerLogin(on: routes)
        registerAuditor(on: routes)
        registerDPO(on: routes)
    }

    static func asset(_ bytes: [UInt8], type: String) -> Response {
        var headers = securityHeaders
        headers[.contentType] = type
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    func loginPage(_ v: Visit, status: HTTPResponse.Status = .ok, message: String? = nil) throws -> Response {
        let token = Identifiers.base32(try Random.bytes(20))
        var body = ""
        if let message { body += "<p class=\"error\" id=\"error\">\(HTML.esc(message))</p>" }
        body += """
            <form method="post" action="/console/login" class="card" id="login-form">
            <input type="hidden" name="csrf" value="\(token)">
            <label for="key">\(HTML.esc(v.lang.t("key")))</label>
            <input type="password" id="key" name="key" autocomplete="off" required>
            <button type="submit" id="login">\(HTML.esc(v.lang.t("login")))</button>
            <p class="help">\(HTML.esc(v.lang.t("login.help")))</p>
            </form>
            """
        // Double submit: the form's token must match this cookie's.
        return html(v, status: status, Page(lang: v.lang, title: v.lang.t("title"), path: v.path).render(body),
                    cookies: [Self.cookie(Self.loginCookie, token, v, maxAge: 3600)])
    }

    func registerLogin(on routes: RouteRecorder) {
        routes.get("/console/login") { request, context in
            let v = visit(request, context)
            if sessions.session(Self.cookies(request)[Self.sessionCookie], now: vault.now) != nil { return redirect(v, to: "/console/") }
            return try loginPage(v, message: v.query["expired"] == nil ? nil : v.lang.t("login.expired"))
        }
        routes.post("/console/login") { request, context in
            let v = visit(request, context)
            // Counted per connection address and, behind a proxy, the client it names: a forged
            // X-Forwarded-For only gives its sender a budget of its own (keys are 256 random bits).
            let forwardedFor = request.headers[HTTPField.Name("X-Forwarded-For")!]?.split(separator: ",").first
                .map { String($0.trimmingCharacters(in: .whitespaces).prefix(64)) }
            let client = (context.remoteIP ?? "unknown") + "|" + (forwardedFor ?? "")
            @Sendable func refused(_ principal: Principal?, _ code: ErrorCode) async throws {
                let (record, suppressed) = sessions.auditRefusal(now: vault.now)
                guard record else { return }
                try await vault.recordConsole(.consoleLogin, principal: principal, allowed: false, code: code,
                                              target: suppressed > 0 ? "suppressed_\(suppressed)" : nil, requestID: context.requestID)
            }
            guard sessions.allowLogin(from: client, now: vault.now) else {
                try await refused(nil, .rateLimited)
                var r = try loginPage(v, status: .tooManyRequests, message: v.lang.t("login.rate"))
                r.headers[.retryAfter] = "60"
                return r
            }
            let form = try await Self.form(request, context)
            let expected = Self.cookies(request)[Self.loginCookie] ?? ""
            guard let given = form["csrf"], !expected.isEmpty, Digest.constantTimeEquals(Array(given.utf8), Array(expected.utf8)) else {
                return try loginPage(v, status: .forbidden, message: v.lang.t("csrf"))
            }
            let principal: Principal
            do {
                principal = try await vault.authenticate(bearer: form["key"]?.trimmingCharacters(in: .whitespaces))
            } catch let e as VaultError where e.kind == .unauthenticated {
                try await refused(nil, .unauthenticated)
                return try loginPage(v, status: .unauthorized, message: v.lang.t("login.bad"))
            } catch let e as VaultError {
                return try loginPage(v, status: ErrorMiddleware.status(e.kind), message: "\(e.code.rawValue): \(e.message)")
            }
            guard principal.role == .dpo || principal.role == .auditor else {
                try await refused(principal, .forbidden)
                return try loginPage(v, status: .forbidden, message: v.lang.t("login.role"))
            }
            try await vault.recordConsole(.consoleLogin, principal: principal, allowed: true, requestID: context.requestID)
            let (id, _) = try sessions.open(principal, now: vault.now)
            return redirect(v, to: "/console/", cookies: [Self.cookie(Self.sessionCookie, id, v), Self.cookie(Self.loginCookie, "", v, maxAge: 0)])
        }
        routes.post("/console/logout") { request, context in
            try await signedIn([.dpo, .auditor], .consoleLogout, request, context) { v, s in
                let form = try await Self.form(request, context)
                guard checkCSRF(form, s) else { return errorPage(v, s, status: .forbidden, message: v.lang.t("csrf")) }
                sessions.close(Self.cookies(request)[Self.sessionCookie])
                try await vault.recordConsole(.consoleLogout, principal: s.principal, allowed: true, requestID: context.requestID)
                return redirect(v, to: "/console/login", cookies: [Self.cookie(Self.sessionCookie, "", v, maxAge: 0)])
            }
        }
    }
}
