import CofreCore
import Foundation
import Logging
import NIOCore
import PostgresNIO

// postgres-nio 1.33 writes a query to its channel with no write promise: when the server has just
// closed the connection (a restart, `pg_terminate_backend`, a failover), the query is dropped at the
// closed channel and its result never completes, so the caller — and the request behind it — waits
// forever. `PostgresRestartTests` hangs without these guards. Every query of the engine goes through
// them: on a leased connection the query races the connection's close; through the pool it races a
// deadline (the pool leases internally, out of reach).

/// Resumes a continuation once, from whichever side comes first.
private final class Once<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T, any Error>?
    init(_ c: CheckedContinuation<T, any Error>) { continuation = c }
    func resume(_ result: Result<T, any Error>) {
        let c: CheckedContinuation<T, any Error>? = lock.withLock {
            defer { continuation = nil }
            return continuation
        }
        c?.resume(with: result)
    }
}

/// Fails the waits of a connection's queries when it closes, with one `closeFuture` callback per
/// connection (a callback per query would pile up on a long-lived connection until it closes).
private final class CloseWatch: @unchecked Sendable {
    private static let registryLock = NSLock()
    nonisolated(unsafe) private static var registry: [ObjectIdentifier: CloseWatch] = [:]

    private let lock = NSLock()
    private var waiting: [UInt64: @Sendable () -> Void] = [:]
    private var next: UInt64 = 0
    private var closed = false

    /// The watch of `conn`, registering its one close callback the first time.
    static func of(_ conn: PostgresConnection) -> CloseWatch {
        let id = ObjectIdentifier(conn)
        let (watch, created): (CloseWatch, Bool) = registryLock.withLock {
            if let w = registry[id] { return (w, false) }
            let w = CloseWatch()
            registry[id] = w
            return (w, true)
        }
        if created {
            // Outside the lock: on an already closed connection the callback may run at once.
            conn.closeFuture.whenComplete { _ in
                watch.fire()
                _ = registryLock.withLock { registry.removeValue(forKey: id) }
            }
        }
        return watch
    }

    /// Registers `onClose`; nil (and `onClose` already called) when the connection is closed.
    func add(_ onClose: @escaping @Sendable () -> Void) -> UInt64? {
        let token: UInt64? = lock.withLock {
            guard !closed else { return nil }
            next += 1
            waiting[next] = onClose
            return next
        }
        if token == nil { onClose() }
        return token
    }

    func remove(_ token: UInt64?) {
        guard let token else { return }
        _ = lock.withLock { waiting.removeValue(forKey: token) }
    }

    private func fire() {
        let all: [@Sendable () -> Void] = lock.withLock {
            closed = true
            defer { waiting.removeAll() }
            return Array(waiting.values)
        }
        for f in all { f() }
    }
}

extension PostgresConnection {
    /// `query`, failing with `StoreError(.unavailable)` if the connection closes before the answer
    /// starts (instead of waiting forever).
    @discardableResult
    func run(_ query: PostgresQuery, logger: Logger, file: String = #fileID, line: Int = #line) async throws -> PostgresRowSequence {
        if isClosed { throw StoreError(.unavailable) }
        let watch = CloseWatch.of(self)
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<PostgresRowSequence, any Error>) in
            let once = Once(c)
            let token = watch.add { once.resume(.failure(StoreError(.unavailable))) }
            // A detached wait: if the driver never answers, only this small task is left behind.
            Task {
                let result: Result<PostgresRowSequence, any Error>
                do { result = .success(try await self.query(query, logger: logger, file: file, line: line)) }
                catch { result = .failure(error) }
                watch.remove(token)
                once.resume(result)
            }
        }
    }
}

extension PostgresClient {
    /// A query through the pool, failing with `StoreError(.unavailable)` after `deadline` without an
    /// answer (nil: no deadline, for maintenance such as VACUUM). The engine's pool queries are single
    /// statements on indexed or LIMITed reads and small writes: 15 s is far beyond any of them, and is
    /// what a request waits, at worst, when its connection was lost at the wrong moment.
    @discardableResult
    func run(_ query: PostgresQuery, logger: Logger, deadline: Duration? = .seconds(15),
             file: String = #fileID, line: Int = #line) async throws -> PostgresRowSequence {
        guard let deadline else { return try await self.query(query, logger: logger, file: file, line: line) }
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<PostgresRowSequence, any Error>) in
            let once = Once(c)
            let timer = Task {
                do { try await Task.sleep(for: deadline) } catch { return }
                once.resume(.failure(StoreError(.unavailable)))
            }
            Task {
                do { once.resume(.success(try await self.query(query, logger: logger, file: file, line: line))) }
                catch { once.resume(.failure(error)) }
                timer.cancel()
            }
        }
    }

    /// A transaction on one leased connection whose every statement, BEGIN and COMMIT included, is
    /// guarded. The body's error is rethrown after a best-effort ROLLBACK.
    func transaction<T: Sendable>(logger: Logger, _ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await withConnection { conn in
            try await conn.run("BEGIN", logger: logger)
            let value: T
            do {
                value = try await body(conn)
            } catch {
                _ = try? await conn.run("ROLLBACK", logger: logger)
                throw error
            }
            try await conn.run("COMMIT", logger: logger)
            return value
        }
    }
}
