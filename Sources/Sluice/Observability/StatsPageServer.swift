import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// HTTP/1.1 for the statistics proxies (`StatsPage`): the Prometheus exporter, `show stat`'s CSV
/// (`<uri>;csv`) and an HTML page, on the proxies' own `bind` addresses. One thread and poll(2),
/// never a reactor: a scrape costs the data path nothing but reading its atomic counters. One
/// request per connection (`Connection: close`), heads up to 8 KiB, 10 s to send one.
final class StatsPageServer: @unchecked Sendable {
    /// What the pages show, taken when a request comes.
    struct Sources: Sendable {
        let metrics: @Sendable () -> String
        let rows: @Sendable () -> [[String: String]]
        let version: String
    }

    struct Listener {
        let fd: CInt
        let page: StatsPage
    }

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
    }

    func start() throws(SystemError) {
        guard pipe(&wake) == 0 else { throw SystemError(code: errno, call: "pipe") }
        for fd in wake { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        thread = try OSThread.spawn { [self] in serve() }
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
            polls += listeners.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            polls += clients.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let now = monotonicMilliseconds()
            let next = clients.map(\.deadline).min().map { max(0, $0 - now) } ?? 1000
            guard poll(&polls, nfds_t(polls.count), Int32(min(next, 1000))) >= 0 || errno == EINTR else { continue }
            if polls[0].revents != 0 { break }
            for (i, listener) in listeners.enumerated() where polls[1 + i].revents != 0 {
                while clients.count < 256 {
                    let fd = CShims_accept4_nonblock(listener.fd)
                    guard fd >= 0 else { break }
                    clients.append(Client(fd: fd, page: listener.page, deadline: monotonicMilliseconds() + 10_000))
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
                            respond(client.fd, Array(client.head[..<end]), page: client.page)
                            close(client.fd)
                            continue
                        }
                        if client.head.count > 8192 {
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
                    close(client.fd)
                    continue
                }
                kept.append(client)
            }
            clients = kept
        }
        for client in clients { close(client.fd) }
    }

    /// Where the request head ends (the blank line), if it has.
    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i }
        return nil
    }

    private func respond(_ fd: CInt, _ head: [UInt8], page: StatsPage) {
        let lines = String(decoding: head, as: UTF8.self).split(separator: "\r\n", omittingEmptySubsequences: false)
        let request = lines.first.map { $0.split(separator: " ") } ?? []
        guard request.count == 3, request[2].hasPrefix("HTTP/1.") else {
            return send(fd, status: "400 Bad Request", type: "text/plain", body: "bad request\n")
        }
        let method = request[0], target = String(request[1])
        guard method == "GET" || method == "HEAD" else {
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
        let rows = sources.rows()
        if options.contains("csv") {
            let csv = ([StatsCSV.header] + rows.map(StatsCSV.render)).joined(separator: "\n") + "\n"
            return send(fd, status: "200 OK", type: "text/plain", body: csv, headOnly: headOnly)
        }
        let refresh = options.contains("norefresh") ? nil : page.refresh
        send(fd, status: "200 OK", type: "text/html", body: StatsHTML.page(rows: rows, page: page, version: sources.version, refresh: refresh), headOnly: headOnly)
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

/// The statistics page: one table per proxy with its frontend, servers and backend, coloured by
/// state as HAProxy's page colours them.
enum StatsHTML {
    static func page(rows: [[String: String]], page: StatsPage, version: String, refresh: Duration?) -> String {
        var html = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Statistics Report for Sluice</title>\n"
        if let refresh { html += "<meta http-equiv=\"refresh\" content=\"\(refresh.components.seconds)\">\n" }
        html += """
            <style>
            body { font-family: arial, helvetica, sans-serif; font-size: 12px; }
            table { border-collapse: collapse; margin-bottom: 1em; }
            th, td { border: 1px solid #999; padding: 1px 4px; text-align: right; }
            th.pxname { background: #b00040; color: #ffff40; text-align: left; }
            td.name { text-align: left; }
            tr.frontend, tr.backend { background: #eee; font-weight: bold; }
            tr.up { background: #c0ffc0; } tr.down { background: #ff9090; } tr.maint { background: #c07820; }
            tr.drain { background: #20a0ff; } tr.nolb, tr.going { background: #ffffa0; }
            </style></head><body>
            <h1>Statistics Report for Sluice\(page.hideVersion ? "" : " \(escape(version))")</h1>\n
            """
        var proxies: [String] = []
        for row in rows where !proxies.contains(row["pxname"] ?? "") { proxies.append(row["pxname"] ?? "") }
        let columns: [(String, String)] = [("status", "Status"), ("weight", "Wght"), ("act", "Act"), ("bck", "Bck"), ("qcur", "Queue"),
                                           ("scur", "Cur"), ("smax", "Max"), ("slim", "Limit"), ("stot", "Total"), ("bin", "Bytes in"),
                                           ("bout", "Bytes out"), ("econ", "Conn errors"), ("wretr", "Retries"), ("wredis", "Redispatches"),
                                           ("check_status", "Last check"), ("lastchg", "Since change (s)"), ("downtime", "Downtime (s)")]
        for proxy in proxies {
            html += "<table><tr><th class=\"pxname\" colspan=\"\(columns.count + 1)\">\(escape(proxy))</th></tr>\n<tr><th></th>"
            html += columns.map { "<th>\($0.1)</th>" }.joined() + "</tr>\n"
            for row in rows where row["pxname"] == proxy {
                let name = row["svname"] ?? ""
                let status = row["status"] ?? ""
                let kind = name == "FRONTEND" ? "frontend" : name == "BACKEND" ? "backend" : cssClass(status)
                html += "<tr class=\"\(kind)\"><td class=\"name\">\(escape(name))</td>"
                html += columns.map { "<td>\(escape(row[$0.0] ?? ""))</td>" }.joined() + "</tr>\n"
            }
            html += "</table>\n"
        }
        return html + "</body></html>\n"
    }

    private static func cssClass(_ status: String) -> String {
        if status.hasPrefix("MAINT") { return "maint" }
        if status.hasPrefix("DRAIN") { return "drain" }
        if status.hasPrefix("NOLB") { return "nolb" }
        if status.hasPrefix("DOWN") { return status == "DOWN" ? "down" : "going" }
        return status == "UP" || status == "no check" ? "up" : "going"
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
