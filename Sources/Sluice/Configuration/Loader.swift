import Synchronization
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
    /// The directories of the files the configuration names (`acl … -f`), opened when first read
    /// (before `chroot`), by path.
    private let fileDirectories = Mutex<[String: CInt]>([:])

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

    deinit {
        for entry in entries { closeDescriptor(entry.directory) }
        fileDirectories.withLock { for fd in $0.values { closeDescriptor(fd) } }
    }

    /// The directories held open, for a daemon that closes what it does not know.
    public var descriptors: Set<CInt> { Set(entries.map(\.directory)).union(fileDirectories.withLock { $0.values }) }

    /// Reads a file the configuration names through its directory, opened on the first read and
    /// kept: a reload after `chroot` still finds it (a new directory cannot be opened there).
    private func readNamedFile(_ path: String) -> Result<String, SystemError> {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { path[..<$0].isEmpty ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let fd: CInt = fileDirectories.withLock { known in
            if let fd = known[directory] { return fd }
            let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 { known[directory] = fd }
            return fd
        }
        guard fd >= 0 else { return .failure(SystemError(code: errno, call: "open", operand: directory)) }
        return Result { () throws(SystemError) in try Self.readText(fd, name, shown: path) }
    }

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
        return try Configuration.parse(sources, readFile: { [self] in readNamedFile($0) })
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

    static func readText(_ directory: CInt, _ name: String, shown: String) throws(SystemError) -> String {
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

extension Parser {
    /// Reads a file by its path, for a configuration parsed from text.
    static func readFile(_ path: String) -> Result<String, SystemError> {
        Result { () throws(SystemError) in try ConfigurationFiles.readText(AT_FDCWD, path, shown: path) }
    }
}
