#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What an output path (`-o`) may replace, decided before anything is written.
///
/// A rename replaces whatever sits at the path, so renaming blindly would turn
/// `/dev/null` or a FIFO into a regular file and replace a symlink instead of
/// its target. Careful tools (cp, sed --follow-symlinks, curl -o) do this instead:
/// - a regular file, or nothing yet: replaced atomically (temporary file + rename);
/// - a symlink: followed, and the file it names is replaced atomically (a
///   dangling one creates its target), so the link stays a link;
/// - a character device or FIFO (`/dev/null`, `/dev/stdout`, a named pipe):
///   written straight into — there is nothing to rename over;
/// - a descriptor link (`/dev/stdout`, `/dev/fd/N`, `/proc/self/fd/N`) to a
///   regular file: appended to, as the shell's own `>`/`>>` redirection set it up;
/// - a folder, block device, socket or anything else: refused with one line.
public enum OutputDestination: Equatable, Sendable {
    /// Replace the file at `path` (symlinks resolved) by rename; `mode` is the
    /// permission bits of the file it replaces, kept on the new one.
    case replace(path: String, mode: mode_t?)
    /// Write straight into the already existing `path` (opened with `O_APPEND`
    /// when it is a regular file reached through a descriptor link).
    case stream(path: String, append: Bool)

    /// Symlink hops followed before giving up, as the kernel does (`ELOOP`).
    static let maximumLinkHops = 40

    /// Decides what writing `path` means. Throws `FileWriteError` naming `path`.
    public static func resolve(_ path: String) throws -> OutputDestination {
        var current = path
        var hops = 0
        while true {
            var status = stat()
            guard lstat(current, &status) == 0 else {
                guard errno == ENOENT else { throw AtomicFile.failure(path, "cannot look up the output") }
                // Nothing there yet (or a dangling link's target): a new file. A missing
                // folder is reported when the temporary file cannot be created.
                return .replace(path: current, mode: nil)
            }
            switch status.st_mode & S_IFMT {
            case S_IFREG:
                return .replace(path: current, mode: status.st_mode & 0o7777)
            case S_IFLNK:
                hops += 1
                guard hops <= maximumLinkHops else {
                    throw FileWriteError("\(path): cannot write: more than \(maximumLinkHops) symbolic links to follow (a loop?)")
                }
                if isDescriptorLink(current) { return try descriptorTarget(path) }
                guard let text = readLink(current) else { throw AtomicFile.failure(path, "cannot read the symbolic link") }
                current = text.hasPrefix("/") ? text : folder(of: current) + "/" + text
            case S_IFCHR, S_IFIFO:
                return .stream(path: current, append: false)
            default:
                throw FileWriteError("\(path): is \(kind(status.st_mode)); only a regular file, a FIFO or a character device can be written")
            }
        }
    }

    /// True when `path` names the same open file as this process's standard
    /// output (`-o /dev/stdout`, or a path stdout is redirected to): summaries
    /// must then go elsewhere so they do not end up inside the file.
    public static func isStandardOutput(_ path: String) -> Bool {
        var target = stat(), output = stat()
        guard stat(path, &target) == 0, fstat(STDOUT_FILENO, &output) == 0 else { return false }
        return target.st_dev == output.st_dev && target.st_ino == output.st_ino
    }

    /// A symlink in `/proc` (what `/dev/stdout`, `/dev/fd/N` and
    /// `/proc/self/fd/N` lead to) names an open descriptor, not a path: its text
    /// may be `pipe:[1234]`, or a file that was since replaced.
    private static func isDescriptorLink(_ path: String) -> Bool {
        guard let resolved = realpath(folder(of: path), nil) else { return false }
        defer { free(resolved) }
        let folder = String(cString: resolved)
        return folder == "/proc" || folder.hasPrefix("/proc/") || folder.hasPrefix("/dev/fd")
    }

    /// What a descriptor link leads to, asking the kernel (which follows it).
    private static func descriptorTarget(_ path: String) throws -> OutputDestination {
        var status = stat()
        guard stat(path, &status) == 0 else { throw AtomicFile.failure(path, "cannot open the descriptor") }
        switch status.st_mode & S_IFMT {
        case S_IFCHR, S_IFIFO: return .stream(path: path, append: false)
        case S_IFREG: return .stream(path: path, append: true)
        default:
            throw FileWriteError("\(path): is \(kind(status.st_mode)); only a regular file, a FIFO or a character device can be written")
        }
    }

    private static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a folder"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "a special file"
        }
    }

    private static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The folder part of a path: "." for a bare name, "/" for a top-level one.
    static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let folder = path[..<slash]
        return folder.isEmpty ? "/" : String(folder)
    }
}
