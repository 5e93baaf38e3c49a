#if canImport(Glibc)
import Glibc
#endif

/// A private scratch folder in memory (/dev/shm, else /tmp) for targets whose
/// reader takes a folder, removed when the fuzzer exits normally. Its files are
/// written with plain POSIX calls so the harness itself cannot be what fails.
public struct Scratch: Sendable {
    public let folder: String

    public init(_ name: String) {
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
        var template = Array("\(base)/adaptc-fuzz-\(name)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "cannot create a scratch folder in \(base)")
        folder = String(cString: made!)
        Scratch.folders.append(folder)
        if Scratch.folders.count == 1 { atexit { Scratch.removeAll() } }
    }

    public func path(_ name: String) -> String { "\(folder)/\(name)" }

    /// Replaces `name` with exactly these bytes.
    public func write(_ name: String, _ bytes: UnsafeBufferPointer<UInt8>) {
        let descriptor = open(path(name), O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(descriptor >= 0, "cannot write \(path(name))")
        var written = 0
        while written < bytes.count {
            let result = Glibc.write(descriptor, bytes.baseAddress! + written, bytes.count - written)
            precondition(result > 0, "cannot write \(path(name))")
            written += result
        }
        close(descriptor)
    }

    public func write(_ name: String, _ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { write(name, $0) }
    }

    public func makeFolder(_ name: String) { mkdir(path(name), 0o700) }

    nonisolated(unsafe) private static var folders: [String] = []

    private static func removeAll() {
        for folder in folders {
            // Flat folders with at most one level of subfolders: enough for the fixtures.
            guard let handle = opendir(folder) else { continue }
            var names: [String] = []
            while let entry = readdir(handle) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(handle)
            for name in names where unlink("\(folder)/\(name)") != 0 { rmdir("\(folder)/\(name)") }
            rmdir(folder)
        }
    }
}

// SwiftPM names an executable's entry point itself (and links `main` to it), so
// libFuzzer's own `main` is not used: its driver is called from the target instead.
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// Runs libFuzzer's driver on `callback` with this process's arguments; never returns.
public func runFuzzer(_ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, callback))
}
