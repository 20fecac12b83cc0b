/// A `mailers` section as read, and a proxy's `email-alert` lines: HAProxy's email alerts, which
/// mail a backend's server state changes to every mailer of the section it names.
struct MailersDraft {
    var mailers: Mailers
    let location: SourceLocation
}

/// A proxy's `email-alert` settings as its lines (and its defaults') left them.
struct EmailAlertDraft {
    var mailers: String?
    var from: String?
    var to: String?
    var level: Int?
    var myHostname: String?
    /// Where the first line was, for the messages about the whole.
    var location: SourceLocation?
}

extension Parser {
    /// One line of the open `mailers` section, with HAProxy's messages.
    mutating func mailersKeyword(_ draft: inout MailersDraft, _ words: [String], _ location: SourceLocation) {
        let keyword = words[0]
        switch keyword {
        case "mailer":
            guard words.count >= 3 else { return error(location, keyword: keyword, "'mailer' expects <name> and <addr>[:<port>] as arguments") }
            if let bad = Self.invalidNameCharacter(words[1]) {
                return error(location, keyword: keyword, "character '\(bad)' is not permitted in server name '\(words[1])'")
            }
            switch ValueParser.endpoint(words[2], allowZeroPort: false) {
            case .failure(let e): error(location, keyword: keyword, "'mailer \(words[1])' : \(e.message)")
            case .success(let endpoint):
                guard endpoint.host != nil else { return error(location, keyword: keyword, "'mailer \(words[1])' : an address is needed, not '\(words[2])'") }
                draft.mailers.mailers.append(Mailers.Mailer(name: words[1], endpoint: endpoint))
            }
            if words.count > 3 { error(location, keyword: keyword, "unexpected '\(words[3])' after the mailer's address") }
        case "timeout":
            guard words.count >= 2, words[1] == "mail" else {
                return error(location, keyword: keyword, "'timeout' expects 'mail' and <time> as arguments\(words.count >= 2 ? " got '\(words[1])'" : "")")
            }
            guard words.count == 3 else { return error(location, keyword: keyword, "'timeout mail' expects <time> as argument") }
            if let time = timeValue(words[2], location, keyword: "timeout mail") {
                guard time > .zero else { return error(location, keyword: keyword, "'timeout mail' must be at least 1 ms") }
                draft.mailers.timeout = time
            }
        default:
            error(location, keyword: keyword, "not supported in a mailers section (supported: mailer, timeout mail)")
        }
    }

    /// `email-alert from|to|mailers|myhostname|level <value>` in any proxy section.
    mutating func emailAlertKeyword(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        guard words.count >= 2 else { return error(location, keyword: "email-alert", "missing argument after 'email-alert'") }
        guard words.count >= 3 else { return error(location, keyword: "email-alert", "missing argument after '\(words[1])'") }
        switch words[1] {
        case "from": proxy.emailAlert.from = words[2]
        case "to": proxy.emailAlert.to = words[2]
        case "mailers": proxy.emailAlert.mailers = words[2]
        case "myhostname": proxy.emailAlert.myHostname = words[2]
        case "level":
            guard let level = LogTarget.levels.firstIndex(of: words[2]) else {
                return error(location, keyword: "email-alert", "unknown log level '\(words[2])' after 'level'")
            }
            proxy.emailAlert.level = level
        default:
            return error(location, keyword: "email-alert", "unknown argument '\(words[1])' (expected from, to, mailers, myhostname or level)")
        }
        if proxy.emailAlert.location == nil { proxy.emailAlert.location = location }
    }

    /// A backend's email alerts once every section is read: HAProxy ignores a partial setting with
    /// a warning, and refuses a `mailers` name no section has.
    mutating func emailAlert(of proxy: ProxyDraft, mailers: [MailersDraft], hostName: String) -> EmailAlert? {
        let draft = proxy.emailAlert
        guard let location = draft.location else { return nil }
        guard let name = draft.mailers, let from = draft.from, let to = draft.to else {
            report(.warning, proxy, location, keyword: "email-alert",
                   "'email-alert' will be ignored for \(proxy.kind.haproxyTypeName) '\(proxy.name)' (the presence any of 'email-alert from', 'email-alert level' 'email-alert mailers', 'email-alert myhostname', or 'email-alert to' requires each of 'email-alert from', 'email-alert mailers' and 'email-alert to' to be present) (as HAProxy)")
            return nil
        }
        guard let section = mailers.first(where: { $0.mailers.name == name }) else {
            report(.error, proxy, location, keyword: "email-alert", "Proxy '\(proxy.name)': unable to find mailers '\(name)'")
            return nil
        }
        return EmailAlert(mailers: section.mailers, from: from, to: to, level: draft.level ?? 1, myHostname: draft.myHostname ?? hostName)
    }
}
