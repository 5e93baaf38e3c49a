import AdaptRuntime
import AdaptcCore
import Foundation
import AdaptTestSupport
import XCTest

/// What one run of the `adaptc` executable did.
struct CLIResult: CustomStringConvertible {
    var arguments: [String]
    var status: Int32
    /// True when the process died of a signal (the contract says: never).
    var signalled: Bool
    var stdout: String
    var stderr: String
    /// stdout exactly as written (binary output, e.g. `-o /dev/stdout`).
    var stdoutBytes: [UInt8] = []

    /// Non-empty stderr lines.
    var stderrLines: [String] { stderr.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
    var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }

    var description: String {
        "adaptc \(arguments.joined(separator: " ")) → status \(status)\(signalled ? " (SIGNAL)" : "")\n"
            + "--- stdout ---\n\(stdout)--- stderr ---\n\(stderr)--------------"
    }
}

/// A fresh folder per test, the current directory of every `adaptc` run made
/// through it, removed afterwards. Captured stdout/stderr live outside it so a
/// test can check that a failing command left nothing behind in it.
final class CLISandbox {
    let root: URL
    /// The working folder: the runs' current directory, where test files go.
    let work: URL

    init() throws {
        root = FileManager.default.temporaryDirectory
            .appendingPathComponent("adaptc-cli-\(UUID().uuidString)")
        work = root.appendingPathComponent("work")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(at: root)
    }

    /// Absolute path of `name` inside the working folder.
    func path(_ name: String) -> String { work.appendingPathComponent(name).path }

    func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: path(name)) }

    /// Every entry (hidden ones included) under the working folder, relative paths, sorted.
    func listing() -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: work.path) else { return [] }
        var names: [String] = []
        while let name = enumerator.nextObject() as? String { names.append(name) }
        return names.sorted()
    }

    @discardableResult
    func write(_ text: String, to name: String) throws -> String {
        let target = path(name)
        try FileManager.default.createDirectory(
            atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: target))
        return target
    }

    @discardableResult
    func write(bytes: [UInt8], to name: String) throws -> String {
        let target = path(name)
        try Data(bytes).write(to: URL(fileURLWithPath: target))
        return target
    }

    func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(name))))
    }

    /// Copies a spec of the repository's Specs/ folder into the working folder.
    @discardableResult
    func copySpec(_ name: String, as target: String? = nil) throws -> String {
        let text = try String(contentsOfFile: Repository.spec(name), encoding: .utf8)
        return try write(text, to: target ?? name)
    }

    /// Runs `adaptc ARGS…` in the working folder, waiting for it to finish.
    func adaptc(_ arguments: String..., file: StaticString = #filePath, line: UInt = #line) throws -> CLIResult {
        try adaptc(arguments, file: file, line: line)
    }

    func adaptc(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> CLIResult {
        guard let result = try run(arguments, file: file, line: line) else {
            return CLIResult(arguments: arguments, status: -1, signalled: true, stdout: "", stderr: "killed: timed out")
        }
        XCTAssertFalse(result.signalled, "adaptc died of a signal:\n\(result)", file: file, line: line)
        return result
    }

    /// Runs `adaptc ARGS…` in the working folder; a run still going after
    /// `seconds` is killed (SIGKILL) and fails the test, so a hang can never
    /// stall the suite. Returns nil then. `ADAPTC_TEST_TRACE=1` prints every run.
    /// `executable` runs another program the same way (e.g. /bin/sh to set a ulimit first).
    func run(_ arguments: [String], executable: String? = nil, seconds: Double = 60, context: String = "",
             file: StaticString = #filePath, line: UInt = #line) throws -> CLIResult? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try executable ?? Repository.adaptcBinary())
        process.arguments = arguments
        process.currentDirectoryURL = work
        // Files, not pipes: a chatty child can never block on a full pipe.
        let outURL = root.appendingPathComponent("stdout-\(UUID().uuidString)")
        let errURL = root.appendingPathComponent("stderr-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        defer {
            try? out.close()
            try? err.close()
        }
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let finished = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in finished.signal() }
        try process.run()
        if finished.wait(timeout: .now() + seconds) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            _ = finished.wait(timeout: .now() + 10)
            XCTFail("[\(context)] adaptc \(arguments.joined(separator: " ")) did not finish within \(Int(seconds)) s (killed)",
                    file: file, line: line)
            return nil
        }
        process.waitUntilExit()
        let stdoutBytes = [UInt8](try Data(contentsOf: outURL))
        let result = CLIResult(
            arguments: arguments,
            status: process.terminationStatus,
            signalled: process.terminationReason == .uncaughtSignal,
            stdout: String(decoding: stdoutBytes, as: UTF8.self),
            stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self),
            stdoutBytes: stdoutBytes)
        if ProcessInfo.processInfo.environment["ADAPTC_TEST_TRACE"] != nil {
            print("TRACE [\(context)] \(arguments.joined(separator: " ")) status \(result.status):\n\(result.stderr)")
        }
        return result
    }
}

/// Paths of the repository and of the built executable.
enum Repository {
    /// The package root: this file is Tests/adaptcTests/Support/CLISandbox.swift.
    static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func spec(_ name: String) -> String {
        root.appendingPathComponent("Specs").appendingPathComponent(name).path
    }

    /// Every `*.adapt.yaml` in Specs/, sorted.
    static func allSpecs() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("Specs").path)
            .filter { $0.hasSuffix(".adapt.yaml") }.sorted().map(spec)
    }

    /// The `adaptc` executable next to the test bundle (`.build/<triple>/debug/adaptc`).
    static func adaptcBinary() throws -> String {
        var candidates: [URL] = []
        if let explicit = ProcessInfo.processInfo.environment["ADAPTC_BINARY"] {
            candidates.append(URL(fileURLWithPath: explicit))
        }
        let argument0 = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        candidates.append(argument0.deletingLastPathComponent().appendingPathComponent("adaptc"))
        let bundle = Bundle.main.bundleURL
        candidates.append(bundle.appendingPathComponent("adaptc"))
        candidates.append(bundle.deletingLastPathComponent().appendingPathComponent("adaptc"))
        for bundle in Bundle.allBundles where bundle.bundleURL.pathExtension == "xctest" {
            candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("adaptc"))
        }
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate.path) {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                return candidate.path
            }
        }
        throw MissingBinary(searched: candidates.map(\.path))
    }

    struct MissingBinary: Error, CustomStringConvertible {
        var searched: [String]
        var description: String {
            "the adaptc executable was not found next to the test bundle (looked at: "
                + searched.joined(separator: ", ")
                + "); build it first: swift build --build-tests, or set ADAPTC_BINARY"
        }
    }
}

// MARK: - Assertions shared by the test files

/// `PATH:LINE:COLUMN: (error|warning|note): ` with PATH exactly as given.
func diagnosticPattern(path: String, severities: String = "error|warning|note") -> NSRegularExpression {
    let escaped = NSRegularExpression.escapedPattern(for: path)
    return try! NSRegularExpression(pattern: "^\(escaped):[0-9]+:[0-9]+: (\(severities)): ")
}

func matches(_ line: String, _ pattern: NSRegularExpression) -> Bool {
    pattern.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) != nil
}

// MARK: - The float64 reference of DESIGN §2

/// One pair of a lora group as the test itself understands the spec: which
/// tensors hold its factors and what scale applies (computed in the test from
/// the rules of DESIGN §2, never taken from adaptc).
struct ReferencePair {
    var layer: Int
    var module: String
    var outFeatures: Int
    var inFeatures: Int
    var rank: Int
    var scale: Double
    var aKey: String
    var bKey: String
    var key: String { "\(layer).\(module)" }

    /// s = alpha/r (standard), alpha/√r (rslora), 1 without alpha.
    static func scale(alpha: Double?, rank: Int, rslora: Bool) -> Double {
        guard let alpha else { return 1 }
        return rslora ? alpha / Double(rank).squareRoot() : alpha / Double(rank)
    }
}

/// ΔW = s·B·A in float64, row-major [out, in].
func referenceDelta(_ pair: ReferencePair, tensors: [String: [Float]]) -> [Double] {
    let a = tensors[pair.aKey]!, b = tensors[pair.bKey]!
    let (r, n, m) = (pair.rank, pair.inFeatures, pair.outFeatures)
    precondition(a.count == r * n && b.count == m * r)
    var delta = [Double](repeating: 0, count: m * n)
    for o in 0..<m {
        for k in 0..<r {
            let bk = Double(b[o * r + k]) * pair.scale
            for i in 0..<n { delta[o * n + i] += bk * Double(a[k * n + i]) }
        }
    }
    return delta
}

/// y = x·ΔWᵀ in float64: x [rows, in], ΔW [out, in] → [rows, out].
func referenceApply(_ delta: [Double], out: Int, in inFeatures: Int, x: [Float], rows: Int) -> [Double] {
    var y = [Double](repeating: 0, count: rows * out)
    for row in 0..<rows {
        for o in 0..<out {
            var sum = 0.0
            for i in 0..<inFeatures { sum += Double(x[row * inFeatures + i]) * delta[o * inFeatures + i] }
            y[row * out + o] = sum
        }
    }
    return y
}

/// Random A and B for every pair (shared tensors written once), with the
/// spec's metadata; returns the tensors as written.
func writeRandomAdapter(_ pairs: [ReferencePair], checked: CheckedSpec, to path: String, seed: UInt64,
                        bound: Float = 0.5) throws -> [String: [Float]] {
    var random = TestRandom(seed: seed)
    var tensors: [String: [Float]] = [:]
    var writer = SafetensorsWriter(metadata: AdapterFiles.metadata(checked))
    for pair in pairs {
        if tensors[pair.aKey] == nil {
            let a = random.floats(pair.rank * pair.inFeatures, bound: bound)
            tensors[pair.aKey] = a
            writer.add(pair.aKey, floats: a, shape: [pair.rank, pair.inFeatures])
        }
        if tensors[pair.bKey] == nil {
            let b = random.floats(pair.outFeatures * pair.rank, bound: bound)
            tensors[pair.bKey] = b
            writer.add(pair.bKey, floats: b, shape: [pair.outFeatures, pair.rank])
        }
    }
    try writer.write(to: path)
    return tensors
}

// MARK: - tiny-qv, as the tests understand it

enum TinyQv {
    static let modules = ["attention.self.query", "attention.self.value"]
    static let untargeted = "attention.self.key"
    static let layers = 0..<4

    /// Specs/tiny-qv.adapt.yaml: lora r 8 alpha 16 standard on query+value, "3.attention.self.value" rank 4.
    static var pairs: [ReferencePair] {
        layers.flatMap { layer in
            modules.map { module in
                let rank = (layer == 3 && module == "attention.self.value") ? 4 : 8
                return ReferencePair(
                    layer: layer, module: module, outFeatures: 64, inFeatures: 64, rank: rank,
                    scale: ReferencePair.scale(alpha: 16, rank: rank, rslora: false),
                    aKey: "attn.\(layer).\(module).A", bKey: "attn.\(layer).\(module).B")
            }
        }
    }

    static func weightKey(_ layer: Int, _ module: String) -> String { "encoder.layer.\(layer).\(module).weight" }
}
