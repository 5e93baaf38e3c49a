import Foundation

/// The folder a command writes into (`compile -o`, `prune -o`, PEFT export, a
/// merged checkpoint): created with its parents when missing, refused with one
/// line when the path is a file or cannot be made.
enum OutputFolder {
    /// Creates `path` (and its parents) unless it is already a folder, with a readable error.
    static func create(_ path: String) throws {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) {
            guard isFolder.boolValue else { throw UserError("\(path): exists and is not a folder") }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
            throw UserError("\(path): cannot create the folder (\(reason))")
        }
    }
}
