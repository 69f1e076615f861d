import CFaultVFS
import Foundation

/// The reliability suite's SQLite VFS (see `Tests/CFaultVFS/include/faultvfs.h`): installed once as
/// the process's default VFS; files outside a watched directory pass straight through it.
public enum FaultVFS {
    public enum Fault: Int32, Sendable {
        case none = 0
        /// Every write answers SQLITE_FULL, as a full disk does.
        case diskFull = 1
        /// Writes and syncs answer an I/O error.
        case writeIOError = 2
        /// Reads fail too.
        case allIOError = 3
    }

    /// Installs the VFS (idempotent).
    public static func install() {
        let rc = faultvfs_install()
        precondition(rc == 0, "the fault VFS could not be registered (SQLite code \(rc))")
    }

    /// Tracks every SQLite file under `directory`, keeping the durable image of each under `image`.
    public static func watch(_ directory: String, image: String) {
        install()
        _ = faultvfs_watch(directory, image)
    }

    public static func unwatch(_ directory: String) { faultvfs_unwatch(directory) }

    /// Injects `fault` into the tracked files whose path starts with `prefix`.
    public static func set(_ fault: Fault, prefix: String) { faultvfs_set_fault(prefix, fault.rawValue) }

    /// Writes what a power cut would leave of the files under `directory` into `output`: the synced
    /// image plus each unsynced write with probability `keep` (0…1). Returns how many files it wrote.
    @discardableResult
    public static func powerCut(_ directory: String, into output: String, keep: Double, seed: UInt32) throws -> Int {
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let n = faultvfs_power_cut(directory, output, Int32((keep * 1000).rounded()), seed)
        guard n >= 0 else { throw CocoaError(.fileWriteUnknown) }
        return Int(n)
    }

    /// Syncs that reached the image, and writes not synced yet, under `directory`.
    public static func stats(_ directory: String) -> (syncs: Int, pendingWrites: Int) {
        var syncs = 0, pending = 0
        faultvfs_stats(directory, &syncs, &pending)
        return (syncs, pending)
    }
}
