#if canImport(Glibc)
import Glibc
#endif

extension Configuration {
    /// Reads and parses configuration files in order, as HAProxy's repeated `-f`. A directory
    /// contributes its `*.cfg` files in alphabetical order, as HAProxy does.
    ///
    /// - Throws: `ConfigurationError` listing every error, including unreadable files.
    public static func load(paths: [String]) throws(ConfigurationError) -> ParsedConfiguration {
        var sources: [(file: String, text: String)] = []
        var problems: [ConfigDiagnostic] = []
        for path in paths {
            do {
                for file in try expand(path) {
                    sources.append((file, try readText(file)))
                }
            } catch {
                problems.append(ConfigDiagnostic(.error, SourceLocation(file: path, line: 0), section: nil, keyword: nil,
                                                 "cannot read: \(error.reason)"))
            }
        }
        if !problems.isEmpty { throw ConfigurationError(diagnostics: problems) }
        return try parse(sources)
    }

    private static func expand(_ path: String) throws(SystemError) -> [String] {
        var info = stat()
        guard stat(path, &info) == 0 else { throw SystemError(code: errno, call: "stat", operand: path) }
        guard info.st_mode & S_IFMT == S_IFDIR else { return [path] }
        guard let dir = opendir(path) else { throw SystemError(code: errno, call: "opendir", operand: path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(".cfg") && !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted().map { path.hasSuffix("/") ? path + $0 : path + "/" + $0 }
    }

    private static func readText(_ path: String) throws(SystemError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError(code: errno, call: "open", operand: path) }
        defer { closeDescriptor(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try syscallBlocking("read") { chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) } }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
