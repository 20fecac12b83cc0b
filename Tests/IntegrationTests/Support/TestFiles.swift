import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where tests put their files (configurations, sockets, state files, servers' folders): one folder
/// per test process in the system's temporary directory, removed when the process exits, so a run
/// leaves nothing behind. Folders of runs that were killed are removed by the next one.
enum TestFiles {
    static let folder: URL = {
        let temporary = FileManager.default.temporaryDirectory
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? [] where entry.hasPrefix(prefix) {
            if let pid = pid_t(entry.dropFirst(prefix.count)), kill(pid, 0) != 0 && errno == ESRCH {
                try? FileManager.default.removeItem(at: temporary.appendingPathComponent(entry))
            }
        }
        let folder = temporary.appendingPathComponent(prefix + String(getpid()))
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: FileManager.default.temporaryDirectory.appendingPathComponent(TestFiles.prefix + String(getpid()))) }
        return folder
    }()

    private static let prefix = "sluice-tests-"
}
