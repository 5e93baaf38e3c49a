import AdaptRuntime
import Foundation

/// Trains a fresh adapter (A Kaiming-uniform, B = 0, as PEFT initialises
/// LoRA) on the teacher's batches with `optimizer`; returns it and its loss per step.
/// The loss is the mean squared error over every output entry of every pair.
func train<Optimizer: AdapterOptimizer>(with optimizer: inout Optimizer, label: String, options: Options,
                                        teacher: Teacher) throws -> (Adapter, [Double]) {
    let adapter = Adapter(threads: 1)  // one thread: the same bits on every machine
    var initRandom = SplitMix64(seed: options.seed &+ 1)
    var initial = [Float](repeating: 0, count: Adapter.parameterCount)
    for tensor in Adapter.parameterLayout where tensor.key.hasSuffix(".A") {
        let bound = 1 / Double(tensor.shape[1]).squareRoot()
        for i in tensor.offset..<tensor.offset + tensor.count { initial[i] = initRandom.uniform(bound) }
    }
    try adapter.setParameterValues(initial)

    var dataRandom = SplitMix64(seed: options.seed &+ 2)  // the same batches for every optimizer
    let pairs = TrainingData.pairs()
    let progress = Progress(label: label, total: options.steps)
    var losses: [Double] = []
    for step in 1...options.steps {
        adapter.zeroGradients()
        var loss = 0.0
        let elements = Double(pairs.reduce(0) { $0 + options.rows * Adapter.shape(of: $1.module).out })
        for (index, pair) in pairs.enumerated() {
            let (x, y) = teacher.batch(pair: index, module: pair.module, rows: options.rows, random: &dataRandom)
            let prediction = try adapter.forward(layer: pair.layer, module: pair.module, x: x, rows: options.rows)
            let residual = zip(prediction, y).map { $0 - $1 }
            loss += residual.reduce(0.0) { $0 + Double($1) * Double($1) } / elements
            let dy = residual.map { Float(2 * Double($0) / elements) }
            _ = try adapter.backward(layer: pair.layer, module: pair.module, x: x, dy: dy, rows: options.rows)
        }
        losses.append(loss)
        try adapter.clipGradients(maxNorm: 1)
        try optimizer.step(adapter)
        progress.update(step)
    }
    progress.finish()
    return (adapter, losses)
}

/// `\r`-updated progress on stderr, only when stderr is a terminal and the run is long.
struct Progress {
    let label: String
    let total: Int
    let shown: Bool

    init(label: String, total: Int) {
        self.label = label
        self.total = total
        shown = isatty(2) != 0 && total >= 1000
    }

    func update(_ step: Int) {
        guard shown, step % max(total / 100, 1) == 0 else { return }
        FileHandle.standardError.write(Data("\r\(label): step \(step)/\(total) (\(100 * step / total)%)".utf8))
    }

    func finish() {
        if shown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

/// The loss curves as a small table, and a checksum of their bits (the same
/// seed must print the same checksum).
enum LossTable {
    static func print(_ curves: [String: [Double]], order: [String]) {
        let steps = curves[order[0]]!.count
        var rows = [1]
        for tenth in 1...10 { rows.append(max(1, steps * tenth / 10)) }
        rows = Array(Set(rows)).sorted()
        Swift.print("step".padding(toLength: 8, withPad: " ", startingAt: 0) + order.map { $0.padding(toLength: 16, withPad: " ", startingAt: 0) }.joined())
        for step in rows {
            let cells = order.map { String(format: "%-16.4e", curves[$0]![step - 1]) }
            Swift.print(String(step).padding(toLength: 8, withPad: " ", startingAt: 0) + cells.joined())
        }
    }

    /// FNV-1a over the losses' bit patterns.
    static func checksum(_ values: [Double]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for value in values {
            var bits = value.bitPattern
            for _ in 0..<8 { hash = (hash ^ (bits & 0xff)) &* 0x100_0000_01b3; bits >>= 8 }
        }
        return String(hash, radix: 16)
    }
}
