import Testing

/// Every integration suite runs inside this one, one test at a time: they share the loopback
/// port space (a "closed" port picked by one test must not be reused by another's listener) and
/// the process's descriptor budget.
@Suite(.serialized) enum Loopback {}
