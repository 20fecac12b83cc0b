#if canImport(Glibc)
import Glibc
#endif

/// Parsers for the value syntaxes HAProxy shares across keywords. Each returns a message on failure;
/// the caller adds file, line, section and keyword.
enum ValueParser {
    /// A HAProxy time: a number with an optional unit `us`, `ms`, `s`, `m`, `h` or `d`; no unit means ms.
    static func time(_ text: String) -> Result<Duration, ValueError> {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let value = Int64(digits) else {
            return .failure(ValueError("'\(text)' is not a time: expected a number with an optional unit (us, ms, s, m, h, d), e.g. 5s"))
        }
        let unit = text.dropFirst(digits.count)
        let duration: Duration
        switch unit {
        case "", "ms": duration = .milliseconds(value)
        case "us": duration = .microseconds(value)
        case "s": duration = .seconds(value)
        case "m": duration = .seconds(value * 60)
        case "h": duration = .seconds(value * 3600)
        case "d": duration = .seconds(value * 86400)
        default:
            return .failure(ValueError("bad time unit '\(unit)' in '\(text)': use us, ms, s, m, h or d (no unit means ms)"))
        }
        return .success(duration)
    }

    /// A whole number within `range`.
    static func integer(_ text: String, in range: ClosedRange<Int>, what: String) -> Result<Int, ValueError> {
        guard let value = Int(text) else {
            return .failure(ValueError("\(what) '\(text)' is not a whole number"))
        }
        guard range.contains(value) else {
            return .failure(ValueError("\(what) \(value) is outside \(range.lowerBound)...\(range.upperBound)"))
        }
        return .success(value)
    }

    /// A size in bytes with an optional `k`, `m` or `g` suffix (powers of 1,024).
    static func size(_ text: String) -> Result<Int, ValueError> {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let value = Int(digits) else {
            return .failure(ValueError("'\(text)' is not a size: expected a number with an optional k, m or g suffix"))
        }
        switch text.dropFirst(digits.count).lowercased() {
        case "": return .success(value)
        case "k": return .success(value << 10)
        case "m": return .success(value << 20)
        case "g": return .success(value << 30)
        default: return .failure(ValueError("bad size suffix in '\(text)': use k, m or g"))
        }
    }

    /// An address with a port, in the forms HAProxy accepts for `bind` and `server`:
    /// `1.2.3.4:80`, `[::1]:80`, `::1:80` (the last colon separates the port), `*:80`, `:80`,
    /// `name:80`, each with an optional `ipv4@` or `ipv6@` prefix (the family: a numeric address
    /// must be of it, and `ipv6@` makes the wildcard `::`). A port of 0 is accepted only when
    /// `allowZeroPort` (a `bind` that lets the kernel pick).
    static func endpoint(_ text: String, allowZeroPort: Bool) -> Result<Endpoint, ValueError> {
        for (prefix, v6) in [("ipv4@", false), ("ipv6@", true)] where text.hasPrefix(prefix) {
            return endpoint(String(text.dropFirst(prefix.count)), allowZeroPort: allowZeroPort).flatMap { e in
                guard let host = e.host else { return .success(v6 ? Endpoint(host: "::", port: e.port) : e) }
                if let address = IPAddress(host), address.isV4 == v6 {
                    return .failure(ValueError("'\(text)': \(host) is not an \(v6 ? "IPv6" : "IPv4") address"))
                }
                return .success(e)
            }
        }
        if text.hasPrefix("/") || text.hasPrefix("unix@") || text.hasPrefix("abns@") {
            return .failure(ValueError("'\(text)': a UNIX socket cannot be used here; use IP:port"))
        }
        if text.contains("@") {
            return .failure(ValueError("'\(text)': address prefixes other than ipv4@, ipv6@, unix@ and abns@ (fd@, sockpair@, udp@ …) are not supported yet; use IP:port"))
        }
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                return .failure(ValueError("'\(text)': missing ']' after the IPv6 address"))
            }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else {
                return .failure(ValueError("'\(text)' has no port: write [address]:port"))
            }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                return .failure(ValueError("'\(text)' has no port: write address:port (Sluice does not yet reuse the client's destination port)"))
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        if portText.contains("-") {
            return .failure(ValueError("'\(text)': port ranges are not supported yet"))
        }
        guard let port = Int(portText) else {
            return .failure(ValueError("'\(text)': '\(portText)' is not a port number"))
        }
        guard (allowZeroPort ? 0 : 1)...65535 ~= port else {
            return .failure(ValueError("port \(port) in '\(text)' is outside \(allowZeroPort ? 0 : 1)...65535"))
        }
        if host == "*" || host.isEmpty { return .success(Endpoint(host: nil, port: port)) }
        let hostString = String(host)
        if hostString.contains(":") {
            var v6 = in6_addr()
            guard inet_pton(AF_INET6, hostString, &v6) == 1 else {
                return .failure(ValueError("'\(hostString)' is not a valid IPv6 address"))
            }
        } else if hostString.allSatisfy({ $0.isNumber || $0 == "." }) {
            var v4 = in_addr()
            guard inet_pton(AF_INET, hostString, &v4) == 1 else {
                return .failure(ValueError("'\(hostString)' is not a valid IPv4 address"))
            }
        }
        return .success(Endpoint(host: hostString, port: port))
    }

    /// A UNIX socket address, as HAProxy's `str2sa_range` reads one: `unix@<path>` (the path may be
    /// relative), `/<path>`, or `abns@<name>` (Linux's abstract namespace). Nil when `text` is not
    /// one of these forms. `prefix`: `unix-bind prefix`, put before a `bind`'s path.
    ///
    /// HAProxy's lengths: a path leaves room in the 107 bytes of a `sockaddr_un` for the prefix and
    /// the `.<pid>.tmp` name a listener is first bound at; an abstract name may take all 107.
    static func unixEndpoint(_ text: String, prefix: String? = nil) -> Result<Endpoint, ValueError>? {
        let abstract = text.hasPrefix("abns@")
        guard abstract || text.hasPrefix("unix@") || text.hasPrefix("/") else { return nil }
        let name = text.hasPrefix("/") ? text : String(text.dropFirst(5))
        let prefix = abstract ? "" : prefix ?? ""
        let longest = UnixSocketPaths.capacity - (abstract ? 0 : prefix.utf8.count + 10)
        guard !name.isEmpty else { return .failure(ValueError("'\(text)': missing socket path")) }
        guard name.utf8.count <= longest else {
            return .failure(ValueError("socket path '\(text)' too long (max \(longest))"))  // HAProxy's words
        }
        return .success(Endpoint(unix: UnixSocketName(path: prefix + name, isAbstract: abstract)))
    }

    /// `mode <octal>`, `uid <n>`, `gid <n>`, `user <name>`, `group <name>` of a UNIX socket file
    /// (`bind`, `unix-bind`, `stats socket`), set in `permissions`; false when `option` is none of them.
    static func unixPermission(_ option: String, _ arg: String, _ permissions: inout UnixSocketPermissions) -> Result<Bool, ValueError> {
        switch option {
        case "mode":
            guard let mode = Int(arg, radix: 8), (0...0o777).contains(mode) else {
                return .failure(ValueError("mode '\(arg)' is not an octal permission such as 660"))
            }
            permissions.mode = mode
        case "uid", "gid":
            guard let id = Int(arg), id >= 0 else { return .failure(ValueError("\(option) '\(arg)' is not a numeric id")) }
            if option == "uid" { permissions.owner = .id(id) } else { permissions.group = .id(id) }
        case "user": permissions.owner = .name(arg)
        case "group": permissions.group = .name(arg)
        default: return .success(false)
        }
        return .success(true)
    }

    /// A `bind` address: `endpoint`'s forms, a UNIX socket (`unixEndpoint`, with `unix-bind`'s
    /// `prefix`), or a port range `<low>-<high>` (`:8000-8009`), one listener per port, as HAProxy.
    static func bindEndpoints(_ text: String, unixPrefix: String? = nil) -> Result<[Endpoint], ValueError> {
        if let unix = unixEndpoint(text, prefix: unixPrefix) { return unix.map { [$0] } }
        guard let colon = text.lastIndex(of: ":"), text[text.index(after: colon)...].contains("-") else {
            return endpoint(text, allowZeroPort: true).map { [$0] }
        }
        let bounds = text[text.index(after: colon)...].split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count == 2, let low = Int(bounds[0]), let high = Int(bounds[1]), 1 <= low, low <= high, high <= 65535 else {
            return .failure(ValueError("'\(text)': a port range is <low>-<high>, from 1 to 65535, low first"))
        }
        return endpoint(String(text[...colon]) + String(low), allowZeroPort: true).map { first in
            (low...high).map { Endpoint(host: first.host, port: $0) }
        }
    }

    /// A `source` address, as HAProxy reads it: a numeric IP, alone (`10.0.0.5`, `[::1]`) or with a
    /// port (`10.0.0.5:0`, `[::1]:4000`, `::1:4000`: the last colon separates the port, so a bare
    /// `::1` is refused, as by HAProxy); nil for the wildcard with port 0, which changes nothing.
    static func sourceAddress(_ text: String) -> Result<SocketAddress?, ValueError> {
        let bareText = text.hasPrefix("[") && text.hasSuffix("]") ? String(text.dropFirst().dropLast()) : text.contains(":") ? nil : text
        if let bareText, let bare = SocketAddress(ip: bareText, port: 0) { return .success(bare.isWildcard ? nil : bare) }
        guard text.contains(":") else { return .failure(ValueError("'\(text)': a source is a numeric address (no name)")) }
        switch endpoint(text, allowZeroPort: true) {
        case .failure(let e): return .failure(e)
        case .success(let e):
            guard let address = SocketAddress(ip: e.host ?? "0.0.0.0", port: e.port) else {
                return .failure(ValueError("'\(text)': a source is a numeric address (no name)"))
            }
            return .success(address.isWildcard && e.port == 0 ? nil : address)
        }
    }

    /// The argument of `usesrc`: `client`, `clientip` or a numeric `<addr>[:<port>]`.
    /// `hdr_ip(<header>)` reads an HTTP header, which a Layer-4 proxy never parses.
    static func presentedSource(_ text: String) -> Result<PresentedSource, ValueError> {
        switch text {
        case "client": return .success(.client)
        case "clientip": return .success(.clientIP)
        case _ where text.hasPrefix("hdr_ip("):
            return .failure(ValueError("'usesrc \(text)' takes the address from an HTTP header; Sluice forwards at Layer 4 and never parses HTTP (use 'client' or 'clientip')"))
        default:
            switch sourceAddress(text) {
            case .failure(let e): return .failure(e)
            case .success(let address):
                return .success(.address(address ?? SocketAddress.anyIPv4))
            }
        }
    }

    /// A `server` address: as `endpoint`, or a UNIX socket (`unixEndpoint`). The port may be left
    /// out (`host` or `host:`), which means the port the client connected to (port 0 here), as HAProxy.
    static func serverEndpoint(_ text: String) -> Result<Endpoint, ValueError> {
        if let unix = unixEndpoint(text) { return unix }
        if !text.contains(":") && !text.isEmpty {
            return endpoint(text + ":1", allowZeroPort: false).map { Endpoint(host: $0.host, port: 0) }
        }
        if text.hasSuffix(":") && !text.hasSuffix("::") {
            return endpoint(text + "1", allowZeroPort: false).map { Endpoint(host: $0.host, port: 0) }
        }
        if let colon = text.lastIndex(of: ":"), text[text.index(after: colon)...].first.map({ $0 == "+" || $0 == "-" }) == true {
            return .failure(ValueError("'\(text)': port offsets (+N/-N from the client's port) are not supported yet"))
        }
        return endpoint(text, allowZeroPort: false)
    }

    /// Bytes from hexadecimal text, as `tcp-check send-binary` takes them.
    static func hex(_ text: String) -> Result<[UInt8], ValueError> {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return .failure(ValueError("'\(text)' has an odd number of hexadecimal digits")) }
        var bytes: [UInt8] = []
        var i = 0
        while i < chars.count {
            guard let b = UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16) else {
                return .failure(ValueError("'\(text)' is not hexadecimal"))
            }
            bytes.append(b)
            i += 2
        }
        return .success(bytes)
    }
}

extension Duration {
    /// A time in HAProxy's syntax (`500ms`, `10s`, `2m`; no unit means milliseconds), or nil.
    public init?(haproxyTime text: String) {
        guard case .success(let value) = ValueParser.time(text) else { return nil }
        self = value
    }
}

struct ValueError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
