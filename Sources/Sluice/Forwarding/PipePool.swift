import Synchronization

/// Pipes for one reactor, taken only while a direction has bytes in flight.
///
/// A pipe that still holds bytes is never given back: the caller tracks what each pipe holds and
/// returns it only when empty. Pipes are process-wide limited by `maxpipes` (counted in `ProcessState`,
/// free ones included); when the limit is reached or the kernel refuses a pipe, `take()` returns nil and
/// the session forwards through a small copy buffer instead.
struct PipePool {
    private var free: [Pipe] = []
    /// Kept open for reuse; more are closed on return. Reuse saves `pipe2` + `F_SETPIPE_SZ` per session.
    private let keep: Int
    private let size: Int
    private let process: ProcessState

    init(size: Int, keep: Int, process: ProcessState) {
        self.size = size
        self.keep = keep
        self.process = process
    }

    /// An empty pipe, or nil when the `maxpipes` limit is reached or no descriptor is left.
    mutating func take() -> Pipe? {
        if let pipe = free.popLast() { return pipe }
        guard process.reservePipe() else { return nil }
        do {
            return try Pipe.open(size: size)
        } catch {
            process.releasePipe()
            if error.isDescriptorExhaustion { process.noteDescriptorExhaustion() }
            return nil
        }
    }

    /// Returns an empty pipe.
    mutating func give(_ pipe: Pipe) {
        if free.count < keep {
            free.append(pipe)
        } else {
            pipe.close()
            process.releasePipe()
        }
    }

    /// Closes a pipe that may still hold bytes (its session ended before they could be written).
    mutating func discard(_ pipe: Pipe) {
        pipe.close()
        process.releasePipe()
    }

    /// Closes every pooled pipe (at shutdown).
    mutating func drain() {
        for pipe in free {
            pipe.close()
            process.releasePipe()
        }
        free.removeAll()
    }
}
