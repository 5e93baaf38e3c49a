/// A safetensors file that cannot be read or written: one line naming the file
/// and, when one tensor is at fault, that tensor, so the user knows what to fix
/// without a debugger (DESIGN §5).
public struct SafetensorsError: Error, CustomStringConvertible, Sendable {
    /// The one line a tool prints: the file, the tensor and what is wrong.
    public var message: String

    /// An error with its message.
    public init(_ message: String) {
        self.message = message
    }

    /// `PATH: DETAIL`, or `PATH: tensor "NAME": DETAIL` when `tensor` is given.
    public init(path: String, tensor: String? = nil, _ detail: String) {
        if let tensor {
            self.message = "\(path): tensor \(Self.quoted(tensor)): \(detail)"
        } else {
            self.message = "\(path): \(detail)"
        }
    }

    /// The message.
    public var description: String { message }

    /// A name as it appears in a message: in double quotes, with control characters
    /// escaped so that a hostile name cannot break the message onto several lines.
    static func quoted(_ name: String) -> String {
        var result = "\""
        for scalar in name.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                result += "\\u{\(String(scalar.value, radix: 16))}"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
