/// A frontend's rules compiled for evaluation: ACL lines, condition terms and rule actions as plain
/// values in buffers allocated once per (re)load, the objects they name reached without reference
/// counting (the program keeps them alive). Evaluating a session's rules then copies no enum with a
/// payload and retains nothing: counted by callgrind (`bench/rulecost.py`), reference counting and
/// such copies were a third of what the rules cost a new connection.
final class RuleProgram: @unchecked Sendable {
    /// One ACL line: a fetch, its converters (`converterLists[converters]`, -1: none) and patterns.
    struct Line {
        let fetch: Operand
        let converters: Int32
        let patterns: Unmanaged<PatternSet>
        let shape: Shape
    }

    /// How a line is tested. Most lines fetch a value that cannot change (an address, a port, a
    /// counter, a name) and compare it by the method that fits its type; those skip the general
    /// `Sample`, whose string cases make every copy of it reference-counted.
    enum Shape: UInt8 {
        /// `-m int` on a port, a counter, a backend's load or `srv_is_up`, without converters.
        case integer
        /// `-m ip` on `src` or `dst`, without converters.
        case address
        /// A string method on `fe_name`, `be_name` or `so_name`, without converters.
        case name
        /// Anything else: a `Sample` through the converters, then the patterns.
        case general

        init(_ fetch: Operand, converters: Int32, method: MatchMethod) {
            self = .general
            guard converters < 0 else { return }
            switch (fetch, method) {
            case (.simple(.srcPort), .int), (.simple(.dstPort), .int), (.trackedCounter, .int), (.backendLoad, .int), (.serverIsUp, .int):
                self = .integer
            case (.simple(.src), .ip), (.simple(.dst), .ip):
                self = .address
            case (.simple(.name), .str), (.simple(.name), .beg), (.simple(.name), .end), (.simple(.name), .sub), (.simple(.name), .reg),
                 (.simple(.bindName), .str), (.simple(.bindName), .beg), (.simple(.bindName), .end), (.simple(.bindName), .sub), (.simple(.bindName), .reg):
                self = .name
            default:
                break
            }
        }
    }

    /// A `track-sc*` key: a fetch and its converters, as a line's.
    struct Key {
        let fetch: Operand
        let converters: Int32
    }

    /// What a line fetches, bound to the running balancer.
    enum Operand {
        /// A fetch without arguments (`src`, `dst_port`, `req.ssl_sni` …), as a plain value.
        case simple(Simple)
        /// `sc<n>_<data>` of the counter's own table.
        case trackedCounter(slot: Int, StickData)
        /// Another fetch that names nothing (`req.payload(0,5)` …): `fetches[index]`.
        case direct(Int32)
        /// `nbsrv(<backend>)`, `be_conn(<backend>)` …; nil: no such backend.
        case backendLoad(BackendLoad, Unmanaged<BackendState>?)
        /// `srv_is_up(<backend>/<server>)`; nil: no such server.
        case serverIsUp(Unmanaged<ServerState>?)
        /// `src_<data>([<table>])`; nil: no such table.
        case sourceCounter(Unmanaged<StickTable>?, StickData)
        /// `sc<n>_<data>(<table>)`: the key tracked by counter `n`, looked up in another table.
        case trackedKeyCounter(slot: Int, Unmanaged<StickTable>?, StickData)

        /// The object a named operand refers to.
        var object: AnyObject? {
            switch self {
            case .backendLoad(_, let b): b?.takeUnretainedValue()
            case .serverIsUp(let s): s?.takeUnretainedValue()
            case .sourceCounter(let t, _), .trackedKeyCounter(_, let t, _): t?.takeUnretainedValue()
            case .simple, .trackedCounter, .direct: nil
            }
        }
    }

    /// The fetches without arguments: reading one copies no `Fetch` (an enum whose other cases
    /// carry strings, so that every copy of it goes through an outlined copy).
    enum Simple: UInt8 {
        case src, srcPort, dst, dstPort, bindName, name, alwaysTrue, alwaysFalse, waitEnd, requestLength
        case tlsServerName, tlsProtocols, tlsVersion, tlsHelloType, looksLikeHTTP

        init?(_ fetch: Fetch) {
            switch fetch {
            case .src: self = .src
            case .srcPort: self = .srcPort
            case .dst: self = .dst
            case .dstPort: self = .dstPort
            case .bindName: self = .bindName
            case .frontendName, .backendName: self = .name
            case .alwaysTrue: self = .alwaysTrue
            case .alwaysFalse: self = .alwaysFalse
            case .waitEnd: self = .waitEnd
            case .requestLength: self = .requestLength
            case .tlsServerName: self = .tlsServerName
            case .tlsProtocols: self = .tlsProtocols
            case .tlsVersion: self = .tlsVersion
            case .tlsHelloType: self = .tlsHelloType
            case .looksLikeHTTP: self = .looksLikeHTTP
            default: return nil
            }
        }
    }

    /// An ACL: `lines[start..<start+count]`, ORed.
    struct ACL {
        let start: Int32
        let count: Int32
    }

    /// A condition: `terms[start..<start+count]`; `count` -1 when the rule has none.
    struct Condition {
        let start: Int32
        let count: Int32
        let unless: Bool
        static let none = Condition(start: 0, count: -1, unless: false)
    }

    /// A `tcp-request` rule.
    struct Rule {
        let condition: Condition
        let action: Action
    }

    enum Action {
        case accept, reject, expectProxy, silentDrop, closeServer
        case incrementGPC0(slot: Int)
        /// `sc-set-gpt0(<slot>)`: the value is `trackKeys[value]`'s sample.
        case setGPT0(slot: Int, value: Int32)
        /// `set-src` …: the new address or port is `trackKeys[value]`'s sample.
        case setAddress(value: Int32, destination: Bool, portOnly: Bool)
        /// `track-sc<slot>`: the key is `trackKeys[key]`; nil table: none by that name.
        case track(slot: Int, key: Int32, table: Unmanaged<StickTable>?)
        case setMark(UInt32)
        case setTOS(Int32)
        /// `set-var`, `set-var-fmt`, `unset-var`: `assignments[index]`.
        case setVariable(Int32)
        case unsetVariable(Int32)
        /// `capture`: `captures[index]`.
        case capture(Int32)
        /// `set-log-level`: the level (0–7), or -1 for `silent`.
        case setLogLevel(Int8)
        /// `set-priority-class|offset`: the value is `trackKeys[value]`'s sample.
        case setPriority(value: Int32, offset: Bool)
    }

    /// A `capture` with its expression compiled.
    struct Capture {
        let key: Key
        let length: Int
        let slot: Int
    }

    /// A `set-var` (or `unset-var`: its value is not used) with its expression compiled.
    struct Assignment {
        enum Value {
            case expression(Key)
            case format([SwitchRule.FormatPart])
        }
        let name: VariableName
        let conditions: VariableConditions
        let value: Value
    }

    /// A `use_backend` rule: the backend it names outright; nil for none by that name, or for a
    /// `%[…]` name built at the session (`rules.switching[index]`).
    struct Switch {
        let condition: Condition
        let backend: Unmanaged<BackendState>?
    }

    let lines: UnsafeMutableBufferPointer<Line>
    let acls: UnsafeMutableBufferPointer<ACL>
    let terms: UnsafeMutableBufferPointer<Sluice.Condition.Term>
    /// Connection, session, content and (a backend's) response rules.
    let connectionRules, sessionRules, contentRules, responseRules: UnsafeMutableBufferPointer<Rule>
    let switches: UnsafeMutableBufferPointer<Switch>
    /// The conditions of a backend's `stick` rules, in their order.
    let stickConditions: UnsafeMutableBufferPointer<Condition>
    /// The conditions of a backend's `use-server` rules, in their order.
    let serverConditions: UnsafeMutableBufferPointer<Condition>
    /// The conditions of a backend's `force-persist` / `ignore-persist` rules, in their order.
    let persistConditions: UnsafeMutableBufferPointer<Condition>
    let fetches: [Fetch]
    let converterLists: [[Converter]]
    let trackKeys: UnsafeMutableBufferPointer<Key>
    let assignments: [Assignment]
    let captures: [Capture]
    /// What the unmanaged references point to.
    private let anchors: [AnyObject]

    /// The operand of a fetch that names a backend, server or table, looked up (a nil reference: it
    /// names none that exists); nil for a fetch that names nothing. The objects are the running
    /// balancer's, which the caller's routing holds.
    static func named(_ fetch: Fetch, _ rules: RuleSet, defaultBackend: BackendState?, backends: [String: BackendState],
                      tables: [String: StickTable]) -> Operand? {
        func unmanaged<T: AnyObject>(_ object: T?) -> Unmanaged<T>? { object.map { .passUnretained($0) } }
        switch fetch {
        case .backendLoad(let load, let name): return .backendLoad(load, unmanaged(name.map { backends[$0] } ?? defaultBackend))
        case .serverIsUp(let name, let server): return .serverIsUp(unmanaged((name.map { backends[$0] } ?? defaultBackend)?.server(named: server)))
        case .counter(.source(let name), let data): return .sourceCounter(unmanaged(tables[name ?? rules.ownTable ?? ""]), data)
        case .counter(.tracked(let slot, let name?), let data): return .trackedKeyCounter(slot: slot, unmanaged(tables[name]), data)
        default: return nil
        }
    }

    init(_ rules: RuleSet, defaultBackend: BackendState?, backends: [String: BackendState], tables: [String: StickTable], shaped: Bool = true) {
        var anchors: [AnyObject] = []
        func unmanaged<T: AnyObject>(_ object: T?) -> Unmanaged<T>? {
            guard let object else { return nil }
            anchors.append(object)
            return .passUnretained(object)
        }
        var fetches: [Fetch] = [], converterLists: [[Converter]] = [], trackKeys: [Key] = [], assignments: [Assignment] = [], captures: [Capture] = []
        var lines: [Line] = [], acls: [ACL] = [], terms: [Sluice.Condition.Term] = []
        func compile(_ expression: SampleExpression) -> Key {
            let fetch = expression.fetch
            let operand: Operand
            if let named = Self.named(fetch, rules, defaultBackend: defaultBackend, backends: backends, tables: tables) {
                operand = named
                if let object = named.object { anchors.append(object) }
            } else if let simple = Simple(fetch) {
                operand = .simple(simple)
            } else if case .counter(.tracked(let slot, nil), let data) = fetch {
                operand = .trackedCounter(slot: slot, data)
            } else {
                operand = .direct(Int32(fetches.count))
                fetches.append(fetch)
            }
            var converters: Int32 = -1
            if !expression.converters.isEmpty {
                converters = Int32(converterLists.count)
                converterLists.append(expression.converters)
            }
            return Key(fetch: operand, converters: converters)
        }
        for acl in rules.acls {
            acls.append(ACL(start: Int32(lines.count), count: Int32(acl.count)))
            for test in acl {
                let compiled = compile(test.expression)
                anchors.append(test.patterns)
                lines.append(Line(fetch: compiled.fetch, converters: compiled.converters, patterns: .passUnretained(test.patterns),
                                  shape: shaped ? Shape(compiled.fetch, converters: compiled.converters, method: test.patterns.method) : .general))
            }
        }
        func compile(_ condition: Sluice.Condition?) -> Condition {
            guard let condition else { return .none }
            defer { terms += condition.terms }
            return Condition(start: Int32(terms.count), count: Int32(condition.terms.count), unless: condition.unless)
        }
        let stages: [UnsafeMutableBufferPointer<Rule>] = [rules.connectionRules, rules.sessionRules, rules.contentRules, rules.responseRules].map { list in
            .allocate(copying: list.map { rule in
                let action: Action
                switch rule.action {
                case .accept: action = .accept
                case .reject: action = .reject
                case .closeServer: action = .closeServer
                case .expectProxy: action = .expectProxy
                case .silentDrop: action = .silentDrop
                case .setMark(let mark): action = .setMark(mark)
                case .setTOS(let tos): action = .setTOS(tos)
                case .setVariable(let name, let conditions, let value):
                    action = .setVariable(Int32(assignments.count))
                    switch value {
                    case .expression(let e): assignments.append(Assignment(name: name, conditions: conditions, value: .expression(compile(e))))
                    case .format(let parts): assignments.append(Assignment(name: name, conditions: conditions, value: .format(parts)))
                    }
                case .setLogLevel(let level): action = .setLogLevel(Int8(level ?? -1))
                case .setPriority(let value, let offset):
                    action = .setPriority(value: Int32(trackKeys.count), offset: offset)
                    trackKeys.append(compile(value))
                case .capture(let e, let length, let slot):
                    action = .capture(Int32(captures.count))
                    captures.append(Capture(key: compile(e), length: length, slot: slot))
                case .unsetVariable(let name):
                    action = .unsetVariable(Int32(assignments.count))
                    assignments.append(Assignment(name: name, conditions: [], value: .format([])))
                case .incrementGPC0(let slot): action = .incrementGPC0(slot: slot)
                case .setGPT0(let slot, let value):
                    action = .setGPT0(slot: slot, value: Int32(trackKeys.count))
                    trackKeys.append(compile(value))
                case .setAddress(let value, let destination, let portOnly):
                    action = .setAddress(value: Int32(trackKeys.count), destination: destination, portOnly: portOnly)
                    trackKeys.append(compile(value))
                case .track(let slot, let key, let name):
                    action = .track(slot: slot, key: Int32(trackKeys.count), table: unmanaged(tables[name ?? rules.ownTable ?? ""]))
                    trackKeys.append(compile(key))
                }
                return Rule(condition: compile(rule.condition), action: action)
            })
        }
        switches = .allocate(copying: rules.switching.map { rule in
            let condition = compile(rule.condition)
            guard case .fixed(let name) = rule.target else { return Switch(condition: condition, backend: nil) }
            return Switch(condition: condition, backend: unmanaged(backends[name]))
        })
        (connectionRules, sessionRules, contentRules, responseRules) = (stages[0], stages[1], stages[2], stages[3])
        stickConditions = .allocate(copying: rules.stickRules.map { compile($0.condition) })
        serverConditions = .allocate(copying: rules.serverRules.map { compile($0.condition) })
        persistConditions = .allocate(copying: rules.persistRules.map { compile($0.condition) })
        self.lines = .allocate(copying: lines)
        self.acls = .allocate(copying: acls)
        self.terms = .allocate(copying: terms)
        self.trackKeys = .allocate(copying: trackKeys)
        self.assignments = assignments
        self.captures = captures
        (self.fetches, self.converterLists, self.anchors) = (fetches, converterLists, anchors)
    }

    deinit {
        lines.deallocate()
        acls.deallocate()
        terms.deallocate()
        connectionRules.deallocate()
        sessionRules.deallocate()
        contentRules.deallocate()
        responseRules.deallocate()
        switches.deallocate()
        stickConditions.deallocate()
        serverConditions.deallocate()
        persistConditions.deallocate()
        trackKeys.deallocate()
    }
}

extension UnsafeMutableBufferPointer {
    /// A buffer holding a copy of `elements` (deallocated by its owner).
    static func allocate(copying elements: [Element]) -> UnsafeMutableBufferPointer<Element> {
        let buffer = UnsafeMutableBufferPointer<Element>.allocate(capacity: elements.count)
        _ = buffer.initialize(from: elements)
        return buffer
    }
}
