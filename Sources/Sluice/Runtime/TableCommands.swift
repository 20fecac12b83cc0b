/// `show table` and `clear table`, in HAProxy's formats (management.txt).
extension RuntimeAPI {
    /// What follows the table's name, read against its key type and stored data.
    /// `verb`: HAProxy's words for a key the table's type cannot take ("Showing keys from").
    private func selection(_ args: ArraySlice<String>, _ table: StickTable, verb: String) -> Result<TableSelection, RuntimeCommand.Refusal> {
        if case .binary = table.spec.keyType, args.contains("key") {
            return .failure(RuntimeCommand.Refusal("\(verb) tables of type other than ip, ipv6, string and integer is not supported\n"))
        }
        return TableSelection.parse(args, keyType: table.spec.keyType, stored: { table.spec.stored[$0] != nil })
    }

    private func summary(_ table: StickTable) -> String {
        let type: String
        switch table.spec.keyType {
        case .ipv4: type = "ip"
        case .ipv6: type = "ipv6"
        case .integer: type = "integer"
        case .string: type = "string"
        case .binary: type = "binary"
        }
        return "# table: \(table.spec.name), type: \(type), size:\(table.spec.size), used:\(table.entryCount)"
    }

    func showTable(_ name: String?, _ args: ArraySlice<String>) -> String {
        let tables = balancer.stickTables
        guard let name else { return tables.map { summary($0) + "\n" }.joined() }
        guard let table = tables.first(where: { $0.spec.name == name }) else { return "No such table\n" }
        let chosen: TableSelection
        switch selection(args, table, verb: "Showing keys from") {
        case .failure(let refusal): return refusal.text
        case .success(let s): chosen = s
        }
        let now = monotonicMilliseconds()
        let rows = table.rows(now: now).filter { chosen.matches($0.key, $0.values) }
        var out = summary(table) + "\n"
        for row in rows {
            var line = "0x\(String(row.id, radix: 16)): key=\(row.key) use=\(row.references) exp=\(row.expiresInMs.map { String(max(0, $0)) } ?? "0")"
            for (data, value) in row.values {
                let period = data.isRate ? table.spec.stored[data].map { "(\($0))" } ?? "" : ""
                line += " \(data.name)\(period)=\(value)"
                // HAProxy 2.6 stores the server's name beside its id, and shows it.
                if data == .serverID { line += " server_key=\(row.serverKey ?? "-")" }
            }
            out += line + "\n"
        }
        return out
    }

    func clearTable(_ name: String?, _ args: ArraySlice<String>) -> String {
        guard let name else { return "Missing table name.\n" }
        guard let table = balancer.stickTables.first(where: { $0.spec.name == name }) else { return "No such table\n" }
        switch selection(args, table, verb: "Removing keys from") {
        case .failure(let refusal): return refusal.text
        case .success(let chosen):
            if chosen.filters.isEmpty {
                table.clear(key: chosen.key)
            } else {
                for row in table.rows(now: monotonicMilliseconds()) where chosen.matches(row.key, row.values) { table.clear(key: row.key) }
            }
            return ""
        }
    }
}
