import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// HTTP/1.1 for the statistics proxies (`StatsPage`): the Prometheus exporter, `show stat`'s CSV
/// (`<uri>;csv`), an HTML page and its admin form (`stats admin`: a POST of HAProxy's form fields),
/// on the proxies' own `bind` addresses. One thread and poll(2), never a reactor: a scrape costs
/// the data path nothing but reading its atomic counters. One request per connection
/// (`Connection: close`), heads up to 8 KiB, bodies up to 16 KiB, `StatsPage.requestTimeout` to
/// send one; at most `StatsPage.maxConnections` per page and 256 in all at once.
final class StatsPageServer: @unchecked Sendable {
    /// What the pages show, taken when a request comes.
    struct Sources: Sendable {
        let metrics: @Sendable () -> String
        let rows: @Sendable () -> [[String: String]]
        /// Runs a runtime-API command at admin level (the page's actions); its reply.
        let command: @Sendable (String) -> String
        let version: String
    }

    struct Listener {
        let fd: CInt
        let page: StatsPage
    }

    /// Each page's `stats admin` networks, compiled once (by proxy name).
    private let adminNetworks: [String: PatternSet]

    private let listeners: [Listener]
    private let sources: Sources
    private var wake: [CInt] = [-1, -1]
    private var thread: OSThread?

    private struct Client {
        let fd: CInt
        let page: StatsPage
        let deadline: Int64
        var head: [UInt8] = []
    }

    init(listeners: [Listener], sources: Sources) {
        self.listeners = listeners
        self.sources = sources
        var networks: [String: PatternSet] = [:]
        for page in listeners.map(\.page) {
            switch page.admin {
            case .from(let list), .notFrom(let list):
                var builder = PatternSet.Builder(method: .ip)
                for network in list { _ = builder.add(network, ignoreCase: false) }
                networks[page.name] = PatternSet(builder)
            default: break
            }
        }
        adminNetworks = networks
    }

    func start() throws(SystemError) {
        guard pipe(&wake) == 0 else { throw SystemError(code: errno, call: "pipe") }
        for fd in wake { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        thread = try OSThread.spawn("sluice-stats") { [self] in serve() }
    }

    func stop() {
        guard wake[1] >= 0 else { return }
        var b: UInt8 = 1
        _ = write(wake[1], &b, 1)
        thread?.join()
        thread = nil
        for fd in wake { close(fd) }
        wake = [-1, -1]
        for listener in listeners { close(listener.fd) }
    }

    private func serve() {
        var clients: [Client] = []
        while true {
            var polls = [pollfd(fd: wake[0], events: Int16(POLLIN), revents: 0)]
            // A page at its `maxconn` leaves new connections in its listeners' backlog.
            var open = Dictionary(clients.map { ($0.page.name, 1) }, uniquingKeysWith: +)
            func room(_ page: StatsPage) -> Int {
                min(256 - clients.count, page.maxConnections.map { $0 - open[page.name, default: 0] } ?? .max)
            }
            polls += listeners.map { pollfd(fd: $0.fd, events: room($0.page) > 0 ? Int16(POLLIN) : 0, revents: 0) }
            polls += clients.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let now = monotonicMilliseconds()
            let next = clients.map(\.deadline).min().map { max(0, $0 - now) } ?? 1000
            guard poll(&polls, nfds_t(polls.count), Int32(min(next, 1000))) >= 0 || errno == EINTR else { continue }
            if polls[0].revents != 0 { break }
            for (i, listener) in listeners.enumerated() where polls[1 + i].revents & Int16(POLLIN) != 0 {
                while room(listener.page) > 0 {
                    let fd = CShims_accept4_nonblock(listener.fd)
                    guard fd >= 0 else { break }
                    clients.append(Client(fd: fd, page: listener.page, deadline: monotonicMilliseconds() + listener.page.requestTimeout.milliseconds))
                    open[listener.page.name, default: 0] += 1
                }
            }
            var kept: [Client] = []
            let base = 1 + listeners.count
            let after = monotonicMilliseconds()
            for (i, var client) in clients.enumerated() {
                if i < polls.count - base, polls[base + i].revents != 0 {
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    let n = recv(client.fd, &buffer, buffer.count, 0)
                    if n > 0 {
                        client.head += buffer[..<n]
                        if let end = Self.headEnd(client.head) {
                            let length = Self.contentLength(client.head[..<end])
                            if length > 16_384 {
                                send(client.fd, status: "413 Content Too Large", type: "text/plain", body: "request body too large\n")
                                close(client.fd)
                                continue
                            }
                            if client.head.count >= end + 4 + length {
                                respond(client.fd, Array(client.head[..<end]), body: Array(client.head[(end + 4)..<(end + 4 + length)]), page: client.page)
                                close(client.fd)
                                continue
                            }
                        } else if client.head.count > 8192 {
                            send(client.fd, status: "431 Request Header Fields Too Large", type: "text/plain", body: "request head too large\n")
                            close(client.fd)
                            continue
                        }
                    } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                        close(client.fd)
                        continue
                    }
                }
                if after >= client.deadline {
                    // HAProxy's answer to `timeout http-request`; with `option http-ignore-probes`
                    // a connection that sent nothing is closed without it.
                    if !(client.head.isEmpty && client.page.ignoreProbes) {
                        send(client.fd, status: "408 Request Time-out", type: "text/plain", body: "request timed out\n")
                    }
                    close(client.fd)
                    continue
                }
                kept.append(client)
            }
            clients = kept
        }
        for client in clients { close(client.fd) }
    }

    /// The head's `Content-Length` (0 without one).
    private static func contentLength(_ head: ArraySlice<UInt8>) -> Int {
        for line in String(decoding: head, as: UTF8.self).split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
            return Int(line.dropFirst("content-length:".count).trimmingPrefix(" ")) ?? Int.max
        }
        return 0
    }

    /// Where the request head ends (the blank line), if it has.
    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i }
        return nil
    }

    private func respond(_ fd: CInt, _ head: [UInt8], body: [UInt8], page: StatsPage) {
        let lines = String(decoding: head, as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        let request = lines.first.map { $0.split(separator: " ") } ?? []
        guard request.count == 3, request[2].hasPrefix("HTTP/1.") else {
            return send(fd, status: "400 Bad Request", type: "text/plain", body: "bad request\n")
        }
        let method = request[0], target = String(request[1])
        guard method == "GET" || method == "HEAD" || (method == "POST" && page.uri.map { target.hasPrefix($0) } == true) else {
            return send(fd, status: "405 Method Not Allowed", type: "text/plain", body: "only GET and HEAD\n", headOnly: false)
        }
        let headOnly = method == "HEAD"
        let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
        if let exporter = page.prometheusPath, exporter.isEmpty || path == exporter {
            return send(fd, status: "200 OK", type: "text/plain; version=0.0.4; charset=utf-8", body: sources.metrics(), headOnly: headOnly)
        }
        guard let uri = page.uri, target.hasPrefix(uri) else {
            // As HAProxy: a request that no rule answers goes to the proxy's backend, which it has not.
            return send(fd, status: "503 Service Unavailable", type: "text/html", body: "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n", headOnly: headOnly)
        }
        if !page.users.isEmpty {
            let authorization = lines.dropFirst().first { $0.lowercased().hasPrefix("authorization:") }
            guard let credentials = authorization.flatMap({ Self.basicCredentials(String($0)) }),
                  page.users[credentials.user] == credentials.password else {
                return send(fd, status: "401 Unauthorized", type: "text/html",
                            body: "<html><body><h1>401 Unauthorized</h1>\nYou need a valid user and password to access this content.\n</body></html>\n",
                            extra: "WWW-Authenticate: Basic realm=\"\(page.realm)\"\r\n", headOnly: headOnly)
            }
        }
        let options = target.dropFirst(uri.count).split(separator: ";").map(String.init)
        let admin = mayAdminister(fd, page)
        if method == "POST" {
            // HAProxy's answer to its form: back to the page, with the outcome in `;st=`.
            let outcome = admin ? administer(body) : "DENY"
            return send(fd, status: "303 See Other", type: "text/plain", body: "", extra: "Location: \(uri);st=\(outcome)\r\n")
        }
        // `stats scope` keeps its proxies; `;up` hides the servers that are DOWN or in maintenance.
        var rows = sources.rows()
        if !page.scope.isEmpty { rows = rows.filter { page.scope.contains($0["pxname"] ?? "") } }
        if options.contains("up") {
            rows = rows.filter { row in
                let status = row["status"] ?? ""
                return row["type"] != "2" || !(status.hasPrefix("DOWN") || status.hasPrefix("MAINT"))
            }
        }
        if options.contains("json") {
            return send(fd, status: "200 OK", type: "application/json", body: StatsTyped.json(rows), headOnly: headOnly)
        }
        if options.contains("csv") {
            let csv = ([StatsCSV.header] + rows.map(StatsCSV.render)).joined(separator: "\n") + "\n"
            return send(fd, status: "200 OK", type: "text/plain", body: csv, headOnly: headOnly)
        }
        let refresh = options.contains("norefresh") ? nil : page.refresh
        let outcome = options.first { $0.hasPrefix("st=") }.map { String($0.dropFirst(3)) }
        send(fd, status: "200 OK", type: "text/html",
             body: StatsHTML.page(rows: rows, page: page, version: sources.version, refresh: refresh, admin: admin, outcome: outcome), headOnly: headOnly)
    }

    /// `stats admin`: the client's address meets the condition (it is authenticated already: a
    /// page with an admin condition always has `stats auth`).
    private func mayAdminister(_ fd: CInt, _ page: StatsPage) -> Bool {
        guard let access = page.admin, !page.users.isEmpty else { return false }
        if case .everyone = access { return true }
        guard let peer = try? Socket.peerAddress(fd), let networks = adminNetworks[page.name] else { return false }
        let inside = networks.matches(.ip(IPAddress(peer)))
        if case .notFrom = access { return !inside }
        return inside
    }

    /// HAProxy's form: `s=<server>` (several), `action=<action>`, `b=<backend>` (or `#<id>`,
    /// its `show stat` iid); each server's change as the runtime API makes it. HAProxy's
    /// outcome codes: DONE, PART (some servers unknown), ERRP (bad parameters), NONE (no server).
    private func administer(_ body: [UInt8]) -> String {
        var servers: [String] = [], action: String?, backend: String?
        for pair in String(decoding: body, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let key = Self.urlDecoded(parts[0]), let value = Self.urlDecoded(parts[1]) else { return "ERRP" }
            switch key {
            case "s": servers.append(value)
            case "action": action = value
            case "b": backend = value
            default: break
            }
        }
        let commands: [String: (String) -> String] = [
            "ready": { "set server \($0) state ready" }, "drain": { "set server \($0) state drain" }, "maint": { "set server \($0) state maint" },
            "dhlth": { "disable health \($0)" }, "ehlth": { "enable health \($0)" }, "hrunn": { "set server \($0) health up" },
            "hnolb": { "set server \($0) health stopping" }, "hdown": { "set server \($0) health down" },
            "dagent": { "disable agent \($0)" }, "eagent": { "enable agent \($0)" }, "arunn": { "set server \($0) agent up" },
            "adown": { "set server \($0) agent down" },
            "shutdown": { "shutdown sessions server \($0)" },
        ]
        guard let action, let command = commands[action], var backend, !backend.isEmpty else { return "ERRP" }
        if backend.hasPrefix("#") {
            // The backend's `iid`, as the page's hidden field gives it.
            let rows = sources.rows().filter { $0["svname"] == "BACKEND" }
            guard let name = rows.first(where: { "#" + ($0["iid"] ?? "") == backend })?["pxname"] else { return "ERRP" }
            backend = name
        }
        guard !servers.isEmpty else { return "NONE" }
        var done = 0
        for server in servers {
            let reply = sources.command(command("\(backend)/\(server)"))
            if reply.allSatisfy({ $0 == "\n" || $0 == " " }) { done += 1 }
        }
        return done == servers.count ? "DONE" : done == 0 ? "ERRP" : "PART"
    }

    /// `application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte.
    static func urlDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var i = text.utf8.startIndex
        let utf8 = text.utf8
        while i < utf8.endIndex {
            let c = utf8[i]
            if c == UInt8(ascii: "+") {
                bytes.append(0x20)
            } else if c == UInt8(ascii: "%") {
                let hex = utf8[utf8.index(after: i)...].prefix(2)
                guard hex.count == 2, let value = UInt8(String(decoding: hex, as: UTF8.self), radix: 16) else { return nil }
                bytes.append(value)
                i = utf8.index(i, offsetBy: 2)
            } else {
                bytes.append(c)
            }
            i = utf8.index(after: i)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func send(_ fd: CInt, status: String, type: String, body: String, extra: String = "", headOnly: Bool = false) {
        let bodyBytes = Array(body.utf8)
        var bytes = Array("HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(bodyBytes.count)\r\nCache-Control: no-cache\r\nConnection: close\r\n\(extra)\r\n".utf8)
        if !headOnly { bytes += bodyBytes }
        // Blocking sends with a bound: the socket is non-blocking, so wait for room up to 5 s.
        var sent = 0
        let deadline = monotonicMilliseconds() + 5000
        while sent < bytes.count && monotonicMilliseconds() < deadline {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n; continue }
            guard n < 0 && (errno == EAGAIN || errno == EINTR) else { return }
            var ready = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&ready, 1, 100)
        }
    }

    /// `Authorization: Basic <base64(user:password)>`.
    static func basicCredentials(_ header: String) -> (user: String, password: String)? {
        let value = header.drop { $0 != ":" }.dropFirst().drop { $0 == " " }
        guard value.lowercased().hasPrefix("basic "), let decoded = base64(String(value.dropFirst(6)).filter { $0 != " " }) else { return nil }
        let text = String(decoding: decoded, as: UTF8.self)
        guard let colon = text.firstIndex(of: ":") else { return nil }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    static func base64(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        var buffer: UInt32 = 0, bits = 0
        for c in text.utf8 {
            let v: UInt8
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = c - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = c - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"): v = 62
            case UInt8(ascii: "/"): v = 63
            case UInt8(ascii: "="): continue
            default: return nil
            }
            buffer = buffer << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
        }
        return out
    }
}

/// The statistics page in HAProxy 2.6's layout: per proxy a title table and a table whose columns
/// are grouped as HAProxy groups them (Queue, Session rate, Sessions, Bytes, Denied, Errors,
/// Warnings, Server), rows classed and coloured as HAProxy's (`active_up`, `backup_down`,
/// `maintain` …), from the same fields as `show stat`. Columns Sluice does not count stay empty.
enum StatsHTML {
    /// The cells after the name, in HAProxy's order: the `show stat` column each shows.
    private static let cells = ["qcur", "qmax", "qlimit", "rate", "rate_max", "rate_lim", "scur", "smax", "slim", "stot", "lbtot", "lastsess",
                                "bin", "bout", "dreq", "dresp", "ereq", "econ", "eresp", "wretr", "wredis",
                                "status", "last_chk", "weight", "act", "bck", "chkfail", "chkdown", "downtime", "throttle"]

    /// The message HAProxy shows after an admin action (`;st=<code>`): its row class and text.
    static let outcomes: [String: (String, String)] = [
        "DONE": ("active_up", "Action processed successfully."),
        "NONE": ("active_going_down", "Nothing has changed."),
        "PART": ("active_going_down", "Action partially processed.<br>Some server names are probably unknown or ambiguous (duplicated names in the backend)."),
        "ERRP": ("active_down", "Action not processed because of invalid parameters.<ul><li>The action is maybe unknown.</li><li>Invalid key parameter (empty or too long).</li><li>The backend name is probably unknown or ambiguous (duplicated names).</li><li>Some server names are probably unknown or ambiguous (duplicated names in the backend).</li></ul>"),
        "DENY": ("active_down", "<b>Action denied.</b>"),
    ]

    /// HAProxy's actions on checked servers, in its order.
    static let actions = [("ready", "Set state to READY"), ("drain", "Set state to DRAIN"), ("maint", "Set state to MAINT"),
                          ("dhlth", "Health: disable checks"), ("ehlth", "Health: enable checks"), ("hrunn", "Health: force UP"),
                          ("hnolb", "Health: force NOLB"), ("hdown", "Health: force DOWN"), ("dagent", "Agent: disable checks"),
                          ("eagent", "Agent: enable checks"), ("arunn", "Agent: force UP"), ("adown", "Agent: force DOWN"),
                          ("shutdown", "Kill Sessions")]

    /// `admin`: the requester may change servers (a form per backend, HAProxy's checkboxes and
    /// actions); `outcome`: the `;st=` code of the last action, shown above the tables.
    static func page(rows: [[String: String]], page: StatsPage, version: String, refresh: Duration?, admin: Bool = false, outcome: String? = nil) -> String {
        var html = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Statistics Report for Sluice</title>\n"
        if let refresh { html += "<meta http-equiv=\"refresh\" content=\"\(refresh.components.seconds)\">\n" }
        html += """
            <style>
            body { font-family: arial, helvetica, sans-serif; font-size: 12px; font-weight: normal; color: black; background: white; }
            th, td { font-size: 10px; }
            h1 { font-size: x-large; margin-bottom: 0.5em; }
            .titre { background: #20D0D0; color: #000000; font-weight: bold; text-align: center; }
            .frontend { background: #e8e8d0; }
            .backend { background: #e8e8d0; }
            .active_down { background: #ff9090; }
            .active_going_up { background: #ffd020; }
            .active_going_down { background: #ffffa0; }
            .active_up { background: #c0ffc0; }
            .active_nolb { background: #20a0ff; }
            .active_draining { background: #20a0FF; }
            .active_no_check { background: #e0e0e0; }
            .backup_down { background: #ff9090; }
            .backup_going_up { background: #ff80ff; }
            .backup_going_down { background: #c060ff; }
            .backup_up { background: #b0d0ff; }
            .backup_nolb { background: #90b0e0; }
            .backup_draining { background: #cc9900; }
            .backup_no_check { background: #e0e0e0; }
            .maintain { background: #c07820; }
            a.px:link, a.px:visited { color: #ffff40; text-decoration: none; }
            a.lfsb:link, a.lfsb:visited { color: #000000; text-decoration: none; }
            table.tbl { border-collapse: collapse; border-style: none; }
            table.tbl td { text-align: right; border: 1px solid gray; padding: 2px 3px; white-space: nowrap; }
            table.tbl td.ac { text-align: center; }
            table.tbl th { border: 1px solid gray; }
            table.tbl th.pxname { background: #b00040; color: #ffff40; font-weight: bold; border-style: solid solid none solid; padding: 2px 3px; white-space: nowrap; }
            table.tbl th.empty { border-style: none; empty-cells: hide; background: white; }
            </style></head><body>
            <h1>Statistics Report for Sluice\(page.hideVersion ? "" : " \(escape(version))")</h1>\n
            """
        if let outcome, let (style, text) = outcomes[outcome] {
            html += "<p><div class=\(style)><a class=lfsb href=\"\(escape(page.uri ?? "/"))\" title=\"Remove this message\">[X]</a> \(text)</div>\n"
        }
        var proxies: [String] = []
        for row in rows where !proxies.contains(row["pxname"] ?? "") { proxies.append(row["pxname"] ?? "") }
        for proxy in proxies {
            let name = escape(proxy)
            let servers = rows.filter { $0["pxname"] == proxy && $0["svname"] != "FRONTEND" && $0["svname"] != "BACKEND" }
            let form = admin && !servers.isEmpty
            if form { html += "<form method=\"post\">" }
            let check = !admin ? "" : form
                ? "<th rowspan=2 width=1><input type=\"checkbox\" onclick=\"for(c in document.getElementsByClassName('\(name)-checkbox')) document.getElementsByClassName('\(name)-checkbox').item(c).checked = this.checked\"></th>"
                : "<th rowspan=2></th>"
            html += """
                <table class="tbl" width="100%"><tr class="titre"><th class="pxname" width="10%"><a name="\(name)"></a><a class=px href="#\(name)">\(name)</a></th><th class="empty" width="90%"></th></tr></table>
                <table class="tbl" width="100%">
                <tr class="titre">\(check)<th rowspan=2></th><th colspan=3>Queue</th><th colspan=3>Session rate</th><th colspan=6>Sessions</th><th colspan=2>Bytes</th><th colspan=2>Denied</th><th colspan=3>Errors</th><th colspan=2>Warnings</th><th colspan=9>Server</th></tr>
                <tr class="titre"><th>Cur</th><th>Max</th><th>Limit</th><th>Cur</th><th>Max</th><th>Limit</th><th>Cur</th><th>Max</th><th>Limit</th><th>Total</th><th>LbTot</th><th>Last</th><th>In</th><th>Out</th><th>Req</th><th>Resp</th><th>Req</th><th>Conn</th><th>Resp</th><th>Retr</th><th>Redis</th><th>Status</th><th>LastChk</th><th>Wght</th><th>Act</th><th>Bck</th><th>Chk</th><th>Dwn</th><th>Dwntme</th><th>Thrtle</th></tr>\n
                """
            for row in rows where row["pxname"] == proxy {
                let server = row["svname"] ?? ""
                let style = server == "FRONTEND" ? "frontend" : server == "BACKEND" ? "backend" : rowClass(row)
                let anchor = "\(name)/\(escape(server))"
                html += "<tr class=\"\(style)\">"
                if admin {
                    html += server == "FRONTEND" || server == "BACKEND" ? "<td></td>" : "<td><input class='\(name)-checkbox' type=\"checkbox\" name=\"s\" value=\"\(escape(server))\"></td>"
                }
                html += "<td class=ac><a name=\"\(anchor)\"></a><a class=lfsb href=\"#\(anchor)\">\(server == "FRONTEND" ? "Frontend" : server == "BACKEND" ? "Backend" : escape(server))</a></td>"
                for column in cells {
                    var value = row[column] ?? ""
                    if column == "last_chk", let check = row["check_status"], !check.isEmpty {
                        value = check + (row["check_duration"].map { $0.isEmpty ? "" : " in \($0)ms" } ?? "")
                    }
                    if column == "lastsess" && value == "-1" { value = "" }
                    html += column == "status" || column == "last_chk" ? "<td class=ac>\(escape(value))</td>" : "<td>\(escape(value))</td>"
                }
                html += "</tr>\n"
            }
            html += "</table>"
            if form {
                html += "Choose the action to perform on the checked servers : <select name=action><option value=\"\"></option>"
                html += actions.map { "<option value=\"\($0.0)\">\($0.1)</option>" }.joined()
                html += "</select><input type=\"hidden\" name=\"b\" value=\"\(name)\">&nbsp;<input type=\"submit\" value=\"Apply\"></form>"
            }
            html += "<p>\n"
        }
        return html + "</body></html>\n"
    }

    /// HAProxy's row class for a server: `active_` or `backup_` and its state, `maintain` in
    /// maintenance (its `stats_dump_fields_html` rules).
    static func rowClass(_ row: [String: String]) -> String {
        let status = row["status"] ?? ""
        if status.hasPrefix("MAINT") { return "maintain" }
        let style: String
        if status == "DOWN" || status == "DOWN (agent)" {
            style = "down"
        } else if status.hasPrefix("DOWN ") {
            style = "going_up"
        } else if status == "DRAIN" {
            style = "draining"
        } else if status.hasPrefix("NOLB ") {
            style = "going_down"
        } else if status == "NOLB" {
            style = "nolb"
        } else if status == "no check" {
            style = "no_check"
        } else if (row["chkfail"] ?? "").isEmpty || Int(row["check_health"] ?? "") == (Int(row["check_rise"] ?? "") ?? 0) + (Int(row["check_fall"] ?? "") ?? 0) - 1 {
            style = (Int(row["weight"] ?? "") ?? 0) > 0 ? "up" : "draining"
        } else {
            style = "going_down"
        }
        return (row["bck"] == "1" ? "backup_" : "active_") + style
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}
