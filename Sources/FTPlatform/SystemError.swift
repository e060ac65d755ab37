#if canImport(Glibc)
import Glibc
#endif

/// An error from a system call or library, with the operation and object it concerns.
public struct SystemError: Error, CustomStringConvertible {
    public var operation: String
    public var detail: String
    /// The errno value, when the error came from a system call.
    public var code: Int32 = 0
    public init(_ operation: String, errno code: Int32) {
        self.operation = operation
        self.detail = String(cString: strerror(code))
        self.code = code
    }
    public init(_ operation: String, detail: String) {
        self.operation = operation; self.detail = detail
    }
    public var description: String { "\(operation): \(detail)" }
}

/// Monotonic clock in nanoseconds. The only clock in ftap; the core never reads it.
public func monotonicNanos() -> UInt64 { ftapMonotonicNs() }

import CShims
@inline(__always) func ftapMonotonicNs() -> UInt64 { ftap_monotonic_ns() }
