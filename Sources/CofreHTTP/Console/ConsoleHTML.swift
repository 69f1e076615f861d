import CofreAPI
import CofreCore
import Foundation

/// HTML for the console: every text from the vault is escaped; no inline script or style anywhere
/// (the Content-Security-Policy forbids both), charts are SVG drawn on the server.
enum HTML {
    static func esc(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Control characters never reach the page.
                if c.value < 0x20 && c != "\n" && c != "\t" { out += "\u{FFFD}" } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }

    static func esc(_ d: Date?) -> String { d.map { esc(WireJSON.formatDate($0)) } ?? "—" }

    /// A query string, percent-encoded.
    static func query(_ items: [(String, String?)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let parts = items.compactMap { k, v in v.map { "\(k)=\($0.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" } }
        return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
    }
}

/// The console's two languages: Portuguese (Brazil) by default, English on request.
enum Lang: String, Sendable {
    case pt = "pt-BR", en = "en"

    func t(_ key: String) -> String {
        guard let pair = Self.labels[key] else { return key }
        return self == .pt ? pair.0 : pair.1
    }

    static let labels: [String: (String, String)] = [
        "title": ("Console do Cofre", "Cofre console"),
        "login": ("Entrar", "Sign in"),
        "logout": ("Sair", "Sign out"),
        "key": ("Chave do papel (DPO ou auditor)", "Role key (DPO or auditor)"),
        "login.help": ("Cole a chave emitida por `cofre service issue` para o DPO ou para um auditor. Chaves de serviços não entram no console.",
                       "Paste the key `cofre service issue` gave the DPO or an auditor. Service keys cannot open the console."),
        "login.bad": ("Chave inválida ou revogada.", "Unknown or revoked key."),
        "login.role": ("Esta chave é de um serviço: o console é só para o DPO e auditores.", "This is a service's key: the console is for the DPO and auditors only."),
        "login.rate": ("Muitas tentativas. Tente de novo em um minuto.", "Too many attempts. Try again in a minute."),
        "login.expired": ("Sessão encerrada. Entre de novo.", "Your session ended. Sign in again."),
        "role.wrong": ("Esta página não é para o seu papel.", "This page is not for your role."),
        "token": ("Token (encontra seus eventos pela referência)", "Token (finds its events by reference)"),
        "ref": ("Referência", "Reference"),
        "csrf": ("Formulário inválido ou expirado (CSRF). Recarregue a página.", "Invalid or expired form (CSRF). Reload the page."),
        "events": ("Eventos", "Events"),
        "charts": ("Gráficos", "Charts"),
        "verify": ("Verificação", "Verification"),
        "subjects": ("Titulares", "Subjects"),
        "deliveries": ("Entregas", "Deliveries"),
        "incident": ("Incidente", "Incident"),
        "filter": ("Filtrar", "Filter"),
        "subject": ("Titular", "Subject"),
        "service": ("Serviço", "Service"),
        "purpose": ("Finalidade", "Purpose"),
        "action": ("Ação", "Action"),
        "decision": ("Decisão", "Decision"),
        "code": ("Código", "Code"),
        "since": ("Desde", "Since"),
        "until": ("Até", "Until"),
        "limit": ("Limite", "Limit"),
        "time": ("Hora", "Time"),
        "fields": ("Campos", "Fields"),
        "any": ("qualquer", "any"),
        "next": ("Próxima página", "Next page"),
        "none": ("Nenhum evento.", "No events."),
        "bulk": ("Alertas de revelação em massa", "Bulk reveal alerts"),
        "bulk.none": ("Nenhum alerta de revelação em massa.", "No bulk reveal alerts."),
        "chart.purpose": ("Decisões ao longo do tempo, por finalidade", "Decisions over time, by purpose"),
        "chart.code": ("Negativas ao longo do tempo, por código", "Denials over time, by code"),
        "chart.service": ("Revelações por serviço", "Reveals by service"),
        "bucket": ("Intervalo", "Bucket"),
        "hour": ("hora", "hour"),
        "day": ("dia", "day"),
        "allowed": ("permitidas", "allowed"),
        "denied": ("negadas", "denied"),
        "totals": ("Totais", "Totals"),
        "verify.ok": ("A cadeia de auditoria está íntegra.", "The audit chain is intact."),
        "verify.bad": ("A cadeia de auditoria está quebrada nestes trechos:", "The audit chain is broken in these ranges:"),
        "verify.events": ("eventos verificados", "events checked"),
        "checkpoint": ("Baixar um checkpoint (guarde-o fora do cofre)", "Download a checkpoint (keep it outside the vault)"),
        "find": ("Buscar titular", "Find a subject"),
        "find.by": ("Por", "By"),
        "find.id": ("id do titular (sub_…)", "subject id (sub_…)"),
        "find.ref": ("referência externa", "external reference"),
        "find.value": ("valor de", "value of"),
        "find.none": ("Nenhum titular encontrado.", "No subject found."),
        "status": ("Situação", "Status"),
        "type": ("Tipo", "Type"),
        "version": ("Versão", "Version"),
        "stored": ("Gravado", "Stored"),
        "retained": ("Retido para", "Retained for"),
        "consents": ("Consentimentos e oposições", "Consents and objections"),
        "basis": ("Base legal", "Legal basis"),
        "consent": ("Consentimento", "Consent"),
        "objection": ("Oposição", "Objection"),
        "history": ("Histórico", "History"),
        "contacts": ("Tentativas de contato", "Contact attempts"),
        "contacts.none": ("Nenhuma tentativa de contato registrada.", "No contact attempt recorded."),
        "access": ("Histórico de acesso", "Access history"),
        "access.more": ("Mostrando os primeiros eventos; a exportação traz todos.", "Showing the first events; the export holds them all."),
        "export": ("Baixar a exportação completa (contém dados pessoais)", "Download the full export (contains personal data)"),
        "erase": ("Eliminar o titular", "Erase the subject"),
        "erase.help": ("A eliminação destrói as chaves de todo campo sem retenção legal e não pode ser desfeita. Digite o id do titular para confirmar.",
                       "Erasure destroys the keys of every field no legal retention covers and cannot be undone. Type the subject id to confirm."),
        "reason": ("Motivo (sem dados pessoais)", "Reason (no personal data)"),
        "ticket": ("Chamado", "Ticket"),
        "confirm": ("Confirme digitando o id do titular", "Confirm by typing the subject id"),
        "confirm.bad": ("A confirmação não confere com o id do titular; nada foi eliminado.", "The confirmation does not match the subject id; nothing was erased."),
        "receipt": ("Recibo de eliminação", "Erasure receipt"),
        "receipt.download": ("Baixar o recibo (JSON)", "Download the receipt (JSON)"),
        "outcome": ("Resultado", "Outcome"),
        "retry": ("Tentar de novo", "Retry"),
        "tries": ("Tentativas", "Tries"),
        "last": ("Última", "Last"),
        "deliveries.none": ("Nenhuma entrega.", "No deliveries."),
        "incident.help": ("Quais titulares e campos um serviço leu numa janela (LGPD Art. 48). O prazo de comunicação à ANPD é de três dias úteis.",
                          "Which subjects and fields a service read in a window (LGPD Art. 48). The ANPD must be told within three business days."),
        "detected": ("Detectado em", "Detected at"),
        "format": ("Formato", "Format"),
        "download": ("Baixar", "Download"),
        "error": ("Erro", "Error"),
        "back": ("Voltar", "Back"),
        "lang": ("English", "Português"),
        "signed.as": ("Conectado como", "Signed in as"),
    ]
}

/// The page frame: header with the role's navigation, the language switch and sign-out.
struct Page {
    let lang: Lang
    let title: String
    var principal: Principal?
    var csrf: String?
    var path: String

    func render(_ body: String) -> String {
        let other: Lang = lang == .pt ? .en : .pt
        var nav = ""
        if let p = principal {
            let links: [(String, String)] = switch p.role {
            case .auditor: [("/console/audit/events", "events"), ("/console/audit/charts", "charts"), ("/console/audit/verify", "verify")]
            case .dpo: [("/console/subjects", "subjects"), ("/console/deliveries", "deliveries"), ("/console/incident", "incident")]
            case .service: []
            }
            nav = "<nav>" + links.map { href, key in
                "<a href=\"\(href)\"\(path.hasPrefix(href) ? " class=\"here\"" : "")>\(HTML.esc(lang.t(key)))</a>"
            }.joined() + "</nav>"
            nav += "<span class=\"who\">\(HTML.esc(lang.t("signed.as"))) <strong id=\"who\">\(HTML.esc(p.name))</strong> (\(HTML.esc(p.role.rawValue)))</span>"
            if let csrf {
                nav += "<form method=\"post\" action=\"/console/logout\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"\(HTML.esc(csrf))\">"
                    + "<button type=\"submit\" id=\"logout\">\(HTML.esc(lang.t("logout")))</button></form>"
            }
        }
        return """
            <!doctype html>
            <html lang="\(lang.rawValue)">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(HTML.esc(title)) — Cofre</title>
            <link rel="icon" href="data:,">
            <link rel="stylesheet" href="/console/static/console.css">
            <script src="/console/static/console.js" defer></script>
            </head>
            <body>
            <header><a class="brand" href="/console/">Cofre</a>\(nav)<a class="lang" id="lang" href="?lang=\(other.rawValue)">\(HTML.esc(lang.t("lang")))</a></header>
            <main>
            <h1>\(HTML.esc(title))</h1>
            \(body)
            </main>
            </body>
            </html>
            """
    }
}

/// Server-drawn SVG charts, coloured by CSS classes (`c0`…`c7` in console.css).
enum Chart {
    static let palette = 8

    /// Stacked bars over time: one bar per bucket, one segment per series key.
    static func stacked(id: String, title: String, buckets: [(label: String, values: [String: Int])], keys: [String]) -> String {
        let width = 760.0, height = 220.0, left = 40.0, bottom = 24.0
        let totals = buckets.map { $0.values.values.reduce(0, +) }
        let top = max(totals.max() ?? 0, 1)
        let slot = (width - left) / Double(max(buckets.count, 1))
        let barWidth = max(slot * 0.8, 1)
        var svg = "<svg id=\"\(id)\" class=\"chart\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" data-total=\"\(totals.reduce(0, +))\">"
        svg += "<title>\(HTML.esc(title))</title>"
        svg += "<text x=\"0\" y=\"12\" class=\"axis\">\(top)</text><text x=\"0\" y=\"\(Int(height - bottom))\" class=\"axis\">0</text>"
        for (i, b) in buckets.enumerated() {
            var y = height - bottom
            for (k, key) in keys.enumerated() {
                let n = b.values[key] ?? 0
                guard n > 0 else { continue }
                let h = (height - bottom - 8) * Double(n) / Double(top)
                y -= h
                svg += "<rect x=\"\(fmt(left + Double(i) * slot))\" y=\"\(fmt(y))\" width=\"\(fmt(barWidth))\" height=\"\(fmt(h))\" class=\"c\(k % palette)\">"
                    + "<title>\(HTML.esc(b.label)) · \(HTML.esc(key)): \(n)</title></rect>"
            }
        }
        if let first = buckets.first, let last = buckets.last {
            svg += "<text x=\"\(Int(left))\" y=\"\(Int(height - 6))\" class=\"axis\">\(HTML.esc(first.label))</text>"
            svg += "<text x=\"\(Int(width))\" y=\"\(Int(height - 6))\" class=\"axis end\">\(HTML.esc(last.label))</text>"
        }
        return svg + "</svg>" + legend(keys)
    }

    /// Horizontal bars, one per key, with its value written beside it.
    static func bars(id: String, title: String, values: [(String, Int)]) -> String {
        let rowHeight = 22.0, width = 760.0, labelWidth = 180.0
        let top = max(values.map(\.1).max() ?? 0, 1)
        let height = max(Double(values.count) * rowHeight, rowHeight)
        var svg = "<svg id=\"\(id)\" class=\"chart\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" data-total=\"\(values.map(\.1).reduce(0, +))\">"
        svg += "<title>\(HTML.esc(title))</title>"
        for (i, (key, n)) in values.enumerated() {
            let y = Double(i) * rowHeight
            let w = (width - labelWidth - 60) * Double(n) / Double(top)
            svg += "<text x=\"0\" y=\"\(fmt(y + 15))\" class=\"label\">\(HTML.esc(key))</text>"
            svg += "<rect x=\"\(Int(labelWidth))\" y=\"\(fmt(y + 3))\" width=\"\(fmt(max(w, 1)))\" height=\"16\" class=\"c\(i % palette)\"><title>\(HTML.esc(key)): \(n)</title></rect>"
            svg += "<text x=\"\(fmt(labelWidth + max(w, 1) + 6))\" y=\"\(fmt(y + 15))\" class=\"value\" data-key=\"\(HTML.esc(key))\">\(n)</text>"
        }
        return svg + "</svg>"
    }

    static func legend(_ keys: [String]) -> String {
        "<ul class=\"legend\">" + keys.enumerated().map { "<li><span class=\"swatch c\($0.offset % palette)\"></span>\(HTML.esc($0.element))</li>" }.joined() + "</ul>"
    }

    static func fmt(_ d: Double) -> String { String(format: "%.1f", d) }
}
