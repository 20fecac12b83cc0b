#if canImport(Glibc)
import Glibc
#endif

/// A `peers` section as read. HAProxy's peers synchronise stick tables: with the local peer across
/// a reload (the old process hands its tables to the new one), with other balancers always.
/// Sluice reloads in-process and keeps its tables, so a section whose only peer is the local one
/// asks for nothing Sluice does not already do; one that names another balancer is refused, as
/// synchronisation between balancers is not implemented.
struct PeersDraft {
    let name: String
    let location: SourceLocation
    /// `peer <name> <address>` lines, and the `server <name> [<address>]` of HAProxy 2.x's form.
    var peers: [(name: String, address: String?, location: SourceLocation)] = []
    /// `disabled`: no synchronisation (HAProxy silently disables the section).
    var disabled = false
}

extension Parser {
    /// One line of the open `peers` section.
    mutating func peersKeyword(_ draft: inout PeersDraft, _ words: [String], _ location: SourceLocation) {
        let keyword = words[0]
        switch keyword {
        case "peer":
            guard words.count >= 3 else { return error(location, keyword: keyword, "expected 'peer <name> <address>:<port>'") }
            draft.peers.append((words[1], words[2], location))
        case "server":
            guard words.count >= 2 else { return error(location, keyword: keyword, "expected 'server <name> [<address>:<port>]'") }
            draft.peers.append((words[1], words.count > 2 ? words[2] : nil, location))
        case "bind", "default-server":
            // The local peer's listening address and server defaults: nothing connects to it in Sluice.
            break
        case "disabled":
            draft.disabled = true
        case "enabled", "enable":
            draft.disabled = false
        case "table":
            error(location, keyword: keyword, "stick tables declared in a peers section are not supported yet; declare the table with 'stick-table' in a backend")
        default:
            error(location, keyword: keyword, "not supported in a peers section (supported: peer, server, bind, default-server, disabled, enable)")
        }
    }

    /// After reading, as HAProxy 2.6 decides (cfgparse.c): a `disabled` section synchronises
    /// nothing; one without the local peer (HAProxy's `localpeer`, else the host name) is removed
    /// with HAProxy's warning; one whose peers are all the local one is accepted with a warning; one
    /// with the local peer and another balancer is refused on that balancer's line. Every table's
    /// `peers <name>` must name a section.
    mutating func validatePeers() {
        let local = localPeer ?? Self.hostName()
        for section in peersSections where !section.disabled {
            guard section.peers.contains(where: { $0.name == local }) else {
                report(.warning, section: "peers '\(section.name)'", section.location, keyword: "peers",
                       "removing incomplete section 'peers \(section.name)' (no peer named '\(local)'), as HAProxy does: it synchronises nothing")
                continue
            }
            let remote = section.peers.filter { $0.name != local }
            for peer in remote {
                report(.error, section: "peers '\(section.name)'", peer.location, keyword: "peer",
                       "'\(peer.name)'\(peer.address.map { " at \($0)" } ?? "") is another balancer (the local peer is '\(local)', the host name or 'localpeer'): synchronising stick tables between balancers is not supported yet")
            }
            if remote.isEmpty {
                report(.warning, section: "peers '\(section.name)'", section.location, keyword: "peers",
                       "only the local peer '\(local)': accepted, as Sluice reloads in-process and keeps its stick tables, which is what HAProxy's local peer is for")
            }
        }
        for (name, location, label) in tablePeers where !peersSections.contains(where: { $0.name == name }) {
            report(.error, section: label, location, keyword: "stick-table", "'peers \(name)': no peers section named '\(name)'")
        }
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
