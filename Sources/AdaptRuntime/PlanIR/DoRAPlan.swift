/// What a DoRA pair (DESIGN §5) adds to its lora programs: where its factors
/// and its magnitude vector `m` `[out]` sit in the parameter buffer. The
/// pair's programs stay those of `ΔW = s·B·A`; DoRA's row rescaling
/// `W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖_row` needs the base weight W, which
/// the plan does not hold, so the interpreter (and the generated code) apply
/// it from these offsets once the caller hands W over (`prepare(base:)`).
public struct DoRAPlan: Hashable, Sendable, Codable {
    public var a: ParameterTensor
    public var b: ParameterTensor
    public var magnitude: ParameterTensor

    public init(a: ParameterTensor, b: ParameterTensor, magnitude: ParameterTensor) {
        self.a = a
        self.b = b
        self.magnitude = magnitude
    }
}
