/// HAProxy's numbering of proxies (`show stat`'s `iid`) and of a backend's servers (`sid`,
/// `show servers state`'s `srv_id`, what `stick` rules store): an explicit `id` is kept; every
/// other entry takes the first number no entry uses, searching from a cursor that starts at 1 and
/// moves one past each entry in order, explicit or not (HAProxy 2.6's `check_config_validity`).
/// So `server a`, `server b id 1`, `server c` are numbered 2, 1, 3.
enum Numbering {
    static func assign(_ explicit: [Int?]) -> [Int] {
        var used = Set(explicit.compactMap { $0 })
        var cursor = 1
        return explicit.map { id in
            defer { cursor += 1 }
            if let id { return id }
            while used.contains(cursor) { cursor += 1 }
            used.insert(cursor)
            return cursor
        }
    }

    /// The smallest number from 1 that `used` does not hold: the id of a server added at run time
    /// without one (HAProxy's `add server`).
    static func firstFree(_ used: Set<Int>) -> Int {
        var id = 1
        while used.contains(id) { id += 1 }
        return id
    }
}

extension Configuration {
    /// The configuration with every proxy and server numbered. A configuration read from text is
    /// numbered already, in declaration order; one built in Swift without ids is numbered here:
    /// the frontends in order, then the backends, a backend named like a frontend (the two halves
    /// of a `listen` section) taking the frontend's number.
    public func numbered() -> Configuration {
        var copy = self
        // A backend named like a frontend is the other half of a `listen` unless their ids differ.
        let halves = frontends.map { frontend in
            backends.firstIndex { $0.name == frontend.name && (frontend.id == nil || $0.id == nil || $0.id == frontend.id) }
        }
        let alone = backends.indices.filter { b in !halves.contains(b) }
        let ids = Numbering.assign(frontends.indices.map { f in frontends[f].id ?? halves[f].flatMap { backends[$0].id } }
                                   + alone.map { backends[$0].id })
        let first = (frontends.compactMap(\.declaration) + backends.compactMap(\.declaration)).max().map { $0 + 1 } ?? 0
        for f in frontends.indices {
            copy.frontends[f].id = ids[f]
            copy.frontends[f].declaration = frontends[f].declaration ?? first + f
            if let b = halves[f] {
                copy.backends[b].id = ids[f]
                copy.backends[b].declaration = backends[b].declaration ?? copy.frontends[f].declaration
            }
        }
        for (n, b) in alone.enumerated() {
            copy.backends[b].id = ids[frontends.count + n]
            copy.backends[b].declaration = backends[b].declaration ?? first + frontends.count + n
        }
        for b in copy.backends.indices {
            let serverIDs = Numbering.assign(copy.backends[b].servers.map(\.id))
            for s in copy.backends[b].servers.indices { copy.backends[b].servers[s].id = serverIDs[s] }
        }
        return copy
    }
}
