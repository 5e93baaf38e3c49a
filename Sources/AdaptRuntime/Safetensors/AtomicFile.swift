#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file that could not be written; the message names the target path.
public struct FileWriteError: Error, CustomStringConvertible, Sendable {
    /// The one line a tool prints: the path and what failed.
    public var message: String

    /// An error with its message.
    public init(_ message: String) {
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

/// Writes files so that a crash or a full disk never leaves a half-written
/// one (DESIGN §5): the bytes go to a temporary file in the target's folder —
/// the same file system, so `rename` is atomic — which is synced and then
/// renamed over the target. Readers see the old file or the new one, never a mix.
public enum AtomicFile {
    /// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it over `path`.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let (folder, name) = split(path)
        let temporary = "\(folder)/.\(name).tmp-\(getpid())-\(String(UInt64.random(in: .min ... .max), radix: 16))"
        // O_EXCL: never follow or reuse a file someone else put at that name.
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard descriptor >= 0 else {
            throw failure(path, "cannot create a temporary file in \(folder)")
        }
        do {
            try writeAll(bytes, to: descriptor, path: path)
            guard fsync(descriptor) == 0 else { throw failure(path, "cannot sync") }
        } catch {
            close(descriptor)
            unlink(temporary)
            throw error
        }
        // close reports delayed write errors on some file systems (NFS).
        guard close(descriptor) == 0 else {
            let closeError = failure(path, "cannot close")
            unlink(temporary)
            throw closeError
        }
        guard rename(temporary, path) == 0 else {
            let renameError = failure(path, "cannot replace")
            unlink(temporary)
            throw renameError
        }
        syncFolder(folder)
    }

    /// A file written piece by piece with the same guarantees: the pieces go
    /// to a temporary file next to `path`, and only `commit()` (sync, rename)
    /// makes it appear. Dropped without `commit()`, the temporary file is removed.
    public final class Stream {
        /// The file that `commit()` creates or replaces.
        public let path: String
        private let temporary: String
        private let folder: String
        private var descriptor: Int32

        /// Opens a temporary file beside `path`; nothing is visible at `path` until `commit()`.
        public init(path: String) throws {
            self.path = path
            let (folder, name) = AtomicFile.split(path)
            self.folder = folder
            temporary = "\(folder)/.\(name).tmp-\(getpid())-\(String(UInt64.random(in: .min ... .max), radix: 16))"
            descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            guard descriptor >= 0 else { throw AtomicFile.failure(path, "cannot create a temporary file in \(folder)") }
        }

        /// Appends bytes to the temporary file.
        public func write(_ bytes: UnsafeRawBufferPointer) throws {
            try writeAll(bytes, to: descriptor, path: path)
        }

        /// Appends bytes to the temporary file.
        public func write(_ bytes: [UInt8]) throws {
            try bytes.withUnsafeBytes { try write($0) }
        }

        /// Syncs the temporary file and renames it over `path`.
        public func commit() throws {
            guard fsync(descriptor) == 0 else { throw AtomicFile.failure(path, "cannot sync") }
            let closed = close(descriptor)
            descriptor = -1
            guard closed == 0 else { throw AtomicFile.failure(path, "cannot close") }
            guard rename(temporary, path) == 0 else { throw AtomicFile.failure(path, "cannot replace") }
            AtomicFile.syncFolder(folder)
        }

        deinit {
            if descriptor >= 0 {
                close(descriptor)
                unlink(temporary)
            }
        }
    }

    /// The string's UTF-8 bytes, written as above.
    public static func write(_ contents: String, to path: String) throws {
        try write(Array(contents.utf8), to: path)
    }

    /// Makes the rename itself durable. Best effort: some file systems refuse
    /// to sync a folder, and by now the new file is complete and in place.
    fileprivate static func syncFolder(_ folder: String) {
        let descriptor = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        fsync(descriptor)
        close(descriptor)
    }

    /// (folder, file name); the folder is "." for a bare name.
    fileprivate static func split(_ path: String) -> (folder: String, name: Substring) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path[...]) }
        let folder = path[..<slash]
        return (folder.isEmpty ? "/" : String(folder), path[path.index(after: slash)...])
    }

    /// Reads `errno` first, before anything else can change it.
    fileprivate static func failure(_ path: String, _ action: String) -> FileWriteError {
        let reason = String(cString: strerror(errno))
        return FileWriteError("\(path): \(action): \(reason)")
    }
}

/// Loops because `write` may write less than asked, or be interrupted. At file
/// scope so that `write` means the system call, not `AtomicFile.write`.
private func writeAll(_ bytes: [UInt8], to descriptor: Int32, path: String) throws {
    try bytes.withUnsafeBytes { try writeAll($0, to: descriptor, path: path) }
}

private func writeAll(_ buffer: UnsafeRawBufferPointer, to descriptor: Int32, path: String) throws {
    var written = 0
    while written < buffer.count {
        let result = write(descriptor, buffer.baseAddress! + written, buffer.count - written)
        if result < 0 {
            if errno == EINTR { continue }
            throw AtomicFile.failure(path, "cannot write")
        }
        written += result
    }
}
