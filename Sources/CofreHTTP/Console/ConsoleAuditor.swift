import CofreAPI
import CofreCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The auditor's pages: events with the API's filters and paging, charts from the aggregates, verify.
extension ConsoleRoutes {
    func registerAuditor(on routes: RouteRecorder) {
        routes.get("/console/audit/events") { request, context in
            try await signedIn([.auditor], .auditRead, request, context) { v, s in
                let q = v.query
                var query = AuditQuery(subject: q["subject"].nonEmpty, service: q["service"].nonEmpty, purpose: q["purpose"].nonEmpty,
                                       action: q["action"].nonEmpty, ref: q["ref"].nonEmpty)
                if let d = q["decision"].nonEmpty {
                    guard let decision = AuditDraft.Decision(rawValue: d) else { throw VaultError.badRequest("'decision' must be allow or deny") }
                    query.decision = decision
                }
                query.since = try q["since"].nonEmpty.map { try AuditAPI.date($0, "since") }
                query.until = try q["until"].nonEmpty.map { try AuditAPI.date($0, "until") }
                query.after = try q["after"].nonEmpty.map { try AuditAPI.integer($0, "after") }
                query.through = try q["through"].nonEmpty.map { try AuditAPI.integer($0, "through") }
                query.limit = try q["limit"].nonEmpty.map { Int(try AuditAPI.integer($0, "limit")) } ?? 50
                let found = try await vault.auditEvents(s.principal, query: query, token: q["token"].nonEmpty, requestID: context.requestID)
                let t = v.lang
                var body = try await bulkBanner(v, s, context)
                body += "<form method=\"get\" action=\"/console/audit/events\" class=\"filters\" id=\"filters\">"
                for key in ["subject", "service", "purpose", "action", "token", "ref"] {
                    body += "<label>\(HTML.esc(t.t(key)))<input name=\"\(key)\" id=\"f-\(key)\" value=\"\(HTML.esc(q[key] ?? ""))\"></label>"
                }
                body += "<label>\(HTML.esc(t.t("decision")))<select name=\"decision\" id=\"f-decision\"><option value=\"\">\(HTML.esc(t.t("any")))</option>"
                for d in ["allow", "deny"] { body += "<option\(q["decision"] == d ? " selected" : "")>\(d)</option>" }
                body += "</select></label>"
                for key in ["since", "until"] {
                    body += "<label>\(HTML.esc(t.t(key)))<input name=\"\(key)\" id=\"f-\(key)\" placeholder=\"2026-11-29T00:00:00Z\" value=\"\(HTML.esc(q[key] ?? ""))\"></label>"
                }
                body += "<label>\(HTML.esc(t.t("limit")))<input name=\"limit\" id=\"f-limit\" value=\"\(query.limit)\" inputmode=\"numeric\"></label>"
                body += "<button type=\"submit\" id=\"apply\">\(HTML.esc(t.t("filter")))</button></form>"
                body += eventsTable(found.events, t)
                if let next = found.next {
                    var items: [(String, String?)] = ["subject", "service", "purpose", "action", "token", "ref", "decision", "since", "until", "limit"]
                        .map { ($0, q[$0].nonEmpty) }
                    items += [("after", String(next)), ("through", q["through"].nonEmpty ?? String(found.head))]
                    body += "<p><a id=\"next\" href=\"/console/audit/events\(HTML.esc(HTML.query(items)))\">\(HTML.esc(t.t("next"))) →</a></p>"
                }
                return page(v, s, t.t("events"), body)
            }
        }
        routes.get("/console/audit/charts") { request, context in
            try await signedIn([.auditor], .auditStats, request, context) { v, s in
                let t = v.lang
                let bucket = v.query["bucket"].nonEmpty ?? "day"
                let until = try v.query["until"].nonEmpty.map { try AuditAPI.date($0, "until") } ?? vault.now.addingTimeInterval(1)
                let since = try v.query["since"].nonEmpty.map { try AuditAPI.date($0, "since") }
                    ?? until.addingTimeInterval(bucket == "hour" ? -86400 : -14 * 86400)
                let stats = try await vault.auditStats(s.principal, since: since, until: until, bucket: bucket, requestID: context.requestID)
                var body = "<form method=\"get\" action=\"/console/audit/charts\" class=\"filters\" id=\"chart-filters\">"
                body += "<label>\(HTML.esc(t.t("since")))<input name=\"since\" id=\"c-since\" value=\"\(HTML.esc(WireJSON.formatDate(since)))\"></label>"
                body += "<label>\(HTML.esc(t.t("until")))<input name=\"until\" id=\"c-until\" value=\"\(HTML.esc(WireJSON.formatDate(until)))\"></label>"
                body += "<label>\(HTML.esc(t.t("bucket")))<select name=\"bucket\" id=\"c-bucket\">"
                for b in ["hour", "day"] { body += "<option value=\"\(b)\"\(b == bucket ? " selected" : "")>\(HTML.esc(t.t(b)))</option>" }
                body += "</select></label><button type=\"submit\" id=\"draw\">\(HTML.esc(t.t("filter")))</button></form>"
                let label: (Date) -> String = { d in
                    let f = DateFormatter()
                    f.locale = Locale(identifier: "en_US_POSIX")
                    f.timeZone = TimeZone(identifier: "UTC")
                    f.dateFormat = bucket == "hour" ? "MM-dd HH:00" : "yyyy-MM-dd"
                    return f.string(from: d)
                }
                let purposes = stats.totals.byPurpose.keys.sorted()
                let codes = stats.totals.byCode.keys.sorted()
                body += "<section><h2>\(HTML.esc(t.t("chart.purpose")))</h2>"
                body += Chart.stacked(id: "chart-purpose", title: t.t("chart.purpose"), buckets: stats.buckets.map { b in
                    (label(b.start), b.byPurpose.mapValues { $0.allow + $0.deny })
                }, keys: purposes)
                body += "</section><section><h2>\(HTML.esc(t.t("chart.code")))</h2>"
                body += Chart.stacked(id: "chart-code", title: t.t("chart.code"), buckets: stats.buckets.map { (label($0.start), $0.byCode) }, keys: codes)
                body += "</section><section><h2>\(HTML.esc(t.t("chart.service")))</h2>"
                body += Chart.bars(id: "chart-service", title: t.t("chart.service"),
                                   values: stats.totals.revealsByService.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { ($0.key, $0.value) })
                body += "</section><section><h2>\(HTML.esc(t.t("totals")))</h2><table id=\"totals\"><thead><tr><th>\(HTML.esc(t.t("purpose")))</th>"
                    + "<th>\(HTML.esc(t.t("allowed")))</th><th>\(HTML.esc(t.t("denied")))</th></tr></thead><tbody>"
                for p in purposes {
                    let d = stats.totals.byPurpose[p] ?? .init()
                    body += "<tr data-purpose=\"\(HTML.esc(p))\"><td>\(HTML.esc(p))</td><td class=\"allow\">\(d.allow)</td><td class=\"deny\">\(d.deny)</td></tr>"
                }
                body += "</tbody></table><table id=\"codes\"><thead><tr><th>\(HTML.esc(t.t("code")))</th><th>n</th></tr></thead><tbody>"
                for c in codes { body += "<tr data-code=\"\(HTML.esc(c))\"><td>\(HTML.esc(c))</td><td>\(stats.totals.byCode[c] ?? 0)</td></tr>" }
                body += "</tbody></table></section>"
                return page(v, s, t.t("charts"), body)
            }
        }
        routes.get("/console/audit/verify") { request, context in
            try await signedIn([.auditor], .auditVerify, request, context) { v, s in
                let t = v.lang
                let r = try await vault.verifyAudit(s.principal, checkpoint: nil, requestID: context.requestID)
                var body = try await bulkBanner(v, s, context)
                if r.ok {
                    body += "<p class=\"ok\" id=\"verify-status\" data-ok=\"true\">\(HTML.esc(t.t("verify.ok"))) \(r.events) \(HTML.esc(t.t("verify.events"))).</p>"
                } else {
                    body += "<p class=\"error\" id=\"verify-status\" data-ok=\"false\">\(HTML.esc(t.t("verify.bad"))) (\(r.events) \(HTML.esc(t.t("verify.events"))))</p>"
                    body += "<table id=\"broken\"><thead><tr><th>from</th><th>to</th><th>reason</th></tr></thead><tbody>"
                    for b in r.broken { body += "<tr><td>\(b.from)</td><td>\(b.to)</td><td>\(HTML.esc(b.reason))</td></tr>" }
                    body += "</tbody></table>"
                }
                body += "<p><a id=\"checkpoint\" href=\"/console/audit/checkpoint.json\">\(HTML.esc(t.t("checkpoint")))</a></p>"
                return page(v, s, t.t("verify"), body)
            }
        }
        routes.get("/console/audit/checkpoint.json") { request, context in
            try await signedIn([.auditor], .auditCheckpoint, request, context) { _, s in
                let c = try await vault.checkpoint(s.principal, requestID: context.requestID)
                return download(try VaultAPI.json(c), filename: "cofre-checkpoint-\(c.seq).json")
            }
        }
    }

    /// The newest `bulk_reveal` alerts, highlighted above the auditor's pages.
    func bulkBanner(_ v: Visit, _ s: ConsoleSessions.Session, _ context: CofreRequestContext) async throws -> String {
        // The newest 20 of the last 7 days.
        let alerts = try await vault.auditEvents(s.principal, query: AuditQuery(action: AuditAction.bulkReveal.rawValue,
                                                                                since: vault.now.addingTimeInterval(-7 * 86400), limit: 20,
                                                                                newestFirst: true),
                                                 token: nil, requestID: context.requestID).events
        guard !alerts.isEmpty else { return "<p class=\"quiet\" id=\"bulk-none\">\(HTML.esc(v.lang.t("bulk.none")))</p>" }
        var out = "<div class=\"warn\" id=\"bulk-alerts\"><h2>\(HTML.esc(v.lang.t("bulk")))</h2><ul>"
        for a in alerts {
            out += "<li>\(HTML.esc(a.draft.time)) — <strong>\(HTML.esc(a.draft.service))</strong> \(HTML.esc(a.draft.target ?? ""))</li>"
        }
        return out + "</ul></div>"
    }

    func eventsTable(_ events: [AuditEvent], _ t: Lang) -> String {
        guard !events.isEmpty else { return "<p id=\"no-events\">\(HTML.esc(t.t("none")))</p>" }
        var out = "<table id=\"events\"><thead><tr><th>seq</th><th>\(HTML.esc(t.t("time")))</th><th>\(HTML.esc(t.t("service")))</th>"
            + "<th>\(HTML.esc(t.t("action")))</th><th>\(HTML.esc(t.t("subject")))</th><th>\(HTML.esc(t.t("fields")))</th>"
            + "<th>\(HTML.esc(t.t("purpose")))</th><th>\(HTML.esc(t.t("decision")))</th></tr></thead><tbody>"
        for e in events {
            let d = e.draft
            let warn = d.action == AuditAction.bulkReveal.rawValue ? " class=\"warn\"" : ""
            out += "<tr\(warn) data-seq=\"\(e.seq)\" data-decision=\"\(d.decision.rawValue)\"><td>\(e.seq)</td><td>\(HTML.esc(d.time))</td>"
                + "<td>\(HTML.esc(d.service))</td><td>\(HTML.esc(d.action))</td><td>\(HTML.esc(d.subject ?? "—"))</td>"
                + "<td>\(HTML.esc(d.fields.joined(separator: ", ")))</td><td>\(HTML.esc(d.purpose ?? "—"))</td>"
                + "<td class=\"\(d.decision.rawValue)\">\(d.decision.rawValue)\(d.code.map { " (\(HTML.esc($0)))" } ?? "")</td></tr>"
        }
        return out + "</tbody></table>"
    }
}

extension Optional where Wrapped == String {
    /// The value unless it is nil or empty (an empty form field is no filter).
    var nonEmpty: String? {
        guard let s = self?.trimmingCharacters(in: .whitespaces), !s.isEmpty else { return nil }
        return s
    }
}
