/// `show stat typed`, `show stat json` and the statistics page's `;json`: `show stat`'s rows with
/// each field's metadata — origin, nature, scope and type — as HAProxy 2.6 prints them, so that
/// tools reading HAProxy's typed or JSON statistics read Sluice's.
enum StatsTyped {
    /// HAProxy 2.6's metadata of each field it prints for a frontend (`F`), backend (`B`) and
    /// server (`S`): `<origin><nature><scope>:<type>`, read off its `show stat typed`. Fields
    /// Sluice does not fill are not printed, as HAProxy leaves out fields without a value.
    static let metadata: [String: [String: String]] = [
        "F": ["pxname": "KNS:str", "svname": "KNS:str", "scur": "MGP:u32", "smax": "MMP:u32", "slim": "CLP:u32", "stot": "MCP:u64", "bin": "MCP:u64", "bout": "MCP:u64", "dreq": "MCP:u64", "dresp": "MCP:u64", "ereq": "MCP:u64", "status": "SGP:str", "pid": "KGP:u32", "iid": "KGS:u32", "sid": "KGS:u32", "type": "CGS:u32", "rate": "MRP:u32", "rate_lim": "CLP:u32", "rate_max": "MMP:u32", "req_rate": "MRP:u32", "req_rate_max": "MMP:u32", "req_tot": "MCP:u64", "comp_in": "MCP:u64", "comp_out": "MCP:u64", "comp_byp": "MCP:u64", "comp_rsp": "MCP:u64", "mode": "CGS:str", "conn_rate": "MRP:u32", "conn_rate_max": "MMP:u32", "conn_tot": "MCP:u64", "dcon": "MCP:u64", "dses": "MCP:u64", "wrew": "MCP:u64", "eint": "MCP:u64", "ssl_sess": "MCP:u64", "ssl_reused_sess": "MCP:u64", "ssl_failed_handshake": "MCP:u64", "h2_headers_rcvd": "MCP:u64", "h2_data_rcvd": "MCP:u64", "h2_settings_rcvd": "MCP:u64", "h2_rst_stream_rcvd": "MCP:u64", "h2_goaway_rcvd": "MCP:u64", "h2_detected_conn_protocol_errors": "MCP:u64", "h2_detected_strm_protocol_errors": "MCP:u64", "h2_rst_stream_resp": "MCP:u64", "h2_goaway_resp": "MCP:u64", "h2_open_connections": "MGP:u64", "h2_backend_open_streams": "MGP:u64", "h2_total_connections": "MCP:u64", "h2_backend_total_streams": "MCP:u64", "h1_open_connections": "MGP:u64", "h1_open_streams": "MGP:u64", "h1_total_connections": "MCP:u64", "h1_total_streams": "MCP:u64", "h1_bytes_in": "MCP:u64", "h1_bytes_out": "MCP:u64", "h1_spliced_bytes_in": "MCP:u64", "h1_spliced_bytes_out": "MCP:u64"],
        "B": ["pxname": "KNS:str", "svname": "KNS:str", "qcur": "MGP:u32", "qmax": "MMP:u32", "scur": "MGP:u32", "smax": "MMP:u32", "slim": "CLP:u32", "stot": "MCP:u64", "bin": "MCP:u64", "bout": "MCP:u64", "dreq": "MCP:u64", "dresp": "MCP:u64", "econ": "MCP:u64", "eresp": "MCP:u64", "wretr": "MCP:u64", "wredis": "MCP:u64", "status": "SGP:str", "weight": "MaP:u32", "act": "MGP:u32", "bck": "MGP:u32", "chkdown": "MCP:u64", "lastchg": "MAP:u32", "downtime": "MCP:u32", "pid": "KGP:u32", "iid": "KGS:u32", "sid": "KGS:u32", "lbtot": "MCP:u64", "type": "CGS:u32", "rate": "MGP:u32", "rate_max": "MGP:u32", "cli_abrt": "MCP:u64", "srv_abrt": "MCP:u64", "comp_in": "MCP:u64", "comp_out": "MCP:u64", "comp_byp": "MCP:u64", "comp_rsp": "MCP:u64", "lastsess": "MAP:s32", "qtime": "MaP:u32", "ctime": "MaP:u32", "rtime": "MaP:u32", "ttime": "MaP:u32", "mode": "CGS:str", "algo": "CGS:str", "wrew": "MCP:u64", "connect": "MCP:u64", "reuse": "MCP:u64", "qtime_max": "MMP:u32", "ctime_max": "MMP:u32", "rtime_max": "MMP:u32", "ttime_max": "MMP:u32", "eint": "MCP:u64", "uweight": "MaP:u32", "agg_server_status": "MGP:u32", "agg_server_check_status": "MGP:u32", "agg_check_status": "MGP:u32", "ssl_sess": "MCP:u64", "ssl_reused_sess": "MCP:u64", "ssl_failed_handshake": "MCP:u64", "h2_headers_rcvd": "MCP:u64", "h2_data_rcvd": "MCP:u64", "h2_settings_rcvd": "MCP:u64", "h2_rst_stream_rcvd": "MCP:u64", "h2_goaway_rcvd": "MCP:u64", "h2_detected_conn_protocol_errors": "MCP:u64", "h2_detected_strm_protocol_errors": "MCP:u64", "h2_rst_stream_resp": "MCP:u64", "h2_goaway_resp": "MCP:u64", "h2_open_connections": "MGP:u64", "h2_backend_open_streams": "MGP:u64", "h2_total_connections": "MCP:u64", "h2_backend_total_streams": "MCP:u64", "h1_open_connections": "MGP:u64", "h1_open_streams": "MGP:u64", "h1_total_connections": "MCP:u64", "h1_total_streams": "MCP:u64", "h1_bytes_in": "MCP:u64", "h1_bytes_out": "MCP:u64", "h1_spliced_bytes_in": "MCP:u64", "h1_spliced_bytes_out": "MCP:u64"],
        "S": ["pxname": "KNS:str", "svname": "KNS:str", "qcur": "MGP:u32", "qmax": "MMP:u32", "scur": "MGP:u32", "smax": "MMP:u32", "slim": "CLP:u32", "stot": "MCP:u64", "bin": "MCP:u64", "bout": "MCP:u64", "dresp": "MCP:u64", "econ": "MCP:u64", "eresp": "MCP:u64", "wretr": "MCP:u64", "wredis": "MCP:u64", "status": "SGP:str", "weight": "MaP:u32", "act": "SGP:u32", "bck": "SGP:u32", "chkfail": "MCP:u64", "chkdown": "MCP:u64", "lastchg": "MAP:u32", "downtime": "MCP:u32", "qlimit": "CGS:u32", "pid": "KGP:u32", "iid": "KGS:u32", "sid": "KGS:u32", "lbtot": "MCP:u64", "type": "CGS:u32", "rate": "MRP:u32", "rate_max": "MMP:u32", "check_status": "MOP:str", "check_duration": "MDP:u64", "cli_abrt": "MCP:u64", "srv_abrt": "MCP:u64", "lastsess": "MAP:s32", "last_chk": "MOP:str", "qtime": "MaP:u32", "ctime": "MaP:u32", "rtime": "MaP:u32", "ttime": "MaP:u32", "check_desc": "MOP:str", "last_agt": "MOP:str", "agent_status": "MOP:str", "agent_code": "MOP:u32", "agent_duration": "MDP:u64", "agent_desc": "MOP:str", "agent_rise": "CGS:u32", "agent_fall": "CGS:u32", "agent_health": "CGS:u32", "check_rise": "CGS:u32", "check_fall": "CGS:u32", "check_health": "CGS:u32", "addr": "CGS:str", "mode": "CGS:str", "wrew": "MCP:u64", "connect": "MCP:u64", "reuse": "MCP:u64", "srv_icur": "MGP:u32", "qtime_max": "MMP:u32", "ctime_max": "MMP:u32", "rtime_max": "MMP:u32", "ttime_max": "MMP:u32", "eint": "MCP:u64", "idle_conn_cur": "MGP:u32", "safe_conn_cur": "MGP:u32", "used_conn_cur": "MGP:u32", "need_conn_est": "MGP:u32", "uweight": "MaP:u32", "ssl_sess": "MCP:u64", "ssl_reused_sess": "MCP:u64", "ssl_failed_handshake": "MCP:u64"],
    ]

    static let origins: [Character: String] = ["M": "Metric", "S": "Status", "K": "Key", "C": "Config", "P": "Product"]
    static let natures: [Character: String] = ["G": "Gauge", "L": "Limit", "m": "Min", "M": "Max", "R": "Rate", "C": "Counter",
                                               "D": "Duration", "A": "Age", "T": "Time", "N": "Name", "O": "Output", "a": "Avg"]
    static let scopes: [Character: String] = ["P": "Process", "S": "Service", "s": "System", "C": "Cluster"]

    /// One field of a row, ready to print.
    struct Field {
        let object: String
        let proxyID: String
        let id: String
        let position: Int
        let name: String
        let tags: String
        let type: String
        let value: String
    }

    /// A row's fields that have a value and metadata, in column order.
    static func fields(_ row: [String: String]) -> [Field] {
        let object = row["type"] == "0" ? "F" : row["type"] == "1" ? "B" : "S"
        guard let known = metadata[object] else { return [] }
        var out: [Field] = []
        for (position, name) in StatsCSV.columns.enumerated() {
            guard let value = row[name], !value.isEmpty, let meta = known[name] else { continue }
            let parts = meta.split(separator: ":")
            var type = String(parts[1])
            // A value that is not the integer HAProxy's type says is printed as the text it is.
            if type != "str" && Int64(value) == nil { type = "str" }
            out.append(Field(object: object, proxyID: row["iid"] ?? "0", id: object == "S" ? row["sid"] ?? "0" : "0",
                             position: position, name: name, tags: String(parts[0]), type: type, value: value))
        }
        return out
    }

    /// `F.2.0.4.scur.1:MGP:u32:0`, a line per field.
    static func typed(_ rows: [[String: String]]) -> String {
        rows.flatMap(fields).map { "\($0.object).\($0.proxyID).\($0.id).\($0.position).\($0.name).1:\($0.tags):\($0.type):\($0.value)" }
            .joined(separator: "\n") + "\n"
    }

    /// HAProxy's JSON: an array per row of one object per field.
    static func json(_ rows: [[String: String]]) -> String {
        let kinds = ["F": "Frontend", "B": "Backend", "S": "Server"]
        return "[" + rows.map { row in
            "[" + fields(row).map { f in
                let tags = Array(f.tags)
                let value = f.type == "str" ? quoted(f.value) : f.value
                return "{\"objType\":\"\(kinds[f.object]!)\",\"proxyId\":\(f.proxyID),\"id\":\(f.id),\"field\":{\"pos\":\(f.position),\"name\":\"\(f.name)\"},"
                    + "\"processNum\":1,\"tags\":{\"origin\":\"\(origins[tags[0]] ?? "Unknown")\",\"nature\":\"\(natures[tags[1]] ?? "Unknown")\","
                    + "\"scope\":\"\(scopes[tags[2]] ?? "Unknown")\"},\"value\":{\"type\":\"\(f.type)\",\"value\":\(value)}}"
            }.joined(separator: ",") + "]"
        }.joined(separator: ",") + "]"
    }

    /// A JSON string.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
