import ArgumentParser
import Sluice
#if canImport(Glibc)
import Glibc
#endif

/// `sluice top`: a live view of a running Sluice (or HAProxy) over its runtime socket, in the
/// manner of hatop — every proxy's frontend, servers and backend with state, sessions, rates,
/// queue and last check; keys drain, ready or put in maintenance the selected server. Without a
/// terminal (or with --once) it prints one plain snapshot and exits.
struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Live view of a running balancer through its runtime socket (keys: ↑/↓ or j/k select, d drain, r ready, m maint, q quit).",
        discussion: """
            Reads 'show info' and 'show stat' every --interval. Rates are per second over the last \
            interval. The d, r and m keys send 'set server <backend>/<server> state drain|ready|maint' \
            for the selected server row, which needs a socket at level admin. Without a terminal on \
            standard input and output, or with --once, prints one snapshot without colours.
            """
    )

    @Option(name: .customShort("S"), help: ArgumentHelp("The runtime socket ('stats socket').", valueName: "socket"))
    var socketPath: String

    @Option(help: "Time between refreshes (e.g. 1s, 500ms).")
    var interval: String = "1s"

    @Flag(help: "Print one snapshot and exit.")
    var once = false

    func run() throws {
        guard let every = Duration(haproxyTime: interval), every >= .milliseconds(100) else {
            throw ValidationError("--interval '\(interval)' is not a time of at least 100ms")
        }
        let interactive = !once && isatty(0) == 1 && isatty(1) == 1
        var view = TopView(socket: socketPath)
        guard interactive else {
            // Two samples a short while apart, so that rates mean something.
            try view.refresh()
            usleep(UInt32(min(every, .seconds(1)).components.seconds * 1_000_000 + min(every, .seconds(1)).components.attoseconds / 1_000_000_000_000))
            try view.refresh()
            print(view.render(colour: false, width: 160).joined(separator: "\n"))
            return
        }
        let terminal = RawTerminal(fullScreen: true)
        defer { terminal.restore() }
        var message = ""
        var next = Int64(0)
        while true {
            let now = monotonicNow()
            if now >= next {
                do { try view.refresh() } catch { message = "\(error)" }
                next = now + Int64(every.components.seconds * 1000 + every.components.attoseconds / 1_000_000_000_000_000)
            }
            var lines = view.render(colour: true, width: terminal.columns)
            lines.append("")
            lines.append("↑/↓ select  d drain  r ready  m maint  q quit" + (message.isEmpty ? "" : "   — " + message))
            terminal.draw(lines)
            guard let key = terminal.key(waitingMs: Int32(max(0, next - monotonicNow()))) else { continue }
            switch key {
            case "q", "\u{03}": return
            case "j", "down": view.move(1)
            case "k", "up": view.move(-1)
            case "d", "r", "m":
                guard let server = view.selectedServer else { message = "select a server row first"; continue }
                let state = key == "d" ? "drain" : key == "r" ? "ready" : "maint"
                let command = "set server \(server) state \(state)"
                do {
                    let reply = String(String(decoding: try RuntimeClient.ask(socketPath, command, timeoutMs: 2000), as: UTF8.self)
                        .filter { $0 != "\n" })
                    message = reply.isEmpty ? "\(command): done" : "\(command): \(reply)"
                } catch {
                    message = "\(command): \(error)"
                }
                next = 0
            default:
                break
            }
        }
    }
}

/// The snapshot, rates and selection of `sluice top`.
struct TopView {
    let socket: String
    private(set) var info: [String: String] = [:]
    private(set) var rows: [[String: String]] = []
    /// The previous sample of each row's counters, for rates.
    private var previous: [String: (time: Int64, stot: Double, bin: Double, bout: Double)] = [:]
    private var rates: [String: (sessions: Double, bytesIn: Double, bytesOut: Double)] = [:]
    private var selected = 0

    init(socket: String) { self.socket = socket }

    mutating func refresh() throws {
        let infoText = String(decoding: try RuntimeClient.ask(socket, "show info", timeoutMs: 2000), as: UTF8.self)
        info = [:]
        for line in infoText.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            info[String(line[..<colon])] = String(line[line.index(after: colon)...].drop { $0 == " " })
        }
        let stat = String(decoding: try RuntimeClient.ask(socket, "show stat", timeoutMs: 2000), as: UTF8.self)
        let lines = stat.split(separator: "\n")
        guard let header = lines.first, header.hasPrefix("# ") else { throw ValidationError("'show stat' did not answer a CSV: \(stat.prefix(200))") }
        let columns = Self.fields(String(header.dropFirst(2)))
        rows = lines.dropFirst().map { line in
            var row: [String: String] = [:]
            for (name, value) in zip(columns, Self.fields(String(line))) where !value.isEmpty { row[name] = value }
            return row
        }
        let now = monotonicNow()
        for row in rows {
            let key = Self.key(row)
            let current = (time: now, stot: Double(row["stot"] ?? "") ?? 0, bin: Double(row["bin"] ?? "") ?? 0, bout: Double(row["bout"] ?? "") ?? 0)
            if let before = previous[key], now > before.time {
                let seconds = Double(now - before.time) / 1000
                rates[key] = (max(0, current.stot - before.stot) / seconds, max(0, current.bin - before.bin) / seconds,
                              max(0, current.bout - before.bout) / seconds)
            }
            previous[key] = current
        }
        selected = min(selected, max(0, rows.count - 1))
    }

    private static func key(_ row: [String: String]) -> String { "\(row["pxname"] ?? "")/\(row["svname"] ?? "")" }

    /// One CSV line's fields (quoted fields may hold commas and doubled quotes).
    static func fields(_ line: String) -> [String] {
        var out: [String] = [], field = "", quoted = false
        var chars = line.makeIterator()
        var pending: Character? = nil
        while let c = pending ?? chars.next() {
            pending = nil
            if quoted {
                if c == "\"" {
                    if let n = chars.next() {
                        if n == "\"" { field.append("\"") } else { quoted = false; pending = n }
                    } else { quoted = false }
                } else { field.append(c) }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                out.append(field)
                field = ""
            } else {
                field.append(c)
            }
        }
        out.append(field)
        return out
    }

    mutating func move(_ by: Int) {
        guard !rows.isEmpty else { return }
        var index = selected
        repeat {
            index = (index + by + rows.count) % rows.count
        } while Self.isServer(rows[index]) == false && index != selected
        selected = index
    }

    /// `backend/server` of the selected row when it is a server.
    var selectedServer: String? {
        guard rows.indices.contains(selected), Self.isServer(rows[selected]) else { return nil }
        return Self.key(rows[selected])
    }

    private static func isServer(_ row: [String: String]) -> Bool { row["svname"] != "FRONTEND" && row["svname"] != "BACKEND" }

    func render(colour: Bool, width: Int) -> [String] {
        var lines: [String] = []
        let name = info["Name"] ?? "?", version = info["Version"] ?? "?"
        lines.append("\(name) \(version)  pid \(info["Pid"] ?? "?")  up \(info["Uptime"] ?? "?")  sessions \(info["CurrConns"] ?? "?")/\(info["Maxconn"].map { $0 == "0" ? "∞" : $0 } ?? "?")  total \(info["CumConns"] ?? "?")  dropped logs \(info["DroppedLogs"] ?? "0")\(info["Stopping"] == "1" ? "  STOPPING" : "")")
        lines.append("")
        let header = [pad("NAME", 24), pad("STATUS", 12), pad("WEIGHT", 6, right: true), pad("CUR", 6, right: true), pad("MAX", 6, right: true),
                      pad("RATE/s", 8, right: true), pad("TOTAL", 9, right: true), pad("IN/s", 9, right: true), pad("OUT/s", 9, right: true),
                      pad("QUEUE", 5, right: true), pad("ERR", 5, right: true), pad("RETR", 5, right: true), "  CHECK"].joined(separator: " ")
        lines.append(colour ? "\u{1B}[1m\(header)\u{1B}[0m" : header)
        var proxy = ""
        for (index, row) in rows.enumerated() {
            let px = row["pxname"] ?? "", sv = row["svname"] ?? ""
            if px != proxy {
                proxy = px
                lines.append(colour ? "\u{1B}[1;34m\(px)\u{1B}[0m" : px)
            }
            let rate = rates[Self.key(row)]
            let status = row["status"] ?? ""
            var check = row["check_status"].map { "  \($0)" } ?? ""
            if let duration = row["check_duration"] { check += " \(duration)ms" }
            var statusCell = pad(status, 12)
            if colour {
                let tint = status.hasPrefix("UP") || status == "OPEN" || status == "no check" ? "32" : status.hasPrefix("DOWN") ? "31" : "33"
                statusCell = "\u{1B}[\(tint)m\(statusCell)\u{1B}[39m"
            }
            let cells = [pad((Self.isServer(row) ? "  " : "") + sv, 24), statusCell, pad(row["weight"] ?? "", 6, right: true),
                         pad(row["scur"] ?? "0", 6, right: true), pad(row["smax"] ?? "", 6, right: true),
                         pad(rate.map { Self.number($0.sessions) } ?? "-", 8, right: true), pad(row["stot"] ?? "0", 9, right: true),
                         pad(rate.map { Self.bytes($0.bytesIn) } ?? "-", 9, right: true), pad(rate.map { Self.bytes($0.bytesOut) } ?? "-", 9, right: true),
                         pad(row["qcur"] ?? "", 5, right: true), pad(row["econ"] ?? "", 5, right: true), pad(row["wretr"] ?? "", 5, right: true)]
            // A terminal cuts long lines itself (autowrap is off); a snapshot is cut to `width`.
            var line = cells.joined(separator: " ") + check
            if colour {
                if index == selected && Self.isServer(row) { line = "\u{1B}[7m\(line)\u{1B}[0m" }
            } else {
                line = String(line.prefix(width))
            }
            lines.append(line)
        }
        return lines
    }

    private func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let count = text.count
        guard count < width else { return String(text.prefix(width)) }
        let space = String(repeating: " ", count: width - count)
        return right ? space + text : text + space
    }

    static func number(_ v: Double) -> String { v >= 100 ? String(Int(v.rounded())) : String(Int((v * 10).rounded()) / 10) + "." + String(Int((v * 10).rounded()) % 10) }

    static func bytes(_ v: Double) -> String {
        if v >= 1_073_741_824 { return number(v / 1_073_741_824) + "G" }
        if v >= 1_048_576 { return number(v / 1_048_576) + "M" }
        if v >= 1024 { return number(v / 1024) + "K" }
        return String(Int(v))
    }
}
