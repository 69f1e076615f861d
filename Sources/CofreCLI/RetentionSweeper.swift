import CofreCore
import Logging
import ServiceLifecycle

/// Shreds blocked fields whose retention has ended, on an interval, beside the HTTP server in the
/// same ServiceGroup; it stops with it on SIGTERM.
struct RetentionSweeper: Service {
    let vault: Vault
    let interval: Duration
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await vault.sweepRetention()
            } catch {
                logger.error("retention sweep failed; will retry", metadata: ["error.type": "\(type(of: error))"])
            }
            // The wait ends at once when the group shuts down.
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
        }
    }
}
