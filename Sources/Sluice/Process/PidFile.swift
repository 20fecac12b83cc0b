#if canImport(Glibc)
import Glibc
#endif

/// HAProxy's `pidfile` (and `-p`): the running process writes its pid, and removes the file when
/// it exits. The file's directory is held open, so that removal still works after `chroot`
/// (removing needs write permission on that directory for the user the process runs as then).
public struct PidFile: ~Copyable {
    private let directory: CInt
    private let name: String
    /// The file's path as given.
    public let path: String

    /// Writes `getpid()` and a newline to `path`, replacing what was there.
    /// - Throws: `SluiceError` naming the path and the reason.
    public init(path: String) throws(SluiceError) {
        self.path = path
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { path[..<$0].isEmpty ? "/" : String(path[..<$0]) } ?? "."
        name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        directory = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw SluiceError("pidfile \(path): \(String(cString: strerror(errno)))") }
        let fd = openat(directory, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let code = errno
            close(directory)
            throw SluiceError("pidfile \(path): \(String(cString: strerror(code)))")
        }
        var text = "\(getpid())\n"
        text.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    /// Removes the file. Returns the reason when it could not.
    public consuming func remove() -> String? {
        defer { close(directory) }
        if unlinkat(directory, name, 0) != 0 && errno != ENOENT {
            return "cannot remove pidfile \(path): \(String(cString: strerror(errno)))"
        }
        return nil
    }
}
