#if canImport(Glibc)
import Glibc
#endif

extension Configuration {
    /// Reads and parses configuration files in order, as HAProxy's repeated `-f`. A directory
    /// contributes its `*.cfg` files in alphabetical order, as HAProxy does.
    ///
    /// - Throws: `ConfigurationError` listing every error, including unreadable files.
    public static func load(paths: [String]) throws(ConfigurationError) -> ParsedConfiguration {
        try ConfigurationFiles(paths: paths).load()
    }
}

/// The `-f` paths of a running balancer, held so that they can be read again after `chroot` and a
/// change of user: each file's directory (or each named directory) is opened once, up front, and
/// every later read goes through `openat(2)` from it. A file replaced by a rename (as editors and
/// configuration managers do) is still found, since it is looked up by name each time.
public final class ConfigurationFiles: Sendable {
    private struct Entry: Sendable {
        /// The directory, opened read-only.
        let directory: CInt
        /// The file in it; nil when the path named the directory itself.
        let name: String?
        let path: String
    }

    private let entries: [Entry]

    /// Opens the directories of `paths`.
    /// - Throws: `ConfigurationError` naming every path that cannot be opened.
    public init(paths: [String]) throws(ConfigurationError) {
        var entries: [Entry] = []
        var problems: [ConfigDiagnostic] = []
        for path in paths {
            var info = stat()
            let isDirectory = stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
            let slash = path.lastIndex(of: "/")
            let directory = isDirectory ? path : slash.map { path[..<$0].isEmpty ? "/" : String(path[..<$0]) } ?? "."
            let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd < 0 {
                problems.append(Self.unreadable(path, SystemError(code: errno, call: "open", operand: directory)))
                continue
            }
            entries.append(Entry(directory: fd, name: isDirectory ? nil : slash.map { String(path[path.index(after: $0)...]) } ?? path, path: path))
        }
        if !problems.isEmpty {
            for entry in entries { closeDescriptor(entry.directory) }
            throw ConfigurationError(diagnostics: problems)
        }
        self.entries = entries
    }

    deinit { for entry in entries { closeDescriptor(entry.directory) } }

    /// The directories held open, for a daemon that closes what it does not know.
    public var descriptors: Set<CInt> { Set(entries.map(\.directory)) }

    /// Reads every file now and parses them as one configuration.
    /// - Throws: `ConfigurationError` listing every error, including unreadable files.
    public func load() throws(ConfigurationError) -> ParsedConfiguration {
        var sources: [(file: String, text: String)] = []
        var problems: [ConfigDiagnostic] = []
        for entry in entries {
            do {
                if let name = entry.name {
                    sources.append((entry.path, try Self.readText(entry.directory, name, shown: entry.path)))
                } else {
                    for name in try Self.configFiles(in: entry.directory, shown: entry.path) {
                        let shown = entry.path.hasSuffix("/") ? entry.path + name : entry.path + "/" + name
                        sources.append((shown, try Self.readText(entry.directory, name, shown: shown)))
                    }
                }
            } catch {
                problems.append(Self.unreadable(entry.path, error))
            }
        }
        if !problems.isEmpty { throw ConfigurationError(diagnostics: problems) }
        return try Configuration.parse(sources)
    }

    private static func unreadable(_ path: String, _ error: SystemError) -> ConfigDiagnostic {
        ConfigDiagnostic(.error, SourceLocation(file: path, line: 0), section: nil, keyword: nil, "cannot read: \(error.reason)")
    }

    /// The `*.cfg` names in a directory, alphabetically, as HAProxy reads a directory given to `-f`.
    private static func configFiles(in directory: CInt, shown: String) throws(SystemError) -> [String] {
        let fd = openat(directory, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError(code: errno, call: "open", operand: shown) }
        guard let dir = fdopendir(fd) else {
            let code = errno
            closeDescriptor(fd)
            throw SystemError(code: code, call: "opendir", operand: shown)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(".cfg") && !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted()
    }

    private static func readText(_ directory: CInt, _ name: String, shown: String) throws(SystemError) -> String {
        let fd = openat(directory, name, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError(code: errno, call: "open", operand: shown) }
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
