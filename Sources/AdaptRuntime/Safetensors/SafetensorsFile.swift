#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One tensor as the header declares it.
public struct TensorEntry: Sendable, Equatable {
    /// The tensor's key.
    public let name: String
    /// Its stored element type.
    public let dtype: DType
    /// Its shape, row-major.
    public let shape: [Int]
    /// Byte range within the data section, which starts right after the header.
    public let dataOffsets: Range<Int>

    /// The product of `shape` (1 for a scalar). Never overflows, whatever the
    /// order of the dimensions: the reader rejects shapes whose nonzero
    /// dimensions' product does not fit.
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A checked, read-only safetensors file (DESIGN §5).
///
/// `read(path:)` validates everything the format promises — header size, JSON,
/// keys, dtypes, shapes, offsets — before any tensor is touched, so later
/// accessors never read out of bounds and never see a half-valid file.
public struct SafetensorsFile: Sendable {
    /// The path as the caller gave it; every error names it.
    public let path: String
    /// The `__metadata__` object (string to string); empty when absent.
    public let metadata: [String: String]
    /// Sorted by name (UTF-8 byte order), independent of the header's key order.
    public let tensors: [TensorEntry]

    private let positions: [String: Int]
    private let contents: FileReader
    /// Offset of the data section in the file: 8 + header length.
    private let dataStart: Int

    /// The header length limit from the safetensors format, checked before the
    /// header is looked at so a hostile length never drives an allocation.
    static let maximumHeaderLength: UInt64 = 100_000_000

    /// Reads and validates the file; any violation, I/O failures included, is a
    /// `SafetensorsError` naming `path` (and the tensor at fault, if any).
    public static func read(path: String) throws -> SafetensorsFile {
        let contents = try FileReader(path: path)
        let fileSize = contents.size
        guard fileSize >= 8 else {
            throw SafetensorsError(path: path, "file is \(fileSize) bytes, too short for the 8-byte header length")
        }
        let claimedLength = try contents.read(at: 0, count: 8).withUnsafeBytes {
            UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))
        }
        guard claimedLength <= maximumHeaderLength else {
            throw SafetensorsError(
                path: path, "header length \(claimedLength) exceeds the limit of \(maximumHeaderLength) bytes")
        }
        guard claimedLength <= UInt64(fileSize - 8) else {
            throw SafetensorsError(
                path: path,
                "header length \(claimedLength) runs past the end of the file (\(fileSize) bytes)")
        }
        let headerLength = Int(claimedLength)
        // Bounded twice over: by the 100 MB limit and by the file's real size.
        let headerBytes = try contents.read(at: 8, count: headerLength)
        let (metadata, entries) = try headerBytes.withUnsafeBytes { header in
            guard isValidUTF8(header) else {
                throw SafetensorsError(path: path, "header is not valid UTF-8")
            }
            let json: HeaderJSON
            do throws(HeaderJSONParser.SyntaxError) {
                json = try HeaderJSONParser.parse(header)
            } catch {
                throw SafetensorsError(
                    path: path, "header is not valid JSON: \(error.detail) at header byte \(error.offset)")
            }
            let checker = HeaderChecker(path: path, dataSize: fileSize - 8 - headerLength)
            return try checker.check(json)
        }
        let tensors = entries.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        return SafetensorsFile(
            path: path,
            metadata: metadata,
            tensors: tensors,
            positions: Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) }),
            contents: contents,
            dataStart: 8 + headerLength)
    }

    /// The tensor named `name`, or nil.
    public func entry(_ name: String) -> TensorEntry? {
        positions[name].map { tensors[$0] }
    }

    /// The tensor's values widened to `Float`. Only F32, F16 and BF16 are
    /// computable (DESIGN §5); NaN or ±Inf anywhere is an error naming the
    /// tensor, because one such weight silently poisons every result after it.
    public func floats(_ name: String) throws -> [Float] {
        guard let entry = entry(name) else {
            throw SafetensorsError(path: path, tensor: name, "not found")
        }
        return try [Float](unsafeUninitializedCapacity: entry.elementCount) { buffer, initialized in
            try floats(entry, into: buffer)
            initialized = entry.elementCount
        }
    }

    /// `floats(_:)` into a caller's buffer of at least `elementCount` floats,
    /// so a pass over a large checkpoint reuses one buffer (fresh pages are
    /// slow to touch, DESIGN §8); chunks are read (`pread`) and widened on up to
    /// `threads` threads (TBB). The same checks and errors as `floats(_:)`,
    /// including a file truncated or changed underneath.
    public func floats(_ entry: TensorEntry, into target: UnsafeMutableBufferPointer<Float>, threads: Int = 1) throws {
        let count = entry.elementCount
        precondition(target.count >= count, "buffer of \(target.count) floats for \(count)")
        guard entry.dtype.isFloatingComputable else {
            throw SafetensorsError(
                path: path, tensor: entry.name,
                "dtype \(entry.dtype.rawValue) cannot be read as floats (only F32, F16 and BF16 can)")
        }
        let start = dataStart + entry.dataOffsets.lowerBound
        let chunk = Self.chunkElements
        let chunks = (count + chunk - 1) / chunk
        // Per chunk (each owns its slots): the first non-finite element (Int.max:
        // none) and the read error, if any.
        var firstBad = [Int](repeating: .max, count: chunks)
        var failures = [(any Error)?](repeating: nil, count: chunks)
        firstBad.withUnsafeMutableBufferPointer { firstBad in
            failures.withUnsafeMutableBufferPointer { failures in
                Parallel.forEach(chunks, threads: threads) { range in
                    // F16/BF16 are read into a bounded buffer per worker, then
                    // widened; F32 is read straight into the target.
                    let halves: UnsafeMutableBufferPointer<UInt16> =
                        entry.dtype == .f32 ? .init(start: nil, count: 0) : .allocate(capacity: chunk)
                    defer { halves.deallocate() }
                    for c in range {
                        let lower = c * chunk, upper = min(count, lower + chunk)
                        var bad = Int.max
                        do {
                            switch entry.dtype {
                            case .f32:
                                let floats = UnsafeMutableBufferPointer(rebasing: target[lower..<upper])
                                try contents.read(at: start + 4 * lower, into: UnsafeMutableRawBufferPointer(floats))
                                for i in lower..<upper {
                                    let v = Float(bitPattern: UInt32(littleEndian: target[i].bitPattern))
                                    target[i] = v
                                    if !v.isFinite, bad == .max { bad = i }
                                }
                            case .f16:
                                try contents.read(
                                    at: start + 2 * lower,
                                    into: UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(halves)[..<(2 * (upper - lower))]))
                                for i in lower..<upper {
                                    let v = DType.widenF16(UInt16(littleEndian: halves[i - lower]))
                                    target[i] = v
                                    if !v.isFinite, bad == .max { bad = i }
                                }
                            default:
                                try contents.read(
                                    at: start + 2 * lower,
                                    into: UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(halves)[..<(2 * (upper - lower))]))
                                for i in lower..<upper {
                                    let bits = UInt16(littleEndian: halves[i - lower])
                                    target[i] = DType.widenBF16(bits)
                                    if bits & 0x7F80 == 0x7F80, bad == .max { bad = i }
                                }
                            }
                        } catch {
                            failures[c] = error
                        }
                        firstBad[c] = bad
                    }
                }
            }
        }
        // A read failure (truncated, changed) first: the values may be garbage.
        if let failure = failures.first(where: { $0 != nil }) { throw failure! }
        if let bad = firstBad.first(where: { $0 != .max }) {
            let kind = target[bad].isNaN ? "NaN" : "Inf"
            throw SafetensorsError("\(path): tensor \(SafetensorsError.quoted(entry.name)) contains \(kind) (element \(bad))")
        }
    }

    /// The tensor's bytes exactly as stored, for carrying any dtype through
    /// unchanged (merge, residual). Empty for a name the file does not hold;
    /// look names up with `entry(_:)` or take them from `tensors`. Throws when
    /// the file can no longer be read as it was checked (truncated, changed).
    public func rawBytes(_ name: String) throws -> [UInt8] {
        guard let entry = entry(name) else { return [] }
        return try contents.read(at: dataStart + entry.dataOffsets.lowerBound, count: entry.dataOffsets.count)
    }

    /// The tensor's stored bytes for as long as `body` runs: read once into a
    /// buffer of the tensor's size (no mapping, see `FileReader`), freed after.
    /// Throws when the file can no longer be read as it was checked.
    public func withRawBytes<R>(_ entry: TensorEntry, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let bytes = try contents.read(at: dataStart + entry.dataOffsets.lowerBound, count: entry.dataOffsets.count)
        return try bytes.withUnsafeBytes(body)
    }

    /// Where the tensor's bytes start in the file, for readers that copy them
    /// with `pread` through a bounded buffer of their own.
    public func fileOffset(of entry: TensorEntry) -> Int {
        dataStart + entry.dataOffsets.lowerBound
    }

    /// Tells the kernel the tensor's bytes will not be read again soon
    /// (`posix_fadvise(POSIX_FADV_DONTNEED)`): a streaming pass over a large
    /// checkpoint calls this after each tensor so it does not crowd the page
    /// cache. Only advice: nothing is mapped, so resident memory is unaffected,
    /// and a later read still reads the file.
    public func releasePages(_ entry: TensorEntry) {
        contents.dropCache(at: dataStart + entry.dataOffsets.lowerBound, count: entry.dataOffsets.count)
    }

    /// Elements read and widened per chunk (one task of `floats(_:into:threads:)`):
    /// 512 KiB of F16/BF16, 1 MiB of F32.
    private static let chunkElements = 1 << 18

    /// Validates without copying the header, which may be up to 100 MB.
    private static func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }
}

// MARK: - File contents

/// The file read with `pread` into buffers the caller sizes (one tensor, or a
/// bounded chunk), never memory-mapped: a mapped file that another process
/// truncates faults (SIGBUS) on the next access, which no error handling can
/// catch. Every read checks that it got all its bytes and that the file still
/// has the size and modification time it had when the header was checked, so a
/// file truncated, grown or rewritten underneath is an error naming it.
///
/// Costs measured against the former mapping (README, "Development: hardening"):
/// one copy from the page cache instead of page faults, about the same time.
///
/// `@unchecked Sendable`: `pread` takes its offset explicitly, so threads may
/// share the descriptor; nothing else is mutated after `init`.
private final class FileReader: @unchecked Sendable {
    let path: String
    let size: Int
    private let descriptor: Int32
    private let modified: timespec

    init(path: String) throws {
        self.path = path
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw SafetensorsError(path: path, "cannot open: \(Self.lastErrorDescription())")
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            let error = SafetensorsError(path: path, "cannot stat: \(Self.lastErrorDescription())")
            close(descriptor)
            throw error
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            close(descriptor)
            throw SafetensorsError(path: path, "not a regular file")
        }
        size = Int(status.st_size)
        modified = status.st_mtim
    }

    deinit {
        close(descriptor)
    }

    func read(at offset: Int, count: Int) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            try read(at: offset, into: UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }

    /// Fills `buffer` from `offset`; the range was checked against `size`.
    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws {
        var done = 0
        while done < buffer.count {
            let result = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if result < 0 {
                if errno == EINTR { continue }
                throw SafetensorsError(path: path, "cannot read: \(Self.lastErrorDescription())")
            }
            if result == 0 {
                throw SafetensorsError(
                    path: path, "the file was truncated while being read (it ends before byte \(offset + done) of \(size))")
            }
            done += result
        }
        try checkUnchanged()
    }

    /// Best effort; the page cache is shared, so nothing here can go wrong for the reader.
    func dropCache(at offset: Int, count: Int) {
        guard count > 0 else { return }
        #if os(Linux)
        _ = posix_fadvise(descriptor, off_t(offset), off_t(count), Int32(POSIX_FADV_DONTNEED))
        #endif
    }

    private func checkUnchanged() throws {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw SafetensorsError(path: path, "cannot stat: \(Self.lastErrorDescription())")
        }
        if Int(status.st_size) != size || status.st_mtim.tv_sec != modified.tv_sec
            || status.st_mtim.tv_nsec != modified.tv_nsec
        {
            let now = Int(status.st_size)
            let how = now < size ? "truncated" : now > size ? "grown" : "rewritten"
            throw SafetensorsError(
                path: path, "the file changed while being read (\(how): \(size) bytes when opened, \(now) now)")
        }
    }

    static func lastErrorDescription() -> String {
        String(cString: strerror(errno))
    }
}

// MARK: - Header rules

/// Applies DESIGN §5's rules to the parsed header. Duplicate keys are checked
/// here rather than in the parser so the message can say which tensor is at fault.
private struct HeaderChecker {
    let path: String
    /// Bytes after the header; the tensors must fill them exactly.
    let dataSize: Int

    func check(_ header: HeaderJSON) throws -> (metadata: [String: String], entries: [TensorEntry]) {
        guard case .object(let members) = header else {
            throw SafetensorsError(path: path, "header is not a JSON object but \(header.summary)")
        }
        var metadata: [String: String] = [:]
        var entries: [TensorEntry] = []
        var seen = Set<String>()
        for (key, value) in members {
            guard seen.insert(key).inserted else {
                if key == "__metadata__" {
                    throw SafetensorsError(path: path, "header has \"__metadata__\" more than once (duplicate key)")
                }
                throw SafetensorsError(path: path, tensor: key, "appears more than once in the header (duplicate key)")
            }
            if key == "__metadata__" {
                metadata = try checkMetadata(value)
            } else {
                entries.append(try checkEntry(key, value))
            }
        }
        try checkLayout(entries)
        return (metadata, entries)
    }

    private func checkMetadata(_ value: HeaderJSON) throws -> [String: String] {
        guard case .object(let members) = value else {
            throw SafetensorsError(path: path, "\"__metadata__\" must be an object of strings, not \(value.summary)")
        }
        var metadata: [String: String] = [:]
        for (key, value) in members {
            guard case .string(let text) = value else {
                throw SafetensorsError(
                    path: path,
                    "\"__metadata__\" key \(SafetensorsError.quoted(key)) must map to a string, not \(value.summary)")
            }
            guard metadata.updateValue(text, forKey: key) == nil else {
                throw SafetensorsError(
                    path: path,
                    "\"__metadata__\" has key \(SafetensorsError.quoted(key)) more than once (duplicate key)")
            }
        }
        return metadata
    }

    private static let entryKeys = ["dtype", "shape", "data_offsets"]

    private func checkEntry(_ name: String, _ value: HeaderJSON) throws -> TensorEntry {
        guard case .object(let members) = value else {
            throw SafetensorsError(
                path: path, tensor: name,
                "entry must be an object with dtype, shape and data_offsets, not \(value.summary)")
        }
        var fields: [String: HeaderJSON] = [:]
        for (key, value) in members {
            guard Self.entryKeys.contains(key) else {
                throw SafetensorsError(
                    path: path, tensor: name,
                    "unexpected key \(SafetensorsError.quoted(key)) (an entry has exactly dtype, shape and data_offsets)"
                )
            }
            guard fields.updateValue(value, forKey: key) == nil else {
                throw SafetensorsError(
                    path: path, tensor: name, "key \(SafetensorsError.quoted(key)) appears twice (duplicate key)")
            }
        }
        for key in Self.entryKeys where fields[key] == nil {
            throw SafetensorsError(path: path, tensor: name, "missing key \(SafetensorsError.quoted(key))")
        }

        guard case .string(let dtypeName) = fields["dtype"]! else {
            throw SafetensorsError(path: path, tensor: name, "dtype must be a string, not \(fields["dtype"]!.summary)")
        }
        guard let dtype = DType(rawValue: dtypeName) else {
            let known = DType.allCases.map(\.rawValue).joined(separator: " ")
            throw SafetensorsError(
                path: path, tensor: name, "unknown dtype \(fields["dtype"]!.summary) (expected one of \(known))")
        }

        guard case .array(let dimensions) = fields["shape"]! else {
            throw SafetensorsError(
                path: path, tensor: name,
                "shape must be an array of non-negative integers, not \(fields["shape"]!.summary)")
        }
        let shape = try dimensions.map { try integer($0, in: "shape", of: name) }
        let byteCount = try byteCount(of: dtype, shape, name)

        guard case .array(let offsets) = fields["data_offsets"]!, offsets.count == 2 else {
            throw SafetensorsError(
                path: path, tensor: name,
                "data_offsets must be [begin, end], two non-negative integers, not \(fields["data_offsets"]!.summary)")
        }
        let begin = try integer(offsets[0], in: "data_offsets", of: name)
        let end = try integer(offsets[1], in: "data_offsets", of: name)
        guard begin <= end else {
            throw SafetensorsError(path: path, tensor: name, "data_offsets [\(begin), \(end)]: begin is after end")
        }
        guard end - begin == byteCount else {
            throw SafetensorsError(
                path: path, tensor: name,
                "data_offsets [\(begin), \(end)] hold \(end - begin) bytes, but \(dtype.rawValue) \(shape) needs \(byteCount)"
            )
        }
        return TensorEntry(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end)
    }

    /// numel × itemsize. The nonzero dimensions' product must fit in `Int` even
    /// when a 0 makes the tensor empty, so that no partial product of the shape
    /// — `elementCount`, or a caller's `rows * columns` — can overflow later.
    private func byteCount(of dtype: DType, _ shape: [Int], _ name: String) throws -> Int {
        var count = dtype.itemSize
        for dimension in shape where dimension != 0 {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else {
                throw SafetensorsError(path: path, tensor: name, "\(dtype.rawValue) \(shape) overflows the byte count")
            }
            count = product
        }
        return shape.contains(0) ? 0 : count
    }

    /// A JSON integer ≥ 0 that fits in `Int`: no sign, fraction or exponent,
    /// which is what safetensors' own (serde `usize`) reader accepts.
    private func integer(_ value: HeaderJSON, in field: String, of name: String) throws -> Int {
        if case .number(let lexeme) = value,
            lexeme.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        {
            guard let integer = Int(lexeme) else {
                throw SafetensorsError(path: path, tensor: name, "\(field) value \(lexeme) is too large")
            }
            return integer
        }
        throw SafetensorsError(
            path: path, tensor: name, "\(field) value \(value.summary) is not a non-negative integer")
    }

    /// Sorted by begin, the tensors must tile the data section exactly: start at
    /// 0, no gap, no overlap, and end where the file ends.
    private func checkLayout(_ entries: [TensorEntry]) throws {
        let ordered = entries.sorted {
            ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound, $0.name)
                < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound, $1.name)
        }
        var covered = 0
        var previous: TensorEntry?
        for entry in ordered {
            let offsets = "data_offsets [\(entry.dataOffsets.lowerBound), \(entry.dataOffsets.upperBound)]"
            if entry.dataOffsets.lowerBound < covered, let previous {
                throw SafetensorsError(
                    path: path, tensor: entry.name,
                    "\(offsets) overlap tensor \(SafetensorsError.quoted(previous.name)) at "
                        + "[\(previous.dataOffsets.lowerBound), \(previous.dataOffsets.upperBound)]")
            }
            if entry.dataOffsets.lowerBound > covered {
                let before =
                    previous.map { "tensor \(SafetensorsError.quoted($0.name)) ends at \(covered)" }
                    ?? "the data section starts at 0"
                throw SafetensorsError(path: path, tensor: entry.name, "gap before \(offsets): \(before)")
            }
            if entry.dataOffsets.upperBound > dataSize {
                throw SafetensorsError(
                    path: path, tensor: entry.name,
                    "\(offsets) run past the end of the data section (\(dataSize) bytes): the file is truncated")
            }
            covered = entry.dataOffsets.upperBound
            previous = entry
        }
        if covered < dataSize {
            throw SafetensorsError(
                path: path,
                "\(dataSize - covered) extra bytes after the last tensor's data (tensors end at \(covered) "
                    + "of a \(dataSize)-byte data section)")
        }
    }
}
