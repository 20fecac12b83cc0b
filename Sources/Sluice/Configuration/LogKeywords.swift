/// Where and how log lines go: HAProxy's `log` lines, in `global` and in proxies.
public struct LogTarget: Hashable, Sendable {
    /// Where lines are sent.
    public enum Destination: Hashable, Sendable, CustomStringConvertible {
        /// `stdout` / `fd@1`.
        case standardOutput
        /// `stderr` / `fd@2`.
        case standardError
        /// A UNIX datagram socket such as `/dev/log` (`unix@/dev/log`).
        case unixDatagram(path: String)
        /// A syslog server over UDP: `<ip>[:port]`, `udp@…`, `udp4@…`, `udp6@…` (port 514 by default).
        case udp(ip: String, port: Int)

        /// As a `log` line writes it.
        public var description: String {
            switch self {
            case .standardOutput: "stdout"
            case .standardError: "stderr"
            case .unixDatagram(let path): path
            case .udp(let ip, let port): ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
            }
        }
    }

    /// The syslog header put before each line (HAProxy's `format`).
    public enum Format: String, Hashable, Sendable, CaseIterable {
        /// `<PRI>Mmm dd hh:mm:ss tag[pid]: ` — rfc3164 without the host name (HAProxy's default).
        case local
        /// `<PRI>Mmm dd hh:mm:ss host tag[pid]: `.
        case rfc3164
        /// `<PRI>1 <ISO 8601 time> host tag pid - - `.
        case rfc5424
        /// `<PRI>`.
        case priority
        /// `<level>` (what systemd's journal reads).
        case short
        /// `<level><ISO 8601 time> `.
        case timed
        /// `<ISO 8601 time> `.
        case iso
        /// Nothing: the line alone.
        case raw
    }

    /// The 24 syslog facilities, in their numeric order.
    public static let facilities = ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2",
                                    "ftp", "ntp", "audit", "alert", "cron2", "local0", "local1", "local2", "local3", "local4",
                                    "local5", "local6", "local7"]
    /// The 8 levels, most severe first (their number is their syslog severity).
    public static let levels = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]

    /// The address of the `log` line.
    public var destination: Destination
    /// `len`: longer lines are truncated to this many bytes (header included). 80–65535.
    public var maxLength: Int = 1024
    /// `format`: the header before each line.
    public var format: Format = .local
    /// The syslog facility, 0 (`kern`) to 23 (`local7`): an index into `facilities`.
    public var facility: Int
    /// Only messages at least this severe are sent (7, debug: all).
    public var maxLevel: Int = 7
    /// More severe messages are sent at this level instead (0, emerg: unchanged).
    public var minLevel: Int = 0
    /// The line named its `format` (`log-send-hostname` changes only the default one).
    var formatGiven = false

    /// A target at HAProxy's defaults: `len 1024`, `format local`, every level.
    public init(destination: Destination, facility: Int) {
        self.destination = destination
        self.facility = facility
    }
}

/// How a frontend logs its sessions.
public struct SessionLogging: Hashable, Sendable {
    /// What each session's line says.
    public enum Style: Hashable, Sendable {
        /// Without `option tcplog` or `log-format`: one line at accept, `Connect from <client> to <address> (<frontend>/TCP)`.
        case connect
        /// `log-format <string>`: one line per session in that format.
        case format(LogFormat)

        /// `option tcplog`: HAProxy's TCP log format.
        public static var tcplog: Style { .format(.tcplog) }
    }

    /// Where the lines go: the global targets with `log global`, then the proxy's own.
    public var targets: [LogTarget]
    /// What each session's line says and when it is written.
    public var style: Style = .connect
    /// `option dontlognull`: sessions that moved no byte from the client are not logged.
    public var dontLogNull = false
    /// `option logasap`: the line is written as soon as the server connection is established
    /// (`%Tt` and `%B` then say `+` what they had so far), not when the session ends.
    public var logAsap = false
    /// `option log-separate-errors`: sessions with an error, a timeout, a retry or a redispatch are
    /// logged at level `err` instead of `info`.
    public var separateErrors = false
    /// `option dontlog-normal`: only those sessions are logged.
    public var dontLogNormal = false
    /// `log-tag` of the proxy (or the global one; "sluice" by default).
    public var tag: String

    /// Sessions logged at accept (`Connect from …`) to `targets`, tagged `tag`.
    public init(targets: [LogTarget], tag: String) {
        self.targets = targets
        self.tag = tag
    }
}

/// A proxy's `log` lines while its section is read.
struct LogDraft {
    /// `log global` (resolved once the whole file is read, as HAProxy: the global section may come later).
    var usesGlobal = false
    var targets: [LogTarget] = []
    var tag: String?
    /// The session line's format, the last of `option tcplog`, `option httplog` and `log-format`
    /// (HAProxy keeps one format string per proxy).
    var format: FormatSource?
    var dontLogNull = false
    var logAsap = false
    var separateErrors = false
    var dontLogNormal = false

    enum FormatSource {
        case tcplog(SourceLocation)
        /// `option httplog` in a tcp proxy: HAProxy falls back to tcplog, with a warning at this line.
        case httplog(SourceLocation)
        case custom(String, SourceLocation)

        var location: SourceLocation {
            switch self {
            case .tcplog(let l), .httplog(let l), .custom(_, let l): l
            }
        }
    }

    var isEmpty: Bool { !usesGlobal && targets.isEmpty }
}

extension Parser {
    /// `log <address> [len <n>] [format <f>] <facility> [<level> [<minlevel>]]`; nil after an error.
    mutating func logTarget(_ words: [String], _ location: SourceLocation) -> LogTarget? {
        let usage = "log <address> [len <length>] [format <format>] <facility> [<level> [<minlevel>]]"
        guard words.count >= 3 else {
            error(location, keyword: "log", "expected '\(usage)'")
            return nil
        }
        guard let destination = logDestination(words[1], location) else { return nil }
        var index = 2
        var maxLength = 1024
        var format: LogTarget.Format?
        while index + 1 < words.count {
            switch words[index] {
            case "len":
                guard let n = Int(words[index + 1]), (80...65535).contains(n) else {
                    error(location, keyword: "log", "'len \(words[index + 1])': the length must be 80 to 65535")
                    return nil
                }
                maxLength = n
            case "format":
                guard let f = LogTarget.Format(rawValue: words[index + 1]) else {
                    error(location, keyword: "log", "'format \(words[index + 1])' is not a format; expected one of \(LogTarget.Format.allCases.map(\.rawValue).joined(separator: ", "))")
                    return nil
                }
                format = f
            case "sample":
                error(location, keyword: "log", "'sample' (sending one log in n) is not supported; every line is sent")
                return nil
            default:
                break
            }
            guard ["len", "format"].contains(words[index]) else { break }
            index += 2
        }
        guard index < words.count, let facility = LogTarget.facilities.firstIndex(of: words[index]) else {
            let got = index < words.count ? "'\(words[index])' is not a facility" : "no facility"
            error(location, keyword: "log", "\(got); expected one of \(LogTarget.facilities.joined(separator: " ")) ('\(usage)')")
            return nil
        }
        var target = LogTarget(destination: destination, facility: facility)
        target.maxLength = maxLength
        target.format = format ?? .local
        target.formatGiven = format != nil
        for (slot, word) in words[(index + 1)...].enumerated() {
            guard slot < 2 else {
                error(location, keyword: "log", "unexpected '\(word)' after the levels ('\(usage)')")
                return nil
            }
            guard let level = LogTarget.levels.firstIndex(of: word) else {
                error(location, keyword: "log", "'\(word)' is not a level; expected one of \(LogTarget.levels.joined(separator: " "))")
                return nil
            }
            if slot == 0 { target.maxLevel = level } else { target.minLevel = level }
        }
        return target
    }

    private mutating func logDestination(_ address: String, _ location: SourceLocation) -> LogTarget.Destination? {
        switch address {
        case "stdout", "fd@1": return .standardOutput
        case "stderr", "fd@2": return .standardError
        default: break
        }
        var rest = Substring(address)
        if let at = address.firstIndex(of: "@") {
            let scheme = address[..<at]
            rest = address[address.index(after: at)...]
            switch scheme {
            case "unix":
                return unixPath(String(rest), location)
            case "udp", "udp4", "udp6", "ipv4", "ipv6":
                break
            case "fd":
                error(location, keyword: "log", "'\(address)': only fd@1 (stdout) and fd@2 (stderr) are supported")
                return nil
            case "ring", "tcp", "tcp4", "tcp6", "uxst":
                error(location, keyword: "log", "'\(address)': ring buffers and stream (TCP) log servers are not supported; use a UDP server, a UNIX datagram socket such as /dev/log, stdout or stderr")
                return nil
            default:
                error(location, keyword: "log", "'\(address)': unknown address family '\(scheme)@'")
                return nil
            }
        } else if address.hasPrefix("/") {
            return unixPath(address, location)
        }
        // `ip`, `ip:port`, `[v6]:port`, or a bare IPv6 address ending in ':' before its port.
        var host = String(rest), port = 514
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":"), let p = Int(after.dropFirst()) { port = p }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":"), host.firstIndex(of: ":") == colon || IPAddress(host[..<colon]) != nil {
            let text = host[host.index(after: colon)...]
            if !text.isEmpty {
                guard let p = Int(text) else {
                    error(location, keyword: "log", "'\(address)': '\(text)' is not a port")
                    return nil
                }
                port = p
            }
            host = String(host[..<colon])
        }
        guard (1...65535).contains(port) else {
            error(location, keyword: "log", "'\(address)': the port must be 1 to 65535")
            return nil
        }
        guard IPAddress(host) != nil else {
            error(location, keyword: "log", "'\(address)' is not an IP address, a UNIX socket path, stdout or stderr (Sluice does not resolve names for log servers)")
            return nil
        }
        return .udp(ip: host, port: port)
    }

    private mutating func unixPath(_ path: String, _ location: SourceLocation) -> LogTarget.Destination? {
        guard path.utf8.count < 108 else {
            error(location, keyword: "log", "'\(path)' is longer than a UNIX socket path may be (107 bytes)")
            return nil
        }
        return .unixDatagram(path: path)
    }

    /// `log …`, `log global`, `no log` in a proxy.
    mutating func proxyLogLine(_ proxy: inout ProxyDraft, _ words: [String], negated: Bool, _ location: SourceLocation) {
        if negated {
            guard expect(words, count: 1, location, usage: "no log") else { return }
            proxy.log.usesGlobal = false
            proxy.log.targets = []
            return
        }
        if words.count >= 2 && words[1] == "global" {
            guard expect(words, count: 2, location, usage: "log global") else { return }
            proxy.log.usesGlobal = true
            return
        }
        if let target = logTarget(words, location) { proxy.log.targets.append(target) }
    }
}
