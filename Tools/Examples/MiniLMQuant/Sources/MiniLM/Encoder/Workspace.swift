/// The encoder's activations for one batch of packed token rows, kept between
/// batches and grown only when a batch has more tokens than any before it.
final class Workspace {
    private(set) var rowCapacity = 0
    private var storage: UnsafeMutablePointer<Float>?
    private(set) var hiddenStates: UnsafeMutablePointer<Float>!   // [rows, hidden]
    private(set) var queries: UnsafeMutablePointer<Float>!        // [rows, hidden]
    private(set) var keys: UnsafeMutablePointer<Float>!
    private(set) var values: UnsafeMutablePointer<Float>!
    private(set) var context: UnsafeMutablePointer<Float>!        // attention's output, heads side by side
    private(set) var sublayerOutput: UnsafeMutablePointer<Float>! // a sublayer's output before residual + LayerNorm
    private(set) var intermediate: UnsafeMutablePointer<Float>!   // [rows, intermediate]

    func reserve(rows: Int, hidden: Int, intermediate width: Int) {
        guard rows > rowCapacity else { return }
        storage?.deallocate()
        let capacity = max(rows, rowCapacity * 3 / 2)
        let perRow = 6 * hidden + width
        let base = UnsafeMutablePointer<Float>.allocate(capacity: capacity * perRow)
        storage = base
        rowCapacity = capacity
        let block = capacity * hidden
        hiddenStates = base
        queries = base + block
        keys = base + 2 * block
        values = base + 3 * block
        context = base + 4 * block
        sublayerOutput = base + 5 * block
        intermediate = base + 6 * block
    }

    deinit { storage?.deallocate() }
}
