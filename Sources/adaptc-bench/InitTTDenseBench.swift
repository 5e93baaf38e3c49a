import AdaptRuntime
import Foundation

/// `init-tt` (DESIGN §8): TT-SVD of the stacked tensor `[24, 1024, 1024]`
/// (24 weights 1024×1024, order [layer, out, in]) to bond ranks 8, held in
/// memory as float32 as the peers hold theirs (`TTSVD.decompose` on the
/// buffer: no copy). The data is a formula Tools/Peers/init-tt.py evaluates
/// the same way: `X[l,o,i] = Σ_{k<24} a_lk·b_ok·c_ik + 0.01·h(e)` with
/// `a_lk = sin(0.7(l+1)(k+1))/(k+1)`, `b_ok = sin(0.37(o+1)(k+1))`,
/// `c_ik = cos(0.11(i+1)(k+1))`, and h(e) ∈ [−1, 1) the splitmix64 hash of the
/// flat index e = (l·1024 + o)·1024 + i (`Bench.hashNoise`), float64 then float32.
///
/// `rel_err` is ‖X − X̂‖/‖X‖ measured on the rebuilt train in float64 (not
/// the train's own estimate), so rows of different implementations compare
/// at equal error. `methods` and `step_seconds` give each bond's method and
/// the seconds of its step (in the last timed run).
///
/// Floors: memory, X read twice (the Gram pass, then the projection, which
/// needs the Gram's eigenvectors) and the remainder `[8, 1024·1024]` written
/// once and read once; compute, the Gram of the first unfolding on its smaller
/// side (n₁²·rest), its projection (2·r₁·n₁·rest) and the second unfolding's
/// `[8·1024, 1024]` cheaper method as `TTSVD.cheaperMethod` counts it.
extension Bench {
    static func initTT(threads: Int) throws {
        let (layers, size, rank) = (24, 1024, 8)
        let count = layers * size * size
        let x = formulaTensor(slices: layers, size: size, threads: threads)
        defer { x.deallocate() }
        let shape = [layers, size, size], caps = [rank, rank]
        let settings = TruncatedSVD.Randomized()
        var train: TTSVD?
        let workspace = TTSVD.Workspace()  // kept across repeats, as an app keeps it
        let decompose = {
            train = try TTSVD.decompose(UnsafeBufferPointer(x), modeSizes: shape, caps: caps, threads: threads,
                                        workspace: workspace)
        }
        try decompose()
        let methods = train!.bonds.map(\.method)
        // The flops that cannot be avoided, method by method.
        let (n1, rest) = (layers, size * size)
        let stepTwo = methods[1] == .randomized
            ? (2 * settings.powerIterations + 2) * 2 * (rank + settings.oversampling) * (rank * size) * size
            : size * size * (rank * size)
        let flops = n1 * n1 * rest + 2 * rank * n1 * rest + stepTwo
        let remainder = rank * size * size
        let floor = CaseFloor(reading: [remainder], writing: [remainder],
                              sharing: CaseFloor.Shared(reading: [UnsafeBufferPointer(x), UnsafeBufferPointer(x)]),
                              flops: flops, threads: threads)
        let seconds = try timeWithFloors([decompose], floors: [floor], repeats: 5, warmup: 2)[0]
        // The error of the train, measured (float64) on the full tensor it represents.
        let full = train!.full()
        var difference = 0.0, norm = 0.0
        for e in 0..<count {
            let value = Double(x[e])
            difference += (value - full[e]) * (value - full[e])
            norm += value * value
        }
        emit([("case", "init-tt"), ("variant", "tt-svd"), ("n", layers), ("impl", "adaptc"), ("threads", threads),
              ("seconds", seconds), ("flops", flops), ("rel_err", (difference / norm).squareRoot()),
              ("rel_err_reported", train!.error / train!.norm),
              ("methods", methods.map { $0 == .gram ? "gram" : "randomized" }.joined(separator: "+")),
              ("step_seconds", train!.bonds.map { String(format: "%.4g", $0.seconds) }.joined(separator: "+"))], floor: floor)
        emit(floor.row(case: "init-tt", n: layers, of: "tt-svd"))
    }

    /// The formula tensor `[slices, size, size]` of init-tt (and init-tucker):
    /// `X[l,o,i] = Σ_{k<24} a_lk·b_ok·c_ik + 0.01·h((l·size + o)·size + i)`,
    /// each slice `(b·diag(a_l))·cᵀ` in float64, then rounded to float32.
    static func formulaTensor(slices: Int, size: Int, threads: Int) -> UnsafeMutableBufferPointer<Float> {
        let terms = 24
        let x = UnsafeMutableBufferPointer<Float>.allocate(capacity: slices * size * size)
        var a = [Double](repeating: 0, count: slices * terms), b = [Double](repeating: 0, count: size * terms)
        var c = [Double](repeating: 0, count: size * terms)
        for k in 0..<terms {
            let f = Double(k + 1)
            for l in 0..<slices { a[l * terms + k] = sin(0.7 * Double(l + 1) * f) / f }
            for o in 0..<size {
                b[o * terms + k] = sin(0.37 * Double(o + 1) * f)
                c[o * terms + k] = cos(0.11 * Double(o + 1) * f)
            }
        }
        Parallel.forEach(slices, threads: threads) { range in
            for l in range {
                var scaled = b
                for o in 0..<size { for k in 0..<terms { scaled[o * terms + k] *= a[l * terms + k] } }
                var product = [Double](repeating: 0, count: size * size)
                Float64LinearAlgebra.gemm(transA: false, transB: true, m: size, n: size, k: terms, a: scaled, lda: terms,
                                          b: c, ldb: terms, c: &product, ldc: size)
                for e in 0..<(size * size) {
                    let flat = l * size * size + e
                    x[flat] = Float(product[e] + 0.01 * hashNoise(UInt64(flat)))
                }
            }
        }
        return x
    }

    /// splitmix64 of `e`, as a float in [−1, 1): 53 bits of the hash.
    static func hashNoise(_ e: UInt64) -> Double {
        var z = e &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) * 0x1p-52 - 1
    }
}
