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
        var amount = Double(bytes) / 1_048_576, unit = "MiB"
        for next in ["GiB", "TiB"] where amount >= 1024 {
            amount /= 1024
            unit = next
        }
        let size = bytes == Int.max ? "more than the address space" : "\((amount * 10).rounded() / 10) \(unit)"
        return "cannot allocate \(size) for \(purpose): out of memory"
    }
}
