import ArgumentParser
import CofreCore
import Foundation
import Logging

/// `cofre keys status|rotate|rewrap|retire`: the key-encryption key lifecycle, on the vault's host.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Manage the key ring (operator, on the vault's host).",
        subcommands: [Status.self, Rotate.self, Rewrap.self, Retire.self, Purge.self])

    static func with<T: Sendable>(_ options: RuntimeOptions, _ body: @escaping @Sendable (Vault) async throws -> T) async throws -> T {
        try await Bootstrap.withVault(options.resolve(), logger: Logging.make("cofre", level: "warning"), body)
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "KEK versions, the primary, and data keys per version.")
        @OptionGroup var options: RuntimeOptions
        @Flag var json = false

        func run() async throws {
            let s = try await KeysCommand.with(options) { try await $0.keyStatus() }
            let fmt = ISO8601DateFormatter()
            if json {
                let versions: [[String: any Sendable]] = s.versions.map {
                    ["version": Int($0.version), "primary": $0.primary, "data_keys": $0.dataKeys, "created_at": $0.createdAt.map(fmt.string(from:)) ?? ""]
                }
                print(try jsonLine([
                    "source": s.source, "primary": Int(s.versions.first { $0.primary }!.version), "versions": versions,
                    "system_keys": s.systemKeys.mapValues { Int($0) }, "orphaned_data_keys": s.orphaned,
                    "unneeded_data_keys": s.unneeded, "queued_for_shred": s.queuedForShred,
                    "instances": s.instances.map { i -> [String: any Sendable] in
                        ["id": i.id, "host": i.host, "pid": i.pid, "seen_at": fmt.string(from: i.seenAt),
                         "versions": i.versions.map { Int($0) }, "primary": Int(i.primary), "primary_since": fmt.string(from: i.primarySince)]
                    },
                ]))
                return
            }
            print("source: \(s.source)")
            print(pad("VERSION", 9) + pad("PRIMARY", 9) + pad("DATA KEYS", 11) + "CREATED")
            for v in s.versions {
                print(pad("v\(v.version)", 9) + pad(v.primary ? "yes" : "", 9) + pad("\(v.dataKeys)", 11) + (v.createdAt.map(fmt.string(from:)) ?? "-"))
            }
            print("system keys: " + s.systemKeys.keys.sorted().map { "\($0) under v\(s.systemKeys[$0]!)" }.joined(separator: ", "))
            print("instances seen in the last minute: " + (s.instances.isEmpty ? "none" : ""))
            for i in s.instances {
                print("  \(i.label): loaded \(i.versions.map { "v\($0)" }.joined(separator: ", ")), primary v\(i.primary), seen \(fmt.string(from: i.seenAt))")
            }
            print("unneeded data keys: \(s.unneeded) (\(s.queuedForShred) queued for destruction; the key sweeper in `cofre serve` destroys them)")
            if s.orphaned > 0 { print("WARNING: \(s.orphaned) data key(s) are wrapped by a version that is not loaded") }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a KEK version; every new wrap uses it.")
        @OptionGroup var options: RuntimeOptions

        func run() async throws {
            let v = try await KeysCommand.with(options) { try await $0.rotateKEK() }
            print("Added key-encryption key v\(v); it is now primary. Running servers use it after their next key-ring reload (COFRE_KEY_RELOAD_SECONDS, default 5).")
            print("Next: `cofre keys rewrap`, then `cofre keys retire` the old version once status shows 0 data keys on it.")
        }
    }

    struct Rewrap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-wrap every data key under the primary KEK (no value is decrypted); resumable, safe while serving.")
        @OptionGroup var options: RuntimeOptions
        @Option(help: "Keys per batch.") var batchSize: Int = 500
        @Option(help: "Stop after this many batches (run again to continue).") var maxBatches: Int?

        func run() async throws {
            guard batchSize > 0, (maxBatches ?? 1) > 0 else { throw CLIError("--batch-size and --max-batches must be positive") }
            let (batchSize, maxBatches) = (self.batchSize, self.maxBatches)
            let r = try await KeysCommand.with(options) { try await $0.rewrapDataKeys(batchSize: batchSize, maxBatches: maxBatches) }
            print("Re-wrapped \(r.rewrapped) data key(s); \(r.remaining) remain on older versions.")
        }
    }

    struct Retire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a KEK version; refused while anything still needs it.")
        @OptionGroup var options: RuntimeOptions
        @Argument(help: "The version, as 1 or v1.") var version: String

        func run() async throws {
            let digits = version.hasPrefix("v") ? String(version.dropFirst()) : version
            guard let v = UInt32(digits), v > 0 else { throw CLIError("VERSION must be a number such as 1 or v1") }
            let archived = try await KeysCommand.with(options) { try await $0.retireKEK(v) }
            print("Retired key-encryption key v\(v): archived at \(archived) (mode 0600). Keep it until no key-store backup from before "
                + "the rotation is kept, then run `cofre keys purge v\(v) --backups-gone`.")
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a retired (archived) KEK for good, once no key-store backup from before the rotation is kept.")
        @OptionGroup var options: RuntimeOptions
        @Argument(help: "The version, as 1 or v1.") var version: String
        @Flag(help: "Confirm that every key-store backup older than the rotation that retired this version is gone.")
        var backupsGone = false

        func run() async throws {
            let digits = version.hasPrefix("v") ? String(version.dropFirst()) : version
            guard let v = UInt32(digits), v > 0 else { throw CLIError("VERSION must be a number such as 1 or v1") }
            guard backupsGone else {
                throw CLIError("purging v\(v) makes every key-store backup that still needs it unreadable; once such backups are gone, "
                    + "run again with --backups-gone")
            }
            let path = try await KeysCommand.with(options) { try await $0.purgeKEK(v) }
            print("Purged the archived key-encryption key v\(v) (\(path)).")
        }
    }
}
