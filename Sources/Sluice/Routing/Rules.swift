/// One ACL line: a sample expression compared with its patterns.
struct ACLTest: Sendable {
    var expression: SampleExpression
    var patterns: PatternSet
}

/// A condition (`if`/`unless` …), in HAProxy's disjunctive form: alternatives separated by `||`
/// (or `or`), each a conjunction of possibly negated ACLs. ACLs are indices into the rule set's
/// `acls` (several lines with one name are one ACL whose tests are ORed). Kept as one flat array
/// of terms, each marking whether it starts an alternative: evaluating a condition walks one
/// contiguous array.
struct Condition: Sendable {
    struct Term: Sendable, Equatable {
        var negated: Bool
        var acl: Int
        /// The first term of an alternative (after `||`).
        var startsAlternative = false

        init(negated: Bool, acl: Int) {
            self.negated = negated
            self.acl = acl
        }
    }

    var unless = false
    private(set) var terms: [Term] = []

    init(unless: Bool = false) { self.unless = unless }

    /// The alternatives, each a list of terms.
    var alternatives: [[Term]] {
        get {
            var out: [[Term]] = []
            for term in terms {
                if term.startsAlternative || out.isEmpty { out.append([]) }
                out[out.count - 1].append(term)
            }
            return out
        }
        set {
            terms = newValue.flatMap { alternative in
                alternative.enumerated().map { i, term in
                    var t = term
                    t.startsAlternative = i == 0
                    return t
                }
            }
        }
    }
}

/// HAProxy's three-valued ACL result: a test that may change with more data is a "miss", which
/// makes content inspection wait instead of deciding on partial bytes. Encoded so that AND is `&`
/// and OR is `|`, as in HAProxy.
struct Verdict: Equatable {
    let raw: UInt8
    static let fail = Verdict(raw: 0)
    static let miss = Verdict(raw: 1)
    static let pass = Verdict(raw: 3)

    var negated: Verdict { self == .miss ? .miss : (self == .pass ? .fail : .pass) }
}

/// `tcp-request connection|session|content` and `tcp-response content <action> [if|unless <condition>]`.
struct TCPRule: Sendable {
    enum Action: Sendable {
        case accept
        case reject
        /// `tcp-response content close`: the server's connection is reset now; what it sent so far
        /// still reaches the client, then the session ends (HAProxy's ACT_TCP_CLOSE).
        case closeServer
        /// `track-sc<slot> <key> [table <t>]` (the proxy's own table when nil).
        case track(slot: Int, key: SampleExpression, table: String?)
        /// `sc-inc-gpc0(<slot>)`.
        case incrementGPC0(slot: Int)
        /// `sc-set-gpt0(<slot>) <int>|<expr>`.
        case setGPT0(slot: Int, value: SampleExpression)
        /// `set-src`, `set-dst` (the address, the port kept), `set-src-port`, `set-dst-port`: what
        /// later rules, the log and `send-proxy` see of the client's addresses.
        case setAddress(SampleExpression, destination: Bool, portOnly: Bool)
        /// `expect-proxy layer4`: read a PROXY-protocol header before anything else.
        case expectProxy
        /// `silent-drop`: the client's connection disappears without a FIN or a reset.
        case silentDrop
        /// `set-mark <mark>`: the netfilter mark of the packets sent to the client.
        case setMark(UInt32)
        /// `set-tos <tos>`: the TOS (DSCP) field of the packets sent to the client.
        case setTOS(Int32)
        /// `set-var(<name>[,<cond>…]) <expr>` and `set-var-fmt(…) <format>`.
        case setVariable(VariableName, VariableConditions, VariableValue)
        /// `unset-var(<name>)`.
        case unsetVariable(VariableName)
        /// `capture <sample> len <n>`: the sample as text, cut at `length` bytes, in request capture
        /// slot `slot` (for `%hr`, `%hrl` and `capture.req.hdr(<slot>)`).
        case capture(SampleExpression, length: Int, slot: Int)
        /// `set-log-level <level>|silent`: the session's log line at that syslog level (0–7), or
        /// none (nil).
        case setLogLevel(Int?)
        /// `set-priority-class <expr>` / `set-priority-offset <expr>`: where the session waits if
        /// it must queue (HAProxy's queue order: class first, then arrival time plus offset).
        case setPriority(SampleExpression, offset: Bool)
    }

    /// What `set-var` stores: a sample expression, or (`set-var-fmt`) text with `%[…]` samples.
    enum VariableValue: Sendable {
        case expression(SampleExpression)
        case format([SwitchRule.FormatPart])
    }

    var action: Action
    var condition: Condition?
}

extension TCPRule.Action {
    /// Whether the action reads the client's data (and so may wait for it).
    var readsContent: Bool {
        switch self {
        case .track(_, let e, _), .setGPT0(_, let e), .capture(let e, _, _), .setVariable(_, _, .expression(let e)), .setAddress(let e, _, _):
            e.fetch.readsContent
        case .setVariable(_, _, .format(let parts)): parts.contains { if case .sample(let e) = $0 { e.fetch.readsContent } else { false } }
        default: false
        }
    }
}

/// `stick match|on|store-request|store-response <expr> [table <t>] [if|unless <cond>]` in a
/// backend: persistence.
struct StickRule: Sendable {
    /// `match` looks the key up before a server is chosen; `store` saves the chosen server once
    /// connected; `stick on` is both.
    var matches: Bool
    var stores: Bool
    /// `store-response`: the key is taken from the server's data, once `tcp-response` rules accept it.
    var response = false
    var key: SampleExpression
    var table: String?
    var condition: Condition?
}

/// `use_backend <name> [if|unless <condition>]`; the name may be a `%[fetch]` format.
struct SwitchRule: Sendable {
    enum Target: Sendable {
        case fixed(String)
        /// Literal text and samples, concatenated (`be_%[req.ssl_sni,lower]`).
        case format([FormatPart])
    }

    enum FormatPart: Sendable {
        case text(String)
        case sample(SampleExpression)
    }

    var target: Target
    var condition: Condition?
}

/// `use-server <name> if|unless <condition>` in a backend: the server a matching session goes
/// to, before `stick match` and the algorithm; the name may be a `%[fetch]` format.
struct ServerRule: Sendable {
    var target: SwitchRule.Target
    var condition: Condition?
}

/// `force-persist` / `ignore-persist {if|unless} <condition>` in a backend.
struct PersistRule: Sendable {
    var force: Bool
    var condition: Condition?
}

/// A frontend's routing: its ACLs, `tcp-request` rules, inspection delay and `use_backend` rules.
/// Immutable once parsed; compared by identity (a reload builds a new one).
public final class RuleSet: Hashable, Sendable, CustomStringConvertible {
    let acls: [[ACLTest]]
    let aclNames: [String]
    let connectionRules: [TCPRule]
    /// `tcp-request session`: after the PROXY header, before content.
    let sessionRules: [TCPRule]
    let contentRules: [TCPRule]
    /// `tcp-request inspect-delay`, in milliseconds (0: decide at once).
    let inspectDelayMs: Int64
    /// `tcp-response content`, for the backend side of the proxy.
    let responseRules: [TCPRule]
    /// `tcp-response inspect-delay`, in milliseconds (0: decide on what has arrived).
    let responseInspectDelayMs: Int64
    /// A backend inspects what its servers send: `tcp-response content` or `stick store-response`.
    let inspectsResponses: Bool
    let switching: [SwitchRule]
    /// `stick` rules, for the backend side of the proxy.
    let stickRules: [StickRule]
    /// `use-server` rules, for the backend side of the proxy.
    let serverRules: [ServerRule]
    /// `force-persist` / `ignore-persist` rules, for the backend side of the proxy.
    let persistRules: [PersistRule]
    /// The table of this proxy (`stick-table` in the frontend itself), for `track-sc` and `src_*`
    /// without a `table` argument.
    let ownTable: String?
    /// Request capture slots (`declare capture request` and `tcp-request content capture` lines).
    let requestCaptures: Int

    init(acls: [[ACLTest]], aclNames: [String], connectionRules: [TCPRule], sessionRules: [TCPRule], contentRules: [TCPRule], inspectDelayMs: Int64,
         switching: [SwitchRule], stickRules: [StickRule] = [], serverRules: [ServerRule] = [], persistRules: [PersistRule] = [],
         ownTable: String?, requestCaptures: Int = 0, responseRules: [TCPRule] = [], responseInspectDelayMs: Int64 = 0) {
        self.responseRules = responseRules
        self.responseInspectDelayMs = responseInspectDelayMs
        inspectsResponses = !responseRules.isEmpty || stickRules.contains(where: \.response)
        self.acls = acls
        self.aclNames = aclNames
        self.connectionRules = connectionRules
        self.sessionRules = sessionRules
        self.contentRules = contentRules
        self.inspectDelayMs = inspectDelayMs
        self.switching = switching
        self.stickRules = stickRules
        self.serverRules = serverRules
        self.persistRules = persistRules
        self.ownTable = ownTable
        self.requestCaptures = requestCaptures
    }


    /// No rules: for evaluating one expression (`balance hash`).
    static let empty = RuleSet(acls: [], aclNames: [], connectionRules: [], sessionRules: [], contentRules: [], inspectDelayMs: 0, switching: [], ownTable: nil)

    public static func == (a: RuleSet, b: RuleSet) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }

    /// How many ACLs and rules of each kind.
    public var description: String {
        "\(aclNames.count) ACL(s), \(connectionRules.count) connection, \(sessionRules.count) session and \(contentRules.count) content rule(s), \(switching.count) use_backend rule(s), \(responseRules.count) response rule(s)"
    }
}
