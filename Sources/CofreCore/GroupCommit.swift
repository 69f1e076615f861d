/// Group commit, shared by the storage engines: requests that arrive while a commit is in flight
/// wait, then share the next transaction (and its single flush to disk). The engine supplies
/// `runBatch`, which runs each request's work in its own savepoint inside one transaction and
/// reports each outcome, so one request's failure never undoes another's writes.
public actor GroupCommit<Work: Sendable> {
    public typealias Outcome = Result<any Sendable, any Error>

    private struct Job {
        let work: Work
        let continuation: CheckedContinuation<any Sendable, any Error>
    }

    private let engine: String
    private let runBatch: @Sendable ([Work]) async throws -> [Outcome]
    private var pending: [Job] = []
    private var draining = false
    /// A bound on one transaction, so a burst cannot hold the write lock for long.
    private let maxBatch = 256

    public init(engine: String, runBatch: @escaping @Sendable ([Work]) async throws -> [Outcome]) {
        self.engine = engine
        self.runBatch = runBatch
    }

    /// Queues `work` and returns its value once the transaction that carried it has committed.
    public func submit(_ work: Work) async throws -> any Sendable {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<any Sendable, any Error>) in
            pending.append(Job(work: work, continuation: c))
            VaultMetrics.pendingWrites(engine: engine, pending.count)
            if !draining {
                draining = true
                Task { await self.drain() }
            }
        }
    }

    private func drain() async {
        while !pending.isEmpty {
            let batch = Array(pending.prefix(maxBatch))
            pending.removeFirst(batch.count)
            let started = ContinuousClock.now
            var outcomes: [Outcome]
            do {
                outcomes = try await runBatch(batch.map(\.work))
            } catch {
                // The commit itself failed: nothing in this batch was written.
                outcomes = Array(repeating: .failure(error), count: batch.count)
            }
            if outcomes.count != batch.count { outcomes = Array(repeating: .failure(StoreError(.unavailable)), count: batch.count) }
            let d = ContinuousClock.now - started
            VaultMetrics.commit(engine: engine, seconds: Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18, batch: batch.count)
            VaultMetrics.pendingWrites(engine: engine, pending.count)
            for (job, outcome) in zip(batch, outcomes) { job.continuation.resume(with: outcome) }
        }
        draining = false
    }
}
