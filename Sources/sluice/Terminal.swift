#if canImport(Glibc)
import Glibc
#endif

/// The terminal in non-canonical, no-echo mode for single-key input (Ctrl-C still signals), with
/// the cursor hidden; `fullScreen` also takes the alternate screen without line wrap (`sluice
/// top`). `restore` puts everything back.
final class RawTerminal {
    private var saved = termios()
    private let fullScreen: Bool
    /// The terminal's width (120 when it does not say).
    let columns: Int

    init(fullScreen: Bool = false) {
        self.fullScreen = fullScreen
        tcgetattr(0, &saved)
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO)
        tcsetattr(0, TCSANOW, &raw)
        _ = fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK)
        var size = winsize()
        columns = ioctl(1, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : 120
        write(fullScreen ? "\u{1B}[?1049h\u{1B}[?25l\u{1B}[?7l" : "\u{1B}[?25l")
    }

    /// A key already typed, or nil.
    func readKey() -> Character? {
        if !typed.isEmpty { return Character(Unicode.Scalar(typed.removeFirst())) }
        var byte: UInt8 = 0
        return read(0, &byte, 1) == 1 ? Character(Unicode.Scalar(byte)) : nil
    }

    /// Bytes read and not yet returned as keys: one read can bring several (fast typing, a paste,
    /// key repeat), and each is a key.
    private var typed: ArraySlice<UInt8> = []

    /// The next key within `waitingMs` ("up"/"down" for the arrow keys, nil for another escape
    /// sequence), or nil.
    func key(waitingMs: Int32) -> String? {
        if typed.isEmpty {
            var ready = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, waitingMs) > 0 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 64)
            let n = read(0, &buffer, buffer.count)
            guard n > 0 else { return n == 0 ? "q" : nil }
            typed = buffer[..<n]
        }
        if typed.count >= 3 && typed.starts(with: [0x1B, 0x5B]) {  // ESC [ A|B|…
            let code = typed[typed.startIndex + 2]
            typed = typed.dropFirst(3)
            return code == 0x41 ? "up" : code == 0x42 ? "down" : nil
        }
        return String(decoding: [typed.removeFirst()], as: UTF8.self)
    }

    /// Redraws the whole screen from the top left.
    func draw(_ lines: [String]) {
        write("\u{1B}[H" + lines.map { $0 + "\u{1B}[K" }.joined(separator: "\r\n") + "\u{1B}[J")
    }

    func restore() {
        write(fullScreen ? "\u{1B}[?7h\u{1B}[?25h\u{1B}[?1049l" : "\u{1B}[?25h")
        tcsetattr(0, TCSANOW, &saved)
        _ = fcntl(0, F_SETFL, fcntl(0, F_GETFL) & ~O_NONBLOCK)
    }

    private func write(_ text: String) {
        var text = text
        text.withUTF8 { _ = Glibc.write(1, $0.baseAddress, $0.count) }
    }
}
