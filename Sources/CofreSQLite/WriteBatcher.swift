import CofreCore
import GRDB

/// The SQLite writer: one `GroupCommit` whose batches run in one GRDB write transaction, each
/// request in its own savepoint.
struct WriteBatcher: Sendable {
    typealias Work = @Sendable (Database) throws -> any Sendable
    let queue: GroupCommit<Work>

    init(pool: DatabasePool) {
        queue = GroupCommit(engine: "sqlite") { works in
            try await pool.write { db in
                works.map { work in
                    var value: (any Sendable)?
                    do {
                        try db.inSavepoint {
                            value = try work(db)
                            return .commit
                        }
                        return .success(value!)
                    } catch {
                        return .failure(error)
                    }
                }
            }
        }
    }

    func write<T: Sendable>(_ work: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await queue.submit({ db in try work(db) }) as! T
    }
}
