import AdaptRuntime
import AdaptcCore
import Foundation
import XCTest

/// Failed writes (DESIGN §1): a folder that cannot be written and a file-size
/// limit (what a full disk looks like to `write`) each give exit 1, one line
/// naming the output, and leave the previous output file as it was. The slow
/// faults (a process killed mid-write, a real full disk, inputs changing while
/// read) run from Tools/faults.
final class FaultCLITests: XCTestCase {
    private var sandbox: CLISandbox!
    private let previous = Array("the previous output".utf8)

    override func setUpWithError() throws {
        sandbox = try CLISandbox()
        try sandbox.copySpec("tiny-qv.adapt.yaml")
        XCTAssertEqual(try sandbox.adaptc("init", "tiny-qv.adapt.yaml", "-o", "adapter.safetensors").status, 0)
    }

    override func tearDown() {
        chmod(sandbox.path("locked"), 0o755)
        sandbox?.remove()
    }

    /// Runs `adaptc ARGS` through bash after `setup` (a ulimit); as root, also as
    /// the unprivileged user `nobody`, for whom file permissions apply.
    private func adaptc(_ arguments: [String], setup: String = "", unprivileged: Bool = false) throws -> CLIResult {
        var command = ["/bin/bash", "-c", "\(setup) exec \"$@\"", "bash"]
        if unprivileged && geteuid() == 0 {
            command += ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        }
        command += [try Repository.adaptcBinary()] + arguments
        let result = try XCTUnwrap(sandbox.run(Array(command.dropFirst()), executable: command[0]))
        XCTAssertFalse(result.signalled, "\(result)")
        return result
    }

    func testOutputFolderNotWritable() throws {
        try FileManager.default.createDirectory(atPath: sandbox.path("locked"), withIntermediateDirectories: false)
        try sandbox.write(bytes: previous, to: "locked/out.safetensors")
        XCTAssertEqual(chmod(sandbox.path("locked"), 0o555), 0)
        let result = try adaptc(["materialize", "tiny-qv.adapt.yaml", "--adapter", "adapter.safetensors",
                                 "-o", "locked/out.safetensors"], unprivileged: true)
        XCTAssertEqual(result.status, 1, "\(result)")
        XCTAssertEqual(result.stderrLines,
                       ["adaptc: error: locked/out.safetensors: cannot create a temporary file in locked: Permission denied"])
        XCTAssertEqual(try sandbox.bytes("locked/out.safetensors"), previous)
    }

    func testFileSizeLimitLikeAFullDisk() throws {
        try sandbox.write(bytes: previous, to: "out.safetensors")
        // materialize writes 131,768 bytes; 64 KiB is all the limit allows.
        let result = try adaptc(["materialize", "tiny-qv.adapt.yaml", "--adapter", "adapter.safetensors", "-o", "out.safetensors"],
                                setup: "ulimit -f 64;")
        XCTAssertEqual(result.status, 1, "\(result)")
        XCTAssertEqual(result.stderrLines, ["adaptc: error: out.safetensors: cannot write: File too large"])
        XCTAssertEqual(try sandbox.bytes("out.safetensors"), previous)
        XCTAssertEqual(sandbox.listing().filter { $0.contains(".tmp-") }, [], "the temporary file is removed")
    }
}
