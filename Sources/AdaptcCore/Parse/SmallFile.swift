import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reads a file that must be small (a spec, adapter_config.json, a sharded
/// index) without trusting it to be: at most `limit` + 1 bytes are ever read,
/// so a huge file, `/dev/zero` or a FIFO that never ends is refused instead of
/// filling memory or hanging. (FileManager's `contents(atPath:)` reads
/// everything first, and leaks a buffer on an empty file.)
enum SmallFile {
    enum Failure: Error {
        /// Missing, a folder, or not readable.
        case unreadable(String)
        /// Larger than the limit: the size when the file says it, else the limit (a stream).
        case tooLarge(bytes: Int)
    }

    static func read(_ path: String, limit: Int) throws(Failure) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .unreadable(String(cString: strerror(errno))) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .unreadable(String(cString: strerror(errno))) }
        if status.st_mode & S_IFMT == S_IFDIR { throw .unreadable("is a folder") }
        let regular = status.st_mode & S_IFMT == S_IFREG
        if regular && Int(status.st_size) > limit { throw .tooLarge(bytes: Int(status.st_size)) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while bytes.count <= limit {
            let wanted = min(chunk.count, limit + 1 - bytes.count)
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress!, wanted) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .unreadable(String(cString: strerror(errno)))
            }
            if count == 0 { return bytes }
            bytes += chunk[0..<count]
        }
        // Grown since fstat, or a stream longer than the limit.
        throw .tooLarge(bytes: regular ? max(Int(status.st_size), bytes.count) : bytes.count)
    }
}
