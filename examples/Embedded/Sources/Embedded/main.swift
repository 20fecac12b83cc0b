// Sluice inside a Swift program: a balancer built in code (no configuration file), run in a
// swift-service-lifecycle ServiceGroup, a server added while it runs, its events printed, and
// HAProxy's Prometheus metrics read from the library. Ends by a graceful shutdown of the group
// after `--seconds` (default 3), so that CI can run it.
import Logging
import ServiceLifecycle
import Sluice
#if canImport(Glibc)
import Glibc
#endif

let seconds = CommandLine.arguments.firstIndex(of: "--seconds").flatMap { Int(CommandLine.arguments[$0 + 1]) } ?? 3
signal(SIGPIPE, SIG_IGN)  // the host program's choice: Sluice leaves it alone and blocks SIGPIPE on its own threads
var logger = Logger(label: "embedded")
logger.logLevel = .notice

// Two backends of our own: each answers every connection with its name.
let blue = try NameServer(name: "blue"), green = try NameServer(name: "green")

// The balancer, in code: one frontend on a port the kernel picks, one backend with `blue`.
var configuration = Configuration(
    global: Global(),
    frontends: [Frontend(name: "web", binds: [Bind(endpoint: Endpoint(host: "127.0.0.1", port: 0))], defaultBackend: "app")],
    backends: [Backend(name: "app", servers: [Server(name: "blue", endpoint: Endpoint(host: "127.0.0.1", port: blue.port))])])
configuration.backends[0].connectTimeout = .seconds(1)
let balancer = try LoadBalancer(configuration: configuration, logger: logger)

let events = balancer.events()
let group = ServiceGroup(services: [balancer], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)

try await withThrowingTaskGroup(of: Void.self) { tasks in
    tasks.addTask { try await group.run() }
    tasks.addTask {
        for await event in events { print("event: \(event)") }
    }
    tasks.addTask {
        // Wait until the frontend listens, then ask it who answers.
        var port = 0
        while port == 0 {
            try await Task.sleep(for: .milliseconds(20))
            port = balancer.listeningAddresses(of: "web").first?.port ?? 0
        }
        print("listening on 127.0.0.1:\(port); answered by \(ask(port))")
        // A server added at runtime starts in maintenance (HAProxy's rule); put it in rotation.
        let added = try balancer.addServer(Server(name: "green", endpoint: Endpoint(host: "127.0.0.1", port: green.port)), to: "app")
        let app = balancer.backend(named: "app")!
        app.setAdmin(.ready, of: added)
        let answers = (0..<4).map { _ in ask(port) }
        print("after adding green, four connections are answered by \(answers.joined(separator: ", "))")
        guard answers.contains("green") && answers.contains("blue") else {
            print("error: expected both servers to answer")
            exit(1)
        }
        let metrics = balancer.prometheusMetrics().split(separator: "\n").filter { $0.hasPrefix("haproxy_server_sessions_total") }
        print(metrics.joined(separator: "\n"))
        try await Task.sleep(for: .seconds(seconds))
        await group.triggerGracefulShutdown()
    }
    try await tasks.waitForAll()
}
blue.stop()
green.stop()
print("stopped: \(balancer.totalSessions) sessions served")

/// One connection through the balancer: what the server said.
func ask(_ port: Int) -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard connected == 0 else { return "(connect failed)" }
    var buffer = [UInt8](repeating: 0, count: 64)
    let n = recv(fd, &buffer, buffer.count, 0)
    return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self).filter { $0 != "\n" } : "(nothing)"
}

/// A TCP server on 127.0.0.1 that writes its name to every connection and closes it.
final class NameServer: @unchecked Sendable {
    let port: Int
    private let fd: CInt
    private var thread = pthread_t()

    init(name: String) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && listen(listener, 64) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        guard bound else { throw Failure(text: "cannot listen: errno \(errno)") }
        fd = listener
        port = Int(UInt16(bigEndian: address.sin_port))
        let reply = Array((name + "\n").utf8)
        let box = Unmanaged.passRetained(Box { while true {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            _ = reply.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(client)
        } })
        pthread_create(&thread, nil, { Unmanaged<Box>.fromOpaque($0!).takeRetainedValue().body(); return nil }, box.toOpaque())
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))  // wakes accept with an error
        pthread_join(thread, nil)
        close(fd)
    }

    final class Box { let body: () -> Void; init(_ body: @escaping () -> Void) { self.body = body } }
    struct Failure: Error { let text: String }
}
