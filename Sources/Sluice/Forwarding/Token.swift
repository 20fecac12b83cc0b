/// What an epoll event or a timer refers to, packed in 64 bits:
/// kind (2 bits) | generation (30 bits) | index (32 bits).
/// The generation makes events for a closed session, whose slot may be reused, harmless.
struct Token {
    enum Kind: UInt64 {
        case listener = 0
        case client = 1
        case server = 2
        /// Timers only: a worker-wide timer (listener resume, hard stop).
        case worker = 3
    }

    let kind: Kind
    let generation: UInt32
    let index: Int

    init(_ kind: Kind, index: Int, generation: UInt32 = 0) {
        self.kind = kind
        self.index = index
        self.generation = generation & 0x3FFF_FFFF
    }

    init(raw: UInt64) {
        kind = Kind(rawValue: raw >> 62) ?? .worker
        generation = UInt32((raw >> 32) & 0x3FFF_FFFF)
        index = Int(raw & 0xFFFF_FFFF)
    }

    var raw: UInt64 { kind.rawValue << 62 | UInt64(generation) << 32 | UInt64(index) }
}
