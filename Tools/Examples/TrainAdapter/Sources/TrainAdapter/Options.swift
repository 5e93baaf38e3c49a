import Foundation

/// Command-line options (hand-parsed: the example needs no other package).
struct Options {
    var steps = 200
    var seed: UInt64 = 7
    var rows = 32
    var output = "trained-adapter.safetensors"
    /// The `adaptc` executable for the eval check; found next to this one when not given.
    var adaptc: String?

    static let usage = "usage: TrainAdapter [--steps N] [--seed S] [--rows N] [--output FILE] [--adaptc PATH]"

    struct BadOption: Error, CustomStringConvertible { let description: String }

    static func parse(_ arguments: [String]) throws -> Options {
        var options = Options()
        var rest = arguments[...]
        while let flag = rest.popFirst() {
            guard let value = rest.popFirst() else { throw BadOption(description: "\(flag) needs a value") }
            switch flag {
            case "--steps": options.steps = try positive(value, flag)
            case "--rows": options.rows = try positive(value, flag)
            case "--seed":
                guard let seed = UInt64(value) else { throw BadOption(description: "--seed takes a non-negative integer") }
                options.seed = seed
            case "--output": options.output = value
            case "--adaptc": options.adaptc = value
            default: throw BadOption(description: "unknown option \(flag)")
            }
        }
        return options
    }

    private static func positive(_ value: String, _ flag: String) throws -> Int {
        guard let number = Int(value), number > 0, number <= 1_000_000 else {
            throw BadOption(description: "\(flag) takes an integer in 1...1000000")
        }
        return number
    }
}
