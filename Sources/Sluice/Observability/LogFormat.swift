#if canImport(Glibc)
import Glibc
#endif

/// A `log-format` string, compiled once when the configuration is read: HAProxy's Layer-4 `%`
/// variables, their `{+Q,+X,+E,-M}` flags, `%o`, `%[sample]` expressions and literal text, with
/// spaces merged into one separator as HAProxy merges them. `option tcplog` is this type with
/// HAProxy's TCP format (`LogFormat.tcplog`): one mechanism for both.
public struct LogFormat: Hashable, Sendable {
    /// The string as written (after the configuration's quoting and escapes).
    public let text: String
    let items: [Item]
    /// Some variable is only known at the end of the session (HAProxy's `LW_BYTES` variables:
    /// timers, byte counts, counters, the termination state). Without one, HAProxy writes the line
    /// as soon as the server connection is established, as with `option logasap`.
    let waitsForEnd: Bool
    /// `%[…]` parts: the frontend evaluates them with its fetches (`LogRoute.evaluator`).
    let hasSamples: Bool

    /// HAProxy's `option tcplog`.
    public static let tcplogText = "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq"
    /// `option tcplog`: `tcplogText` compiled.
    public static let tcplog: LogFormat = {
        guard case .success(let format) = LogFormat.parse(tcplogText, readFile: Parser.readFile) else {
            preconditionFailure("HAProxy's tcplog format must parse")
        }
        return format
    }()

    struct Flags: OptionSet, Hashable, Sendable {
        let rawValue: UInt8
        /// `M`: an empty value is written `-` (on by default in every log format).
        static let mandatory = Flags(rawValue: 1)
        /// `Q`: strings (and addresses) in double quotes.
        static let quote = Flags(rawValue: 2)
        /// `X`: addresses, ports, `%Ts`, `%ms`, `%rt`, `%lc`, `%pid` in hexadecimal.
        static let hex = Flags(rawValue: 4)
        /// `E`: `"`, `\` and `]` escaped with `\` (RFC 5424 structured data).
        static let escape = Flags(rawValue: 8)

        static let names: [(String, Flags)] = [("M", .mandatory), ("Q", .quote), ("X", .hex), ("E", .escape)]
    }

    /// HAProxy's variables that mean something without HTTP (its table in section 8.2.6).
    enum Variable: String, CaseIterable, Sendable {
        case B, H, ID, ST, T, Tc, Td, Th, Tl, Ts, Tt, Tu, Tw, U, ac, b, bc, bi, bp, bq, ci, cp, f, fc, fi, fp, ft
        case hr, hrl, hs, hsl, lc, ms, pid, rc, rt, s, sc, si, sp, sq, sslc, sslv, t, ts, tsc

        /// Known only at the end of the session (HAProxy's `LW_BYTES`).
        var waitsForEnd: Bool {
            switch self {
            case .B, .ID, .Tc, .Td, .Th, .Tt, .Tu, .Tw, .U, .ac, .bc, .bq, .fc, .rc, .sc, .sq, .ts: true
            default: false
            }
        }
    }

    /// HAProxy's variables that need `mode http`: an error in a tcp proxy, as in HAProxy.
    static let httpVariables: Set<String> = ["CC", "CS", "HM", "HP", "HPO", "HQ", "HU", "HV", "Ta", "Ti", "Tq", "TR", "Tr", "r", "tr", "trg", "trl"]

    enum Item: Hashable, Sendable {
        case text([UInt8])
        /// One or more spaces: one space in the line, none after another separator or at its start.
        case separator
        case variable(Variable, Flags)
        case sample(SampleExpression, Flags)
    }

    /// Compiles `text` as HAProxy 2.6's `parse_logformat_string` reads it (in a tcp proxy).
    static func parse(_ text: String, readFile: (String) -> Result<String, SystemError>) -> Result<LogFormat, ValueError> {
        let bytes = Array(text.utf8)
        var items: [Item] = []
        var literal: [UInt8] = []
        var defaults: Flags = .mandatory
        func flush() {
            if !literal.isEmpty { items.append(.text(literal)); literal = [] }
        }
        func isAlpha(_ b: UInt8) -> Bool { (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) }
        func isAlnum(_ b: UInt8) -> Bool { isAlpha(b) || (0x30...0x39).contains(b) }
        func flags(_ spec: String?, from start: Flags) -> Flags {
            var result = start
            for word in (spec ?? "").split(separator: ",") {
                guard let sign = word.first, sign == "+" || sign == "-",
                      let flag = Flags.names.first(where: { $0.0 == word.dropFirst() })?.1 else { continue }
                if sign == "+" { result.insert(flag) } else { result.remove(flag) }
            }
            return result
        }
        var i = 0
        while i < bytes.count {
            let c = bytes[i]
            if c == 0x20 {
                flush()
                if items.last != .separator { items.append(.separator) }
                i += 1
                continue
            }
            guard c == 0x25, i + 1 < bytes.count else {  // '%'
                literal.append(c)
                i += 1
                continue
            }
            var j = i + 1
            let next = bytes[j]
            if next == 0x25 {  // '%%'
                literal.append(0x25)
                i = j + 1
                continue
            }
            if (0x30...0x39).contains(next) || next == 0x20 || next == 0x09 {
                return .failure(ValueError("unexpected variable name near '\(Character(Unicode.Scalar(next)))' at position \(j) line : '\(text)'. Maybe you want to write a single '%', use the syntax '%%'"))
            }
            var spec: String?
            if next == 0x7B {  // '{'
                guard let close = bytes[(j + 1)...].firstIndex(of: 0x7D) else {
                    return .failure(ValueError("'%{' without its '}' in '\(text)'"))
                }
                spec = String(decoding: bytes[(j + 1)..<close], as: UTF8.self)
                j = close + 1
                guard j < bytes.count, bytes[j] == 0x5B || isAlnum(bytes[j]) else {
                    return .failure(ValueError("parse argument modifier without variable name near '%{\(spec!)}'"))
                }
            } else if next != 0x5B && !isAlpha(next) {
                i += 1  // any other character after '%' is text; the '%' is dropped (as HAProxy)
                continue
            }
            flush()
            if bytes[j] == 0x5B {  // '%[sample]': up to the ']' outside parentheses
                var depth = 0, end = j + 1
                while end < bytes.count && !(bytes[end] == 0x5D && depth == 0) {
                    if bytes[end] == 0x28 { depth += 1 } else if bytes[end] == 0x29 { depth -= 1 }
                    end += 1
                }
                let source = String(decoding: bytes[(j + 1)..<end], as: UTF8.self)
                guard end < bytes.count else { return .failure(ValueError("missing ']' after '\(source)'")) }
                switch SampleExpression.parse(source, readFile: readFile) {
                case .failure(let e): return .failure(ValueError("failed to parse sample expression <\(source)> : \(e.message)"))
                case .success(let expression):
                    // HAProxy's refusal: the client's data are gone when a line is written.
                    if expression.fetch.readsContent && expression.fetch != .waitEnd {
                        return .failure(ValueError("sample fetch <\(source)> may not be reliably used here because it needs the client's data ('request buffer'), which is not available when the line is written (HAProxy refuses it too; keep the value in a variable with 'tcp-request content set-var' and log %[var(…)])"))
                    }
                    items.append(.sample(expression, flags(spec, from: defaults)))
                }
                i = end + 1
                continue
            }
            var end = j
            while end < bytes.count && isAlnum(bytes[end]) { end += 1 }
            let name = String(decoding: bytes[j..<end], as: UTF8.self)
            i = end
            if name == "o" {
                defaults = flags(spec, from: defaults)
                continue
            }
            guard let variable = Variable(rawValue: name) else {
                if httpVariables.contains(name) { return .failure(ValueError("format variable '\(name)' is reserved for HTTP mode")) }
                return .failure(ValueError("no such format variable '\(name)'. If you wanted to emit the '%' character verbatim, you need to use '%%'"))
            }
            items.append(.variable(variable, flags(spec, from: defaults)))
        }
        flush()
        return .success(LogFormat(text: text, items: items))
    }

    private init(text: String, items: [Item]) {
        self.text = text
        self.items = items
        waitsForEnd = items.contains { if case .variable(let v, _) = $0 { v.waitsForEnd } else { false } }
        hasSamples = items.contains { if case .sample = $0 { true } else { false } }
    }

    public static func == (a: LogFormat, b: LogFormat) -> Bool { a.text == b.text }
    public func hash(into hasher: inout Hasher) { hasher.combine(text) }
}

extension LineBuilder {
    /// HAProxy's `lf_text_len`: quoted with `Q`, escaped with `E`, `-` for nothing with `M`.
    mutating func append(text: some Collection<UInt8>, _ flags: LogFormat.Flags) {
        let quoted = flags.contains(.quote)
        if quoted { append(byte: 0x22) }
        if !text.isEmpty {
            if flags.contains(.escape) {
                for b in text {
                    if b == 0x22 || b == 0x5C || b == 0x5D { append(byte: 0x5C) }
                    append(byte: b)
                }
            } else {
                append(Array(text))
            }
        } else if flags.contains(.mandatory) && !quoted {
            append(byte: 0x2D)
        }
        if quoted { append(byte: 0x22) }
    }

    /// A captured value as HAProxy's `lf_encode_string` writes it with its header map: control
    /// bytes, bytes from 127 and `"#{|}` as `#` and two hexadecimal digits.
    mutating func append(captured value: [UInt8]) {
        for b in value {
            if b < 0x20 || b >= 0x7F || b == 0x22 || b == 0x23 || b == 0x7B || b == 0x7C || b == 0x7D {
                append(byte: 0x23)
                append(hex: UInt64(b), width: 2)
            } else {
                append(byte: b)
            }
        }
    }

    /// Upper-case hexadecimal, at least `width` digits (`%04X`).
    mutating func append(hex value: UInt64, width: Int) {
        var digits: [UInt8] = []
        var v = value
        repeat {
            let d = UInt8(v & 0xF)
            digits.append(d < 10 ? 0x30 + d : 0x37 + d)
            v >>= 4
        } while v > 0
        for _ in digits.count..<max(digits.count, width) { append(byte: 0x30) }
        append(Array(digits.reversed()))
    }

    /// An address's IP as `%ci`/`%si`… write it: text (quotable), or its bytes in hexadecimal.
    mutating func append(ipOf address: SocketAddress?, _ flags: LogFormat.Flags) {
        guard let address else { return append(text: [UInt8](), flags) }
        if flags.contains(.hex) {
            for b in address.ipBytes { append(hex: UInt64(b), width: 2) }
        } else {
            var ip = LineBuilder(capacity: 40)
            ip.append(address: address)
            append(text: ip.bytes.prefix(upTo: ip.bytes.lastIndex(of: 0x3A)!), flags)
        }
    }

    /// A port as `%cp`/`%sp`… write it: decimal, or 4 hexadecimal digits. A client's or frontend's
    /// UNIX socket has none: HAProxy writes its listener's id (`listener`) in decimal instead.
    mutating func append(portOf address: SocketAddress?, _ flags: LogFormat.Flags, listener: @autoclosure () -> Int? = nil) {
        guard let address else { return append(text: [UInt8](), flags) }
        if address.isUnix, let id = listener() { return append(id) }
        if flags.contains(.hex) { append(hex: UInt64(address.port), width: 4) } else { append(address.port) }
    }
}
