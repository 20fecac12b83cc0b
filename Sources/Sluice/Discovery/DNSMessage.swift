/// DNS messages as Sluice's resolver sends and reads them (RFC 1035, RFC 2782 for SRV, RFC 6891
/// for the EDNS0 payload size). The parser is strict and bounded: it reads only the bytes it was
/// given, follows at most `maxPointerHops` compression pointers per name, refuses names over 255
/// bytes, and any malformed message is an error value, never a trap.
enum DNSRecordType: UInt16, Sendable {
    case a = 1, cname = 5, aaaa = 28, srv = 33, opt = 41

    var label: String {
        switch self {
        case .a: "A"
        case .cname: "CNAME"
        case .aaaa: "AAAA"
        case .srv: "SRV"
        case .opt: "OPT"
        }
    }
}

/// One resource record Sluice uses; others are skipped.
enum DNSRecordData: Hashable, Sendable {
    /// 4 bytes (A) or 16 (AAAA), network order.
    case address([UInt8])
    case cname(String)
    case srv(priority: UInt16, weight: UInt16, port: UInt16, target: String)
}

struct DNSRecord: Hashable, Sendable {
    /// Lower-cased, without the trailing dot.
    var name: String
    var type: UInt16
    var ttl: UInt32
    var data: DNSRecordData
}

/// Why a message was refused; each is a counter of `show resolvers`.
enum DNSParseError: Error, Equatable {
    /// Shorter than its header or a record says.
    case truncatedMessage
    /// Not a response, more than one question, a pointer loop, a name over 255 bytes, a record
    /// whose length does not match its type.
    case malformed(String)
}

struct DNSResponse: Sendable {
    var id: UInt16
    /// The TC bit: the answer did not fit and should be asked again over TCP.
    var truncated: Bool
    /// 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED …
    var rcode: UInt8
    var questionName: String
    var questionType: UInt16
    var answers: [DNSRecord]
    /// The additional section (a SRV answer's addresses come here).
    var additional: [DNSRecord]
}

enum DNSMessage {
    static let maxPointerHops = 32
    static let maxNameLength = 255

    /// A recursive query for `name` of `type`, with an EDNS0 OPT record announcing `payloadSize`
    /// when it is over 512. Nil when the name is not a valid DNS name.
    static func query(id: UInt16, name: String, type: DNSRecordType, payloadSize: Int = 512) -> [UInt8]? {
        guard let encoded = encode(name: name) else { return nil }
        let edns = payloadSize > 512
        var out: [UInt8] = []
        out.reserveCapacity(12 + encoded.count + 4 + (edns ? 11 : 0))
        out.append(contentsOf: [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00])  // RD
        out.append(contentsOf: [0, 1, 0, 0, 0, 0, 0, edns ? 1 : 0])
        out.append(contentsOf: encoded)
        out.append(contentsOf: [0, UInt8(type.rawValue & 0xFF), 0, 1])
        if edns {
            let size = UInt16(min(payloadSize, 65535))
            out.append(contentsOf: [0, 0, 41, UInt8(size >> 8), UInt8(size & 0xFF), 0, 0, 0, 0, 0, 0])
        }
        return out
    }

    /// `name` as length-prefixed labels; nil for an empty label, a label over 63 bytes or a name over 255.
    static func encode(name: String) -> [UInt8]? {
        var trimmed = Substring(name)
        if trimmed.hasSuffix(".") { trimmed = trimmed.dropLast() }
        guard !trimmed.isEmpty else { return nil }
        var out: [UInt8] = []
        for label in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
            let bytes = Array(label.utf8)
            guard (1...63).contains(bytes.count) else { return nil }
            out.append(UInt8(bytes.count))
            out.append(contentsOf: bytes)
        }
        out.append(0)
        return out.count <= maxNameLength ? out : nil
    }

    /// Parses a response. Only bytes in `message` are read.
    static func parse(_ message: [UInt8]) -> Result<DNSResponse, DNSParseError> {
        var reader = Reader(bytes: message)
        do throws(DNSParseError) {
            let id = try reader.u16()
            let flags = try reader.u16()
            guard flags & 0x8000 != 0 else { throw DNSParseError.malformed("not a response") }
            let qd = try reader.u16(), an = try reader.u16(), ns = try reader.u16(), ar = try reader.u16()
            guard qd == 1 else { throw DNSParseError.malformed("\(qd) questions") }
            let qname = try reader.name()
            let qtype = try reader.u16()
            _ = try reader.u16()
            var answers: [DNSRecord] = []
            for _ in 0..<an { if let r = try reader.record() { answers.append(r) } }
            for _ in 0..<ns { _ = try reader.record() }
            var additional: [DNSRecord] = []
            for _ in 0..<ar { if let r = try reader.record() { additional.append(r) } }
            return .success(DNSResponse(id: id, truncated: flags & 0x0200 != 0, rcode: UInt8(flags & 0x0F), questionName: qname,
                                        questionType: qtype, answers: answers, additional: additional))
        } catch {
            return .failure(error)
        }
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func u8() throws(DNSParseError) -> UInt8 {
            guard offset < bytes.count else { throw .truncatedMessage }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func u16() throws(DNSParseError) -> UInt16 {
            let hi = try u8(), lo = try u8()
            return UInt16(hi) << 8 | UInt16(lo)
        }

        mutating func u32() throws(DNSParseError) -> UInt32 {
            let hi = try u16(), lo = try u16()
            return UInt32(hi) << 16 | UInt32(lo)
        }

        /// A possibly compressed name at the current offset, which moves past it.
        mutating func name() throws(DNSParseError) -> String {
            var (text, end) = try Self.name(in: bytes, at: offset)
            offset = end
            if text.isEmpty { text = "." }
            return text
        }

        /// Reads labels from `start`; returns the name and the offset after its in-place part.
        static func name(in bytes: [UInt8], at start: Int) throws(DNSParseError) -> (String, Int) {
            var labels: [String] = []
            var length = 0
            var position = start
            var resume: Int?
            var hops = 0
            while true {
                guard position < bytes.count else { throw .truncatedMessage }
                let count = Int(bytes[position])
                switch count & 0xC0 {
                case 0:
                    if count == 0 {
                        return (labels.joined(separator: ".").lowercased(), resume ?? position + 1)
                    }
                    guard position + 1 + count <= bytes.count else { throw .truncatedMessage }
                    length += count + 1
                    guard length < DNSMessage.maxNameLength else { throw .malformed("name longer than 255 bytes") }
                    let label = bytes[(position + 1)...(position + count)]
                    // Host names are printable ASCII without dots inside a label: anything else
                    // could pass for another name once written as text (a label "a.b" reads as two).
                    guard label.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ".") }) else {
                        throw .malformed("a label with a byte a host name cannot have")
                    }
                    labels.append(String(decoding: label, as: UTF8.self))
                    position += 1 + count
                case 0xC0:
                    guard position + 1 < bytes.count else { throw .truncatedMessage }
                    hops += 1
                    guard hops <= DNSMessage.maxPointerHops else { throw .malformed("compression pointer loop") }
                    if resume == nil { resume = position + 2 }
                    let target = (count & 0x3F) << 8 | Int(bytes[position + 1])
                    // A pointer goes back to a name already seen; forward pointers only serve loops.
                    guard target < position else { throw .malformed("compression pointer forward") }
                    position = target
                default:
                    throw .malformed("label type \(count >> 6)")
                }
            }
        }

        /// One record; nil for types Sluice does not use (skipped by their length).
        mutating func record() throws(DNSParseError) -> DNSRecord? {
            let owner = try name()
            let type = try u16()
            _ = try u16()
            let ttl = try u32()
            let length = Int(try u16())
            let start = offset
            guard start + length <= bytes.count else { throw .truncatedMessage }
            defer { offset = start + length }
            let data: DNSRecordData
            switch DNSRecordType(rawValue: type) {
            case .a:
                guard length == 4 else { throw .malformed("A record of \(length) bytes") }
                data = .address(Array(bytes[start..<start + 4]))
            case .aaaa:
                guard length == 16 else { throw .malformed("AAAA record of \(length) bytes") }
                data = .address(Array(bytes[start..<start + 16]))
            case .cname:
                let (target, end) = try Self.name(in: bytes, at: start)
                guard end <= start + length else { throw .malformed("CNAME longer than its record") }
                data = .cname(target)
            case .srv:
                guard length >= 7 else { throw .malformed("SRV record of \(length) bytes") }
                var fields = Reader(bytes: bytes, offset: start)
                let priority = try fields.u16(), weight = try fields.u16(), port = try fields.u16()
                let (target, end) = try Self.name(in: bytes, at: fields.offset)
                guard end <= start + length else { throw .malformed("SRV target longer than its record") }
                data = .srv(priority: priority, weight: weight, port: port, target: target)
            default:
                return nil
            }
            return DNSRecord(name: owner, type: type, ttl: ttl, data: data)
        }
    }
}

extension DNSResponse {
    /// The addresses of `name` (following CNAMEs in the answer, at most 8), of one family
    /// (`type` A or AAAA); answers for other names are left out.
    func addresses(of name: String, type: DNSRecordType) -> [[UInt8]] {
        var owner = DNSResponse.normalized(name)
        var out: [[UInt8]] = []
        for _ in 0..<8 {
            for record in answers where record.name == owner && record.type == type.rawValue {
                if case .address(let bytes) = record.data, !out.contains(bytes) { out.append(bytes) }
            }
            guard out.isEmpty, let alias = answers.first(where: { $0.name == owner && $0.type == DNSRecordType.cname.rawValue }),
                  case .cname(let target) = alias.data else { break }
            owner = target
        }
        return out
    }

    /// Whether the answer names a CNAME for `name` (`show resolvers`' `cname`).
    func hasAlias(for name: String) -> Bool {
        let owner = DNSResponse.normalized(name)
        return answers.contains { $0.name == owner && $0.type == DNSRecordType.cname.rawValue }
    }

    /// SRV targets of `name`, each with the addresses the additional section gives it.
    func services(of name: String) -> [(priority: UInt16, weight: UInt16, port: UInt16, target: String, addresses: [[UInt8]])] {
        let owner = DNSResponse.normalized(name)
        return answers.compactMap { record in
            guard record.name == owner, case .srv(let priority, let weight, let port, let target) = record.data else { return nil }
            let addresses = additional.compactMap { extra -> [UInt8]? in
                guard extra.name == target, case .address(let bytes) = extra.data else { return nil }
                return bytes
            }
            return (priority, weight, port, target, addresses)
        }
    }

    static func normalized(_ name: String) -> String {
        var n = name.lowercased()
        if n.hasSuffix("."), n.count > 1 { n.removeLast() }
        return n
    }
}
