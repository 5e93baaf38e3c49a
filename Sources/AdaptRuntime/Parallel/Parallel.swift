import CTBB

/// TBB's parallel-for behind a Swift closure. Every parallel loop in the runtime
/// and in generated code goes through here, so one `threads` setting governs all.
public enum Parallel {
    /// Hardware threads TBB would use by default.
    public static var defaultThreads: Int { Int(adaptc_default_concurrency()) }

    /// Calls `body` on disjoint chunks covering `0..<count`, each at least `grain`
    /// long, on at most `threads` threads (0 = TBB's default; 1 = inline, in order).
    /// Chunks run concurrently: `body` must only write memory its range owns.
    public static func forEach(_ count: Int, grain: Int = 1, threads: Int, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        if threads == 1 || count <= max(grain, 1) {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { escapable in
            var box = Body(run: escapable)
            withUnsafeMutablePointer(to: &box) { pointer in
                adaptc_parallel_for(count, grain, Int32(clamping: threads), pointer) { context, begin, end in
                    context!.assumingMemoryBound(to: Body.self).pointee.run(begin..<end)
                }
            }
        }
    }

    private struct Body {
        let run: (Range<Int>) -> Void
    }
}
