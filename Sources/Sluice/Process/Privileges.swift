#if canImport(Glibc)
import Glibc
#endif

/// HAProxy's `chroot`, `user`/`uid` and `group`/`gid`: applied once listeners and stats sockets
/// are open, in HAProxy's order (chroot, then groups, then the user).
public enum Privileges {
    /// Enters `chroot` (if any), then switches to `groupID` and `userID` (if any), clearing the
    /// supplementary groups, and checks that root cannot be regained.
    ///
    /// glibc applies setgid/setuid to every thread of the process, reactors included.
    /// - Throws: `SluiceError` naming the step that failed.
    public static func drop(chroot directory: String?, userID: UInt32?, groupID: UInt32?) throws(SluiceError) {
        func fail(_ what: String) -> SluiceError { SluiceError("\(what): \(String(cString: strerror(errno)))") }
        if let directory {
            guard chdir(directory) == 0 else { throw fail("chroot \(directory): chdir") }
            guard chroot(directory) == 0 else { throw fail("chroot \(directory)") }
            guard chdir("/") == 0 else { throw fail("chroot \(directory): chdir /") }
        }
        if let groupID {
            var group = groupID
            guard setgroups(1, &group) == 0 else { throw fail("group \(groupID): setgroups") }
            guard setgid(groupID) == 0 else { throw fail("group \(groupID): setgid") }
        }
        if let userID {
            if groupID == nil { guard setgroups(0, nil) == 0 else { throw fail("user \(userID): setgroups") } }
            guard setuid(userID) == 0 else { throw fail("user \(userID): setuid") }
            if userID != 0 && (setuid(0) == 0 || seteuid(0) == 0) {
                throw SluiceError("user \(userID): root could be regained after setuid; refusing to run")
            }
        }
    }
}

/// HAProxy's `ulimit-n`.
public enum DescriptorLimit {
    /// Sets the soft descriptor limit to `wanted` (`ulimit-n`), or as near as the hard limit and
    /// `ceiling` (`fd-hard-limit`) allow; without `wanted`, only lowers it to `ceiling`.
    /// - Returns: what fell short when `wanted` was not reached (HAProxy 2.6 stops there under
    ///   `strict-limits`, its default, and warns without it).
    public static func apply(wanted: Int?, ceiling: Int? = nil) -> String? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            return "ulimit-n \(wanted ?? 0): getrlimit: \(String(cString: strerror(errno)))"
        }
        let cap = min(rlim_t(ceiling ?? Int.max), limit.rlim_max)
        let target = min(wanted.map { rlim_t($0) } ?? limit.rlim_cur, cap)
        if target != limit.rlim_cur {
            limit.rlim_cur = target
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 {
                return "ulimit-n \(wanted ?? 0): setrlimit: \(String(cString: strerror(errno)))"
            }
        }
        guard let wanted, target < rlim_t(wanted) else { return nil }
        let why = ceiling.map { rlim_t($0) < limit.rlim_max } == true ? "fd-hard-limit is \(ceiling ?? 0)" : "the hard limit is \(limit.rlim_max)"
        return "cannot raise the descriptor limit to \(wanted) (ulimit-n): \(why); the limit is \(target)"
    }

    /// The current soft limit.
    public static var current: Int {
        var limit = rlimit()
        return getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 ? Int(limit.rlim_cur) : -1
    }
}
