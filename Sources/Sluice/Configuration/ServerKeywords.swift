extension Parser {
    /// `server <name> <address>:<port> [param*]`
    mutating func serverLine(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        guard words.count >= 2 else {
            error(location, keyword: "server", "missing name and address: expected 'server <name> <address>:<port> [params]'")
            return
        }
        let name = words[1]
        guard words.count >= 3 else {
            error(location, keyword: "server", "server '\(name)' has no address: expected 'server \(name) <address>:<port> [params]'")
            return
        }
        guard let endpoint = value(ValueParser.endpoint(words[2], allowZeroPort: false), location, keyword: "server") else { return }
        if endpoint.host == nil {
            error(location, keyword: "server", "server '\(name)' needs a host, not the wildcard '\(words[2])'")
            return
        }
        var template = proxy.serverTemplate
        serverParameters(&template, words.dropFirst(3), location, keyword: "server", serverName: name)
        var server = Server(
            name: name, endpoint: endpoint, weight: template.weight, isBackup: template.isBackup,
            isDisabled: template.isDisabled, check: template.checkEnabled ? template.check : nil)
        server.observeLayer4 = template.observeLayer4
        server.errorLimit = template.errorLimit
        server.onError = template.onError
        server.shutdownSessionsWhenDown = template.shutdownSessionsWhenDown
        server.shutdownBackupSessionsWhenUp = template.shutdownBackupSessionsWhenUp
        proxy.servers.append((server, location))
    }

    /// Parameters shared by `server` and `default-server`, with HAProxy's names and ranges.
    mutating func serverParameters(_ t: inout ServerTemplate, _ params: ArraySlice<String>, _ location: SourceLocation,
                                   keyword: String, serverName: String? = nil) {
        let who = serverName.map { " for server '\($0)'" } ?? ""
        var i = params.startIndex
        func argument(_ i: Int) -> String? { i + 1 < params.endIndex ? params[i + 1] : nil }
        while i < params.endIndex {
            let param = params[i]
            let takesValue: Set<String> = ["weight", "port", "addr", "inter", "fastinter", "downinter", "rise", "fall", "id",
                                           "observe", "error-limit", "on-error", "on-marked-down", "on-marked-up"]
            var arg = ""
            if takesValue.contains(param) {
                guard let a = argument(i) else {
                    error(location, keyword: keyword, "'\(param)'\(who) needs a value")
                    return
                }
                arg = a
            }
            switch param {
            case "check": t.checkEnabled = true
            case "no-check": t.checkEnabled = false
            case "backup": t.isBackup = true
            case "no-backup": t.isBackup = false
            case "disabled": t.isDisabled = true
            case "enabled": t.isDisabled = false
            case "weight":
                if let w = Int(arg), (0...256).contains(w) {
                    t.weight = w
                } else {
                    error(location, keyword: keyword, Int(arg) == nil ? "weight '\(arg)'\(who) is not a whole number" : "weight \(arg)\(who) is outside 0...256")
                }
            case "port":
                t.check.port = value(ValueParser.integer(arg, in: 1...65535, what: "check port"), location, keyword: keyword)
            case "addr":
                if case .failure(let e) = ValueParser.endpoint("\(arg.contains(":") ? "[\(arg)]" : arg):1", allowZeroPort: false) {
                    error(location, keyword: keyword, "addr\(who): \(e.message)")
                } else {
                    t.check.address = arg
                }
            case "inter":
                t.check.interval = positiveTime(arg, location, keyword: keyword, what: "inter") ?? t.check.interval
            case "fastinter":
                t.check.fastInterval = positiveTime(arg, location, keyword: keyword, what: "fastinter")
            case "downinter":
                t.check.downInterval = positiveTime(arg, location, keyword: keyword, what: "downinter")
            case "rise":
                t.check.rise = value(ValueParser.integer(arg, in: 1...1000, what: "rise"), location, keyword: keyword) ?? t.check.rise
            case "fall":
                t.check.fall = value(ValueParser.integer(arg, in: 1...1000, what: "fall"), location, keyword: keyword) ?? t.check.fall
            case "observe":
                switch arg {
                case "layer4": t.observeLayer4 = true
                case "layer7": error(location, keyword: keyword, "'observe layer7'\(who) needs HTTP; Sluice observes layer4 only")
                default: error(location, keyword: keyword, "'observe \(arg)'\(who): expected layer4")
                }
            case "error-limit":
                t.errorLimit = value(ValueParser.integer(arg, in: 1...1000, what: "error-limit"), location, keyword: keyword) ?? t.errorLimit
            case "on-error":
                if let action = ObservedErrorAction(rawValue: arg) { t.onError = action } else {
                    error(location, keyword: keyword, "'on-error \(arg)'\(who): expected fastinter, fail-check, sudden-death or mark-down")
                }
            case "on-marked-down":
                if arg == "shutdown-sessions" { t.shutdownSessionsWhenDown = true } else {
                    error(location, keyword: keyword, "'on-marked-down \(arg)'\(who): expected shutdown-sessions")
                }
            case "on-marked-up":
                if arg == "shutdown-backup-sessions" { t.shutdownBackupSessionsWhenUp = true } else {
                    error(location, keyword: keyword, "'on-marked-up \(arg)'\(who): expected shutdown-backup-sessions")
                }
            case "id":
                _ = value(ValueParser.integer(arg, in: 1...Int(Int32.max), what: "id"), location, keyword: keyword)
            case "maxconn", "maxqueue", "minconn", "slowstart", "send-proxy", "send-proxy-v2", "check-send-proxy",
                 "agent-check", "agent-port",
                 "agent-addr", "agent-inter", "agent-send", "track", "resolvers", "init-addr", "cookie", "source",
                 "ssl", "verify", "sni", "check-ssl", "proto", "pool-max-conn", "tfo", "namespace":
                error(location, keyword: keyword, "server parameter '\(param)'\(who) is not supported yet by Sluice")
                return
            default:
                error(location, keyword: keyword, "unknown server parameter '\(param)'\(who)")
                return
            }
            i += takesValue.contains(param) ? 2 : 1
        }
    }

    private mutating func positiveTime(_ text: String, _ location: SourceLocation, keyword: String, what: String) -> Duration? {
        guard let t = value(ValueParser.time(text), location, keyword: keyword) else { return nil }
        if t <= .zero {
            error(location, keyword: keyword, "\(what) must be greater than zero")
            return nil
        }
        return t
    }
}
