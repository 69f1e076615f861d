/// What the CLI prints to a person's terminal from the vault's data. The audit log may hold text a
/// caller chose (a purpose name from before 0.7, a reason); control characters in it could move the
/// cursor, rewrite lines or forge rows, so they are shown as visible escapes instead (CONTRACT §4 v2).
enum Terminal {
    /// `text` with every control character (C0, DEL, C1) and every bidirectional-override or invisible
    /// formatting character replaced by a `\u{…}` escape.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            let category = scalar.properties.generalCategory
            if category == .control || category == .format || category == .lineSeparator || category == .paragraphSeparator {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
