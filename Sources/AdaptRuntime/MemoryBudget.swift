#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Large buffers whose allocation can fail with an error instead of a trap.
///
/// Swift's own allocations trap when memory runs out (a signal, no message);
/// for buffers whose size comes from a user's spec or file, a one-line error
/// saying how much was needed and for what is the contract (DESIGN §1).
public enum MemoryBudget {
    /// `count` zeroed floats, or `AllocationError`. Release with `release(_:)`.
    public static func floats(_ count: Int, for purpose: String) throws -> UnsafeMutableBufferPointer<Float> {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        guard count >= 0, !overflow, let address = calloc(max(count, 1), MemoryLayout<Float>.stride) else {
            throw AllocationError(bytes: overflow ? Int.max : bytes, purpose: purpose)
        }
        return UnsafeMutableBufferPointer(start: address.assumingMemoryBound(to: Float.self), count: count)
    }

    public static func release(_ buffer: UnsafeMutableBufferPointer<Float>) {
        free(buffer.baseAddress)
    }

    /// `require(bytes:for:)` for `count` floats.
    public static func require(floats count: Int, for purpose: String) throws {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        try require(bytes: overflow ? -1 : bytes, for: purpose)
    }

    /// Fails early, with the same error, when `bytes` could not be allocated
    /// now: a probe that is freed at once, made before work whose allocations
    /// Swift would trap on (an adapter's parameters and gradients).
    public static func require(bytes: Int, for purpose: String) throws {
        guard bytes >= 0, let probe = malloc(max(bytes, 1)) else {
            throw AllocationError(bytes: bytes < 0 ? Int.max : bytes, purpose: purpose)
        }
        free(probe)
    }
}

/// Memory that could not be allocated; one line saying how much and for what.
public struct AllocationError: Error, CustomStringConvertible, Sendable {
    public var bytes: Int
    public var purpose: String

    public var description: String {
        let size = bytes == Int.max ? "more than the address space" : ByteCount.text(bytes, smallestUnit: .mebibytes)
        return "cannot allocate \(size) for \(purpose): out of memory"
    }
}

/// Byte counts for messages: `64 bytes`, `2.1 KiB`, `8192.0 GiB` (one decimal, binary units up to TiB).
public enum ByteCount {
    public enum Unit: Int, Sendable { case bytes, kibibytes, mebibytes, gibibytes, tebibytes }

    /// `bytes` in the largest unit (from `smallestUnit` on) that keeps the number at least 1.
    public static func text(_ bytes: Int, smallestUnit: Unit = .bytes) -> String {
        let names = ["bytes", "KiB", "MiB", "GiB", "TiB"]
        var unit = smallestUnit.rawValue
        var amount = Double(bytes) / pow(1024, Double(unit))
        while amount >= 1024 && unit < names.count - 1 {
            amount /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) bytes" : "\((amount * 10).rounded() / 10) \(names[unit])"
    }
}
