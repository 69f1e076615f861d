import CofreCore
import Foundation
import CofreTestSupport
import Testing

@Suite("Policy loading")
struct PolicyLoaderTests {
    @Test("the example policy of CONTRACT §2 loads as written")
    func example() throws {
        let p = try PolicyLoader.load(file: examplePolicyPath)
        #expect(p.fields.count == 8)
        #expect(p.fields["state"] == FieldSpec(type: .uf))
        #expect(p.purposes["collection-dialer"]?.contact == ContactLimit(field: "phone", maxPerDay: 1, maxPerWeek: 3))
        #expect(p.purposes["collection-call"]?.contact == nil)
        #expect(p.contactRules.states["RJ"]?.weekdays == ContactRules.Window("09:00-19:00"))
        #expect(p.contactRules.states["RJ"]?.saturday == nil)
        #expect(p.contactRules.nationalHolidays.contains("2026-12-25") && p.contactRules.nationalHolidays.contains("2027-03-26"))
        #expect(p.contactRules.stateHolidays["SP"] == ["2026-07-09", "2027-07-09"])
        #expect(p.contactRules.timezoneBy == [.stateField, .phoneDDD])
        #expect(p.fields["cpf"] == FieldSpec(type: .cpf, searchable: true))
        #expect(p.fields["name"] == FieldSpec(type: .text, searchable: false))
        #expect(p.purposes["collection-whatsapp"]?.legalBasis == .consent)
        #expect(p.purposes["collection-whatsapp"]?.channel == "whatsapp")
        #expect(p.purposes["collection-whatsapp"]?.fields["cpf"] == .masked)
        #expect(p.purposes["legal-defense"]?.retentionDays == 1825)
        #expect(p.services["crm"] == ServicePolicy(name: "crm", role: .service,
                                                  purposes: ["collection-call", "payment", "legal-defense"], tokenize: true))
        #expect(p.services["auditor"]?.role == .auditor)
    }

    static let base = """
        fields:
          name: { type: text }
          cpf: { type: cpf }
        purposes:
          p1: { legal_basis: contract, fields: { name: plain } }
        services:
          s1: { role: service, purposes: [p1] }

        """

    struct Bad: Sendable, CustomTestStringConvertible {
        let yaml: String
        let path: String
        let expected: String
        var testDescription: String { path }
    }

    @Test("an unknown or malformed entry is refused with the file, the key path and what was expected", arguments: [
        Bad(yaml: base.replacingOccurrences(of: "type: cpf", with: "type: passport"), path: "fields.cpf.type", expected: "one of text, cpf"),
        Bad(yaml: base.replacingOccurrences(of: "legal_basis: contract", with: "legal_basis: vibes"), path: "purposes.p1.legal_basis",
            expected: "one of consent, legal_obligation"),
        Bad(yaml: base.replacingOccurrences(of: "{ name: plain }", with: "{ salary: plain }"), path: "purposes.p1.fields.salary",
            expected: "a field declared under 'fields'"),
        Bad(yaml: base.replacingOccurrences(of: "{ name: plain }", with: "{ name: visible }"), path: "purposes.p1.fields.name",
            expected: "one of plain, masked, redacted"),
        Bad(yaml: base.replacingOccurrences(of: "purposes: [p1]", with: "purposes: [p2]"), path: "services.s1.purposes[0]",
            expected: "a purpose declared under 'purposes'"),
        Bad(yaml: base.replacingOccurrences(of: "role: service", with: "role: admin"), path: "services.s1.role",
            expected: "one of service, dpo, auditor"),
        Bad(yaml: base + "extras: {}\n", path: "extras", expected: "one of fields, purposes, services"),
        Bad(yaml: base.replacingOccurrences(of: "{ type: text }", with: "{ type: text, secret: true }"), path: "fields.name.secret",
            expected: "one of type, searchable"),
        Bad(yaml: base.replacingOccurrences(of: "fields: { name: plain } }", with: "fields: { name: plain }, retention_days: -3 }"),
            path: "purposes.p1.retention_days", expected: "a whole number of days"),
        Bad(yaml: base.replacingOccurrences(of: "{ role: service, purposes: [p1] }", with: "{ role: auditor, purposes: [p1] }"),
            path: "services.s1", expected: "no purposes or tokenize"),
        Bad(yaml: base.replacingOccurrences(of: "cpf: { type: cpf }", with: "consent: { type: text }"), path: "fields.consent",
            expected: "a field name other than the vault's own key names"),
        Bad(yaml: base.replacingOccurrences(of: "cpf: { type: cpf }", with: "audit-chain: { type: text }"), path: "fields.audit-chain",
            expected: "a field name other than the vault's own key names"),
        Bad(yaml: base + "contact_rules: { default: { weekdays: \"8-20\" } }\n", path: "contact_rules.default.weekdays",
            expected: "'closed' or a window HH:MM-HH:MM"),
        Bad(yaml: base + "contact_rules: { default: { weekdays: \"20:00-08:00\" } }\n", path: "contact_rules.default.weekdays",
            expected: "with the start before the end"),
        Bad(yaml: base + "contact_rules: { states: { XX: { weekdays: closed } } }\n", path: "contact_rules.states.XX", expected: "a state code"),
        Bad(yaml: base + "contact_rules: { states: { sp: { weekdays: closed } } }\n", path: "contact_rules.states.sp", expected: "a state code"),
        Bad(yaml: base + "contact_rules: { holidays: { national: [\"2026-02-30\"] } }\n", path: "contact_rules.holidays.national[0]",
            expected: "a date YYYY-MM-DD"),
        Bad(yaml: base + "contact_rules: { holidays: { national: [\"tomorrow\"] } }\n", path: "contact_rules.holidays.national[0]",
            expected: "a date YYYY-MM-DD"),
        Bad(yaml: base + "contact_rules: { timezone_by: [zip_code] }\n", path: "contact_rules.timezone_by[0]", expected: "state_field or phone_ddd"),
        Bad(yaml: base + "contact_rules: { default: { weekdays: closed, lunch: closed } }\n", path: "contact_rules.default.lunch",
            expected: "one of weekdays, saturday, sunday, holidays"),
        Bad(yaml: base.replacingOccurrences(of: "fields: { name: plain } }", with: "fields: { name: plain }, contact: { field: cpf } }"),
            path: "purposes.p1.contact.field", expected: "one of this purpose's fields"),
        Bad(yaml: base.replacingOccurrences(of: "fields: { name: plain } }", with: "fields: { name: plain }, contact: { field: name, max_per_day: 0 } }"),
            path: "purposes.p1.contact.max_per_day", expected: "a whole number from 1 to 1000"),
        Bad(yaml: base.replacingOccurrences(of: "cpf: { type: cpf }", with: "cpf: { type: state }"), path: "fields.cpf.type", expected: "uf"),
        Bad(yaml: base.replacingOccurrences(of: "{ role: service, purposes: [p1] }", with: "{ role: service, purposes: [p1], webhook: { url: \"http://crm.internal/hook\", secret_env: CRM_SECRET } }"),
            path: "services.s1.webhook.url", expected: "an https:// URL (plain http:// only to a loopback address)"),
        Bad(yaml: base.replacingOccurrences(of: "{ role: service, purposes: [p1] }", with: "{ role: service, purposes: [p1], webhook: { url: \"https://u:p@crm/hook\", secret_env: CRM_SECRET } }"),
            path: "services.s1.webhook.url", expected: "a URL without credentials"),
        Bad(yaml: base.replacingOccurrences(of: "{ role: service, purposes: [p1] }", with: "{ role: service, purposes: [p1], webhook: { url: \"ftp://crm/hook\", secret_env: CRM_SECRET } }"),
            path: "services.s1.webhook.url", expected: "an https:// URL"),
        Bad(yaml: base.replacingOccurrences(of: "{ role: service, purposes: [p1] }", with: "{ role: service, purposes: [p1], webhook: { url: \"https://crm/hook\" } }"),
            path: "services.s1.webhook.secret_env", expected: "the environment variable that holds the signing secret"),
        Bad(yaml: base.replacingOccurrences(of: "{ role: service, purposes: [p1] }", with: "{ role: service, purposes: [p1], webhook: { url: \"https://crm/hook\", secret_env: \"s3cr3t value\" } }"),
            path: "services.s1.webhook.secret_env", expected: "the name of an environment variable"),
        Bad(yaml: base.replacingOccurrences(of: "{ role: service, purposes: [p1] }", with: "{ role: service, purposes: [p1], webhook: { url: \"https://crm/hook\", secret_env: S, secret: x } }"),
            path: "services.s1.webhook.secret", expected: "one of url, secret_env"),
        Bad(yaml: base.replacingOccurrences(of: "{ role: service, purposes: [p1] }", with: "{ role: service, purposes: [p1] }\n  d1: { role: dpo, webhook: { url: \"https://crm/hook\", secret_env: S } }"),
            path: "services.d1.webhook", expected: "no webhook on a 'dpo'"),
        Bad(yaml: "fields: [", path: "<root>", expected: "well-formed YAML"),
        Bad(yaml: "just a string", path: "<root>", expected: "a mapping"),
    ])
    func refused(_ bad: Bad) throws {
        let error = try #require(throws: PolicyError.self) { try PolicyLoader.parse(bad.yaml, file: "policy.yaml") }
        let text = error.description
        #expect(text.contains("policy.yaml"), "\(text)")
        #expect(text.contains("at \(bad.path)"), "\(text)")
        #expect(text.contains(bad.expected), "\(text)")
    }

    @Test("a refused webhook URL is quoted without its credentials or query")
    func webhookURLNotEchoed() throws {
        for url in ["http://user:pa55word@crm.internal/hook?token=s3cr3t", "ftp://user:pa55word@crm/hook?token=s3cr3t"] {
            let yaml = Self.base.replacingOccurrences(of: "{ role: service, purposes: [p1] }",
                                                      with: "{ role: service, purposes: [p1], webhook: { url: \"\(url)\", secret_env: S } }")
            let error = try #require(throws: PolicyError.self) { try PolicyLoader.parse(yaml, file: "policy.yaml") }
            #expect(error.description.contains("services.s1.webhook.url"))
            #expect(!error.description.contains("pa55word") && !error.description.contains("s3cr3t"), "\(error)")
        }
    }

    @Test("errors carry the line number")
    func lineNumbers() throws {
        let yaml = Self.base.replacingOccurrences(of: "legal_basis: contract", with: "legal_basis: vibes")
        let error = try #require(throws: PolicyError.self) { try PolicyLoader.parse(yaml, file: "p.yaml") }
        #expect(error.line == 5)
    }

    @Test("a missing file is refused with its name and 'no such file'")
    func missingFile() throws {
        let error = try #require(throws: PolicyError.self) { try PolicyLoader.load(file: "/nonexistent/policy.yaml") }
        #expect(error.description.contains("/nonexistent/policy.yaml") && error.description.contains("no such file"))
    }
}
