/// Which proxy sections accept each keyword, as in HAProxy's keyword matrix.
enum ProxyKeywords {
    static let allowed: [String: Set<SectionKind>] = [
        "mode": SectionKind.proxies,
        "bind": [.frontend, .listen],
        "default_backend": SectionKind.frontSide,
        "use_backend": [.frontend, .listen],
        "balance": SectionKind.backSide,
        "server": [.backend, .listen],
        "default-server": SectionKind.backSide,
        "timeout": SectionKind.proxies,
        "retries": SectionKind.backSide,
        "option": SectionKind.proxies,
        "no": SectionKind.proxies,
        "http-check": SectionKind.backSide,
        "tcp-check": SectionKind.backSide,
        "maxconn": SectionKind.frontSide,
        "backlog": SectionKind.frontSide,
        "log": SectionKind.proxies,
        "description": SectionKind.realProxies,
    ]

    /// Timeouts and the sections they belong to (HAProxy: client side in frontends, server side in backends).
    static let timeouts: [String: Set<SectionKind>] = [
        "client": SectionKind.frontSide, "client-fin": SectionKind.frontSide,
        "connect": SectionKind.backSide, "server": SectionKind.backSide, "server-fin": SectionKind.backSide,
        "queue": SectionKind.backSide, "check": SectionKind.backSide, "tunnel": SectionKind.backSide,
    ]

    /// Keywords that only mean something to an HTTP proxy, with what to do instead.
    static let layer7: [String: String] = [
        "http-request": "Sluice balances at Layer 4 and does not parse HTTP requests",
        "http-response": "Sluice balances at Layer 4 and does not parse HTTP responses",
        "http-after-response": "Sluice balances at Layer 4 and does not parse HTTP responses",
        "cookie": "cookie persistence needs HTTP; Sluice balances at Layer 4",
        "redirect": "redirects need HTTP; Sluice balances at Layer 4",
        "errorfile": "error pages need HTTP; Sluice balances at Layer 4",
        "capture": "captures need HTTP; Sluice balances at Layer 4",
        "acl": "ACLs are not supported yet",
        "stats": "the HTTP stats page is not supported; use the runtime API ('stats socket' in global, 'show stat')",
        "compression": "compression needs HTTP; Sluice balances at Layer 4",
        "unique-id-format": "unique IDs need HTTP; Sluice balances at Layer 4",
        "reqadd": "removed from HAProxy; and Sluice balances at Layer 4",
        "rspadd": "removed from HAProxy; and Sluice balances at Layer 4",
    ]

    /// Keywords HAProxy has in tcp mode that Sluice does not implement yet.
    static let notYet: Set<String> = [
        "tcp-request", "tcp-response", "hash-type", "hash-balance-factor", "fullconn", "source", "bind-process",
        "server-template", "dispatch", "persist", "stick-table", "stick", "rate-limit", "id", "disabled", "enabled",
        "external-check", "load-server-state-from-file", "server-state-file-name", "email-alert", "monitor",
        "declare", "filter", "force-persist", "ignore-persist", "log-format", "log-tag", "max-keep-alive-queue",
    ]

    static func describe(_ sections: Set<SectionKind>) -> String {
        SectionKind.allCases.filter { sections.contains($0) }.map(\.rawValue).joined(separator: ", ")
    }
}

extension Parser {
    mutating func proxyKeyword(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        let keyword = words[0]
        if let why = ProxyKeywords.layer7[keyword] {
            error(location, keyword: keyword, "rejected: \(why)")
            return
        }
        if ProxyKeywords.notYet.contains(keyword) {
            error(location, keyword: keyword, "not supported yet by Sluice")
            return
        }
        guard let allowed = ProxyKeywords.allowed[keyword] else {
            if ["maxpipes", "nbthread", "tune.pipesize", "nosplice", "hard-stop-after", "spread-checks"].contains(keyword) {
                error(location, keyword: keyword, "is not allowed in a '\(proxy.kind.rawValue)' section (it belongs in global)")
            } else if ["contimeout", "clitimeout", "srvtimeout"].contains(keyword) {
                error(location, keyword: keyword, "removed in HAProxy 2.x; use 'timeout connect', 'timeout client' or 'timeout server'")
            } else {
                error(location, keyword: keyword, "unknown keyword in a '\(proxy.kind.rawValue)' section")
            }
            return
        }
        guard allowed.contains(proxy.kind) else {
            error(location, keyword: keyword, "is not allowed in a '\(proxy.kind.rawValue)' section (it belongs in \(ProxyKeywords.describe(allowed)))")
            return
        }
        switch keyword {
        case "mode":
            guard expect(words, count: 2, location, usage: "mode tcp") else { return }
            switch words[1] {
            case "tcp": break
            case "http":
                error(location, keyword: "mode http", "rejected: Sluice is a Layer-4 (TCP) balancer; use 'mode tcp'. HTTP routing, header rewriting and cookies need an HTTP proxy in front of or behind Sluice")
            default:
                error(location, keyword: "mode", "'\(words[1])' is not supported; Sluice supports 'mode tcp'")
            }
        case "bind":
            guard words.count >= 2 else {
                error(location, keyword: "bind", "missing address: expected 'bind <address>:<port> [backlog <n>]'")
                return
            }
            addBind(&proxy, words[1], Array(words.dropFirst(2)), location)
        case "default_backend":
            guard expect(words, count: 2, location, usage: "default_backend <backend>") else { return }
            proxy.defaultBackend = (words[1], location)
        case "use_backend":
            error(location, keyword: keyword, "not supported yet: Sluice routes each frontend to its 'default_backend'")
        case "balance":
            guard words.count >= 2 else {
                error(location, keyword: keyword, "missing algorithm: expected 'balance roundrobin'")
                return
            }
            switch words[1] {
            case "roundrobin":
                if words.count > 2 { error(location, keyword: keyword, "'roundrobin' takes no arguments") }
                proxy.balance = .roundRobin
            case "static-rr", "leastconn", "first", "source", "random", "hash", "uri", "url_param", "hdr", "rdp-cookie":
                error(location, keyword: keyword, "algorithm '\(words[1])' is not supported yet; supported: roundrobin")
            default:
                error(location, keyword: keyword, "unknown algorithm '\(words[1])'; supported: roundrobin")
            }
        case "server":
            serverLine(&proxy, words, location)
        case "default-server":
            var template = proxy.serverTemplate
            serverParameters(&template, words.dropFirst(1), location, keyword: "default-server")
            proxy.serverTemplate = template
        case "timeout":
            timeoutLine(&proxy, words, location)
        case "retries":
            guard expect(words, count: 2, location, usage: "retries <count>") else { return }
            proxy.retries = value(ValueParser.integer(words[1], in: 0...100, what: "retries"), location, keyword: keyword) ?? proxy.retries
        case "maxconn":
            guard expect(words, count: 2, location, usage: "maxconn <number>") else { return }
            proxy.maxConnections = value(ValueParser.integer(words[1], in: 1...1_000_000, what: "maxconn"), location, keyword: keyword)
        case "backlog":
            guard expect(words, count: 2, location, usage: "backlog <number>") else { return }
            proxy.backlog = value(ValueParser.integer(words[1], in: 1...1_000_000, what: "backlog"), location, keyword: keyword)
        case "option":
            optionLine(&proxy, Array(words.dropFirst()), negated: false, location)
        case "no":
            guard words.count >= 3, words[1] == "option" else {
                error(location, keyword: "no", "expected 'no option <name>'")
                return
            }
            optionLine(&proxy, Array(words.dropFirst(2)), negated: true, location)
        case "http-check":
            httpCheckLine(&proxy, words, location)
        case "tcp-check":
            tcpCheckLine(&proxy, words, location)
        case "log":
            warning(location, keyword: keyword, "log targets are not supported yet; Sluice logs to standard error")
        case "description":
            break  // free text for humans; nothing to do at Layer 4
        default:
            preconditionFailure("keyword '\(keyword)' is in the allowed table but has no handler")
        }
    }

    mutating func addBind(_ proxy: inout ProxyDraft, _ address: String, _ options: [String], _ location: SourceLocation) {
        if address.contains(",") {
            for part in address.split(separator: ",") { addBind(&proxy, String(part), options, location) }
            return
        }
        guard let endpoint = value(ValueParser.endpoint(address, allowZeroPort: true), location, keyword: "bind") else { return }
        var bind = Bind(endpoint: endpoint)
        var i = 0
        while i < options.count {
            switch options[i] {
            case "backlog":
                guard i + 1 < options.count else { error(location, keyword: "bind", "'backlog' needs a value"); return }
                bind.backlog = value(ValueParser.integer(options[i + 1], in: 1...1_000_000, what: "backlog"), location, keyword: "bind")
                i += 2
            case "ssl", "crt", "alpn", "npn", "ca-file", "verify":
                error(location, keyword: "bind", "'\(options[i])': TLS is not supported; Sluice forwards TLS untouched at Layer 4 (terminate it on the servers)")
                return
            default:
                error(location, keyword: "bind", "bind option '\(options[i])' is not supported yet; supported: backlog")
                return
            }
        }
        proxy.binds.append((bind, location))
    }

    private mutating func timeoutLine(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        guard words.count >= 2 else {
            error(location, keyword: "timeout", "missing name: expected 'timeout <connect|client|server|…> <time>'")
            return
        }
        let name = words[1]
        let keyword = "timeout \(name)"
        guard let allowed = ProxyKeywords.timeouts[name] else {
            if ["http-request", "http-keep-alive", "tarpit"].contains(name) {
                if proxy.kind == .defaults {
                    warning(location, keyword: keyword, "applies to HTTP proxies only; it has no effect in Sluice")
                } else {
                    error(location, keyword: keyword, "rejected: applies to HTTP proxies only; Sluice balances at Layer 4")
                }
            } else {
                error(location, keyword: keyword, "unknown timeout; supported: connect, client, server, tunnel, client-fin, server-fin, queue, check")
            }
            return
        }
        guard allowed.contains(proxy.kind) else {
            error(location, keyword: keyword, "is not allowed in a '\(proxy.kind.rawValue)' section (it belongs in \(ProxyKeywords.describe(allowed)))")
            return
        }
        guard words.count == 3 else {
            error(location, keyword: keyword, words.count < 3 ? "missing time: expected '\(keyword) <time>'" : "too many arguments: expected '\(keyword) <time>'")
            return
        }
        guard let time = value(ValueParser.time(words[2]), location, keyword: keyword) else { return }
        switch name {
        case "client": proxy.clientTimeout = time
        case "client-fin": proxy.clientFinTimeout = time
        case "connect": proxy.connectTimeout = time
        case "server": proxy.serverTimeout = time
        case "server-fin": proxy.serverFinTimeout = time
        case "queue": proxy.queueTimeout = time
        case "check": proxy.checkTimeout = time
        case "tunnel": proxy.tunnelTimeout = time
        default: preconditionFailure("timeout '\(name)' is in the table but has no field")
        }
    }

    private mutating func optionLine(_ proxy: inout ProxyDraft, _ words: [String], negated: Bool, _ location: SourceLocation) {
        guard let name = words.first else {
            error(location, keyword: "option", "missing option name")
            return
        }
        let keyword = (negated ? "no option " : "option ") + name
        let backOnly: Set<String> = ["redispatch", "allbackups", "httpchk", "tcp-check"]
        if backOnly.contains(name) && !SectionKind.backSide.contains(proxy.kind) {
            error(location, keyword: keyword, "is not allowed in a '\(proxy.kind.rawValue)' section (it belongs in \(ProxyKeywords.describe(SectionKind.backSide)))")
            return
        }
        switch name {
        case "redispatch":
            if words.count > 2 { error(location, keyword: keyword, "too many arguments") }
            if words.count == 2 {
                error(location, keyword: keyword, "a redispatch interval is not supported yet; write 'option redispatch'")
            }
            proxy.redispatch = !negated
        case "allbackups":
            proxy.allBackups = !negated
        case "httpchk":
            if negated { proxy.checkKind = .tcpConnect; return }
            var check = proxy.httpCheck
            let args = Array(words.dropFirst())
            // HAProxy: `option httpchk <uri>` alone, or `<method> <uri> [<version>]`.
            switch args.count {
            case 0: break
            case 1: check.uri = args[0]
            case 2: check.method = args[0]; check.uri = args[1]
            case 3: check.method = args[0]; check.uri = args[1]; check.version = args[2]
            default:
                error(location, keyword: keyword, "too many arguments: expected 'option httpchk [<method>] [<uri>] [<version>]'; add headers with 'http-check send hdr <name> <value>'")
            }
            if !check.uri.hasPrefix("/") && check.uri != "*" {
                error(location, keyword: keyword, "URI '\(check.uri)' must start with '/'")
            }
            proxy.httpCheck = check
            proxy.checkKind = .http
        case "tcp-check":
            proxy.checkKind = negated ? .tcpConnect : .tcp
        case "splice-auto", "splice-request", "splice-response":
            break  // Sluice always splices (unless 'nosplice' in global): the option is already in effect.
        case "tcplog", "dontlognull", "log-health-checks", "logasap":
            warning(location, keyword: keyword, "logging options are not supported yet; Sluice logs to standard error")
        case "httpclose", "http-server-close", "http-keep-alive", "forceclose", "http-pretend-keepalive":
            warning(location, keyword: keyword, "has no meaning at Layer 4; ignored")
        case "forwardfor":
            error(location, keyword: keyword, "rejected: X-Forwarded-For is an HTTP header and Sluice balances at Layer 4 without parsing HTTP; to pass the client address to servers at Layer 4, use the PROXY protocol ('send-proxy' on the server line, when supported)")
        case "httplog", "http-use-htx", "http-buffer-request", "originalto", "http-ignore-probes", "accept-invalid-http-request":
            error(location, keyword: keyword, "rejected: HTTP-only option; Sluice balances at Layer 4")
        case "tcpka", "clitcpka", "srvtcpka", "abortonclose", "nolinger", "transparent", "independent-streams", "persist",
             "ldap-check", "mysql-check", "pgsql-check", "redis-check", "smtpchk", "ssl-hello-chk", "spop-check":
            error(location, keyword: keyword, "not supported yet by Sluice")
        default:
            error(location, keyword: keyword, "unknown option")
        }
    }
}
