import CShims
#if canImport(Glibc)
import Glibc
#endif

/// A kernel pipe used as the zero-copy buffer between two sockets.
///
/// Plain value with raw descriptors: the `PipePool` owns them and is the only place they are closed.
struct Pipe {
    let readEnd: CInt
    let writeEnd: CInt
    /// What the pipe can hold, in bytes, as `F_GETPIPE_SZ` reported it.
    let capacity: Int

    /// Opens a non-blocking pipe and asks for `size` bytes of buffer.
    ///
    /// Sizing is best effort: past the per-user quota (`fs.pipe-user-pages-soft`) the kernel refuses
    /// to grow a pipe (EPERM) and new pipes may even shrink to two pages, so try smaller sizes down to
    /// the default and keep whatever the kernel gave. The corresponding system calls are `pipe2(2)`
    /// and `fcntl(2)` with `F_SETPIPE_SZ`.
    static func open(size: Int) throws(SystemError) -> Pipe {
        var fds: [CInt] = [-1, -1]
        _ = try syscallBlocking("pipe2") { CShims_pipe2_nonblock(&fds) }
        var want = size
        while want > 65536, CShims_pipe_set_size(fds[1], CInt(clamping: want)) < 0 {
            want /= 2
        }
        let capacity = Int(CShims_pipe_get_size(fds[1]))
        return Pipe(readEnd: fds[0], writeEnd: fds[1], capacity: max(capacity, 4096))
    }

    func close() {
        closeDescriptor(readEnd)
        closeDescriptor(writeEnd)
    }
}

/// Moves up to `length` bytes between a socket and a pipe without copying through user space.
/// `.processed(0)` when reading from a socket means end of stream.
/// The corresponding system call is `splice(2)`.
@inline(__always)
func splice(from source: CInt, to destination: CInt, length: Int, more: Bool) throws(SystemError) -> IOResult<Int> {
    let flags = CShims_SPLICE_F_MOVE | CShims_SPLICE_F_NONBLOCK | (more ? CShims_SPLICE_F_MORE : 0)
    return try syscall("splice") { CShims_splice(source, destination, length, flags) }
}
