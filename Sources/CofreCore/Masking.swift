/// The masks of CONTRACT §2: enough for a person to recognise a value, not enough to use it.
public enum Masking {
    /// The masked form of an already-normalised value, or nil when the type has no masked form
    /// (a decimal is then answered as `redacted`).
    public static func mask(_ value: String, type: FieldType) -> String? {
        switch type {
        case .cpf:
            // 12345678909 → ***.456.789-**
            let d = Array(value)
            guard d.count == 11 else { return nil }
            return "***.\(String(d[3..<6])).\(String(d[6..<9]))-**"
        case .phone:
            // +5511987654321 → +55 11 *****-4321 ; other countries keep country code and last 4.
            let digits = Array(value.dropFirst())
            guard digits.count >= 8 else { return nil }
            let last4 = String(digits.suffix(4))
            if value.hasPrefix("+55"), digits.count >= 12 {
                let ddd = String(digits[2..<4])
                return "+55 \(ddd) \(String(repeating: "*", count: digits.count - 8))-\(last4)"
            }
            return "+\(String(digits.prefix(2))) ****\(last4)"
        case .email:
            guard let at = value.firstIndex(of: "@"), let first = value.first else { return nil }
            return "\(first)***\(value[at...])"
        case .text:
            return value.split(separator: " ").map { word in "\(word.first!)***" }.joined(separator: " ")
        case .date:
            return String(value.prefix(4)) + "-**-**"
        case .decimal:
            return nil
        case .uf:
            // A state alone identifies no one.
            return value
        }
    }
}
