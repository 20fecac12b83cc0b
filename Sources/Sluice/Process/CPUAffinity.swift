import CShims

/// HAProxy's `cpu-map`: each reactor thread pinned to the CPUs the configuration gives it.
enum CPUAffinity {
    /// Pins the calling thread to `cpus`. Returns why it could not, or nil.
    /// The corresponding call is `pthread_setaffinity_np(3)`.
    static func pin(_ cpus: [Int]) -> String? {
        let list = cpus.map { CInt($0) }
        let rc = list.withUnsafeBufferPointer { CShims_set_affinity($0.baseAddress, CInt($0.count)) }
        return rc == 0 ? nil : "cpu-map: cannot pin a thread to CPUs \(cpus.map(String.init).joined(separator: ",")): \(SystemError(code: rc, call: "pthread_setaffinity_np").reason)"
    }

    /// How many CPUs the calling thread may run on.
    static var allowedCount: Int { Int(CShims_get_affinity_count()) }
}
