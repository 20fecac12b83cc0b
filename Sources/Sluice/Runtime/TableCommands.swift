/// `show table` and `clear table`, in HAProxy's formats (management.txt).
extension RuntimeAPI {
    /// A `data.<type> <op> <value>` filter or a `key <k>` selection.
    private struct Selection {
        var key: StickKey?
        var filters: [(data: StickData, op: String, value: Int64)] = []

        func matches(_ row: StickTable.Row) -> Bool {
            if let key, row.key != key { return false }
            return filters.allSatisfy { filter in
                guard let v = row.values.first(where: { $0.0 == filter.data })?.1 else { return false }
                switch filter.op {
                case "eq": return v == filter.value
                case "ne": return v != filter.value
                case "le": return v <= filter.value
                case "ge": return v >= filter.value
                case "lt": return v < filter.value
                default: return v > filter.value
                }
            }
        }
    }

    /// Parses what follows the table name; a reply text on error.
    private func selection(_ args: ArraySlice<String>, _ table: StickTable) -> Result<Selection, ValueError> {
        var selection = Selection()
        var rest = args
        while let word = rest.first {
            if word == "key" {
                guard rest.count >= 2, selection.filters.isEmpty else { return .failure(ValueError("Optional argument only supports \"data.<store_data_type>\" and key <key>\n")) }
                let text = rest[rest.index(after: rest.startIndex)]
                let sample: Sample
                switch table.spec.keyType {
                case .ipv4, .ipv6:
                    guard let address = IPAddress(text) else { return .failure(ValueError("Invalid key\n")) }
                    sample = .ip(address)
                case .integer:
                    guard let v = Int64(text) else { return .failure(ValueError("Invalid key\n")) }
                    sample = .int(v)
                case .string: sample = .string(Array(text.utf8))
                }
                selection.key = StickKey(sample, for: table.spec.keyType)
                guard selection.key != nil else { return .failure(ValueError("Invalid key\n")) }
                rest = rest.dropFirst(2)
            } else if word.hasPrefix("data.") {
                guard rest.count >= 3, let data = StickData(fetchSuffix: String(word.dropFirst(5))), table.spec.stored[data] != nil else {
                    return .failure(ValueError("Data type not stored in this table\n"))
                }
                let op = rest[rest.index(after: rest.startIndex)]
                guard ["eq", "ne", "le", "ge", "lt", "gt"].contains(op) else { return .failure(ValueError("Require a valid filter operator (eq, ne, le, ge, lt, gt)\n")) }
                guard let value = Int64(rest[rest.index(rest.startIndex, offsetBy: 2)]) else { return .failure(ValueError("Require a valid integer value to compare against\n")) }
                selection.filters.append((data, op, value))
                rest = rest.dropFirst(3)
            } else {
                return .failure(ValueError("Optional argument only supports \"data.<store_data_type>\" and key <key>\n"))
            }
        }
        return .success(selection)
    }

    private func summary(_ table: StickTable) -> String {
        let type: String
        switch table.spec.keyType {
        case .ipv4: type = "ip"
        case .ipv6: type = "ipv6"
        case .integer: type = "integer"
        case .string: type = "string"
        }
        return "# table: \(table.spec.name), type: \(type), size:\(table.spec.size), used:\(table.entryCount)"
    }

    func showTable(_ args: [String]) -> String {
        let tables = balancer.stickTables
        guard let name = args.first else { return tables.map { summary($0) + "\n" }.joined() + "\n" }
        guard let table = tables.first(where: { $0.spec.name == name }) else { return "Unknown table\n" }
        let chosen: Selection
        switch selection(args.dropFirst(), table) {
        case .failure(let e): return e.message
        case .success(let s): chosen = s
        }
        let now = monotonicMilliseconds()
        let rows = table.rows(now: now).filter(chosen.matches)
        var out = summary(table) + "\n"
        for row in rows {
            var line = "0x\(String(row.id, radix: 16)): key=\(row.key) use=\(row.references) exp=\(row.expiresInMs.map { String(max(0, $0)) } ?? "0")"
            for (data, value) in row.values {
                let period = data.isRate ? table.spec.stored[data].map { "(\($0))" } ?? "" : ""
                line += " \(data.name)\(period)=\(value)"
            }
            out += line + "\n"
        }
        return out + "\n"
    }

    func clearTable(_ args: [String]) -> String {
        guard let name = args.first else { return "Missing table name.\n" }
        guard let table = balancer.stickTables.first(where: { $0.spec.name == name }) else { return "Unknown table\n" }
        switch selection(args.dropFirst(), table) {
        case .failure(let e): return e.message
        case .success(let chosen):
            if chosen.filters.isEmpty {
                table.clear(key: chosen.key)
            } else {
                for row in table.rows(now: monotonicMilliseconds()) where chosen.matches(row) { table.clear(key: row.key) }
            }
            return "\n"
        }
    }
}
