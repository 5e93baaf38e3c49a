// Trains the adapter of tiny-attention.adapt.yaml (compiled by the build-tool
// plugin into TinyAttentionAdapter) to imitate a synthetic teacher, once with
// AdamW and once with the gauge-aware preconditioned step, prints the loss
// curves, saves the AdamW adapter, and checks with `adaptc eval` that the
// saved file reproduces the app's own forward.
//
//     swift run TrainAdapter [--steps N] [--seed S] [--output FILE] [--adaptc PATH]
import AdaptRuntime
import Foundation

typealias Adapter = TinyAttentionAdapter

var options = Options()
do {
    options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    FileHandle.standardError.write(Data("TrainAdapter: error: \(error)\n\(Options.usage)\n".utf8))
    exit(64)
}

let pairs = TrainingData.pairs()
let teacher = Teacher(pairs: pairs, seed: options.seed)
print("TrainAdapter: \(Adapter.specName), \(pairs.count) pairs, \(Adapter.parameterCount) parameters, teacher rank \(Teacher.rank), \(options.steps) steps, seed \(options.seed)")

do {
    var adamW = AdamW(for: Adapter.self, learningRate: 2e-2, weightDecay: 0,
                      schedule: .warmupCosine(warmup: options.steps / 20, total: options.steps, floor: 0.05))
    let (adapter, adamCurve) = try train(with: &adamW, label: "AdamW", options: options, teacher: teacher)
    // ScaledGD's step is in units of the loss's curvature, not AdamW's unit-free
    // one: the loss is a mean over 4 096 outputs of inputs with variance 1/3, so
    // its curvature in ΔW is about 2·32/3/4096 ≈ 0.005 and a rate near 30 is a
    // damped Newton step.
    var preconditioned = PreconditionedStep(for: Adapter.self, learningRate: 30, damping: 1e-3,
                                            schedule: .warmupCosine(warmup: options.steps / 20, total: options.steps, floor: 0.05))
    let (_, scaledCurve) = try train(with: &preconditioned, label: "preconditioned", options: options, teacher: teacher)

    LossTable.print(["AdamW": adamCurve, "preconditioned": scaledCurve], order: ["AdamW", "preconditioned"])
    print("loss curve checksum: \(LossTable.checksum(adamCurve + scaledCurve))")
    var ok = true
    for (name, curve) in [("AdamW", adamCurve), ("preconditioned", scaledCurve)] {
        let ratio = curve.last! / curve.first!
        let passed = ratio < 0.01
        ok = ok && passed
        print("\(name): final/initial loss = \(String(format: "%.3g", ratio)) \(passed ? "(below 1%)" : "(NOT below 1%)")")
    }

    try adapter.save(to: options.output, metadata: ["trained.by": "TrainAdapter", "trained.steps": "\(options.steps)"])
    print("saved \(options.output)")
    let deviation = try EvalCheck.run(adapter: adapter, savedAt: options.output, pairs: pairs, options: options)
    let evalPassed = deviation <= 1e-6
    print("adaptc eval of the saved file vs the app's forward: max relative difference \(String(format: "%.3g", deviation)) \(evalPassed ? "(≤ 1e-6)" : "(ABOVE 1e-6)")")
    exit(ok && evalPassed ? 0 : 1)
} catch {
    FileHandle.standardError.write(Data("TrainAdapter: error: \(error)\n".utf8))
    exit(1)
}
