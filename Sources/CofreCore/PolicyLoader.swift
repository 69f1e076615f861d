import Foundation
import Yams

/// Why a policy file was refused: the file, the key path inside it, and what was expected there.
public struct PolicyError: Error, Sendable, CustomStringConvertible {
    public let file: String
    public let path: String
    public let line: Int?
    public let expected: String
    /// A problem with the file itself (missing, unreadable), said as it is rather than as an expectation.
    public let problem: String?

    public init(file: String, path: String, line: Int?, expected: String, problem: String? = nil) {
        self.file = file
        self.path = path
        self.line = line
        self.expected = expected
        self.problem = problem
    }

    public var description: String {
        if let problem { return "policy \(file): \(problem)" }
        let at = line.map { " (line \($0))" } ?? ""
        return "policy \(file): at \(path.isEmpty ? "<root>" : path)\(at): expected \(expected)"
    }
}

/// Reads and validates a policy file; anything unknown or malformed stops start-up.
public enum PolicyLoader {
    public static func load(file: String) throws -> Policy {
        func fail(_ problem: String) -> PolicyError { PolicyError(file: file, path: "", line: nil, expected: "", problem: problem) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) else {
            throw fail("no such file (set --policy or COFRE_POLICY)")
        }
        guard !isDirectory.boolValue else { throw fail("is a directory, not a policy file") }
        guard let data = FileManager.default.contents(atPath: file) else { throw fail("cannot be read (permission denied?)") }
        guard let text = String(data: data, encoding: .utf8) else { throw fail("is not UTF-8 text") }
        return try parse(text, file: file)
    }

    public static func parse(_ yaml: String, file: String = "<policy>") throws -> Policy {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw PolicyError(file: file, path: "", line: nil, expected: "well-formed YAML (\(error))")
        }
        let reader = Reader(file: file)
        guard let root else { throw reader.fail(path: "", node: nil, "a mapping with fields, purposes and services") }
        return try reader.policy(root)
    }

    private struct Reader {
        let file: String

        func fail(path: String, node: Node?, _ expected: String) -> PolicyError {
            PolicyError(file: file, path: path, line: node?.mark?.line, expected: expected)
        }

        func mapping(_ node: Node?, path: String) throws -> [(key: String, node: Node, value: Node)] {
            guard let node, let mapping = node.mapping else { throw fail(path: path, node: node, "a mapping") }
            var out: [(String, Node, Node)] = []
            var seen = Set<String>()
            for (key, value) in mapping {
                guard let name = key.string, !name.isEmpty else { throw fail(path: path, node: key, "a string key") }
                guard seen.insert(name).inserted else { throw fail(path: join(path, name), node: key, "each key once") }
                out.append((name, key, value))
            }
            return out
        }

        func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

        func name(_ name: String, path: String, node: Node) throws {
            let ok = name.utf8.allSatisfy { (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2d || $0 == 0x5f }
            guard ok, name.count <= 64 else {
                throw fail(path: path, node: node, "a name of lowercase letters, digits, '-' and '_' (at most 64)")
            }
        }

        func scalar(_ node: Node, path: String) throws -> String {
            guard let s = node.scalar?.string else { throw fail(path: path, node: node, "a scalar value") }
            return s
        }

        func bool(_ node: Node, path: String) throws -> Bool {
            guard node.scalar != nil, let b = node.bool else { throw fail(path: path, node: node, "true or false") }
            return b
        }

        func policy(_ root: Node) throws -> Policy {
            var fieldsNode: Node?, purposesNode: Node?, servicesNode: Node?, contactNode: Node?
            for (key, keyNode, value) in try mapping(root, path: "") {
                switch key {
                case "fields": fieldsNode = value
                case "purposes": purposesNode = value
                case "services": servicesNode = value
                case "contact_rules": contactNode = value
                default: throw fail(path: key, node: keyNode, "one of fields, purposes, services, contact_rules")
                }
            }
            guard let fieldsNode else { throw fail(path: "fields", node: root, "a 'fields' mapping") }
            guard let purposesNode else { throw fail(path: "purposes", node: root, "a 'purposes' mapping") }
            guard let servicesNode else { throw fail(path: "services", node: root, "a 'services' mapping") }

            var fields: [String: FieldSpec] = [:]
            for (name, keyNode, value) in try mapping(fieldsNode, path: "fields") {
                let path = join("fields", name)
                try self.name(name, path: path, node: keyNode)
                guard !Policy.reservedFieldNames.contains(name) else {
                    throw fail(path: path, node: keyNode,
                               "a field name other than the vault's own key names (\(Policy.reservedFieldNames.sorted().joined(separator: ", ")))")
                }
                fields[name] = try field(value, path: path)
            }
            guard !fields.isEmpty else { throw fail(path: "fields", node: fieldsNode, "at least one field") }

            var purposes: [String: Purpose] = [:]
            for (name, keyNode, value) in try mapping(purposesNode, path: "purposes") {
                let path = join("purposes", name)
                try self.name(name, path: path, node: keyNode)
                purposes[name] = try purpose(name, value, path: path, fields: fields)
            }

            var services: [String: ServicePolicy] = [:]
            for (name, keyNode, value) in try mapping(servicesNode, path: "services") {
                let path = join("services", name)
                try self.name(name, path: path, node: keyNode)
                services[name] = try service(name, value, path: path, purposes: purposes)
            }
            let rules = try contactNode.map { try contactRules($0, path: "contact_rules") } ?? ContactRules()
            return Policy(fields: fields, purposes: purposes, services: services, contactRules: rules)
        }

        func contactRules(_ node: Node, path: String) throws -> ContactRules {
            var rules = ContactRules()
            for (key, keyNode, value) in try mapping(node, path: path) {
                let p = join(path, key)
                switch key {
                case "timezone_by":
                    guard let seq = value.sequence, !seq.isEmpty else { throw fail(path: p, node: value, "a list of state_field, phone_ddd") }
                    rules.timezoneBy = try seq.enumerated().map { i, item in
                        let raw = try scalar(item, path: "\(p)[\(i)]")
                        guard let source = ContactRules.Source(rawValue: raw) else {
                            throw fail(path: "\(p)[\(i)]", node: item, "state_field or phone_ddd; found '\(raw)'")
                        }
                        return source
                    }
                case "default": rules.defaultDays = try days(value, path: p)
                case "states":
                    for (state, stateKey, daysNode) in try mapping(value, path: p) {
                        rules.states[try stateCode(state, path: join(p, state), node: stateKey)] = try days(daysNode, path: join(p, state))
                    }
                case "holidays":
                    for (scope, scopeKey, list) in try mapping(value, path: p) {
                        let sp = join(p, scope)
                        guard let seq = list.sequence else { throw fail(path: sp, node: list, "a list of dates YYYY-MM-DD") }
                        var dates = Set<String>()
                        for (i, item) in seq.enumerated() {
                            let raw = try scalar(item, path: "\(sp)[\(i)]")
                            guard Self.isDate(raw) else { throw fail(path: "\(sp)[\(i)]", node: item, "a date YYYY-MM-DD; found '\(raw)'") }
                            dates.insert(raw)
                        }
                        if scope == "national" {
                            rules.nationalHolidays = dates
                        } else {
                            rules.stateHolidays[try stateCode(scope, path: sp, node: scopeKey)] = dates
                        }
                    }
                default: throw fail(path: p, node: keyNode, "one of timezone_by, default, states, holidays")
                }
            }
            return rules
        }

        func stateCode(_ code: String, path: String, node: Node) throws -> String {
            guard code == code.uppercased(), let state = BrazilianStates.normalize(code) else {
                throw fail(path: path, node: node, "a state code (\(BrazilianStates.all.joined(separator: ", "))) or 'national'; found '\(code)'")
            }
            return state
        }

        func days(_ node: Node, path: String) throws -> ContactRules.Days {
            var days = ContactRules.Days(weekdays: nil, saturday: nil, sunday: nil, holidays: nil)
            var seen = Set<String>()
            for (key, keyNode, value) in try mapping(node, path: path) {
                let p = join(path, key)
                let raw = try scalar(value, path: p)
                var window: ContactRules.Window?
                if raw != "closed" {
                    guard let w = ContactRules.Window(raw) else {
                        throw fail(path: p, node: value, "'closed' or a window HH:MM-HH:MM with the start before the end; found '\(raw)'")
                    }
                    window = w
                }
                switch key {
                case "weekdays": days.weekdays = window
                case "saturday": days.saturday = window
                case "sunday": days.sunday = window
                case "holidays": days.holidays = window
                default: throw fail(path: p, node: keyNode, "one of weekdays, saturday, sunday, holidays")
                }
                seen.insert(key)
            }
            guard seen.contains("weekdays") else { throw fail(path: join(path, "weekdays"), node: node, "a weekdays window (or closed)") }
            return days
        }

        static func isDate(_ s: String) -> Bool {
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = TimeZone(identifier: "UTC")
            f.dateFormat = "yyyy-MM-dd"
            guard s.count == 10, let d = f.date(from: s) else { return false }
            return f.string(from: d) == s
        }

        func field(_ node: Node, path: String) throws -> FieldSpec {
            var type: FieldType?
            var searchable = false
            for (key, keyNode, value) in try mapping(node, path: path) {
                let p = join(path, key)
                switch key {
                case "type":
                    let raw = try scalar(value, path: p)
                    guard let t = FieldType(rawValue: raw) else {
                        throw fail(path: p, node: value, "one of \(FieldType.allCases.map(\.rawValue).joined(separator: ", ")); found '\(raw)'")
                    }
                    type = t
                case "searchable": searchable = try bool(value, path: p)
                default: throw fail(path: p, node: keyNode, "one of type, searchable")
                }
            }
            guard let type else { throw fail(path: join(path, "type"), node: node, "a field type") }
            return FieldSpec(type: type, searchable: searchable)
        }

        func purpose(_ name: String, _ node: Node, path: String, fields known: [String: FieldSpec]) throws -> Purpose {
            var basis: LegalBasis?
            var channel: String?
            var levels: [String: RevealLevel]?
            var retention: Int?
            var contact: ContactLimit?
            var contactNode: Node?
            for (key, keyNode, value) in try mapping(node, path: path) {
                let p = join(path, key)
                switch key {
                case "legal_basis":
                    let raw = try scalar(value, path: p)
                    guard let b = LegalBasis(rawValue: raw) else {
                        throw fail(path: p, node: value, "one of \(LegalBasis.allCases.map(\.rawValue).joined(separator: ", ")); found '\(raw)'")
                    }
                    basis = b
                case "channel":
                    channel = try scalar(value, path: p)
                case "fields":
                    var out: [String: RevealLevel] = [:]
                    for (field, fieldKey, levelNode) in try mapping(value, path: p) {
                        let fp = join(p, field)
                        guard known[field] != nil else {
                            throw fail(path: fp, node: fieldKey, "a field declared under 'fields' (\(known.keys.sorted().joined(separator: ", "))); found '\(field)'")
                        }
                        let raw = try scalar(levelNode, path: fp)
                        guard let level = RevealLevel(rawValue: raw) else {
                            throw fail(path: fp, node: levelNode, "one of plain, masked, redacted; found '\(raw)'")
                        }
                        out[field] = level
                    }
                    levels = out
                case "retention_days":
                    guard value.scalar != nil, let days = value.int, days > 0, days <= 36500 else {
                        throw fail(path: p, node: value, "a whole number of days from 1 to 36500")
                    }
                    retention = days
                case "contact":
                    contactNode = value
                    var limit = ContactLimit(field: "")
                    for (ckey, ckeyNode, cvalue) in try mapping(value, path: p) {
                        let cp = join(p, ckey)
                        switch ckey {
                        case "field": limit.field = try scalar(cvalue, path: cp)
                        case "max_per_day", "max_per_week":
                            guard cvalue.scalar != nil, let n = cvalue.int, n >= 1, n <= 1000 else {
                                throw fail(path: cp, node: cvalue, "a whole number from 1 to 1000")
                            }
                            if ckey == "max_per_day" { limit.maxPerDay = n } else { limit.maxPerWeek = n }
                        default: throw fail(path: cp, node: ckeyNode, "one of field, max_per_day, max_per_week")
                        }
                    }
                    contact = limit
                default:
                    throw fail(path: p, node: keyNode, "one of legal_basis, channel, fields, retention_days, contact")
                }
            }
            guard let basis else { throw fail(path: join(path, "legal_basis"), node: node, "a legal basis") }
            guard let levels, !levels.isEmpty else { throw fail(path: join(path, "fields"), node: node, "at least one field with a reveal level") }
            if let contact, levels[contact.field] == nil {
                throw fail(path: join(path, "contact.field"), node: contactNode,
                           "one of this purpose's fields (\(levels.keys.sorted().joined(separator: ", "))); found '\(contact.field)'")
            }
            return Purpose(name: name, legalBasis: basis, channel: channel, fields: levels, retentionDays: retention, contact: contact)
        }

        func service(_ name: String, _ node: Node, path: String, purposes known: [String: Purpose]) throws -> ServicePolicy {
            var role: Role?
            var purposes: Set<String> = []
            var tokenize = false
            var sawPurposes = false
            var quota = Quota()
            var webhook: Webhook?
            for (key, keyNode, value) in try mapping(node, path: path) {
                let p = join(path, key)
                switch key {
                case "role":
                    let raw = try scalar(value, path: p)
                    guard let r = Role(rawValue: raw) else { throw fail(path: p, node: value, "one of service, dpo, auditor; found '\(raw)'") }
                    role = r
                case "purposes":
                    guard let seq = value.sequence else { throw fail(path: p, node: value, "a list of purposes") }
                    sawPurposes = true
                    for (i, item) in seq.enumerated() {
                        let ip = "\(p)[\(i)]"
                        let purpose = try scalar(item, path: ip)
                        guard known[purpose] != nil else {
                            throw fail(path: ip, node: item, "a purpose declared under 'purposes' (\(known.keys.sorted().joined(separator: ", "))); found '\(purpose)'")
                        }
                        purposes.insert(purpose)
                    }
                case "tokenize": tokenize = try bool(value, path: p)
                case "quota":
                    for (qkey, qkeyNode, qvalue) in try mapping(value, path: p) {
                        let qp = join(p, qkey)
                        guard qvalue.scalar != nil, let n = qvalue.int, n >= 1, n <= 10_000_000 else {
                            throw fail(path: qp, node: qvalue, "a whole number from 1 to 10000000")
                        }
                        switch qkey {
                        case "reveals_per_minute": quota.revealsPerMinute = n
                        case "lookups_per_minute": quota.lookupsPerMinute = n
                        case "writes_per_minute": quota.writesPerMinute = n
                        case "bulk_reveal_factor": quota.bulkRevealFactor = n
                        default:
                            throw fail(path: qp, node: qkeyNode,
                                       "one of reveals_per_minute, lookups_per_minute, writes_per_minute, bulk_reveal_factor")
                        }
                    }
                case "webhook":
                    var url: String?, secretEnv: String?
                    for (wkey, wkeyNode, wvalue) in try mapping(value, path: p) {
                        let wp = join(p, wkey)
                        switch wkey {
                        case "url":
                            let raw = try scalar(wvalue, path: wp)
                            if let problem = Webhook.urlProblem(raw) {
                                // Quoted without credentials or query: a receiver's token may ride in either.
                                var shown = URLComponents(string: raw)
                                shown?.user = nil
                                shown?.password = nil
                                shown?.query = nil
                                throw fail(path: wp, node: wvalue, "\(problem); found '\(shown?.string ?? "an unreadable URL")'")
                            }
                            url = raw
                        case "secret_env":
                            let raw = try scalar(wvalue, path: wp)
                            guard Webhook.isEnvironmentName(raw) else {
                                throw fail(path: wp, node: wvalue, "the name of an environment variable (A-Z, 0-9, _); found '\(raw)'")
                            }
                            secretEnv = raw
                        default: throw fail(path: wp, node: wkeyNode, "one of url, secret_env")
                        }
                    }
                    guard let url else { throw fail(path: join(p, "url"), node: value, "the receiver's URL") }
                    guard let secretEnv else {
                        throw fail(path: join(p, "secret_env"), node: value, "the environment variable that holds the signing secret (never the secret itself)")
                    }
                    webhook = Webhook(url: url, secretEnv: secretEnv)
                default: throw fail(path: p, node: keyNode, "one of role, purposes, tokenize, quota, webhook")
                }
            }
            guard let role else { throw fail(path: join(path, "role"), node: node, "a role (service, dpo or auditor)") }
            if role != .service, sawPurposes || tokenize {
                throw fail(path: path, node: node, "no purposes or tokenize on a '\(role.rawValue)' (only services hold purposes)")
            }
            if role != .service, webhook != nil {
                throw fail(path: join(path, "webhook"), node: node, "no webhook on a '\(role.rawValue)' (only services receive data, so only they are told)")
            }
            return ServicePolicy(name: name, role: role, purposes: purposes, tokenize: tokenize, quota: quota, webhook: webhook)
        }
    }
}
