/// How close a model's sentence embeddings are to the float model's, on the
/// same sentences (all unit vectors, so a dot product is a cosine).
public struct Agreement {
    public var meanCosine: Double
    public var worstCosine: Double
    /// The fraction of sentences whose nearest other sentence (largest cosine)
    /// is the one the float model finds.
    public var neighbours: Double

    public init(_ embeddings: [[Float]], reference: [[Float]]) {
        precondition(embeddings.count == reference.count && embeddings.count >= 2)
        let cosines = zip(embeddings, reference).map { Self.dot($0, $1) }
        meanCosine = cosines.reduce(0, +) / Double(cosines.count)
        worstCosine = cosines.min()!
        let same = zip(Self.nearest(embeddings), Self.nearest(reference)).filter { $0 == $1 }.count
        neighbours = Double(same) / Double(embeddings.count)
    }

    public static func dot(_ a: [Float], _ b: [Float]) -> Double {
        zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    /// For each sentence, the index of its nearest other sentence (ties: the first).
    public static func nearest(_ embeddings: [[Float]]) -> [Int] {
        embeddings.indices.map { i in
            var best = -1, bestCosine = -Double.infinity
            for j in embeddings.indices where j != i {
                let c = dot(embeddings[i], embeddings[j])
                if c > bestCosine || best < 0 { best = j; bestCosine = c }
            }
            return best
        }
    }
}
