import CShims
#if canImport(Glibc)
import Glibc
#endif

/// What a session's rules know and hold: the client's addresses (from the socket, or from a PROXY
/// header), its bind, the bytes that have arrived, and the stick-table entries it tracks.
/// Owned by one session on one reactor thread, so its properties skip Swift's dynamic
/// exclusivity checks (measured: they were the largest user-space cost of evaluating rules).
final class SessionContext {
    let client: CInt
    /// `so_name`.
    let bindName: [UInt8]?
    /// The frontend's rules when the session started; nil when only a PROXY header is expected.
    let routing: FrontendRouting?
    /// The client's address and the one it reached: read from the socket on first use, replaced by
    /// a PROXY header's (`accept-proxy`).
    @exclusivity(unchecked) private var sourceAddress: SocketAddress??
    @exclusivity(unchecked) private var destinationAddress: SocketAddress??
    /// `track-sc0..2`.
    @exclusivity(unchecked) var tracked = TrackedCounters()
    /// A tracked entry's table counts bytes: the reactor reports each transfer.
    @exclusivity(unchecked) private(set) var countsBytes = false
    /// The bytes that have arrived (peeked: they stay in the socket until forwarded).
    @exclusivity(unchecked) var content = UnsafeRawBufferPointer(start: nil, count: 0)
    /// No more bytes can change a fetch: the client closed, the buffer is full or the delay ended.
    @exclusivity(unchecked) var final = true
    @exclusivity(unchecked) var now: Int64 = 0
    /// `accept-proxy` (or `expect-proxy`): a PROXY header comes before any data.
    @exclusivity(unchecked) var expectsProxyHeader = false
    /// `stick store-request` / `stick on`: the keys taken when the session was routed (while the
    /// inspected data are there), stored with its server once it is connected.
    @exclusivity(unchecked) var stickStores: [(table: StickTable, key: StickKey)] = []
    /// `set-var`'s `sess`, `txn`, `req` and `res` variables.
    @exclusivity(unchecked) var variables = SessionVariables()
    /// The session's frontend, bind, thread and process (`fe_conn`, `dst_conn`, `thread` …); nil
    /// where rules run outside a session (tests, benchmarks).
    @exclusivity(unchecked) var origin: SessionOrigin?
    /// `tcp-request content capture` slots (nil: nothing captured there), sized on first capture.
    @exclusivity(unchecked) var captures: [[UInt8]?] = []
    /// A content rule that yielded (a `capture` whose sample could still change): the next
    /// evaluation goes on from its action, as HAProxy resumes `current_rule`; -1: none.
    @exclusivity(unchecked) var yieldedContentRule = -1
    /// `set-log-level`: the level of the session's log line plus one, 0 when not set, -1 for none
    /// (`silent`), as HAProxy's `logs.level`.
    @exclusivity(unchecked) var logLevel: Int8 = 0
    /// `fc_rcvd_proxy`: a PROXY header was read.
    @exclusivity(unchecked) var receivedProxyHeader = false
    /// `set-priority-class`, `set-priority-offset`.
    @exclusivity(unchecked) var priority = QueuePriority()
    /// Its v2 authority and unique ID TLVs (`fc_pp_authority`, `fc_pp_unique_id`).
    @exclusivity(unchecked) var proxyAuthority: [UInt8]?
    @exclusivity(unchecked) var proxyUniqueID: [UInt8]?
    /// The session's log state, which builds and keeps its unique ID (`unique-id`); set once the
    /// session exists (connection and session rules have none, as HAProxy's have no stream).
    @exclusivity(unchecked) var log: SessionLog?
    /// The connection's own addresses, which a PROXY header does not replace (`fc_src`, `fc_dst`):
    /// from accept when known, else asked of the socket, whose addresses are always its own.
    @exclusivity(unchecked) private var acceptedPeer: SocketAddress?
    @exclusivity(unchecked) private var acceptedLocal: SocketAddress?

    /// The ClientHello parsed from `content`, kept while no new byte arrives (every TLS fetch of
    /// every rule reads it).
    @exclusivity(unchecked) private var hello: (count: Int, outcome: TLSInspection.Outcome<TLSInspection.ClientHello>)?

    func clientHello() -> TLSInspection.Outcome<TLSInspection.ClientHello> {
        if let hello, hello.count == content.count { return hello.outcome }
        let outcome = TLSInspection.clientHello(content)
        hello = (content.count, outcome)
        return outcome
    }

    /// The server's data, peeked, for `tcp-response` rules: what the payload fetches read from now
    /// on (the client's were forgotten when the session was routed).
    func inspect(response data: UnsafeRawBufferPointer, final: Bool) {
        content = data
        self.final = final
        hello = nil
    }

    /// `peer`, `local`: the addresses when already known (from accept4, and a bind on a specific address).
    init(client: CInt, bindName: [UInt8]?, routing: FrontendRouting?, now: Int64, peer: SocketAddress? = nil, local: SocketAddress? = nil) {
        self.client = client
        self.bindName = bindName
        self.routing = routing
        self.now = now
        if let peer { sourceAddress = .some(peer) }
        (acceptedPeer, acceptedLocal) = (peer, local)
    }

    var connectionSource: SocketAddress? {
        if acceptedPeer == nil { acceptedPeer = try? Socket.peerAddress(client) }
        return acceptedPeer
    }

    /// What the client asked for: the address before NAT (`SO_ORIGINAL_DST`, as HAProxy reads it),
    /// else the bind's own address, else the socket's.
    var connectionDestination: SocketAddress? {
        if !originalDestinationRead {
            originalDestinationRead = true
            if let original = Socket.originalDestination(client) { acceptedLocal = original }
        }
        if acceptedLocal == nil { acceptedLocal = try? Socket.localAddress(client) }
        return acceptedLocal
    }
    @exclusivity(unchecked) private var originalDestinationRead = false

    var source: SocketAddress? {
        if let sourceAddress { return sourceAddress }
        let a = try? Socket.peerAddress(client)
        sourceAddress = .some(a)
        return a
    }

    var destination: SocketAddress? {
        if let destinationAddress { return destinationAddress }
        let a = connectionDestination
        destinationAddress = .some(a)
        return a
    }

    /// `source` as ACLs compare it, converted once (every `src` test and `src_*` key reads it).
    @exclusivity(unchecked) private var sourceIPCache: IPAddress??

    var sourceIP: IPAddress? {
        if let sourceIPCache { return sourceIPCache }
        let ip = source.flatMap { $0.isUnix ? nil : IPAddress($0) }  // a UNIX client has none, as in HAProxy
        sourceIPCache = .some(ip)
        return ip
    }

    /// The addresses a PROXY header carried (nil for `LOCAL`/`UNKNOWN`: the connection's own stay).
    func adopt(source: SocketAddress, destination: SocketAddress) {
        sourceAddress = .some(source)
        destinationAddress = .some(destination)
        sourceIPCache = nil
    }

    /// `set-src`, `set-dst`, `set-src-port`, `set-dst-port`, as HAProxy's: an address sample (an
    /// IP, a string holding one, an integer as an IPv4 address) replaces the address and keeps the
    /// port; an integer sample replaces the port (its low 16 bits). Anything else changes nothing.
    /// `ofConnection`: a `tcp-request connection` rule, which also changes the connection's own
    /// address (`fc_src`, `fc_dst`), as only it may in HAProxy.
    func replaceAddress(with sample: Sample, destination: Bool, portOnly: Bool, ofConnection: Bool) {
        guard let current = destination ? self.destination : source else { return }
        var ip = current.ip, port = current.port
        if portOnly {
            guard let number = sample.integer else { return }
            port = Int(number & 0xFFFF)
        } else {
            switch sample {
            case .ip(let address): ip = address.description
            case .string(let text): ip = String(decoding: text, as: UTF8.self)
            case .int(let v): ip = "\(v >> 24 & 0xFF).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
            case .bool, .binary: return
            }
        }
        guard let address = SocketAddress(ip: ip, port: port) else { return }
        if destination {
            destinationAddress = .some(address)
            if ofConnection { (acceptedLocal, originalDestinationRead) = (address, true) }
        } else {
            sourceAddress = .some(address)
            sourceIPCache = nil
            if ofConnection { acceptedPeer = address }
        }
    }

    /// `silent-drop`: closing the client's socket from now on sends it nothing (`CShims_silence`).
    func silence() { _ = CShims_silence(client) }

    func didTrack(_ table: StickTable) { countsBytes = countsBytes || table.countsBytes }

    /// Bytes moved for this session, for the tracked entries that count them.
    func addBytes(received: Int, sent: Int, now: Int64) {
        tracked.forEach { $0.with { $0.addBytes($1, received: received, sent: sent, now: now) } }
    }

    /// The session ended: tracked entries count one connection fewer.
    func release(now: Int64) {
        tracked.forEach { $0.with { $0.release($1, now: now) } }
        tracked.removeAll()
    }

    deinit { tracked.removeAll() }
}

/// The stick-table entries a session tracks (`track-sc0`, `-sc1`, `-sc2`), without an allocation
/// and without reference counting on reads: an entry is retained once when tracked and released by
/// `removeAll` (the session's end); its table lives as long as the routing that tracked it.
struct TrackedCounters {
    struct Entry {
        let tableReference: Unmanaged<StickTable>
        let handleReference: Unmanaged<StickTable.Handle>

        /// The table and the entry, borrowed for `body` (no reference counting: the routing holds
        /// the table, this session the entry).
        @inline(__always)
        func with<R>(_ body: (StickTable, StickTable.Handle) -> R) -> R {
            tableReference._withUnsafeGuaranteedRef { table in handleReference._withUnsafeGuaranteedRef { body(table, $0) } }
        }
    }
    private var slots: (Entry?, Entry?, Entry?) = (nil, nil, nil)

    subscript(slot: Int) -> Entry? { slot == 0 ? slots.0 : slot == 1 ? slots.1 : slots.2 }

    /// Counter `slot` now tracks `handle` of `table`.
    mutating func track(_ slot: Int, _ table: StickTable, _ handle: StickTable.Handle) {
        let entry = Entry(tableReference: .passUnretained(table), handleReference: .passRetained(handle))
        switch slot {
        case 0: slots.0 = entry
        case 1: slots.1 = entry
        default: slots.2 = entry
        }
    }

    func forEach(_ body: (Entry) -> Void) {
        if let e = slots.0 { body(e) }
        if let e = slots.1 { body(e) }
        if let e = slots.2 { body(e) }
    }

    /// Lets every entry go.
    mutating func removeAll() {
        forEach { $0.handleReference.release() }
        slots = (nil, nil, nil)
    }
}

/// A frontend's rules bound to the running balancer's backends and tables. Built at each
/// (re)load; shared by every reactor thread, immutable.
final class FrontendRouting: Sendable {
    let rules: RuleSet
    let frontendName: String
    /// `fe_name` and `be_name`, as samples.
    private let frontendNameBytes: [UInt8]
    /// Nil for a backend's `stick` rules (which choose no backend, and must not hold one: the
    /// backend holds them).
    let defaultBackend: BackendState?
    /// Whether `defaultBackend` is a `default_backend` (else the frontend's stand-in: `fe_defbe`
    /// then has no value, as in HAProxy).
    let namedDefault: Bool
    let backends: [String: BackendState]
    let tables: [String: StickTable]
    /// `proc` variables: the balancer's, shared by every frontend.
    let processVariables: ProcessVariables
    /// The balancer's frontends, for `fe_conn(<frontend>)`.
    let frontends: FrontendDirectory
    /// The rules compiled for evaluation, bound to the backends, servers and tables they name.
    private let program: RuleProgram

    /// `shaped: false` tests every ACL line the general way (the tests compare the two).
    init(rules: RuleSet, frontendName: String, defaultBackend: BackendState?, backends: [String: BackendState], tables: [String: StickTable],
         variables: ProcessVariables = ProcessVariables(), frontends: FrontendDirectory = FrontendDirectory(), namedDefault: Bool = true, shaped: Bool = true) {
        self.rules = rules
        self.namedDefault = namedDefault
        processVariables = variables
        self.frontends = frontends
        self.frontendName = frontendName
        frontendNameBytes = Array(frontendName.utf8)
        self.defaultBackend = defaultBackend
        self.backends = backends
        self.tables = tables
        program = RuleProgram(rules, defaultBackend: defaultBackend, backends: backends, tables: tables, shaped: shaped)
        variables.declare(program.assignments.map(\.name).filter { $0.scope == .proc })
    }

    enum Decision: Equatable {
        case accept
        case reject
        /// `silent-drop`: the client's socket is silenced; close it.
        case drop
        /// More bytes could change the outcome: wait for them or for the inspection delay.
        case wait
        /// `tcp-response content close`: reset the server's connection, deliver what it sent.
        case closeServer
    }

    /// `tcp-request connection` rules, at accept, with the connection's real addresses.
    func connectionRules(_ context: SessionContext) -> Decision {
        context.final = true
        return run(0, context)
    }

    /// `tcp-request session` rules, once the client's address is final (after a PROXY header).
    /// A session that passes them counts in its tracked entries' `sess_cnt`/`sess_rate`.
    func sessionRules(_ context: SessionContext) -> Decision {
        context.final = true
        let decision = rules.sessionRules.isEmpty ? .accept : run(1, context)
        if decision != .reject {
            context.tracked.forEach { $0.with { $0.countSession($1, now: context.now) } }
        }
        return decision
    }

    /// `tcp-request content` rules on the bytes so far (HAProxy's `tcp_inspect_request`): the first
    /// rule whose condition cannot be decided yet stops the evaluation, and the session waits.
    func contentRules(_ context: SessionContext) -> Decision { run(2, context) }

    /// A backend's `tcp-response content` rules on the server's data so far (HAProxy's
    /// `tcp_inspect_response`, evaluated as the request rules are: the first rule that cannot
    /// decide yet makes the session wait). The data are in `context.content` (`inspect(response:final:)`).
    func responseRules(_ context: SessionContext) -> Decision { run(3, context) }

    /// `stick store-response`, once the response rules accepted: the key of the first applicable
    /// rule per table, read from the server's data as final (HAProxy's `process_store_rules`),
    /// stored with `server` unless it is `non-stick`. Keys of `stick store-request` rules for the
    /// same table were stored at connect: both may stay, as in HAProxy.
    func storeResponse(_ context: SessionContext, server: ServerState) {
        context.final = true
        for (index, rule) in rules.stickRules.enumerated() where rule.response {
            let name = rule.table ?? rules.ownTable ?? ""
            guard let table = tables[name], !context.stickStores.contains(where: { $0.table === table }),
                  holds(program.stickConditions[index], context), case .value(let s, _) = sample(rule.key, context),
                  let key = StickKey(s, for: table.keyType) else { continue }
            context.stickStores.append((table, key))
        }
        storeSticky(context, server: server)
    }

    /// `use_backend` rules, with the data as it stands (HAProxy evaluates them as final): the first
    /// rule that matches and names an existing backend, else the default.
    func chooseBackend(_ context: SessionContext) -> BackendState {
        if program.switches.isEmpty, let defaultBackend { return defaultBackend }
        let wasFinal = context.final
        context.final = true
        defer { context.final = wasFinal }
        for index in program.switches.indices {
            let rule = program.switches[index]
            guard holds(rule.condition, context) else { continue }
            if let backend = rule.backend { return backend.takeUnretainedValue() }
            guard case .format(let parts) = rules.switching[index].target else { continue }
            if let backend = backends[name(parts, context)] { return backend }
        }
        guard let defaultBackend else { preconditionFailure("backend-side rules choose no backend") }
        return defaultBackend
    }

    /// A `%[…]` name, built from the session.
    private func name(_ parts: [SwitchRule.FormatPart], _ context: SessionContext) -> String {
        var name = ""
        for part in parts {
            switch part {
            case .text(let t): name += t
            case .sample(let e):
                if case .value(let s, _) = sample(e, context) { name += String(decoding: s.text, as: UTF8.self) }
            }
        }
        return name
    }

    // MARK: A backend's choice of server (`use-server`, `persist rdp-cookie`, `stick` rules)

    /// `use-server`: the server of the first rule that matches and names a server able to take the
    /// session (`ServerState.takesDirectSessions`), evaluated as final on the data the frontend
    /// inspected. A `%[…]` name that names no server ends the rules (HAProxy's rule), and the
    /// session goes on to `stick match` and the algorithm.
    /// `persistent` (`option persist`, `force-persist`): whatever the server's state.
    func directServer(_ context: SessionContext, in backend: BackendState, persistent: Bool) -> ServerState? {
        guard !program.serverConditions.isEmpty else { return nil }
        context.final = true
        for (index, rule) in rules.serverRules.enumerated() {
            guard holds(program.serverConditions[index], context) else { continue }
            switch rule.target {
            case .fixed(let name):
                if let server = backend.server(named: name), persistent || server.takesDirectSessions { return server }
            case .format(let parts):
                guard let server = backend.server(named: name(parts, context)) else { return nil }
                if persistent || server.takesDirectSessions { return server }
            }
        }
        return nil
    }

    /// `force-persist`: whether the first persistence rule that matches is one (HAProxy evaluates
    /// them as soon as the backend is known).
    func forcesPersistence(_ context: SessionContext) -> Bool {
        context.final = true
        for (index, rule) in rules.persistRules.enumerated() where holds(program.persistConditions[index], context) { return rule.force }
        return false
    }

    /// `stick match`: the server the first applicable rule's entry names, when it is usable.
    /// (HAProxy also sends persistent sessions to a draining server; Sluice's drain takes none.)
    func stickyServer(_ context: SessionContext, in backend: BackendState, persistent: Bool) -> ServerState? {
        context.final = true
        for (index, rule) in rules.stickRules.enumerated() where rule.matches {
            guard holds(program.stickConditions[index], context) else { continue }
            guard let table = tables[rule.table ?? rules.ownTable ?? ""], case .value(let s, _) = sample(rule.key, context),
                  let key = StickKey(s, for: table.keyType), let id = table.server(for: key, now: context.now) else { continue }
            if let server = backend.servers.first(where: { Int64($0.id) == id }), persistent || server.isUsable { return server }
        }
        return nil
    }

    /// `stick store-request` / `stick on`, when the session is routed: the key of the first
    /// applicable rule per table (as HAProxy), kept in the context until `storeSticky`.
    func captureStores(_ context: SessionContext) {
        context.final = true
        for (index, rule) in rules.stickRules.enumerated() where rule.stores && !rule.response {
            let name = rule.table ?? rules.ownTable ?? ""
            guard let table = tables[name], !context.stickStores.contains(where: { $0.table === table }),
                  holds(program.stickConditions[index], context), case .value(let s, _) = sample(rule.key, context),
                  let key = StickKey(s, for: table.keyType) else { continue }
            context.stickStores.append((table, key))
        }
    }

    /// Once connected: the captured keys now stick to `server`.
    func storeSticky(_ context: SessionContext, server: ServerState) {
        // `non-stick`: keys taken for a session of this server are dropped, as HAProxy's store rules do.
        if !server.configuration.nonStick {
            for (table, key) in context.stickStores { table.store(key, server: Int64(server.id), name: server.name, now: context.now) }
        }
        context.stickStores.removeAll()
    }

    private func run(_ stage: Int, _ context: SessionContext) -> Decision {
        let list = stage == 0 ? program.connectionRules : stage == 1 ? program.sessionRules : stage == 2 ? program.contentRules : program.responseRules
        // As HAProxy's `tcp_inspect_request`: every arrival runs the rules again from the first,
        // and actions before a rule that waits run again; only an action that yielded is resumed.
        var start = 0
        if stage == 2 && context.yieldedContentRule >= 0 {
            start = context.yieldedContentRule
            context.yieldedContentRule = -1
        }
        for index in start..<list.count {
            let rule = list[index]
            if rule.condition.count >= 0 && !(index == start && start > 0) {
                let verdict = evaluate(rule.condition, context)
                if verdict == .miss { return .wait }
                if (verdict == .pass) == rule.condition.unless { continue }
            }
            switch rule.action {
            case .accept: return .accept
            case .reject: return .reject
            case .closeServer: return .closeServer
            case .silentDrop:
                context.silence()
                return .drop
            case .expectProxy: context.expectsProxyHeader = true
            case .track(let slot, let key, let table):
                guard context.tracked[slot] == nil, let table else { continue }
                table._withUnsafeGuaranteedRef { track(slot, program.trackKeys[Int(key)], in: $0, context) }
            case .incrementGPC0(let slot):
                context.tracked[slot]?.with { $0.incrementGPC0($1, now: context.now) }
            case .setGPT0(let slot, let value):
                let key = program.trackKeys[Int(value)]
                guard let tracked = context.tracked[slot],
                      case .value(let sample, _) = fetch(key.fetch, converters: key.converters, context), let number = sample.integer else { continue }
                tracked.with { $0.setGPT0($1, number) }
            case .setAddress(let value, let destination, let portOnly):
                let key = program.trackKeys[Int(value)]
                guard case .value(let sample, _) = fetch(key.fetch, converters: key.converters, context) else { continue }
                context.replaceAddress(with: sample, destination: destination, portOnly: portOnly, ofConnection: stage == 0)
            case .capture(let i):
                if !capture(program.captures[Int(i)], context) {
                    context.yieldedContentRule = index
                    return .wait
                }
            case .setLogLevel(let level): context.logLevel = level < 0 ? -1 : level + 1
            case .setPriority(let value, let offset):
                let key = program.trackKeys[Int(value)]
                guard case .value(let sample, _) = fetch(key.fetch, converters: key.converters, context), let number = sample.integer else { continue }
                if offset { context.priority.setOffset(number) } else { context.priority.setClass(number) }
            case .setMark(let mark): _ = CShims_set_mark(context.client, mark)
            case .setTOS(let tos): _ = CShims_set_tos(context.client, tos)
            case .setVariable(let index): assign(program.assignments[Int(index)], stage: stage, context)
            case .unsetVariable(let index):
                let name = program.assignments[Int(index)].name
                guard Self.exists(name.scope, atStage: stage) else { continue }
                if name.scope == .proc { processVariables.unset(name) } else { context.variables.unset(name) }
            }
        }
        return .accept
    }

    /// `capture`: the sample as text, cut at the slot's length (HAProxy's `tcp_action_capture`);
    /// nothing when there is no sample. False when the sample could still change: the rule yields.
    private func capture(_ capture: RuleProgram.Capture, _ context: SessionContext) -> Bool {
        let bytes: [UInt8]
        switch fetch(capture.key.fetch, converters: capture.key.converters, context) {
        case .value(let s, let mayChange):
            if mayChange && !context.final { return false }
            bytes = s.text
        case .values(let list):
            guard let first = list.first else { return true }
            bytes = first.text
        case .none: return true
        }
        if context.captures.isEmpty { context.captures = Array(repeating: nil, count: rules.requestCaptures) }
        context.captures[capture.slot] = Array(bytes.prefix(capture.length))
        return true
    }

    /// Whether a variable scope exists when rules of `stage` run: at connection and session rules
    /// HAProxy has no stream yet, so only `proc` and `sess`; `check` only in health checks.
    private static func exists(_ scope: VariableName.Scope, atStage stage: Int) -> Bool {
        scope == .proc || scope == .sess || (stage >= 2 && scope != .check)
    }

    /// `set-var`/`set-var-fmt`: the value is evaluated on the data as they stand (HAProxy's
    /// SMP_OPT_FINAL); nothing is set when there is no sample.
    private func assign(_ assignment: RuleProgram.Assignment, stage: Int, _ context: SessionContext) {
        guard Self.exists(assignment.name.scope, atStage: stage) else { return }
        let value: Sample
        switch assignment.value {
        case .expression(let key):
            switch fetch(key.fetch, converters: key.converters, context) {
            case .value(let s, _): value = s
            case .values(let list):
                guard let first = list.first else { return }
                value = first
            case .none: return
            }
        case .format(let parts):
            value = .string(Array(name(parts, context).utf8))
        }
        if assignment.name.scope == .proc {
            processVariables.set(assignment.name, value, assignment.conditions)
        } else {
            context.variables.set(assignment.name, value, assignment.conditions)
        }
    }

    /// `track-sc<slot> <key>`: counter `slot` tracks the key's entry of `table`.
    private func track(_ slot: Int, _ key: RuleProgram.Key, in table: StickTable, _ context: SessionContext) {
        guard case .value(let s, _) = fetch(key.fetch, converters: key.converters, context), let k = StickKey(s, for: table.keyType),
              let handle = table.track(k, now: context.now) else { return }
        context.tracked.track(slot, table, handle)
        context.didTrack(table)
    }

    /// Whether a rule with this condition applies (one without a condition always does).
    private func holds(_ condition: RuleProgram.Condition, _ context: SessionContext) -> Bool {
        condition.count < 0 || (evaluate(condition, context) == .pass) != condition.unless
    }

    /// HAProxy's `acl_exec_cond`: alternatives ORed, terms ANDed, over three values.
    private func evaluate(_ condition: RuleProgram.Condition, _ context: SessionContext) -> Verdict {
        guard condition.count > 0 else { return .fail }
        var result = Verdict.fail
        var suite = Verdict.pass
        let first = Int(condition.start)
        for i in first..<(first + Int(condition.count)) {
            let term = program.terms[i]
            if term.startsAlternative && i > first {
                result = Verdict(raw: result.raw | suite.raw)
                if result == .pass { return .pass }
                suite = .pass
            } else if suite == .fail {
                continue  // this alternative has failed: on to the next one
            }
            let v = test(term.acl, context)
            suite = Verdict(raw: suite.raw & (term.negated ? v.negated : v).raw)
        }
        return Verdict(raw: result.raw | suite.raw)
    }

    /// Every ACL's verdict for this context, in declaration order (for the tests).
    func verdicts(_ context: SessionContext) -> [Verdict] { program.acls.indices.map { test($0, context) } }

    /// One ACL: its lines ORed; a line whose sample may still change is a miss, not a fail.
    private func test(_ acl: Int, _ context: SessionContext) -> Verdict {
        let range = program.acls[acl]
        var result = Verdict.fail
        for k in Int(range.start)..<Int(range.start + range.count) {
            let line = program.lines[k]
            // Values that cannot change, compared without a `Sample` (`RuleProgram.Shape`).
            switch line.shape {
            case .integer:
                guard let v = integer(line.fetch, context) else { continue }
                if line.patterns._withUnsafeGuaranteedRef({ $0.matches(integer: v) }) { return .pass }
                continue
            case .address:
                let address: IPAddress?
                if case .simple(.src) = line.fetch { address = context.sourceIP } else { address = context.destination.flatMap { $0.isUnix ? nil : IPAddress($0) } }
                guard let address else { continue }
                if line.patterns._withUnsafeGuaranteedRef({ $0.matches(address: address) }) { return .pass }
                continue
            case .name:
                let name: [UInt8]?
                if case .simple(.name) = line.fetch { name = frontendNameBytes } else { name = context.bindName }
                guard let name else { continue }
                if line.patterns._withUnsafeGuaranteedRef({ $0.matches(bytes: name) }) { return .pass }
                continue
            case .general:
                break
            }
            switch fetch(line.fetch, converters: line.converters, context) {
            case .none(let mayChange):
                if mayChange && !context.final { result = Verdict(raw: result.raw | Verdict.miss.raw) }
            case .value(let s, let mayChange):
                if line.patterns._withUnsafeGuaranteedRef({ $0.matches(s) }) { return .pass }
                if mayChange && !context.final { result = Verdict(raw: result.raw | Verdict.miss.raw) }
            case .values(let list):
                if line.patterns._withUnsafeGuaranteedRef({ patterns in list.contains(where: patterns.matches) }) { return .pass }
            }
        }
        return result
    }

    // MARK: Fetching

    enum Fetched {
        case none(mayChange: Bool)
        case value(Sample, mayChange: Bool)
        /// Several values (ALPN names); the ACL matches if any does.
        case values([Sample])
    }

    func sample(_ expression: SampleExpression, _ context: SessionContext) -> Fetched {
        let fetched = fetch(expression.fetch, context)
        return expression.converters.isEmpty ? fetched : convert(fetched, expression.converters)
    }

    private func convert(_ fetched: Fetched, _ converters: [Converter]) -> Fetched {
        // `settled`: a converter that judges whether the data are complete (the MQTT ones) decided
        // it, as HAProxy's clear `SMP_F_MAY_CHANGE` and set it only when they need more.
        func apply(_ s: Sample) -> (Converter.Outcome, settled: Bool) {
            var value = s
            var settled = false
            for converter in converters {
                let outcome = converter.apply(value)
                settled = settled || converter.judgesCompleteness
                guard case .value(let next) = outcome else { return (outcome, settled) }
                value = next
            }
            return (.value(value), settled)
        }
        switch fetched {
        case .none: return fetched
        case .value(let s, let m):
            let (outcome, settled) = apply(s)
            switch outcome {
            case .value(let v): return .value(v, mayChange: m && !settled)
            case .none: return .none(mayChange: m && !settled)
            case .needsMore: return .none(mayChange: true)
            }
        case .values(let list): return .values(list.compactMap { if case .value(let v) = apply($0).0 { v } else { nil } })
        }
    }

    /// A compiled operand's sample, through its converters (`converterLists[converters]`, -1: none).
    private func fetch(_ operand: RuleProgram.Operand, converters: Int32, _ c: SessionContext) -> Fetched {
        let fetched = fetch(operand, c)
        return converters < 0 ? fetched : convert(fetched, program.converterLists[Int(converters)])
    }

    /// The objects an operand names are borrowed, not retained: the program keeps them alive.
    private func fetch(_ operand: RuleProgram.Operand, _ c: SessionContext) -> Fetched {
        let absent = Fetched.none(mayChange: false)
        switch operand {
        case .simple(let simple): return fetch(simple, c)
        case .trackedCounter(let slot, let data): return trackedCounter(slot, data, c)
        case .direct(let index): return fetch(program.fetches[Int(index)], c)
        case .backendLoad(let load, let backend): return backend.map { b in .value(.int(b._withUnsafeGuaranteedRef { $0.load(load) }), mayChange: false) } ?? absent
        case .serverIsUp(let server): return server.map { .value(.bool($0._withUnsafeGuaranteedRef(serverIsUp)), mayChange: false) } ?? absent
        case .sourceCounter(let table, let data): return table?._withUnsafeGuaranteedRef { sourceCounter($0, data, c) } ?? absent
        case .trackedKeyCounter(let slot, let table, let data):
            guard let table else { return absent }
            return table._withUnsafeGuaranteedRef { trackedKeyCounter(slot, $0, data, c) }
        }
    }

    /// An integer-valued operand (`RuleProgram.Shape.integer`) as `-m int` reads it (booleans as 0
    /// and 1); nil for no value.
    private func integer(_ operand: RuleProgram.Operand, _ c: SessionContext) -> Int64? {
        switch operand {
        case .simple(.srcPort): return c.source.flatMap { $0.isUnix ? nil : Int64($0.port) }
        case .simple(.dstPort): return c.destination.flatMap { $0.isUnix ? nil : Int64($0.port) }
        case .trackedCounter(let slot, let data):
            guard let tracked = c.tracked[slot] else { return data == .tracked ? 0 : nil }
            return tracked.with { $0.read($1, data, now: c.now) }.map { data == .tracked ? 1 : $0 }
        case .backendLoad(let load, let backend): return backend?._withUnsafeGuaranteedRef { $0.load(load) }
        case .serverIsUp(let server): return server?._withUnsafeGuaranteedRef { serverIsUp($0) ? 1 : 0 }
        default: return nil
        }
    }


    private func serverIsUp(_ server: ServerState) -> Bool { server.admin != .maintenance && server.operational.isUp }

    private func sourceCounter(_ table: StickTable, _ data: StickData, _ c: SessionContext) -> Fetched {
        guard let address = c.sourceIP, let key = StickKey(.ip(address), for: table.keyType) else { return .none(mayChange: false) }
        return table.read(key, data, now: c.now).map { .value(.int($0), mayChange: false) } ?? .none(mayChange: false)
    }

    private func trackedKeyCounter(_ slot: Int, _ table: StickTable, _ data: StickData, _ c: SessionContext) -> Fetched {
        guard let entry = c.tracked[slot] else {
            return data == .tracked ? .value(.bool(false), mayChange: false) : .none(mayChange: false)
        }
        if data == .tracked { return .value(.bool(true), mayChange: false) }
        return entry.with { _, handle in table.read(handle.key, data, now: c.now) }.map { .value(.int($0), mayChange: false) } ?? .none(mayChange: false)
    }

    private func fetch(_ fetch: Fetch, _ c: SessionContext) -> Fetched {
        let waiting = !c.final
        switch fetch {
        case .src, .srcPort, .dst, .dstPort, .bindName, .frontendName, .backendName, .alwaysTrue, .alwaysFalse, .waitEnd, .requestLength,
             .tlsServerName, .tlsProtocols, .tlsVersion, .tlsHelloType, .looksLikeHTTP:
            return self.fetch(RuleProgram.Simple(fetch)!, c)
        case .tlsOffersCurves, .tlsSessionTicket:
            switch c.clientHello() {
            case .value(let hello) where hello.hasExtensions:
                if fetch == .tlsSessionTicket { return .value(.int(hello.sessionTicketLength.map { $0 > 0 ? 2 : 1 } ?? 0), mayChange: false) }
                return hello.offersCurves ? .value(.bool(true), mayChange: false) : .none(mayChange: false)
            case .incomplete: return .none(mayChange: waiting)
            default: return .none(mayChange: false)
            }
        case .constant(let value):
            return value.map { .value($0.sample, mayChange: false) } ?? .none(mayChange: false)
        case .backendLoad, .serverIsUp, .counter(.source, _), .counter(.tracked(_, _?), _):
            // Outside ACLs (a `%[…]` backend name, a stick key): looked up now.
            return self.fetch(RuleProgram.named(fetch, rules, defaultBackend: defaultBackend, backends: backends, tables: tables)!, c)
        case .payload(let offset, let length):
            let data = c.content
            if length == 0 {
                guard offset <= data.count else { return .none(mayChange: waiting) }
                return .value(.binary(Array(data[offset...])), mayChange: waiting)
            }
            guard offset + length <= data.count else { return .none(mayChange: waiting) }
            return .value(.binary(Array(data[offset..<(offset + length)])), mayChange: false)
        case .payloadLengthValue(let offset, let length, let dataOffset, let relative):
            let data = c.content
            guard offset + length <= data.count else { return .none(mayChange: waiting) }
            let size = data[offset..<(offset + length)].reduce(0) { $0 << 8 | Int($1) }
            let start = dataOffset.map { relative ? offset + length + $0 : $0 } ?? offset + length
            // HAProxy's `smp_fetch_payload_lv`: an empty block "will never match" (no sample).
            guard start >= 0, size > 0, size <= 65_536 else { return .none(mayChange: false) }
            guard start + size <= data.count else { return .none(mayChange: waiting) }
            return .value(.binary(Array(data[start..<(start + size)])), mayChange: false)
        case .counter(.tracked(let slot, nil), let data): return trackedCounter(slot, data, c)
        case .session(let fetch): return sample(fetch, c).map { .value($0, mayChange: false) } ?? .none(mayChange: false)
        case .response(let inner), .anyDirection(let inner):
            return self.fetch(inner, c)  // the data of the direction inspected, as HAProxy's payload fetches
        case .capturedRequest(let slot):
            guard slot < c.captures.count, let bytes = c.captures[slot] else { return .none(mayChange: false) }
            return .value(.string(bytes), mayChange: false)
        case .variable(let name, let fallback):
            let value = name.scope == .proc ? processVariables[name] : name.scope == .check ? nil : c.variables[name]
            return (value ?? fallback.map(Sample.string)).map { .value($0, mayChange: false) } ?? .none(mayChange: false)
        case .rdpCookie(let name), .rdpCookieCount(let name):
            let outcome = RDPCookie.find(c.content, name: name.map { Array($0.utf8) })
            if case .rdpCookieCount = fetch {
                if outcome == .incomplete && waiting { return .none(mayChange: true) }
                if case .value = outcome { return .value(.int(1), mayChange: false) }
                return .value(.int(0), mayChange: false)
            }
            switch outcome {
            case .value(let range): return .value(.string(Array(c.content[range])), mayChange: false)
            case .none: return .none(mayChange: false)
            case .incomplete: return .none(mayChange: waiting)
            }
        }
    }

    private func fetch(_ fetch: RuleProgram.Simple, _ c: SessionContext) -> Fetched {
        let waiting = !c.final
        func outcome<T>(_ o: TLSInspection.Outcome<T>, _ make: (T) -> Sample) -> Fetched {
            switch o {
            case .value(let v): .value(make(v), mayChange: false)
            case .none: .none(mayChange: false)
            case .incomplete: .none(mayChange: waiting)
            }
        }
        switch fetch {
        case .src: return c.sourceIP.map { .value(.ip($0), mayChange: false) } ?? .none(mayChange: false)
        // UNIX sockets have no IP or port: no sample, as HAProxy's `smp_fetch_src`/`smp_fetch_sport`.
        case .srcPort: return c.source.flatMap { $0.isUnix ? nil : .value(.int(Int64($0.port)), mayChange: false) } ?? .none(mayChange: false)
        case .dst: return c.destination.flatMap { $0.isUnix ? nil : .value(.ip(IPAddress($0)), mayChange: false) } ?? .none(mayChange: false)
        case .dstPort: return c.destination.flatMap { $0.isUnix ? nil : .value(.int(Int64($0.port)), mayChange: false) } ?? .none(mayChange: false)
        case .bindName: return c.bindName.map { .value(.string($0), mayChange: false) } ?? .none(mayChange: false)
        // Before switching, HAProxy's session backend is the frontend itself (a listen is both).
        case .name: return .value(.string(frontendNameBytes), mayChange: false)
        case .alwaysTrue: return .value(.bool(true), mayChange: false)
        case .alwaysFalse: return .value(.bool(false), mayChange: false)
        case .waitEnd: return c.final ? .value(.bool(true), mayChange: false) : .none(mayChange: true)
        case .requestLength: return .value(.int(Int64(c.content.count)), mayChange: waiting)
        case .tlsServerName, .tlsProtocols:
            switch c.clientHello() {
            case .value(let hello):
                if fetch == .tlsServerName { return hello.serverName.map { .value(.string($0), mayChange: false) } ?? .none(mayChange: false) }
                return hello.protocols.isEmpty ? .none(mayChange: false) : .values(hello.protocols.map { .string($0) })
            case .none: return .none(mayChange: false)
            case .incomplete: return .none(mayChange: waiting)
            }
        case .tlsVersion: return outcome(TLSInspection.version(c.content)) { .int($0) }
        case .tlsHelloType: return outcome(TLSInspection.helloType(c.content)) { .int($0) }
        case .looksLikeHTTP: return outcome(HTTPInspection.request(c.content)) { .bool($0) }
        }
    }

    /// `sc<n>_<data>` in the counter's own table.
    private func trackedCounter(_ slot: Int, _ data: StickData, _ c: SessionContext) -> Fetched {
        guard let tracked = c.tracked[slot] else {
            return data == .tracked ? .value(.bool(false), mayChange: false) : .none(mayChange: false)
        }
        return tracked.with { $0.read($1, data, now: c.now) }.map { .value(data == .tracked ? .bool(true) : .int($0), mayChange: false) } ?? .none(mayChange: false)
    }
}

/// `req.proto_http`: whether the bytes so far are an HTTP/1 request whose head is complete.
enum HTTPInspection {
    static func request(_ data: UnsafeRawBufferPointer) -> TLSInspection.Outcome<Bool> {
        // Request line: method SP target SP HTTP/d.d CRLF.
        let tchar: (UInt8) -> Bool = { b in
            (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7A) || "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
        var i = 0
        while i < data.count && tchar(data[i]) { i += 1 }
        guard i < data.count else { return .incomplete }
        guard i > 0, data[i] == 0x20 else { return .value(false) }
        i += 1
        let targetStart = i
        while i < data.count && data[i] > 0x20 && data[i] != 0x7F { i += 1 }
        guard i < data.count else { return .incomplete }
        guard i > targetStart, data[i] == 0x20 else { return .value(false) }
        i += 1
        let version = Array("HTTP/".utf8)
        for (k, b) in version.enumerated() {
            guard i + k < data.count else { return .incomplete }
            guard data[i + k] == b else { return .value(false) }
        }
        i += version.count
        for expected in ["d", ".", "d", "\r", "\n"] {
            guard i < data.count else { return .incomplete }
            let b = data[i]
            let ok = expected == "d" ? (b >= 0x30 && b <= 0x39) : b == expected.utf8.first
            guard ok else { return .value(false) }
            i += 1
        }
        // Headers, up to the empty line.
        var lineStart = i
        while i < data.count {
            if data[i] == 0x0A {
                let line = i - lineStart
                if line == 1 && data[lineStart] == 0x0D { return .value(true) }
                guard line >= 2, data[i - 1] == 0x0D else { return .value(false) }
                lineStart = i + 1
            }
            i += 1
        }
        return data.count >= 16_384 ? .value(false) : .incomplete
    }
}

/// What a new session of a frontend pays for its rules, run in-process for the micro-benchmarks:
/// connection and session rules, `use_backend`, and the end of the session (releasing what it
/// tracked), for a client at `source` reaching `destination`.
@_spi(Benchmarks) public struct RouteProbe {
    let frontend: FrontendState
    let routing: FrontendRouting
    let peer: SocketAddress
    let local: SocketAddress

    /// A probe of `frontend`'s rules for a client at `source:port` reaching `destinationPort`; nil without such a frontend or rules.
    public init?(_ balancer: LoadBalancer, frontend name: String, source: String, port: Int, destinationPort: Int) {
        guard let frontend = balancer.frontendState(named: name), let routing = frontend.current.routing,
              let peer = SocketAddress(ip: source, port: port), let local = SocketAddress(ip: "127.0.0.1", port: destinationPort) else { return nil }
        (self.frontend, self.routing, self.peer, self.local) = (frontend, routing, peer, local)
    }

    /// The chosen backend's name, or nil when the session is rejected.
    public func run() -> String? {
        let context = SessionContext(client: -1, bindName: nil, routing: routing, now: monotonicMilliseconds(), peer: peer, local: local)
        defer { context.release(now: context.now) }
        guard case .proceed(let backend) = context.start(acceptProxy: false, fallback: frontend.current.backend) else { return nil }
        return backend.name
    }
}

extension BackendSettings {
    /// The server a backend's own rules give a session, in HAProxy's order: `use-server`, then
    /// `persist rdp-cookie` (both assign it outright: `direct`), then `stick match`. Nil: the
    /// algorithm chooses. With `option persist` or a matching `force-persist` the server is taken
    /// whatever its state (`persistent`: assigned outright, DOWN or in maintenance); `forced`: by
    /// `force-persist`, which also forbids redispatching it (HAProxy's `SF_FORCE_PRST`).
    func ruleTarget(_ context: SessionContext?, in backend: BackendState) -> (server: ServerState, direct: Bool, persistent: Bool, forced: Bool)? {
        guard let context else { return nil }
        serverRules?.captureStores(context)
        let forced = serverRules?.forcesPersistence(context) ?? false
        let persistent = persist || forced
        if let server = serverRules?.directServer(context, in: backend, persistent: persistent) { return (server, true, persistent, forced) }
        // `persist rdp-cookie` follows `option persist` only, as HAProxy's `tcp_persist_rdp_cookie`.
        if let cookie = rdpPersistence, let token = RDPCookie.routingToken(context.content, name: cookie),
           let server = backend.servers.first(where: { $0.address.ip == token.ip && $0.address.port == token.port && (persist || $0.takesDirectSessions) }) {
            return (server, true, persist, forced)
        }
        return serverRules?.stickyServer(context, in: backend, persistent: persistent).map { ($0, persistent, persistent, forced) }
    }
}
