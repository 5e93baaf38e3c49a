import XCTest
@testable import AdaptcCore
import AdaptRuntime
import AdaptTestSupport

/// Strategies against each other and against brute force (STYLE.md: opt_einsum).
final class PathOptimizerTests: XCTestCase {
    let model = CostModel(tokens: 64)

    /// Every SSA path of a network, by recursion (fine for ≤ 5 tensors).
    func allPaths(_ count: Int) -> [[(Int, Int)]] {
        func extend(_ alive: [Int], _ next: Int) -> [[(Int, Int)]] {
            if alive.count == 1 { return [[]] }
            var result: [[(Int, Int)]] = []
            for (x, i) in alive.enumerated() {
                for j in alive[(x + 1)...] {
                    let rest = alive.filter { $0 != i && $0 != j } + [next]
                    for tail in extend(rest, next + 1) { result.append([(i, j)] + tail) }
                }
            }
            return result
        }
        return extend(Array(0..<count), count)
    }

    func randomNetwork(_ random: inout TestRandom, tensors: Int) -> TensorNetwork {
        let modes = ["a", "b", "c", "d", "e", "f"]
        var extents: [String: Extent] = [:]
        for m in modes { extents[m] = .fixed(Int(random.next() % 30) + 2) }
        extents["n"] = .tokens
        var list: [TensorNetwork.Tensor] = []
        for t in 0..<tensors {
            var ms: [String] = []
            for m in modes + ["n"] where random.next() % 3 == 0 { ms.append(m) }
            if ms.isEmpty { ms = [modes[t % modes.count]] }
            list.append(.init("T\(t)", ms))
        }
        // Output: modes that occur once (the rest are summed), as einsum does.
        let all = list.flatMap(\.modes)
        let output = Array(Set(all.filter { m in all.filter { $0 == m }.count == 1 })).sorted()
        return TensorNetwork(list, output: output, extents: extents)
    }

    func testOptimalMatchesBruteForceAndGreedyNeverBeatsIt() {
        var random = TestRandom(seed: 3)
        for trial in 0..<60 {
            let network = randomNetwork(&random, tensors: 2 + trial % 4)
            let optimal = OptimalPath().path(for: network, model: model)
            let best = allPaths(network.tensors.count).map { model.score(PathReplay(network, $0, model: model).cost) }.min()!
            let replayed = PathReplay(network, optimal.steps, model: model).cost
            XCTAssertEqual(replayed, optimal.cost, "reported cost is the replayed cost: \(network)")
            XCTAssertEqual(model.score(optimal.cost), best, accuracy: best * 1e-12, "not optimal: \(network)")
            let greedy = GreedyPath().path(for: network, model: model)
            XCTAssertGreaterThanOrEqual(model.score(greedy.cost), best * (1 - 1e-12))
            XCTAssertEqual(OptimalPath().path(for: network, model: model), optimal, "deterministic")
        }
    }

    func testMatrixChainPicksTheTextbookOrder() {
        // A[10,100]·B[100,5]·C[5,50]: (AB)C costs 7,500 multiply-adds, A(BC) 75,000.
        let network = TensorNetwork([.init("A", ["i", "j"]), .init("B", ["j", "k"]), .init("C", ["k", "l"])],
                                    output: ["i", "l"], extents: ["i": .fixed(10), "j": .fixed(100), "k": .fixed(5), "l": .fixed(50)])
        let path = OptimalPath().path(for: network, model: model)
        XCTAssertEqual(path.steps.map { [$0.0, $0.1] }, [[0, 1], [2, 3]])
        XCTAssertEqual(path.cost.flops, .fixed(2 * 7_500))
    }

    func testLoRADiscoversTheSkinnyProducts() {
        // x[n,i]·A[r,i]·B[o,r]: x·Aᵀ first (2nr(i+o)), never B·A (2ori + 2nio).
        let network = TensorNetwork([.init("x", ["n", "i"]), .init("A", ["r", "i"]), .init("B", ["o", "r"])],
                                    output: ["n", "o"], extents: ["n": .tokens, "i": .fixed(768), "o": .fixed(768), "r": .fixed(8)])
        for optimizer in PathOptimizers.all {
            let path = optimizer.path(for: network, model: model)
            XCTAssertEqual(path.steps.map { [$0.0, $0.1] }, [[0, 1], [2, 3]], optimizer.name)
            XCTAssertEqual(path.cost.flops, Extent.tokens * (2 * 8 * (768 + 768)), optimizer.name)
        }
    }

    func testAutomaticChoiceFollowsSize() {
        let small = TensorNetwork((0..<3).map { .init("T\($0)", ["m\($0)", "m\($0 + 1)"]) }, output: ["m0", "m3"], extents: [:])
        XCTAssertEqual(PathOptimizers.automatic(for: small).name, "optimal")
        let large = TensorNetwork((0..<17).map { .init("T\($0)", ["m\($0)", "m\($0 + 1)"]) }, output: ["m0", "m17"], extents: [:])
        XCTAssertEqual(PathOptimizers.automatic(for: large).name, "greedy")
        XCTAssertEqual(PathOptimizers.automatic(for: large).path(for: large, model: model).steps.count, 16)
    }
}
