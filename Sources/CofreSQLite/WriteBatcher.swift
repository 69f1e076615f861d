import CofreCore
import GRDB

/// Group commit: write requests that arrive while a commit is in flight wait, then share the next
/// transaction (and its single fsync). Each request runs in its own savepoint, so one request's
/// failure rolls back only its own writes and audit events; the others commit.
actor WriteBatcher {
    typealias Work = @Sendable (Database) throws -> any Sendable

    private struct Job {
        let work: Work
        let continuation: CheckedContinuation<any Sendable, any Error>
    }

    private let pool: DatabasePool
    private var pending: [Job] = []
    private var draining = false
    /// A bound on one transaction, so a burst cannot hold the write lock for long.
    private let maxBatch = 256

    init(pool: DatabasePool) { self.pool = pool }

    func write<T: Sendable>(_ work: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let result = try await withCheckedThrowingContinuation { (c: CheckedContinuation<any Sendable, any Error>) in
            VaultMetrics.pendingWrites(engine: "sqlite", pending.count + 1)
            pending.append(Job(work: { db in try work(db) }, continuation: c))
            if !draining {
                draining = true
                Task { await self.drain() }
            }
        }
        return result as! T
    }

    private func drain() async {
        while !pending.isEmpty {
            let batch = Array(pending.prefix(maxBatch))
            pending.removeFirst(batch.count)
            let works = batch.map(\.work)
            let outcomes: [Result<any Sendable, any Error>]
            let started = ContinuousClock.now
            defer {
                let d = ContinuousClock.now - started
                VaultMetrics.commit(engine: "sqlite", seconds: Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18, batch: batch.count)
                VaultMetrics.pendingWrites(engine: "sqlite", pending.count)
            }
            do {
                outcomes = try await pool.write { db in
                    var out: [Result<any Sendable, any Error>] = []
                    out.reserveCapacity(works.count)
                    for work in works {
                        var value: (any Sendable)?
                        do {
                            try db.inSavepoint {
                                value = try work(db)
                                return .commit
                            }
                            out.append(.success(value!))
                        } catch {
                            out.append(.failure(error))
                        }
                    }
                    return out
                }
            } catch {
                // The commit itself failed: nothing in this batch was written.
                outcomes = Array(repeating: .failure(error), count: batch.count)
            }
            for (job, outcome) in zip(batch, outcomes) { job.continuation.resume(with: outcome) }
        }
        draining = false
    }
}
