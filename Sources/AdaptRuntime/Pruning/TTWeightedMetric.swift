/// The output energy on the calibration rows as a metric on tensor trains
/// (DESIGN §4), evaluated with the rows, never the Gram `G = Σ xᵀx`.
///
/// Per pair p = (l, m) the layer and module cores are sliced to (l, m), so the
/// pair's train runs over the out and in modes; `E_p(T) = Σ_rows ‖x·T_pᵀ‖²`.
/// The in modes span a segment of the train (first to last in mode; out modes
/// inside it are its "other" digits). Contracting the rows with the segment's
/// product `S` `[ρ0, J, ρ1]` gives `Y[n, o, ρ0, ρ1]` — n·in·ρ0·ρ1·o
/// multiply-adds, the one step that touches the rows — and its Gram over
/// (n, o), `Q = YᵀY` `[ρ0ρ1, ρ0ρ1]`, is all the data the cores outside the
/// segment need: `E_p = Σ Q[(a,b),(a',b')]·Λ_p[a,a']·Γ_p[b,b']` with `Λ_p`,
/// `Γ_p` the plain (bond-sized) environments of the cores left and right of
/// the segment. Forming G instead would cost n·in² per input and applying it
/// in² per bond pair; at in = 1024, n = 512, ρ = 8 that is 64× and 128× more.
///
/// A bond's cut is measured exactly: for an orthonormal basis `v_c` of bond k
/// and `D_c` the train with `v_c·v_cᵀ` inserted there, `Φ[c,c'] = ⟨D_c, D_c'⟩`
/// summed over pairs, and keeping the first j components loses exactly
/// `Σ_{c,c' ≥ j} Φ[c,c']`. Outside the segment, `Φ_p = (VᵀΛ_pV) ∘ (VᵀΓ_pV)`
/// from environments (one of them data-weighted); inside it, the rows are
/// contracted with the segment split at the bond (`rows ×_{in right} v_cᵀS_R`,
/// then `×_{in left} S_L·v_c`).
struct TTWeightedMetric {
    let calibration: TTCalibration
    let modes: [TTMode]
    let threads: Int
    /// First in mode ..< last in mode + 1.
    let segment: Range<Int>
    let layerMode: Int?
    let moduleMode: Int?
    /// Pairs sharing one contraction with the rows: the same input and, where the
    /// layer or module mode lies inside the segment, the same slice of it.
    let keyOfPair: [Int]
    let keyPairs: [[Int]]
    /// Digits of the segment of a pair's (sliced) train.
    let segmentIndex: SegmentIndex
    let slicedSizes: [Int]

    init(calibration: TTCalibration, modes: [TTMode], threads: Int) {
        let inModes = modes.indices.filter { modes[$0].kind == .in }
        precondition(!inModes.isEmpty && inModes.reduce(1) { $0 * modes[$1].size } == calibration.inFeatures,
                     "TTCalibration: the train's in modes do not multiply to the rows' width")
        self.calibration = calibration
        self.modes = modes
        self.threads = max(threads, 1)
        segment = inModes.first!..<(inModes.last! + 1)
        layerMode = modes.firstIndex { $0.kind == .layer }
        moduleMode = modes.firstIndex { $0.kind == .module }
        var sizes = modes.map(\.size)
        if let k = layerMode { sizes[k] = 1 }
        if let k = moduleMode { sizes[k] = 1 }
        slicedSizes = sizes
        segmentIndex = SegmentIndex(modes: modes, sizes: sizes, segment: segment)
        let layerInside = layerMode.map(segment.contains) ?? false, moduleInside = moduleMode.map(segment.contains) ?? false
        var keys: [[Int]: Int] = [:], keyOfPair: [Int] = [], keyPairs: [[Int]] = []
        let modules = calibration.modules
        for p in 0..<calibration.pairCount {
            let id = [calibration.inputOfPair[p], layerInside ? p / modules : -1, moduleInside ? p % modules : -1]
            if let key = keys[id] {
                keyOfPair.append(key)
                keyPairs[key].append(p)
            } else {
                keys[id] = keyPairs.count
                keyOfPair.append(keyPairs.count)
                keyPairs.append([p])
            }
        }
        self.keyOfPair = keyOfPair
        self.keyPairs = keyPairs
    }

    var pairCount: Int { calibration.pairCount }

    /// Pair p's train: the layer and module cores sliced to its (l, m).
    func pairTrain(_ train: TensorTrain, _ p: Int) -> TensorTrain {
        var t = train
        if let k = layerMode { t = t.slice(mode: k, at: p / calibration.modules) }
        if let k = moduleMode { t = t.slice(mode: k, at: p % calibration.modules) }
        return t
    }

    /// Runs `body(key, workspace)` for every key, `threads` at a time, collecting
    /// the results; each task has one block workspace (`TTCalibration.forEachBlock`).
    func perKey<T>(_ body: (Int, UnsafeMutableBufferPointer<Double>) -> T) -> [T] {
        var results = [T?](repeating: nil, count: keyPairs.count)
        let capacity = calibration.blockCapacity
        results.withUnsafeMutableBufferPointer { out in
            Parallel.forEach(keyPairs.count, threads: threads) { range in
                let workspace = UnsafeMutableBufferPointer<Double>.allocate(capacity: capacity)
                defer { workspace.deallocate() }
                for key in range { out[key] = body(key, workspace) }
            }
        }
        return results.map { $0! }
    }

    // MARK: the rows against the segment

    /// The rows contracted with a train's segment: per key `Y` `[(n·o), ρ0·ρ1]`
    /// and its Gram `Q`, with the segment cores they were computed from.
    struct Projection {
        var cores: [[Double]]
        var rho0: Int
        var rho1: Int
        var y: [[Double]]
        var gram: [[Double]]
    }

    func project(_ train: TensorTrain) -> Projection { project(train, preparing: []).0 }

    /// W is kept for the prepared bonds while the kept W's stay within this many doubles in all.
    static let keptW = 4 << 20

    /// One pass over the rows: the projection of `train`'s segment and, from the
    /// same blocks of rows, the `Prepared` of each bond of `bonds` (inside the segment).
    func project(_ train: TensorTrain, preparing bonds: [Int]) -> (Projection, [Int: Prepared]) {
        let r0 = train.ranks[segment.lowerBound], r1 = train.ranks[segment.upperBound]
        let q = r0 * r1, others = segmentIndex.otherCount, digits = segmentIndex.count
        let inFeatures = calibration.inFeatures
        let layouts = bonds.map { InsideLayout(self, ranks: train.ranks, bond: $0) }
        var budget = Self.keptW
        let keepW = layouts.map { l -> Bool in
            let size = calibration.rowCounts.reduce(0, +) * l.inL * l.cols
            if size <= budget { budget -= size; return true }
            return false
        }
        let results = perKey { key, workspace -> (y: [Double], gram: [Double], prepared: [(pooled: [Double], w: [Double]?)]) in
            let p = keyPairs[key][0]
            let merged = pairTrain(train, p).product(segment)
            // B[i, (o, a, b)] = S[a, j, b] for the digits j of in index i and other index o.
            var b = [Double](repeating: 0, count: inFeatures * others * q)
            for a in 0..<r0 {
                for j in 0..<digits {
                    let source = (a * digits + j) * r1
                    let target = segmentIndex.inIndex[j] * others * q + (segmentIndex.otherIndex[j] * r0 + a) * r1
                    for c in 0..<r1 { b[target + c] = merged[source + c] }
                }
            }
            let input = calibration.inputOfPair[p], n = calibration.rowCounts[input]
            var y = [Double](repeating: 0, count: n * others * q)
            let factors = bonds.indices.map { insideFactors(train, key: key, bond: bonds[$0], layouts[$0]).b }
            var pooled = layouts.map { [Double](repeating: 0, count: $0.side * $0.side) }
            var grams = layouts.map { [Double](repeating: 0, count: $0.inR * $0.inR) }
            var ws = layouts.indices.map { keepW[$0] ? [Double](repeating: 0, count: n * layouts[$0].inL * layouts[$0].cols) : [] }
            b.withUnsafeBufferPointer { b in
                y.withUnsafeMutableBufferPointer { y in
                    calibration.forEachBlock(input, permutation: nil, workspace: workspace) { x, first, count in
                        DenseLinearAlgebra.gemm(m: count, n: others * q, k: inFeatures, a: x, lda: inFeatures, b: b.baseAddress!,
                                                ldb: others * q, c: y.baseAddress! + first * others * q, ldc: others * q)
                        for i in bonds.indices {
                            let l = layouts[i]
                            ws[i].withUnsafeMutableBufferPointer { wp in
                                Self.accumulatePooled(x, count: count, b: factors[i], l, g: &pooled[i], gram: &grams[i],
                                                      w: keepW[i] ? wp.baseAddress! + first * l.inL * l.cols : nil)
                            }
                        }
                    }
                }
            }
            let prepared = bonds.indices.map { i in
                (Self.finishPooled(g: pooled[i], gram: grams[i], b: factors[i], layouts[i]), keepW[i] ? ws[i] : nil)
            }
            return (y, DenseLinearAlgebra.multiply(y, y, m: q, n: q, k: n * others, transA: true), prepared)
        }
        var prepared: [Int: Prepared] = [:]
        for (i, k) in bonds.enumerated() {
            prepared[k] = Prepared(cores: Array(train.cores[k...]), rank: train.ranks[k], pooled: results.map { $0.prepared[i].pooled },
                                   w: keepW[i] ? results.map { $0.prepared[i].w! } : nil)
        }
        return (Projection(cores: Array(train.cores[segment]), rho0: r0, rho1: r1, y: results.map(\.y), gram: results.map(\.gram)), prepared)
    }

    /// Per pair `Σ_rows ⟨x·T_pᵀ, x·T'_pᵀ⟩` of two trains of the same modes, from their projections.
    func pairInnerProducts(_ first: TensorTrain, _ p1: Projection, _ second: TensorTrain, _ p2: Projection) -> [Double] {
        let (a1, b1, a2, b2) = (p1.rho0, p1.rho1, p2.rho0, p2.rho1)
        let rows = zip(p1.y, p2.y).map { $0.0.count / (a1 * b1) }
        let cross = keyPairs.indices.map { key in
            DenseLinearAlgebra.multiply(p1.y[key], p2.y[key], m: a1 * b1, n: a2 * b2, k: rows[key], transA: true)
        }
        return (0..<pairCount).map { p in
            let t1 = pairTrain(first, p), t2 = pairTrain(second, p)
            let lambda = t1.leftEnvironment(with: t2, upTo: segment.lowerBound)
            let gamma = t1.rightEnvironment(with: t2, downTo: segment.upperBound)
            let q = cross[keyOfPair[p]]
            var e = 0.0
            for a in 0..<a1 { for b in 0..<b1 { for a2i in 0..<a2 { for b2i in 0..<b2 {
                e += q[(a * b1 + b) * (a2 * b2) + a2i * b2 + b2i] * lambda[a * a2 + a2i] * gamma[b * b2 + b2i]
            } } } }
            return e
        }
    }

    /// The Gram `Q` per key for the train's segment as it is now. While the
    /// rounding sweeps the bonds outside the segment, the segment only moves by
    /// a gauge on one of its two bonds (`S ← A·S` or `S ← S·B`), so `Q ← TᵀQT`
    /// is exact and the rows are not read again; otherwise (or when the change
    /// is not such a gauge, checked) the rows are contracted anew and `reference`
    /// becomes that projection.
    func grams(for train: TensorTrain, reference: inout Projection) -> [[Double]] {
        let current = Array(train.cores[segment])
        if current == reference.cores && train.ranks[segment.lowerBound] == reference.rho0 { return reference.gram }
        if let t = gaugeChange(from: reference, to: train) {
            let (qOld, qNew) = (reference.rho0 * reference.rho1, train.ranks[segment.lowerBound] * train.ranks[segment.upperBound])
            return reference.gram.map { g in
                let gt = DenseLinearAlgebra.multiply(g, t, m: qOld, n: qNew, k: qOld)
                return DenseLinearAlgebra.multiply(t, gt, m: qNew, n: qNew, k: qOld, transA: true)
            }
        }
        reference = project(train)
        return reference.gram
    }

    /// `T` `[ρ0ρ1, ρ0'ρ1']` with `Y_now = Y_ref·T`, when the segment's cores are
    /// the reference's but for a matrix on the first core's left bond or the last
    /// core's right bond (solved by pseudo-inverse, kept only when it reproduces
    /// the core to 1e-10).
    func gaugeChange(from reference: Projection, to train: TensorTrain) -> [Double]? {
        let current = Array(train.cores[segment])
        let (r0, r1) = (reference.rho0, reference.rho1)
        let (c0, c1) = (train.ranks[segment.lowerBound], train.ranks[segment.upperBound])
        if r1 == c1, Array(current.dropFirst()) == Array(reference.cores.dropFirst()),
           let a = Self.solve(reference.cores[0], current[0], refRows: r0, rows: c0, left: true) {
            // Y_now[.., a', b] = Σ_a A[a', a]·Y[.., a, b]
            var t = [Double](repeating: 0, count: r0 * r1 * c0 * c1)
            for i in 0..<r0 { for i2 in 0..<c0 { for b in 0..<r1 { t[(i * r1 + b) * (c0 * c1) + i2 * c1 + b] = a[i2 * r0 + i] } } }
            return t
        }
        if r0 == c0, Array(current.dropLast()) == Array(reference.cores.dropLast()),
           let bm = Self.solve(reference.cores.last!, current.last!, refRows: r1, rows: c1, left: false) {
            var t = [Double](repeating: 0, count: r0 * r1 * c0 * c1)
            for a in 0..<r0 { for b in 0..<r1 { for b2 in 0..<c1 { t[(a * r1 + b) * (c0 * c1) + a * c1 + b2] = bm[b * c1 + b2] } } }
            return t
        }
        return nil
    }

    /// `left`: A `[rows, refRows]` with `current = A·reference` (cores unfolded
    /// `[bond, rest]`); otherwise B `[refRows, rows]` with `current = reference·B`
    /// (unfolded `[rest, bond]`). Nil when no such matrix reproduces `current`.
    static func solve(_ reference: [Double], _ current: [Double], refRows: Int, rows: Int, left: Bool) -> [Double]? {
        let rest = reference.count / refRows
        guard current.count == rows * rest else { return nil }
        // Work on [bond, rest] unfoldings: transpose for the right-hand case.
        let g = left ? reference : TTCanonicalForm.transpose(reference, rows: rest, cols: refRows)
        let h = left ? current : TTCanonicalForm.transpose(current, rows: rest, cols: rows)
        let svd = DenseLinearAlgebra.svd(g, rows: refRows, cols: rest)
        let cutoff = (svd.s.first ?? 0) * 1e-13
        // pinv(g) [rest, refRows] = Vᵀ·diag(1/s)·Uᵀ over the kept singular values.
        var pinv = [Double](repeating: 0, count: rest * refRows)
        for k in 0..<svd.k where svd.s[k] > cutoff {
            for i in 0..<rest {
                let v = svd.vt[k * rest + i] / svd.s[k]
                for j in 0..<refRows { pinv[i * refRows + j] += v * svd.u[j * svd.k + k] }
            }
        }
        let a = DenseLinearAlgebra.multiply(h, pinv, m: rows, n: refRows, k: rest)  // [rows, refRows]
        let back = DenseLinearAlgebra.multiply(a, g, m: rows, n: rest, k: refRows)
        let norm = h.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let residual = zip(back, h).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
        guard residual <= 1e-10 * max(norm, .leastNormalMagnitude) else { return nil }
        return left ? a : TTCanonicalForm.transpose(a, rows: rows, cols: refRows)
    }

    // MARK: bonds

    /// A bond's data-weighted spectrum (descending, the components' output energy
    /// in the pooled weighting when not exact), its components (rows of `basis`
    /// `[r, r]`, in the bond space of the train as canonicalised) and `phi`, the
    /// exact `[r, r]` output inner products of the components on the rows.
    struct Bond {
        var energies: [Double]
        var basis: [Double]
        var phi: [Double]
        var exact: Bool

        /// The output energy lost on the rows by keeping the first `keep` components.
        func loss(keeping keep: Int) -> Double {
            let r = energies.count
            var sum = 0.0
            for c in keep..<r { for c2 in keep..<r { sum += phi[c * r + c2] } }
            return sum
        }
    }

    /// Brings the train to the canonical form bond k's cut needs and measures
    /// the bond. The side holding all in modes carries the weighting, the other
    /// side is orthonormal; a bond inside the segment weights whichever side
    /// is cheaper to contract with the rows (the one whose segment bond and
    /// out digits are smaller; on a tie the side with more of the in modes).
    func analyse(_ train: inout TensorTrain, bond k: Int, reference: inout Projection, prepared: [Int: Prepared] = [:]) -> Bond {
        let n = modes.count, (start, end) = (segment.lowerBound, segment.upperBound)
        let weightedLeft = (0..<k).contains { modes[$0].isWeighted }, weightedRight = (k..<n).contains { modes[$0].isWeighted }
        if k <= start {
            TTCanonicalForm.leftOrthogonalise(&train, upTo: k)
            return outside(train, bond: k, weightOnRight: true, grams: grams(for: train, reference: &reference), exact: !weightedLeft)
        }
        if k >= end {
            TTCanonicalForm.rightOrthogonalise(&train, downTo: k)
            return outside(train, bond: k, weightOnRight: false, grams: grams(for: train, reference: &reference), exact: !weightedRight)
        }
        if weighsRightInside(ranks: train.ranks, bond: k) {
            TTCanonicalForm.leftOrthogonalise(&train, upTo: k)
            return inside(train, bond: k, prepared: prepared[k])
        }
        TTCanonicalForm.rightOrthogonalise(&train, downTo: k)
        let mirror = TTWeightedMetric(calibration: calibration, modes: modes.reversed(), threads: threads)
        return mirror.inside(train.reversed(), bond: n - k)
    }

    /// A bond with every in mode on one side. Weight on the right: `Λ_p` the
    /// plain left environment, `Γ_p` the right one through the segment's `Q`;
    /// the pooled spectrum is that of `Σ_p Γ_p` (the left side orthonormal).
    /// Weight on the left: the mirror image.
    func outside(_ train: TensorTrain, bond k: Int, weightOnRight: Bool, grams: [[Double]], exact: Bool) -> Bond {
        let r = train.ranks[k], (start, end) = (segment.lowerBound, segment.upperBound)
        let (r0, r1) = (train.ranks[start], train.ranks[end])
        var pooled = [Double](repeating: 0, count: r * r)
        var sides: [(left: [Double], right: [Double])] = []
        for p in 0..<pairCount {
            let t = pairTrain(train, p), q = grams[keyOfPair[p]]
            let left: [Double], right: [Double]
            if weightOnRight {
                // K[a, a'] = Σ_{b,b'} Q[(a,b),(a',b')]·Γ_out[b, b'], then through cores k..<start.
                let outer = t.rightEnvironment(with: t, downTo: end)
                var kMatrix = [Double](repeating: 0, count: r0 * r0)
                for a in 0..<r0 { for a2 in 0..<r0 { var s = 0.0
                    for b in 0..<r1 { for b2 in 0..<r1 { s += q[(a * r1 + b) * (r0 * r1) + a2 * r1 + b2] * outer[b * r1 + b2] } }
                    kMatrix[a * r0 + a2] = s } }
                left = t.leftEnvironment(with: t, upTo: k)
                right = t.rightEnvironment(with: t, downTo: k, from: kMatrix, at: start)
                for i in pooled.indices { pooled[i] += right[i] }
            } else {
                let inner = t.leftEnvironment(with: t, upTo: start)
                var kMatrix = [Double](repeating: 0, count: r1 * r1)
                for b in 0..<r1 { for b2 in 0..<r1 { var s = 0.0
                    for a in 0..<r0 { for a2 in 0..<r0 { s += q[(a * r1 + b) * (r0 * r1) + a2 * r1 + b2] * inner[a * r0 + a2] } }
                    kMatrix[b * r1 + b2] = s } }
                left = t.leftEnvironment(with: t, upTo: k, from: kMatrix, at: end)
                right = t.rightEnvironment(with: t, downTo: k)
                for i in pooled.indices { pooled[i] += left[i] }
            }
            sides.append((left, right))
        }
        let svd = DenseLinearAlgebra.svd(pooled, rows: r, cols: r)
        var phi = [Double](repeating: 0, count: r * r)
        for side in sides {
            let l = Self.rotate(side.left, svd.vt, r), g = Self.rotate(side.right, svd.vt, r)
            for i in phi.indices { phi[i] += l[i] * g[i] }
        }
        return Bond(energies: svd.s, basis: svd.vt, phi: phi, exact: exact)
    }

    /// `Vt·M·Vtᵀ` for `[r, r]` matrices.
    static func rotate(_ m: [Double], _ vt: [Double], _ r: Int) -> [Double] {
        let x = DenseLinearAlgebra.multiply(vt, m, m: r, n: r, k: r)
        return DenseLinearAlgebra.multiply(x, vt, m: r, n: r, k: r, transB: true)
    }

    /// The index arithmetic of a bond k inside the segment, weight on the right.
    struct InsideLayout {
        let left: SideDigits
        let right: SideDigits
        /// Columns of the rows in left-major (i_L, i_R) order; nil when that is their own order.
        let permutation: [Int]?
        let r: Int, r0: Int, r1: Int
        var inL: Int { left.inCount }
        var inR: Int { right.inCount }
        var outL: Int { left.otherCount }
        var outR: Int { right.otherCount }
        /// Columns of W and T1: (o_R, ρ1, bond).
        var cols: Int { outR * r1 * r }
        var side: Int { r1 * r }
        /// Phase 1 through W = rows ×_{i_R} S_R (else through the rows' Gram over i_R).
        var viaW: Bool { inL * inR * cols + inL * outR * side * side <= inL * inR * inR }

        init(_ metric: TTWeightedMetric, ranks: [Int], bond k: Int) {
            let (start, end) = (metric.segment.lowerBound, metric.segment.upperBound)
            left = SideDigits(modes: metric.modes, sizes: metric.slicedSizes, range: start..<k)
            right = SideDigits(modes: metric.modes, sizes: metric.slicedSizes, range: k..<end)
            let (inL, inR) = (left.inCount, right.inCount)
            let order = (0..<(inL * inR)).map { [left, right] in left.inPiece[$0 / inR] + right.inPiece[$0 % inR] }
            permutation = order.elementsEqual(0..<order.count) ? nil : order
            (r, r0, r1) = (ranks[k], ranks[start], ranks[end])
        }
    }

    /// Per key: `S_L` `[ρ0, J_L, r]` and `B[i_R, (o_R, ρ1, b)] = S_R[b, j_R, ρ1]`.
    func insideFactors(_ train: TensorTrain, key: Int, bond k: Int, _ layout: InsideLayout) -> (left: [Double], b: [Double]) {
        let t = pairTrain(train, keyPairs[key][0])
        let sl = t.product(segment.lowerBound..<k), sr = t.product(k..<segment.upperBound)
        let (cols, r, r1, right) = (layout.cols, layout.r, layout.r1, layout.right)
        var b = [Double](repeating: 0, count: layout.inR * cols)
        let digits = right.inLocal.count
        for c in 0..<r { for j in 0..<digits { for x in 0..<r1 {
            b[right.inLocal[j] * cols + (right.otherLocal[j] * r1 + x) * r + c] = sr[(c * digits + j) * r1 + x]
        } } }
        return (sl, b)
    }

    /// One block of rows' share of the pooled form `g` `[(x, b), (x', b')]`
    /// (summed over n, i_L, o_R), and W for those rows when `w` is given.
    static func accumulatePooled(_ x: UnsafePointer<Double>, count: Int, b: [Double], _ layout: InsideLayout,
                                 g: inout [Double], gram: inout [Double], w: UnsafeMutablePointer<Double>?) {
        let (inL, inR, cols, side, outR) = (layout.inL, layout.inR, layout.cols, layout.side, layout.outR)
        if layout.viaW || w != nil {
            func multiply(into target: UnsafeMutablePointer<Double>) {
                b.withUnsafeBufferPointer { bp in
                    DenseLinearAlgebra.gemm(m: count * inL, n: cols, k: inR, a: x, lda: inR, b: bp.baseAddress!, ldb: cols, c: target, ldc: cols)
                }
                if layout.viaW {
                    g.withUnsafeMutableBufferPointer { gp in
                        DenseLinearAlgebra.gemm(transA: true, m: side, n: side, k: count * inL * outR, a: target, lda: side,
                                                b: target, ldb: side, beta: 1, c: gp.baseAddress!, ldc: side)
                    }
                }
            }
            if let w {
                multiply(into: w)
            } else {
                var local = [Double](repeating: 0, count: count * inL * cols)
                local.withUnsafeMutableBufferPointer { multiply(into: $0.baseAddress!) }
            }
        }
        if !layout.viaW {
            gram.withUnsafeMutableBufferPointer { gp in
                DenseLinearAlgebra.gemm(transA: true, m: inR, n: inR, k: count * inL, a: x, lda: inR, b: x, ldb: inR, beta: 1,
                                        c: gp.baseAddress!, ldc: inR)
            }
        }
    }

    /// The pooled form from what `accumulatePooled` summed.
    static func finishPooled(g: [Double], gram: [Double], b: [Double], _ layout: InsideLayout) -> [Double] {
        if layout.viaW { return g }
        let gb = DenseLinearAlgebra.multiply(gram, b, m: layout.inR, n: layout.cols, k: layout.inR)
        return DenseLinearAlgebra.multiply(b, gb, m: layout.side, n: layout.side, k: layout.inR * layout.outR, transA: true)
    }

    /// What the first pass over the rows (`project(_:preparing:)`) keeps for a
    /// bond inside the segment, in the gauge of the train it saw: per key the
    /// pooled form and, where it is small enough to keep, W itself. The sweep
    /// reaches bond k with cores k+1… unchanged and core k moved by a matrix on
    /// its left bond (`leftOrthogonalise`), so both carry over exactly and the
    /// bond needs no pass over the rows of its own (checked; else it reads them).
    struct Prepared {
        var cores: [[Double]]
        var rank: Int
        var pooled: [[Double]]
        var w: [[Double]]?
    }

    /// Bonds inside the segment whose weighting goes right and whose rows need
    /// no permutation: those `project(_:preparing:)` prepares.
    func preparableBonds(_ train: TensorTrain) -> [Int] {
        let (start, end) = (segment.lowerBound, segment.upperBound)
        guard end - start > 1 else { return [] }
        return ((start + 1)..<end).filter { k in
            weighsRightInside(ranks: train.ranks, bond: k) && InsideLayout(self, ranks: train.ranks, bond: k).permutation == nil
        }
    }


    /// Whether a bond inside the segment weighs its right side (the cheaper
    /// contraction with the rows; on a tie the side with more of the in modes).
    func weighsRightInside(ranks: [Int], bond k: Int) -> Bool {
        let (start, end) = (segment.lowerBound, segment.upperBound)
        let left = SideDigits(modes: modes, sizes: slicedSizes, range: start..<k), right = SideDigits(modes: modes, sizes: slicedSizes, range: k..<end)
        let r = ranks[k], (a, b) = (right.otherCount * ranks[end], left.otherCount * ranks[start])
        let inFeatures = calibration.inFeatures
        let rightCost = 2 * inFeatures * a * r + left.inCount * a * b, leftCost = 2 * inFeatures * b * r + right.inCount * a * b
        return rightCost < leftCost || (rightCost == leftCost && right.inCount >= left.inCount)
    }

    /// A bond inside the segment, weight on the right, the train left-orthogonal
    /// up to k. The segment splits at the bond into `S_L` `[ρ0, J_L, r]` and
    /// `S_R` `[r, J_R, ρ1]`; `W = rows ×_{in right} S_R` `[n, i_L, (o_R, ρ1, b)]`.
    /// Pooled spectrum: `Σ W·Γ̄·Wᵀ` over (n, i_L, o_R) (the Gram traced over the
    /// left's in digits, pooled over pairs, as `fᵀḠf` with f = the right side).
    /// Then per component `Y_c = (rows ×_{in right} v_cᵀS_R) ×_{in left} S_L·v_c`
    /// and `Φ[c,c'] = Σ_p ⟨Y_c, (Λ_p ⊗ Γ_p)·Y_c'⟩` with the environments outside
    /// the segment. With `prepared` (and the gauge relation holding) the pooled
    /// form and, when kept, W come from the first pass instead of the rows.
    func inside(_ train: TensorTrain, bond k: Int, prepared: Prepared? = nil) -> Bond {
        let (start, end) = (segment.lowerBound, segment.upperBound)
        let layout = InsideLayout(self, ranks: train.ranks, bond: k)
        let (r, r0, r1, inL, inR, outL, outR, cols) = (layout.r, layout.r0, layout.r1, layout.inL, layout.inR, layout.outL, layout.outR, layout.cols)
        let (left, permutation) = (layout.left, layout.permutation)
        // The gauge matrix A [r, r_prepared] with S_R now = A·S_R then, when it exists.
        var gauge: [Double]?
        if let prepared, Array(train.cores[(k + 1)...]) == Array(prepared.cores.dropFirst()) {
            gauge = Self.solve(prepared.cores[0], train.cores[k], refRows: prepared.rank, rows: r, left: true)
        }
        let usePrepared = gauge != nil ? prepared : nil
        // Per pair: the environments outside the segment; per key: Σ_p Γ_p and Σ_p Λ_p ⊗ Γ_p.
        let q = r0 * r1
        var gammaSum = [[Double]](repeating: [Double](repeating: 0, count: r1 * r1), count: keyPairs.count)
        var weight = [[Double]](repeating: [Double](repeating: 0, count: q * q), count: keyPairs.count)
        for p in 0..<pairCount {
            let t = pairTrain(train, p), key = keyOfPair[p]
            let lambda = t.leftEnvironment(with: t, upTo: start), gamma = t.rightEnvironment(with: t, downTo: end)
            for i in gamma.indices { gammaSum[key][i] += gamma[i] }
            // M[(a, x), (a', x')] = Λ[a, a']·Γ[x, x'] (the order of Y_c's columns below).
            for a in 0..<r0 { for x in 0..<r1 { for a2 in 0..<r0 { for x2 in 0..<r1 {
                weight[key][(a * r1 + x) * q + a2 * r1 + x2] += lambda[a * r0 + a2] * gamma[x * r1 + x2]
            } } } }
        }
        let parts = perKey { key, _ in insideFactors(train, key: key, bond: k, layout) }
        // Phase 1: the pooled spectrum.
        let pooledParts = perKey { key, workspace -> [Double] in
            var g: [Double]
            if let usePrepared, let a = gauge {
                // g now = (I_x ⊗ A)·g then·(I_x ⊗ A)ᵀ.
                let rp = usePrepared.rank, sideThen = r1 * rp
                var lift = [Double](repeating: 0, count: layout.side * sideThen)
                for x in 0..<r1 { for b in 0..<r { for b2 in 0..<rp { lift[(x * r + b) * sideThen + x * rp + b2] = a[b * rp + b2] } } }
                let gl = DenseLinearAlgebra.multiply(usePrepared.pooled[key], lift, m: sideThen, n: layout.side, k: sideThen, transB: true)
                g = DenseLinearAlgebra.multiply(lift, gl, m: layout.side, n: layout.side, k: sideThen)
            } else {
                let input = calibration.inputOfPair[keyPairs[key][0]]
                var sum = [Double](repeating: 0, count: layout.side * layout.side), gram = [Double](repeating: 0, count: inR * inR)
                calibration.forEachBlock(input, permutation: permutation, workspace: workspace) { x, _, count in
                    Self.accumulatePooled(x, count: count, b: parts[key].b, layout, g: &sum, gram: &gram, w: nil)
                }
                g = Self.finishPooled(g: sum, gram: gram, b: parts[key].b, layout)
            }
            var h = [Double](repeating: 0, count: r * r)
            let gamma = gammaSum[key], side = layout.side
            for x1 in 0..<r1 { for x2 in 0..<r1 { let w = gamma[x1 * r1 + x2]
                for c in 0..<r { for c2 in 0..<r { h[c * r + c2] += w * g[(x1 * r + c) * side + x2 * r + c2] } }
            } }
            return h
        }
        var pooled = [Double](repeating: 0, count: r * r)
        for h in pooledParts { for i in pooled.indices { pooled[i] += h[i] } }
        let svd = DenseLinearAlgebra.svd(pooled, rows: r, cols: r)
        let vt = svd.vt
        // Phase 2: Φ per key. Per block of rows, T1ᵀ [(o_R, ρ1, c), (n, i_L)] — from
        // the rows, T1ᵀ = (B·V)ᵀ·rowsᵀ; from a kept W, T1ᵀ = (Aᵀ·V)ᵀ·Wᵀ — so each
        // (o_R, ρ1, c) row is an [n, i_L] matrix to multiply by α_c.
        let phiParts = perKey { key, workspace -> [Double] in
            let input = calibration.inputOfPair[keyPairs[key][0]], n = calibration.rowCounts[input]
            let alpha = DenseLinearAlgebra.multiply(parts[key].left, vt, m: r0 * left.inLocal.count, n: r, k: r, transB: true)
            let digitsL = left.inLocal.count, width = outL * r0
            // α_c [i_L, (o_L, a)], all c: [c, i_L, (o_L, a)].
            var ac = [Double](repeating: 0, count: r * inL * width)
            for c in 0..<r { for a in 0..<r0 { for j in 0..<digitsL {
                ac[(c * inL + left.inLocal[j]) * width + left.otherLocal[j] * r0 + a] = alpha[(a * digitsL + j) * r + c]
            } } }
            let rowsAll = n * outR * outL
            var stacked = [Double](repeating: 0, count: r * rowsAll * q)
            // From a kept W all rows are one block (no conversion to stay in L2 for).
            let fromW = usePrepared?.w != nil && gauge != nil
            let blockRows = fromW ? n : max(1, workspace.count / calibration.inFeatures)
            var t1 = [Double](repeating: 0, count: cols * blockRows * inL), yc = [Double](repeating: 0, count: blockRows * width)
            // Per component, α_c applied to its T1 row block, straight into stacked
            // [(c, n, o_R, o_L), (a, x)] when ρ1 = 1 (its (o_L, a) columns are then
            // contiguous: ldc = o_R·o_L·q); otherwise through yc and a scatter.
            // Pointers throughout: element-wise stores to the captured arrays
            // (exclusivity-checked, bounds-checked) cost more than the products.
            func components(first: Int, count: Int) {
                t1.withUnsafeBufferPointer { tp in
                    ac.withUnsafeBufferPointer { ap in
                        yc.withUnsafeMutableBufferPointer { yp in
                            stacked.withUnsafeMutableBufferPointer { sp in
                                for oR in 0..<outR { for xx in 0..<r1 { for c in 0..<r {
                                    let z = (oR * r1 + xx) * r + c
                                    let a = tp.baseAddress! + z * count * inL, b = ap.baseAddress! + c * inL * width
                                    let target = sp.baseAddress! + ((c * n + first) * outR * outL + oR * outL) * q + xx
                                    if r1 == 1 {
                                        DenseLinearAlgebra.gemm(m: count, n: width, k: inL, a: a, lda: inL, b: b, ldb: width,
                                                                c: target, ldc: outR * outL * q)
                                        continue
                                    }
                                    DenseLinearAlgebra.gemm(m: count, n: width, k: inL, a: a, lda: inL, b: b, ldb: width,
                                                            c: yp.baseAddress!, ldc: width)
                                    for row in 0..<count { for oL in 0..<outL { for a in 0..<r0 {
                                        target[(row * outR * outL + oL) * q + a * r1] = yp[row * width + oL * r0 + a]
                                    } } }
                                } } }
                            }
                        }
                    }
                }
            }
            if let usePrepared, let a = gauge, let w = usePrepared.w?[key] {
                let rp = usePrepared.rank, colsThen = outR * r1 * rp
                let u = DenseLinearAlgebra.multiply(a, vt, m: rp, n: r, k: r, transA: true, transB: true)  // Aᵀ·V [r_then, r]
                var first = 0
                while first < n {
                    let count = min(blockRows, n - first)
                    w.withUnsafeBufferPointer { wp in
                        u.withUnsafeBufferPointer { up in
                            t1.withUnsafeMutableBufferPointer { tp in
                                for z in 0..<(outR * r1) {
                                    DenseLinearAlgebra.gemm(transA: true, transB: true, m: r, n: count * inL, k: rp, a: up.baseAddress!, lda: r,
                                                            b: wp.baseAddress! + first * inL * colsThen + z * rp, ldb: colsThen,
                                                            c: tp.baseAddress! + z * r * count * inL, ldc: count * inL)
                                }
                            }
                        }
                    }
                    components(first: first, count: count)
                    first += count
                }
            } else {
                let bv = DenseLinearAlgebra.multiply(parts[key].b, vt, m: inR * outR * r1, n: r, k: r, transB: true)  // [i_R, cols]
                calibration.forEachBlock(input, permutation: permutation, workspace: workspace) { x, first, count in
                    bv.withUnsafeBufferPointer { bp in
                        t1.withUnsafeMutableBufferPointer { tp in
                            DenseLinearAlgebra.gemm(transA: true, transB: true, m: cols, n: count * inL, k: inR, a: bp.baseAddress!, lda: cols,
                                                    b: x, ldb: inR, c: tp.baseAddress!, ldc: count * inL)
                        }
                    }
                    components(first: first, count: count)
                }
            }
            let weighted = DenseLinearAlgebra.multiply(stacked, weight[key], m: r * rowsAll, n: q, k: q)
            return DenseLinearAlgebra.multiply(stacked, weighted, m: r, n: r, k: rowsAll * q, transB: true)
        }
        var phi = [Double](repeating: 0, count: r * r)
        for part in phiParts { for i in phi.indices { phi[i] += part[i] } }
        return Bond(energies: svd.s, basis: vt, phi: phi, exact: false)
    }
}

/// The digits of one side of a bond inside the segment (modes `range`, row-major,
/// sizes as sliced): per digit combination its local in index (row-major over
/// the side's in modes) and other index (over its other modes), and per local
/// in index its part of the rows' in index (factor order over all in modes).
struct SideDigits {
    let inLocal: [Int]
    let otherLocal: [Int]
    let inCount: Int
    let otherCount: Int
    let inPiece: [Int]

    init(modes: [TTMode], sizes: [Int], range: Range<Int>) {
        let members = Array(range)
        let count = members.reduce(1) { $0 * sizes[$1] }
        var inWeight = [Int](repeating: 0, count: members.count), otherWeight = inWeight
        var wi = 1, wo = 1
        for j in members.indices.reversed() {
            if modes[members[j]].kind == .in { inWeight[j] = wi; wi *= sizes[members[j]] } else { otherWeight[j] = wo; wo *= sizes[members[j]] }
        }
        let globalWeight = members.map { k in
            modes[k].kind == .in ? modes.filter { $0.kind == .in && $0.factor > modes[k].factor }.reduce(1) { $0 * $1.size } : 0
        }
        inCount = wi
        otherCount = wo
        var inLocal = [Int](repeating: 0, count: count), otherLocal = inLocal, piece = [Int](repeating: 0, count: wi)
        for p in 0..<count {
            var rest = p, global = 0
            for j in members.indices.reversed() {
                let digit = rest % sizes[members[j]]
                rest /= sizes[members[j]]
                inLocal[p] += digit * inWeight[j]
                otherLocal[p] += digit * otherWeight[j]
                global += digit * globalWeight[j]
            }
            piece[inLocal[p]] = global
        }
        self.inLocal = inLocal
        self.otherLocal = otherLocal
        inPiece = piece
    }
}
