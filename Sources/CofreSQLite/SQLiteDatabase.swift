import Foundation
public import GRDB

/// Opens a SQLite database the way every Cofre store needs it: WAL, `synchronous=FULL` (an
/// acknowledged write survives a crash or power loss), foreign keys, secure delete, a busy timeout
/// so the operator's CLI and a running server can share the file, and a private directory.
public enum SQLiteDatabase {
    public static func open(path: String, label: String) throws -> DatabasePool {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty, !FileManager.default.fileExists(atPath: dir) {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        var config = Configuration()
        config.label = label
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(10)
        config.journalMode = .wal
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // Deleted rows (shredded keys, replaced ciphertexts) are overwritten, not left in free pages.
            try db.execute(sql: "PRAGMA secure_delete = ON")
        }
        let pool = try DatabasePool(path: path, configuration: config)
        // GRDB's pool turns WAL on for its writer *after* `prepareDatabase` and sets `synchronous=NORMAL`
        // while it is at it (an acknowledged commit could then vanish with the page cache at a power
        // cut). The writer is the one connection that commits, and it lives as long as the pool: set
        // FULL on it again, and refuse to serve if SQLite did not take it.
        // secure_delete (zeroed free pages: destroyed keys do not linger in the file) is checked likewise.
        let (level, secureDelete) = try pool.writeWithoutTransaction { db -> (Int, Int) in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            return (try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1, try Int.fetchOne(db, sql: "PRAGMA secure_delete") ?? -1)
        }
        guard level == 2, secureDelete == 1 else {
            throw DatabaseError(message: "SQLite did not accept synchronous=FULL and secure_delete=ON on \(label) (\(level), \(secureDelete))")
        }
        // Files hold ciphertexts and wrapped keys only, but they are still nobody else's business.
        for suffix in ["", "-wal", "-shm"] { chmod(path + suffix, 0o600) }
        return pool
    }

    static func millis(_ d: Date) -> Int64 { Int64((d.timeIntervalSince1970 * 1000).rounded(.down)) }
    static func date(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }
    static func date(_ ms: Int64?) -> Date? { ms.map(date) }
}
