import CofreCore
import Logging
import PostgresNIO

/// Group commit on PostgreSQL: requests that arrive while a transaction is in flight share the next
/// one. Each runs in its own savepoint, so one failure rolls back only its own writes. The batch
/// first takes the audit chain's advisory lock, so every instance appends to one chain in order.
actor PostgresWriteBatcher {
    typealias Work = @Sendable (PostgresConnection) async throws -> any Sendable

    private struct Job {
        let work: Work
        let continuation: CheckedContinuation<any Sendable, any Error>
    }

    private let client: PostgresClient
    private var pending: [Job] = []
    private var draining = false
    private let maxBatch = 256
    static let chainLock: Int64 = 0x636F_6672_6561_7564  // "cofreaud"

    init(client: PostgresClient) { self.client = client }

    func write<T: Sendable>(_ work: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let result = try await withCheckedThrowingContinuation { (c: CheckedContinuation<any Sendable, any Error>) in
            VaultMetrics.pendingWrites(engine: "postgres", pending.count + 1)
            pending.append(Job(work: { conn in try await work(conn) }, continuation: c))
            if !draining {
                draining = true
                Task { await self.drain() }
            }
        }
        return result as! T
    }

    private func drain() async {
        let log = PostgresDatabase.silent
        while !pending.isEmpty {
            let batch = Array(pending.prefix(maxBatch))
            pending.removeFirst(batch.count)
            let works = batch.map(\.work)
            let outcomes: [Result<any Sendable, any Error>]
            let started = ContinuousClock.now
            defer {
                let d = ContinuousClock.now - started
                VaultMetrics.commit(engine: "postgres", seconds: Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18, batch: batch.count)
                VaultMetrics.pendingWrites(engine: "postgres", pending.count)
            }
            do {
                outcomes = try await client.withTransaction(logger: log) { conn in
                    try await conn.query("SELECT pg_advisory_xact_lock(\(Self.chainLock))", logger: log)
                    var out: [Result<any Sendable, any Error>] = []
                    for work in works {
                        try await conn.query("SAVEPOINT cofre_request", logger: log)
                        do {
                            let value = try await work(conn)
                            try await conn.query("RELEASE SAVEPOINT cofre_request", logger: log)
                            out.append(.success(value))
                        } catch {
                            try await conn.query("ROLLBACK TO SAVEPOINT cofre_request", logger: log)
                            out.append(.failure(error))
                        }
                    }
                    return out
                }
            } catch {
                outcomes = Array(repeating: .failure(error), count: batch.count)
            }
            for (job, outcome) in zip(batch, outcomes) { job.continuation.resume(with: outcome) }
        }
        draining = false
    }
}
