import CBLAS

/// A row-major dense tensor as the Tucker and CP decompositions read it: the
/// stacked base weights in float32, as loaded, or a float64 intermediate.
///
/// Precision: the stacked tensor is the one large object, so it stays in its
/// float32 storage and is never copied whole; every product over it reads it in
/// tiles converted to float64 (`Tiles`), so all sums are accumulated in
/// float64 and everything derived from it (Gram matrices, cores, factors,
/// normal equations, fits) is float64. The stopping rules compare fits to
/// 1e-6, and a fit computed as ‖X‖² − ‖X̂‖² (Tucker) or ‖X‖² − 2⟨X, X̂⟩ + ‖X̂‖²
/// (CP) from float32 products would carry noise of about that size.
struct DenseTensor {
    enum Values {
        case float(UnsafePointer<Float>)
        case double(UnsafePointer<Double>)
    }

    let values: Values
    let shape: [Int]
    var count: Int { shape.reduce(1, *) }

    init(_ values: Values, shape: [Int]) {
        self.values = values
        self.shape = shape
    }

    /// Calls `body` with a float64 view of a float64 array as a tensor.
    static func with<T>(_ array: [Double], shape: [Int], _ body: (DenseTensor) throws -> T) rethrows -> T {
        try array.withUnsafeBufferPointer { try body(DenseTensor(.double($0.baseAddress!), shape: shape)) }
    }

    /// Mode k's unfolding seen as [before, size, after]: X[p, i, s].
    struct ModeView {
        let before: Int, size: Int, after: Int
        init(shape: [Int], mode: Int) {
            before = shape[..<mode].reduce(1, *)
            size = shape[mode]
            after = shape[(mode + 1)...].reduce(1, *)
        }
    }

    /// A block of the tensor as a matrix: `rows` rows of `length` consecutive
    /// entries, `stride` apart, from `offset`. For a mode with entries after it
    /// (after > 1) a tile is X[p, :, s₀..<s₁] (the mode along the rows); for the
    /// last mode it is X[p₀..<p₁, :] (the mode along the columns).
    struct Tile {
        let offset: Int, rows: Int, stride: Int, length: Int
        /// p (after > 1) or p₀ (last mode), and s₀ (0 for the last mode).
        let p: Int, s: Int
    }

    /// About this many entries per tile: 1 MB of float64 scratch per task,
    /// enough for each GEMM to run near full speed.
    static let tileEntries = 1 << 17

    /// The tiles of mode k's unfolding, fixed by the shape alone (never by the
    /// thread count), so results are the same for any `threads`.
    static func tiles(_ view: ModeView) -> [Tile] {
        var tiles: [Tile] = []
        if view.after == 1 {
            let rows = max(1, tileEntries / max(view.size, 1))
            for first in stride(from: 0, to: view.before, by: rows) {
                tiles.append(Tile(offset: first * view.size, rows: min(rows, view.before - first), stride: view.size,
                                  length: view.size, p: first, s: 0))
            }
        } else {
            let columns = max(16, tileEntries / max(view.size, 1) / 16 * 16)
            for p in 0..<view.before {
                for first in stride(from: 0, to: view.after, by: columns) {
                    tiles.append(Tile(offset: (p * view.size) * view.after + first, rows: view.size, stride: view.after,
                                      length: min(columns, view.after - first), p: p, s: first))
                }
            }
        }
        return tiles
    }

    /// The tile as a float64 matrix and its leading dimension: float64 storage
    /// is read in place, float32 is converted into `scratch` (≥ rows·length).
    func read(_ tile: Tile, scratch: UnsafeMutablePointer<Double>) -> (UnsafePointer<Double>, Int) {
        switch values {
        case .double(let x):
            return (x + tile.offset, tile.stride)
        case .float(let x):
            for row in 0..<tile.rows {
                let source = x + tile.offset + row * tile.stride, target = scratch + row * tile.length
                for j in 0..<tile.length { target[j] = Double(source[j]) }
            }
            return (UnsafePointer(scratch), tile.length)
        }
    }

    /// Runs `body(tile, matrix, ld)` on every tile, tiles in parallel, each
    /// task with its own scratch. `body` must write only what its tile owns.
    func forEachTile(_ tiles: [Tile], threads: Int,
                     _ body: (Tile, UnsafePointer<Double>, Int) -> Void) {
        let scratchSize = tiles.map { $0.rows * $0.length }.max() ?? 0
        Parallel.forEach(tiles.count, threads: threads) { range in
            let scratch = UnsafeMutablePointer<Double>.allocate(capacity: max(scratchSize, 1))
            defer { scratch.deallocate() }
            for t in range {
                let (matrix, ld) = read(tiles[t], scratch: scratch)
                body(tiles[t], matrix, ld)
            }
        }
    }

    /// ‖X‖²_F in float64, summed in fixed blocks and then in block order.
    func squaredNorm(threads: Int) -> Double {
        let n = count, block = Self.tileEntries
        let blocks = (n + block - 1) / block
        var partial = [Double](repeating: 0, count: blocks)
        partial.withUnsafeMutableBufferPointer { partial in
            Parallel.forEach(blocks, threads: threads) { range in
                for b in range {
                    var sum = 0.0
                    for i in (b * block)..<min(n, (b + 1) * block) {
                        switch values {
                        case .float(let x): sum += Double(x[i]) * Double(x[i])
                        case .double(let x): sum += x[i] * x[i]
                        }
                    }
                    partial[b] = sum
                }
            }
        }
        return partial.reduce(0, +)
    }

    /// The Gram matrix X₍ₖ₎·X₍ₖ₎ᵀ of mode k's unfolding, [n_k, n_k] row-major
    /// (full, symmetric): Σ_p X[p]·X[p]ᵀ over the tiles. Tiles are summed in
    /// fixed groups (one partial Gram each, run in parallel), and the partials
    /// in group order: the same sums in the same order for any `threads`.
    func gram(mode: Int, threads: Int) -> [Double] {
        let view = ModeView(shape: shape, mode: mode)
        let n = view.size
        let tiles = Self.tiles(view)
        // At most 12 groups, and their partials within 32 MB.
        let most = max(1, min(tiles.count, 12, (1 << 22) / max(n * n, 1)))
        let perGroup = max(1, (tiles.count + most - 1) / most)
        let groups = max(1, (tiles.count + perGroup - 1) / perGroup)
        var partials = [Double](repeating: 0, count: groups * n * n)
        let scratchSize = tiles.map { $0.rows * $0.length }.max() ?? 0
        partials.withUnsafeMutableBufferPointer { partials in
            Parallel.forEach(groups, threads: threads) { range in
                let scratch = UnsafeMutablePointer<Double>.allocate(capacity: max(scratchSize, 1))
                defer { scratch.deallocate() }
                for g in range {
                    let target = partials.baseAddress! + g * n * n
                    for t in (g * perGroup)..<min(tiles.count, (g + 1) * perGroup) {
                        let tile = tiles[t]
                        let (matrix, ld) = read(tile, scratch: scratch)
                        if view.after == 1 {
                            // G += tileᵀ·tile, tile [rows, n].
                            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(n), Int32(tile.rows), 1, matrix,
                                        Int32(ld), 1, target, Int32(n))
                        } else {
                            // G += tile·tileᵀ, tile [n, length].
                            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, Int32(n), Int32(tile.length), 1, matrix,
                                        Int32(ld), 1, target, Int32(n))
                        }
                    }
                }
            }
        }
        BLAS.configure()
        var gram = [Double](repeating: 0, count: n * n)
        for g in 0..<groups {
            for i in 0..<n {
                for j in i..<n { gram[i * n + j] += partials[(g * n + i) * n + j] }
            }
        }
        for i in 0..<n { for j in 0..<i { gram[i * n + j] = gram[j * n + i] } }
        return gram
    }

    /// The mode-k product with a matrix `u` [n, r] row-major: `transposed`
    /// gives X ×ₖ uᵀ (mode k of size n becomes r: out[p] = uᵀ·X[p]), otherwise
    /// X ×ₖ u (mode k of size r becomes n: out[p] = u·X[p]). Float64 result,
    /// row-major, with the new size in mode k's place.
    func modeProduct(mode: Int, _ u: [Double], rows n: Int, columns r: Int, transposed: Bool,
                     threads: Int) -> (values: [Double], shape: [Int]) {
        let view = ModeView(shape: shape, mode: mode)
        precondition(view.size == (transposed ? n : r) && u.count == n * r, "mode product: sizes do not match")
        let newSize = transposed ? r : n
        var outShape = shape
        outShape[mode] = newSize
        var result = [Double](repeating: 0, count: view.before * newSize * view.after)
        BLAS.configure()
        u.withUnsafeBufferPointer { u in
            result.withUnsafeMutableBufferPointer { result in
                let out = result.baseAddress!, u = u.baseAddress!
                forEachTile(Self.tiles(view), threads: threads) { tile, matrix, ld in
                    if view.after == 1 {
                        // out rows [rows, newSize] = tile [rows, size] · (u or uᵀ).
                        cblas_dgemm(CblasRowMajor, CblasNoTrans, transposed ? CblasNoTrans : CblasTrans, Int32(tile.rows),
                                    Int32(newSize), Int32(view.size), 1, matrix, Int32(ld), u, Int32(r), 0,
                                    out + tile.p * newSize, Int32(newSize))
                    } else {
                        // out[p][:, s₀…] [newSize, length] = (uᵀ or u) · tile [size, length].
                        cblas_dgemm(CblasRowMajor, transposed ? CblasTrans : CblasNoTrans, CblasNoTrans, Int32(newSize),
                                    Int32(tile.length), Int32(view.size), 1, u, Int32(r), matrix, Int32(ld), 0,
                                    out + tile.p * newSize * view.after + tile.s, Int32(view.after))
                    }
                }
            }
        }
        return (result, outShape)
    }
}

/// Eigenvectors of symmetric matrices, for the factors of both decompositions.
enum SymmetricEigen {
    /// The `count` leading eigenvectors of the symmetric [n, n] matrix `a`
    /// (row-major, both triangles), as the columns of a row-major [n, count]
    /// matrix, largest eigenvalue first, and all n eigenvalues descending.
    /// Each column's sign is fixed (its largest-magnitude entry, the first of
    /// equals, positive), so the result does not depend on LAPACK's choice.
    static func leading(_ a: [Double], n: Int, count: Int) throws -> (vectors: [Double], values: [Double]) {
        precondition(a.count == n * n && count <= n)
        // All n pairs, descending and sign-fixed; keep the first `count` columns.
        let eigen = try Float64LinearAlgebra.symmetricEigen(a, n: n)
        var vectors = [Double](repeating: 0, count: n * count)
        for i in 0..<n { for c in 0..<count { vectors[i * count + c] = eigen.vectors[i * n + c] } }
        return (vectors, eigen.values)
    }
}
