import AdaptRuntime
import AdaptcCore
import Dispatch
import Foundation
import AdaptTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Malformed safetensors files (DESIGN §5, reader rules) through the real CLI.
/// Every file of the table is built byte by byte from a good file that differs
/// only in its one defect (`testUnalteredRawFilesAreAccepted` proves the good
/// file is accepted), then used twice by
/// `adaptc eval Specs/tiny-qv.adapt.yaml --adapter A --input X -o out.safetensors`:
/// as the adapter with a good input, and as the input with a good adapter.
/// Contract (DESIGN §1): exit 1, never a signal, exactly one stderr line
/// `adaptc: error: …` naming the file, no "wrote" on stdout, nothing written.
final class MalformedSafetensorsCLITests: XCTestCase {
    private var sandbox: CLISandbox!
    private let spec = Repository.spec("tiny-qv.adapt.yaml")

    override func setUpWithError() throws { sandbox = try CLISandbox() }
    override func tearDown() { sandbox?.remove() }

    // MARK: the raw file model

    /// One header entry, rendered by hand so that a case can break any part of it.
    struct RawTensor: Sendable {
        var key: String
        var dtype: String
        var shape: [Int]
        var begin: Int
        var end: Int

        var json: String { entry() }

        /// `"KEY":{"dtype":…,"shape":[…],"data_offsets":[…]}`; each part may be replaced verbatim.
        func entry(dtype: String? = nil, shape: String? = nil, offsets: String? = nil, extra: String = "",
                   omitDtype: Bool = false) -> String {
            var parts: [String] = []
            if !omitDtype { parts.append("\"dtype\":" + (dtype ?? "\"\(self.dtype)\"")) }
            parts.append("\"shape\":" + (shape ?? "[" + self.shape.map(String.init).joined(separator: ",") + "]"))
            parts.append("\"data_offsets\":" + (offsets ?? "[\(begin),\(end)]"))
            if !extra.isEmpty { parts.append(extra) }
            return "\"\(key)\":{" + parts.joined(separator: ",") + "}"
        }
    }

    /// A valid safetensors file taken apart: metadata, entries in data order, data.
    struct RawFile: Sendable {
        var metadata: [(String, String)]
        var tensors: [RawTensor]
        var data: [UInt8]

        init(metadata: [String: String], tensors: [(key: String, shape: [Int], values: [Float])]) {
            self.metadata = metadata.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            self.tensors = []
            self.data = []
            for t in tensors.sorted(by: { $0.key < $1.key }) {
                let begin = data.count
                for v in t.values {
                    let bits = v.bitPattern
                    data += [UInt8(bits & 0xFF), UInt8((bits >> 8) & 0xFF), UInt8((bits >> 16) & 0xFF), UInt8(bits >> 24)]
                }
                self.tensors.append(RawTensor(key: t.key, dtype: "F32", shape: t.shape, begin: begin, end: data.count))
            }
        }

        var first: RawTensor { tensors[0] }
        var last: RawTensor { tensors[tensors.count - 1] }
        var entries: [String] { tensors.map(\.json) }

        /// `"__metadata__":{…}` (nil when there is none).
        var metadataJSON: String? {
            metadata.isEmpty ? nil
                : "\"__metadata__\":{" + metadata.map { "\(jsonString($0.0)):\(jsonString($0.1))" }.joined(separator: ",") + "}"
        }

        /// The header object; `entries` and `metadata` replace the file's own verbatim.
        func header(entries: [String]? = nil, metadata: String?? = .none) -> String {
            let meta: String? = metadata ?? metadataJSON
            return "{" + ((meta.map { [$0] } ?? []) + (entries ?? self.entries)).joined(separator: ",") + "}"
        }

        /// The header with entry `index` replaced by `entry`.
        func header(replacing index: Int, with entry: String) -> String {
            var e = entries
            e[index] = entry
            return header(entries: e)
        }

        /// The whole file: length, header padded with spaces to a multiple of 8 (as writers do), data.
        func bytes(header: String? = nil, data: [UInt8]? = nil) -> [UInt8] {
            framed(Array((header ?? self.header()).utf8), data ?? self.data)
        }

        /// A copy whose tensors from `index` on start `delta` bytes later (`delta` may be negative).
        func shifting(from index: Int, by delta: Int) -> RawFile {
            var copy = self
            for i in index..<copy.tensors.count {
                copy.tensors[i].begin += delta
                copy.tensors[i].end += delta
            }
            return copy
        }
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func littleEndian(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8((value >> (8 * UInt64($0))) & 0xFF) } }

    /// 8-byte length, header padded with spaces to a multiple of 8, data.
    static func framed(_ header: [UInt8], _ data: [UInt8], pad: Bool = true) -> [UInt8] {
        var h = header
        if pad { while h.count % 8 != 0 { h.append(0x20) } }
        return littleEndian(UInt64(h.count)) + h + data
    }

    // MARK: the table

    struct Case: Sendable {
        var name: String
        /// A keyword the one error line must contain besides the path (nil: any message).
        var mentions: String?
        var make: @Sendable (RawFile) -> [UInt8]
    }

    /// Every case breaks one reader rule of DESIGN §5 and nothing else.
    static let cases: [Case] = [
        Case(name: "empty-file", mentions: "too short") { _ in [] },
        Case(name: "five-bytes", mentions: "too short") { _ in [8, 0, 0, 0, 0] },
        Case(name: "header-length-past-end", mentions: "past the end") { f in
            let good = f.bytes()
            let length = UInt64(good.count)   // 8 + length > file size: the header would run past the end
            return littleEndian(length) + good.dropFirst(8)
        },
        Case(name: "header-length-200-million", mentions: "exceeds the limit") { _ in littleEndian(200_000_000) + Array("{}      ".utf8) },
        Case(name: "header-length-2-pow-40", mentions: "exceeds the limit") { _ in littleEndian(1 << 40) + Array("{}      ".utf8) },
        Case(name: "header-length-2-pow-64-minus-1", mentions: "exceeds the limit") { _ in littleEndian(UInt64.max) + Array("{}      ".utf8) },
        Case(name: "header-length-zero", mentions: "not valid JSON") { f in littleEndian(0) + f.data },
        Case(name: "header-not-utf8", mentions: "UTF-8") { f in
            // The bytes FF FE inside the first JSON string (a key).
            var header = Array(f.header().utf8)
            let quote = header.firstIndex(of: UInt8(ascii: "\""))!
            header.insert(contentsOf: [0xFF, 0xFE], at: quote + 1)
            return framed(header, f.data)
        },
        Case(name: "header-not-json", mentions: "not valid JSON") { f in f.bytes(header: "this is not json at all") },
        Case(name: "header-json-array", mentions: "not a JSON object") { f in f.bytes(header: "[" + f.entries.map { "{\($0)}" }.joined(separator: ",") + "]") },
        Case(name: "header-json-string", mentions: "not a JSON object") { f in f.bytes(header: "\"tensors\"") },
        Case(name: "header-trailing-garbage", mentions: "trailing") { f in f.bytes(header: f.header() + "xyz") },
        Case(name: "entry-missing-dtype", mentions: "dtype") { f in f.bytes(header: f.header(replacing: 0, with: f.first.entry(omitDtype: true))) },
        Case(name: "entry-extra-key", mentions: "strides") { f in f.bytes(header: f.header(replacing: 0, with: f.first.entry(extra: "\"strides\":[64,1]"))) },
        Case(name: "entry-not-an-object", mentions: "object") { f in f.bytes(header: f.header(replacing: 0, with: "\"\(f.first.key)\":[1,2,3]")) },
        Case(name: "unknown-dtype-F4", mentions: "F4") { f in f.bytes(header: f.header(replacing: 0, with: f.first.entry(dtype: "\"F4\""))) },
        Case(name: "dtype-not-a-string", mentions: "dtype") { f in f.bytes(header: f.header(replacing: 0, with: f.first.entry(dtype: "32"))) },
        Case(name: "negative-shape", mentions: "shape") { f in
            let s = f.first.shape
            return f.bytes(header: f.header(replacing: 0, with: f.first.entry(shape: "[\(-s[0]),\(-s[1])]")))
        },
        Case(name: "float-in-shape", mentions: "shape") { f in
            let s = f.first.shape
            return f.bytes(header: f.header(replacing: 0, with: f.first.entry(shape: "[\(s[0]).5,\(s[1])]")))
        },
        Case(name: "integral-float-in-shape", mentions: "shape") { f in
            // 8.0 is a JSON number but not an integer: safetensors' shapes are lists of usize.
            let s = f.first.shape
            return f.bytes(header: f.header(replacing: 0, with: f.first.entry(shape: "[\(s[0]).0,\(s[1])]")))
        },
        Case(name: "huge-tensor-consistent-offsets", mentions: "past the end") { f in
            // 2^60 F32 values at [0, 2^62]: dtype, shape and offsets agree, the file holds a few KiB.
            f.bytes(header: f.header(replacing: 0, with: f.first.entry(shape: "[1152921504606846976]",
                                                                          offsets: "[0,4611686018427387904]")))
        },
        Case(name: "shape-product-overflows", mentions: "overflow") { f in
            f.bytes(header: f.header(replacing: 0, with: f.first.entry(shape: "[4294967296,4294967296,16]")))
        },
        Case(name: "data-offsets-of-length-3", mentions: "data_offsets") { f in
            f.bytes(header: f.header(replacing: 0, with: f.first.entry(offsets: "[\(f.first.begin),\(f.first.end),\(f.first.end)]")))
        },
        Case(name: "data-offsets-begin-after-end", mentions: "begin is after end") { f in
            f.bytes(header: f.header(replacing: 0, with: f.first.entry(offsets: "[\(f.first.end),\(f.first.begin)]")))
        },
        Case(name: "data-offset-beyond-uint64", mentions: "too large") { f in
            f.bytes(header: f.header(replacing: 0, with: f.first.entry(offsets: "[0,18446744073709551616]")))
        },
        Case(name: "overlapping-offsets", mentions: "overlap") { f in
            // The second tensor starts 4 bytes inside the first; sizes stay right and the data still ends at the last end.
            let g = f.shifting(from: 1, by: -4)
            return g.bytes(data: Array(f.data.dropLast(4)))
        },
        Case(name: "gap-between-tensors", mentions: "gap") { f in
            let g = f.shifting(from: 1, by: 4)
            let cut = f.tensors[1].begin
            return g.bytes(data: Array(f.data[..<cut]) + [0, 0, 0, 0] + Array(f.data[cut...]))
        },
        Case(name: "first-tensor-not-at-zero", mentions: "gap") { f in
            f.shifting(from: 0, by: 8).bytes(data: [UInt8](repeating: 0, count: 8) + f.data)
        },
        Case(name: "data-shorter-than-last-end", mentions: "truncated") { f in f.bytes(data: Array(f.data.dropLast(4))) },
        Case(name: "extra-bytes-after-last-tensor", mentions: "extra bytes") { f in f.bytes(data: f.data + [0, 0, 0, 0, 0, 0, 0, 0]) },
        Case(name: "byte-count-not-numel-times-itemsize", mentions: "needs") { f in
            // [r, 64] → [r, 63] with the same offsets: the bytes are 4·r too many.
            f.bytes(header: f.header(replacing: 0, with: f.first.entry(shape: "[\(f.first.shape[0]),\(f.first.shape[1] - 1)]")))
        },
        Case(name: "dtype-itemsize-mismatch", mentions: "needs") { f in
            f.bytes(header: f.header(replacing: 0, with: f.first.entry(dtype: "\"F16\"")))
        },
        Case(name: "duplicate-tensor-key", mentions: "duplicate") { f in
            // The last tensor again, its copy appended after it: only the name repeats.
            var copy = f.last
            copy.begin = f.data.count
            copy.end = f.data.count + (f.last.end - f.last.begin)
            return f.bytes(header: f.header(entries: f.entries + [copy.json]),
                           data: f.data + Array(f.data[f.last.begin..<f.last.end]))
        },
        Case(name: "metadata-non-string-value", mentions: "__metadata__") { f in
            let pairs = f.metadata.map { "\(jsonString($0.0)):\(jsonString($0.1))" } + ["\"epochs\":3"]
            return f.bytes(header: f.header(metadata: .some("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")))
        },
        Case(name: "metadata-not-an-object", mentions: "__metadata__") { f in
            f.bytes(header: f.header(metadata: .some("\"__metadata__\":\"format=pt\"")))
        },
        Case(name: "nested-brackets-10000", mentions: "nesting") { f in f.bytes(header: String(repeating: "[", count: 10_000)) },
        Case(name: "nested-brackets-in-shape", mentions: "nesting") { f in
            let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
            return f.bytes(header: f.header(replacing: 0, with: f.first.entry(shape: deep)))
        },
    ]

    // MARK: good files

    private func checked() throws -> CheckedSpec { try SpecLoader.load(path: spec) }

    /// The tiny-qv adapter as a raw file (with its real metadata).
    private func goodAdapter() throws -> RawFile {
        var random = TestRandom(seed: 71)
        var tensors: [(key: String, shape: [Int], values: [Float])] = []
        for pair in TinyQv.pairs {
            tensors.append((pair.aKey, [pair.rank, 64], random.floats(pair.rank * 64)))
            tensors.append((pair.bKey, [64, pair.rank], random.floats(64 * pair.rank)))
        }
        return RawFile(metadata: AdapterFiles.metadata(try checked()), tensors: tensors)
    }

    /// An eval input for every tiny-qv pair, [3, 64], no metadata.
    private func goodInput() -> RawFile {
        var random = TestRandom(seed: 72)
        return RawFile(metadata: [:], tensors: TinyQv.pairs.map { ($0.key, [3, 64], random.floats(3 * 64)) })
    }

    private func eval(adapter: String, input: String) -> [String] {
        ["eval", spec, "--adapter", adapter, "--input", input, "-o", "out.safetensors"]
    }

    // MARK: tests

    func testTableIsLargeEnough() {
        XCTAssertGreaterThanOrEqual(Self.cases.count, 22)
        XCTAssertEqual(Set(Self.cases.map(\.name)).count, Self.cases.count, "case names must be unique")
    }

    /// The unaltered raw files are accepted: every case below fails for its one defect only.
    func testUnalteredRawFilesAreAccepted() throws {
        try sandbox.write(bytes: goodAdapter().bytes(), to: "adapter.safetensors")
        try sandbox.write(bytes: goodInput().bytes(), to: "x.safetensors")
        let result = try sandbox.run(eval(adapter: "adapter.safetensors", input: "x.safetensors"))
        XCTAssertEqual(result?.status, 0, "\(result.map(\.description) ?? "timed out")")
        XCTAssertTrue(sandbox.exists("out.safetensors"))
    }

    func testEveryMalformedFileAsAdapter() throws {
        let adapter = try goodAdapter()
        try sandbox.write(bytes: goodInput().bytes(), to: "x.safetensors")
        for c in Self.cases {
            let name = "\(c.name).adapter.safetensors"
            try sandbox.write(bytes: c.make(adapter), to: name)
            try expectRefused(c, file: name, arguments: eval(adapter: name, input: "x.safetensors"))
        }
    }

    func testEveryMalformedFileAsInput() throws {
        try sandbox.write(bytes: goodAdapter().bytes(), to: "adapter.safetensors")
        let input = goodInput()
        for c in Self.cases {
            let name = "\(c.name).input.safetensors"
            try sandbox.write(bytes: c.make(input), to: name)
            try expectRefused(c, file: name, arguments: eval(adapter: "adapter.safetensors", input: name))
        }
    }

    /// The whole error contract for one run.
    private func expectRefused(_ c: Case, file name: String, arguments: [String]) throws {
        let before = sandbox.listing()
        guard let result = try sandbox.run(arguments, context: c.name) else { return }
        let context = "[\(c.name)] \(result)"
        XCTAssertFalse(result.signalled, "died of a signal \(context)")
        XCTAssertEqual(result.status, 1, "exit status \(context)")
        XCTAssertEqual(result.stderrLines.count, 1, "exactly one stderr line \(context)")
        let first = result.stderrLines.first ?? ""
        XCTAssertTrue(first.hasPrefix("adaptc: error: "), "prefix \(context)")
        XCTAssertTrue(first.contains(name), "the error must name \(name) \(context)")
        if let keyword = c.mentions {
            XCTAssertTrue(first.lowercased().contains(keyword.lowercased()), "the error should mention '\(keyword)' \(context)")
        }
        XCTAssertFalse(result.stdout.contains("wrote"), "stdout \(context)")
        XCTAssertFalse(sandbox.exists("out.safetensors"), "out.safetensors written \(context)")
        XCTAssertEqual(sandbox.listing(), before, "files left behind \(context)")
    }
}
