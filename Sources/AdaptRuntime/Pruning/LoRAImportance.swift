import CBLAS

/// LoRA-drop's importance of one pair on calibration rows `x` `[n, in]`:
/// `g = Σ_rows ‖x·ΔWᵀ‖²` (Zhou et al., LoRA-drop, 2024), the energy the adapter
/// adds to the layer's output. Computed without materialising ΔW or the output:
/// `z = x·Aᵀ` `[n, r]`, then `g = s²·Σ_rows zᵀ(BᵀB)z = s²·⟨BᵀB, zᵀz⟩`, so the
/// cost is one `n×in×r` GEMM (the first half of a forward) plus r×r work.
public enum LoRAImportance {
    /// `Σ_rows ‖x·ΔWᵀ‖²`; the small Gram matrices are accumulated in float64.
    public static func outputEnergy(_ factors: LoRAFactors, x: UnsafeBufferPointer<Float>, rows n: Int) -> Double {
        let (r, inFeatures, out) = (factors.rank, factors.inFeatures, factors.outFeatures)
        precondition(x.count == n * inFeatures, "outputEnergy: x has \(x.count) elements, expected \(n * inFeatures)")
        if n == 0 || r == 0 { return 0 }
        var z = [Float](repeating: 0, count: n * r)
        factors.a.withUnsafeBufferPointer { a in
            z.withUnsafeMutableBufferPointer { z in
                BLAS.gemm(transA: false, transB: true, m: n, n: r, k: inFeatures, alpha: 1, a: x.baseAddress!, lda: inFeatures,
                          b: a.baseAddress!, ldb: inFeatures, beta: 0, c: z.baseAddress!, ldc: r)
            }
        }
        let gramB = gram(factors.b, rows: out, cols: r)
        let gramZ = gram(z, rows: n, cols: r)
        var energy = 0.0
        for i in 0..<(r * r) { energy += gramB[i] * gramZ[i] }
        return factors.scale * factors.scale * max(energy, 0)
    }

    /// The importance of many pairs, `x[i]` `[rows[i], in]` for `factors[i]`, in
    /// parallel over pairs (TBB, `threads` as everywhere; each pair one
    /// single-threaded GEMM), so two cores share the work without splitting thin GEMMs.
    public static func outputEnergies(_ factors: [LoRAFactors], inputs: [UnsafeBufferPointer<Float>], rows: [Int],
                                      threads: Int) -> [Double] {
        precondition(factors.count == inputs.count && factors.count == rows.count)
        var energies = [Double](repeating: 0, count: factors.count)
        energies.withUnsafeMutableBufferPointer { energies in
            Parallel.forEach(factors.count, threads: threads) { range in
                for i in range { energies[i] = outputEnergy(factors[i], x: inputs[i], rows: rows[i]) }
            }
        }
        return energies
    }

    /// `MᵀM` `[cols, cols]` of a row-major float matrix, accumulated in float64.
    static func gram(_ m: [Float], rows: Int, cols: Int) -> [Double] {
        var g = [Double](repeating: 0, count: cols * cols)
        m.withUnsafeBufferPointer { m in
            var row = [Double](repeating: 0, count: cols)
            for i in 0..<rows {
                for j in 0..<cols { row[j] = Double(m[i * cols + j]) }
                for j in 0..<cols {
                    let rj = row[j]
                    for k in j..<cols { g[j * cols + k] += rj * row[k] }
                }
            }
        }
        for j in 0..<cols { for k in 0..<j { g[j * cols + k] = g[k * cols + j] } }
        return g
    }
}
