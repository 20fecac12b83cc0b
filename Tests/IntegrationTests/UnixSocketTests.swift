import Foundation
import Testing
@testable import Sluice
#if canImport(Glibc)
import Glibc
#endif

extension Loopback {
/// UNIX sockets on both sides: `bind unix@…`, `abns@…` and `unix-bind` listeners in front of a TCP
/// server, and a TCP listener in front of a `unix@` server with its health check — what clients,
/// servers, logs, PROXY headers, socket files and the runtime API see, compared with HAProxy 2.6
/// on the same file in the same run.
@Suite struct UnixSocketTests {
    /// A client of a UNIX socket: a file's path, or an abstract name given as HAProxy gives one
    /// (the whole `sockaddr_un`, zero-padded: HAProxy's `abns@` peers name it so).
    static func connect(_ name: String, abstract: Bool = false) throws -> CInt {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: (abstract ? [0] : []) + Array(name.utf8)) }
        let r = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard r == 0 else {
            close(fd)
            throw Net.Failure("connect \(abstract ? "abns@" : "")\(name): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    /// Sends `text`, then FIN; returns all that came back, and `<reset>` if a reset ended it.
    static func exchange(_ fd: CInt, _ text: String) throws -> String {
        defer { close(fd) }
        try Net.sendAll(fd, text)
        shutdown(fd, Int32(SHUT_WR))
        do {
            return String(decoding: try Net.readToEnd(fd, timeoutMs: 5_000), as: UTF8.self)
        } catch let failure as Net.Failure where failure.description.contains("reset") {
            return "<reset>"
        }
    }

    /// What one proxy did with the file.
    struct Observed: Equatable {
        var answers: [String] = []
        var modes: [String] = []
        var headers: [[UInt8]] = []
        var serverState: [String] = []
        var statAddress = ""
        /// `show stat`'s check_status and check_desc of a server whose socket file is missing.
        var missingCheck = ""
        var logs: [String] = []
        /// The runtime API's answers for a UNIX server added at run time, and its state row.
        var dynamic: [String] = []
    }

    static func observe(haproxy: Bool, folder: String, echo: TestServer, unixEcho: String, v1: CaptureServer, v2: CaptureServer) throws -> Observed {
        let tag = haproxy ? "h" : "s"
        let logs = try SyslogReceiver()
        defer { logs.stop() }
        let socket = "\(folder)/\(tag)-admin.sock"
        let abstract = "sluice-test-\(tag)-\(getpid())"
        let missingPort = try Net.closedPort()
        let contender = try Contender(haproxy: haproxy) { port in
            """
            global
              stats socket \(socket) level admin
              unix-bind prefix \(folder)/\(tag)- mode 660
              log 127.0.0.1:\(logs.port) format raw local0
            defaults
              mode tcp
              timeout connect 1s
              timeout client 5s
              timeout server 5s
            listen tcp-to-unix
              bind 127.0.0.1:\(port)
              server u unix@\(unixEcho) check inter 100ms
            listen missing
              bind 127.0.0.1:\(missingPort)
              server gone unix@\(folder)/gone.sock check inter 100ms fall 1
            listen unix-to-tcp
              bind unix@front.sock
              bind unix@private.sock mode 600
              bind abns@\(abstract)
              log global
              log-format "%ci:%cp|%fi:%fp|%si:%sp|%b/%s|%[src]|%[dst]|%[src_port]|%[so_id]"
              server e 127.0.0.1:\(echo.port)
            listen plain
              bind unix@plain.sock
              log global
              server e 127.0.0.1:\(echo.port)
            listen proxied
              bind unix@pp.sock accept-proxy
              log global
              log-format "pp %ci:%cp|%fi:%fp|%[src]|%[fc_src]|%[dst_port]"
              server e 127.0.0.1:\(echo.port)
            listen v1
              bind unix@v1.sock
              server c 127.0.0.1:\(v1.port) send-proxy
            listen v2
              bind unix@v2.sock
              server c 127.0.0.1:\(v2.port) send-proxy-v2

            """
        }
        defer { contender.stop() }
        var seen = Observed()
        try eventually("\(contender.name): the UNIX-socket server is up") {
            try StatsClient.ask(socket, "show servers state tcp-to-unix").split(separator: "\n").contains { $0.split(separator: " ").count > 5 && $0.split(separator: " ")[5] == "2" }
        }
        seen.answers.append(try exchange(try Net.connect(contender.port), "to the unix server\n"))
        seen.answers.append(try exchange(try Net.connect(missingPort), "to a missing socket\n"))
        for (name, isAbstract) in [("\(folder)/\(tag)-front.sock", false), ("\(folder)/\(tag)-private.sock", false), (abstract, true), ("\(folder)/\(tag)-plain.sock", false)] {
            seen.answers.append(try exchange(try connect(name, abstract: isAbstract), "through \(isAbstract ? "an abstract" : "a path") socket\n"))
        }
        // A PROXY header through a UNIX listener (a local TLS terminator in front, say): its
        // addresses stand for the client's; the connection's own (`fc_src`) is none.
        seen.answers.append(try exchange(try connect("\(folder)/\(tag)-pp.sock"), "PROXY TCP4 192.0.2.7 198.51.100.9 4321 443\r\nbehind a header\n"))
        for name in ["front", "private", "plain"] {
            var status = stat()
            guard stat("\(folder)/\(tag)-\(name).sock", &status) == 0 else { throw Net.Failure("\(contender.name): no socket file \(name).sock") }
            seen.modes.append("\(name) \(String(status.st_mode & 0o7777, radix: 8)) \((status.st_mode & S_IFMT) == S_IFSOCK ? "socket" : "not a socket")")
        }
        for (name, server, length) in [("v1", v1, 15), ("v2", v2, 16)] {
            let client = try connect("\(folder)/\(tag)-\(name).sock")
            defer { close(client) }
            let accepted = try server.accept()
            defer { close(accepted) }
            seen.headers.append(try Net.read(accepted, count: length, timeoutMs: 5_000))
        }
        let state = try StatsClient.ask(socket, "show servers state tcp-to-unix").split(separator: "\n").map { $0.split(separator: " ") }
        // srv_addr, srv_port; the rest (ids, times) is not about UNIX sockets.
        seen.serverState = state.filter { $0.count > 18 && $0[3] == "u" }.map { "\($0[4]) \($0[18])" }
        seen.statAddress = try StatsClient.showStat(socket).first { $0["pxname"] == "tcp-to-unix" && $0["svname"] == "u" }?["addr"] ?? ""
        try eventually("\(contender.name): the server on a missing socket is down") {
            guard let row = try StatsClient.showStat(socket).first(where: { $0["svname"] == "gone" }), row["status"] == "DOWN" else { return false }
            seen.missingCheck = "\(row["check_status"] ?? "") \(row["check_desc"] ?? "")"
            return true
        }
        for command in ["add server missing/dyn unix@\(unixEcho)", "enable server missing/dyn", "set server missing/dyn addr 127.0.0.1"] {
            seen.dynamic.append(try StatsClient.ask(socket, command))
        }
        try eventually("\(contender.name): the added UNIX server answers") { try exchange(try Net.connect(missingPort), "to an added server\n") == "to an added server\n" }
        let rows: [[Substring]] = try StatsClient.ask(socket, "show servers state missing").split(separator: "\n").map { $0.split(separator: " ") }
        for row in rows where row.count > 18 && row[3] == "dyn" { seen.dynamic.append("\(row[4]) \(row[18])") }
        // Three log-format lines, one `Connect to` line and the PROXY header's (HAProxy's start-up lines aside).
        let unixLines = { logs.lines.filter { $0.contains("unix:") || $0.hasPrefix("pp ") }.map { $0.trimmingCharacters(in: .newlines) }.sorted() }
        try eventually("\(contender.name): 5 log lines about UNIX clients (have \(unixLines()))") { unixLines().count >= 5 }
        seen.logs = unixLines()
        return seen
    }

    @Test func unixListenersAndServersBehaveAsHAProxys() throws {
        guard HAProxyProcess.requireInstalled() else { return }
        let folder = TestFiles.folder.appendingPathComponent("ux-\(UUID().uuidString.prefix(6))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let echo = try TestServer(.echo)
        let unixEcho = try TestServer(.echo, unixPath: "\(folder)/echo.sock")
        defer { echo.stop(); unixEcho.stop() }
        let v1 = try CaptureServer(), v2 = try CaptureServer()
        let theirs = try Self.observe(haproxy: true, folder: folder, echo: echo, unixEcho: "\(folder)/echo.sock", v1: v1, v2: v2)
        let ours = try Self.observe(haproxy: false, folder: folder, echo: echo, unixEcho: "\(folder)/echo.sock", v1: v1, v2: v2)
        #expect(ours == theirs)
        #expect(ours.answers == ["to the unix server\n", ""] + ["path", "path", "abstract", "path"].map { "through \($0 == "abstract" ? "an abstract" : "a path") socket\n" } + ["behind a header\n"])
        #expect(ours.modes == ["front 660 socket", "private 600 socket", "plain 660 socket"])
        #expect(ours.headers == [Array("PROXY UNKNOWN\r\n".utf8), [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00]])
        #expect(ours.serverState == ["- 0"])
        #expect(ours.statAddress == "unix")
        #expect(ours.missingCheck == "SOCKERR Socket error")
        #expect(ours.dynamic == ["New server registered.\n\n", "\n", "Update for the current server address family is only supported through configuration file by 'stats socket command'\n\n", "- 0"])
        #expect(ours.logs.contains("unix:1|unix:1|127.0.0.1:\(echo.port)|unix-to-tcp/e|-|-|-|1"))
        #expect(ours.logs.contains("unix:3|unix:3|127.0.0.1:\(echo.port)|unix-to-tcp/e|-|-|-|3"))
        #expect(ours.logs.contains("Connect to unix:1 (plain/TCP)"))
        #expect(ours.logs.contains("pp 192.0.2.7:4321|198.51.100.9:443|192.0.2.7|-|443"))
        #expect(ours.answers.contains("behind a header\n"))
    }
}
}
