#if canImport(Glibc)
import Glibc
#endif

/// What a proxy's `acl`, `tcp-request`, `use_backend` and `stick-table` lines accumulate; turned
/// into a `RuleSet` once every line is read (ACL names resolve then, as several lines may add to
/// one ACL).
struct RoutingDraft {
    struct ConditionDraft {
        var unless = false
        var alternatives: [[(negated: Bool, name: String)]] = []
        var location: SourceLocation
    }

    struct RuleDraft {
        var action: TCPRule.Action
        var condition: ConditionDraft?
        var location: SourceLocation
    }

    struct SwitchDraft {
        var target: SwitchRule.Target
        var condition: ConditionDraft?
        var location: SourceLocation
    }

    struct StickDraft {
        var rule: StickRule
        var condition: ConditionDraft?
        var location: SourceLocation
    }

    var acls: [String: [ACLTest]] = [:]
    /// Every ACL line's fetch where it was written, checked whether or not a rule uses it (as
    /// HAProxy checks the arguments of every ACL).
    var aclFetches: [(fetch: Fetch, location: SourceLocation, keyword: String)] = []
    var stickRules: [StickDraft] = []
    var anonymousCount = 0
    var connectionRules: [RuleDraft] = []
    var sessionRules: [RuleDraft] = []
    var contentRules: [RuleDraft] = []
    var switching: [SwitchDraft] = []
    /// `use-server` rules (the target is a server of this proxy).
    var serverRules: [SwitchDraft] = []
    /// `force-persist` (true) and `ignore-persist` (false) rules, in order.
    var persistRules: [(force: Bool, condition: ConditionDraft, location: SourceLocation)] = []
    var inspectDelay: Duration?
    /// `tcp-response content` rules and `tcp-response inspect-delay`.
    var responseRules: [RuleDraft] = []
    var responseInspectDelay: Duration?
    var stickTable: (StickTableSpec, SourceLocation)?
    /// Request capture slots so far: `declare capture request` and `tcp-request content capture`
    /// each take the next one, in order (HAProxy's `nb_req_cap`).
    var requestCaptures = 0

    var isEmpty: Bool {
        acls.isEmpty && connectionRules.isEmpty && sessionRules.isEmpty && contentRules.isEmpty && switching.isEmpty && stickRules.isEmpty
            && serverRules.isEmpty && persistRules.isEmpty && requestCaptures == 0 && responseRules.isEmpty
    }

    mutating func addACL(_ name: String, _ test: ACLTest, _ location: SourceLocation, keyword: String) {
        acls[name, default: []].append(test)
        aclFetches.append((test.expression.fetch, location, keyword))
    }
}

/// HAProxy's predefined ACLs that mean something at Layer 4 (section 7.4).
enum PredefinedACL {
    static func test(_ name: String) -> ACLTest? {
        func make(_ fetch: Fetch, _ method: MatchMethod, _ patterns: [String]) -> ACLTest {
            var b = PatternSet.Builder(method: method)
            for p in patterns { _ = b.add(p, ignoreCase: false) }
            return ACLTest(expression: SampleExpression(fetch: fetch), patterns: PatternSet(b))
        }
        switch name {
        case "TRUE": return make(.alwaysTrue, .bool, [])
        case "FALSE": return make(.alwaysFalse, .bool, [])
        case "LOCALHOST": return make(.src, .ip, ["127.0.0.1/8", "::1"])
        case "REQ_CONTENT": return make(.requestLength, .int, ["gt", "0"])
        case "WAIT_END": return make(.waitEnd, .bool, [])
        case "HTTP": return make(.looksLikeHTTP, .bool, [])
        case "RDP_COOKIE": return make(.rdpCookieCount(name: nil), .int, ["gt", "0"])
        default: return nil
        }
    }

    static let needHTTP: Set<String> = ["HTTP_1.0", "HTTP_1.1", "HTTP_2.0", "HTTP_CONTENT", "HTTP_URL_ABS", "HTTP_URL_SLASH", "HTTP_URL_STAR",
                                        "METH_CONNECT", "METH_DELETE", "METH_GET", "METH_HEAD", "METH_OPTIONS", "METH_POST", "METH_PUT",
                                        "METH_TRACE"]
}

extension Parser {
    // MARK: acl

    mutating func aclKeyword(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        guard words.count >= 3 else {
            error(location, keyword: "acl", "missing argument: expected 'acl <name> <criterion> [flags] [operator] [<value>] ...'")
            return
        }
        let name = words[1]
        if let bad = Parser.invalidNameCharacter(name) {
            error(location, keyword: "acl", "name '\(name)' has the character '\(bad)'; use letters, digits, '-', '_', '.' and ':'")
            return
        }
        if let test = aclTest(Array(words.dropFirst(2)), location) { proxy.routing.addACL(name, test, location, keyword: "acl") }
    }

    /// `<criterion> [flags] [operator] [<value>] ...`, as in an `acl` line or between braces.
    mutating func aclTest(_ words: [String], _ location: SourceLocation) -> ACLTest? {
        var expression: SampleExpression
        switch SampleExpression.parse(words[0], readFile: readFile) {
        case .failure(let e): error(location, keyword: "acl", e.message); return nil
        case .success(let e): expression = e
        }
        // HAProxy's ACL keywords `payload` and `payload_lv` are `req.payload`'s and `req.payload_lv`'s aliases.
        if case .anyDirection(let request) = expression.fetch { expression.fetch = request }
        var method: MatchMethod? = expression.converters.last?.defaultMatch ?? expression.fetch.defaultMatch
        if case .payload = expression.fetch.base, expression.converters.isEmpty { method = .bin }
        if case .payloadLengthValue = expression.fetch.base, expression.converters.isEmpty { method = .bin }
        var ignoreCase = false
        var files: [(String, Bool)] = []
        var i = 1
        flags: while i < words.count, words[i].hasPrefix("-") {
            switch words[i] {
            case "-i": ignoreCase = true
            case "-n": break  // Sluice never resolves names in patterns
            case "--": i += 1; break flags
            case "-m", "-f", "-u":
                guard i + 1 < words.count else {
                    error(location, keyword: "acl", "'\(words[i])' needs a value")
                    return nil
                }
                if words[i] == "-m" {
                    guard let m = MatchMethod(rawValue: words[i + 1]) else {
                        error(location, keyword: "acl", "unknown match method '-m \(words[i + 1])' (found, bool, int, ip, bin, len, str, sub, reg, beg, end, dir, dom)")
                        return nil
                    }
                    method = m
                } else if words[i] == "-f" {
                    files.append((words[i + 1], ignoreCase))
                }
                i += 1
            case "-M":
                error(location, keyword: "acl", "'-M' (map files) is not supported")
                return nil
            default:
                // HAProxy's rule, negative numbers included: `-- -1`.
                error(location, keyword: "acl", "'\(words[i])' is not a valid ACL option. Please use '--' before any pattern beginning with a '-' (as HAProxy)")
                return nil
            }
            i += 1
        }
        guard let method else {
            error(location, keyword: "acl", "'\(words[0])' returns binary data: name a match method with '-m' (e.g. -m bin, -m sub)")
            return nil
        }
        var builder = PatternSet.Builder(method: method)
        if case .tlsVersion = expression.fetch.base, method == .int { builder.dottedVersions = true }
        for (path, fold) in files {
            let text: String
            switch readFile(path) {
            case .success(let t): text = t
            case .failure(let e):
                error(location, keyword: "acl", "cannot read pattern file '\(path)': \(e.reason)")
                return nil
            }
            var lineNumber = 0
            for line in text.lines {
                lineNumber += 1
                var pattern = Substring(line)
                while let f = pattern.first, f == " " || f == "\t" { pattern = pattern.dropFirst() }
                while let l = pattern.last, l == " " || l == "\t" || l == "\r" { pattern = pattern.dropLast() }
                if pattern.isEmpty || pattern.hasPrefix("#") { continue }
                if let problem = builder.add(String(pattern), ignoreCase: fold) {
                    error(location, keyword: "acl", "\(path):\(lineNumber): \(problem)")
                    return nil
                }
            }
        }
        for word in words[i...] {
            if let problem = builder.add(word, ignoreCase: ignoreCase) {
                error(location, keyword: "acl", problem)
                return nil
            }
        }
        return ACLTest(expression: expression, patterns: PatternSet(builder))
    }

    // MARK: conditions

    /// `if|unless <condition>` at `words[start...]`; nil (after an error) when malformed.
    mutating func condition(_ proxy: inout ProxyDraft, _ words: ArraySlice<String>, _ location: SourceLocation, keyword: String) -> RoutingDraft.ConditionDraft? {
        guard let first = words.first, first == "if" || first == "unless" else {
            error(location, keyword: keyword, "expected 'if' or 'unless' before a condition, found '\(words.first ?? "")'")
            return nil
        }
        var draft = RoutingDraft.ConditionDraft(unless: first == "unless", location: location)
        var current: [(negated: Bool, name: String)] = []
        var rest = words.dropFirst()
        guard !rest.isEmpty else {
            error(location, keyword: keyword, "'\(first)' needs a condition")
            return nil
        }
        var negated = false
        while var word = rest.first {
            rest = rest.dropFirst()
            // `!{ … }`: HAProxy strips the `!` of a word, then sees the brace.
            while word.hasPrefix("!") && word.count > 1 && word.drop(while: { $0 == "!" }) == "{" {
                negated.toggle()
                word.removeFirst()
            }
            switch word {
            case "||", "or":
                guard !current.isEmpty, !negated else {
                    error(location, keyword: keyword, "'\(word)' needs an ACL on each side")
                    return nil
                }
                draft.alternatives.append(current)
                current = []
            case "!":
                negated.toggle()
            case "{":
                guard let close = rest.firstIndex(of: "}") else {
                    error(location, keyword: keyword, "an anonymous ACL opened with '{' is not closed with '}'")
                    return nil
                }
                let inner = Array(rest[rest.startIndex..<close])
                rest = rest[(close + 1)...]
                guard !inner.isEmpty, let test = aclTest(inner, location) else {
                    if inner.isEmpty { error(location, keyword: keyword, "empty anonymous ACL '{ }'") }
                    return nil
                }
                proxy.routing.anonymousCount += 1
                let name = "{\(inner.joined(separator: " "))}#\(proxy.routing.anonymousCount)"
                proxy.routing.addACL(name, test, location, keyword: keyword)
                current.append((negated, name))
                negated = false
            default:
                var name = Substring(word)
                while name.hasPrefix("!") { negated.toggle(); name = name.dropFirst() }
                guard !name.isEmpty else { continue }
                current.append((negated, String(name)))
                negated = false
            }
        }
        guard !current.isEmpty, !negated else {
            error(location, keyword: keyword, "the condition ends without an ACL")
            return nil
        }
        draft.alternatives.append(current)
        return draft
    }

    /// Splits `<action words…> [if|unless …]`.
    private func splitCondition(_ words: ArraySlice<String>) -> (ArraySlice<String>, ArraySlice<String>?) {
        guard let at = words.firstIndex(where: { $0 == "if" || $0 == "unless" }) else { return (words, nil) }
        return (words[words.startIndex..<at], words[at...])
    }

    // MARK: tcp-request

    mutating func tcpRequestKeyword(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        guard words.count >= 3 else {
            error(location, keyword: "tcp-request", "expected 'tcp-request connection|content <action> [{if|unless} <condition>]' or 'tcp-request inspect-delay <time>'")
            return
        }
        let stage = words[1]
        let keyword = "tcp-request \(stage)"
        if stage == "inspect-delay" {
            guard expect(words, count: 3, location, usage: "tcp-request inspect-delay <time>") else { return }
            proxy.routing.inspectDelay = timeValue(words[2], location, keyword: keyword)
            return
        }
        guard stage == "connection" || stage == "session" || stage == "content" else {
            error(location, keyword: keyword, "unknown rule set '\(stage)': expected connection, session, content or inspect-delay")
            return
        }
        if proxy.kind == .defaults {
            error(location, keyword: keyword, "rules in a defaults section are not supported (HAProxy allows them only in named defaults); write them in the frontend or listen")
            return
        }
        if proxy.kind == .backend && stage != "content" {
            error(location, keyword: keyword, "is not allowed because backend '\(proxy.name)' is not a frontend (as in HAProxy)")
            return
        }
        let (actionWords, conditionWords) = splitCondition(words[2...])
        guard let name = actionWords.first else { return }
        guard let action = tcpAction(&proxy, name, Array(actionWords.dropFirst()), stage: stage, location, keyword: keyword) else { return }
        var condition: RoutingDraft.ConditionDraft?
        if let conditionWords {
            guard let c = self.condition(&proxy, conditionWords, location, keyword: keyword) else { return }
            condition = c
        }
        let rule = RoutingDraft.RuleDraft(action: action, condition: condition, location: location)
        switch stage {
        case "connection": proxy.routing.connectionRules.append(rule)
        case "session": proxy.routing.sessionRules.append(rule)
        default: proxy.routing.contentRules.append(rule)
        }
    }

    // MARK: tcp-response

    /// `tcp-response content <action> [{if|unless} <condition>]` and `tcp-response inspect-delay
    /// <time>`: a backend's rules on what its server sends, before any of it reaches the client.
    mutating func tcpResponseKeyword(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        let stage = words.count > 1 ? words[1] : ""
        let keyword = "tcp-response \(stage)"
        guard stage == "content" || stage == "inspect-delay" else {
            return error(location, keyword: "tcp-response", "expects 'inspect-delay' or 'content' (got '\(stage)'), as HAProxy")
        }
        // HAProxy: "only allowed in 'backend' sections or 'defaults' section with a name".
        guard proxy.kind == .backend || proxy.kind == .listen || (proxy.kind == .defaults && !proxy.name.isEmpty) else {
            return error(location, keyword: keyword, "is only allowed in 'backend' sections or 'defaults' section with a name (as in HAProxy)")
        }
        if stage == "inspect-delay" {
            guard words.count == 3, let delay = timeValue(words[2], location, keyword: keyword) else {
                if words.count != 3 { error(location, keyword: keyword, "expects a positive delay in milliseconds (as HAProxy)") }
                return
            }
            proxy.routing.responseInspectDelay = delay
            return
        }
        if proxy.kind == .defaults {
            return error(location, keyword: keyword, "rules in a defaults section are not supported (HAProxy allows them only in named defaults); write them in the backend or listen")
        }
        let (actionWords, conditionWords) = splitCondition(words[2...])
        let name = actionWords.first ?? ""
        let arguments = Array(actionWords.dropFirst())
        let action: TCPRule.Action
        switch name {
        case "close":
            guard arguments.isEmpty else { return error(location, keyword: keyword, "'close' takes no argument, found '\(arguments[0])'") }
            action = .closeServer
        case "accept", "reject", "silent-drop", "set-log-level", "set-mark", "set-tos",
             _ where name.hasPrefix("sc-inc-gpc0(") || name.hasPrefix("sc-set-gpt0(")
                || ((name.hasPrefix("set-var(") || name.hasPrefix("set-var-fmt(") || name.hasPrefix("unset-var(")) && name.hasSuffix(")")):
            guard let parsed = tcpAction(&proxy, name, arguments, stage: "response", location, keyword: keyword) else { return }
            action = parsed
        case "set-nice", "send-spoe-group", "ot-group",
             _ where name.hasPrefix("sc-inc-gpc") || name.hasPrefix("sc-set-gpt"):
            return error(location, keyword: keyword, "action '\(name)' is not supported yet (supported: accept, reject, close, silent-drop, sc-inc-gpc0, sc-set-gpt0, set-var, set-var-fmt, unset-var, set-log-level, set-mark, set-tos)")
        default:
            return error(location, keyword: keyword, "expects 'accept', 'close', 'reject', 'ot-group', 'set-log-level', 'set-nice', 'sc-inc-gpc(*)', 'sc-inc-gpc0(*)', 'sc-inc-gpc1(*)', 'sc-set-gpt(*)', 'sc-set-gpt0(*)', 'send-spoe-group', 'set-var-fmt(*)', 'set-var(*)', 'unset-var(*)', 'set-mark', 'set-tos', 'silent-drop' (got '\(name)'), as HAProxy")
        }
        var condition: RoutingDraft.ConditionDraft?
        if let conditionWords {
            guard let c = self.condition(&proxy, conditionWords, location, keyword: keyword) else { return }
            condition = c
        }
        proxy.routing.responseRules.append(RoutingDraft.RuleDraft(action: action, condition: condition, location: location))
    }

    /// A `tcp-request` rule's action (`stage`: connection, session or content).
    private mutating func tcpAction(_ proxy: inout ProxyDraft, _ name: String, _ arguments: [String], stage: String, _ location: SourceLocation,
                                    keyword: String) -> TCPRule.Action? {
        let action: TCPRule.Action
        func noArguments() -> Bool {
            if arguments.isEmpty { return true }
            error(location, keyword: keyword, "'\(name)' takes no argument, found '\(arguments[0])'")
            return false
        }
        switch name {
        case "accept": guard noArguments() else { return nil }; action = .accept
        case "reject": guard noArguments() else { return nil }; action = .reject
        case "track-sc0", "track-sc1", "track-sc2":
            guard let slot = name.last?.wholeNumberValue, arguments.count == 1 || (arguments.count == 3 && arguments[1] == "table") else {
                error(location, keyword: keyword, "expected '\(name) <key> [table <table>]'")
                return nil
            }
            guard let key = stageExpression(arguments[0], stage: stage, location, keyword: keyword) else { return nil }
            action = .track(slot: slot, key: key, table: arguments.count == 3 ? arguments[2] : nil)
        case _ where name.hasPrefix("sc-inc-gpc0("):
            guard name.hasSuffix(")"), let slot = Int(name.dropFirst("sc-inc-gpc0(".count).dropLast()), (0...2).contains(slot), noArguments() else {
                error(location, keyword: keyword, "expected 'sc-inc-gpc0(<0-2>)'")
                return nil
            }
            action = .incrementGPC0(slot: slot)
        case _ where name.hasPrefix("sc-set-gpt0("):
            guard name.hasSuffix(")"), let slot = Int(name.dropFirst("sc-set-gpt0(".count).dropLast()), (0...2).contains(slot), arguments.count == 1 else {
                error(location, keyword: keyword, "expected 'sc-set-gpt0(<0-2>) <int>|<expr>'")
                return nil
            }
            // HAProxy: an integer is the value, anything else a sample expression.
            let text = Int64(arguments[0]) != nil ? "int(\(arguments[0]))" : arguments[0]
            guard let value = stageExpression(text, written: arguments[0], stage: stage, location, keyword: keyword) else { return nil }
            action = .setGPT0(slot: slot, value: value)
        case "expect-proxy":
            guard stage == "connection", arguments == ["layer4"] else {
                error(location, keyword: keyword, "expected 'tcp-request connection expect-proxy layer4'")
                return nil
            }
            action = .expectProxy
        case "silent-drop": guard noArguments() else { return nil }; action = .silentDrop
        case "set-mark", "set-tos":
            guard arguments.count == 1 else {
                error(location, keyword: keyword, "'\(name)' expects exactly 1 argument (integer/hex value)")
                return nil
            }
            let range: ClosedRange<Int64> = name == "set-mark" ? 0...Int64(UInt32.max) : 0...255
            guard let value = Self.cInteger(arguments[0]), range.contains(value) else {
                error(location, keyword: keyword, "'\(name) \(arguments[0])': expected an integer from \(range.lowerBound) to \(range.upperBound), in decimal, hexadecimal (0x…) or octal (0…)")
                return nil
            }
            action = name == "set-mark" ? .setMark(UInt32(value)) : .setTOS(Int32(value))
        case _ where (name.hasPrefix("set-var(") || name.hasPrefix("set-var-fmt(") || name.hasPrefix("unset-var(")) && name.hasSuffix(")"):
            guard let parsed = variableAction(name, arguments, stage: stage, location, keyword: keyword) else { return nil }
            action = parsed
        case "capture":
            guard let parsed = captureAction(&proxy, arguments, stage: stage, location, keyword: keyword) else { return nil }
            action = parsed
        case "set-log-level":
            guard stage == "content" || stage == "response" else {
                error(location, keyword: keyword, "'set-log-level' is not allowed in '\(keyword)' rules (only in 'tcp-request content' and 'tcp-response content', as in HAProxy)")
                return nil
            }
            guard arguments.count == 1, arguments[0] == "silent" || LogTarget.levels.contains(arguments[0]) else {
                error(location, keyword: keyword, "'set-log-level' expects exactly 1 argument (log level name or 'silent')")
                return nil
            }
            action = .setLogLevel(LogTarget.levels.firstIndex(of: arguments[0]))
        case "set-src", "set-dst", "set-src-port", "set-dst-port":
            guard arguments.count == 1 else {
                error(location, keyword: keyword, "expected '\(name) <expr>'")
                return nil
            }
            guard let e = stageExpression(arguments[0], stage: stage, location, keyword: keyword) else { return nil }
            action = .setAddress(e, destination: name.hasPrefix("set-dst"), portOnly: name.hasSuffix("-port"))
        case "set-priority-class", "set-priority-offset":
            guard stage == "content" else {
                error(location, keyword: keyword, "'\(name)' is not allowed in '\(keyword)' rules (only in 'tcp-request content', as in HAProxy)")
                return nil
            }
            guard arguments.count == 1 else {
                error(location, keyword: keyword, "expected '\(name) <expr>' (an integer sample, e.g. int(1))")
                return nil
            }
            guard let e = stageExpression(arguments[0], stage: stage, location, keyword: keyword) else { return nil }
            action = .setPriority(e, offset: name == "set-priority-offset")
        case "sc-inc-gpc1", "do-resolve", "use-service", "send-spoe-group",
             "set-nice", "attach-srv", "switch-mode", "lua", "expect-netscaler-cip":
            error(location, keyword: keyword, "action '\(name)' is not supported yet (supported: \(Self.supportedActions(stage)))")
            return nil
        default:
            if name.hasPrefix("sc-") || name.hasPrefix("lua.") || name.hasPrefix("set-var") || name.hasPrefix("unset-var") {
                error(location, keyword: keyword, "action '\(name)' is not supported yet (supported: \(Self.supportedActions(stage)))")
            } else {
                error(location, keyword: keyword, "unknown action '\(name)'")
            }
            return nil
        }
        return action
    }

    /// A rule's sample expression, refused (with the line) when it does not parse or reads the
    /// client's data at a stage that cannot wait for it. `text` is what is parsed, `written` what
    /// the line said (they differ for `sc-set-gpt0 <int>`).
    private mutating func stageExpression(_ text: String, written: String? = nil, stage: String, _ location: SourceLocation,
                                          keyword: String) -> SampleExpression? {
        switch SampleExpression.parse(text, readFile: readFile) {
        case .failure(let e):
            error(location, keyword: keyword, e.message)
            return nil
        case .success(let expression):
            return fitsStage(expression, written ?? text, stage: stage, location, keyword: keyword) ? expression : nil
        }
    }

    /// Connection and session rules cannot wait for the client's data: an expression reading it
    /// is refused there. Content and response rules refuse a fetch declared for the other
    /// direction's buffer (`res.len` in `tcp-request content`), with HAProxy's words.
    private mutating func fitsStage(_ expression: SampleExpression, _ written: String, stage: String, _ location: SourceLocation, keyword: String) -> Bool {
        if stage == "content" || stage == "response" {
            guard let buffer = expression.fetch.declaredBuffer, (buffer == .response) != (stage == "response") else { return true }
            error(location, keyword: keyword, "fetch method '\(written)' extracts information from '\(buffer == .request ? "request" : "response") buffer', none of which is available here (as HAProxy says)")
            return false
        }
        guard expression.fetch.readsContent else { return true }
        error(location, keyword: keyword, "'\(written)' reads the client's data, which 'tcp-request \(stage)' rules cannot wait for; use 'tcp-request content'")
        return false
    }

    static func supportedActions(_ stage: String) -> String {
        "accept, reject, track-sc0/1/2, sc-inc-gpc0, sc-set-gpt0, silent-drop, set-mark, set-tos, set-src, set-dst, set-src-port, set-dst-port, set-var, set-var-fmt, unset-var"
            + (stage == "content" ? ", set-priority-class, set-priority-offset" : "")
            + (stage == "connection" ? ", expect-proxy layer4" : stage == "content" ? ", capture, set-log-level" : "")
    }

    /// `tcp-request content capture <sample> len <length>`: the next request capture slot.
    private mutating func captureAction(_ proxy: inout ProxyDraft, _ arguments: [String], stage: String, _ location: SourceLocation,
                                        keyword: String) -> TCPRule.Action? {
        guard proxy.kind != .backend else {
            error(location, keyword: keyword, "'capture': proxy '\(proxy.name)' has no frontend capability (as in HAProxy)")
            return nil
        }
        guard stage == "content" else {
            error(location, keyword: keyword, "'capture' is not allowed in '\(keyword)' rules (only in 'tcp-request content', as in HAProxy)")
            return nil
        }
        guard arguments.count == 3, arguments[1] == "len" else {
            error(location, keyword: keyword, "expected 'capture <sample> len <length>' (a positive 'len' argument is mandatory)")
            return nil
        }
        guard let length = Int(arguments[2]), length > 0, length <= 65_536 else {
            error(location, keyword: keyword, "'capture \(arguments[0]) len \(arguments[2])': the length must be from 1 to 65536")
            return nil
        }
        switch SampleExpression.parse(arguments[0], readFile: readFile) {
        case .failure(let e):
            error(location, keyword: keyword, e.message)
            return nil
        case .success(let expression):
            defer { proxy.routing.requestCaptures += 1 }
            return .capture(expression, length: length, slot: proxy.routing.requestCaptures)
        }
    }

    /// `declare capture request|response len <length>`: a capture slot, as HAProxy declares one
    /// (a request slot is numbered with those of `tcp-request content capture`).
    mutating func declareKeyword(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        guard words.count == 5, words[1] == "capture", words[2] == "request" || words[2] == "response", words[3] == "len" else {
            error(location, keyword: "declare", "expected 'declare capture request|response len <length>' (Sluice has no other declaration)")
            return
        }
        guard let length = Int(words[4]), length > 0 else {
            error(location, keyword: "declare capture", "'len \(words[4])': the length must be a positive number")
            return
        }
        if words[2] == "request" {
            proxy.routing.requestCaptures += 1
        } else {
            warning(location, keyword: "declare capture", "a response capture slot stays empty at Layer 4: Sluice does not inspect what servers send")
        }
    }

    /// An integer as C's `strtol` with base 0 reads it: decimal, `0x` hexadecimal or `0` octal.
    static func cInteger(_ text: String) -> Int64? {
        var digits = Substring(text)
        let negative = digits.first == "-"
        if negative || digits.first == "+" { digits = digits.dropFirst() }
        var radix = 10
        if digits.count > 2, digits.lowercased().hasPrefix("0x") { radix = 16; digits = digits.dropFirst(2) }
        else if digits.count > 1, digits.first == "0" { radix = 8; digits = digits.dropFirst() }
        guard let value = Int64(digits, radix: radix) else { return nil }
        return negative ? -value : value
    }

    /// `set-var(<name>[,<cond>…]) <expr>`, `set-var-fmt(<name>[,<cond>…]) <format>`, `unset-var(<name>)`.
    private mutating func variableAction(_ name: String, _ arguments: [String], stage: String, _ location: SourceLocation, keyword: String) -> TCPRule.Action? {
        let open = name.firstIndex(of: "(")!
        let verb = String(name[..<open])
        let inner = String(name[name.index(after: open)..<name.index(before: name.endIndex)])
        let target: (VariableName, VariableConditions)
        switch VariableConditions.parseTarget(inner) {
        case .failure(let e): error(location, keyword: keyword, e.message); return nil
        case .success(let t): target = t
        }
        if verb == "unset-var" && inner.contains(",") {
            error(location, keyword: keyword, "'unset-var' takes only a variable name, found '\(inner)'")
            return nil
        }
        let variable = target.0
        // HAProxy accepts these and sets nothing when the rule runs: say so.
        if variable.scope == .check {
            warning(location, keyword: keyword, "'\(variable)': 'check' variables exist only in health checks; this rule never sets one (as in HAProxy)")
        } else if stage != "content" && stage != "response" && variable.scope != .proc && variable.scope != .sess {
            warning(location, keyword: keyword, "'\(variable)': a '\(variable.scope.rawValue)' variable does not exist yet at 'tcp-request \(stage)' (only 'proc' and 'sess' do); this rule never sets it (as in HAProxy)")
        }
        switch verb {
        case "unset-var":
            guard arguments.isEmpty else {
                error(location, keyword: keyword, "'\(name)' only accepts 'if' or 'unless' after it, found '\(arguments[0])'")
                return nil
            }
            return .unsetVariable(variable)
        case "set-var":
            guard arguments.count == 1 else {
                error(location, keyword: keyword, arguments.isEmpty ? "'\(name)': missing fetch method" : "'\(name) \(arguments[0])' only accepts 'if' or 'unless' after it, found '\(arguments[1])'")
                return nil
            }
            guard let expression = stageExpression(arguments[0], stage: stage, location, keyword: keyword) else { return nil }
            return .setVariable(variable, target.1, .expression(expression))
        default:  // set-var-fmt
            guard arguments.count <= 1 else {
                error(location, keyword: keyword, "'\(name) \(arguments[0])' only accepts 'if' or 'unless' after it, found '\(arguments[1])'")
                return nil
            }
            guard let parts = formatParts(arguments.first ?? "", location, keyword: keyword) else { return nil }
            for case .text(let text) in parts where text.contains("%") {
                error(location, keyword: keyword, "'\(arguments[0])': Sluice's formats here take literal text and %[<sample>] only (log-format variables such as %ci are not supported; write %[src])")
                return nil
            }
            for case .sample(let expression) in parts where !fitsStage(expression, arguments[0], stage: stage, location, keyword: keyword) { return nil }
            return .setVariable(variable, target.1, .format(parts))
        }
    }

    // MARK: use_backend

    mutating func useBackendKeyword(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        guard words.count >= 2 else {
            error(location, keyword: "use_backend", "expected 'use_backend <backend> [{if|unless} <condition>]'")
            return
        }
        let (nameWords, conditionWords) = splitCondition(words[1...])
        guard nameWords.count == 1, let name = nameWords.first else {
            error(location, keyword: "use_backend", "expected one backend name before 'if'/'unless', found '\(nameWords.joined(separator: " "))'")
            return
        }
        var target = SwitchRule.Target.fixed(name)
        if name.contains("%[") {
            guard let parts = formatParts(name, location, keyword: "use_backend") else { return }
            target = .format(parts)
        }
        var condition: RoutingDraft.ConditionDraft?
        if let conditionWords {
            guard let c = self.condition(&proxy, conditionWords, location, keyword: "use_backend") else { return }
            condition = c
        }
        proxy.routing.switching.append(.init(target: target, condition: condition, location: location))
    }

    // MARK: use-server

    /// `use-server <server> {if|unless} <condition>`: HAProxy requires the condition.
    mutating func useServerKeyword(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        let (nameWords, conditionWords) = splitCondition(words.dropFirst())
        guard nameWords.count == 1, let name = nameWords.first else {
            error(location, keyword: "use-server", "expected 'use-server <server> {if|unless} <condition>'")
            return
        }
        guard let conditionWords else {
            error(location, keyword: "use-server", "requires either 'if' or 'unless' followed by a condition (as in HAProxy)")
            return
        }
        var target = SwitchRule.Target.fixed(name)
        if name.contains("%[") {
            guard let parts = formatParts(name, location, keyword: "use-server") else { return }
            target = .format(parts)
        }
        guard let condition = self.condition(&proxy, conditionWords, location, keyword: "use-server") else { return }
        proxy.routing.serverRules.append(.init(target: target, condition: condition, location: location))
    }

    /// `force-persist {if|unless} <condition>`, `ignore-persist {if|unless} <condition>`: HAProxy
    /// requires the condition. The first rule that matches decides. `ignore-persist` only turns
    /// off cookie persistence, which is HTTP: at Layer 4 its match only keeps later
    /// `force-persist` rules from applying, as in HAProxy (hence the warning).
    mutating func persistRuleKeyword(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        let keyword = words[0]
        let (rest, conditionWords) = splitCondition(words.dropFirst())
        guard rest.isEmpty, let conditionWords else {
            return error(location, keyword: keyword, "requires either 'if' or 'unless' followed by a condition (as in HAProxy)")
        }
        guard let condition = self.condition(&proxy, conditionWords, location, keyword: keyword) else { return }
        if keyword == "ignore-persist" {
            warning(location, keyword: keyword, "only turns off cookie persistence, which needs HTTP: at Layer 4 a match only keeps later 'force-persist' rules from applying (as in HAProxy)")
        }
        proxy.routing.persistRules.append((keyword == "force-persist", condition, location))
    }

    /// A log-format name: literal text and `%[sample]` parts.
    private mutating func formatParts(_ text: String, _ location: SourceLocation, keyword: String) -> [SwitchRule.FormatPart]? {
        var parts: [SwitchRule.FormatPart] = []
        var rest = Substring(text)
        while let percent = rest.indices.first(where: { rest[$0] == "%" && rest.index(after: $0) < rest.endIndex && rest[rest.index(after: $0)] == "[" }) {
            let open = percent..<rest.index(percent, offsetBy: 2)
            if open.lowerBound > rest.startIndex { parts.append(.text(String(rest[..<open.lowerBound]))) }
            guard let close = rest[open.upperBound...].firstIndex(of: "]") else {
                error(location, keyword: keyword, "'\(text)': '%[' without its ']'")
                return nil
            }
            switch SampleExpression.parse(String(rest[open.upperBound..<close]), readFile: readFile) {
            case .failure(let e): error(location, keyword: keyword, e.message); return nil
            case .success(let e): parts.append(.sample(e))
            }
            rest = rest[rest.index(after: close)...]
        }
        if !rest.isEmpty { parts.append(.text(String(rest))) }
        return parts
    }

    // MARK: stick

    /// `stick on|match|store-request|store-response <pattern> [table <table>] [{if|unless} <condition>]`.
    mutating func stickKeyword(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        let usage = "stick on|match|store-request|store-response <pattern> [table <table>] [{if|unless} <condition>]"
        guard words.count >= 3 else {
            error(location, keyword: "stick", "expected '\(usage)'")
            return
        }
        let kind = words[1]
        guard ["on", "match", "store-request", "store-response"].contains(kind) else {
            error(location, keyword: "stick \(kind)", "unknown stick rule: expected '\(usage)'")
            return
        }
        let keyword = "stick \(kind)"
        let (patternWords, conditionWords) = splitCondition(words[2...])
        guard patternWords.count == 1 || (patternWords.count == 3 && patternWords[patternWords.startIndex + 1] == "table") else {
            error(location, keyword: keyword, "expected '\(usage)'")
            return
        }
        let key: SampleExpression
        let written = patternWords[patternWords.startIndex]
        switch SampleExpression.parse(written, readFile: readFile) {
        case .failure(let e): error(location, keyword: keyword, e.message); return
        case .success(let e): key = e
        }
        // HAProxy's words: a key must come from the buffer its rule sees.
        switch (key.fetch.declaredBuffer, kind == "store-response") {
        case (.request?, true):
            return error(location, keyword: keyword, "fetch method '\(written)' extracts information from 'request buffer', none of which is available for 'store-response' (as HAProxy says)")
        case (.response?, false):
            return error(location, keyword: keyword, "fetch method '\(written)' extracts information from 'response buffer', none of which is available during request (as HAProxy says)")
        default: break
        }
        var condition: RoutingDraft.ConditionDraft?
        if let conditionWords {
            guard let c = self.condition(&proxy, conditionWords, location, keyword: keyword) else { return }
            condition = c
        }
        var rule = StickRule(matches: kind == "on" || kind == "match", stores: kind != "match", key: key,
                             table: patternWords.count == 3 ? patternWords.last : nil, condition: nil)
        rule.response = kind == "store-response"
        proxy.routing.stickRules.append(.init(rule: rule, condition: condition, location: location))
    }

    // MARK: stick-table

    mutating func stickTableKeyword(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        if proxy.kind == .defaults {
            error(location, keyword: "stick-table", "is not allowed in a defaults section (a table belongs to one proxy)")
            return
        }
        var spec = StickTableSpec(name: proxy.name, keyType: .ipv4, size: 0)
        var sawType = false
        var i = 1
        func next() -> String? {
            i += 1
            return i < words.count ? words[i] : nil
        }
        while i < words.count {
            let word = words[i]
            switch word {
            case "type":
                sawType = true
                switch next() {
                case "ip": spec.keyType = .ipv4
                case "ipv6": spec.keyType = .ipv6
                case "integer": spec.keyType = .integer
                case let type? where type == "string" || type == "binary":
                    var length = 32
                    if i + 2 < words.count, words[i + 1] == "len" {
                        i += 1
                        guard let n = next(), let v = Int(n), v > 0 else {
                            error(location, keyword: "stick-table", "'len' needs a positive length")
                            return
                        }
                        length = v
                    }
                    spec.keyType = type == "string" ? .string(length: length) : .binary(length: length)
                default:
                    error(location, keyword: "stick-table", "unknown type '\(i < words.count ? words[i] : "")': expected ip, ipv6, integer, string or binary")
                    return
                }
            case "size":
                guard let text = next(), let size = value(ValueParser.size(text), location, keyword: "stick-table") else { return }
                guard size > 0 else { error(location, keyword: "stick-table", "'size' must be positive"); return }
                spec.size = size
            case "expire":
                guard let text = next() else { error(location, keyword: "stick-table", "'expire' needs a time"); return }
                spec.expire = timeValue(text, location, keyword: "stick-table")
            case "store":
                guard let list = next() else { error(location, keyword: "stick-table", "'store' needs a list of data types"); return }
                storeList(&spec, list, location)
            case "peers":
                // Checked once every section is read (`validatePeers`).
                guard let name = next() else { error(location, keyword: "stick-table", "'peers' needs the name of a peers section"); return }
                notePeersReference(name, location)
            case "nopurge":
                spec.noPurge = true
            case "srvkey", "write-to", "recv-only":
                error(location, keyword: "stick-table", "'\(word)' is not supported yet")
                if word != "recv-only" { _ = next() }
            default:
                error(location, keyword: "stick-table", "unknown argument '\(word)'")
            }
            i += 1
        }
        guard sawType, spec.size > 0 else {
            error(location, keyword: "stick-table", "needs at least 'type <type>' and 'size <n>'")
            return
        }
        if let (_, first) = proxy.routing.stickTable {
            error(location, keyword: "stick-table", "a proxy has one stick table; the first is at \(first)")
            return
        }
        proxy.routing.stickTable = (spec, location)
    }

    private mutating func storeList(_ spec: inout StickTableSpec, _ list: String, _ location: SourceLocation) {
        for item in list.split(separator: ",").map(String.init) {
            var name = item
            var period: Int64?
            if let open = item.firstIndex(of: "("), item.hasSuffix(")") {
                name = String(item[..<open])
                let inner = String(item[item.index(after: open)..<item.index(before: item.endIndex)])
                guard let d = timeValue(inner, location, keyword: "stick-table") else { continue }
                period = max(1, d.milliseconds)
            }
            switch name {
            case "conn_cur", "conn_cnt", "sess_cnt", "gpc0", "gpt0", "bytes_in_cnt", "bytes_out_cnt":
                spec.stored[StickData(fetchSuffix: name)!] = 0
            case "conn_rate", "sess_rate", "gpc0_rate", "bytes_in_rate", "bytes_out_rate":
                guard let period else {
                    error(location, keyword: "stick-table", "'\(name)' needs its period: '\(name)(<time>)'")
                    continue
                }
                spec.stored[StickData(fetchSuffix: name)!] = period
            case "http_req_cnt", "http_req_rate", "http_err_cnt", "http_err_rate", "http_fail_cnt", "http_fail_rate":
                warning(location, keyword: "stick-table", "'\(name)' is never counted: it counts HTTP requests, and Sluice balances at Layer 4")
            case "server_id":
                spec.stored[.serverID] = 0
            case "server_key", "server_name":
                warning(location, keyword: "stick-table", "'\(name)' is never set: Sluice's 'stick' rules store server_id (the server's id)")
            default:
                error(location, keyword: "stick-table", "data type '\(name)' is not supported yet (conn_cur, conn_cnt, conn_rate, sess_cnt, sess_rate, gpt0, gpc0, gpc0_rate, bytes_in_cnt, bytes_in_rate, bytes_out_cnt, bytes_out_rate)")
            }
        }
    }
}

extension Parser {
    // MARK: validation

    /// The proxy's routing as a `RuleSet`, once every section is read: ACL names resolved, backends
    /// and tables checked. Nil when the proxy has no rules (or they had errors, reported here).
    mutating func ruleSet(_ proxy: ProxyDraft, _ configuration: Configuration) -> RuleSet? {
        let draft = proxy.routing
        guard !draft.isEmpty else { return nil }
        let errorsBefore = errorCount
        var acls: [[ACLTest]] = []
        var names: [String] = []
        var indices: [String: Int] = [:]
        let tables = Dictionary(configuration.stickTables.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let ownTable = draft.stickTable?.0.name

        func checkTable(_ name: String?, _ data: StickData?, _ location: SourceLocation, _ keyword: String) {
            guard let tableName = name ?? ownTable else {
                report(.error, proxy, location, keyword: keyword, "no 'table' given and this proxy declares no stick-table")
                return
            }
            guard let spec = tables[tableName] else {
                report(.error, proxy, location, keyword: keyword, "no stick-table named '\(tableName)' (a table is named after the proxy that declares it)")
                return
            }
            if let data, data != .tracked, spec.stored[data.stored] == nil {
                report(.error, proxy, location, keyword: keyword, "stick-table '\(tableName)' does not store '\(data.stored.name)'; add it to its 'store' list")
            }
        }
        func checkFetch(_ fetch: Fetch, _ location: SourceLocation, _ keyword: String) {
            switch fetch {
            case .backendLoad(let load, let backend?) where configuration.backend(named: backend) == nil:
                report(.error, proxy, location, keyword: keyword, "\(load.fetchName)(\(backend)): no backend named '\(backend)'")
            case .serverIsUp(let backend, let server):
                let b = backend ?? proxy.defaultBackend?.0 ?? proxy.name
                if configuration.backend(named: b)?.servers.contains(where: { $0.name == server }) != true {
                    report(.error, proxy, location, keyword: keyword, "srv_is_up(\(backend.map { "\($0)/" } ?? "")\(server)): no server '\(server)' in backend '\(b)'")
                }
            case .session(.frontendConnections(let name?)) where !proxies.contains(where: { $0.name == name && ($0.kind == .frontend || $0.kind == .listen) }):
                report(.error, proxy, location, keyword: keyword, "fe_conn(\(name)): no frontend named '\(name)'")
            case .counter(.source(let table), let data):
                checkTable(table, data, location, keyword)
            case .counter(.tracked(_, let table?), let data):
                checkTable(table, data, location, keyword)
            default:
                break
            }
        }
        for line in draft.aclFetches { checkFetch(line.fetch, line.location, line.keyword) }
        func resolve(_ c: RoutingDraft.ConditionDraft?, keyword: String) -> Condition? {
            guard let c else { return nil }
            var condition = Condition(unless: c.unless)
            for alternative in c.alternatives {
                var terms: [Condition.Term] = []
                for (negated, name) in alternative {
                    if let i = indices[name] {
                        terms.append(.init(negated: negated, acl: i))
                        continue
                    }
                    let tests: [ACLTest]
                    if let defined = draft.acls[name] {
                        tests = defined
                    } else if let predefined = PredefinedACL.test(name) {
                        tests = [predefined]
                    } else if PredefinedACL.needHTTP.contains(name) {
                        report(.error, proxy, c.location, keyword: keyword, "predefined ACL '\(name)' needs HTTP; Sluice balances at Layer 4")
                        continue
                    } else {
                        report(.error, proxy, c.location, keyword: keyword, "no ACL named '\(name)' in \(proxy.label)")
                        continue
                    }
                    indices[name] = acls.count
                    terms.append(.init(negated: negated, acl: acls.count))
                    acls.append(tests)
                    names.append(name)
                }
                condition.alternatives.append(terms)
            }
            return condition
        }
        func rules(_ list: [RoutingDraft.RuleDraft], _ keyword: String) -> [TCPRule] {
            list.map { rule in
                switch rule.action {
                case .track(let counter, let key, let table):
                    checkTable(table, nil, rule.location, keyword)
                    checkFetch(key.fetch, rule.location, keyword)
                    if key.isBinary, let name = table ?? ownTable, let spec = tables[name], [.ipv4, .ipv6, .integer].contains(spec.keyType) {
                        report(.error, proxy, rule.location, keyword: keyword, "Proxy '\(proxy.name)': stick-table '\(name)' uses a type incompatible with the 'track-sc\(counter)' rule (as HAProxy says: binary data is no \(spec.keyType == .integer ? "integer" : "address"))")
                    }
                case .setVariable(_, _, .expression(let e)):
                    checkFetch(e.fetch, rule.location, keyword)
                case .setVariable(_, _, .format(let parts)):
                    for case .sample(let e) in parts { checkFetch(e.fetch, rule.location, keyword) }
                case .capture(let e, _, _), .setGPT0(_, let e), .setAddress(let e, _, _):
                    checkFetch(e.fetch, rule.location, keyword)
                default: break
                }
                return TCPRule(action: rule.action, condition: resolve(rule.condition, keyword: keyword))
            }
        }
        /// Whether a resolved condition uses a fetch for which `test` holds.
        func uses(_ condition: Condition?, _ test: (Fetch) -> Bool) -> Bool {
            condition.map { $0.terms.contains { acls[$0.acl].contains { test($0.expression.fetch) } } } ?? false
        }
        let connection = rules(draft.connectionRules, "tcp-request connection")
        let session = rules(draft.sessionRules, "tcp-request session")
        for (draftRule, rule) in zip(draft.connectionRules + draft.sessionRules, connection + session) where uses(rule.condition, \.readsContent) {
            // Data cannot be waited for at these stages: a condition on it would always see none.
            report(.error, proxy, draftRule.location, keyword: "tcp-request", "this condition reads the client's data, which only 'tcp-request content' rules can wait for")
        }
        let content = rules(draft.contentRules, "tcp-request content")
        let response = rules(draft.responseRules, "tcp-response content")
        /// HAProxy's `acl_cond_conflicts` warnings: an ACL reading the other direction's buffer.
        /// (It still runs, and reads this direction's data, as HAProxy's payload fetches do.)
        func warnOtherDirection(_ drafts: [RoutingDraft.RuleDraft], _ resolved: [TCPRule], keyword: String, place: String, other: Fetch.ContentDirection) {
            for (draftRule, rule) in zip(drafts, resolved) {
                var warned: Set<Int> = []
                for term in rule.condition?.terms ?? [] where warned.insert(term.acl).inserted {
                    let tests = acls[term.acl]
                    guard let odd = tests.first(where: { $0.expression.fetch.declaredBuffer == other }) else { continue }
                    let name = names[term.acl]
                    let text: String
                    if name.hasPrefix("{") {
                        let fetchWord = name.dropFirst().prefix { $0 != " " && $0 != "(" && $0 != "," }
                        text = "anonymous acl will never match in '\(keyword)' because it uses keyword '\(fetchWord)' which is incompatible with '\(place)'"
                    } else if tests.allSatisfy({ $0.expression.fetch.declaredBuffer == other }) {
                        text = "acl '\(name)' will never match in '\(keyword)' because it only involves keywords that are incompatible with '\(place)'"
                    } else {
                        text = "acl '\(name)' involves keyword '\(odd.expression.fetch.keyword)' which is incompatible with '\(place)'"
                    }
                    report(.warning, proxy, draftRule.location, keyword: keyword, text + " (as HAProxy warns)")
                }
            }
        }
        warnOtherDirection(draft.contentRules, content, keyword: "tcp-request content",
                           place: "\(proxy.kind == .backend ? "backend" : "frontend") tcp-request content rule", other: .response)
        warnOtherDirection(draft.responseRules, response, keyword: "tcp-response content", place: "backend tcp-response content rule", other: .request)
        if proxy.kind == .backend {
            // A backend's content rules may wait for the client's data (its own inspect-delay),
            // but cannot read a backend's load yet: their routing names no backend.
            for (draftRule, rule) in zip(draft.contentRules, content)
            where uses(rule.condition, { if case .backendLoad = $0 { true } else if case .serverIsUp = $0 { true } else { false } }) {
                report(.error, proxy, draftRule.location, keyword: "tcp-request content",
                       "a backend's content rules may not use a backend's load (nbsrv, be_conn …) or srv_is_up yet; put this rule in the frontend")
            }
        }
        var switching: [SwitchRule] = []
        for rule in draft.switching {
            if case .fixed(let name) = rule.target, configuration.backend(named: name) == nil {
                report(.error, proxy, rule.location, keyword: "use_backend", "no backend named '\(name)' exists")
            }
            if case .format(let parts) = rule.target {
                for case .sample(let e) in parts { checkFetch(e.fetch, rule.location, "use_backend") }
            }
            switching.append(SwitchRule(target: rule.target, condition: resolve(rule.condition, keyword: "use_backend")))
        }
        var stickRules: [StickRule] = []
        for draftRule in draft.stickRules {
            var rule = draftRule.rule
            checkTable(rule.table, nil, draftRule.location, "stick")
            if let name = rule.table ?? ownTable { stickTablesWithServers.insert(name) }
            // HAProxy refuses a key that no cast turns into the table's type: binary data (a
            // payload) for an address or integer table (`sample_casts` has no bin→ip/int).
            if rule.key.isBinary, let name = rule.table ?? ownTable, let spec = tables[name], [.ipv4, .ipv6, .integer].contains(spec.keyType) {
                report(.error, proxy, draftRule.location, keyword: "stick", "Proxy '\(proxy.name)': type of fetch not usable with type of stick-table '\(name)' (as HAProxy says: binary data is no \(spec.keyType == .integer ? "integer" : "address"))")
            }
            checkFetch(rule.key.fetch, draftRule.location, "stick")
            rule.condition = resolve(draftRule.condition, keyword: "stick")
            if uses(rule.condition, { fetch in
                switch fetch {
                case .backendLoad, .serverIsUp: true
                default: false
                }
            }) {
                report(.error, proxy, draftRule.location, keyword: "stick", "conditions of 'stick' rules may not use a backend's load (nbsrv, be_conn …) or srv_is_up yet")
            }
            stickRules.append(rule)
        }
        var serverRules: [ServerRule] = []
        for rule in draft.serverRules {
            if case .fixed(let name) = rule.target, configuration.backend(named: proxy.name)?.servers.contains(where: { $0.name == name }) != true {
                report(.error, proxy, rule.location, keyword: "use-server", "no server named '\(name)' in \(proxy.label)")
            }
            if case .format(let parts) = rule.target {
                for case .sample(let e) in parts { checkFetch(e.fetch, rule.location, "use-server") }
            }
            serverRules.append(ServerRule(target: rule.target, condition: resolve(rule.condition, keyword: "use-server")))
        }
        let persistRules = draft.persistRules.map { PersistRule(force: $0.force, condition: resolve($0.condition, keyword: $0.force ? "force-persist" : "ignore-persist")) }
        guard errorCount == errorsBefore else { return nil }
        let set = RuleSet(acls: acls, aclNames: names, connectionRules: connection, sessionRules: session, contentRules: content,
                          inspectDelayMs: draft.inspectDelay?.milliseconds ?? 0, switching: switching, stickRules: stickRules,
                          serverRules: serverRules, persistRules: persistRules, ownTable: ownTable, requestCaptures: draft.requestCaptures,
                          responseRules: response, responseInspectDelayMs: draft.responseInspectDelay?.milliseconds ?? 0)
        // HAProxy's warnings for rules that read data no one waits for.
        if let first = draft.contentRules.first, draft.inspectDelay == nil, content.contains(where: { uses($0.condition, \.readsContent) }) {
            report(.warning, proxy, first.location, keyword: "tcp-request content",
                   "rules read the client's data but no 'tcp-request inspect-delay' is set: they decide on whatever has arrived at accept (as HAProxy warns); set an inspect-delay")
        }
        if content.isEmpty, let rule = zip(draft.switching, switching).first(where: { uses($0.1.condition, \.readsContent) })?.0 {
            report(.warning, proxy, rule.location, keyword: "use_backend",
                   "reads the client's data, but no 'tcp-request content' rule waits for it, so it decides at accept on no data (as HAProxy does); add 'tcp-request inspect-delay 5s' and 'tcp-request content accept if { req.ssl_hello_type 1 }' (or a rule for your protocol)")
        }
        return set
    }
}
