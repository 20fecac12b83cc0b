// libFuzzer target `Configuration`: the configuration tokenizer and parser (`sluice -c`, reloads) on any bytes.
// Every input either parses or fails with diagnostics that name a line of the input; nothing traps.
// Built (with the others, into one binary: Fuzz/Driver.swift) and run by scripts/fuzz; seeds in corpus/ (the repository's example configurations).
func fuzzConfiguration(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let lines = text.lines.count
    do {
        _ = try Configuration.parse([(file: "f", text: text)], readFile: { _ in .failure(SystemError(code: 2, call: "open")) })
    } catch {
        for diagnostic in error.diagnostics {
            precondition(diagnostic.location.line >= 1 && diagnostic.location.line <= max(lines, 1) + 1, "a diagnostic outside the input: \(diagnostic)")
        }
    }
    return 0
}
