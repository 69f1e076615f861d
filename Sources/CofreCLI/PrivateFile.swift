import Foundation
import CofreClient

/// Writes files that hold personal data or keys (an export, a checkpoint) so that nobody else can
/// read them and nothing planted can redirect them: the bytes go to a fresh temporary created with
/// `O_CREAT|O_EXCL|O_NOFOLLOW` and mode 0600 beside the target, are flushed with `fsync`, and the
/// temporary is then linked into place, refusing an existing target (a file or a symbolic link)
/// unless `force`, which replaces the target itself, never what a link points to.
enum PrivateFile {
    static func write(to path: String, force: Bool, _ fill: (FileHandle) async throws -> Void) async throws {
        var st = stat()
        if lstat(path, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFDIR { throw CLIError("'\(path)' is a directory") }
            guard force else { throw CLIError("'\(path)' already exists; pass --force to replace it") }
        }
        let suffix = (0..<8).map { _ in String(UInt8.random(in: 0...35), radix: 36) }.joined()
        let tmp = path + ".part-" + suffix
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CLIError("cannot create a private file beside '\(path)' (errno \(errno))") }
        // The umask can only take bits away; make sure nothing but the owner may read it.
        guard fchmod(fd, 0o600) == 0 else { close(fd); unlink(tmp); throw CLIError("cannot make '\(path)' private") }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        do {
            try await fill(handle)
            try handle.synchronize()
            try handle.close()
            if force {
                guard rename(tmp, path) == 0 else { throw CLIError("cannot write '\(path)' (errno \(errno))") }
            } else {
                // link(2) fails if the target appeared meanwhile: no check-then-write race.
                guard link(tmp, path) == 0 else {
                    throw CLIError(errno == EEXIST ? "'\(path)' already exists; pass --force to replace it" : "cannot write '\(path)' (errno \(errno))")
                }
                unlink(tmp)
            }
        } catch {
            unlink(tmp)
            throw error
        }
        // The directory entry itself must survive a crash too.
        let dir = open((path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY)
        if dir >= 0 { _ = fsync(dir); close(dir) }
    }

    /// A streamed answer (an export, an incident scope) to standard output, or, with `out`, to a new
    /// private file as `write` makes it. Returns whether it went to a file.
    @discardableResult
    static func stream(to out: String?, force: Bool, client: ClientOptions, endLine: Bool,
                       _ fetch: (CofreClient, (Data) -> Void) async throws -> Void) async throws -> Bool {
        guard let out else {
            try await VaultConnection.with(client) { vault in try await fetch(vault) { FileHandle.standardOutput.write($0) } }
            if endLine { print("") }
            return false
        }
        try await write(to: out, force: force) { handle in
            try await VaultConnection.with(client) { vault in try await fetch(vault) { handle.write($0) } }
        }
        return true
    }

    static func write(to path: String, force: Bool, contents: Data) async throws {
        try await write(to: path, force: force) { try $0.write(contentsOf: contents) }
    }
}
