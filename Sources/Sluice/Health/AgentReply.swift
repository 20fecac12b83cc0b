/// An agent check's reply, read as HAProxy 2.6's `tcpcheck_agent_expect_reply` reads it: one line,
/// ended by the first CR or LF, of words separated by spaces, tabs or commas, in any order; the
/// last word of a kind wins, and what follows a `#` describes a health word. Plain bytes in, words
/// out: `AgentReply.apply` makes them take effect.
struct AgentReply: Equatable, Sendable {
    /// `up`, or `down`, `fail`, `stopped` (as written, for the description).
    var health: String?
    var admin: AdminState?
    /// A word starting with a digit and holding a `%`: the new weight, relative to the configured one.
    var weight: String?
    /// What follows `maxconn:`.
    var maxConnections: String?
    /// After `#`, without the blanks that follow it.
    var description = ""
    /// The first word that is none of the above.
    var unknown: String?

    var healthIsUp: Bool { health.map { $0.lowercased() == "up" } ?? false }

    enum Reading: Equatable {
        /// No end of line yet, and the agent may send more.
        case incomplete
        /// The agent closed before an end of line (HAProxy: "Ignoring incomplete line from agent").
        case truncated
        case line(AgentReply)
    }

    /// Reads `bytes` received so far; `closed`: the agent will send nothing more.
    static func read(_ bytes: [UInt8], closed: Bool) -> Reading {
        // A NUL ends the text as in HAProxy's C string, so a line must end before one.
        guard let end = bytes.firstIndex(where: { $0 == 0x0A || $0 == 0x0D || $0 == 0 }), bytes[end] != 0 else {
            return closed || bytes.contains(0) ? .truncated : .incomplete
        }
        return .line(parse(bytes[..<end]))
    }

    static func parse(_ line: ArraySlice<UInt8>) -> AgentReply {
        var reply = AgentReply()
        var i = line.startIndex
        func isSeparator(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x2C }
        while i < line.endIndex {
            if isSeparator(line[i]) {
                i += 1
                continue
            }
            if line[i] == 0x23 {  // '#': the rest describes the health word
                var start = i + 1
                while start < line.endIndex && (line[start] == 0x20 || line[start] == 0x09) { start += 1 }
                reply.description = String(decoding: line[start...], as: UTF8.self)
                break
            }
            var end = i + 1
            while end < line.endIndex && !isSeparator(line[end]) { end += 1 }
            let word = String(decoding: line[i..<end], as: UTF8.self)
            i = end
            switch word.lowercased() {
            case "up", "down", "stopped", "fail": reply.health = word
            case "ready": reply.admin = .ready
            case "drain": reply.admin = .drain
            case "maint": reply.admin = .maintenance
            case let w where w.hasPrefix("maxconn:"): reply.maxConnections = String(word.dropFirst("maxconn:".count))
            case let w where w.first?.isASCII == true && w.first?.isNumber == true && w.contains("%"): reply.weight = word
            default: if reply.unknown == nil { reply.unknown = word }
            }
        }
        return reply
    }

    /// Makes the words take effect on `server` in HAProxy's order — admin state, weight, maxconn —
    /// and returns the agent check's result: L7OK for `up`, L7STS for the other health words,
    /// CHECKED without one; its text says what the agent said, or the first word or value it could
    /// not use (HAProxy's "via agent : down (reason)", "agent reports an error : …", "agent warns : …").
    func apply(to server: ServerState, of backend: BackendState) -> CheckResult {
        if let admin, server.admin != admin { backend.setAdminAnnounced(admin, of: server, reason: "agent check") }
        var warning: String?
        if let weight {
            switch RuntimeCommand.Weight.parse(weight) {
            case .success(let w):
                let value = w.resolve(configured: server.configuredWeight)
                if value != server.weight { backend.setWeight(value, of: server) }
            case .failure(let refusal): warning = warning ?? refusal.text.trimmingSuffix("\n")
            }
        }
        if let maxConnections {
            switch Self.maxConnections(maxConnections) {
            case .success(let limit):
                if server.maxConnectionsStorage.exchange(limit ?? Int.max, ordering: .relaxed) != limit ?? Int.max {
                    backend.republish()  // the limit's kind may change, and waiting sessions may go
                }
            case .failure(let refusal): warning = warning ?? refusal.text.trimmingSuffix("\n")
            }
        }
        if let health {
            let up = healthIsUp
            var message = description
            if message.isEmpty || up { message = unknown ?? warning ?? message }
            return CheckResult(status: up ? .layer7OK : .layer7Status, info: "via agent : \(health)" + (message.isEmpty ? "" : " (\(message))"))
        }
        if let unknown { return CheckResult(status: .checked, info: "agent reports an error : \(unknown)") }
        if let warning { return CheckResult(status: .checked, info: "agent warns : \(warning)") }
        return CheckResult(status: .checked)
    }

    /// A `maxconn:` value as HAProxy's `server_parse_maxconn_change_request` reads it: a whole
    /// number (0 or less: no limit), or the sentence it answers.
    static func maxConnections(_ text: String) -> Result<Int?, RuntimeCommand.Refusal> {
        guard !text.isEmpty else { return .failure(.init("Require <maxconn>.")) }
        var rest = Substring(text)
        let sign = rest.first == "-" || rest.first == "+" ? rest.removeFirst() : nil
        let digits = rest.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty else { return .failure(.init("maxconn string empty or preceded by garbage")) }
        guard digits.count == rest.count else { return .failure(.init("Trailing garbage in maxconn string")) }
        let value = Int(digits.prefix(12)) ?? Int.max
        return .success(sign == "-" || value == 0 ? nil : value)
    }
}
