extension Parser {
    /// `http-check send …`, `http-check expect …` (HAProxy 2.2+ syntax).
    mutating func httpCheckLine(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        guard words.count >= 2 else {
            error(location, keyword: "http-check", "missing action: expected 'http-check send …' or 'http-check expect …'")
            return
        }
        let keyword = "http-check \(words[1])"
        // HAProxy accepts http-check lines before `option httpchk` and uses them once it is set.
        var check = proxy.httpCheck
        let args = Array(words.dropFirst(2))
        switch words[1] {
        case "send":
            check.hasExchange = true
            var i = 0
            while i < args.count {
                guard i + 1 < args.count else {
                    error(location, keyword: keyword, "'\(args[i])' needs a value")
                    return
                }
                switch args[i] {
                case "meth": check.method = args[i + 1]; i += 2
                case "uri": check.uri = args[i + 1]; i += 2
                case "ver": check.version = args[i + 1]; i += 2
                case "hdr":
                    guard i + 2 < args.count else {
                        error(location, keyword: keyword, "'hdr' needs a name and a value")
                        return
                    }
                    check.headers.append((args[i + 1], args[i + 2]))
                    i += 3
                case "body": check.body = args[i + 1]; i += 2
                case "body-lf", "uri-lf", "hdr-lf":
                    error(location, keyword: keyword, "'\(args[i])' is not supported yet")
                    return
                default:
                    error(location, keyword: keyword, "unknown option '\(args[i])'; supported: meth, uri, ver, hdr, body")
                    return
                }
            }
        case "send-state":
            guard args.isEmpty else {
                error(location, keyword: keyword, "takes no argument")
                return
            }
            check.sendsState = true
        case "disable-on-404":
            guard args.isEmpty else {
                error(location, keyword: keyword, "takes no argument")
                return
            }
            check.disableOn404 = true
        case "expect":
            check.hasExchange = true
            var rest = args[...]
            var negated = false
            if rest.first == "!" { negated = true; rest = rest.dropFirst() }
            guard rest.count == 2, let kind = rest.first, let pattern = rest.last else {
                error(location, keyword: keyword, "expected 'http-check expect [!] status|rstatus|string|rstring <pattern>'")
                return
            }
            switch kind {
            case "status":
                var ranges: [ClosedRange<Int>] = []
                for part in pattern.split(separator: ",") {
                    let bounds = part.split(separator: "-", maxSplits: 1).map { Int($0) }
                    guard let lo = bounds.first ?? nil, let hi = bounds.last ?? nil, lo <= hi, (100...999).contains(lo), (100...999).contains(hi) else {
                        error(location, keyword: keyword, "'\(pattern)' is not a status code list such as 200 or 200-399,404")
                        return
                    }
                    ranges.append(lo...hi)
                }
                check.expect = .status(ranges, negated: negated)
            case "rstatus": check.expect = .statusRegex(pattern, negated: negated)
            case "string": check.expect = .string(pattern, negated: negated)
            case "rstring": check.expect = .stringRegex(pattern, negated: negated)
            default:
                error(location, keyword: keyword, "'\(kind)' is not supported; supported: status, rstatus, string, rstring")
                return
            }
        case "connect":
            // One exchange per check: a connect may only open the rules, as HAProxy requires
            // of the first one; its port and address are where the check goes.
            if check.connect != nil || check.hasExchange {
                error(location, keyword: keyword, "a second connection in one check (several exchanges) is not supported yet; Sluice checks with one request")
                return
            }
            var connect = HTTPCheck.Connect()
            var tls = (ssl: false, sni: String?.none, alpn: String?.none)
            var i = 0
            while i < args.count {
                switch args[i] {
                case "default", "linger":
                    // `default`: the server's own check settings (which Sluice applies anyway, and
                    // its `check-via-socks4`); `linger`: a clean close, how Sluice ends every check.
                    if args[i] == "default" && connect.socks == .never { connect.socks = .server }
                    i += 1
                case "via-socks4":
                    connect.socks = .always
                    i += 1
                case "port" where i + 1 < args.count:
                    guard let port = value(ValueParser.integer(args[i + 1], in: 1...65535, what: "port"), location, keyword: keyword) else { return }
                    connect.port = port
                    i += 2
                case "addr" where i + 1 < args.count:
                    guard IPAddress(args[i + 1]) != nil else {
                        return error(location, keyword: keyword, "'\(args[i + 1])' is not an IP address")
                    }
                    connect.address = args[i + 1]
                    i += 2
                case "ssl", "sni", "alpn":
                    guard connectTLSOption(&tls, args, &i, location, keyword: keyword) else { return }
                default:
                    return error(location, keyword: keyword, "'\(args[i])' is not supported yet; supported: default, port <n>, addr <ip>, via-socks4, ssl, sni <name>, alpn <list>, linger")
                }
            }
            check.connect = connect
            proxy.checkConnectTLS = tls.ssl ? ConnectTLS(sni: tls.sni, alpn: tls.alpn) : nil
        case "set-var", "unset-var", "comment":
            error(location, keyword: keyword, "not supported yet by Sluice")
            return
        default:
            error(location, keyword: keyword, "unknown http-check action; supported: send, expect")
            return
        }
        proxy.httpCheck = check
    }

    /// `tcp-check connect|send|send-binary|expect …`
    mutating func tcpCheckLine(_ proxy: inout ProxyDraft, _ words: [String], _ location: SourceLocation) {
        guard words.count >= 2 else {
            error(location, keyword: "tcp-check", "missing action: expected 'tcp-check connect|send|send-binary|expect …'")
            return
        }
        let keyword = "tcp-check \(words[1])"
        let args = Array(words.dropFirst(2))
        var rule: TCPCheckRule
        switch words[1] {
        case "connect":
            if !proxy.tcpCheckRules.allSatisfy({ if case .comment = $0 { true } else { false } }) {
                error(location, keyword: keyword, "is supported only as the first tcp-check rule (one connection per check)")
                return
            }
            var port: Int?
            var tls = (ssl: false, sni: String?.none, alpn: String?.none)
            var header = CheckConnectHeader.never
            var socks = CheckConnectSOCKS.never
            var i = 0
            while i < args.count {
                if ["ssl", "sni", "alpn"].contains(args[i]) {
                    guard connectTLSOption(&tls, args, &i, location, keyword: keyword) else { return }
                    continue
                }
                if args[i] == "default" || args[i] == "send-proxy" {
                    // `default`: the server's check settings, its PROXY header and `check-via-socks4`
                    // included; `send-proxy`: a header always.
                    if args[i] == "send-proxy" { header = .always } else if header == .never { header = .server }
                    if args[i] == "default" && socks == .never { socks = .server }
                    i += 1
                    continue
                }
                if args[i] == "via-socks4" {
                    socks = .always
                    i += 1
                    continue
                }
                guard args[i] == "port", i + 1 < args.count else {
                    error(location, keyword: keyword, "'\(args[i])' is not supported yet; supported: default, port <n>, send-proxy, via-socks4, ssl, sni <name>, alpn <list>")
                    return
                }
                guard let p = value(ValueParser.integer(args[i + 1], in: 1...65535, what: "port"), location, keyword: keyword) else { return }
                port = p
                i += 2
            }
            rule = .connect(port: port, header: header, socks: socks)
            proxy.checkConnectTLS = tls.ssl ? ConnectTLS(sni: tls.sni, alpn: tls.alpn) : nil
        case "send":
            guard args.count == 1 else {
                error(location, keyword: keyword, "expected 'tcp-check send <string>' (quote strings with blanks; \\r\\n escapes work)")
                return
            }
            rule = .send(Array(args[0].utf8))
        case "send-binary":
            guard args.count == 1, let bytes = value(ValueParser.hex(args[0]), location, keyword: keyword) else {
                if args.count != 1 { error(location, keyword: keyword, "expected 'tcp-check send-binary <hex>'") }
                return
            }
            rule = .send(bytes)
        case "expect":
            var rest = args[...]
            if let option = rest.first, ["min-recv", "error-status", "ok-status", "tout-status", "on-success", "on-error", "status-code", "comment"].contains(option) {
                error(location, keyword: keyword, "option '\(option)' is not supported yet")
                return
            }
            var negated = false
            if rest.first == "!" { negated = true; rest = rest.dropFirst() }
            guard rest.count == 2, let kind = rest.first, let pattern = rest.last else {
                error(location, keyword: keyword, "expected 'tcp-check expect [!] string|rstring|binary|rbinary <pattern>'")
                return
            }
            switch kind {
            case "string": rule = .expectString(pattern, negated: negated)
            case "rstring": rule = .expectRegex(pattern, negated: negated)
            case "binary":
                guard let bytes = value(ValueParser.hex(pattern), location, keyword: keyword) else { return }
                rule = .expectBinary(bytes, negated: negated)
            case "rbinary": rule = .expectBinaryRegex(pattern, negated: negated)
            default:
                error(location, keyword: keyword, "'\(kind)' is not supported; supported: string, rstring, binary, rbinary")
                return
            }
        case "comment":
            guard args.count == 1 else {
                error(location, keyword: keyword, "expected 'tcp-check comment <text>' (quote text with blanks)")
                return
            }
            rule = .comment(args[0])
        default:
            error(location, keyword: keyword, "unknown tcp-check action; supported: connect, send, send-binary, expect, comment")
            return
        }
        // Rules are kept even before `option tcp-check`, which is what enables them (as in HAProxy).
        proxy.tcpCheckRules.append(rule)
    }
}
