// libFuzzer target `MQTT`: the MQTT CONNECT reader behind `mqtt_is_valid` and `mqtt_field_value`
// (a client's first packet). Built (with the others, into one binary: Fuzz/Driver.swift) and run
// by scripts/fuzz; seeds in corpus/.
func fuzzMQTT(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let verdict = MQTT.validate(bytes)
    for name in ["client_identifier", "username", "password", "will_topic", "will_payload", "flags", "17", "24", "21"] {
        guard let field = MQTT.Field(name) else { continue }
        let (value, needsMore) = MQTT.value(field, in: bytes)
        switch verdict {
        case .needsMore: precondition(needsMore && value == nil, "a field of an incomplete packet")
        case .invalid: precondition(!needsMore && value == nil, "a field of an invalid packet")
        case .valid: precondition(!needsMore && (value?.count ?? 0) <= size, "a field larger than the packet")
        }
    }
    // A valid packet stays valid with more data after it, and its prefixes are incomplete or invalid.
    if case .valid = verdict {
        guard case .valid = MQTT.validate(bytes + [0xC0, 0]) else { preconditionFailure("trailing data changed the verdict") }
    }
    return 0
}
