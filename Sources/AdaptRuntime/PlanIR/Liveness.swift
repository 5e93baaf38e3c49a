/// How many floats of one buffer a program holds live at once: each
/// intermediate lives from the stage that writes it to the last stage that
/// reads it, and the peak is the largest union of live spans over the stages.
/// Not the buffer's high-water mark: a planner that places two intermediates
/// whose lives do not meet side by side uses more buffer than it needs, and
/// this is what tells the two apart.
extension Program {
    /// Peak floats of `storage` live at once for `n` token rows.
    /// - Parameters:
    ///   - storage: The buffer to measure (`.workspace` for intermediates).
    ///   - n: Token rows.
    public func peakLiveFloats(in storage: Storage, tokens n: Int) -> Int {
        struct Span { var start: Int, end: Int, born: Int, lastUse: Int }
        var spans: [Span] = []
        for (s, stage) in stages.enumerated() {
            for c in stage {
                for read in [c.a] + (c.b.map { [$0] } ?? []) where read.storage == storage {
                    let (start, end) = (read.offset.value(tokens: n), read.end.value(tokens: n))
                    // It reads the newest writes that meet it; an older one a newer write covers is gone.
                    var newer: [Span] = []
                    for i in spans.indices.reversed() where spans[i].start < end && start < spans[i].end {
                        if newer.contains(where: { $0.start <= spans[i].start && spans[i].end <= $0.end }) { continue }
                        spans[i].lastUse = s
                        newer.append(spans[i])
                    }
                }
            }
            for c in stage where c.output.storage == storage {
                let (start, end) = (c.output.offset.value(tokens: n), c.output.end.value(tokens: n))
                if c.accumulate, let i = spans.lastIndex(where: { $0.start == start && $0.end == end }) {
                    spans[i].lastUse = s  // += onto a live intermediate extends it
                } else {
                    spans.append(Span(start: start, end: end, born: s, lastUse: s))
                }
            }
        }
        var peak = 0
        for s in stages.indices {
            let live = spans.filter { $0.born <= s && s <= $0.lastUse }.sorted { $0.start < $1.start }
            var total = 0, reach = Int.min
            for span in live {
                total += max(0, span.end - max(span.start, reach))
                reach = max(reach, span.end)
            }
            peak = max(peak, total)
        }
        return peak
    }
}
