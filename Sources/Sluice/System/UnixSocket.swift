import CShims
#if canImport(Glibc)
import Glibc
#endif

extension Socket {
    /// A non-blocking listening UNIX stream socket at `address` (a path or an abstract name).
    ///
    /// A path is bound at `<path>.<pid>.tmp`, given its owner and mode, listened on, then renamed
    /// over the path: whatever was there (a stale file, or an older process's socket, which keeps
    /// serving what it accepted) is replaced in one step, as HAProxy's `sock_unix_bind_receiver`
    /// does. Unlike HAProxy the rename comes after `listen(2)`, so a file at the path always
    /// accepts: a client or a deploy script may wait for the file, then connect. An abstract name
    /// has no file and no permissions. The system calls are `socket(2)`, `bind(2)`, `chown(2)`,
    /// `chmod(2)`, `listen(2)`, `rename(2)`.
    static func listenUnix(_ address: SocketAddress, backlog: Int, owner: uid_t = .max, group: gid_t = .max, mode: Int? = nil) throws(SystemError) -> Descriptor {
        guard let (path, abstract) = address.unixPath else { preconditionFailure("\(address) is not a UNIX socket address") }
        let temporary = "\(path).\(getpid()).tmp"
        let bound: SocketAddress
        if abstract {
            bound = address
        } else {
            guard let t = SocketAddress(unixPath: temporary) else {
                throw SystemError(code: ENAMETOOLONG, call: "bind", operand: "\(path) (its temporary name '\(temporary)' must fit in \(UnixSocketPaths.capacity) bytes)")
            }
            bound = t
            unlink(temporary)
        }
        let fd = Descriptor(taking: try syscallBlocking("socket") { CShims_socket_nonblock(AF_UNIX, Int32(SOCK_STREAM.rawValue)) })
        func fail(_ call: String) -> SystemError {
            let error = SystemError(code: errno, call: call, operand: address.description)
            if !abstract { unlink(temporary) }
            return error
        }
        guard bound.withSockaddr({ Glibc.bind(fd.rawValue, $0, $1) }) == 0 else { throw fail("bind") }
        if !abstract {
            if owner != .max || group != .max { guard chown(temporary, owner, group) == 0 else { throw fail("chown") } }
            if let mode { guard chmod(temporary, mode_t(mode)) == 0 else { throw fail("chmod") } }
        }
        guard Glibc.listen(fd.rawValue, Int32(clamping: backlog)) == 0 else { throw fail("listen") }
        if !abstract { guard rename(temporary, path) == 0 else { throw fail("rename") } }
        return fd
    }
}

extension UnixSocketPermissions {
    /// The owner and group ids for `chown(2)` (`.max`, i.e. -1: unchanged), names looked up now.
    func ids() throws(SluiceError) -> (owner: uid_t, group: gid_t) {
        func id(_ owner: StatsSocket.Owner?, user: Bool) throws(SluiceError) -> UInt32 {
            switch owner {
            case nil: return .max
            case .id(let id): return UInt32(id)
            case .name(let name):
                if user, let entry = getpwnam(name) { return entry.pointee.pw_uid }
                if !user, let entry = getgrnam(name) { return entry.pointee.gr_gid }
                throw SluiceError("no \(user ? "user" : "group") named '\(name)'")
            }
        }
        return (try id(owner, user: true), try id(group, user: false))
    }
}
