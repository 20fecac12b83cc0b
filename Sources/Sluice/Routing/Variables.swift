import Synchronization

/// A variable's name as HAProxy writes it, `<scope>.<name>` (section 2.8 of its manual): `proc` is
/// shared by the whole process, `sess`, `txn`, `req` and `res` belong to one session (at Layer 4
/// a session is one transaction, so they live as long as the session, as in HAProxy's tcp mode),
/// `check` to a health check (which Sluice's rules never see).
struct VariableName: Sendable, Hashable, CustomStringConvertible {
    enum Scope: String, Sendable {
        case proc, sess, txn, req, res, check
    }

    let scope: Scope
    /// The whole name, scope included (`sess.client`): the key a store keeps the value under.
    let description: String

    /// HAProxy's `vars_hash_name`: a known scope, a dot, then letters, digits, `.` and `_`.
    static func parse(_ text: String) -> Result<VariableName, ValueError> {
        let invalid = ValueError("invalid variable name '\(text)'. A variable name must be start by its scope. The scope can be 'proc', 'sess', 'txn', 'req', 'res' or 'check'")
        guard let dot = text.firstIndex(of: "."), let scope = Scope(rawValue: String(text[..<dot])) else { return .failure(invalid) }
        let name = text[text.index(after: dot)...]
        guard !name.isEmpty else { return .failure(ValueError("variable '\(text)' has an empty name after its scope")) }
        if let bad = name.first(where: { !($0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_")) }) {
            return .failure(ValueError("invalid character '\(bad)' in variable name '\(text)' (letters, digits, '.' and '_' only)"))
        }
        return .success(VariableName(scope: scope, description: text))
    }
}

/// The conditions of `set-var(<name>,<cond>…)` (HAProxy 2.6's `VF_COND_*`).
struct VariableConditions: OptionSet, Sendable, Hashable {
    let rawValue: UInt8
    static let ifExists = VariableConditions(rawValue: 1 << 0)
    static let ifNotExists = VariableConditions(rawValue: 1 << 1)
    static let ifEmpty = VariableConditions(rawValue: 1 << 2)
    static let ifNotEmpty = VariableConditions(rawValue: 1 << 3)
    static let ifSet = VariableConditions(rawValue: 1 << 4)
    static let ifNotSet = VariableConditions(rawValue: 1 << 5)
    static let ifGreater = VariableConditions(rawValue: 1 << 6)
    static let ifLess = VariableConditions(rawValue: 1 << 7)

    static let names: [(String, VariableConditions)] = [
        ("ifexists", .ifExists), ("ifnotexists", .ifNotExists), ("ifempty", .ifEmpty), ("ifnotempty", .ifNotEmpty),
        ("ifset", .ifSet), ("ifnotset", .ifNotSet), ("ifgt", .ifGreater), ("iflt", .ifLess),
    ]

    /// Parses `set-var(<name>[,<cond>…])`'s parenthesised part.
    static func parseTarget(_ inner: String) -> Result<(VariableName, VariableConditions), ValueError> {
        let words = inner.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingSpaces }
        var conditions = VariableConditions()
        for word in words.dropFirst() {
            guard let condition = names.first(where: { $0.0 == word })?.1 else { return .failure(ValueError("unknown condition \"\(word)\"")) }
            conditions.insert(condition)
        }
        return VariableName.parse(words[0]).map { ($0, conditions) }
    }

    /// Stores `sample` in `slot` as HAProxy's `var_set` does: `slot` is nil when the variable does
    /// not exist, `.some(nil)` when it exists unset. A variable the call creates stays created
    /// even when a later condition stops the assignment, as in HAProxy.
    func assign(_ sample: Sample, to slot: inout Sample??) {
        if slot != nil {
            if contains(.ifNotExists) { return }
        } else {
            if contains(.ifExists) { return }
            slot = .some(nil)
        }
        let previous = slot ?? nil
        if (contains(.ifSet) && previous == nil) || (contains(.ifNotSet) && previous != nil) { return }
        switch sample {
        case .string(let bytes), .binary(let bytes):
            if (contains(.ifNotEmpty) && bytes.isEmpty) || (contains(.ifEmpty) && !bytes.isEmpty) { return }
        case .int(let value):
            if contains(.ifEmpty) { return }  // a scalar is never empty
            // HAProxy keeps the variable when it is not greater (`ifgt`) or not less (`iflt`) than the input.
            if case .int(let old)? = previous, (contains(.ifGreater) && !(old > value)) || (contains(.ifLess) && !(old < value)) { return }
        case .bool, .ip:
            if contains(.ifEmpty) { return }
        }
        slot = .some(sample)
    }
}

/// The session's variables (`sess`, `txn`, `req`, `res`), on its rules' context. Empty costs
/// nothing: a dictionary allocates on the first variable set.
struct SessionVariables {
    private var values: [String: Sample?] = [:]

    subscript(name: VariableName) -> Sample? { values[name.description] ?? nil }

    mutating func set(_ name: VariableName, _ sample: Sample, _ conditions: VariableConditions) {
        conditions.assign(sample, to: &values[name.description])
    }

    /// `unset-var`: the variable is gone (HAProxy frees a session's variable).
    mutating func unset(_ name: VariableName) { values[name.description] = nil }
}

/// The `proc` variables, shared by every session of every frontend. HAProxy creates each one the
/// configuration names when it parses it (so `ifexists` always holds for them, and `unset-var`
/// leaves them existing and unset); so does `declare`, at each (re)load. Values survive a reload
/// here, where HAProxy's new process starts without them: Sluice reloads in place.
final class ProcessVariables: Sendable {
    private let values = Mutex<[String: Sample?]>([:])

    init() {}

    func declare(_ names: some Sequence<VariableName>) {
        values.withLock { values in
            for name in names where values[name.description] == nil { values[name.description] = .some(nil) }
        }
    }

    subscript(name: VariableName) -> Sample? { values.withLock { $0[name.description] ?? nil } }

    func set(_ name: VariableName, _ sample: Sample, _ conditions: VariableConditions) {
        values.withLock { conditions.assign(sample, to: &$0[name.description]) }
    }

    func unset(_ name: VariableName) {
        values.withLock { if $0[name.description] != nil { $0[name.description] = .some(nil) } }
    }
}
