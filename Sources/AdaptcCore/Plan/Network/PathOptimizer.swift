/// Picks the order in which a network's tensors are contracted pairwise
/// (opt_einsum's interface: one signature, interchangeable strategies).
public protocol PathOptimizer: Sendable {
    var name: String { get }
    func path(for network: TensorNetwork, model: CostModel) -> ContractionPath
}

/// The strategies by name, and the default choice: exact search while the
/// network is small enough (2^N subsets), greedy beyond (DESIGN §2: ~16 tensors).
public enum PathOptimizers {
    public static let all: [any PathOptimizer] = [OptimalPath(), GreedyPath()]

    public static func automatic(for network: TensorNetwork) -> any PathOptimizer {
        network.tensors.count <= OptimalPath.maximumTensors ? OptimalPath() : GreedyPath()
    }
}

/// Replays a path, giving each step's operands and result modes and the total
/// cost; the one place that knows what "contract i with j" leaves behind.
public struct PathReplay {
    public struct Step {
        public var left: Int, right: Int, result: Int
        public var leftModes: [String], rightModes: [String], resultModes: [String]
        public var cost: PathCost
    }

    public private(set) var steps: [Step] = []
    public private(set) var cost = PathCost()

    public init(_ network: TensorNetwork, _ path: [(Int, Int)], model: CostModel) {
        var members: [[Int]] = network.tensors.indices.map { [$0] }
        var modes: [[String]] = network.tensors.map(\.modes)
        var alive = Set(network.tensors.indices)
        for (i, j) in path {
            precondition(alive.contains(i) && alive.contains(j) && i != j, "path step (\(i), \(j)) uses a consumed tensor")
            let joined = members[i] + members[j]
            let isLast = alive.count == 2
            let kept = isLast ? network.outputModes : network.keptModes(of: joined)
            var stepCost = model.contraction(modes[i], modes[j], into: kept, in: network)
            if isLast { stepCost = stepCost + model.outputLayoutPenalty(modes[i], modes[j], in: network) }
            steps.append(Step(left: i, right: j, result: members.count, leftModes: modes[i], rightModes: modes[j],
                              resultModes: kept, cost: stepCost))
            cost = cost + stepCost
            alive.subtract([i, j])
            alive.insert(members.count)
            members.append(joined)
            modes.append(kept)
        }
    }
}

/// Exact dynamic programming over subsets: the cheapest way to reduce every
/// subset S to one tensor is the cheapest split S = L ∪ R plus contracting the
/// two results. Splits are enumerated in a fixed order and a tie keeps the first
/// found, so the answer never depends on hashing.
public struct OptimalPath: PathOptimizer {
    public static let maximumTensors = 16
    public var name: String { "optimal" }
    public init() {}

    public func path(for network: TensorNetwork, model: CostModel) -> ContractionPath {
        let count = network.tensors.count
        precondition(count >= 1 && count <= Self.maximumTensors, "optimal search needs 1...\(Self.maximumTensors) tensors")
        if count == 1 { return ContractionPath(steps: [], cost: PathCost()) }
        let full = (1 << count) - 1
        // Per subset S: best score, its cost, the left part of its best split, its modes.
        var score = [Double](repeating: .infinity, count: full + 1)
        var cost = [PathCost](repeating: PathCost(), count: full + 1)
        var split = [Int](repeating: 0, count: full + 1)
        var modes = [[String]](repeating: [], count: full + 1)
        for i in 0..<count {
            score[1 << i] = 0
            modes[1 << i] = network.tensors[i].modes
        }
        for subset in 1...full where subset & (subset - 1) != 0 {
            let members = (0..<count).filter { subset & (1 << $0) != 0 }
            let kept = subset == full ? network.outputModes : network.keptModes(of: members)
            modes[subset] = kept
            // Enumerate splits with the lowest member on the left, each once.
            let lowest = subset & -subset
            var left = (subset - 1) & subset
            while left > 0 {
                if left & lowest != 0 {
                    let right = subset ^ left
                    var step = model.contraction(modes[left], modes[right], into: kept, in: network)
                    if subset == full { step = step + model.outputLayoutPenalty(modes[left], modes[right], in: network) }
                    let total = cost[left] + cost[right] + step
                    let s = score[left] + score[right] + model.score(step)
                    if s < score[subset] {
                        score[subset] = s
                        cost[subset] = total
                        split[subset] = left
                    }
                }
                left = (left - 1) & subset
            }
        }
        // Unfold the split tree into SSA steps, left subtree first.
        var steps: [(Int, Int)] = []
        var next = count
        func emit(_ subset: Int) -> Int {
            if subset & (subset - 1) == 0 { return subset.trailingZeroBitCount }
            let a = emit(split[subset]), b = emit(subset ^ split[subset])
            steps.append((min(a, b), max(a, b)))
            next += 1
            return next - 1
        }
        _ = emit(full)
        return ContractionPath(steps: steps, cost: cost[full])
    }
}

/// Greedy: repeatedly contract the pair whose contraction is cheapest, ties to
/// the lowest indices. Fast for large networks, not always optimal.
public struct GreedyPath: PathOptimizer {
    public var name: String { "greedy" }
    public init() {}

    public func path(for network: TensorNetwork, model: CostModel) -> ContractionPath {
        var members: [[Int]] = network.tensors.indices.map { [$0] }
        var modes: [[String]] = network.tensors.map(\.modes)
        var alive = Array(network.tensors.indices)
        var steps: [(Int, Int)] = []
        var total = PathCost()
        while alive.count > 1 {
            var best: (score: Double, i: Int, j: Int, cost: PathCost, kept: [String])?
            for (x, i) in alive.enumerated() {
                for j in alive[(x + 1)...] {
                    let joined = members[i] + members[j]
                    let kept = alive.count == 2 ? network.outputModes : network.keptModes(of: joined)
                    var c = model.contraction(modes[i], modes[j], into: kept, in: network)
                    if alive.count == 2 { c = c + model.outputLayoutPenalty(modes[i], modes[j], in: network) }
                    let s = model.score(c)
                    if best == nil || s < best!.score { best = (s, i, j, c, kept) }
                }
            }
            let b = best!
            steps.append((b.i, b.j))
            total = total + b.cost
            alive.removeAll { $0 == b.i || $0 == b.j }
            alive.append(members.count)
            members.append(members[b.i] + members[b.j])
            modes.append(b.kept)
        }
        return ContractionPath(steps: steps, cost: total)
    }
}
