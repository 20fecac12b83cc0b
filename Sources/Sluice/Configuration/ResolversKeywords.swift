/// The `resolvers` section's keywords, with HAProxy's names, defaults and ranges.
extension Parser {
    mutating func resolversKeyword(_ section: inout Resolvers, _ words: [String], _ location: SourceLocation) {
        let keyword = words[0]
        switch keyword {
        case "nameserver":
            sectionsNamingNameservers.insert(section.name)
            guard words.count >= 3 else {
                error(location, keyword: keyword, "expected 'nameserver <name> <address>[:port]'")
                return
            }
            if words.count > 3 {
                error(location, keyword: keyword, "nameserver parameters ('\(words[3])' …) are not supported; only 'nameserver <name> [udp@|tcp@]<address>[:port]'")
            }
            if section.nameservers.contains(where: { $0.name == words[1] }) {
                error(location, keyword: keyword, "a nameserver named '\(words[1])' is already in resolvers '\(section.name)'")
            }
            if let server = nameserver(words[1], words[2], location) { section.nameservers.append(server) }
        case "parse-resolv-conf":
            guard expect(words, count: 1, location, usage: "parse-resolv-conf") else { return }
            switch systemNameservers() {
            case .success(let servers): section.nameservers += servers
            case .failure(let failure): error(location, keyword: keyword, "cannot read /etc/resolv.conf: \(failure.reason)")
            }
        case "resolve_retries":
            guard expect(words, count: 2, location, usage: "resolve_retries <nb>") else { return }
            if let n = value(ValueParser.integer(words[1], in: 1...Int(Int32.max), what: "resolve_retries"), location, keyword: keyword) { section.retries = n }
        case "accepted_payload_size":
            guard expect(words, count: 2, location, usage: "accepted_payload_size <nb>") else { return }
            if let n = value(ValueParser.integer(words[1], in: 512...65535, what: "accepted_payload_size"), location, keyword: keyword) {
                section.acceptedPayloadSize = n
            }
        case "timeout":
            guard words.count == 3, ["resolve", "retry"].contains(words[1]) else {
                error(location, keyword: keyword, "expected 'timeout resolve|retry <time>'")
                return
            }
            guard let time = timeValue(words[2], location, keyword: "timeout \(words[1])") else { return }
            guard time > .zero else {
                error(location, keyword: "timeout \(words[1])", "must be greater than zero")
                return
            }
            if words[1] == "resolve" { section.resolveTimeout = time } else { section.retryTimeout = time }
        case "hold":
            let kinds = ["nx", "refused", "timeout", "other", "valid", "obsolete"]
            guard words.count == 3, kinds.contains(words[1]) else {
                error(location, keyword: keyword, "expected 'hold \(kinds.joined(separator: "|")) <time>'")
                return
            }
            guard let time = timeValue(words[2], location, keyword: "hold \(words[1])") else { return }
            switch words[1] {
            case "nx": section.holdNX = time
            case "refused": section.holdRefused = time
            case "timeout": section.holdTimeout = time
            case "other": section.holdOther = time
            case "valid": section.holdValid = time
            default: section.holdObsolete = time
            }
        default:
            error(location, keyword: keyword, "unknown keyword in a resolvers section; Sluice reads nameserver, parse-resolv-conf, resolve_retries, timeout resolve|retry, hold <status> and accepted_payload_size")
        }
    }

    /// The `nameserver` lines of `/etc/resolv.conf` (those with an IP address), as name servers
    /// named after their address.
    func systemNameservers() -> Result<[Resolvers.Nameserver], SystemError> {
        readFile("/etc/resolv.conf").map { text in
            text.lines.compactMap { line in
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard fields.count >= 2, fields[0] == "nameserver", SocketAddress(ip: String(fields[1]), port: 53) != nil else { return nil }
                return .init(name: String(fields[1]), address: String(fields[1]), port: 53, overTCP: false)
            }
        }
    }

    /// `[udp@|tcp@]<ip>[:port]` (53 by default). Names are not allowed: a name server needs an address.
    private mutating func nameserver(_ name: String, _ text: String, _ location: SourceLocation) -> Resolvers.Nameserver? {
        var rest = Substring(text)
        var overTCP = false
        if rest.hasPrefix("tcp@") { overTCP = true; rest = rest.dropFirst(4) } else if rest.hasPrefix("udp@") { rest = rest.dropFirst(4) }
        var host = String(rest)
        var port = 53
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                error(location, keyword: "nameserver", "'\(text)': unterminated '[' in an IPv6 address")
                return nil
            }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else {
                    error(location, keyword: "nameserver", "'\(text)': port '\(after.dropFirst())' is not 1...65535")
                    return nil
                }
                port = p
            }
        } else if rest.filter({ $0 == ":" }).count == 1, let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                error(location, keyword: "nameserver", "'\(text)': port '\(rest[rest.index(after: colon)...])' is not 1...65535")
                return nil
            }
            port = p
        }
        guard SocketAddress(ip: host, port: port) != nil else {
            error(location, keyword: "nameserver", "'\(text)': '\(host)' is not an IP address (a name server is given by address)")
            return nil
        }
        return .init(name: name, address: host, port: port, overTCP: overTCP)
    }
}
