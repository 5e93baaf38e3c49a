import Foundation

/// The files PEFT 0.21 wrote (Tests/Fixtures/peft, see its README): part of the
/// repository, so every test that reads them runs on a fresh clone.
public enum PEFTFixtures {
    public static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/peft")

    public static let cases = ["lora_qv", "rslora_patterns", "pissa"]

    public static func file(_ name: String, in fixture: String) -> String {
        root.appendingPathComponent(fixture).appendingPathComponent(name).path
    }
}
