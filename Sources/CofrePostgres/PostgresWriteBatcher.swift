import CofreCore
import Logging
import PostgresNIO

/// The PostgreSQL writer: one `GroupCommit` whose batches run in one transaction that first takes
/// the audit chain's advisory lock, so every instance appends to one chain in order; each request
/// runs in its own savepoint.
struct PostgresWriteBatcher: Sendable {
    typealias Work = @Sendable (PostgresConnection) async throws -> any Sendable
    static let chainLock: Int64 = 0x636F_6672_6561_7564  // "cofreaud"
    let queue: GroupCommit<Work>

    init(client: PostgresClient) {
        let log = PostgresDatabase.silent
        queue = GroupCommit(engine: "postgres") { works in
            try await client.transaction(logger: log) { conn in
                try await conn.run("SELECT pg_advisory_xact_lock(\(Self.chainLock))", logger: log)
                var out: [GroupCommit<Work>.Outcome] = []
                for work in works {
                    try await conn.run("SAVEPOINT cofre_request", logger: log)
                    do {
                        let value = try await work(conn)
                        try await conn.run("RELEASE SAVEPOINT cofre_request", logger: log)
                        out.append(.success(value))
                    } catch {
                        try await conn.run("ROLLBACK TO SAVEPOINT cofre_request", logger: log)
                        out.append(.failure(error))
                    }
                }
                return out
            }
        }
    }

    func write<T: Sendable>(_ work: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await queue.submit({ conn in try await work(conn) }) as! T
    }
}
