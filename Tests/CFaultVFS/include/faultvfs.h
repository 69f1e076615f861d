// A SQLite VFS for the reliability suite (tests only): it wraps the system's default VFS and, for
// the files under a watched directory,
//  - keeps a "disk image" of what has been made durable: a write or truncate reaches the image only
//    when the file is synced (xSync), as a page cache that loses everything unsynced at a power cut;
//  - injects faults on demand: a full disk or an I/O error, for the files whose path starts with a
//    given prefix.
// Files outside every watched directory are passed straight through.
#ifndef COFRE_FAULTVFS_H
#define COFRE_FAULTVFS_H

#ifdef __cplusplus
extern "C" {
#endif

/// Registers the VFS as SQLite's default (once; later calls do nothing). Returns a SQLite result code.
int faultvfs_install(void);

/// Tracks every file SQLite opens under `dir` (an absolute path without a trailing slash); their
/// durable image lives under `image_dir`, with the same relative paths.
int faultvfs_watch(const char *dir, const char *image_dir);

/// Stops tracking `dir` (files already open stay tracked until they are closed or deleted).
void faultvfs_unwatch(const char *dir);

/// Fault kinds.
enum {
    FAULTVFS_NONE = 0,
    FAULTVFS_DISK_FULL = 1,   ///< xWrite answers SQLITE_FULL, nothing is written.
    FAULTVFS_WRITE_EIO = 2,   ///< xWrite and xSync answer an I/O error, nothing is written.
    FAULTVFS_ALL_EIO = 3,     ///< reads fail too.
};

/// Sets the fault for tracked files whose path starts with `prefix` (NONE clears it).
void faultvfs_set_fault(const char *prefix, int kind);

/// Simulates a power cut under `dir`: writes the disk image of every tracked file into `out_dir`
/// (same relative paths): what was synced, plus each unsynced write with probability
/// `keep_permille`/1000 (a page cache may have flushed some of them on its own), chosen with `seed`.
/// Returns the number of files written, or -1.
int faultvfs_power_cut(const char *dir, const char *out_dir, int keep_permille, unsigned int seed);

/// Counts of syncs that reached an image and of unsynced writes now pending, under `dir`.
void faultvfs_stats(const char *dir, long *syncs, long *pending_writes);

#ifdef __cplusplus
}
#endif
#endif
