/// The first packet an MQTT client sends (CONNECT), read as HAProxy 2.6 reads it (its mqtt.c) for
/// the `mqtt_is_valid` and `mqtt_field_value(connect,<field>)` converters: MQTT 3.1, 3.1.1 and
/// 5.0, its variable header, v5 properties and payload, with HAProxy's validity rules.
///
/// The server's first packet (CONNACK) is not read: Sluice's rules see the client's data only.
enum MQTT {
    /// A CONNECT packet's fields.
    struct Connect {
        var protocolName: [UInt8] = []
        var protocolVersion: UInt8 = 0
        var flags: UInt8 = 0
        var keepalive: UInt16 = 0
        /// v5 properties (of the variable header, and the will's), numeric ones by id.
        var numbers: [UInt8: UInt32] = [:]
        var strings: [UInt8: [UInt8]] = [:]
        var clientIdentifier: [UInt8] = []
        var willTopic: [UInt8] = []
        var willPayload: [UInt8] = []
        var username: [UInt8] = []
        var password: [UInt8] = []
    }

    enum Verdict {
        case valid(Connect)
        case needsMore
        case invalid
    }

    /// A field `mqtt_field_value(connect,…)` can name.
    enum Field: Hashable, Sendable {
        case flags, protocolName, protocolVersion, clientIdentifier, willTopic, willPayload, username, password, keepalive
        /// A v5 property by its id (HAProxy's list; user properties, 38, are not).
        case property(UInt8)

        /// HAProxy's names (case-insensitive) and property ids.
        init?(_ name: String) {
            switch name.lowercased() {
            case "flags": self = .flags
            case "protocol_name": self = .protocolName
            case "protocol_version": self = .protocolVersion
            case "client_identifier": self = .clientIdentifier
            case "will_topic": self = .willTopic
            case "will_payload": self = .willPayload
            case "username": self = .username
            case "password": self = .password
            case "keepalive": self = .keepalive
            default:
                // HAProxy takes a user property's id (38) too, and never finds its value.
                guard let id = UInt8(name), MQTT.connectProperties[id] != nil || MQTT.willProperties[id] != nil || id == MQTT.userProperty else { return nil }
                self = .property(id)
            }
        }
    }

    /// CONNECT's properties by id and size (0: a string), and those of its will.
    static let connectProperties: [UInt8: Int] = [17: 4, 33: 2, 39: 4, 34: 2, 25: 1, 23: 1, 21: 0, 22: 0]
    static let willProperties: [UInt8: Int] = [24: 4, 1: 1, 2: 4, 3: 0, 8: 0, 9: 0]
    static let userProperty: UInt8 = 38

    /// HAProxy's `mqtt_validate_message` for a client's data (`MQTT_MIN_PKT_SIZE` is 2).
    static func validate(_ bytes: [UInt8]) -> Verdict {
        guard bytes.count >= 2 else { return .needsMore }
        var reader = Reader(bytes)
        let header = bytes[0]
        let type = header >> 4
        // Each type's fixed flags (HAProxy 2.6's table, PUBLISH's 0x0F included).
        let fixedFlags: [UInt8] = [0, 0, 0, 0x0F, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0]
        guard type != 0, header & 0x0F == fixedFlags[Int(type)] else { return .invalid }
        reader.skip(1)
        guard let remaining = reader.variableInteger() else { return .invalid }
        guard reader.left >= Int(remaining) else { return .needsMore }
        guard type == 1 else { return .invalid }  // CONNECT only: see the type's comment
        let start = reader.left
        guard let connect = readConnect(&reader), start - reader.left == Int(remaining) else { return .invalid }
        return .valid(connect)
    }

    /// `mqtt_field_value(connect,<field>)`: the value as text (numbers in decimal), nil when the
    /// packet has no such field (or is not a valid CONNECT); `needsMore` while it is incomplete.
    static func value(_ field: Field, in bytes: [UInt8]) -> (value: [UInt8]?, needsMore: Bool) {
        let connect: Connect
        switch validate(bytes) {
        case .needsMore: return (nil, true)
        case .invalid: return (nil, false)
        case .valid(let c): connect = c
        }
        func text(_ n: some BinaryInteger) -> [UInt8] { Array(String(n).utf8) }
        func nonEmpty(_ b: [UInt8]) -> [UInt8]? { b.isEmpty ? nil : b }
        switch field {
        case .flags: return (text(connect.flags), false)
        case .protocolName: return (nonEmpty(connect.protocolName), false)
        case .protocolVersion: return (text(connect.protocolVersion), false)
        case .clientIdentifier: return (nonEmpty(connect.clientIdentifier), false)
        case .willTopic: return (nonEmpty(connect.willTopic), false)
        case .willPayload: return (nonEmpty(connect.willPayload), false)
        case .username: return (nonEmpty(connect.username), false)
        case .password: return (nonEmpty(connect.password), false)
        case .keepalive: return (text(connect.keepalive), false)
        case .property(let id):
            // v5 only; a will's property only with a will. An absent number reads 0, as HAProxy.
            guard connect.protocolVersion == 5, willProperties[id] == nil || connect.flags & 0x04 != 0 else { return (nil, false) }
            let size = connectProperties[id] ?? willProperties[id] ?? 0
            return (size == 0 ? connect.strings[id].flatMap(nonEmpty) : text(connect.numbers[id] ?? 0), false)
        }
    }

    private static func readConnect(_ r: inout Reader) -> Connect? {
        var c = Connect()
        guard let name = r.string(), ["mqtt", "mqisdp"].contains(String(decoding: name, as: UTF8.self).lowercased()) else { return nil }
        c.protocolName = name
        guard let version = r.byte(), (3...5).contains(version) else { return nil }
        c.protocolVersion = version
        // Reserved bit off, and no will QoS without a will.
        guard let flags = r.byte(), flags & 0x01 == 0, flags & 0x3C != 0x18 else { return nil }
        c.flags = flags
        guard let keepalive = r.integer(2) else { return nil }
        c.keepalive = UInt16(keepalive)
        if version == 5 {
            guard readProperties(&r, allowed: connectProperties, into: &c) else { return nil }
        }
        // HAProxy: authentication data needs an authentication method.
        if (c.strings[21] ?? []).isEmpty && !(c.strings[22] ?? []).isEmpty { return nil }
        guard let client = r.string() else { return nil }
        c.clientIdentifier = client
        if version == 5 && flags & 0x04 != 0 {
            guard readProperties(&r, allowed: willProperties, into: &c) else { return nil }
        }
        if flags & 0x04 != 0 {
            guard let topic = r.string(), let payload = r.string() else { return nil }
            c.willTopic = topic
            c.willPayload = payload
        }
        if flags & 0x80 != 0 {
            guard let username = r.string() else { return nil }
            c.username = username
        }
        if flags & 0x40 != 0 {
            guard let password = r.string() else { return nil }
            c.password = password
        }
        return c
    }

    /// A v5 property list: each known property at most once (user properties any number of
    /// times), within HAProxy's bounds; an unknown id makes the packet invalid.
    private static func readProperties(_ r: inout Reader, allowed: [UInt8: Int], into c: inout Connect) -> Bool {
        guard let length = r.variableInteger(), r.left >= Int(length) else { return false }
        var p = Reader(r.take(Int(length)))
        var seen: Set<UInt8> = []
        while p.left > 0 {
            guard let id = p.byte() else { return false }
            if id == userProperty {
                guard p.string() != nil, p.string() != nil else { return false }
                continue
            }
            guard let size = allowed[id], seen.insert(id).inserted else { return false }
            if size == 0 {
                guard let s = p.string() else { return false }
                c.strings[id] = s
                continue
            }
            guard let n = p.integer(size) else { return false }
            // Receive maximum and maximum packet size are never 0; the two request flags and the
            // payload format indicator are 0 or 1.
            if (id == 33 || id == 39) && n == 0 { return false }
            if (id == 25 || id == 23 || id == 1) && n > 1 { return false }
            c.numbers[id] = n
        }
        return true
    }

    /// Big-endian integers, MQTT strings (a 2-byte length, then the bytes) and variable-length
    /// integers (at most 4 bytes, as HAProxy reads them) from a byte array.
    private struct Reader {
        private let bytes: [UInt8]
        private var at = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var left: Int { bytes.count - at }
        mutating func skip(_ n: Int) { at += n }

        mutating func take(_ n: Int) -> [UInt8] {
            defer { at += n }
            return Array(bytes[at..<(at + n)])
        }

        mutating func byte() -> UInt8? { integer(1).map(UInt8.init) }

        mutating func integer(_ size: Int) -> UInt32? {
            guard left >= size else { return nil }
            defer { at += size }
            return bytes[at..<(at + size)].reduce(0) { $0 << 8 | UInt32($1) }
        }

        mutating func string() -> [UInt8]? {
            guard let length = integer(2), left >= Int(length) else { return nil }
            return take(Int(length))
        }

        /// HAProxy's loop: a fourth byte with its continuation bit set makes it invalid; data that
        /// end within it leave what was read (the caller then waits for the rest).
        mutating func variableInteger() -> UInt32? {
            var value: UInt32 = 0
            var shift: UInt32 = 0
            var count = 0
            while count < 4 && left > 0 {
                let b = bytes[at]
                at += 1
                value += UInt32(b & 127) << shift
                shift += 7
                count += 1
                if b <= 127 { break }
            }
            return count == 4 && bytes[at - 1] > 127 ? nil : value
        }
    }
}
