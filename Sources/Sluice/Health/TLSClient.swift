import CShims
#if canImport(Glibc)
import Glibc
#endif

/// One server's TLS settings for its checks, loaded (OpenSSL's `SSL_CTX`: CA files, client
/// certificate, ciphers): built when the configuration is checked and when checks are configured.
final class TLSClientContext: @unchecked Sendable {
    // An SSL_CTX is safe to share once built; only the check runner's thread makes sessions of it.
    fileprivate let raw: UnsafeMutableRawPointer
    let settings: CheckTLS

    /// Throws OpenSSL's reason when a file cannot be loaded or a list is refused.
    init(_ settings: CheckTLS) throws(SluiceError) {
        var error = [CChar](repeating: 0, count: 512)
        let made: UnsafeMutableRawPointer? = withCStrings([settings.caFile, settings.crlFile, settings.certificate, settings.ciphers,
                                                          settings.cipherSuites, settings.curves, settings.signatureAlgorithms,
                                                          settings.clientSignatureAlgorithms]) { p in
            var c = CShims_tls_settings(
                verify: settings.verify ? 1 : 0, ca_file: p[0], crl_file: p[1], certificate: p[2], ciphers: p[3], ciphersuites: p[4],
                curves: p[5], sigalgs: p[6], client_sigalgs: p[7],
                min_version: settings.minVersion?.wire ?? 0, max_version: settings.maxVersion?.wire ?? 0)
            return CShims_tls_context(&c, &error, error.count)
        }
        guard let made else { throw SluiceError(String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
        raw = made
        self.settings = settings
    }

    deinit { CShims_tls_context_free(raw) }
}

/// A TLS client over one check's connected non-blocking socket. Confined to the check runner's
/// thread; `close()` must be called once (the socket itself is closed by its owner).
struct TLSClient {
    /// Why a handshake failed, with HAProxy's words for it (its `conn_err_code_str`).
    enum Failure: Int32 {
        case handshake = 0, configuredName = 1, expectedName = 2

        var info: String {
            switch self {
            case .handshake: "SSL handshake failure"
            case .configuredName: "Server presented an SSL certificate different from the configured one"
            case .expectedName: "Server presented an SSL certificate different from the expected one"
            }
        }
    }

    private let raw: UnsafeMutableRawPointer

    /// Nil when OpenSSL cannot make the session (memory, or an ALPN list it refuses).
    init?(_ context: TLSClientContext, fd: CInt) {
        let s = context.settings
        guard let made = withCStrings([s.sni, s.verifyHost, s.alpn], { p in CShims_tls_session(context.raw, fd, p[0], p[1], p[2]) }) else { return nil }
        raw = made
    }

    /// True once done; false to be called again when the socket is ready.
    func handshake() throws(HandshakeError) -> Bool {
        var reason: Int32 = 0
        switch CShims_tls_handshake(raw, &reason) {
        case 1: return true
        case 0: return false
        default: throw HandshakeError(failure: Failure(rawValue: reason) ?? .handshake)
        }
    }

    struct HandshakeError: Error { let failure: Failure }

    /// As `Socket.receive`: `.processed(0)` when the server closed; nil on a failure.
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> IOResult<Int>? {
        Self.outcome(CShims_tls_read(raw, buffer.baseAddress, buffer.count))
    }

    /// As `Socket.send`; nil on a failure.
    func send(from buffer: UnsafeRawBufferPointer) -> IOResult<Int>? {
        Self.outcome(CShims_tls_write(raw, buffer.baseAddress, buffer.count))
    }

    private static func outcome(_ n: Int) -> IOResult<Int>? {
        n >= 0 ? .processed(n) : n == -1 ? .wouldBlock : nil
    }

    func close() { CShims_tls_session_free(raw) }
}

/// Runs `body` with C strings for `strings` (NULL for nil), valid only during the call.
private func withCStrings<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies = strings.map { $0.map { strdup($0) } ?? nil }
    defer { for p in copies { free(p) } }
    return body(copies.map { $0.map { UnsafePointer($0) } })
}
