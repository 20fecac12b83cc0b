#if canImport(Glibc)
import Glibc
#endif

/// A POSIX extended regular expression (`regcomp(3)`), for `rstatus`, `rstring`, `tcp-check expect
/// rstring` and ACLs' `-m reg`.
final class POSIXRegex: @unchecked Sendable {
    // regex_t is only read by regexec after compilation, which is thread-safe.
    private var compiled = regex_t()

    init?(_ pattern: String, ignoreCase: Bool = false) {
        guard regcomp(&compiled, pattern, REG_EXTENDED | REG_NOSUB | (ignoreCase ? REG_ICASE : 0)) == 0 else { return nil }
    }

    deinit { regfree(&compiled) }

    func matches(_ bytes: [UInt8]) -> Bool {
        // regexec needs a C string: stop at the first NUL, as HAProxy's matching of text does.
        var text = bytes.prefix { $0 != 0 }.map { CChar(bitPattern: $0) }
        text.append(0)
        return regexec(&compiled, text, 0, nil, 0) == 0
    }
}
