import ArgumentParser
import CofreCore
import CofreHTTP
import Foundation
import Hummingbird
import Logging

/// `cofre serve`: runs the HTTP API until SIGTERM or SIGINT, then drains and stops.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the vault's HTTP API.")

    @OptionGroup var options: RuntimeOptions
    @Option(help: "Listen address (COFRE_HOST). Default: 127.0.0.1") var host: String?
    @Option(help: "Listen port (COFRE_PORT). Default: 8200") var port: Int?

    func run() async throws {
        let resolved = try options.resolve()
        let logger = Logging.make("cofre", level: options.env("COFRE_LOG_LEVEL") ?? resolved.file["log_level"])
        let host = self.host ?? options.env("COFRE_HOST") ?? resolved.file["host"] ?? "127.0.0.1"
        let portText = port.map(String.init) ?? options.env("COFRE_PORT") ?? resolved.file["port"] ?? "8200"
        guard let port = Int(portText), (0...65535).contains(port) else { throw CLIError("port must be 0 to 65535") }
        let sweepText = options.env("COFRE_RETENTION_SWEEP_SECONDS") ?? resolved.file["retention_sweep_seconds"] ?? "3600"
        guard let sweep = Int(sweepText), sweep > 0 else { throw CLIError("COFRE_RETENTION_SWEEP_SECONDS must be a positive number of seconds") }
        let reloadText = options.env("COFRE_KEY_RELOAD_SECONDS") ?? resolved.file["key_reload_seconds"] ?? "5"
        guard let reload = Int(reloadText), reload > 0 else { throw CLIError("COFRE_KEY_RELOAD_SECONDS must be a positive number of seconds") }
        let retryText = options.env("COFRE_WEBHOOK_RETRY_BASE_SECONDS") ?? resolved.file["webhook_retry_base_seconds"] ?? "30"
        guard let retryBase = Double(retryText), retryBase >= 0.1, retryBase <= 3600 else {
            throw CLIError("COFRE_WEBHOOK_RETRY_BASE_SECONDS must be a number of seconds from 0.1 to 3600")
        }
        try PortCheck.ensureFree(host: host, port: port)
        let secrets = SecretsBox()
        try await Bootstrap.withVault(resolved, logger: logger, serve: true, checkPolicy: { policy in
            // Read once, before any store is touched, then removed from the environment (like COFRE_KEK).
            secrets.value = try Self.webhookSecrets(policy, ProcessInfo.processInfo.environment, file: resolved.policy)
            for hook in policy.services.values.compactMap(\.webhook) { unsetenv(hook.secretEnv) }
        }) { vault in
            await vault.checkAuditChainOnStart()
            logger.info("cofre starting", metadata: [
                "host": "\(host)", "port": "\(port)", "policy": "\(resolved.policy)",
                "services": "\(vault.policy.services.count)", "purposes": "\(vault.policy.purposes.count)",
            ])
            // Shreds blocked fields whose retention has ended.
            let sweeper = PeriodicTask(name: "retention sweep", interval: .seconds(sweep), runAtStart: true, logger: logger) {
                // The same round destroys keys nothing needs any more (superseded, erased, or orphaned),
                // whether or not the retention part failed.
                var failure: (any Error)?
                do { try await vault.sweepRetention() } catch { failure = error }
                try await vault.sweepKeys()
                if let failure { throw failure }
            }
            // Re-reads the key ring's source, so a `cofre keys rotate` reaches this running server (a ring
            // that fails to load is refused, the loaded one kept, and `/readyz` turns 503 if it goes on),
            // then records this instance's heartbeat — the versions it has loaded — for `keys retire`.
            let me = try ServingInstance(startedAt: vault.now)
            try await vault.heartbeat(me)
            let watcher = PeriodicTask(name: "key ring reload", interval: .seconds(min(reload, 15)), runAtStart: false, logger: logger) {
                var failure: (any Error)?
                do { try vault.dataKeys.provider.reload(now: vault.now) } catch { failure = error }
                try await vault.heartbeat(me)
                if let failure { throw failure }
            }
            // Tells recipients of corrections, erasures, revocations and objections (CONTRACT §9).
            var config = vault.deliveryConfig
            config.retryBase = retryBase
            let dispatcher = NotificationDispatcher(vault: vault, transport: WebhookHTTPTransport(),
                                                    secrets: secrets.value, config: config)
            let notifier = PeriodicTask(name: "notification delivery", interval: .seconds(1), runAtStart: true, logger: logger) {
                try await dispatcher.runOnce()
            }
            let app = buildApplication(vault: vault, settings: HTTPSettings(host: host, port: port), logger: logger,
                                       services: [sweeper, watcher, notifier])
            try await app.runService()
            try? await vault.removeInstance(me)
        }
        logger.info("cofre stopped")
    }
}

/// The webhook secrets, read before the vault opens and used once it serves.
final class SecretsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var secrets = WebhookSecrets([:])
    var value: WebhookSecrets {
        get { lock.withLock { secrets } }
        set { lock.withLock { secrets = newValue } }
    }
}

extension ServeCommand {
    /// Every webhook's signing secret from the environment; a missing one stops the start, naming the variable.
    static func webhookSecrets(_ policy: Policy, _ environment: [String: String], file: String) throws -> WebhookSecrets {
        do {
            return try WebhookSecrets.resolve(policy, environment: environment)
        } catch let missing as WebhookSecrets.Missing {
            throw CLIError("\(file): \(missing) (set it in the environment; the policy names only the variable)")
        }
    }
}

enum Logging {
    /// Logs go to standard error with their metadata; the level comes from COFRE_LOG_LEVEL (default info).
    static func make(_ label: String, level: String?) -> Logger {
        var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = level.flatMap(Logger.Level.init(rawValue:)) ?? .info
        return logger
    }
}
