import GRDB

extension TestVault {
    /// A consistent copy of the data store (`VACUUM INTO`), as a nightly backup would take.
    public func backupDataStore(to path: String) throws {
        let db = try DatabaseQueue(path: dataPath)
        try db.writeWithoutTransaction { try $0.execute(sql: "VACUUM INTO ?", arguments: [path]) }
        try db.close()
    }
}
