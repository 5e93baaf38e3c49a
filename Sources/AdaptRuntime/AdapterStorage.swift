/// The memory of one adapter instance: parameters in one contiguous buffer (so
/// an optimizer sees a single vector), gradients with the same layout, the
/// prepared state `prepare` computes from the parameters (and its gradients,
/// which `finishBackward` pushes back), and a grow-only workspace kept across
/// calls (first touch of fresh pages is very slow on the machines we measure
/// on, DESIGN §8).
///
/// Prepared state goes stale whenever the parameters may have changed: taking
/// `parameters` (the mutable view an optimizer writes through) or loading
/// marks it so, and forward, backward and materialize of an adapter with
/// prepared state run `prepare()` first when it is stale. A pointer kept from
/// an earlier `parameters` and written later bypasses that: call `prepare()`
/// after such an update, or take `parameters` again.
///
/// **Who uses what.** Apps use the adapter's own `parameters`, `gradients`,
/// `zeroGradients()`, `save(to:)` and the optimizers; they need not touch
/// `storage`. `prepared`, `preparedGradients`, `parameterBase`,
/// `markPrepared()` and `workspace(atLeast:)` are public only because
/// generated code (compiled in the app's module) calls them: writing to them
/// from elsewhere corrupts results without an error. The thread count is fixed
/// at creation (make a new adapter for another one).
///
/// **Lifetime.** Every buffer is owned by this object and freed with it: a
/// pointer taken from `parameters`, `gradients` or the others dangles once the
/// adapter (the last reference to its storage) is gone. Keep the adapter alive
/// while using them, or use the scoped `withParameters`/`withGradients`, or the
/// array copies `parameterValues`/`setParameterValues(_:)`.
///
/// Concurrency and determinism contract (of every generated adapter and of
/// `PlanInterpreter`, which own one storage each; tested by ConcurrencyTests,
/// run under ThreadSanitizer by `Tools/sanitize thread`):
/// - Distinct instances may be used from different threads at the same time:
///   they share nothing mutable (TBB's scheduler is thread-safe, and OpenBLAS
///   is pinned to one thread per call).
/// - One instance must not be called concurrently, not even two `forward`s:
///   every call uses this workspace (which a larger call reallocates) and
///   `backward` accumulates into `gradients`. Doing so is a data race — wrong
///   results or a crash; use one instance per thread, or a lock.
/// - Results are bitwise identical for every `threads` (1, 2, 3, 4, … and 0):
///   parallel steps split only output rows, output columns or independent
///   contractions, never a sum, and a product is cut into `FixedBlocks`
///   chosen from its shape alone (1 thread runs the same blocks in order), so
///   each output element comes from the same single-threaded kernel call on
///   the same sub-shape whatever the thread count. Results can still differ
///   across machines or OpenBLAS kernels
///   (`OPENBLAS_CORETYPE`), and gradients depend on the order of the
///   `backward` calls that accumulate them, as any floating-point sum does.
public final class AdapterStorage {
    private let parameterBuffer: UnsafeMutableBufferPointer<Float>
    /// Gradients of the parameters, same layout; `backward` adds to them, nothing clears them but `zeroGradients()`.
    public let gradients: UnsafeMutableBufferPointer<Float>
    /// What `prepare` computes (empty when the plan hoists nothing).
    public let prepared: UnsafeMutableBufferPointer<Float>
    /// Gradients of the first `preparedGradients.count` floats of `prepared`
    /// (the rest have none), accumulated by backward, consumed by `finishBackward`.
    public let preparedGradients: UnsafeMutableBufferPointer<Float>
    private var workspace: UnsafeMutableBufferPointer<Float>
    /// Rows of a mixed-task call gathered by task (`TaskRouting`), beside the workspace the programs use.
    private var routing: UnsafeMutableBufferPointer<Float>
    /// TBB threads for every parallel step of this adapter (0 = TBB's default), fixed at creation.
    public let threads: Int
    /// False once the parameters may have changed since the last `prepare()`.
    public private(set) var preparedIsCurrent: Bool
    /// Counts the times `parameters` was taken (each may have changed them):
    /// state computed from the parameters together with something the adapter
    /// does not keep (DoRA's row norms, which need the base W) records it, and
    /// is stale once it differs.
    public private(set) var parameterVersion = 0

    /// Zeroed buffers for `parameterCount` parameters, `preparedCount` floats of
    /// prepared state and gradients for the first `preparedGradientCount` of them
    /// (all when nil).
    public init(parameterCount: Int, preparedCount: Int = 0, preparedGradientCount: Int? = nil, threads: Int = 0) {
        parameterBuffer = .allocate(capacity: parameterCount)
        parameterBuffer.initialize(repeating: 0)
        gradients = .allocate(capacity: parameterCount)
        gradients.initialize(repeating: 0)
        prepared = .allocate(capacity: preparedCount)
        prepared.initialize(repeating: 0)
        preparedGradients = .allocate(capacity: min(preparedGradientCount ?? preparedCount, preparedCount))
        preparedGradients.initialize(repeating: 0)
        workspace = .allocate(capacity: 0)
        routing = .allocate(capacity: 0)
        self.threads = threads
        preparedIsCurrent = preparedCount == 0
    }

    deinit {
        parameterBuffer.deallocate()
        gradients.deallocate()
        prepared.deallocate()
        preparedGradients.deallocate()
        workspace.deallocate()
        routing.deallocate()
    }

    /// The parameters, for an optimizer or a loader to write: taking this view
    /// marks prepared state stale (see the type's documentation).
    public var parameters: UnsafeMutableBufferPointer<Float> {
        if prepared.count > 0 { preparedIsCurrent = false }
        parameterVersion &+= 1
        return parameterBuffer
    }

    /// The parameters' base address for kernels that only read them: does not
    /// mark prepared state stale. For generated code and the interpreter.
    public var parameterBase: UnsafeMutablePointer<Float> { parameterBuffer.baseAddress! }

    /// Called by `prepare()` once prepared state matches the parameters. For generated code.
    public func markPrepared() { preparedIsCurrent = true }

    /// Workspace of at least `count` floats; contents are scratch, and the
    /// pointer is valid only until the next call (it may grow). For generated code.
    public func workspace(atLeast count: Int) -> UnsafeMutablePointer<Float> { Self.grow(&workspace, to: count) }

    /// Scratch of at least `count` floats for the rows `TaskRouting` gathers,
    /// kept across calls like the workspace. For generated code.
    public func routingScratch(atLeast count: Int) -> UnsafeMutablePointer<Float> { Self.grow(&routing, to: count) }

    /// `buffer`, reallocated (zeroed, old contents dropped) when smaller than `count`.
    private static func grow(_ buffer: inout UnsafeMutableBufferPointer<Float>, to count: Int) -> UnsafeMutablePointer<Float> {
        if buffer.count < count {
            buffer.deallocate()
            buffer = .allocate(capacity: count)
            buffer.initialize(repeating: 0)
        }
        return buffer.baseAddress!
    }

    /// Sets `gradients` to zero (not `preparedGradients`: the adapter's `zeroGradients()` clears both).
    public func zeroGradients() { gradients.update(repeating: 0) }

    /// Sets `preparedGradients` to zero (what `finishBackward` ends with), in
    /// blocks over the adapter's threads when it is large: megabytes for a
    /// tensor network shared by many pairs.
    public func zeroPreparedGradients() {
        let count = preparedGradients.count, block = 1 << 18
        guard let base = preparedGradients.baseAddress, count > 0 else { return }
        Parallel.forEach((count + block - 1) / block, threads: threads) { blocks in
            for b in blocks {
                let start = b * block
                (base + start).update(repeating: 0, count: min(block, count - start))
            }
        }
    }
}
