import Foundation

/// The value types a policy field can have; each validates and normalises its input.
extension FieldType {
    /// Any value, of any type, is at most this many bytes of UTF-8 (a text field: 4,096 characters).
    public static let maxBytes = 16_384

    /// The error code for a value that fails this type, e.g. `invalid_cpf`.
    public var invalidCode: VaultError.Code { .invalid(self) }

    /// Validates `raw` and returns its canonical form, the one stored, indexed and revealed.
    /// Errors name the field and the rule, never the value.
    public func normalize(_ raw: String, field: String) throws(VaultError) -> String {
        func bad(_ rule: String) -> VaultError { .invalidValue(invalidCode, field: field, rule) }
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw bad("must not be empty") }
        // Counted in Unicode scalars and in bytes, never in grapheme clusters: a few letters under piles
        // of combining marks are one "character" each but megabytes of input.
        guard trimmed.utf8.count <= Self.maxBytes else { throw bad("must be at most \(Self.maxBytes) bytes of UTF-8") }
        guard !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw bad("must not contain control characters")
        }
        switch self {
        case .text:
            guard trimmed.unicodeScalars.count <= 4096 else { throw bad("must be at most 4096 characters") }
            return trimmed.precomposedStringWithCanonicalMapping
        case .cpf:
            return try Self.cpf(trimmed, bad: bad)
        case .email:
            return try Self.email(trimmed, bad: bad)
        case .phone:
            return try Self.phone(trimmed, bad: bad)
        case .date:
            return try Self.date(trimmed, bad: bad)
        case .decimal:
            return try Self.decimal(trimmed, bad: bad)
        case .uf:
            guard let state = BrazilianStates.normalize(trimmed) else { throw bad("must be one of the 27 state codes (SP, RJ, AM, …)") }
            return state
        }
    }

    private static func digits(_ s: Substring) -> [Int] { s.unicodeScalars.map { Int($0.value) - 48 } }

    private static func cpf(_ s: String, bad: (String) -> VaultError) throws(VaultError) -> String {
        let allowed = s.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || $0 == "." || $0 == "-" || $0 == " " }
        guard allowed else { throw bad("must be 11 digits, optionally written as 000.000.000-00") }
        let d = s.unicodeScalars.filter { ("0"..."9").contains($0) }.map { Int($0.value) - 48 }
        guard d.count == 11 else { throw bad("must have 11 digits") }
        guard Set(d).count > 1 else { throw bad("check digits do not match") }
        func check(_ n: Int) -> Int {
            var sum = 0
            for i in 0..<n { sum += d[i] * (n + 1 - i) }
            let r = (sum * 10) % 11
            return r == 10 ? 0 : r
        }
        guard check(9) == d[9], check(10) == d[10] else { throw bad("check digits do not match") }
        return d.map(String.init).joined()
    }

    private static func email(_ s: String, bad: (String) -> VaultError) throws(VaultError) -> String {
        guard s.utf8.count <= 254 else { throw bad("must be at most 254 characters") }
        let parts = s.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].utf8.count <= 64 else { throw bad("must look like name@domain.example") }
        let domain = parts[1].lowercased()
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2, labels.allSatisfy({ !$0.isEmpty && !$0.hasPrefix("-") && !$0.hasSuffix("-") }) else {
            throw bad("must look like name@domain.example")
        }
        let domainOK = domain.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "." }
        let localOK = parts[0].unicodeScalars.allSatisfy { !$0.properties.isWhitespace && $0 != "<" && $0 != ">" && $0 != "," && $0 != ";" && $0 != "\"" }
        guard domainOK, localOK else { throw bad("must look like name@domain.example") }
        // Mailbox names are case-insensitive in practice; one canonical form makes the blind index match.
        return parts[0].lowercased() + "@" + domain
    }

    private static func phone(_ s: String, bad: (String) -> VaultError) throws(VaultError) -> String {
        let hasPlus = s.hasPrefix("+")
        let body = hasPlus ? s.dropFirst() : Substring(s)
        let allowed = body.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || " ()-.".unicodeScalars.contains($0) }
        guard allowed else { throw bad("must be a phone number such as +55 11 98765-4321") }
        var d = String(body.unicodeScalars.filter { ("0"..."9").contains($0) }.map(Character.init))
        if !hasPlus {
            // A Brazilian number dialled nationally may carry a trunk '0' before the DDD.
            if d.hasPrefix("0"), d.count == 11 || d.count == 12 { d.removeFirst() }
            if d.count == 10 || d.count == 11 { d = "55" + d }
            guard d.hasPrefix("55"), d.count == 12 || d.count == 13 else {
                throw bad("must include the DDD (10 or 11 digits) or start with + and a country code")
            }
        }
        guard (8...15).contains(d.count), !d.hasPrefix("0") else { throw bad("must be a valid E.164 number") }
        if d.hasPrefix("55") {
            let national = d.dropFirst(2)
            guard national.count == 10 || national.count == 11 else { throw bad("a Brazilian number needs a DDD and 8 or 9 digits") }
            let ddd = national.prefix(2)
            guard !ddd.hasPrefix("0"), !ddd.hasSuffix("0") else { throw bad("the DDD is not valid") }
            if national.count == 11, national.dropFirst(2).first != "9" { throw bad("a 9-digit Brazilian number starts with 9") }
        }
        return "+" + d
    }

    private static func date(_ s: String, bad: (String) -> VaultError) throws(VaultError) -> String {
        let p = s.split(separator: "-", omittingEmptySubsequences: false)
        guard p.count == 3, p[0].count == 4, p[1].count == 2, p[2].count == 2,
              p.allSatisfy({ $0.unicodeScalars.allSatisfy { ("0"..."9").contains($0) } }),
              let y = Int(p[0]), let m = Int(p[1]), let d = Int(p[2]), y >= 1, (1...12).contains(m)
        else { throw bad("must be an ISO 8601 date, YYYY-MM-DD") }
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
        guard (1...days).contains(d) else { throw bad("is not a calendar date") }
        return s
    }

    private static func decimal(_ s: String, bad: (String) -> VaultError) throws(VaultError) -> String {
        var body = Substring(s)
        var sign = ""
        if body.hasPrefix("-") { sign = "-"; body = body.dropFirst() }
        let parts = body.split(separator: ".", omittingEmptySubsequences: false)
        let isDigits: (Substring) -> Bool = { !$0.isEmpty && $0.unicodeScalars.allSatisfy { ("0"..."9").contains($0) } }
        guard (1...2).contains(parts.count), isDigits(parts[0]), parts.count == 1 || isDigits(parts[1]),
              parts[0].count <= 18, parts.count == 1 || parts[1].count <= 6
        else { throw bad("must be a decimal number such as 1234.56 (up to 18 digits and 6 decimals)") }
        var integer = String(parts[0].drop(while: { $0 == "0" }))
        if integer.isEmpty { integer = "0" }
        let fraction = parts.count == 2 ? "." + parts[1] : ""
        if integer == "0", fraction.allSatisfy({ $0 == "0" || $0 == "." }) { sign = "" }
        return sign + integer + fraction
    }
}
