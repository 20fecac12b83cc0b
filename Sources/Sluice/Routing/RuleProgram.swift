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
        unowned(unsafe) let patterns: PatternSet
    }

    /// What a line fetches, bound to the running balancer.
    enum Operand {
        /// A fetch without arguments (`src`, `dst_port`, `req.ssl_sni` …), as a plain value.
        case simple(Simple)
        /// `sc<n>_<data>` of the counter's own table.
        case trackedCounter(slot: Int, StickData)
        /// Another fetch that names nothing (`req.payload(0,5)` …): `fetches[index]`.
        case direct(Int32)
        /// `nbsrv(<backend>)`; nil: no such backend.
        case usableServers(Unmanaged<BackendState>?)
        /// `srv_is_up(<backend>/<server>)`; nil: no such server.
        case serverIsUp(Unmanaged<ServerState>?)
        /// `src_<data>([<table>])`; nil: no such table.
        case sourceCounter(Unmanaged<StickTable>?, StickData)
        /// `sc<n>_<data>(<table>)`: the key tracked by counter `n`, looked up in another table.
        case trackedKeyCounter(slot: Int, Unmanaged<StickTable>?, StickData)
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
        case accept, reject, expectProxy
        case incrementGPC0(slot: Int)
        /// `track-sc<slot>`: the key is `trackKeys[key]`; nil table: none by that name.
        case track(slot: Int, key: Int32, table: Unmanaged<StickTable>?)
    }

    /// A `use_backend` rule: a backend named outright (nil: none by that name), or a `%[…]` name
    /// built at the session (`rules.switching[index]`).
    struct Switch {
        let condition: Condition
        let backend: Unmanaged<BackendState>?
        let isFormat: Bool
    }

    let lines: UnsafeMutableBufferPointer<Line>
    let acls: UnsafeMutableBufferPointer<ACL>
    let terms: UnsafeMutableBufferPointer<Sluice.Condition.Term>
    /// Connection, session and content rules.
    let connectionRules, sessionRules, contentRules: UnsafeMutableBufferPointer<Rule>
    let switches: UnsafeMutableBufferPointer<Switch>
    /// The conditions of a backend's `stick` rules, in their order.
    let stickConditions: UnsafeMutableBufferPointer<Condition>
    let fetches: [Fetch]
    let converterLists: [[Converter]]
    let trackKeys: [SampleExpression]
    /// What the unmanaged references point to.
    private let anchors: [AnyObject]

    init(_ rules: RuleSet, bind: (Fetch) -> FrontendRouting.BoundFetch, table: (String?) -> StickTable?, backend: (String) -> BackendState?) {
        var anchors: [AnyObject] = []
        func unmanaged<T: AnyObject>(_ object: T?) -> Unmanaged<T>? {
            guard let object else { return nil }
            anchors.append(object)
            return .passUnretained(object)
        }
        var fetches: [Fetch] = [], converterLists: [[Converter]] = [], trackKeys: [SampleExpression] = []
        var lines: [Line] = [], acls: [ACL] = [], terms: [Sluice.Condition.Term] = []
        for acl in rules.acls {
            acls.append(ACL(start: Int32(lines.count), count: Int32(acl.count)))
            for test in acl {
                let operand: Operand
                switch bind(test.expression.fetch) {
                case .direct(let fetch):
                    if let simple = Simple(fetch) {
                        operand = .simple(simple)
                    } else if case .counter(.tracked(let slot, nil), let data) = fetch {
                        operand = .trackedCounter(slot: slot, data)
                    } else {
                        operand = .direct(Int32(fetches.count))
                        fetches.append(fetch)
                    }
                case .usableServers(let b): operand = .usableServers(unmanaged(b))
                case .serverIsUp(let s): operand = .serverIsUp(unmanaged(s))
                case .sourceCounter(let t, let data): operand = .sourceCounter(unmanaged(t), data)
                case .trackedKeyCounter(let slot, let t, let data): operand = .trackedKeyCounter(slot: slot, unmanaged(t), data)
                }
                var converters: Int32 = -1
                if !test.expression.converters.isEmpty {
                    converters = Int32(converterLists.count)
                    converterLists.append(test.expression.converters)
                }
                anchors.append(test.patterns)
                lines.append(Line(fetch: operand, converters: converters, patterns: test.patterns))
            }
        }
        func compile(_ condition: Sluice.Condition?) -> Condition {
            guard let condition else { return .none }
            defer { terms += condition.terms }
            return Condition(start: Int32(terms.count), count: Int32(condition.terms.count), unless: condition.unless)
        }
        let stages: [UnsafeMutableBufferPointer<Rule>] = [rules.connectionRules, rules.sessionRules, rules.contentRules].map { list in
            .allocate(copying: list.map { rule in
                let action: Action
                switch rule.action {
                case .accept: action = .accept
                case .reject: action = .reject
                case .expectProxy: action = .expectProxy
                case .incrementGPC0(let slot): action = .incrementGPC0(slot: slot)
                case .track(let slot, let key, let name):
                    action = .track(slot: slot, key: Int32(trackKeys.count), table: unmanaged(table(name)))
                    trackKeys.append(key)
                }
                return Rule(condition: compile(rule.condition), action: action)
            })
        }
        switches = .allocate(copying: rules.switching.map { rule in
            let condition = compile(rule.condition)
            if case .fixed(let name) = rule.target { return Switch(condition: condition, backend: unmanaged(backend(name)), isFormat: false) }
            return Switch(condition: condition, backend: nil, isFormat: true)
        })
        (connectionRules, sessionRules, contentRules) = (stages[0], stages[1], stages[2])
        stickConditions = .allocate(copying: rules.stickRules.map { compile($0.condition) })
        self.lines = .allocate(copying: lines)
        self.acls = .allocate(copying: acls)
        self.terms = .allocate(copying: terms)
        (self.fetches, self.converterLists, self.trackKeys, self.anchors) = (fetches, converterLists, trackKeys, anchors)
    }

    deinit {
        lines.deallocate()
        acls.deallocate()
        terms.deallocate()
        connectionRules.deallocate()
        sessionRules.deallocate()
        contentRules.deallocate()
        switches.deallocate()
        stickConditions.deallocate()
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
