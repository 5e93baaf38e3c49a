import Foundation

/// `report.svg`: for each pruned group, the layer importance bars (layers by
/// descending share, kept in blue, dropped in grey) with the cumulative curve
/// and the threshold line, then the per-pair rank spectra (each component's
/// share of the pair's output energy, kept in blue). Plain SVG 1.1, no scripts.
public enum PruneChart {
    static let keptColour = "#3b6fb6", droppedColour = "#b8b8b8", curve = "#e08a1e", threshold = "#c0392b"

    public static func svg(_ result: PruneResult) -> String {
        var body: [String] = []
        var y = 20.0
        let width = 900.0
        body.append(text(20, y + 6, "adaptc prune — LoRA-drop, threshold \(PrunedSpecText.percent(result.settings.threshold)), "
                         + "levels \(result.settings.levels.map(\.rawValue).joined(separator: ", ")), scope \(result.settings.scope.rawValue)",
                         size: 16, weight: "bold"))
        y += 24
        body.append(legend(20, y))
        y += 26
        for group in result.groups where group.pruned {
            y = layerPanel(group, threshold: result.settings.threshold, top: y, width: width, into: &body) + 24
            y = spectraPanel(group, top: y, width: width, into: &body) + 24
            y = bondPanel(group, top: y, width: width, into: &body) + 24
            y = modePanel(group, top: y, width: width, into: &body) + 24
        }
        let header = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(y))\" "
            + "viewBox=\"0 0 \(Int(width)) \(Int(y))\" font-family=\"Helvetica, Arial, sans-serif\">"
        return ([header, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"] + body + ["</svg>"]).joined(separator: "\n") + "\n"
    }

    static func legend(_ x: Double, _ y: Double) -> String {
        [rect(x, y - 10, 12, 12, keptColour), text(x + 16, y, "kept", size: 12),
         rect(x + 60, y - 10, 12, 12, droppedColour), text(x + 76, y, "dropped", size: 12),
         "<line x1=\"\(x + 140)\" y1=\"\(y - 4)\" x2=\"\(x + 164)\" y2=\"\(y - 4)\" stroke=\"\(curve)\" stroke-width=\"2\"/>",
         text(x + 168, y, "cumulative share", size: 12),
         "<line x1=\"\(x + 290)\" y1=\"\(y - 4)\" x2=\"\(x + 314)\" y2=\"\(y - 4)\" stroke=\"\(threshold)\" stroke-width=\"1.5\" stroke-dasharray=\"5,3\"/>",
         text(x + 318, y, "threshold", size: 12)].joined(separator: "\n")
    }

    /// Layers by descending share: bars on the left axis, cumulative share on the right.
    static func layerPanel(_ group: GroupPruning, threshold t: Double, top: Double, width: Double, into body: inout [String]) -> Double {
        let layers = group.layerShares.sorted { $0.share != $1.share ? $0.share > $1.share : $0.layer < $1.layer }
        let (left, right, height) = (70.0, width - 70, 200.0)
        let plotTop = top + 30, plotBottom = top + 30 + height
        body.append(text(20, top + 14, "group \(group.name): layer importance (share of the group's calibration output energy, "
                         + "layers by importance)", size: 14, weight: "bold"))
        let maxShare = max(layers.map(\.share).max() ?? 0, 1e-12)
        let step = (right - left) / Double(max(layers.count, 1))
        // Axes and gridlines: left 0…max share, right 0…100 %.
        for tick in 0...4 {
            let f = Double(tick) / 4, yy = plotBottom - f * height
            body.append("<line x1=\"\(left)\" y1=\"\(yy)\" x2=\"\(right)\" y2=\"\(yy)\" stroke=\"#eeeeee\"/>")
            body.append(text(left - 6, yy + 4, PrunedSpecText.percent(f * maxShare), size: 10, anchor: "end"))
            body.append(text(right + 6, yy + 4, "\(tick * 25)%", size: 10))
        }
        body.append("<line x1=\"\(left)\" y1=\"\(plotTop)\" x2=\"\(left)\" y2=\"\(plotBottom)\" stroke=\"black\"/>")
        body.append("<line x1=\"\(right)\" y1=\"\(plotTop)\" x2=\"\(right)\" y2=\"\(plotBottom)\" stroke=\"black\"/>")
        body.append("<line x1=\"\(left)\" y1=\"\(plotBottom)\" x2=\"\(right)\" y2=\"\(plotBottom)\" stroke=\"black\"/>")
        var cumulative = 0.0, points: [String] = []
        for (i, layer) in layers.enumerated() {
            let x = left + Double(i) * step
            let h = layer.share > 0 ? max(layer.share / maxShare * height, 1) : 0
            body.append(rect(x + step * 0.15, plotBottom - h, step * 0.7, h,
                             group.keptLayers.contains(layer.layer) ? keptColour : droppedColour, title: "layer \(layer.layer): \(PrunedSpecText.percent(layer.share))"))
            body.append(text(x + step / 2, plotBottom + 14, "\(layer.layer)", size: 10, anchor: "middle"))
            if layers.count <= 32 {
                body.append(text(x + step / 2, plotBottom - h - 3, PrunedSpecText.percent(layer.share), size: 9, anchor: "middle"))
            }
            cumulative += layer.share
            points.append("\(x + step / 2),\(plotBottom - cumulative * height)")
        }
        body.append("<polyline points=\"\(points.joined(separator: " "))\" fill=\"none\" stroke=\"\(curve)\" stroke-width=\"2\"/>")
        let ty = plotBottom - t * height
        body.append("<line x1=\"\(left)\" y1=\"\(ty)\" x2=\"\(right)\" y2=\"\(ty)\" stroke=\"\(threshold)\" stroke-width=\"1.5\" stroke-dasharray=\"5,3\"/>")
        body.append(text(right - 4, ty - 4, "threshold \(PrunedSpecText.percent(t))", size: 11, anchor: "end"))
        body.append(text((left + right) / 2, plotBottom + 32, "layer (sorted by importance)", size: 12, anchor: "middle"))
        body.append(text(18, (plotTop + plotBottom) / 2, "layer share", size: 12, anchor: "middle", rotate: true))
        body.append(text(width - 14, (plotTop + plotBottom) / 2, "cumulative share", size: 12, anchor: "middle", rotate: true))
        return plotBottom + 40
    }

    /// One small chart per pair: each component's share of the pair's energy, by σ.
    static func spectraPanel(_ group: GroupPruning, top: Double, width: Double, into body: inout [String]) -> Double {
        let pairs = group.pairs.filter { !$0.componentEnergies.isEmpty }
        guard !pairs.isEmpty else { return top }
        body.append(text(20, top + 14, "group \(group.name): rank spectra per pair", size: 14, weight: "bold"))
        body.append(text(20, top + 30, "bars: each component's share of the pair's output energy (0–100%), components by singular value",
                         size: 11))
        let columns = 4
        let (cellWidth, cellHeight) = ((width - 40) / Double(columns), 112.0)
        for (i, p) in pairs.enumerated() {
            let x = 20 + Double(i % columns) * cellWidth, y = top + 40 + Double(i / columns) * cellHeight
            let total = p.componentEnergies.reduce(0, +)
            let kept = p.importance > 0 ? 1 - p.lostEnergy / p.importance : 1
            let after = p.rankAfter.map { "rank \(p.rankBefore) → \($0), \(PrunedSpecText.percent(kept)) kept" } ?? "layer dropped → shared"
            body.append(text(x, y + 10, p.pair.key, size: 11, weight: "bold"))
            body.append(text(x, y + 23, after, size: 10))
            let (plotTop, plotHeight, plotWidth) = (y + 30, cellHeight - 58, cellWidth - 30)
            body.append("<line x1=\"\(f(x))\" y1=\"\(f(plotTop))\" x2=\"\(f(x))\" y2=\"\(f(plotTop + plotHeight))\" stroke=\"black\"/>")
            body.append("<line x1=\"\(f(x))\" y1=\"\(f(plotTop + plotHeight))\" x2=\"\(f(x + plotWidth))\" y2=\"\(f(plotTop + plotHeight))\" stroke=\"black\"/>")
            let step = plotWidth / Double(p.componentEnergies.count)
            for (k, e) in p.componentEnergies.enumerated() {
                let h = total > 0 && e > 0 ? max(e / total * plotHeight, 1) : 0
                let colour = p.rankAfter != nil && p.keptComponents.contains(k) ? keptColour : droppedColour
                body.append(rect(x + Double(k) * step + step * 0.1, plotTop + plotHeight - h, step * 0.8, h, colour,
                                 title: "component \(k + 1): σ = \(p.singularValues[k]), \(PrunedSpecText.percent(total > 0 ? e / total : 0))"))
            }
            body.append(text(x + plotWidth / 2, plotTop + plotHeight + 12, "component k (1…\(p.componentEnergies.count))", size: 9, anchor: "middle"))
        }
        return top + 40 + Double((pairs.count + columns - 1) / columns) * cellHeight
    }

    /// A tensor-train group: one small chart per bond, each component's share of
    /// the bond's data-weighted energy (σ_j²), the kept ones in blue.
    static func bondPanel(_ group: GroupPruning, top: Double, width: Double, into body: inout [String]) -> Double {
        guard !group.bonds.isEmpty else { return top }
        body.append(text(20, top + 14, "group \(group.name): data-weighted spectra per bond (TT-rounding)", size: 14, weight: "bold"))
        body.append(text(20, top + 30, "bars: each component's share of the bond's calibration output energy (pooled where the bond "
                         + "splits layer/module/in), components by σ", size: 11))
        let columns = 4
        let (cellWidth, cellHeight) = ((width - 40) / Double(columns), 112.0)
        let total = group.totalEnergy
        for (i, bond) in group.bonds.enumerated() {
            let x = 20 + Double(i % columns) * cellWidth, y = top + 40 + Double(i / columns) * cellHeight
            let energy = bond.energies.reduce(0, +)
            let kept = total > 0 ? 1 - bond.lostEnergy / total : 1
            body.append(text(x, y + 10, "bond \(i + 1): \(bond.left.last ?? "") | \(bond.right.first ?? "")", size: 11, weight: "bold"))
            body.append(text(x, y + 23, "rank \(bond.rankBefore) → \(bond.rankAfter), \(PrunedSpecText.percent(kept)) kept", size: 10))
            let (plotTop, plotHeight, plotWidth) = (y + 30, cellHeight - 58, cellWidth - 30)
            body.append("<line x1=\"\(f(x))\" y1=\"\(f(plotTop))\" x2=\"\(f(x))\" y2=\"\(f(plotTop + plotHeight))\" stroke=\"black\"/>")
            body.append("<line x1=\"\(f(x))\" y1=\"\(f(plotTop + plotHeight))\" x2=\"\(f(x + plotWidth))\" y2=\"\(f(plotTop + plotHeight))\" stroke=\"black\"/>")
            let step = plotWidth / Double(max(bond.energies.count, 1))
            for (k, e) in bond.energies.enumerated() {
                let h = energy > 0 && e > 0 ? max(e / energy * plotHeight, 1) : 0
                body.append(rect(x + Double(k) * step + step * 0.1, plotTop + plotHeight - h, step * 0.8, h,
                                 k < bond.rankAfter ? keptColour : droppedColour,
                                 title: "component \(k + 1): \(PrunedSpecText.percent(energy > 0 ? e / energy : 0))"))
            }
        }
        return top + 40 + Double((group.bonds.count + columns - 1) / columns) * cellHeight
    }

    /// A Tucker group: one small chart per mode, each component's share of the
    /// mode's data-weighted energy, the kept ones in blue; a cp group: one chart,
    /// each component's leave-one-out loss.
    static func modePanel(_ group: GroupPruning, top: Double, width: Double, into body: inout [String]) -> Double {
        let modes = group.modes.filter { !$0.energies.isEmpty }
        guard !modes.isEmpty else { return top }
        let cp = group.structure.pruner.cutsOneSharedRank
        body.append(text(20, top + 14, cp ? "group \(group.name): leave-one-out loss per component (CP)"
                         : "group \(group.name): data-weighted spectra per mode (Tucker rounding)", size: 14, weight: "bold"))
        body.append(text(20, top + 30, cp ? "bars: each component's share of the calibration output energy lost by leaving it out "
                         + "(re-measured after each drop)" : "bars: each component's share of the mode's calibration output energy "
                         + "(exact for out modes; pooled where the mode is coupled: in, layer, module)", size: 11))
        let columns = 4
        let (cellWidth, cellHeight) = ((width - 40) / Double(columns), 112.0)
        let total = group.totalEnergy
        for (i, mode) in modes.enumerated() {
            let x = 20 + Double(i % columns) * cellWidth, y = top + 40 + Double(i / columns) * cellHeight
            let energy = mode.energies.reduce(0, +)
            let kept = total > 0 ? 1 - mode.lostEnergy / total : 1
            let weighting = cp ? "" : mode.exactWeighting ? " (exact)" : " (coupled)"
            body.append(text(x, y + 10, "\(mode.name)\(weighting)", size: 11, weight: "bold"))
            body.append(text(x, y + 23, "rank \(mode.rankBefore ?? 0) → \(mode.rankAfter ?? 0), \(PrunedSpecText.percent(kept)) kept", size: 10))
            let (plotTop, plotHeight, plotWidth) = (y + 30, cellHeight - 58, cellWidth - 30)
            body.append("<line x1=\"\(f(x))\" y1=\"\(f(plotTop))\" x2=\"\(f(x))\" y2=\"\(f(plotTop + plotHeight))\" stroke=\"black\"/>")
            body.append("<line x1=\"\(f(x))\" y1=\"\(f(plotTop + plotHeight))\" x2=\"\(f(x + plotWidth))\" y2=\"\(f(plotTop + plotHeight))\" stroke=\"black\"/>")
            let step = plotWidth / Double(mode.energies.count)
            for (k, e) in mode.energies.enumerated() {
                let h = energy > 0 && e > 0 ? max(e / energy * plotHeight, 1) : 0
                body.append(rect(x + Double(k) * step + step * 0.1, plotTop + plotHeight - h, step * 0.8, h,
                                 mode.kept.contains(k) ? keptColour : droppedColour,
                                 title: "component \(k + 1): \(PrunedSpecText.percent(energy > 0 ? e / energy : 0))"))
            }
        }
        return top + 40 + Double((modes.count + columns - 1) / columns) * cellHeight
    }

    static func rect(_ x: Double, _ y: Double, _ w: Double, _ h: Double, _ fill: String, title: String? = nil) -> String {
        let shape = "<rect x=\"\(f(x))\" y=\"\(f(y))\" width=\"\(f(w))\" height=\"\(f(h))\" fill=\"\(fill)\""
        guard let title else { return shape + "/>" }
        return shape + "><title>\(escape(title))</title></rect>"
    }

    static func text(_ x: Double, _ y: Double, _ content: String, size: Int, weight: String = "normal", anchor: String = "start",
                     rotate: Bool = false) -> String {
        let transform = rotate ? " transform=\"rotate(-90 \(f(x)) \(f(y)))\"" : ""
        return "<text x=\"\(f(x))\" y=\"\(f(y))\" font-size=\"\(size)\" font-weight=\"\(weight)\" text-anchor=\"\(anchor)\"\(transform)>\(escape(content))</text>"
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
