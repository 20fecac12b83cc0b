/// Where a configuration line came from.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    /// The file as it was named (or `<text>` for a string).
    public var file: String
    /// From 1.
    public var line: Int

    /// A line of a file.
    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }

    /// `file:line`.
    public var description: String { "\(file):\(line)" }
}

/// One problem found in a configuration: its place, the section and keyword it concerns, and a
/// sentence saying what is wrong and, where there is one, what to write instead.
public struct ConfigDiagnostic: Hashable, Sendable, CustomStringConvertible {
    /// Whether the configuration can run.
    public enum Severity: String, Hashable, Sendable {
        /// It cannot: nothing runs until it is fixed.
        case error
        /// It runs, but not as the line may mean (ignored, replaced, or without effect, and why).
        case warning
    }

    /// An error or a warning.
    public var severity: Severity
    /// The line it is about.
    public var location: SourceLocation
    /// e.g. `backend 'api'`, or `global`. Nil before the first section.
    public var section: String?
    /// The keyword the line starts with (e.g. `server`, `timeout connect`).
    public var keyword: String?
    /// What is wrong and, where it helps, what to write instead.
    public var message: String

    /// A diagnostic about `keyword` at `location`, in `section` (`frontend 'web'`) when known.
    public init(_ severity: Severity, _ location: SourceLocation, section: String?, keyword: String?, _ message: String) {
        self.severity = severity
        self.location = location
        self.section = section
        self.keyword = keyword
        self.message = message
    }

    /// `file:line: error: [backend 'api'] 'server': message`
    public var description: String {
        var text = "\(location): \(severity.rawValue): "
        if let section { text += "[\(section)] " }
        if let keyword { text += "'\(keyword)': " }
        return text + message
    }
}

/// A configuration that could not be loaded: every error found, not only the first.
public struct ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Every error and warning found, in file order.
    public var diagnostics: [ConfigDiagnostic]

    /// An error made of these diagnostics.
    public init(diagnostics: [ConfigDiagnostic]) { self.diagnostics = diagnostics }

    /// The errors alone.
    public var errors: [ConfigDiagnostic] { diagnostics.filter { $0.severity == .error } }

    /// One diagnostic per line.
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
