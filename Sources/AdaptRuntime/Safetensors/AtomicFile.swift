#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file that could not be written; the message names the target path.
public struct FileWriteError: Error, CustomStringConvertible, Sendable {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// Writes files so that a crash or a full disk never leaves a half-written
/// one (DESIGN §5): the bytes go to a temporary file in the target's folder —
/// the same file system, so `rename` is atomic — which is synced and then
/// renamed over the target. Readers see the old file or the new one, never a mix.
/// What a path may be (symlink, device, FIFO, folder) is `OutputDestination`'s rule.
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let output = try OutputFile(path: path)
        try bytes.withUnsafeBytes { try output.write($0) }
        try output.commit()
    }

    /// A file written piece by piece with the same guarantees (and the same
    /// rules for symlinks, FIFOs and devices): see `OutputFile`.
    public typealias Stream = OutputFile

    /// The string's UTF-8 bytes, written as above.
    public static func write(_ contents: String, to path: String) throws {
        try write(Array(contents.utf8), to: path)
    }

    /// Reads `errno` first, before anything else can change it.
    static func failure(_ path: String, _ action: String) -> FileWriteError {
        let reason = String(cString: strerror(errno))
        return FileWriteError("\(path): \(action): \(reason)")
    }
}

/// An output being written piece by piece (so a large file never has to be
/// held in memory whole) that appears at its path only on `commit()`; one
/// dropped without `commit()` (an error was thrown) removes its temporary
/// file, and the previous file at the path is untouched. Into a FIFO or a
/// character device the bytes go straight away: there is nothing to replace.
public final class OutputFile {
    /// The path as the caller gave it; every error names it.
    public let path: String
    private var descriptor: Int32
    /// The temporary file and the file it will replace; nil when streaming.
    private let replacement: (temporary: String, target: String)?
    private var finished = false

    public init(path: String) throws {
        self.path = path
        switch try OutputDestination.resolve(path) {
        case .stream(let device, let append):
            descriptor = open(device, O_WRONLY | O_CLOEXEC | (append ? O_APPEND : 0))
            guard descriptor >= 0 else { throw AtomicFile.failure(path, "cannot open") }
            replacement = nil
        case .replace(let target, let mode):
            let folder = OutputDestination.folder(of: target)
            let name = target.split(separator: "/").last.map(String.init) ?? target
            let temporary = "\(folder)/.\(name).tmp-\(getpid())-\(String(UInt64.random(in: .min ... .max), radix: 16))"
            // O_EXCL: never follow or reuse a file someone else put at that name.
            descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            guard descriptor >= 0 else { throw AtomicFile.failure(path, "cannot create a temporary file in \(folder)") }
            // The replacement keeps the permissions of the file it replaces.
            if let mode { fchmod(descriptor, mode) }
            replacement = (temporary, target)
        }
    }

    deinit {
        guard !finished else { return }
        close(descriptor)
        if let replacement { unlink(replacement.temporary) }
    }

    /// Loops because `write` may write less than asked, or be interrupted.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!finished, "OutputFile.write after commit")
        var written = 0
        while written < bytes.count {
            let result = systemWrite(descriptor, bytes.baseAddress! + written, bytes.count - written)
            if result < 0 {
                if errno == EINTR { continue }
                throw AtomicFile.failure(path, "cannot write")
            }
            written += result
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Syncs and puts the file in place; after an error the old file is still there.
    public func commit() throws {
        precondition(!finished, "OutputFile.commit twice")
        guard let replacement else {
            finished = true
            guard close(descriptor) == 0 else { throw AtomicFile.failure(path, "cannot close") }
            return
        }
        guard fsync(descriptor) == 0 else { throw AtomicFile.failure(path, "cannot sync") }
        finished = true
        // close reports delayed write errors on some file systems (NFS).
        guard close(descriptor) == 0 else {
            let closeError = AtomicFile.failure(path, "cannot close")
            unlink(replacement.temporary)
            throw closeError
        }
        guard rename(replacement.temporary, replacement.target) == 0 else {
            let renameError = AtomicFile.failure(path, "cannot replace")
            unlink(replacement.temporary)
            throw renameError
        }
        Self.syncFolder(OutputDestination.folder(of: replacement.target))
    }

    /// Makes the rename itself durable. Best effort: some file systems refuse
    /// to sync a folder, and by now the new file is complete and in place.
    private static func syncFolder(_ folder: String) {
        let descriptor = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        fsync(descriptor)
        close(descriptor)
    }
}

/// At file scope so that `write` means the system call, not `OutputFile.write`.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
