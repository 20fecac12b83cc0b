#if canImport(Glibc)
import Glibc
#endif

/// Splits one configuration line into words, as HAProxy does: blanks separate words; `#` starts a
/// comment; a backslash escapes the next character (`\ `, `\#`, `\\`, `\'`, `\"`, `\t`, `\n`, `\r`,
/// `\xHH`); double quotes group blanks and keep escapes and `$VAR`/`${VAR}` expansion; single quotes
/// group everything literally. Quoted parts may join unquoted ones in one word.
enum Tokenizer {
    enum Failure: Error, Equatable {
        case unterminatedQuote(Character)
        case badEscape(String)
    }

    static func words(_ line: Substring, environment: (String) -> String? = Tokenizer.environment) throws(Failure) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character? = nil
        var i = line.startIndex

        func next(_ idx: Substring.Index) -> Substring.Index { line.index(after: idx) }

        while i < line.endIndex {
            let c = line[i]
            if quote == "'" {
                if c == "'" { quote = nil } else { current.append(c) }
                i = next(i)
                continue
            }
            if c == "\\" {
                let j = next(i)
                guard j < line.endIndex else { throw .badEscape("\\ at end of line") }
                let e = line[j]
                switch e {
                case "t": current.append("\t")
                case "n": current.append("\n")
                case "r": current.append("\r")
                case "x":
                    let h1 = next(j)
                    guard h1 < line.endIndex, next(h1) < line.endIndex,
                          let byte = UInt8(String(line[h1...next(h1)]), radix: 16) else {
                        throw .badEscape("\\x needs two hexadecimal digits")
                    }
                    current.unicodeScalars.append(Unicode.Scalar(byte))
                    inWord = true
                    i = next(next(h1))
                    continue
                default: current.append(e)
                }
                inWord = true
                i = next(j)
                continue
            }
            if quote == "\"" {
                if c == "\"" {
                    quote = nil
                    i = next(i)
                } else if c == "$" {
                    i = expand(line, from: i, into: &current, environment: environment)
                } else {
                    current.append(c)
                    i = next(i)
                }
                continue
            }
            switch c {
            case " ", "\t", "\r", "\n":
                if inWord { words.append(current); current = ""; inWord = false }
                i = next(i)
            case "#":
                i = line.endIndex
            case "\"", "'":
                quote = c
                inWord = true
                i = next(i)
            default:
                current.append(c)
                inWord = true
                i = next(i)
            }
        }
        if let quote { throw .unterminatedQuote(quote) }
        if inWord { words.append(current) }
        return words
    }

    /// `$NAME` or `${NAME}` inside double quotes; an unset variable expands to nothing, as HAProxy.
    private static func expand(_ line: Substring, from dollar: Substring.Index, into out: inout String,
                               environment: (String) -> String?) -> Substring.Index {
        var i = line.index(after: dollar)
        var name = ""
        if i < line.endIndex && line[i] == "{" {
            i = line.index(after: i)
            while i < line.endIndex && line[i] != "}" { name.append(line[i]); i = line.index(after: i) }
            if i < line.endIndex { i = line.index(after: i) }
        } else {
            while i < line.endIndex, line[i].isLetter || line[i].isNumber || line[i] == "_" {
                name.append(line[i]); i = line.index(after: i)
            }
        }
        if name.isEmpty { out.append("$"); return i }
        out += environment(name) ?? ""
        return i
    }

    static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
