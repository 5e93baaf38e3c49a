import AdaptcCore
import FuzzSupport
#if canImport(Glibc)
import Glibc
#endif

/// One input: spec text through Parse and Check, as `adaptc check` runs them.
/// Any outcome is fine except a crash, a hang or a sanitizer report; a spec
/// that checks must also print its diagnostics (string building on odd input).
func fuzzSpec(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    // `adaptc` refuses non-UTF-8 specs before parsing (SpecLoader.readText).
    guard let source = String(validating: bytes, as: UTF8.self) else { return 0 }
    do {
        let checked = try SpecLoader.check(source: source, path: "fuzz.adapt.yaml")
        for diagnostic in checked.diagnostics { _ = diagnostic.description }
        _ = SpecHash.hash(checked)
    } catch let errors as SpecErrors {
        for diagnostic in errors.diagnostics { _ = diagnostic.description }
    } catch {
        _ = "\(error)"
    }
    return 0
}

runFuzzer(fuzzSpec)
