import CofreCore
import Logging
import ServiceLifecycle

/// Re-reads the key ring's source every few seconds, so a `cofre keys rotate` run by the operator
/// (on this host or, with a shared secret store, for another instance) reaches a running server.
struct KeyRingWatcher: Service {
    let provider: KeyRingProvider
    let interval: Duration
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            do {
                try provider.reload()
            } catch {
                // Keep the ring that works; say why the new one was refused.
                logger.error("key ring reload refused; keeping the loaded ring", metadata: ["reason": "\(error)"])
            }
        }
    }
}
