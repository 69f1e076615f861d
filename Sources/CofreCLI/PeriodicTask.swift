import CofreCore
import Logging
import ServiceLifecycle

/// Background work on an interval, beside the HTTP server in the same ServiceGroup: the retention
/// sweeper and the key-ring watcher. The wait ends at once when the group shuts down; a failed
/// round is logged (by type or by a message that never carries key material) and retried next time.
struct PeriodicTask: Service {
    let name: String
    let interval: Duration
    /// Run once at start, before the first wait.
    let runAtStart: Bool
    let logger: Logger
    let action: @Sendable () async throws -> Void

    func run() async throws {
        var first = runAtStart
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if !first {
                do {
                    try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
                } catch {
                    return
                }
            }
            first = false
            do {
                try await action()
            } catch {
                var metadata: Logger.Metadata = ["error.type": "\(type(of: error))"]
                // Key-ring errors say what to fix (a path, a mode) and never quote key material.
                if let refusal = error as? KeyRingError { metadata["reason"] = "\(refusal)" }
                logger.error("\(name) failed; will retry", metadata: metadata)
            }
        }
    }
}
