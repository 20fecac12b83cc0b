/// A `mode http` proxy whose only job is HAProxy's statistics: `stats enable|uri|auth|realm|refresh`
/// and `http-request use-service prometheus-exporter`. Sluice serves it with a small HTTP/1.1
/// responder of its own; any other use of `mode http` stays refused.
public struct StatsPage: Hashable, Sendable {
    /// The proxy's name.
    public var name: String
    /// Where it listens.
    public var binds: [Bind]
    /// Where the statistics page answers (`stats uri`; `/haproxy?stats` with `stats enable`);
    /// nil: no page.
    public var uri: String?
    /// Where the Prometheus exporter answers: a path (`if { path /metrics }`), "" for every
    /// request (no condition); nil: no exporter.
    public var prometheusPath: String?
    /// `stats auth <user>:<password>`: Basic authentication for the page (not the exporter, as
    /// HAProxy's rules apply only to the page). Empty: none.
    public var users: [String: String] = [:]
    /// `stats realm`.
    public var realm = "HAProxy Statistics"
    /// `stats refresh`: the page reloads itself this often.
    public var refresh: Duration?
    /// `stats hide-version`.
    public var hideVersion = false
    /// `stats scope <proxy>` lines: the page (its CSV and JSON) shows only these proxies. Empty:
    /// every proxy.
    public var scope: [String] = []
    /// `stats admin if|unless <condition>`: who may change servers from the page (its checkboxes
    /// and actions, as HAProxy's). Nil: nobody. Only an authenticated user (`stats auth`) ever may.
    public var admin: AdminAccess?
    /// `maxconn`: connections the page serves at once; more wait in the listeners' backlog, as
    /// HAProxy's paused listeners. Nil: Sluice's bound of 256 for all pages together.
    public var maxConnections: Int?
    /// How long a client has to send its whole request: `timeout http-request`, else `timeout
    /// client` (HAProxy's fallback), else 10 s; the page then answers 408 and closes, as HAProxy.
    public var requestTimeout: Duration = .seconds(10)
    /// `option http-ignore-probes`: a connection that sent nothing before `requestTimeout` is
    /// closed without the 408 answer.
    public var ignoreProbes = false

    /// The clients a `stats admin` condition lets change servers, by source address.
    public enum AdminAccess: Hashable, Sendable {
        /// `if TRUE` (or `unless FALSE`).
        case everyone
        /// `if LOCALHOST` (127.0.0.0/8), `if { src <networks> }`.
        case from([String])
        /// `unless LOCALHOST`, `unless { src <networks> }`.
        case notFrom([String])
    }

    /// A statistics proxy serving the defaults: the page at `/`, no user, no exporter.
    public init(name: String, binds: [Bind]) {
        self.name = name
        self.binds = binds
    }
}

extension Parser {
    /// Whether a `mode http` proxy only serves statistics: no server, no backend, and no HTTP
    /// keyword but `stats` and `http-request` lines.
    static func isStatsOnly(_ proxy: ProxyDraft) -> Bool {
        proxy.kind != .backend && proxy.servers.isEmpty && proxy.defaultBackend == nil && !proxy.statsLines.isEmpty
            && proxy.httpOnly.allSatisfy { ["stats", "http-request", "timeout http-request", "option http-ignore-probes"].contains($0.keyword) || pageIgnores[$0.keyword] != nil }
    }

    /// HTTP keywords a statistics proxy usually gets from a `defaults` section written for HTTP
    /// proxies, which change nothing Sluice's page does: accepted on it with a warning saying why.
    /// Any other HTTP keyword keeps the proxy from being a statistics page (and so is refused).
    static let pageIgnores: [String: String] = {
        let oneRequest = "Sluice's statistics page answers one request per connection, then closes it"
        let noServer = "it concerns what is sent to servers, and a statistics page has none"
        let ownErrors = "Sluice's statistics page answers its errors with short bodies of its own"
        var reasons: [String: String] = [:]
        for keyword in ["option httpclose", "option http-server-close", "option http-keep-alive", "option forceclose",
                        "option http-pretend-keepalive", "timeout http-keep-alive", "max-keep-alive-queue"] { reasons[keyword] = oneRequest }
        for keyword in ["option forwardfor", "option originalto", "http-reuse", "http-send-name-header", "option prefer-last-server",
                        "option checkcache", "retry-on", "option http-drop-request-trailers",
                        "option http-drop-response-trailers", "option h1-case-adjust-bogus-server"] { reasons[keyword] = noServer }
        for keyword in ["errorfile", "errorfiles", "errorloc", "errorloc302", "errorloc303", "http-error"] { reasons[keyword] = ownErrors }
        reasons["option http-buffer-request"] = "Sluice's statistics page always reads a request's whole body before answering"
        reasons["option http-use-htx"] = "it has had no effect since HAProxy 2.1"
        reasons["option http-no-delay"] = "Sluice's statistics page sends each answer as soon as it is built"
        reasons["option disable-h2-upgrade"] = "Sluice's statistics page speaks HTTP/1.1 only"
        reasons["compression"] = "Sluice's statistics page is sent uncompressed"
        reasons["timeout tarpit"] = "a statistics page has no tarpit rules"
        return reasons
    }()

    /// The page a stats-only proxy describes; its mistakes are added to `diagnostics`.
    static func statsPage(_ proxy: ProxyDraft, diagnostics: inout [ConfigDiagnostic]) -> StatsPage {
        var page = StatsPage(name: proxy.name, binds: proxy.binds.map(\.0))
        var refused = false
        var adminLine: ([String], SourceLocation)?
        func problem(_ location: SourceLocation, _ keyword: String, _ message: String, warning: Bool = false) {
            diagnostics.append(ConfigDiagnostic(warning ? .warning : .error, location, section: proxy.label, keyword: keyword, message))
            if !warning { refused = true }
        }
        for (words, location) in proxy.statsLines {
            if words[0] == "http-request" {
                guard words.count >= 3, words[1] == "use-service", words[2] == "prometheus-exporter" else {
                    problem(location, "http-request", "a stats proxy serves only 'http-request use-service prometheus-exporter [if { path <path> }]'")
                    continue
                }
                let condition = Array(words.dropFirst(3))
                if condition.isEmpty {
                    page.prometheusPath = ""
                } else if condition.count == 5, condition[0] == "if", condition[1] == "{", condition[2] == "path", condition[4] == "}" {
                    page.prometheusPath = condition[3]
                } else {
                    problem(location, "http-request", "the exporter's condition must be 'if { path <path> }' (or none); got '\(condition.joined(separator: " "))'")
                }
                continue
            }
            let sub = words.count > 1 ? words[1] : ""
            switch sub {
            case "enable":
                page.uri = page.uri ?? "/haproxy?stats"
            case "uri" where words.count == 3:
                page.uri = words[2]
            case "realm" where words.count >= 3:
                page.realm = words[2...].joined(separator: " ")
            case "auth" where words.count == 3:
                guard let colon = words[2].firstIndex(of: ":") else {
                    problem(location, "stats auth", "expected '<user>:<password>'")
                    continue
                }
                page.users[String(words[2][..<colon])] = String(words[2][words[2].index(after: colon)...])
                page.uri = page.uri ?? "/haproxy?stats"
            case "refresh" where words.count == 3:
                guard let time = Duration(haproxyTime: words[2]) else {
                    problem(location, "stats refresh", "'\(words[2])' is not a time")
                    continue
                }
                page.refresh = time
            case "hide-version":
                page.hideVersion = true
            case "show-legends", "show-node", "show-desc", "show-modules":
                problem(location, "stats \(sub)", "Sluice's page shows every proxy's table without legends, node or description", warning: true)
            case "admin":
                adminLine = (words, location)
            case "scope" where words.count == 3:
                // `.` is the statistics proxy itself, which has no row of its own in Sluice.
                page.scope.append(words[2] == "." ? proxy.name : words[2])
            default:
                problem(location, "stats", "'\(words.joined(separator: " "))' is not a stats page setting Sluice knows")
            }
        }
        for (keyword, location) in proxy.httpOnly {
            if let reason = pageIgnores[keyword] {
                problem(location, keyword, "ignored by the statistics page: \(reason)", warning: true)
            }
        }
        if !proxy.routing.connectionRules.isEmpty || !proxy.routing.sessionRules.isEmpty || !proxy.routing.contentRules.isEmpty
            || !proxy.routing.switching.isEmpty {
            problem(proxy.location, "tcp-request", "a statistics proxy with 'tcp-request' or 'use_backend' rules is not supported (Sluice's page applies none); put the rules in a tcp proxy in front of it")
        }
        page.maxConnections = proxy.maxConnections
        if let timeout = proxy.httpRequestTimeout ?? proxy.clientTimeout { page.requestTimeout = timeout }
        page.ignoreProbes = proxy.httpOnly.contains { $0.keyword == "option http-ignore-probes" }
        if let (words, location) = adminLine {
            switch adminAccess(Array(words.dropFirst(2)), negated: words.count > 2 && words[2] == "unless", valid: words.count > 2 && ["if", "unless"].contains(words[2])) {
            case .failure(let e): problem(location, "stats admin", e.message)
            case .success(let access) where page.users.isEmpty && access != nil:
                problem(location, "stats admin", "ignored: without 'stats auth' anyone who reaches the page could change servers; Sluice lets only an authenticated user do so", warning: true)
            case .success(let access): page.admin = access
            }
        }
        if page.uri == nil && page.prometheusPath == nil && !refused {
            problem(proxy.location, "stats", "this mode http proxy enables neither the statistics page ('stats enable' or 'stats uri') nor the Prometheus exporter")
        }
        return page
    }

    /// `stats admin if|unless <condition>` with the conditions such pages use: `TRUE`, `FALSE`,
    /// `LOCALHOST`, `{ src <network>… }`. Nil: nobody.
    static func adminAccess(_ condition: [String], negated: Bool, valid: Bool) -> Result<StatsPage.AdminAccess?, ValueError> {
        let usage = "expected 'stats admin if|unless TRUE|FALSE|LOCALHOST|{ src <network>… }'"
        guard valid, condition.count >= 2 else { return .failure(ValueError(usage)) }
        let terms = Array(condition.dropFirst())
        let networks: [String]
        switch terms {
        case ["TRUE"]: return .success(negated ? nil : .everyone)
        case ["FALSE"]: return .success(negated ? .everyone : nil)
        case ["LOCALHOST"]: networks = ["127.0.0.0/8"]
        default:
            guard terms.count >= 4, terms.first == "{", terms[1] == "src", terms.last == "}" else {
                return .failure(ValueError("'\(terms.joined(separator: " "))': \(usage) (Sluice evaluates the page's conditions on the client's address only)"))
            }
            networks = Array(terms[2..<(terms.count - 1)])
        }
        var builder = PatternSet.Builder(method: .ip)
        for network in networks where builder.add(network, ignoreCase: false) != nil {
            return .failure(ValueError("'\(network)' is not an IP address or network"))
        }
        return .success(negated ? .notFrom(networks) : .from(networks))
    }
}
