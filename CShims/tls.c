// TLS clients for health checks, over OpenSSL. Declared in CShims.h.
#ifdef __linux__
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "CShims.h"

struct tls_session {
    SSL *ssl;
    int names;  // 0: no name checked; 1: `host` (verifyhost); 2: `sni`
};

static void describe(char *error, size_t length, const char *what, const char *path) {
    unsigned long code = ERR_peek_last_error();
    char reason[256] = "";
    if (code != 0) ERR_error_string_n(code, reason, sizeof reason);
    snprintf(error, length, "%s%s%s%s%s", what, path ? " " : "", path ? path : "", code ? ": " : "", reason);
    ERR_clear_error();
}

// `ca-file <dir>`: every .pem, .crt, .cer and .crl file in it (not hidden ones), as HAProxy loads.
static int load_directory(X509_STORE *store, const char *dir, char *error, size_t length) {
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(error, length, "cannot open the CA directory %s: %s", dir, strerror(errno));
        return 0;
    }
    struct dirent *entry;
    int loaded = 0;
    while ((entry = readdir(d)) != NULL) {
        const char *name = entry->d_name;
        const char *dot = strrchr(name, '.');
        if (name[0] == '.' || !dot) continue;
        if (strcmp(dot, ".pem") && strcmp(dot, ".crt") && strcmp(dot, ".cer") && strcmp(dot, ".crl")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (!X509_STORE_load_file(store, path)) {
            describe(error, length, "cannot load the CA file", path);
            closedir(d);
            return 0;
        }
        loaded++;
    }
    closedir(d);
    if (loaded == 0) snprintf(error, length, "no CA file (.pem, .crt, .cer, .crl) in %s", dir);
    return loaded > 0;
}

void *CShims_tls_context(const struct CShims_tls_settings *s, char *error, size_t length) {
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        describe(error, length, "cannot create a TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(ctx, s->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (s->ca_file) {
        struct stat st;
        int ok;
        if (strcmp(s->ca_file, "@system-ca") == 0) {
            ok = SSL_CTX_set_default_verify_paths(ctx);
            if (!ok) describe(error, length, "cannot load the system's CAs", NULL);
        } else if (stat(s->ca_file, &st) == 0 && S_ISDIR(st.st_mode)) {
            ok = load_directory(SSL_CTX_get_cert_store(ctx), s->ca_file, error, length);
        } else {
            ok = SSL_CTX_load_verify_locations(ctx, s->ca_file, NULL);
            if (!ok) describe(error, length, "cannot load the CA file", s->ca_file);
        }
        if (!ok) goto fail;
    }
    if (s->crl_file) {
        X509_STORE *store = SSL_CTX_get_cert_store(ctx);
        if (!X509_STORE_load_file(store, s->crl_file)) {
            describe(error, length, "cannot load the CRL file", s->crl_file);
            goto fail;
        }
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    }
    if (s->certificate) {
        if (!SSL_CTX_use_certificate_chain_file(ctx, s->certificate)) {
            describe(error, length, "cannot load the certificate", s->certificate);
            goto fail;
        }
        if (!SSL_CTX_use_PrivateKey_file(ctx, s->certificate, SSL_FILETYPE_PEM)) {
            ERR_clear_error();
            char key[4096];
            snprintf(key, sizeof key, "%s.key", s->certificate);
            if (!SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM)) {
                describe(error, length, "no private key in the certificate file, nor a readable key at", key);
                goto fail;
            }
        }
        if (!SSL_CTX_check_private_key(ctx)) {
            describe(error, length, "the private key does not match the certificate", s->certificate);
            goto fail;
        }
    }
    if (s->ciphers && !SSL_CTX_set_cipher_list(ctx, s->ciphers)) {
        describe(error, length, "no usable cipher in", s->ciphers);
        goto fail;
    }
    if (s->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, s->ciphersuites)) {
        describe(error, length, "no usable TLS 1.3 cipher suite in", s->ciphersuites);
        goto fail;
    }
    if (s->curves && !SSL_CTX_set1_curves_list(ctx, s->curves)) {
        describe(error, length, "unusable curves", s->curves);
        goto fail;
    }
    if (s->sigalgs && !SSL_CTX_set1_sigalgs_list(ctx, s->sigalgs)) {
        describe(error, length, "unusable signature algorithms", s->sigalgs);
        goto fail;
    }
    if (s->client_sigalgs && !SSL_CTX_set1_client_sigalgs_list(ctx, s->client_sigalgs)) {
        describe(error, length, "unusable client signature algorithms", s->client_sigalgs);
        goto fail;
    }
    if ((s->min_version && !SSL_CTX_set_min_proto_version(ctx, s->min_version)) ||
        (s->max_version && !SSL_CTX_set_max_proto_version(ctx, s->max_version))) {
        describe(error, length, "this TLS library refuses the protocol version bounds", NULL);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void CShims_tls_context_free(void *context) { SSL_CTX_free(context); }

void *CShims_tls_session(void *context, int fd, const char *sni, const char *host, const char *alpn) {
    ERR_clear_error();
    struct tls_session *session = calloc(1, sizeof *session);
    if (!session) return NULL;
    session->ssl = SSL_new(context);
    if (!session->ssl || !SSL_set_fd(session->ssl, fd)) goto fail;
    if (sni && *sni && !SSL_set_tlsext_host_name(session->ssl, sni)) goto fail;
    // HAProxy checks the name sent in SNI, else `verifyhost`, and only when verifying.
    const char *name = sni && *sni ? sni : host;
    if (name && *name && SSL_CTX_get_verify_mode(context) != SSL_VERIFY_NONE) {
        if (!SSL_set1_host(session->ssl, name)) goto fail;
        session->names = name == sni ? 2 : 1;
    }
    if (alpn && *alpn) {
        // "h2,http/1.1" → the wire format: each name after its length byte.
        unsigned char wire[256];
        size_t n = 0;
        const char *p = alpn;
        while (*p) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (len == 0 || len > 255 || n + 1 + len > sizeof wire) goto fail;
            wire[n++] = (unsigned char)len;
            memcpy(wire + n, p, len);
            n += len;
            p += len + (comma ? 1 : 0);
        }
        if (SSL_set_alpn_protos(session->ssl, wire, (unsigned)n) != 0) goto fail;
    }
    SSL_set_connect_state(session->ssl);
    return session;
fail:
    ERR_clear_error();
    SSL_free(session->ssl);
    free(session);
    return NULL;
}

void CShims_tls_session_free(void *s) {
    struct tls_session *session = s;
    if (!session) return;
    SSL_free(session->ssl);  // no close_notify: the check's socket is closed right after
    free(session);
}

int CShims_tls_handshake(void *s, int *reason) {
    struct tls_session *session = s;
    ERR_clear_error();
    int r = SSL_do_handshake(session->ssl);
    if (r == 1) return 1;
    int e = SSL_get_error(session->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    *reason = 0;
    if (SSL_get_verify_result(session->ssl) == X509_V_ERR_HOSTNAME_MISMATCH) *reason = session->names;
    ERR_clear_error();
    return -1;
}

static long outcome(SSL *ssl, int r, int reading) {
    if (r > 0) return r;
    int e = SSL_get_error(ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return -1;
    if (reading && e == SSL_ERROR_ZERO_RETURN) return 0;
    return -2;
}

long CShims_tls_read(void *s, void *buffer, size_t length) {
    struct tls_session *session = s;
    ERR_clear_error();
    return outcome(session->ssl, SSL_read(session->ssl, buffer, (int)(length > 1 << 30 ? 1 << 30 : length)), 1);
}

long CShims_tls_write(void *s, const void *buffer, size_t length) {
    struct tls_session *session = s;
    ERR_clear_error();
    return outcome(session->ssl, SSL_write(session->ssl, buffer, (int)(length > 1 << 30 ? 1 << 30 : length)), 0);
}
#endif
