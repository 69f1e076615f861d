import CofreAPI
import CofreCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The DPO's pages: find a subject, its overview (no values), export, erase with a typed confirmation,
/// deliveries to recipients and incident scope.
extension ConsoleRoutes {
    func registerDPO(on routes: RouteRecorder) {
        // The search is a POST: a CPF or an e-mail typed here must not land in a URL (history, proxies' logs).
        routes.get("/console/subjects") { request, context in
            try await signedIn([.dpo], .subjectFind, request, context) { v, s in page(v, s, v.lang.t("subjects"), searchForm(v, s, by: "id", q: "")) }
        }
        routes.post("/console/subjects") { request, context in
            try await signedIn([.dpo], .subjectFind, request, context) { v, s in
                let t = v.lang
                let form = try await Self.form(request, context)
                guard checkCSRF(form, s) else { return errorPage(v, s, status: .forbidden, message: t.t("csrf")) }
                let by = form["by"].nonEmpty ?? "id"
                var body = searchForm(v, s, by: by, q: "")
                guard let q = form["q"].nonEmpty else { return page(v, s, t.t("subjects"), body) }
                let search: Vault.SubjectSearch
                if by == "id" {
                    search = .id(q)
                } else if by == "external_ref" {
                    search = .externalRef(q)
                } else if by.hasPrefix("field:") {
                    search = .value(field: String(by.dropFirst(6)), q)
                } else {
                    throw VaultError.badRequest("'by' must be id, external_ref or field:NAME")
                }
                let found = try await vault.findSubjects(s.principal, search, requestID: context.requestID)
                if found.isEmpty {
                    body += "<p id=\"found-none\">\(HTML.esc(t.t("find.none")))</p>"
                } else {
                    body += "<ul id=\"found\">" + found.map { "<li><a href=\"/console/subjects/\(HTML.esc($0))\">\(HTML.esc($0))</a></li>" }.joined() + "</ul>"
                }
                return page(v, s, t.t("subjects"), body)
            }
        }
        routes.get("/console/subjects/:subject") { request, context in
            try await signedIn([.dpo], .subjectView, request, context) { v, s in
                let id = try context.parameters.require("subject")
                let o = try await vault.subjectOverview(s.principal, subject: id, requestID: context.requestID)
                return page(v, s, "\(v.lang.t("subject")) \(id)", overview(o, v, s))
            }
        }
        routes.get("/console/subjects/:subject/export.json") { request, context in
            try await signedIn([.dpo], .subjectExport, request, context) { _, s in
                let id = try context.parameters.require("subject")
                let export = try await vault.export(s.principal, subject: id, requestID: context.requestID)
                return download(try RightsAPI.stream(export, vault: vault), filename: "cofre-export-\(id).json")
            }
        }
        routes.get("/console/subjects/:subject/receipt.json") { request, context in
            try await signedIn([.dpo], .subjectExport, request, context) { _, s in
                let id = try context.parameters.require("subject")
                let receipt = try await vault.erasureReceipt(s.principal, subject: id, requestID: context.requestID)
                return download(try VaultAPI.json(receipt), filename: "cofre-erasure-\(id).json")
            }
        }
        routes.post("/console/subjects/:subject/erase") { request, context in
            try await signedIn([.dpo], .subjectErase, request, context) { v, s in
                let id = try context.parameters.require("subject")
                let form = try await Self.form(request, context)
                guard checkCSRF(form, s) else { return errorPage(v, s, status: .forbidden, message: v.lang.t("csrf")) }
                guard form["confirm"]?.trimmingCharacters(in: .whitespaces) == id else {
                    return errorPage(v, s, status: .unprocessableContent, message: v.lang.t("confirm.bad"))
                }
                let receipt = try await vault.erase(s.principal, subject: id, reason: form["reason"] ?? "", ticket: form["ticket"] ?? "",
                                                    requestID: context.requestID)
                return page(v, s, v.lang.t("receipt"), receiptHTML(receipt, v.lang))
            }
        }
        routes.get("/console/deliveries") { request, context in
            try await signedIn([.dpo], .deliveryRead, request, context) { v, s in
                let t = v.lang
                let status = try v.query["status"].nonEmpty.map { raw -> DeliveryStatus in
                    guard let st = DeliveryStatus(rawValue: raw) else { throw VaultError.badRequest("'status' must be pending, failed or delivered") }
                    return st
                }
                let after = try v.query["after"].nonEmpty.map { try AuditAPI.integer($0, "after") }
                let found = try await vault.deliveries(s.principal, query: DeliveryQuery(status: status, after: after, limit: 100), requestID: context.requestID)
                var body = "<form method=\"get\" action=\"/console/deliveries\" class=\"filters\"><label>\(HTML.esc(t.t("status")))<select name=\"status\" id=\"d-status\">"
                body += "<option value=\"\">\(HTML.esc(t.t("any")))</option>"
                for st in DeliveryStatus.allCases { body += "<option\(st == status ? " selected" : "")>\(st.rawValue)</option>" }
                body += "</select></label><button type=\"submit\">\(HTML.esc(t.t("filter")))</button></form>"
                if found.isEmpty {
                    body += "<p id=\"no-deliveries\">\(HTML.esc(t.t("deliveries.none")))</p>"
                } else {
                    body += "<table id=\"deliveries\"><thead><tr><th>id</th><th>\(HTML.esc(t.t("type")))</th><th>\(HTML.esc(t.t("subject")))</th>"
                        + "<th>\(HTML.esc(t.t("service")))</th><th>\(HTML.esc(t.t("status")))</th><th>\(HTML.esc(t.t("tries")))</th>"
                        + "<th>\(HTML.esc(t.t("last")))</th><th></th></tr></thead><tbody>"
                    for d in found {
                        body += "<tr class=\"\(d.status.rawValue)\"><td>\(HTML.esc(d.id))</td><td>\(d.type.rawValue)</td>"
                            + "<td><a href=\"/console/subjects/\(HTML.esc(d.subject))\">\(HTML.esc(d.subject))</a></td><td>\(HTML.esc(d.service))</td>"
                            + "<td>\(d.status.rawValue)</td><td>\(d.attempts)</td><td>\(HTML.esc(d.lastOutcome ?? "—")) \(HTML.esc(d.lastAttemptAt))</td><td>"
                        if d.status != .delivered {
                            body += "<form method=\"post\" action=\"/console/deliveries/\(HTML.esc(d.id))/retry\" class=\"inline\">"
                                + "<input type=\"hidden\" name=\"csrf\" value=\"\(HTML.esc(s.csrf))\"><button type=\"submit\">\(HTML.esc(t.t("retry")))</button></form>"
                        }
                        body += "</td></tr>"
                    }
                    body += "</tbody></table>"
                    if found.count == 100, let last = found.last {
                        body += "<p><a href=\"/console/deliveries\(HTML.esc(HTML.query([("status", status?.rawValue), ("after", String(last.seq))])))\">\(HTML.esc(t.t("next"))) →</a></p>"
                    }
                }
                return page(v, s, t.t("deliveries"), body)
            }
        }
        routes.post("/console/deliveries/:id/retry") { request, context in
            try await signedIn([.dpo], .deliveryRetry, request, context) { v, s in
                let id = try context.parameters.require("id")
                let form = try await Self.form(request, context)
                guard checkCSRF(form, s) else { return errorPage(v, s, status: .forbidden, message: v.lang.t("csrf")) }
                _ = try await vault.retryDelivery(s.principal, id: id, requestID: context.requestID)
                return redirect(v, to: "/console/deliveries")
            }
        }
        routes.get("/console/incident") { request, context in
            try await signedIn([.dpo], .incidentScope, request, context) { v, s in
                let t = v.lang
                var body = "<p>\(HTML.esc(t.t("incident.help")))</p><form method=\"get\" action=\"/console/incident/scope\" class=\"filters\" id=\"scope\">"
                body += "<label>\(HTML.esc(t.t("service")))<select name=\"service\" id=\"i-service\">"
                for name in vault.policy.services.values.filter({ $0.role == .service }).map(\.name).sorted() {
                    body += "<option>\(HTML.esc(name))</option>"
                }
                body += "</select></label>"
                for (key, label) in [("since", "since"), ("until", "until"), ("detected_at", "detected")] {
                    body += "<label>\(HTML.esc(t.t(label)))<input name=\"\(key)\" id=\"i-\(key)\" placeholder=\"2026-11-29T00:00:00Z\"\(key == "detected_at" ? "" : " required")></label>"
                }
                body += "<label>\(HTML.esc(t.t("format")))<select name=\"format\" id=\"i-format\"><option>csv</option><option>json</option></select></label>"
                body += "<button type=\"submit\" id=\"scope-download\">\(HTML.esc(t.t("download")))</button></form>"
                return page(v, s, t.t("incident"), body)
            }
        }
        routes.get("/console/incident/scope") { request, context in
            try await signedIn([.dpo], .incidentScope, request, context) { v, s in
                let q = v.query
                guard let service = q["service"].nonEmpty, let since = q["since"].nonEmpty, let until = q["until"].nonEmpty else {
                    throw VaultError.badRequest("'service', 'since' and 'until' are required")
                }
                let csv = q["format"] != "json"
                let scan = try await vault.incidentScope(s.principal, service: service, since: try AuditAPI.date(since, "since"),
                                                         until: try AuditAPI.date(until, "until"),
                                                         detectedAt: try q["detected_at"].nonEmpty.map { try AuditAPI.date($0, "detected_at") },
                                                         requestID: context.requestID)
                let name = "cofre-incident-\(service.filter { $0.isLetter || $0.isNumber || $0 == "-" }).\(csv ? "csv" : "json")"
                return download(csv ? NotifyAPI.csv(scan, vault: vault) : try NotifyAPI.json(scan, vault: vault), filename: name)
            }
        }
    }

    func searchForm(_ v: Visit, _ s: ConsoleSessions.Session, by: String, q: String) -> String {
        let t = v.lang
        let searchable = vault.policy.fields.filter(\.value.searchable).keys.sorted()
        var body = "<form method=\"post\" action=\"/console/subjects\" class=\"filters\" id=\"find\">"
        body += "<input type=\"hidden\" name=\"csrf\" value=\"\(HTML.esc(s.csrf))\">"
        body += "<label>\(HTML.esc(t.t("find.by")))<select name=\"by\" id=\"by\">"
        var options = [("id", t.t("find.id")), ("external_ref", t.t("find.ref"))]
        options += searchable.map { ("field:\($0)", "\(t.t("find.value")) \($0)") }
        for (value, label) in options { body += "<option value=\"\(HTML.esc(value))\"\(value == by ? " selected" : "")>\(HTML.esc(label))</option>" }
        body += "</select></label><label>\(HTML.esc(t.t("find")))<input name=\"q\" id=\"q\" autocomplete=\"off\" value=\"\(HTML.esc(q))\"></label>"
        return body + "<button type=\"submit\" id=\"search\">\(HTML.esc(t.t("filter")))</button></form>"
    }

    func overview(_ o: Vault.SubjectOverview, _ v: Visit, _ s: ConsoleSessions.Session) -> String {
        let t = v.lang
        let id = o.subject.id
        var body = "<p>\(HTML.esc(t.t("status"))): <strong id=\"subject-status\">\(o.subject.status.rawValue)</strong> · \(HTML.esc(o.subject.createdBy)) · \(HTML.esc(o.subject.createdAt))</p>"
        body += "<table id=\"fields\"><thead><tr><th>\(HTML.esc(t.t("fields")))</th><th>\(HTML.esc(t.t("type")))</th><th>\(HTML.esc(t.t("status")))</th>"
            + "<th>\(HTML.esc(t.t("version")))</th><th>\(HTML.esc(t.t("stored")))</th><th>\(HTML.esc(t.t("retained")))</th></tr></thead><tbody>"
        for f in o.fields {
            body += "<tr data-field=\"\(HTML.esc(f.name))\"><td>\(HTML.esc(f.name))</td><td>\(f.type.rawValue)</td><td class=\"\(f.status.rawValue)\">\(f.status.rawValue)</td>"
                + "<td>\(f.version)</td><td>\(HTML.esc(f.storedAt)) · \(HTML.esc(f.storedBy))</td>"
                + "<td>\(HTML.esc(f.retainedFor ?? "—"))\(f.retainedUntil.map { " · " + HTML.esc($0) } ?? "")</td></tr>"
        }
        body += "</tbody></table>"
        body += "<h2>\(HTML.esc(t.t("consents")))</h2><table id=\"consents\"><thead><tr><th>\(HTML.esc(t.t("purpose")))</th><th>\(HTML.esc(t.t("basis")))</th>"
            + "<th>\(HTML.esc(t.t("consent")))</th><th>\(HTML.esc(t.t("objection")))</th><th>\(HTML.esc(t.t("history")))</th></tr></thead><tbody>"
        for c in o.consents {
            let history = c.history.map { h in
                "\(HTML.esc(h.recordedAt)) \(h.kind.rawValue) \(h.status.rawValue) · \(HTML.esc(h.recordedBy))\(h.channel.map { " · " + HTML.esc($0) } ?? "")"
            }.joined(separator: "<br>")
            body += "<tr data-purpose=\"\(HTML.esc(c.purpose))\"><td>\(HTML.esc(c.purpose))</td><td>\(c.legalBasis.rawValue)</td><td>\(c.consent.rawValue)</td>"
                + "<td>\(c.objection ? "✔" : "—")</td><td>\(history.isEmpty ? "—" : history)</td></tr>"
        }
        body += "</tbody></table><h2>\(HTML.esc(t.t("contacts")))</h2>"
        if o.contactAttempts.isEmpty {
            body += "<p>\(HTML.esc(t.t("contacts.none")))</p>"
        } else {
            body += "<table id=\"contacts\"><tbody>" + o.contactAttempts.map { a in
                "<tr><td>\(HTML.esc(a.at))</td><td>\(HTML.esc(a.purpose))</td><td>\(HTML.esc(a.service))</td><td>\(HTML.esc(a.channel ?? "—"))</td></tr>"
            }.joined() + "</tbody></table>"
        }
        body += "<h2>\(HTML.esc(t.t("access")))</h2>" + eventsTable(o.history, t)
        if o.historyTruncated { body += "<p class=\"quiet\">\(HTML.esc(t.t("access.more")))</p>" }
        if let r = o.receipt {
            body += "<h2>\(HTML.esc(t.t("receipt")))</h2>" + receiptHTML(r, t)
        } else if o.subject.status != .erased {
            body += "<p><a id=\"export\" href=\"/console/subjects/\(HTML.esc(id))/export.json\">\(HTML.esc(t.t("export")))</a></p>"
            body += """
                <form method="post" action="/console/subjects/\(HTML.esc(id))/erase" class="card danger" id="erase-form" data-subject="\(HTML.esc(id))">
                <h2>\(HTML.esc(t.t("erase")))</h2>
                <p>\(HTML.esc(t.t("erase.help")))</p>
                <input type="hidden" name="csrf" value="\(HTML.esc(s.csrf))">
                <label>\(HTML.esc(t.t("reason")))<input name="reason" id="reason" required maxlength="1000"></label>
                <label>\(HTML.esc(t.t("ticket")))<input name="ticket" id="ticket" required maxlength="200"></label>
                <label>\(HTML.esc(t.t("confirm")))<input name="confirm" id="confirm" autocomplete="off" required></label>
                <button type="submit" id="erase">\(HTML.esc(t.t("erase")))</button>
                </form>
                """
        }
        return body
    }

    func receiptHTML(_ r: ErasureReceipt, _ t: Lang) -> String {
        var out = "<p id=\"receipt\">\(HTML.esc(r.subject)) · \(HTML.esc(r.erasedAt)) · \(HTML.esc(r.requestedBy)) · \(HTML.esc(t.t("ticket"))) \(HTML.esc(r.ticket))</p>"
        out += "<table id=\"receipt-fields\"><thead><tr><th>\(HTML.esc(t.t("fields")))</th><th>\(HTML.esc(t.t("outcome")))</th><th>\(HTML.esc(t.t("retained")))</th></tr></thead><tbody>"
        for f in r.fields {
            out += "<tr data-field=\"\(HTML.esc(f.field))\"><td>\(HTML.esc(f.field))</td><td>\(f.outcome.rawValue)</td>"
                + "<td>\(HTML.esc(f.purpose ?? "—"))\(f.until.map { " · " + HTML.esc($0) } ?? "")</td></tr>"
        }
        out += "</tbody></table><p><a id=\"receipt-download\" href=\"/console/subjects/\(HTML.esc(r.subject))/receipt.json\">\(HTML.esc(t.t("receipt.download")))</a></p>"
        return out
    }
}
