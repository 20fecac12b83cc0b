#if canImport(Glibc)
import Glibc
#endif

/// A Layer-4 sample fetch (HAProxy section 7.3): where an ACL, a `track-sc` key or a dynamic
/// `use_backend` name takes its value from.
enum Fetch: Sendable, Hashable {
    case src, srcPort, dst, dstPort
    case bindName, frontendName, backendName
    /// `nbsrv`, `be_conn`, `be_conn_free`, `queue`, `avg_queue`, `connslots` (`[<backend>]`): the
    /// load of a backend (the session's when nil).
    case backendLoad(BackendLoad, backend: String?)
    /// `int(<n>)`, `bool(<b>)`, `str(<s>)`, `ipv4(<ip>)`, `ipv6(<ip>)`, `env(<name>)`, `hostname`,
    /// `nbproc`, `proc`: a value fixed when the configuration is read (nil: no sample, as an
    /// unset variable of `env`).
    case constant(Constant?)
    /// `srv_is_up([<backend>/]<server>)`.
    case serverIsUp(backend: String?, server: String)
    case alwaysTrue, alwaysFalse
    /// `wait_end`: false until the inspection delay ends, then true (HAProxy's WAIT_END).
    case waitEnd
    case requestLength
    case payload(offset: Int, length: Int)
    case payloadLengthValue(offset: Int, length: Int, dataOffset: Int?, relative: Bool)
    case tlsServerName, tlsVersion, tlsHelloType, tlsProtocols
    /// `req.ssl_ec_ext` (true when the hello offers curves; no sample otherwise, as HAProxy) and
    /// `req.ssl_st_ext` (0 without a session ticket extension, 1 empty, 2 with a ticket).
    case tlsOffersCurves, tlsSessionTicket
    case looksLikeHTTP
    /// `req.rdp_cookie([<name>])`: the value of the RDP cookie (`RDPCookie`); any name when nil.
    case rdpCookie(name: String?)
    /// `req.rdp_cookie_cnt([<name>])`: 1 when the request carries that cookie, else 0.
    case rdpCookieCount(name: String?)
    /// A stick counter's data: `sc<n>_<data>` / `sc_<data>(<n>[,table])` on the session's tracked
    /// entry, `src_<data>([table])` on the entry of the client's address.
    case counter(CounterSource, StickData)
    /// `var(<scope>.<name>[,<default>])`: a variable set by `set-var`; the default (a string) when
    /// it is not set.
    case variable(VariableName, default: [UInt8]?)
    /// Read from the running process when evaluated (`fe_conn`, `rand`, `fc_rtt` …).
    case session(SessionFetch)
    /// `capture.req.hdr(<slot>)`: what `tcp-request content capture` put in that slot.
    case capturedRequest(slot: Int)
    /// `res.len`, `res.payload`, `res.payload_lv`, `res.ssl_hello_type` (`rep_ssl_hello_type`):
    /// the request fetch of the same name, declared for the server's data (HAProxy's
    /// SMP_USE_L6RES). As in HAProxy, every payload fetch reads the data of the direction its
    /// rules inspect; the declared one only decides what the configuration check says.
    indirect case response(Fetch)
    /// `payload`, `payload_lv` in a sample expression: declared for both directions (in an ACL,
    /// HAProxy's keyword of that name is `req.payload`'s alias).
    indirect case anyDirection(Fetch)

    enum Constant: Sendable, Hashable {
        case int(Int64), bool(Bool), string([UInt8]), ip(IPAddress)

        var sample: Sample {
            switch self {
            case .int(let v): .int(v)
            case .bool(let v): .bool(v)
            case .string(let v): .string(v)
            case .ip(let v): .ip(v)
            }
        }
    }

    enum CounterSource: Sendable, Hashable {
        case tracked(slot: Int, table: String?)
        case source(table: String?)
    }

    /// Whether the value depends on the bytes inspected (the client's, or the server's in
    /// `tcp-response` rules).
    var readsContent: Bool {
        switch self {
        case .response, .anyDirection: true
        case .requestLength, .payload, .payloadLengthValue, .tlsServerName, .tlsVersion, .tlsHelloType, .tlsProtocols, .looksLikeHTTP, .waitEnd,
             .tlsOffersCurves, .tlsSessionTicket,
             .rdpCookie, .rdpCookieCount: true
        default: false
        }
    }

    /// The fetch without its declared direction (`res.len` is `req.len` reading the server's data).
    var base: Fetch {
        switch self {
        case .response(let f), .anyDirection(let f): f
        default: self
        }
    }

    /// The buffer a payload fetch is declared for (HAProxy's SMP_USE_L6REQ / L6RES); nil for
    /// fetches that read no data, or either. A condition in the other direction's rules draws a
    /// warning, an action's expression an error, as in HAProxy.
    var declaredBuffer: ContentDirection? {
        switch self {
        case .response: .response
        case .anyDirection, .waitEnd: nil
        default: readsContent ? .request : nil
        }
    }

    enum ContentDirection: Sendable { case request, response }

    /// HAProxy's name of a payload fetch (`req.len`, `res.payload` …), for messages.
    var keyword: String {
        switch self {
        case .response(let f): "res." + f.keyword.dropFirst(4)
        case .anyDirection(let f): String(f.keyword.dropFirst(4))
        case .requestLength: "req.len"
        case .payload: "req.payload"
        case .payloadLengthValue: "req.payload_lv"
        case .tlsServerName: "req.ssl_sni"
        case .tlsVersion: "req.ssl_ver"
        case .tlsHelloType: "req.ssl_hello_type"
        case .tlsProtocols: "req.ssl_alpn"
        case .tlsOffersCurves: "req.ssl_ec_ext"
        case .tlsSessionTicket: "req.ssl_st_ext"
        case .looksLikeHTTP: "req.proto_http"
        case .rdpCookie: "req.rdp_cookie"
        case .rdpCookieCount: "req.rdp_cookie_cnt"
        case .waitEnd: "wait_end"
        default: "\(self)"
        }
    }

    /// The method an ACL uses when it names none (HAProxy's table in section 7.1); nil for binary
    /// samples, which need `-m`.
    var defaultMatch: MatchMethod? {
        switch self {
        case .src, .dst: .ip
        case .srcPort, .dstPort, .backendLoad, .requestLength, .tlsVersion, .tlsHelloType, .counter, .rdpCookieCount, .tlsSessionTicket: .int
        case .constant(.int?): .int
        case .constant(.bool?): .bool
        case .constant(.string?), .constant(nil): .str  // nil: an unset `env` variable, a string
        case .constant(.ip?): .ip
        case .serverIsUp, .alwaysTrue, .alwaysFalse, .waitEnd, .looksLikeHTTP, .tlsOffersCurves: .bool
        case .bindName, .frontendName, .backendName, .tlsServerName, .tlsProtocols, .rdpCookie, .capturedRequest: .str
        case .payload, .payloadLengthValue, .variable: nil  // a variable has any type: HAProxy wants `-m`
        case .session(let fetch): fetch.defaultMatch
        case .response(let f), .anyDirection(let f): f.defaultMatch
        }
    }

    /// Parses `name[(args)]` (HAProxy's names and their deprecated aliases).
    static func parse(_ text: String) -> Result<Fetch, ValueError> {
        var name = text
        var args: [String] = []
        if let open = text.firstIndex(of: "(") {
            guard text.hasSuffix(")") else { return .failure(ValueError("'\(text)': missing ')'")) }
            name = String(text[..<open])
            let inner = text[text.index(after: open)..<text.index(before: text.endIndex)]
            args = inner.isEmpty ? [] : inner.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingSpaces }
        }
        func none(_ fetch: Fetch) -> Result<Fetch, ValueError> {
            args.isEmpty ? .success(fetch) : .failure(ValueError("fetch '\(name)' takes no arguments"))
        }
        func int(_ i: Int, _ what: String) -> Result<Int, ValueError> {
            guard i < args.count, let v = Int(args[i]), v >= 0 else { return .failure(ValueError("fetch '\(name)': \(what) must be a non-negative integer")) }
            return .success(v)
        }
        switch name {
        case "src": return none(.src)
        case "src_port": return none(.srcPort)
        case "dst": return none(.dst)
        case "dst_port": return none(.dstPort)
        case "so_name": return none(.bindName)
        case "fe_name": return none(.frontendName)
        case "be_name": return none(.backendName)
        case "always_true": return none(.alwaysTrue)
        case "always_false": return none(.alwaysFalse)
        case "wait_end": return none(.waitEnd)
        case "req.len", "req_len": return none(.requestLength)
        case "req.ssl_sni", "req_ssl_sni": return none(.tlsServerName)
        case "req.ssl_ver", "req_ssl_ver": return none(.tlsVersion)
        case "req.ssl_hello_type", "req_ssl_hello_type": return none(.tlsHelloType)
        case "req.ssl_alpn": return none(.tlsProtocols)
        case "req.ssl_ec_ext": return none(.tlsOffersCurves)
        case "req.ssl_st_ext": return none(.tlsSessionTicket)
        case "req.proto_http", "req_proto_http": return none(.looksLikeHTTP)
        case "req.rdp_cookie", "rdp_cookie", "req_rdp_cookie", "req.rdp_cookie_cnt", "rdp_cookie_cnt", "req_rdp_cookie_cnt":
            guard args.count <= 1 else { return .failure(ValueError("'\(name)' takes at most a cookie name")) }
            let cookie = args.first.flatMap { $0.isEmpty ? nil : $0 }
            return .success(name.hasSuffix("_cnt") ? .rdpCookieCount(name: cookie) : .rdpCookie(name: cookie))
        case "nbsrv", "be_conn", "be_conn_free", "queue", "avg_queue", "connslots":
            guard args.count <= 1 else { return .failure(ValueError("'\(name)' takes at most one backend name")) }
            guard let load = BackendLoad.allCases.first(where: { $0.fetchName == name }) else { preconditionFailure("'\(name)' has no BackendLoad") }
            return .success(.backendLoad(load, backend: args.first.flatMap { $0.isEmpty ? nil : $0 }))
        case "int":
            guard args.count == 1, let v = Int64(args[0]) else { return .failure(ValueError("'int' takes one integer")) }
            return .success(.constant(.int(v)))
        case "bool":
            guard args.count == 1, let v = ["0": false, "1": true, "false": false, "true": true][args[0].lowercased()] else {
                return .failure(ValueError("'bool' takes 0, 1, true or false"))
            }
            return .success(.constant(.bool(v)))
        case "str":
            guard args.count == 1 else { return .failure(ValueError("'str' takes one string")) }
            return .success(.constant(.string(Array(args[0].utf8))))
        case "ipv4", "ipv6":
            guard args.count == 1, let ip = IPAddress(args[0]), ip.isV4 == (name == "ipv4") else {
                return .failure(ValueError("'\(name)' takes one \(name == "ipv4" ? "IPv4" : "IPv6") address"))
            }
            return .success(.constant(.ip(ip)))
        case "env":
            guard args.count == 1, !args[0].isEmpty else { return .failure(ValueError("'env' takes a variable name")) }
            return .success(.constant(getenv(args[0]).map { .string(Array(String(cString: $0).utf8)) }))
        case "hostname":
            var buffer = [CChar](repeating: 0, count: 256)
            guard gethostname(&buffer, buffer.count) == 0 else { return .success(.constant(nil)) }
            return none(.constant(.string(buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) })))
        case "nbproc", "proc":
            return none(.constant(.int(1)))  // Sluice runs as one process
        case "capture.req.hdr":
            guard args.count == 1, let slot = Int(args[0]), slot >= 0 else { return .failure(ValueError("'capture.req.hdr' takes a capture slot number, from 0")) }
            return .success(.capturedRequest(slot: slot))
        case "var":
            guard (1...2).contains(args.count) else { return .failure(ValueError("'var' takes (<scope>.<name>[,<default>])")) }
            return VariableName.parse(args[0]).map { .variable($0, default: args.count == 2 ? Array(args[1].utf8) : nil) }
        case "srv_is_up":
            guard args.count == 1 else { return .failure(ValueError("'srv_is_up' takes '[<backend>/]<server>'")) }
            let parts = args[0].split(separator: "/", maxSplits: 1).map(String.init)
            return .success(parts.count == 2 ? .serverIsUp(backend: parts[0], server: parts[1]) : .serverIsUp(backend: nil, server: parts[0]))
        case "res.len", "res.payload", "res.payload_lv", "res.ssl_hello_type", "rep_ssl_hello_type":
            let request = name == "rep_ssl_hello_type" ? "req.ssl_hello_type" : "req." + name.dropFirst(4)
            return parse(args.isEmpty ? request : "\(request)(\(args.joined(separator: ",")))").map { .response($0) }
                .mapError { ValueError($0.message.replacing(request, with: name)) }
        case "payload", "payload_lv":
            return parse("req." + text).map { .anyDirection($0) }.mapError { ValueError($0.message.replacing("req." + name, with: name)) }
        case "req.payload":
            guard args.count == 2 else { return .failure(ValueError("'\(name)' takes (<offset>,<length>)")) }
            return int(0, "offset").flatMap { o in int(1, "length").map { .payload(offset: o, length: $0) } }
        case "req.payload_lv":
            guard args.count == 2 || args.count == 3 else { return .failure(ValueError("'\(name)' takes (<offset1>,<length>[,<offset2>])")) }
            return int(0, "offset1").flatMap { o in
                int(1, "length").flatMap { l in
                    guard l >= 1 && l <= 4 else { return .failure(ValueError("'\(name)': the length field is 1 to 4 bytes")) }
                    guard args.count == 3 else { return .success(.payloadLengthValue(offset: o, length: l, dataOffset: nil, relative: false)) }
                    let relative = args[2].hasPrefix("+") || args[2].hasPrefix("-")
                    guard let d = Int(args[2].hasPrefix("+") ? String(args[2].dropFirst()) : args[2]), relative || d >= 0 else {
                        return .failure(ValueError("'\(name)': offset2 '\(args[2])' is not an integer"))
                    }
                    return .success(.payloadLengthValue(offset: o, length: l, dataOffset: d, relative: relative))
                }
            }
        default:
            return SessionFetch.parse(name, args) ?? counterFetch(name, args)
        }
    }

    private static func counterFetch(_ name: String, _ args: [String]) -> Result<Fetch, ValueError> {
        // `gpc0` and `gpt0` name stored types; HAProxy's fetches of them are `*_get_gpc0` and
        // `*_get_gpt0` (`sc0_gpc0` is unknown to it).
        func data(_ suffix: Substring) -> StickData? { suffix == "gpc0" || suffix == "gpt0" ? nil : StickData(fetchSuffix: String(suffix)) }
        if name.hasPrefix("src_"), let d = data(name.dropFirst(4)) {
            guard args.count <= 1 else { return .failure(ValueError("'\(name)' takes at most a table name")) }
            return .success(.counter(.source(table: args.first), d))
        }
        if name.hasPrefix("sc_"), let d = data(name.dropFirst(3)) {
            guard (1...2).contains(args.count), let slot = Int(args[0]), (0...2).contains(slot) else {
                return .failure(ValueError("'\(name)' takes (<counter 0-2>[,<table>])"))
            }
            return .success(.counter(.tracked(slot: slot, table: args.count == 2 ? args[1] : nil), d))
        }
        if name.count > 4, name.hasPrefix("sc"), let slot = name.dropFirst(2).first?.wholeNumberValue, (0...2).contains(slot),
           name.dropFirst(3).first == "_", let d = data(name.dropFirst(4)) {
            guard args.count <= 1 else { return .failure(ValueError("'\(name)' takes at most a table name")) }
            return .success(.counter(.tracked(slot: slot, table: args.first), d))
        }
        if ["req.ver", "base", "path", "url", "hdr", "method"].contains(name)
            || name.hasPrefix("hdr") || name.hasPrefix("req.hdr") || name.hasPrefix("path") || name.hasPrefix("url") || name.hasPrefix("ssl_") || name.hasPrefix("http_") {
            return .failure(ValueError("fetch '\(name)' is not supported: it needs HTTP or TLS termination, or is not implemented yet (Layer-4 fetches: src, src_port, dst, dst_port, so_name, fe_name, be_name, nbsrv, be_conn, be_conn_free, queue, avg_queue, connslots, srv_is_up, int, str, bool, ipv4, ipv6, env, hostname, var, capture.req.hdr, fe_conn, dst_conn, so_id, fe_id, fe_defbe, stopping, thread, rand, date, date_us, uuid, fc_src, fc_dst, fc_src_port, fc_dst_port, fc_rcvd_proxy, fc_pp_authority, fc_pp_unique_id, unique-id, prio_class, prio_offset, fc_rtt, fc_rttvar, fc_unacked, fc_sacked, fc_retrans, fc_fackets, fc_lost, fc_reordering, req.len, req.payload, req.payload_lv, req.ssl_sni, req.ssl_ver, req.ssl_hello_type, req.ssl_alpn, req.ssl_ec_ext, req.ssl_st_ext, req.proto_http, req.rdp_cookie, res.len, res.payload, res.payload_lv, res.ssl_hello_type, sc*/src_* counters)"))
        }
        if name.hasSuffix("_gpc0") { return .failure(ValueError("unknown fetch '\(name)' (the counter is read with '\(name.dropLast(4))get_gpc0')")) }
        return .failure(ValueError("unknown fetch '\(name)'"))
    }
}

/// Converters after a fetch (`req.ssl_sni,lower`, `req.ssl_sni,lower,map_dom(/etc/haproxy/sni.map,be_default)`).
enum Converter: Sendable, Hashable {
    case lower, upper
    /// `map*(<file>[,<default>])`.
    case map(MapTable)
    /// `ipmask(<mask4>[,<mask6>])`: the address's network (IPv6 needs `mask6`, as in HAProxy).
    case ipMask(v4: UInt32, v6: UInt128?)
    /// `mqtt_is_valid`: whether the data start with a valid MQTT CONNECT (`MQTT`).
    case mqttIsValid
    /// `mqtt_field_value(connect,<field>)`.
    case mqttFieldValue(MQTT.Field)

    /// The match an ACL uses after this converter when it names none: the one for its output
    /// type, as HAProxy chooses (`mqtt_is_valid`'s boolean, `ipmask`'s address, `map_*_int`'s integer).
    var defaultMatch: MatchMethod {
        switch self {
        case .lower, .upper, .mqttFieldValue: .str
        case .mqttIsValid: .bool
        case .ipMask: .ip
        case .map(let table): table.integerOutput ? .int : .str
        }
    }

    /// Whether the converter says itself if more data could change its result (`needsMore`), so
    /// that a result it gives is final even while the fetch's data may still grow.
    var judgesCompleteness: Bool {
        switch self {
        case .mqttIsValid, .mqttFieldValue: true
        default: false
        }
    }

    /// What a converter made of a sample.
    enum Outcome {
        case value(Sample)
        /// None (a map without default that finds nothing: as if nothing had been fetched).
        case none
        /// None yet: more of the client's data may give one (an MQTT packet not all here).
        case needsMore

        var sample: Sample? { if case .value(let s) = self { s } else { nil } }
    }

    func apply(_ sample: Sample) -> Outcome {
        switch self {
        case .mqttIsValid:
            switch MQTT.validate(sample.bytes) {
            case .valid: return .value(.bool(true))
            case .invalid: return .value(.bool(false))
            case .needsMore: return .needsMore
            }
        case .mqttFieldValue(let field):
            let (value, needsMore) = MQTT.value(field, in: sample.bytes)
            return value.map { .value(.string($0)) } ?? (needsMore ? .needsMore : .none)
        default:
            return plain(sample).map(Outcome.value) ?? .none
        }
    }

    private func plain(_ sample: Sample) -> Sample? {
        switch self {
        case .mqttIsValid, .mqttFieldValue: return nil
        case .lower: return .string(sample.bytes.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 })
        case .upper: return .string(sample.bytes.map { $0 >= 97 && $0 <= 122 ? $0 & ~0x20 : $0 })
        case .map(let table): return table.lookUp(sample)
        case .ipMask(let mask4, let mask6):
            let address: IPAddress?
            switch sample {
            case .ip(let a): address = a
            case .string(let b), .binary(let b): address = IPAddress(String(decoding: b, as: UTF8.self))
            case .int, .bool: address = nil
            }
            switch address {
            case .v4(let a)?: return .ip(.v4(a & mask4))
            case .v6(let a)?: return mask6.map { .ip(.v6(a & $0)) }
            case nil: return nil
            }
        }
    }

    /// Parses one converter; `readFile` reads a map's file.
    static func parse(_ text: String, readFile: (String) -> Result<String, SystemError>) -> Result<Converter, ValueError> {
        switch text {
        case "lower": return .success(.lower)
        case "upper": return .success(.upper)
        case "mqtt_is_valid": return .success(.mqttIsValid)
        default: break
        }
        if text.hasPrefix("mqtt_field_value(") && text.hasSuffix(")") {
            let arguments = text.dropFirst("mqtt_field_value(".count).dropLast().split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingSpaces }
            guard arguments.count == 2 else { return .failure(ValueError("'\(text)': expected mqtt_field_value(<packet type>,<field name or property id>)")) }
            // HAProxy's mqtt_typeid: a number from 1 to 15, or a packet type's name.
            let names = ["connect", "connack", "publish", "puback", "pubrec", "pubrel", "pubcomp", "subscribe", "suback", "unsubscribe",
                         "unsuback", "pingreq", "pingresp", "disconnect", "auth"]
            let type = UInt(arguments[0]).flatMap { (1...15).contains($0) ? Int($0) : nil } ?? names.firstIndex(of: arguments[0].lowercased()).map { $0 + 1 }
            guard let type else { return .failure(ValueError("Unknown MQTT type '\(arguments[0])'")) }
            guard type == 1 else {
                return .failure(ValueError("'\(text)': Sluice reads the client's first MQTT packet, CONNECT (1), only: \(type == 2 ? "a CONNACK is the server's answer, and Sluice's rules see the client's data only" : "HAProxy reads no other packet either")"))
            }
            guard let field = MQTT.Field(arguments[1]) else {
                return .failure(ValueError("Unknown MQTT field name '\(arguments[1])' for packet type '\(arguments[0])'"))
            }
            return .success(.mqttFieldValue(field))
        }
        if text.hasPrefix("ipmask(") && text.hasSuffix(")") {
            let arguments = text.dropFirst("ipmask(".count).dropLast().split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingSpaces }
            guard (1...2).contains(arguments.count), let v4 = IPNetwork("0.0.0.0/" + arguments[0]), case .v4 = v4.address else {
                return .failure(ValueError("'\(text)': expected ipmask(<mask4>[,<mask6>]), masks as a length (24) or dotted (255.255.255.0)"))
            }
            var v6: UInt128?
            if arguments.count == 2 {
                guard let network = IPNetwork("::/" + arguments[1]) ?? IPAddress(arguments[1]).flatMap({ a in
                    if case .v6(let m) = a, (~m & (~m &+ 1)) == 0 { IPNetwork("::/\(m.nonzeroBitCount)") } else { nil }
                }) else {
                    return .failure(ValueError("'\(text)': the IPv6 mask '\(arguments[1])' is not a length (64) nor a mask (ffff:ffff::)"))
                }
                v6 = network.bits == 0 ? 0 : ~UInt128(0) << (128 - network.bits)
            }
            return .success(.ipMask(v4: v4.bits == 0 ? 0 : ~UInt32(0) << (32 - v4.bits), v6: v6))
        }
        guard text.hasPrefix("map"), let open = text.firstIndex(of: "("), text.hasSuffix(")") else {
            return .failure(ValueError("converter '\(text)' is not supported (supported: lower, upper, ipmask, mqtt_is_valid, mqtt_field_value, map, map_str, map_beg, map_sub, map_dir, map_dom, map_end, map_reg, map_int, map_ip, and their _int forms)"))
        }
        let name = String(text[..<open])
        let arguments = text[text.index(after: open)..<text.index(before: text.endIndex)].split(separator: ",", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let path = arguments.first, !path.isEmpty else { return .failure(ValueError("'\(name)' needs a map file: \(name)(<file>[,<default>])")) }
        return MapTable.load(name, path: path, default: arguments.count > 1 ? arguments[1] : nil, readFile: readFile).map(Converter.map)
    }
}

/// A map file, as HAProxy's `map_<match>[_<output>]` converters read it: one key and value per
/// line (leading blanks stripped, the key is the first word, the value the rest without trailing
/// blanks; `#` comments and empty lines skipped). `str` keys are looked up in a dictionary; the
/// other methods take the first matching line in file order (HAProxy's lists), except `ip`, which
/// takes the most specific network (HAProxy's tree).
final class MapTable: Sendable, Hashable {
    let name: String
    private let method: MatchMethod
    let integerOutput: Bool
    private let exact: [[UInt8]: Sample]
    private let entries: [(patterns: PatternSet, prefix: Int, value: Sample)]
    private let fallback: Sample?

    private init(name: String, method: MatchMethod, integerOutput: Bool, exact: [[UInt8]: Sample], entries: [(patterns: PatternSet, prefix: Int, value: Sample)], fallback: Sample?) {
        (self.name, self.method, self.integerOutput, self.exact, self.entries, self.fallback) = (name, method, integerOutput, exact, entries, fallback)
    }

    static func == (a: MapTable, b: MapTable) -> Bool { a === b }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }

    static func load(_ name: String, path: String, default fallback: String?, readFile: (String) -> Result<String, SystemError>) -> Result<MapTable, ValueError> {
        var parts = name.split(separator: "_").map(String.init)
        var integerOutput = false
        if parts.count == 3 {
            guard parts[2] == "int" else { return .failure(ValueError("'\(name)': only string and integer outputs are supported (_ip outputs are not)")) }
            integerOutput = true
            parts.removeLast()
        }
        let methodName = parts.count == 1 ? "str" : parts[1]
        guard parts[0] == "map", parts.count <= 2, let method = MatchMethod(rawValue: methodName),
              [.str, .beg, .sub, .dir, .dom, .end, .reg, .int, .ip].contains(method) else {
            return .failure(ValueError("converter '\(name)' is not supported (map_regm and _ip outputs are not)"))
        }
        func value(_ text: String) -> Sample? {
            integerOutput ? Int64(text).map(Sample.int) : .string(Array(text.utf8))
        }
        var fallbackSample: Sample?
        if let fallback {
            guard let v = value(fallback) else { return .failure(ValueError("'\(name)': default '\(fallback)' is not an integer")) }
            fallbackSample = v
        }
        let text: String
        switch readFile(path) {
        case .success(let t): text = t
        case .failure(let e): return .failure(ValueError("cannot read map file '\(path)': \(e.reason)"))
        }
        var exact: [[UInt8]: Sample] = [:]
        var entries: [(patterns: PatternSet, prefix: Int, value: Sample)] = []
        for (number, rawLine) in text.lines.enumerated() {
            let line = rawLine.drop { $0 == " " || $0 == "\t" }
            if line.isEmpty || line.hasPrefix("#") || line.allSatisfy({ $0 == "\r" || $0 == " " || $0 == "\t" }) { continue }
            let key = String(line.prefix { $0 != " " && $0 != "\t" })
            var rest = line.dropFirst(key.count).drop { $0 == " " || $0 == "\t" }
            while let l = rest.last, l == " " || l == "\t" || l == "\r" { rest = rest.dropLast() }
            guard let v = value(String(rest)) else { return .failure(ValueError("\(path):\(number + 1): '\(rest)' is not an integer")) }
            if method == .str {
                if exact[Array(key.utf8)] == nil { exact[Array(key.utf8)] = v }
                continue
            }
            var builder = PatternSet.Builder(method: method)
            if let problem = builder.add(key, ignoreCase: false) { return .failure(ValueError("\(path):\(number + 1): \(problem)")) }
            let prefix = method == .ip ? key.split(separator: "/").dropFirst().first.flatMap { Int($0) } ?? (key.contains(":") ? 128 : 32) : 0
            entries.append((PatternSet(builder), prefix, v))
        }
        return .success(MapTable(name: name, method: method, integerOutput: integerOutput, exact: exact, entries: entries, fallback: fallbackSample))
    }

    func lookUp(_ sample: Sample) -> Sample? {
        if method == .str { return exact[sample.bytes] ?? fallback }
        if method == .ip {
            var best: (prefix: Int, value: Sample)?
            for entry in entries where entry.prefix > (best?.prefix ?? -1) && entry.patterns.matches(sample) { best = (entry.prefix, entry.value) }
            return best?.value ?? fallback
        }
        return entries.first { $0.patterns.matches(sample) }?.value ?? fallback
    }
}

/// A fetch followed by its converters.
struct SampleExpression: Sendable, Hashable {
    var fetch: Fetch
    var converters: [Converter] = []

    /// Whether the expression gives binary data (a payload, no converter after it): HAProxy's
    /// SMP_T_BIN, which no cast turns into an address or an integer.
    var isBinary: Bool {
        guard converters.isEmpty else { return false }
        func binary(_ f: Fetch) -> Bool {
            switch f {
            case .payload, .payloadLengthValue: true
            case .response(let inner), .anyDirection(let inner): binary(inner)
            default: false
            }
        }
        return binary(fetch)
    }

    /// Parses `fetch[,converter]*`; `readFile` reads the files converters name (maps).
    static func parse(_ text: String, readFile: (String) -> Result<String, SystemError> = Parser.readFile) -> Result<SampleExpression, ValueError> {
        var parts: [String] = []
        var depth = 0
        var current = ""
        for c in text {
            if c == "(" { depth += 1 } else if c == ")" { depth -= 1 }
            if c == "," && depth == 0 { parts.append(current); current = "" } else { current.append(c) }
        }
        parts.append(current)
        switch Fetch.parse(parts[0]) {
        case .failure(let e): return .failure(e)
        case .success(let fetch):
            var expression = SampleExpression(fetch: fetch)
            for name in parts.dropFirst() {
                switch Converter.parse(name, readFile: readFile) {
                case .success(let converter): expression.converters.append(converter)
                case .failure(let e): return .failure(e)
                }
            }
            return .success(expression)
        }
    }
}

extension String {
    /// The lines of a file, ended by LF or CRLF (Swift keeps "\r\n" as one character, which a
    /// split on "\n" alone never finds).
    var lines: [Substring] { split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" } }

    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

/// What a backend-load fetch reads (HAProxy 2.6's `smp_fetch_*` in backend.c).
enum BackendLoad: UInt8, Sendable, Hashable, CaseIterable {
    /// `nbsrv`: usable servers (the active ones with a weight, else the backups).
    case usableServers
    /// `be_conn`: sessions of the backend: connecting, connected or queued.
    case sessions
    /// `be_conn_free`: free `maxconn` slots of the usable servers; -1 when one has no `maxconn`.
    case freeConnections
    /// `queue`: sessions waiting in the backend's and its servers' queues.
    case queued
    /// `avg_queue`: `queue` per usable server, rounded up; twice `queue` without any.
    case averageQueue
    /// `connslots`: free connection and queue slots of the servers that are not down; -1 when
    /// one has no `maxconn` or no `maxqueue`.
    case freeSlots

    var fetchName: String {
        switch self {
        case .usableServers: "nbsrv"
        case .sessions: "be_conn"
        case .freeConnections: "be_conn_free"
        case .queued: "queue"
        case .averageQueue: "avg_queue"
        case .freeSlots: "connslots"
        }
    }
}
