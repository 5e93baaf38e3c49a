/// The memory of one adapter instance: parameters in one contiguous buffer (so
/// an optimizer sees a single vector), gradients with the same layout, and a
/// grow-only workspace kept across calls (first touch of fresh pages is very
/// slow on the machines we measure on, DESIGN §8).
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
/// - Results do not depend on `threads` beyond rounding: parallel steps split
///   only output rows, output columns or independent contractions, never a
///   sum, so each output element is one single-threaded BLAS call over the same
///   terms. With even splits (1, 2 and 4 threads on the tested shapes) they are
///   bitwise identical; an uneven split (3 threads) can make OpenBLAS use
///   another micro-kernel for the tail block, a difference in the last bits.
///   They can also differ across machines or OpenBLAS kernels
///   (`OPENBLAS_CORETYPE`), and gradients depend on the order of the
///   `backward` calls that accumulate them, as any floating-point sum does.
public final class AdapterStorage {
    public let parameters: UnsafeMutableBufferPointer<Float>
    public let gradients: UnsafeMutableBufferPointer<Float>
    public private(set) var workspace: UnsafeMutableBufferPointer<Float>
    /// TBB threads for every parallel step of this adapter (0 = TBB's default).
    public var threads: Int

    public init(parameterCount: Int, threads: Int = 0) {
        parameters = .allocate(capacity: parameterCount)
        parameters.initialize(repeating: 0)
        gradients = .allocate(capacity: parameterCount)
        gradients.initialize(repeating: 0)
        workspace = .allocate(capacity: 0)
        self.threads = threads
    }

    deinit {
        parameters.deallocate()
        gradients.deallocate()
        workspace.deallocate()
    }

    /// Workspace of at least `count` floats; contents are scratch.
    public func workspace(atLeast count: Int) -> UnsafeMutablePointer<Float> {
        if workspace.count < count {
            workspace.deallocate()
            workspace = .allocate(capacity: count)
            workspace.initialize(repeating: 0)
        }
        return workspace.baseAddress!
    }

    public func zeroGradients() { gradients.update(repeating: 0) }
}

/// A misuse of an adapter's API that the caller can fix: wrong shapes, unknown
/// pairs, missing tensors. Thrown, never trapped on (DESIGN §6).
public struct AdapterError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
