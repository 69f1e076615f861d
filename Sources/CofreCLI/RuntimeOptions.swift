public import ArgumentParser
import CofreCore
import Foundation
import Yams

/// The options every host-side command shares (`serve`, `service`, `keys`): where the policy, the
/// data store, the key store and the key ring are. Each resolves as flag, then `COFRE_*`
/// environment variable, then `--config` file, then the development default.
public struct RuntimeOptions: ParsableArguments {
    @Option(help: "YAML file (COFRE_CONFIG) with any of: policy, database, key_store, keys, kek_file, host, port, log_level, retention_sweep_seconds, key_reload_seconds, webhook_retry_base_seconds, allow_shared_cluster.")
    var config: String?
    @Option(help: "Policy file (COFRE_POLICY). Default: ./deploy/policy.example.yaml")
    var policy: String?
    @Option(help: "sqlite:PATH or postgres://USER@HOST:PORT/DB?sslmode=… (COFRE_DATABASE). Default: sqlite:./data/cofre.sqlite")
    var database: String?
    @Option(name: .customLong("key-store"),
            help: "Where data keys live: sqlite:PATH or postgres://… in another cluster (COFRE_KEY_STORE). Default: sqlite:<keys>/datakeys.sqlite")
    var keyStore: String?
    @Option(help: "Key ring directory (COFRE_KEYS). Default: ./keys")
    var keys: String?
    @Flag(name: .customLong("allow-shared-cluster"),
          help: "Allow the PostgreSQL key store in the same cluster as the data store (COFRE_ALLOW_SHARED_CLUSTER=1); warns at every start.")
    var allowSharedCluster = false

    public init() {}

    static let configKeys: Set<String> = ["policy", "database", "key_store", "keys", "kek_file", "host", "port", "log_level", "retention_sweep_seconds", "key_reload_seconds", "webhook_retry_base_seconds", "allow_shared_cluster"]

    /// Reads the `--config` file (or `COFRE_CONFIG`), refusing unknown keys.
    func configFile() throws -> [String: String] {
        guard let path = config ?? env("COFRE_CONFIG") else { return [:] }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CLIError("cannot read config file '\(path)'")
        }
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch { throw CLIError("config file '\(path)' is not valid YAML") }
        guard let mapping = node?.mapping else { throw CLIError("config file '\(path)' must be a mapping") }
        var out: [String: String] = [:]
        for (k, v) in mapping {
            guard let key = k.string, Self.configKeys.contains(key) else {
                throw CLIError("config file '\(path)': unknown key '\(k.string ?? "?")'; expected one of \(Self.configKeys.sorted().joined(separator: ", "))")
            }
            guard let value = v.scalar?.string else { throw CLIError("config file '\(path)': '\(key)' must be a scalar") }
            out[key] = value
        }
        return out
    }

    func env(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The resolved settings.
    struct Resolved {
        var policy: String
        var database: String
        var keyStore: String
        var keys: String
        var file: [String: String]
        var production: Bool
        /// `COFRE_KEK`: the key ring itself, from the platform's secret store.
        var kekEnvironment: String?
        /// `COFRE_KEK_FILE`: a file of `v<N>:<base64>` lines.
        var kekFile: String?
        /// Whether a PostgreSQL key store may live in the data store's cluster.
        var allowSharedCluster: Bool
    }

    func resolve() throws -> Resolved {
        let file = try configFile()
        let keys = self.keys ?? env("COFRE_KEYS") ?? file["keys"] ?? "./keys"
        return Resolved(
            policy: policy ?? env("COFRE_POLICY") ?? file["policy"] ?? "./deploy/policy.example.yaml",
            database: database ?? env("COFRE_DATABASE") ?? file["database"] ?? "sqlite:./data/cofre.sqlite",
            keyStore: keyStore ?? env("COFRE_KEY_STORE") ?? file["key_store"] ?? "sqlite:\((keys as NSString).appendingPathComponent("datakeys.sqlite"))",
            keys: keys,
            file: file,
            production: env("COFRE_ENV") == "production",
            kekEnvironment: env("COFRE_KEK"),
            kekFile: env("COFRE_KEK_FILE") ?? file["kek_file"],
            allowSharedCluster: allowSharedCluster || ["1", "true", "yes"].contains(env("COFRE_ALLOW_SHARED_CLUSTER") ?? file["allow_shared_cluster"] ?? ""))
    }
}

/// A command-line failure with a message meant for a person.
public struct CLIError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
