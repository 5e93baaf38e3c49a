import AdaptcCore
import AdaptRuntime
import FuzzSupport

/// A PEFT adapter folder whose adapter_model.safetensors is fixed: the tensors
/// of Tests/Fixtures/peft/rslora_patterns (4 BERT layers; query, key, value and
/// attention.output.dense at rank 8, layer 1's query at 2, layer 3's value at 4),
/// at [16, 16] so each run stays cheap. The input is adapter_config.json.
private let scratch: Scratch = {
    let scratch = Scratch("peft")
    var adapter = SafetensorsWriter()
    for layer in 0..<4 {
        for module in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
            let rank = layer == 1 && module.hasSuffix("query") ? 2 : layer == 3 && module.hasSuffix("value") ? 4 : 8
            let path = "base_model.model.encoder.layer.\(layer).\(module)"
            adapter.add("\(path).lora_A.weight", floats: (0..<rank * 16).map { Float($0 % 7) / 8 }, shape: [rank, 16])
            adapter.add("\(path).lora_B.weight", floats: (0..<16 * rank).map { Float($0 % 5) / 8 }, shape: [16, rank])
        }
    }
    scratch.write("adapter_model.safetensors", try! adapter.encoded())
    // The harness must reach the accepting path: the fixture's own config imports.
    scratch.write("adapter_config.json", Array("""
        {"r": 8, "lora_alpha": 16, "use_rslora": true, "target_modules": ["query", "key", "value", "attention.output.dense"],
         "rank_pattern": {"layer.1.attention.self.query": 2, "layer.3.attention.self.value": 4}}
        """.utf8))
    do {
        let result = try PEFTImport.load(folder: scratch.folder, specPath: "fuzz.adapt.yaml", stem: "fuzz", basePath: nil)
        precondition(result.checked.groups.count >= 1)
    } catch {
        preconditionFailure("the fixture's own config does not import: \(error)")
    }
    return scratch
}()

/// One input: the config through `import-peft`'s whole path (read, PEFT's
/// target/rank/alpha rules on every tensor, the spec it writes, that spec's
/// check and plan, the scale cross-check). Errors are fine; a crash, a hang, a
/// sanitizer report, or an import whose own spec or scales disagree with the
/// config (an "internal error") is a bug.
func fuzzPEFTConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    scratch.write("adapter_config.json", UnsafeBufferPointer(start: data, count: size))
    do {
        let result = try PEFTImport.load(folder: scratch.folder, specPath: "fuzz.adapt.yaml", stem: "fuzz", basePath: nil)
        precondition(result.checked.diagnostics.allSatisfy { $0.severity != .error }, "an imported spec with errors")
        _ = try result.adapter.encoded()
    } catch let error as UserError {
        precondition(!error.message.contains("internal error"), error.message)
    } catch let errors as SpecErrors {
        // The spec import-peft wrote from a config it accepted does not check:
        // the config reader let through something it should have named.
        preconditionFailure("import-peft wrote a spec that does not check: \(errors.diagnostics.map(\.description))")
    } catch {
        _ = "\(error)"
    }
    return 0
}

runFuzzer(fuzzPEFTConfig)
