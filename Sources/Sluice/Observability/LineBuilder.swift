#if canImport(Glibc)
import Glibc
#endif

/// A log line's bytes, appended piece by piece: a line per session must not cost a string
/// interpolation per field (measured: it made logging cost twice HAProxy's user CPU per connection).
struct LineBuilder {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 192) { bytes.reserveCapacity(capacity) }

    mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    mutating func append(_ other: [UInt8]) { bytes.append(contentsOf: other) }

    mutating func append(byte: UInt8) { bytes.append(byte) }

    /// A decimal integer, `-` first when negative.
    mutating func append(_ value: Int) {
        if value < 0 { bytes.append(0x2D) }
        var magnitude = value.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { raw in
            repeat {
                raw[count] = UInt8(truncatingIfNeeded: magnitude % 10) + 0x30
                magnitude /= 10
                count += 1
            } while magnitude > 0
            for i in stride(from: count - 1, through: 0, by: -1) { bytes.append(raw[i]) }
        }
    }

    /// `value` with leading zeros to `width` digits (times and dates).
    mutating func append(_ value: Int, width: Int) {
        var w = 1, limit = 10
        while value >= limit && w < 20 { w += 1; limit &*= 10 }
        for _ in w..<max(w, width) { bytes.append(0x30) }
        append(value)
    }

    /// `ip:port` (IPv6 without brackets, as HAProxy's `%ci:%cp`).
    mutating func append(address: SocketAddress) {
        address.withSockaddr { pointer, _ in
            if address.family == AF_INET {
                let raw = UnsafeRawPointer(pointer)
                let ip = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!, as: UInt32.self))
                append(Int(ip >> 24)); append(byte: 0x2E)
                append(Int(ip >> 16 & 0xFF)); append(byte: 0x2E)
                append(Int(ip >> 8 & 0xFF)); append(byte: 0x2E)
                append(Int(ip & 0xFF))
            } else {
                append(address.ip)
            }
        }
        append(byte: 0x3A)
        append(address.port)
    }
}

/// Dates as log lines write them, the work of each second done once: the writer's syslog headers
/// (`Dec  1 12:48:36`, ISO 8601 with µs) and a reactor's accept dates (`01/Dec/2026:12:48:36.324`).
struct LogClock {
    private static let months: [StaticString] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    private var second = -1
    private var legacy: [UInt8] = []
    private var isoPrefix: [UInt8] = []
    private var isoOffset: [UInt8] = []
    private var acceptPrefix: [UInt8] = []

    private mutating func update(_ seconds: Int) {
        guard seconds != second else { return }
        second = seconds
        var t = time_t(seconds)
        var parts = tm()
        localtime_r(&t, &parts)
        let month = Self.months[Int(parts.tm_mon)]
        var b = LineBuilder(capacity: 16)
        b.append(month); b.append(byte: 0x20)
        if parts.tm_mday < 10 { b.append(byte: 0x20) }
        b.append(Int(parts.tm_mday)); b.append(byte: 0x20)
        b.append(Int(parts.tm_hour), width: 2); b.append(byte: 0x3A)
        b.append(Int(parts.tm_min), width: 2); b.append(byte: 0x3A)
        b.append(Int(parts.tm_sec), width: 2)
        legacy = b.bytes
        b = LineBuilder(capacity: 24)
        b.append(Int(parts.tm_year) + 1900); b.append(byte: 0x2D)
        b.append(Int(parts.tm_mon) + 1, width: 2); b.append(byte: 0x2D)
        b.append(Int(parts.tm_mday), width: 2); b.append(byte: 0x54)
        b.append(Int(parts.tm_hour), width: 2); b.append(byte: 0x3A)
        b.append(Int(parts.tm_min), width: 2); b.append(byte: 0x3A)
        b.append(Int(parts.tm_sec), width: 2); b.append(byte: 0x2E)
        isoPrefix = b.bytes
        let offset = Int(parts.tm_gmtoff) / 60
        b = LineBuilder(capacity: 8)
        b.append(byte: offset < 0 ? 0x2D : 0x2B)
        b.append(abs(offset) / 60, width: 2); b.append(byte: 0x3A); b.append(abs(offset) % 60, width: 2)
        isoOffset = b.bytes
        b = LineBuilder(capacity: 24)
        b.append(Int(parts.tm_mday), width: 2); b.append(byte: 0x2F)
        b.append(month); b.append(byte: 0x2F)
        b.append(Int(parts.tm_year) + 1900); b.append(byte: 0x3A)
        b.append(Int(parts.tm_hour), width: 2); b.append(byte: 0x3A)
        b.append(Int(parts.tm_min), width: 2); b.append(byte: 0x3A)
        b.append(Int(parts.tm_sec), width: 2); b.append(byte: 0x2E)
        acceptPrefix = b.bytes
    }

    /// `Dec  1 12:48:36` (rfc3164).
    mutating func legacy(_ seconds: Int, into line: inout LineBuilder) {
        update(seconds)
        line.append(legacy)
    }

    /// `2026-12-01T12:48:36.323874+00:00`.
    mutating func iso(_ seconds: Int, micros: Int, into line: inout LineBuilder) {
        update(seconds)
        line.append(isoPrefix)
        line.append(micros, width: 6)
        line.append(isoOffset)
    }

    /// `01/Dec/2026:12:48:36 +0000` (HAProxy's `%T`, in UTC) or with the local offset (`%Tl`).
    static func date(_ seconds: Int, local: Bool, into line: inout LineBuilder) {
        var t = time_t(seconds)
        var parts = tm()
        if local { localtime_r(&t, &parts) } else { gmtime_r(&t, &parts) }
        line.append(Int(parts.tm_mday), width: 2); line.append(byte: 0x2F)
        line.append(months[Int(parts.tm_mon)]); line.append(byte: 0x2F)
        line.append(Int(parts.tm_year) + 1900, width: 4); line.append(byte: 0x3A)
        line.append(Int(parts.tm_hour), width: 2); line.append(byte: 0x3A)
        line.append(Int(parts.tm_min), width: 2); line.append(byte: 0x3A)
        line.append(Int(parts.tm_sec), width: 2); line.append(byte: 0x20)
        let offset = local ? Int(parts.tm_gmtoff) / 60 : 0
        line.append(byte: offset < 0 ? 0x2D : 0x2B)
        line.append(abs(offset) / 60, width: 2); line.append(abs(offset) % 60, width: 2)
    }

    /// The system's host name (`%H`).
    static let hostName = Array(GlobalKeywords.systemHostName.utf8)

    /// `01/Dec/2026:12:48:36.324` (HAProxy's `%t`).
    mutating func acceptDate(_ seconds: Int, millis: Int, into line: inout LineBuilder) {
        update(seconds)
        line.append(acceptPrefix)
        line.append(millis, width: 3)
    }
}
