/// What the first bytes of a TLS connection say, read without terminating TLS: the fetches
/// `req.ssl_sni`, `req.ssl_alpn`, `req.ssl_ver` and `req.ssl_hello_type`.
///
/// Every parser here reads only the bytes that have arrived, checks every length against both its
/// enclosing structure and the data, and answers one of three things: a value, "no value" (the
/// bytes are not what the fetch looks for, which more bytes will not change), or "incomplete"
/// (more bytes could still give a value). Any byte sequence is safe input: the fuzz target
/// `Fuzz/ClientHello` runs these on arbitrary data.
enum TLSInspection {
    enum Outcome<Value> {
        case value(Value)
        case none
        case incomplete
    }

    /// The parts of a ClientHello the fetches use.
    struct ClientHello: Equatable {
        /// `legacy_version` (0x0303 for TLS 1.2 and 1.3).
        var version: UInt16
        /// The first `host_name` of the `server_name` extension, as sent.
        var serverName: [UInt8]?
        /// The `application_layer_protocol_negotiation` names, in the client's order.
        var protocols: [[UInt8]] = []
        /// The hello has an extensions block (`req.ssl_ec_ext` and `req.ssl_st_ext` need one).
        var hasExtensions = false
        /// `supported_groups` (once `elliptic_curves`, type 10) was sent: `req.ssl_ec_ext`.
        var offersCurves = false
        /// `session_ticket` (type 35): nil when absent, else its length: `req.ssl_st_ext`.
        var sessionTicketLength: Int?
    }

    /// The largest handshake message reassembled (HAProxy inspects at most a buffer, 16 kB).
    static let maximumHello = 16_384

    /// Parses the ClientHello that starts the stream, reassembling it across TLS records (a large
    /// hello, such as one with post-quantum key shares, may span two).
    static func clientHello(_ data: UnsafeRawBufferPointer) -> Outcome<ClientHello> {
        // The common case, the whole hello in the first record: parsed in place, without a copy.
        if data.count >= 9, data[0] == 0x16, data[1] == 0x03, data[5] == 0x01 {
            let record = Int(data[3]) << 8 | Int(data[4])
            let needed = 4 + (Int(data[6]) << 16 | Int(data[7]) << 8 | Int(data[8]))
            if needed <= record, record <= 16_384 + 2048, data.count >= 5 + needed {
                guard let hello = parseHello(UnsafeRawBufferPointer(rebasing: data[9..<(5 + needed)])) else { return .none }
                return .value(hello)
            }
        }
        // Otherwise the handshake message, gathered from consecutive handshake records.
        var message: [UInt8] = []
        var offset = 0
        var needed = -1  // the handshake message's full length, once its header is known
        while needed < 0 || message.count < needed {
            // Each byte is judged as soon as it arrives: a handshake record of TLS (major version 3).
            if data.count > offset && data[offset] != 0x16 { return .none }
            if data.count > offset + 1 && data[offset + 1] != 0x03 { return .none }
            guard data.count - offset >= 5 else { return .incomplete }
            let length = Int(data[offset + 3]) << 8 | Int(data[offset + 4])
            guard length > 0, length <= 16_384 + 2048 else { return .none }
            let available = min(length, data.count - offset - 5)
            message.append(contentsOf: UnsafeRawBufferPointer(rebasing: data[(offset + 5)..<(offset + 5 + available)]))
            if needed < 0 && message.count >= 4 {
                guard message[0] == 0x01 else { return .none }  // ClientHello
                needed = 4 + (Int(message[1]) << 16 | Int(message[2]) << 8 | Int(message[3]))
                guard needed <= maximumHello else { return .none }
            }
            if available < length { break }  // the record itself is still arriving
            offset += 5 + length
        }
        guard needed >= 0, message.count >= needed else { return .incomplete }
        return message.withUnsafeBytes { raw in
            guard let hello = parseHello(UnsafeRawBufferPointer(rebasing: raw[4..<needed])) else { return .none }
            return .value(hello)
        }
    }

    /// The body of a ClientHello (after its 4-byte handshake header); nil when malformed.
    static func parseHello(_ body: UnsafeRawBufferPointer) -> ClientHello? {
        var r = Reader(body)
        guard let version = r.u16(), version >= 0x0301, r.skip(32),
              let sessionLength = r.u8(), sessionLength <= 32, r.skip(Int(sessionLength)),
              let ciphersLength = r.u16(), ciphersLength >= 2, ciphersLength % 2 == 0, r.skip(Int(ciphersLength)),
              let compressionLength = r.u8(), compressionLength >= 1, r.skip(Int(compressionLength)) else { return nil }
        var hello = ClientHello(version: version)
        if r.remaining == 0 { return hello }  // no extensions
        guard let extensionsLength = r.u16(), var extensions = r.sub(Int(extensionsLength)), r.remaining == 0 else { return nil }
        hello.hasExtensions = true
        // RFC 8446 4.2: no extension twice (checked for the registered types below 128, without allocating).
        var seen: (UInt64, UInt64) = (0, 0)
        while extensions.remaining > 0 {
            guard let type = extensions.u16(), let length = extensions.u16(), var body = extensions.sub(Int(length)) else { return nil }
            if type < 64 {
                guard seen.0 & (1 << type) == 0 else { return nil }
                seen.0 |= 1 << type
            } else if type < 128 {
                guard seen.1 & (1 << (type - 64)) == 0 else { return nil }
                seen.1 |= 1 << (type - 64)
            }
            switch type {
            case 0:  // server_name
                guard let listLength = body.u16(), var list = body.sub(Int(listLength)), body.remaining == 0 else { return nil }
                while list.remaining > 0 {
                    guard let nameType = list.u8(), let nameLength = list.u16(), let name = list.bytes(Int(nameLength)) else { return nil }
                    if nameType == 0 && hello.serverName == nil {
                        guard !name.isEmpty else { return nil }
                        hello.serverName = name
                    }
                }
            case 10:  // supported_groups
                hello.offersCurves = true
            case 35:  // session_ticket
                hello.sessionTicketLength = Int(length)
            case 16:  // application_layer_protocol_negotiation
                guard let listLength = body.u16(), listLength >= 2, var list = body.sub(Int(listLength)), body.remaining == 0 else { return nil }
                while list.remaining > 0 {
                    guard let nameLength = list.u8(), nameLength > 0, let name = list.bytes(Int(nameLength)) else { return nil }
                    hello.protocols.append(name)
                }
            default:
                break
            }
        }
        return hello
    }

    /// `req.ssl_hello_type`, as HAProxy computes it: the handshake type of the first message of a
    /// TLS record (content types 20–23), once that whole message is there.
    static func helloType(_ data: UnsafeRawBufferPointer) -> Outcome<Int64> {
        guard let first = data.first else { return .incomplete }
        guard (0x14...0x17).contains(first) || first == 0xFF else { return .none }
        guard data.count >= 9 else { return .incomplete }
        guard Int(data[1]) << 16 + Int(data[2]) >= 0x30000, Int(data[3]) << 8 + Int(data[4]) >= 4 else { return .none }
        let length = Int(data[6]) << 16 | Int(data[7]) << 8 | Int(data[8])
        guard data.count >= 9 + length else { return length > maximumHello ? .none : .incomplete }
        return .value(Int64(data[5]))
    }

    /// `req.ssl_ver`, as HAProxy computes it: the ClientHello's version (major × 65536 + minor)
    /// from an SSLv3+ record or an SSLv2-format hello, once the whole first message is there.
    static func version(_ data: UnsafeRawBufferPointer) -> Outcome<Int64> {
        guard let first = data.first else { return .incomplete }
        let version: Int
        let messageLength: Int
        var rest: Int
        if (0x14...0x17).contains(first) || first == 0xFF {
            guard data.count >= 11 else { return .incomplete }
            let recordVersion = Int(data[1]) << 16 + Int(data[2])
            messageLength = Int(data[3]) << 8 + Int(data[4])
            guard recordVersion >= 0x30000, (6...(16_384 + 2048)).contains(messageLength) else { return .none }
            version = Int(data[9]) << 16 + Int(data[10])
            rest = data.count - 5
        } else {
            // SSLv2 header: 2 bytes (15-bit length) or 3 (14-bit length + padding).
            let header = first & 0x80 != 0 ? 2 : 3
            guard data.count >= header + 1 else { return .incomplete }
            let recordLength = header == 2 ? Int(first & 0x7F) << 8 | Int(data[1]) : Int(first & 0x3F) << 8 | Int(data[1])
            let padding = header == 2 ? 0 : Int(data[2])
            guard data[header] == 0x01 else { return .none }
            guard data.count >= header + 9 else { return .incomplete }
            let p = header + 1
            version = Int(data[p]) << 16 + Int(data[p + 1])
            let ciphers = Int(data[p + 2]) << 8 + Int(data[p + 3])
            let session = Int(data[p + 4]) << 8 + Int(data[p + 5])
            let challenge = Int(data[p + 6]) << 8 + Int(data[p + 7])
            guard ciphers % 3 == 0, session == 0 || session == 16, (16...32).contains(challenge),
                  recordLength == 9 + ciphers + session + challenge else { return .none }
            messageLength = ciphers + session + challenge + padding
            rest = data.count - p - 8
        }
        rest = max(rest, 0)
        guard rest >= min(messageLength, maximumHello) else { return .incomplete }
        return .value(Int64(version))
    }

    /// A bounds-checked reader over bytes that have arrived.
    struct Reader {
        private let data: UnsafeRawBufferPointer
        private var position = 0

        init(_ data: UnsafeRawBufferPointer) { self.data = data }

        var remaining: Int { data.count - position }

        mutating func u8() -> UInt8? {
            guard remaining >= 1 else { return nil }
            defer { position += 1 }
            return data[position]
        }

        mutating func u16() -> UInt16? {
            guard remaining >= 2 else { return nil }
            defer { position += 2 }
            return UInt16(data[position]) << 8 | UInt16(data[position + 1])
        }

        mutating func skip(_ n: Int) -> Bool {
            guard n >= 0, remaining >= n else { return false }
            position += n
            return true
        }

        mutating func bytes(_ n: Int) -> [UInt8]? {
            guard n >= 0, remaining >= n else { return nil }
            defer { position += n }
            return Array(UnsafeRawBufferPointer(rebasing: data[position..<(position + n)]))
        }

        /// The next `n` bytes as their own reader.
        mutating func sub(_ n: Int) -> Reader? {
            guard n >= 0, remaining >= n else { return nil }
            defer { position += n }
            return Reader(UnsafeRawBufferPointer(rebasing: data[position..<(position + n)]))
        }
    }
}

/// For the micro-benchmarks: the server name of the ClientHello in `bytes`, if it has one.
@_spi(Benchmarks) public func clientHelloServerName(_ bytes: UnsafeRawBufferPointer) -> [UInt8]? {
    if case .value(let hello) = TLSInspection.clientHello(bytes) { return hello.serverName }
    return nil
}
