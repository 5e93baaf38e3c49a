import AdaptRuntime

/// Hands out consecutive row-major regions of one buffer to the values a
/// planner lowers — the workspace of one call, or prepared state — so every
/// program's intermediates are laid out the same way; `end` is how far they reach.
final class RegionAllocator {
    let storage: Storage
    let start: Extent
    private(set) var end: Extent

    init(_ storage: Storage, from start: Extent = Extent(0)) {
        self.storage = storage
        self.start = start
        end = start
    }

    /// A new region for a value with these modes and extents (row-major).
    func place(_ name: String, _ modes: [String], _ extents: [Extent]) -> TensorView {
        let view = TensorView(name, in: storage, offset: end, modes: modes, extents: extents)
        end = end + view.count
        return view
    }

    /// Starts over at `start`: the next program may reuse the regions.
    func reset() { end = start }
}
