import ArgumentParser
import CofreCore
import Foundation
import Logging

/// `cofre keys status`: the key ring's versions and how many data keys each still wraps.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Inspect the key ring (operator, on the vault's host).", subcommands: [Status.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "KEK versions, the primary, and data keys per version.")
        @OptionGroup var options: RuntimeOptions
        @Flag var json = false

        func run() async throws {
            let vault = try await Bootstrap.openVault(options.resolve(), logger: Logging.make("cofre", level: "warning"))
            let ring = vault.dataKeys.ring
            let counts = try await vault.dataKeys.store.countByKEKVersion()
            let fmt = ISO8601DateFormatter()
            if json {
                let versions: [[String: any Sendable]] = ring.versions.map { v in
                    ["version": Int(v), "primary": v == ring.primaryVersion, "data_keys": counts[v] ?? 0,
                     "created_at": ring.createdAt[v].map(fmt.string(from:)) ?? ""]
                }
                print(try jsonLine(["primary": Int(ring.primaryVersion), "versions": versions]))
                return
            }
            print(pad("VERSION", 9) + pad("PRIMARY", 9) + pad("DATA KEYS", 11) + "CREATED")
            for v in ring.versions {
                print(pad("v\(v)", 9) + pad(v == ring.primaryVersion ? "yes" : "", 9) + pad("\(counts[v] ?? 0)", 11)
                      + (ring.createdAt[v].map(fmt.string(from:)) ?? "-"))
            }
        }
    }
}
