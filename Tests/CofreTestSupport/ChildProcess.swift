import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn(3), for the tests that run `cofre`, `curl`, `script`, `pg_dump`….
///
/// The tests do not use `Foundation.Process`: on Swift 6.3.1 its `run()` reads past a buffer in
/// `findMaximumOpenFromProcSelfFD` (swift-corelibs-foundation PR #5472) and crashed about one suite run
/// in five with SIGSEGV.
///
/// What the child gets, as `Foundation.Process` gave it:
/// - `arguments` after the executable's path as `argv[0]`; the environment given, or this process's;
///   the working directory given, or this process's;
/// - standard input, output and error each from a `Stream`: a pipe to this process, /dev/null, or a file;
/// - no other file descriptor of this process: the pipes and files opened here are close-on-exec, and
///   where glibc has `posix_spawn_file_actions_addclosefrom_np` (2.34 and later) the child closes every
///   descriptor from 3 up before it runs the program, as `Process` did;
/// - a process group of its own (`POSIX_SPAWN_SETPGROUP`, as `Process`), an empty signal mask and
///   every signal at its default action, whatever this process blocks or ignores.
///
/// The child is reaped by this object only (`isRunning`, `waitUntilExit()`), under a lock, and signals
/// go only to a child not yet reaped, so a recycled pid never receives one.
public final class ChildProcess: @unchecked Sendable {
    /// Where one of the child's standard streams comes from or goes to.
    public enum Stream: Sendable, Hashable {
        /// A pipe to this process. Standard input: write it with `communicate(input:)`; output and error:
        /// `communicate(input:)` reads them. The parent's end is `standardInput` / `standardOutput` / `standardError`.
        case pipe
        /// /dev/null.
        case null
        /// A file. Standard input reads it. Standard output and error write to it, created if missing
        /// (mode 0644), appended to with `append`, emptied first without. Output and error to the same
        /// file share one open file, as a shell's `>log 2>&1`.
        case file(String, append: Bool)
    }

    /// A step of starting a child that failed: what, and the errno.
    public struct SpawnError: Error, CustomStringConvertible {
        /// What failed, e.g. `posix_spawn of /usr/bin/curl (working directory /tmp/x)`.
        public let what: String
        public let errno: Int32
        public var description: String { "\(what) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
    }

    /// The child's process id.
    public let pid: Int32
    /// The executable's absolute path.
    public let executable: String
    public let arguments: [String]

    private enum State {
        case running
        /// Reaped; the raw wait status.
        case exited(Int32)
        /// Reaped by someone else (waitpid said ECHILD): gone, status unknown.
        case lost
    }

    private let lock = NSLock()
    private var state = State.running
    private var stdinFD: Int32?
    private var stdoutFD: Int32?
    private var stderrFD: Int32?

    /// Starts `executable` with `arguments`.
    /// - Parameters:
    ///   - executable: a path; a relative one is taken from this process's working directory (not `directory`).
    ///   - environment: the child's whole environment; nil gives it this process's.
    ///   - directory: the child's working directory; nil keeps this process's.
    public init(_ executable: String, _ arguments: [String] = [], environment: [String: String]? = nil,
                directory: String? = nil, stdin: Stream = .null, stdout: Stream = .null, stderr: Stream = .null) throws {
        let path = executable.hasPrefix("/") ? executable : FileManager.default.currentDirectoryPath + "/" + executable
        self.executable = path
        self.arguments = arguments

        // Everything opened here is close-on-exec and above 2. `childSide` are the parent's copies of the
        // child's ends (closed here after the spawn), `parentSide` the pipe ends this object keeps.
        var childSide = Set<Int32>()
        var parentSide = Set<Int32>()
        var opened: [Stream: Int32] = [:]
        func closeAll() {
            for fd in childSide.union(parentSide) { _ = close(fd) }
        }
        func setUp(_ stream: Stream, _ target: Int32) throws -> (child: Int32, parent: Int32?) {
            switch stream {
            case .pipe:
                var ends: [Int32] = [-1, -1]
                guard let pipe2 = GNU.pipe2 else { throw SpawnError(what: "pipe2 (not in this libc)", errno: ENOSYS) }
                guard pipe2(&ends, O_CLOEXEC) == 0 else { throw SpawnError(what: "pipe2", errno: errno) }
                let read = try aboveStandardStreams(ends[0]), write = try aboveStandardStreams(ends[1])
                let (child, parent) = target == STDIN_FILENO ? (read, write) : (write, read)
                childSide.insert(child)
                parentSide.insert(parent)
                return (child, parent)
            case .null, .file:
                // Output and error to the same place share one open file.
                if target != STDIN_FILENO, let fd = opened[stream] { return (fd, nil) }
                let fd: Int32
                switch stream {
                case .file(let file, let append):
                    fd = target == STDIN_FILENO
                        ? open(file, O_RDONLY | O_CLOEXEC)
                        : open(file, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0o644)
                    guard fd >= 0 else { throw SpawnError(what: "open \(file)", errno: errno) }
                default:
                    fd = open("/dev/null", O_RDWR | O_CLOEXEC)
                    guard fd >= 0 else { throw SpawnError(what: "open /dev/null", errno: errno) }
                }
                let moved = try aboveStandardStreams(fd)
                childSide.insert(moved)
                if target != STDIN_FILENO { opened[stream] = moved }
                return (moved, nil)
            }
        }

        let input: (child: Int32, parent: Int32?), output: (child: Int32, parent: Int32?), error: (child: Int32, parent: Int32?)
        do {
            input = try setUp(stdin, STDIN_FILENO)
            output = try setUp(stdout, STDOUT_FILENO)
            error = try setUp(stderr, STDERR_FILENO)
        } catch {
            closeAll()
            throw error
        }

        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        func check(_ result: Int32, _ what: String) throws {
            guard result == 0 else { closeAll(); throw SpawnError(what: what, errno: result) }
        }
        // dup2 clears close-on-exec on the target; the originals (all above 2) are closed after.
        try check(posix_spawn_file_actions_adddup2(&actions, input.child, STDIN_FILENO), "posix_spawn_file_actions_adddup2")
        try check(posix_spawn_file_actions_adddup2(&actions, output.child, STDOUT_FILENO), "posix_spawn_file_actions_adddup2")
        try check(posix_spawn_file_actions_adddup2(&actions, error.child, STDERR_FILENO), "posix_spawn_file_actions_adddup2")
        for fd in childSide.union(parentSide).sorted() {
            try check(posix_spawn_file_actions_addclose(&actions, fd), "posix_spawn_file_actions_addclose")
        }
        if let closeFrom = GNU.addCloseFrom {
            try check(closeFrom(&actions, 3), "posix_spawn_file_actions_addclosefrom_np")
        }
        if let directory {
            guard let addChdir = GNU.addChdir else { closeAll(); throw SpawnError(what: "posix_spawn_file_actions_addchdir_np (not in this libc)", errno: ENOSYS) }
            try check(addChdir(&actions, directory), "posix_spawn_file_actions_addchdir_np \(directory)")
        }

        try check(posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)),
                  "posix_spawnattr_setflags")
        try check(posix_spawnattr_setpgroup(&attributes, 0), "posix_spawnattr_setpgroup")
        var noSignals = sigset_t(), allSignals = sigset_t()
        sigemptyset(&noSignals)
        sigfillset(&allSignals)
        try check(posix_spawnattr_setsigmask(&attributes, &noSignals), "posix_spawnattr_setsigmask")
        try check(posix_spawnattr_setsigdefault(&attributes, &allSignals), "posix_spawnattr_setsigdefault")

        let argv = ([path] + arguments).map { strdup($0) }
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } }
            ?? ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") }
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let spawned = (argv + [nil]).withUnsafeBufferPointer { argvBuffer in
            (envp + [nil]).withUnsafeBufferPointer { envpBuffer in
                posix_spawn(&child, path, &actions, &attributes, argvBuffer.baseAddress!, envpBuffer.baseAddress!)
            }
        }
        // glibc reports the exec's failure (no such file, not executable, the chdir's) as the result.
        try check(spawned, "posix_spawn of \(path)" + (directory.map { " (working directory \($0))" } ?? ""))
        pid = child
        for fd in childSide { _ = close(fd) }
        stdinFD = input.parent
        stdoutFD = output.parent
        stderrFD = error.parent
    }

    deinit {
        for fd in [stdinFD, stdoutFD, stderrFD].compactMap({ $0 }) { _ = close(fd) }
        reapIfExited()   // no zombie when it has already exited; a child still running is left running
    }

    /// The parent's end of the standard input pipe (write end), while open; nil unless stdin is `.pipe`.
    public var standardInput: Int32? { lock.withLock { stdinFD } }
    /// The parent's end of the standard output pipe (read end), while open; nil unless stdout is `.pipe`.
    public var standardOutput: Int32? { lock.withLock { stdoutFD } }
    /// The parent's end of the standard error pipe (read end), while open; nil unless stderr is `.pipe`.
    public var standardError: Int32? { lock.withLock { stderrFD } }

    /// Whether the child has not exited yet (waitpid with WNOHANG; once it has, the status is kept).
    public var isRunning: Bool {
        lock.withLock {
            reapLocked()
            if case .running = state { return true }
            return false
        }
    }

    /// Waits until the child has exited (and reaps it). Returns at once if it has.
    public func waitUntilExit() {
        while isRunning {
            // Waits without reaping, so only `reapLocked` reaps, under the lock; EINTR just loops.
            var info = siginfo_t()
            _ = waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT)
        }
    }

    /// As a shell's `$?`: the exit code (0…255) when the child exited, 128 + the signal's number when a
    /// signal ended it (SIGTERM 143, SIGKILL 137); -1 if something else reaped it. Waits for the exit first.
    public var terminationStatus: Int32 {
        waitUntilExit()
        return lock.withLock {
            switch state {
            case .exited(let status):
                let signal = status & 0x7f
                return signal == 0 ? (status >> 8) & 0xff : 128 + signal
            case .running, .lost:
                return -1
            }
        }
    }

    /// The signal that ended the child, or nil if it exited by itself (or has not yet). Does not wait.
    public var terminationSignal: Int32? {
        lock.withLock {
            reapLocked()
            guard case .exited(let status) = state, status & 0x7f != 0 else { return nil }
            return status & 0x7f
        }
    }

    /// Sends `signal` to the child if it has not been reaped; returns whether kill(2) succeeded.
    @discardableResult
    public func signal(_ signal: Int32) -> Bool {
        lock.withLock {
            guard case .running = state else { return false }
            return Glibc.kill(pid, signal) == 0
        }
    }

    /// SIGTERM.
    public func terminate() { signal(SIGTERM) }

    /// SIGKILL.
    public func kill() { signal(SIGKILL) }

    /// Writes `input` to the child's standard input and closes it, while reading its standard output and
    /// error to their ends, in one poll(2) loop, so a child that fills one pipe while this process waits
    /// on another cannot deadlock. Only the streams that are `.pipe` take part; each is closed after.
    /// A child that closes its input early gets the rest of `input` dropped (EPIPE, with SIGPIPE held off
    /// this thread). Returns what was read; call it once.
    public func communicate(input: [UInt8] = []) throws -> (stdout: [UInt8], stderr: [UInt8]) {
        var (inFD, outFD, errFD) = lock.withLock {
            defer { stdinFD = nil; stdoutFD = nil; stderrFD = nil }
            return (stdinFD, stdoutFD, stderrFD)
        }
        defer { for fd in [inFD, outFD, errFD].compactMap({ $0 }) { _ = close(fd) } }
        if let fd = inFD, input.isEmpty {
            _ = close(fd)
            inFD = nil
        }
        var pipeSignal = sigset_t(), previousMask = sigset_t()
        var brokenPipe = false
        if let fd = inFD {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            sigemptyset(&pipeSignal)
            sigaddset(&pipeSignal, SIGPIPE)
            pthread_sigmask(SIG_BLOCK, &pipeSignal, &previousMask)
        }
        defer {
            if sigismember(&pipeSignal, SIGPIPE) == 1 {
                // Take back the SIGPIPE the broken pipe raised on this thread, then unblock.
                if brokenPipe && sigismember(&previousMask, SIGPIPE) != 1 {
                    var now = timespec(tv_sec: 0, tv_nsec: 0)
                    _ = sigtimedwait(&pipeSignal, nil, &now)
                }
                pthread_sigmask(SIG_SETMASK, &previousMask, nil)
            }
        }

        var out: [UInt8] = [], err: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var written = 0
        while inFD != nil || outFD != nil || errFD != nil {
            var fds: [pollfd] = []
            if let fd = inFD { fds.append(pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)) }
            if let fd = outFD { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            if let fd = errFD { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            if poll(&fds, nfds_t(fds.count), -1) == -1 {
                if errno == EINTR { continue }
                throw SpawnError(what: "poll on the pipes of \(executable)", errno: errno)
            }
            for ready in fds where ready.revents != 0 {
                if ready.fd == inFD {
                    let n = input.withUnsafeBytes { bytes in
                        write(ready.fd, bytes.baseAddress! + written, min(bytes.count - written, 65536))
                    }
                    let code = errno
                    if n > 0 {
                        written += n
                        if written < input.count { continue }
                    } else if n == -1 && (code == EAGAIN || code == EINTR) {
                        continue
                    } else if n == -1 {
                        brokenPipe = code == EPIPE
                    } else {
                        continue
                    }
                    _ = close(ready.fd)
                    inFD = nil
                } else {
                    let n = read(ready.fd, &buffer, buffer.count)
                    if n > 0 {
                        if ready.fd == outFD { out += buffer[..<n] } else { err += buffer[..<n] }
                        continue
                    }
                    if n == -1 && (errno == EAGAIN || errno == EINTR) { continue }
                    // End of file (or a read error): this stream is done.
                    _ = close(ready.fd)
                    if ready.fd == outFD { outFD = nil } else { errFD = nil }
                }
            }
        }
        return (out, err)
    }

    /// Runs `path` with `args` to its end: writes `stdin` to its standard input (nil: /dev/null; a string,
    /// even empty: a pipe closed after it), reads its standard output and error concurrently, waits.
    /// `status` is `terminationStatus` (128 + the signal's number when a signal ended it).
    public static func run(_ path: String, _ args: [String], environment: [String: String]? = nil,
                           directory: String? = nil, stdin: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let child = try ChildProcess(path, args, environment: environment, directory: directory,
                                     stdin: stdin == nil ? .null : .pipe, stdout: .pipe, stderr: .pipe)
        let output: (stdout: [UInt8], stderr: [UInt8])
        do {
            output = try child.communicate(input: Array((stdin ?? "").utf8))
        } catch {
            child.kill()
            child.waitUntilExit()
            throw error
        }
        return (child.terminationStatus, String(decoding: output.stdout, as: UTF8.self), String(decoding: output.stderr, as: UTF8.self))
    }

    private func reapIfExited() {
        lock.withLock { reapLocked() }
    }

    /// With the lock held: reaps the child if it has exited, never blocking.
    private func reapLocked() {
        guard case .running = state else { return }
        var status: Int32 = 0
        var result: pid_t
        repeat { result = waitpid(pid, &status, WNOHANG) } while result == -1 && errno == EINTR
        if result == pid {
            state = .exited(status)
        } else if result == -1 {
            state = .lost
        }
    }
}

/// `fd` itself if above 2, else a close-on-exec copy above 2 (`fd` closed), so no dup2 onto 0…2 is ever
/// a no-op that keeps close-on-exec.
private func aboveStandardStreams(_ fd: Int32) throws -> Int32 {
    guard fd <= 2 else { return fd }
    let copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
    let code = errno
    _ = close(fd)
    guard copy >= 0 else { throw ChildProcess.SpawnError(what: "fcntl F_DUPFD_CLOEXEC", errno: code) }
    return copy
}

/// The GNU extensions glibc declares only under _GNU_SOURCE, which Swift's Glibc module does not define:
/// looked up by name instead. nil where this libc lacks one.
private enum GNU {
    typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32
    typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32

    static let pipe2 = symbol("pipe2", Pipe2.self)
    /// glibc 2.29 and later.
    static let addChdir = symbol("posix_spawn_file_actions_addchdir_np", AddChdir.self)
    /// glibc 2.34 and later.
    static let addCloseFrom = symbol("posix_spawn_file_actions_addclosefrom_np", AddCloseFrom.self)

    private static func symbol<F>(_ name: String, _ type: F.Type) -> F? {
        // A nil handle is RTLD_DEFAULT: the process's global symbols, libc's among them.
        dlsym(nil, name).map { unsafeBitCast($0, to: F.self) }
    }
}
