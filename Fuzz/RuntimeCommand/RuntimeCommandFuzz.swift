// libFuzzer target `RuntimeCommand`: the runtime API's command line (`stats socket`, `sluice cli`) on any bytes, read
// at each level. Every request line splits into commands without blanks at their ends; every command
// reads to a typed command or a reply that ends with a newline (or is one of HAProxy's bare sentences,
// which the socket follows with its end-of-answer line like every answer); a level never refuses what a lower
// level accepts; the table selections read against every key type. Nothing traps.
// Built (with the others, into one binary: Fuzz/Driver.swift) and run by scripts/fuzz; seeds in corpus/ (deploy-script lines and refusals).
func fuzzRuntimeCommand(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let line = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    for command in RuntimeCommand.split(line) {
        precondition(!command.isEmpty && command.trimmingBlanks() == command, "a command with blanks at its ends: \(command.debugDescription)")
        var deniedBelow = false
        for level in [StatsSocket.Level.admin, .operator, .user] {
            let parsed = RuntimeCommand.parse(command, level: level)
            let denied = check(parsed)
            precondition(!denied || level != .admin, "the admin level was refused \(command.debugDescription)")
            precondition(!deniedBelow || denied, "\(level) accepts what a higher level refused: \(command.debugDescription)")
            deniedBelow = deniedBelow || denied
        }
    }
    return 0
}

/// Answers HAProxy 2.6 gives without a newline of their own (`add`/`del server`'s first check and
/// two of `set weight`'s refusals); every other one ends with a newline.
private let bareSentences: Set<String> = ["Require 'backend/server'.", "Empty weight string empty or preceded by garbage",
                                          "Trailing garbage in weight string"]

/// Checks one parsed command; whether it is a permission refusal.
private func check(_ parsed: RuntimeCommand) -> Bool {
    func refusal(_ r: RuntimeCommand.Refusal) {
        precondition(r.text.hasSuffix("\n") || bareSentences.contains(r.text), "a refusal without its newline: \(r.text.debugDescription)")
    }
    switch parsed {
    case .reply(let text):
        precondition(text.isEmpty || text.hasSuffix("\n") || bareSentences.contains(text), "a reply without its newline: \(text.debugDescription)")
        return text == RuntimeCommand.permissionDenied
    case .server(_, .failure(let r)), .setMaxConnections(_, .failure(let r)): refusal(r)
    case .server(_, .success(.setWeight(let w))):
        precondition((0...256).contains(w.resolve(configured: 100)), "a weight outside 0...256: \(w)")
    case .server(_, .success(.setAddress(let ip, let port))):
        precondition(SocketAddress(ip: ip, port: port ?? 1) != nil, "an address accepted that does not read: \(ip)")
    case .showTable(_, let words), .clearTable(_, let words):
        for keyType in [StickTableSpec.KeyType.ipv4, .ipv6, .integer, .string(length: 32)] {
            if case .failure(let r) = TableSelection.parse(words, keyType: keyType, stored: { _ in true }) { refusal(r) }
        }
    default: break
    }
    return false
}
