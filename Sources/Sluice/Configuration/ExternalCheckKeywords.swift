/// `option external-check`, `external-check command|path` and the global `external-check`, read and
/// checked as HAProxy 2.6 reads them (`proxy_parse_extcheck`, cfgparse.c).
extension Parser {
    /// `external-check command <cmd>` / `external-check path <path>` in a proxy.
    mutating func externalCheckKeyword(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        let keyword = "external-check"
        guard words.count >= 2 else { return error(location, keyword: keyword, "missing argument after 'external-check'.") }
        guard words[1] == "command" || words[1] == "path" else {
            return error(location, keyword: keyword, "'external-check' only supports 'command' and 'path'. but got '\(words[1])'.")
        }
        guard words.count >= 3, !words[2].isEmpty else { return error(location, keyword: keyword, "missing argument after '\(words[1])'.") }
        guard words.count == 3 else { return error(location, keyword: keyword, "'external-check \(words[1])' cannot handle unexpected argument '\(words[3])'.") }
        if words[1] == "command" { proxy.externalCheckCommand = (words[2], location) } else { proxy.externalCheckPath = (words[2], location) }
    }

    /// The check of a proxy with `option external-check`, and HAProxy's errors when it cannot run.
    mutating func externalCheck(_ proxy: ProxyDraft) -> HealthCheck {
        if !global.externalCheck {
            report(.error, section: proxy.label, proxy.location, keyword: "option external-check",
                   "Proxy '\(proxy.name)' : 'option external-check' unable to find required 'global.external-check'.")
        }
        guard let (command, _) = proxy.externalCheckCommand else {
            report(.error, section: proxy.label, proxy.location, keyword: "option external-check",
                   "Proxy '\(proxy.name)' : 'option external-check' unable to find required 'external-check command'.")
            return .tcpConnect
        }
        var check = ExternalCheck(command: command, path: proxy.externalCheckPath?.0)
        // HAProxy's arguments 1 and 2: the first listener of the proxy (a `listen`'s), else NOT_USED.
        if let bind = proxy.binds.first?.0 {
            if let unix = bind.endpoint.unix {
                check.proxyAddress = unix.isAbstract ? "" : unix.path  // HAProxy copies sun_path, which starts with 0 for abns@
            } else {
                check.proxyAddress = bind.endpoint.host ?? (bind.v6Only == false ? "::" : "0.0.0.0")
                check.proxyPort = "\(bind.endpoint.port)"
            }
        }
        return .external(check)
    }

    /// `external-check command|path` without `option external-check` are ignored with HAProxy's
    /// warnings; a command without a `/` needs a path to be searched in.
    mutating func externalCheckWarnings(_ proxy: ProxyDraft) {
        let external = if case .external = proxy.checkKind { true } else { false }
        if let (command, location) = proxy.externalCheckCommand {
            if !external {
                report(.warning, section: proxy.label, location, keyword: "external-check",
                       "'external-check command' will be ignored for \(proxy.kind == .listen ? "proxy" : "backend") '\(proxy.name)' (requires 'option external-check').")
            }
            if !command.hasPrefix("/") && proxy.externalCheckPath == nil {
                report(.error, section: proxy.label, location, keyword: "external-check",
                       "Proxy '\(proxy.name)': 'external-check command' does not have a leading '/' and 'external-check path' is not set.")
            }
        }
        if let (_, location) = proxy.externalCheckPath, !external {
            report(.warning, section: proxy.label, location, keyword: "external-check",
                   "'external-check path' will be ignored for \(proxy.kind == .listen ? "proxy" : "backend") '\(proxy.name)' (requires 'option external-check').")
        }
    }
}
