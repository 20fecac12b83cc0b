import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Resolves the names of servers with `resolvers` while Sluice runs, on a thread of its own that
/// waits in `poll(2)` on non-blocking sockets (one connected UDP socket per name server, TCP
/// connections for `tcp@` name servers and truncated answers). No reactor ever waits for DNS.
///
/// HAProxy's semantics: a name is asked again `hold valid` after its last resolution; a query goes
/// to every name server of the section and the first valid answer wins; when every name server
/// answered with an error, the other address family is asked once (A ↔ AAAA); a query without a
/// valid answer after `timeout retry` is sent again, `resolve_retries` queries in all. A failure
/// changes nothing until `hold <status>` has passed since the last valid answer; then the servers
/// go to maintenance (HAProxy's "MAINT (resolution)") and keep their last address, and the next
/// valid answer brings them back.
final class Resolver: @unchecked Sendable {
    /// `show resolvers` counters of one name server, with HAProxy's names.
    struct Counters: Sendable {
        var sent = 0, sendError = 0, valid = 0, update = 0, cname = 0, cnameError = 0, anyError = 0
        var nx = 0, timeout = 0, refused = 0, other = 0, invalid = 0, tooBig = 0, truncated = 0, outdated = 0
    }

    enum Failure: Sendable {
        case nx, refused, timeout, other

        var reason: String {
            switch self {
            case .nx: "DNS NX status"
            case .refused: "DNS refused status"
            case .timeout: "DNS timeout status"
            case .other: "unspecified DNS error"
            }
        }
    }

    /// A server whose address a resolution sets.
    struct Member {
        let backend: BackendState
        let server: ServerState
    }

    private final class Nameserver {
        let name: String
        let address: SocketAddress
        let overTCP: Bool
        var fd: CInt = -1
        let counters = Mutex(Counters())
        init(name: String, address: SocketAddress, overTCP: Bool) {
            self.name = name
            self.address = address
            self.overTCP = overTCP
        }
    }

    private final class Section {
        let settings: Resolvers
        let nameservers: [Nameserver]
        init(settings: Resolvers, nameservers: [Nameserver]) {
            self.settings = settings
            self.nameservers = nameservers
        }
        /// When a name answered (or failed) now is asked again: HAProxy's `hold valid`, looked
        /// for every `timeout resolve`.
        func nextResolution(after now: Int64) -> Int64 {
            now + max(settings.holdValid.milliseconds, settings.resolveTimeout.milliseconds)
        }

        func hold(_ failure: Failure) -> Int64 {
            switch failure {
            case .nx: settings.holdNX.milliseconds
            case .refused: settings.holdRefused.milliseconds
            case .timeout: settings.holdTimeout.milliseconds
            case .other: settings.holdOther.milliseconds
            }
        }
    }

    private struct Query {
        var id: UInt16
        var type: DNSRecordType
        var sentAt: Int64
        /// Queries sent for this resolution so far (`resolve_retries` bounds it).
        var attempt: Int
        /// The other family was already asked.
        var switched: Bool
        /// Name servers that answered with an error, and the last such error.
        var failed: Set<Int> = []
        var lastFailure: Failure?
    }

    /// One name resolved for one server, or for the slots of one `server-template`.
    private final class Resolution {
        let section: Int
        let name: String
        let isSRV: Bool
        let preferIPv6: Bool
        let networks: [IPNetwork]
        let allowDuplicates: Bool
        let ignoreWeight: Bool
        let isTemplate: Bool
        let members: [Member]
        var nextDue: Int64 = 0
        var lastValid: Int64
        var query: Query?
        /// Template slots whose address left the answers, since when (for `hold obsolete`).
        var missingSince: [ObjectIdentifier: Int64] = [:]
        var reportedOverflow = false
        /// SRV: the last valid answer's records, and each target host's addresses (from the
        /// answer's additional section, or else from the target's own resolution, as HAProxy).
        var services: [(priority: UInt16, weight: UInt16, port: UInt16, target: String)] = []
        var targetAddresses: [String: [IPAddress]] = [:]
        /// SRV: targets being resolved by a child resolution.
        var children: [String: Resolution] = [:]
        /// A target host's resolution: the SRV resolution it serves (it sets no server itself).
        weak var parent: Resolution?
        /// Left the parent's answer: removed from the loop.
        var retired = false

        init(section: Int, server: Server, members: [Member], now: Int64) {
            self.section = section
            name = DNSResponse.normalized(server.endpoint.host ?? "")
            isSRV = name.hasPrefix("_")
            preferIPv6 = server.preferIPv6
            networks = server.resolveNetworks.compactMap { IPNetwork($0) }
            allowDuplicates = server.allowDuplicateAddress
            ignoreWeight = server.ignoreSRVWeight
            isTemplate = server.templatePrefix != nil
            self.members = members
            lastValid = now  // as HAProxy: the hold periods count from start
        }

        /// The resolution of an SRV target host named without an address in the answer.
        init(target: String, of parent: Resolution, now: Int64) {
            section = parent.section
            name = target
            isSRV = false
            preferIPv6 = parent.preferIPv6
            networks = []
            allowDuplicates = true
            ignoreWeight = true
            isTemplate = false
            members = []
            lastValid = now
            self.parent = parent
        }

        /// SRV: every place the records give whose target host has an address.
        var serviceTargets: [DNSTarget] {
            services.flatMap { service in
                (targetAddresses[service.target] ?? []).map {
                    DNSTarget(ip: $0, port: Int(service.port), srvWeight: Int(service.weight), name: service.target)
                }
            }
        }
    }

    /// A query over TCP: connect, send the length-prefixed query, read the length-prefixed answer.
    private struct Exchange {
        var fd: CInt
        var section: Int
        var nameserver: Int
        var out: [UInt8]
        var written = 0
        var input: [UInt8] = []
        var deadline: Int64
    }

    private let sections: [Section]
    private var resolutions: [Resolution] = []
    private var exchanges: [Exchange] = []
    private let report: @Sendable (String) -> Void

    /// A change of one of `backend`'s servers: to the balancer's logger and the backend's `log`.
    private func report(_ backend: BackendState, _ text: String) {
        report(text)
        backend.announce(level: 5, text)
    }
    private let stopping = Atomic<Bool>(false)
    private var thread: OSThread?
    private var nextID = UInt16.random(in: .min ... .max)
    private var buffer = [UInt8](repeating: 0, count: 65_536)

    /// Nil without `resolvers` sections. `report` receives every log line (address changes,
    /// maintenance), on the resolver's thread.
    init?(_ configuration: Configuration, backends: [String: BackendState], report: @escaping @Sendable (String) -> Void) {
        var sections: [Section] = []
        for settings in configuration.resolvers {
            let nameservers = settings.nameservers.compactMap { ns in
                SocketAddress(ip: ns.address, port: ns.port).map { Nameserver(name: ns.name, address: $0, overTCP: ns.overTCP) }
            }
            sections.append(Section(settings: settings, nameservers: nameservers))
        }
        self.sections = sections
        self.report = report
        let now = monotonicMilliseconds()
        for backend in configuration.backends {
            guard let state = backends[backend.name] else { continue }
            var templates: [String: (Server, [Member])] = [:]
            var order: [String] = []
            for declared in backend.servers {
                // The live server's line: `set server fqdn` may have renamed it.
                guard let live = state.server(named: declared.name) else { continue }
                let server = live.configuration
                guard let name = server.resolvers, let host = server.endpoint.host, SocketAddress(ip: host, port: 1) == nil else { continue }
                guard let section = configuration.resolvers.firstIndex(where: { $0.name == name }) else { continue }
                if let prefix = server.templatePrefix {
                    let key = "\(section) \(prefix)"
                    if templates[key] == nil { order.append(key) }
                    templates[key, default: (server, [])].1.append(Member(backend: state, server: live))
                } else {
                    resolutions.append(Resolution(section: section, server: server, members: [Member(backend: state, server: live)], now: now))
                }
            }
            for key in order {
                guard let (server, members) = templates[key], let section = Int(key.split(separator: " ")[0]) else { continue }
                resolutions.append(Resolution(section: section, server: server, members: members, now: now))
            }
        }
        if sections.isEmpty { return nil }
    }

    deinit {
        for section in sections { for ns in section.nameservers where ns.fd >= 0 { closeDescriptor(ns.fd) } }
        for exchange in exchanges { closeDescriptor(exchange.fd) }
    }

    func start() throws(SystemError) {
        for section in sections {
            for ns in section.nameservers where !ns.overTCP {
                do {
                    ns.fd = try Socket.connectedDatagram(to: ns.address)
                } catch {
                    report("resolvers '\(section.settings.name)' nameserver '\(ns.name)': \(error); it will not be asked")
                }
            }
        }
        thread = try OSThread.spawn("sluice-dns") { [self] in run() }
    }

    /// Stops the thread (within 100 ms) and waits for it.
    func stop() {
        stopping.store(true, ordering: .releasing)
        thread?.join()
        thread = nil
    }

    // MARK: The loop

    private func run() {
        while !stopping.load(ordering: .acquiring) {
            let now = monotonicMilliseconds()
            var wake = now + 100
            resolutions.removeAll { $0.retired && $0.query == nil }
            for r in resolutions.indices {
                wake = min(wake, tick(r, now: now))
            }
            for e in exchanges.indices.reversed() where now >= exchanges[e].deadline {
                closeExchange(e)
            }
            var fds: [pollfd] = []
            var owners: [(section: Int, nameserver: Int)] = []
            for (s, section) in sections.enumerated() {
                for (n, ns) in section.nameservers.enumerated() where ns.fd >= 0 {
                    fds.append(pollfd(fd: ns.fd, events: Int16(POLLIN), revents: 0))
                    owners.append((s, n))
                }
            }
            let udpCount = fds.count
            for exchange in exchanges {
                let events = exchange.written < exchange.out.count ? POLLOUT : POLLIN
                fds.append(pollfd(fd: exchange.fd, events: Int16(events), revents: 0))
            }
            let timeout = Int32(clamping: max(0, wake - now))
            guard poll(&fds, nfds_t(fds.count), timeout) > 0 else { continue }
            for i in 0..<udpCount where fds[i].revents != 0 {
                receiveDatagrams(section: owners[i].section, nameserver: owners[i].nameserver)
            }
            // Exchanges may close (and shift) while served: walk them by descriptor.
            for i in udpCount..<fds.count where fds[i].revents != 0 {
                if let e = exchanges.firstIndex(where: { $0.fd == fds[i].fd }) { serveExchange(e) }
            }
        }
    }

    /// Starts a due resolution or times out its query; returns when it next needs attention.
    private func tick(_ r: Int, now: Int64) -> Int64 {
        let resolution = resolutions[r]
        let section = sections[resolution.section]
        guard let query = resolution.query else {
            if now >= resolution.nextDue {
                send(r, type: resolution.isSRV ? .srv : resolution.preferIPv6 ? .aaaa : .a, attempt: 1, switched: false, now: now)
                return now + section.settings.retryTimeout.milliseconds
            }
            return resolution.nextDue
        }
        let deadline = query.sentAt + section.settings.retryTimeout.milliseconds
        guard now >= deadline else { return deadline }
        for (n, ns) in section.nameservers.enumerated() where !query.failed.contains(n) {
            ns.counters.withLock { $0.timeout += 1 }
        }
        if query.attempt >= section.settings.retries {
            conclude(r, failure: query.lastFailure ?? .timeout, now: now)
        } else {
            send(r, type: query.type, attempt: query.attempt + 1, switched: query.switched, now: now)
        }
        return now + section.settings.retryTimeout.milliseconds
    }

    private func send(_ r: Int, type: DNSRecordType, attempt: Int, switched: Bool, now: Int64) {
        let resolution = resolutions[r]
        let section = sections[resolution.section]
        nextID &+= 1
        let id = nextID
        resolution.query = Query(id: id, type: type, sentAt: now, attempt: attempt, switched: switched)
        guard let message = DNSMessage.query(id: id, name: resolution.name, type: type, payloadSize: section.settings.acceptedPayloadSize) else {
            report("resolvers '\(section.settings.name)': '\(resolution.name)' is not a valid DNS name; it is not resolved")
            resolution.query = nil
            resolution.nextDue = .max
            return
        }
        for (n, ns) in section.nameservers.enumerated() {
            if ns.overTCP {
                openExchange(section: resolution.section, nameserver: n, query: message, now: now)
                continue
            }
            guard ns.fd >= 0 else { continue }
            let sent = message.withUnsafeBytes { Glibc.send(ns.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            ns.counters.withLock { if sent == message.count { $0.sent += 1 } else { $0.sendError += 1 } }
        }
    }

    private func receiveDatagrams(section s: Int, nameserver n: Int) {
        let ns = sections[s].nameservers[n]
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(ns.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count < 0 {
                // ECONNREFUSED: the name server's port is closed (an ICMP error); the query times out.
                if errno == EINTR { continue }
                return
            }
            // Larger than the payload size announced: not what was asked for (HAProxy's too_big).
            if count > max(512, sections[s].settings.acceptedPayloadSize) {
                ns.counters.withLock { $0.tooBig += 1 }
                continue
            }
            handle(Array(buffer[0..<count]), section: s, nameserver: n, overTCP: false)
        }
    }

    // MARK: Answers

    private func handle(_ message: [UInt8], section s: Int, nameserver n: Int, overTCP: Bool) {
        let section = sections[s]
        let ns = section.nameservers[n]
        let now = monotonicMilliseconds()
        guard case .success(let response) = DNSMessage.parse(message) else {
            ns.counters.withLock { $0.invalid += 1 }
            return
        }
        guard let r = resolutions.firstIndex(where: { $0.section == s && $0.query?.id == response.id }), var query = resolutions[r].query else {
            ns.counters.withLock { $0.outdated += 1 }
            return
        }
        let resolution = resolutions[r]
        guard response.questionName == resolution.name, response.questionType == query.type.rawValue else {
            ns.counters.withLock { $0.invalid += 1 }
            return
        }
        if query.failed.contains(n) { return }
        if response.truncated && !overTCP {
            ns.counters.withLock { $0.truncated += 1 }
            if let request = DNSMessage.query(id: query.id, name: resolution.name, type: query.type, payloadSize: section.settings.acceptedPayloadSize) {
                openExchange(section: s, nameserver: n, query: request, now: now)
            }
            return
        }
        var failure: Failure?
        var targets: [DNSTarget] = []
        switch response.rcode {
        case 0:
            if query.type == .srv {
                let services = response.services(of: resolution.name).sorted { ($0.priority, $0.target, $0.port) < ($1.priority, $1.target, $1.port) }
                resolution.services = services.map { ($0.priority, $0.weight, $0.port, $0.target) }
                for service in services where !service.addresses.isEmpty {
                    resolution.targetAddresses[service.target] = service.addresses.compactMap { IPAddress(bytes: $0) }
                }
                adoptTargets(resolution, services.filter { $0.addresses.isEmpty }.map(\.target), now: now)
                targets = resolution.serviceTargets
                // Records whose hosts are still being resolved: valid, applied once they answer.
                if targets.isEmpty && !services.isEmpty {
                    ns.counters.withLock { $0.valid += 1 }
                    answered(resolution, section, now: now)
                    return
                }
            } else {
                targets = response.addresses(of: resolution.name, type: query.type).compactMap { IPAddress(bytes: $0) }.map { DNSTarget(ip: $0) }
            }
            if targets.isEmpty {
                // A CNAME whose target has no address in the answer is HAProxy's cname_error.
                let dangling = response.hasAlias(for: resolution.name)
                ns.counters.withLock { if dangling { $0.cnameError += 1 } else { $0.anyError += 1 } }
                failure = .other
            }
        case 3:
            ns.counters.withLock { $0.nx += 1 }
            failure = .nx
        case 5:
            ns.counters.withLock { $0.refused += 1 }
            failure = .refused
        default:
            ns.counters.withLock { $0.other += 1 }
            failure = .other
        }
        guard let failure else {
            ns.counters.withLock {
                $0.valid += 1
                if response.hasAlias(for: resolution.name) { $0.cname += 1 }
            }
            answered(resolution, section, now: now)
            let by = "\(section.settings.name)/\(section.nameservers[n].name)"
            if resolution.retired { return }
            if let parent = resolution.parent {
                // A target host of an SRV answer: its addresses go to the SRV's servers.
                parent.targetAddresses[resolution.name] = targets.map(\.ip)
                if apply(parent, parent.serviceTargets, by: by, now: now) { ns.counters.withLock { $0.update += 1 } }
            } else if apply(resolution, targets, by: query.type == .srv ? "DNS additional record" : by, now: now) {
                ns.counters.withLock { $0.update += 1 }
            }
            return
        }
        query.failed.insert(n)
        query.lastFailure = failure
        resolution.query = query
        guard query.failed.count >= section.nameservers.count else { return }
        // Every name server answered with an error: the other family once, then the verdict.
        if !query.switched && query.type != .srv {
            send(r, type: query.type == .a ? .aaaa : .a, attempt: query.attempt, switched: true, now: now)
        } else {
            conclude(r, failure: failure, now: now)
        }
    }

    /// A valid answer ends the query; the name is asked again after `hold valid`.
    private func answered(_ resolution: Resolution, _ section: Section, now: Int64) {
        resolution.query = nil
        resolution.lastValid = now
        resolution.nextDue = section.nextResolution(after: now)
    }

    /// No valid answer: nothing changes within `hold <status>` of the last valid one; after it,
    /// the servers go to maintenance with their last address.
    private func conclude(_ r: Int, failure: Failure, now: Int64) {
        let resolution = resolutions[r]
        let section = sections[resolution.section]
        resolution.query = nil
        resolution.nextDue = section.nextResolution(after: now)
        guard now - resolution.lastValid >= section.hold(failure), !resolution.retired else { return }
        if let parent = resolution.parent {
            // A target host that no longer resolves: its places leave the SRV's servers.
            if parent.targetAddresses.removeValue(forKey: resolution.name) != nil {
                _ = apply(parent, parent.serviceTargets, by: "DNS cache", now: now)
            }
            return
        }
        for member in resolution.members { resolutionMaintenance(member, failure.reason) }
    }

    /// SRV targets named without an address get a resolution of their own; targets the answer no
    /// longer names lose theirs.
    private func adoptTargets(_ resolution: Resolution, _ unresolved: [String], now: Int64) {
        let named = Set(resolution.services.map(\.target))
        for (target, child) in resolution.children where !named.contains(target) || !unresolved.contains(target) {
            child.retired = true
            resolution.children[target] = nil
            if !named.contains(target) { resolution.targetAddresses[target] = nil }
        }
        for target in unresolved where resolution.children[target] == nil {
            guard resolution.children.count < 256 else { break }
            let child = Resolution(target: target, of: resolution, now: now)
            resolution.children[target] = child
            resolutions.append(child)
        }
        for target in resolution.targetAddresses.keys where !named.contains(target) { resolution.targetAddresses[target] = nil }
    }

    private func resolutionMaintenance(_ member: Member, _ reason: String) {
        let server = member.server
        guard server.admin != .maintenance, !server.awaitingAddress.load(ordering: .relaxed) else { return }
        server.awaitingAddress.store(true, ordering: .relaxed)
        member.backend.setAdmin(.maintenance, of: server, reason: reason)
        report(member.backend, "Server \(member.backend.name)/\(server.name) is going DOWN for maintenance (\(reason)).")
    }

    /// Gives the answer's addresses to the resolution's servers; true when one changed.
    private func apply(_ resolution: Resolution, _ targets: [DNSTarget], by: String, now: Int64) -> Bool {
        let port = { (member: Member, target: DNSTarget) in target.port ?? member.server.configuration.endpoint.port }
        func current(_ member: Member) -> DNSTarget? {
            if member.server.awaitingAddress.load(ordering: .relaxed) { return nil }
            let address = member.server.address
            return DNSTarget(ip: IPAddress(address), port: resolution.isSRV ? address.port : nil)
        }
        var assigned: [DNSTarget?]
        if resolution.isTemplate {
            let holdObsolete = sections[resolution.section].settings.holdObsolete.milliseconds
            var kept: [DNSTarget] = []
            for member in resolution.members {
                let id = ObjectIdentifier(member.server)
                guard let held = current(member), !targets.contains(where: { $0.same(as: held) }) else {
                    resolution.missingSince[id] = nil
                    continue
                }
                let since = resolution.missingSince[id] ?? now
                resolution.missingSince[id] = since
                if now - since < holdObsolete { kept.append(held) }
            }
            let filled = AddressAssignment.fill(slots: resolution.members.map(current), offered: targets, kept: kept, networks: resolution.networks)
            assigned = filled.slots
            if filled.leftOut > 0 && !resolution.reportedOverflow {
                resolution.reportedOverflow = true
                report("\(resolution.members[0].backend.name): '\(resolution.name)' has \(targets.count) addresses for \(resolution.members.count) server-template slots; \(filled.leftOut) left out")
            }
        } else {
            let member = resolution.members[0]
            var taken: Set<IPAddress> = []
            if !resolution.allowDuplicates {
                for other in member.backend.servers where other !== member.server && !other.awaitingAddress.load(ordering: .relaxed) {
                    taken.insert(IPAddress(other.address))
                }
            }
            assigned = [AddressAssignment.pick(current: current(member), offered: targets, networks: resolution.networks, taken: taken)]
        }
        var changed = false
        for (member, target) in zip(resolution.members, assigned) {
            let server = member.server
            guard let target else {
                resolutionMaintenance(member, "No IP for server ")
                continue
            }
            let before = current(member)
            if before.map({ !$0.same(as: target) }) ?? true, let address = SocketAddress(ip: target.ip.description, port: port(member, target)) {
                let old = before == nil ? "(none)" : server.address.ip
                member.backend.setAddress(address, of: server, by: by)
                server.resolvedByDNS.store(true, ordering: .relaxed)
                server.dnsTarget.withLock { $0 = target.name }
                changed = true
                report(member.backend, "\(member.backend.name)/\(server.name) changed its IP from \(old) to \(address.ip) by \(by).")
            }
            if !resolution.ignoreWeight, let weight = target.serverWeight, server.weight != min(weight, 256) {
                member.backend.setWeight(min(weight, 256), of: server)
            }
            if server.awaitingAddress.exchange(false, ordering: .relaxed) {
                member.backend.setAdmin(.ready, of: server, reason: "resolves again")
                report(member.backend, "Server \(member.backend.name)/\(server.name) ('\(resolution.name)') is UP/READY (resolves again).")
            }
        }
        return changed
    }

    // MARK: TCP

    private func openExchange(section s: Int, nameserver n: Int, query: [UInt8], now: Int64) {
        let ns = sections[s].nameservers[n]
        guard exchanges.count < 64 else {
            ns.counters.withLock { $0.sendError += 1 }
            return
        }
        let fd: CInt
        do {
            fd = try Socket.connect(to: ns.address).fd
        } catch {
            ns.counters.withLock { $0.sendError += 1 }
            return
        }
        ns.counters.withLock { $0.sent += 1 }
        let framed = [UInt8(query.count >> 8), UInt8(query.count & 0xFF)] + query
        exchanges.append(Exchange(fd: fd, section: s, nameserver: n, out: framed,
                                  deadline: now + sections[s].settings.retryTimeout.milliseconds))
    }

    private func serveExchange(_ e: Int) {
        if exchanges[e].written < exchanges[e].out.count {
            let fd = exchanges[e].fd
            let n = exchanges[e].out[exchanges[e].written...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            if n > 0 { exchanges[e].written += n } else if n < 0 && errno != EAGAIN && errno != EINTR { closeExchange(e) }
            return
        }
        let fd = exchanges[e].fd
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if count < 0 && (errno == EAGAIN || errno == EINTR) { return }
        guard count > 0 else {
            closeExchange(e)
            return
        }
        exchanges[e].input.append(contentsOf: buffer[0..<count])
        let input = exchanges[e].input
        guard input.count >= 2 else { return }
        let length = Int(input[0]) << 8 | Int(input[1])
        guard input.count >= 2 + length else { return }
        let (s, n) = (exchanges[e].section, exchanges[e].nameserver)
        closeExchange(e)
        handle(Array(input[2..<(2 + length)]), section: s, nameserver: n, overTCP: true)
    }

    private func closeExchange(_ e: Int) {
        closeDescriptor(exchanges[e].fd)
        exchanges.remove(at: e)
    }

    // MARK: Reporting

    /// `show resolvers [<name>]` in HAProxy's layout; nil when no section has that name.
    func show(_ name: String?) -> String? {
        let chosen = sections.filter { name == nil || $0.settings.name == name }
        if chosen.isEmpty { return nil }
        var lines: [String] = []
        for section in chosen {
            lines.append("Resolvers section \(section.settings.name)")
            for ns in section.nameservers {
                let c = ns.counters.withLock { $0 }
                lines.append(" nameserver \(ns.name):")
                for (label, value) in [("sent", c.sent), ("snd_error", c.sendError), ("valid", c.valid), ("update", c.update),
                                       ("cname", c.cname), ("cname_error", c.cnameError), ("any_err", c.anyError), ("nx", c.nx),
                                       ("timeout", c.timeout), ("refused", c.refused), ("other", c.other), ("invalid", c.invalid),
                                       ("too_big", c.tooBig), ("truncated", c.truncated), ("outdated", c.outdated)] {
                    lines.append("  \(label):" + String(repeating: " ", count: max(1, 12 - label.count)) + "\(value)")
                }
            }
        }
        return lines.joined(separator: "\n") + "\n\n"
    }

    /// Every section's counters, for tests and the library.
    func counters(of section: String) -> [String: Counters] {
        var out: [String: Counters] = [:]
        for s in sections where s.settings.name == section {
            for ns in s.nameservers { out[ns.name] = ns.counters.withLock { $0 } }
        }
        return out
    }
}
