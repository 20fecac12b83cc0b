import Testing
@testable import Sluice

/// The MQTT CONNECT reader behind `mqtt_is_valid` and `mqtt_field_value`, on packets built here
/// byte by byte (MQTT 3.1.1 and 5.0), as HAProxy 2.6's mqtt.c judges them.
@Suite struct MQTTTests {
    static func string(_ s: String) -> [UInt8] { [UInt8(s.utf8.count >> 8), UInt8(s.utf8.count & 0xFF)] + Array(s.utf8) }

    /// A CONNECT: the fixed header with the remaining length, then `body`.
    static func packet(_ body: [UInt8], header: UInt8 = 0x10) -> [UInt8] {
        var length = body.count
        var encoded: [UInt8] = []
        repeat {
            var byte = UInt8(length % 128)
            length /= 128
            if length > 0 { byte |= 0x80 }
            encoded.append(byte)
        } while length > 0
        return [header] + encoded + body
    }

    /// MQTT 3.1.1: user name, password, clean session; keepalive 60.
    static let v311 = packet(string("MQTT") + [4, 0xC2, 0, 60] + string("sensor-17") + string("alice") + string("pw"))

    /// MQTT 5.0 with properties (session expiry 3600, receive maximum 20), a will with its own
    /// (will delay 5), and a user property.
    static let v5 = packet(string("MQTT") + [5, 0x06, 0, 30]
        + [15, 17, 0, 0, 0x0E, 0x10, 33, 0, 20, 38] + string("k") + string("v")
        + string("v5-client") + [5, 24, 0, 0, 0, 5] + string("t") + string("bye"))

    @Test func validPacketsAndTheirFields() {
        guard case .valid = MQTT.validate(Self.v311), case .valid = MQTT.validate(Self.v5) else {
            Issue.record("both packets are valid")
            return
        }
        func value(_ name: String, _ packet: [UInt8]) -> String? {
            MQTT.Field(name).flatMap { MQTT.value($0, in: packet).value }.map { String(decoding: $0, as: UTF8.self) }
        }
        #expect(value("client_identifier", Self.v311) == "sensor-17")
        #expect(value("USERNAME", Self.v311) == "alice" && value("password", Self.v311) == "pw")
        #expect(value("flags", Self.v311) == "194" && value("protocol_version", Self.v311) == "4" && value("keepalive", Self.v311) == "60")
        #expect(value("protocol_name", Self.v311) == "MQTT")
        #expect(value("will_topic", Self.v311) == nil, "no will")
        #expect(value("17", Self.v311) == nil, "properties are v5 only")
        #expect(value("client_identifier", Self.v5) == "v5-client")
        #expect(value("17", Self.v5) == "3600" && value("33", Self.v5) == "20" && value("24", Self.v5) == "5")
        #expect(value("39", Self.v5) == "0", "an absent number reads 0, as HAProxy")
        #expect(value("21", Self.v5) == nil, "an absent string is not found")
        #expect(value("38", Self.v5) == nil, "user properties are never returned (HAProxy 2.6)")
        #expect(value("will_topic", Self.v5) == "t" && value("will_payload", Self.v5) == "bye")
        #expect(MQTT.Field("reason_code") == nil && MQTT.Field("99") == nil)
        // Data after the packet (the client's next one) do not matter.
        if case .valid = MQTT.validate(Self.v311 + [0xC0, 0]) {} else { Issue.record("trailing data") }
    }

    @Test func everyPrefixNeedsMoreAndNothingElse() {
        for packet in [Self.v311, Self.v5] {
            for n in 0..<packet.count {
                guard case .needsMore = MQTT.validate(Array(packet.prefix(n))) else {
                    Issue.record("a \(n)-byte prefix of a \(packet.count)-byte packet is not 'needs more'")
                    return
                }
                #expect(MQTT.value(.clientIdentifier, in: Array(packet.prefix(n))).needsMore)
            }
        }
    }

    @Test func invalidPacketsAsHAProxyJudgesThem() {
        func invalid(_ bytes: [UInt8], _ why: Comment) {
            if case .invalid = MQTT.validate(bytes) {} else { Issue.record(why) }
        }
        invalid(Array("GET / HTTP/1.1\r\n\r\n".utf8), "HTTP")
        invalid([0xC0, 0x00], "PINGREQ: only CONNECT is read")
        invalid([0x11] + Self.v311.dropFirst(), "CONNECT with flags")
        invalid(Self.packet(Self.string("MQTX") + [4, 0x02, 0, 60] + Self.string("c")), "protocol name")
        invalid(Self.packet(Self.string("MQTT") + [6, 0x02, 0, 60] + Self.string("c")), "protocol version 6")
        invalid(Self.packet(Self.string("MQTT") + [4, 0x03, 0, 60] + Self.string("c")), "reserved flag")
        invalid(Self.packet(Self.string("MQTT") + [4, 0x18, 0, 60] + Self.string("c")), "will QoS without a will")
        invalid(Self.packet(Self.string("MQTT") + [4, 0x02, 0, 60] + Self.string("c") + [0]), "a byte more than the fields")
        invalid(Self.packet(Self.string("MQTT") + [5, 0x02, 0, 60, 3, 33, 0, 0] + Self.string("c")), "receive maximum 0")
        invalid(Self.packet(Self.string("MQTT") + [5, 0x02, 0, 60, 4, 25, 1, 25, 1] + Self.string("c")), "a property twice")
        invalid(Self.packet(Self.string("MQTT") + [5, 0x02, 0, 60, 2, 99, 0] + Self.string("c")), "an unknown property")
        invalid(Self.packet(Self.string("MQTT") + [5, 0x02, 0, 60, 3, 22] + Self.string("x").dropFirst(0) + Self.string("c")), "authentication data without a method")
        invalid([0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], "a remaining length over four bytes")
    }
}
