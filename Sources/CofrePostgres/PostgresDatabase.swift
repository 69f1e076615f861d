import Foundation
import Logging
import NIOSSL
public import PostgresNIO

/// Connection settings parsed from a `postgres://user:password@host:port/database?sslmode=…` URL.
public enum PostgresDatabase {
    /// Never logs a query or its binds: the driver's logs go nowhere.
    static let silent = Logger(label: "cofre.postgres") { _ in SwiftLogNoOpLogHandler() }

    public struct URLError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Parses the URL; errors name what is wrong, never the password.
    public static func configuration(_ url: String) throws -> PostgresClient.Configuration {
        guard let c = URLComponents(string: url), c.scheme == "postgres" || c.scheme == "postgresql" else {
            throw URLError(description: "expected postgres://user:password@host:port/database")
        }
        guard let host = c.host, !host.isEmpty else { throw URLError(description: "the PostgreSQL URL has no host") }
        guard let user = c.user, !user.isEmpty else { throw URLError(description: "the PostgreSQL URL has no user") }
        let database = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        guard !database.isEmpty else { throw URLError(description: "the PostgreSQL URL has no database name") }
        let mode = c.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        let tls: PostgresClient.Configuration.TLS
        switch mode {
        case "disable": tls = .disable
        case "prefer": tls = .prefer(.makeClientConfiguration())
        case "require", "verify-full": tls = .require(.makeClientConfiguration())
        default: throw URLError(description: "sslmode must be disable, prefer, require or verify-full")
        }
        var config = PostgresClient.Configuration(host: host, port: c.port ?? 5432, username: user, password: c.password,
                                                  database: database, tls: tls)
        config.options.maximumConnections = 20
        // Every commit of the vault is durable before it is acknowledged, whatever the cluster, database
        // or role default says (a client's startup parameter overrides them all).
        config.options.additionalStartupParameters = [("synchronous_commit", "on")]
        return config
    }

    static func millis(_ d: Date) -> Int64 { Int64((d.timeIntervalSince1970 * 1000).rounded(.down)) }
    static func date(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }

    /// Applies named migrations once each, under an advisory lock so concurrent instances do not race.
    static func migrate(_ client: PostgresClient, table: String, _ migrations: [(String, [String])]) async throws {
        try await client.transaction(logger: silent) { conn in
            try await conn.run(PostgresQuery(unsafeSQL: "SELECT pg_advisory_xact_lock(hashtext('\(table)'))"), logger: silent)
            try await conn.run(PostgresQuery(unsafeSQL: "CREATE TABLE IF NOT EXISTS \(table) (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)"),
                                 logger: silent)
            var applied = Set<String>()
            for try await name in try await conn.run(PostgresQuery(unsafeSQL: "SELECT name FROM \(table)"), logger: silent).decode(String.self) {
                applied.insert(name)
            }
            for (name, statements) in migrations where !applied.contains(name) {
                for sql in statements { try await conn.run(PostgresQuery(unsafeSQL: sql), logger: silent) }
                try await conn.run("INSERT INTO \(unescaped: table) (name, applied_at) VALUES (\(name), \(millis(Date())))", logger: silent)
            }
        }
    }
}
