/// Where a configuration line came from.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int

    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }

    public var description: String { "\(file):\(line)" }
}

/// One problem found in a configuration: its place, the section and keyword it concerns, and a
/// sentence saying what is wrong and, where there is one, what to write instead.
public struct ConfigDiagnostic: Hashable, Sendable, CustomStringConvertible {
    public enum Severity: String, Hashable, Sendable { case error, warning }

    public var severity: Severity
    public var location: SourceLocation
    /// e.g. `backend 'api'`, or `global`. Nil before the first section.
    public var section: String?
    /// The keyword the line starts with (e.g. `server`, `timeout connect`).
    public var keyword: String?
    public var message: String

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
    public var diagnostics: [ConfigDiagnostic]

    public init(diagnostics: [ConfigDiagnostic]) { self.diagnostics = diagnostics }

    public var errors: [ConfigDiagnostic] { diagnostics.filter { $0.severity == .error } }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
