import AdaptRuntime
import FuzzSupport
#if canImport(Glibc)
import Glibc
#endif

/// The input as a file: an unlinked file in /dev/shm (memory), read through its
/// /proc/self/fd path, so the reader runs exactly as on disk without touching it.
private let memory: Int32 = {
    var template = Array("/dev/shm/adaptc-fuzz-XXXXXX".utf8CString)
    let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    precondition(descriptor >= 0, "cannot create a file in /dev/shm")
    template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    return descriptor
}()
private let path = "/proc/self/fd/\(memory)"

/// One input: read and validate; read every tensor (floats for F32/F16/BF16,
/// raw bytes for all); a file that reads must survive a writer round trip with
/// the same tensors and metadata. Errors are fine; crashes, hangs, sanitizer
/// reports and a round trip that changes anything are bugs.
func fuzzSafetensors(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    precondition(memory >= 0, "memfd_create failed")
    ftruncate(memory, 0)
    var written = 0
    while written < size {
        let result = pwrite(memory, data + written, size - written, off_t(written))
        precondition(result > 0, "pwrite to the memfd failed")
        written += result
    }
    guard let file = try? SafetensorsFile.read(path: path) else { return 0 }
    var copy = SafetensorsWriter(metadata: file.metadata)
    for entry in file.tensors {
        precondition(file.entry(entry.name) == entry)
        if entry.dtype.isFloatingComputable, let values = try? file.floats(entry.name) {
            precondition(values.count == entry.elementCount)
            precondition(values.allSatisfy(\.isFinite))
        }
        guard let bytes = try? file.rawBytes(entry.name) else { return 0 }
        precondition(bytes.count == entry.dataOffsets.count)
        copy.add(entry.name, dtype: entry.dtype, shape: entry.shape, bytes: bytes)
    }
    // Round trip in memory: the writer must accept what the reader accepted.
    let encoded: [UInt8]
    do {
        encoded = try copy.encoded()
    } catch {
        preconditionFailure("the writer refused what the reader accepted: \(error)")
    }
    ftruncate(memory, 0)
    encoded.withUnsafeBytes { _ = pwrite(memory, $0.baseAddress!, $0.count, 0) }
    guard let again = try? SafetensorsFile.read(path: path) else {
        preconditionFailure("the reader refused what the writer wrote")
    }
    precondition(again.metadata == file.metadata && again.tensors.map(\.name) == file.tensors.map(\.name)
        && again.tensors.map(\.shape) == file.tensors.map(\.shape) && again.tensors.map(\.dtype) == file.tensors.map(\.dtype))
    return 0
}

runFuzzer(fuzzSafetensors)
