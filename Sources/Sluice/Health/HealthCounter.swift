/// HAProxy's health counter for one server: `value` runs from 0 to `rise + fall - 1`; the server is
/// UP when `value >= rise`.
///
/// A success raises it by one; reaching `rise` from below jumps to the top (UP, fully healthy).
/// A failure lowers it by one while above `rise`; a failure at `rise` drops it to 0 (DOWN). So from
/// fully healthy, `fall` consecutive failures take a server down, and from 0, `rise` consecutive
/// successes bring it up. A server starts at `rise`: UP, but the first failed check takes it down.
struct HealthCounter: Equatable {
    let rise: Int
    let fall: Int
    private(set) var value: Int

    enum Transition: Equatable { case wentUp, wentDown }

    init(rise: Int, fall: Int, value: Int? = nil) {
        precondition(rise >= 1 && fall >= 1, "rise \(rise) and fall \(fall) must be at least 1")
        self.rise = rise
        self.fall = fall
        self.value = value ?? rise
    }

    var top: Int { rise + fall - 1 }
    var isUp: Bool { value >= rise }

    /// The state the checks alone decide (HAProxy's): `running` from `rise` up — "UP 2/3" while
    /// failures accumulate is still running — else `stopped`.
    var operational: OperationalState { isUp ? .running : .stopped }

    mutating func success() -> Transition? {
        guard value < top else { return nil }
        let wasUp = isUp
        value += 1
        if value >= rise {
            value = top  // HAProxy: any success while UP restores full health
            return wasUp ? nil : .wentUp
        }
        return nil
    }

    mutating func failure() -> Transition? {
        if value > rise {
            value -= 1
            return nil
        }
        guard value > 0 else { return nil }
        let wasUp = isUp
        value = 0
        return wasUp ? .wentDown : nil
    }

    /// `on-error sudden-death`: leave one failed check between the server and DOWN.
    mutating func suddenDeath() {
        if value > rise { value = rise }
    }

    /// `on-error mark-down`.
    mutating func markDown() -> Transition? {
        let wasUp = isUp
        value = 0
        return wasUp ? .wentDown : nil
    }

    /// Progress through a transition as HAProxy's stats show it: for UP going down, the health left
    /// above DOWN out of `fall` ("UP 1/3": one more failure takes it down); for DOWN coming up, the
    /// successes so far out of `rise`.
    var progress: String {
        isUp ? "\(value - rise + 1)/\(fall)" : "\(value)/\(rise)"
    }
}
