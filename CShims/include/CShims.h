// CShims: the few kernel interfaces Swift cannot reach on its own.
//
// Why this exists: glibc declares splice, pipe2, accept4, F_SETPIPE_SZ, SPLICE_F_* and
// EPOLLRDHUP only under _GNU_SOURCE, which Swift's Glibc module does not define, and liburing's
// expression macros do not import. Each shim is a one-line forward; delete one when Swift's Glibc
// module exposes the function it wraps.
#ifndef CSHIMS_H
#define CSHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __linux__
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>

// epoll
extern const uint32_t CShims_EPOLLIN;
extern const uint32_t CShims_EPOLLOUT;
extern const uint32_t CShims_EPOLLERR;
extern const uint32_t CShims_EPOLLHUP;
extern const uint32_t CShims_EPOLLRDHUP;
extern const uint32_t CShims_EPOLLET;
extern const int CShims_EPOLL_CTL_ADD;
extern const int CShims_EPOLL_CTL_MOD;
extern const int CShims_EPOLL_CTL_DEL;

/// epoll_event is packed on x86_64; Swift would import it with the wrong layout for arrays,
/// so events are read through these accessors.
typedef struct epoll_event CShims_epoll_event;
int CShims_epoll_create(void);
/// setns(fd, CLONE_NEWNET): the calling thread enters the network namespace `fd` refers to.
int CShims_setns_net(int fd);
int CShims_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
int CShims_epoll_wait(int epfd, CShims_epoll_event *events, int maxevents, int timeout_ms);
uint32_t CShims_epoll_event_events(const CShims_epoll_event *events, int index);
uint64_t CShims_epoll_event_data(const CShims_epoll_event *events, int index);
size_t CShims_epoll_event_size(void);

// splice and pipes
extern const unsigned CShims_SPLICE_F_MOVE;
extern const unsigned CShims_SPLICE_F_NONBLOCK;
extern const unsigned CShims_SPLICE_F_MORE;
ssize_t CShims_splice(int fd_in, int fd_out, size_t len, unsigned flags);
int CShims_pipe2_nonblock(int fds[2]);
int CShims_pipe_set_size(int fd, int size);
int CShims_pipe_get_size(int fd);
int CShims_pipe_bytes_queued(int fd);

// sockets
int CShims_socket_nonblock(int domain, int type);
int CShims_accept4_nonblock(int fd);
/// accept4 that also returns the peer's address (for frontends whose rules read `src`).
int CShims_accept4_nonblock_peer(int fd, struct sockaddr *addr, socklen_t *len);
int CShims_setsockopt_int(int fd, int level, int name, int value);
int CShims_getsockopt_int(int fd, int level, int name, int *value);
extern const int CShims_SO_REUSEPORT;
extern const int CShims_SO_REUSEADDR;
extern const int CShims_SO_ERROR;
extern const int CShims_SO_LINGER;
extern const int CShims_TCP_NODELAY;
/// Binding an address with port 0 leaves the port to `connect(2)` (Linux 4.2+), so the address's
/// ports are shared across destinations instead of reserved at bind.
extern const int CShims_IP_BIND_ADDRESS_NO_PORT;
extern const int CShims_IP_TRANSPARENT;
extern const int CShims_TCP_FASTOPEN_CONNECT;
/// FIONREAD: bytes waiting to be read.
int CShims_pending_input(int fd, int *count);
extern const int CShims_IPV6_V6ONLY;
extern const int CShims_MSG_NOSIGNAL;
extern const int CShims_SO_KEEPALIVE;
extern const int CShims_SO_BINDTODEVICE;
extern const int CShims_TCP_KEEPIDLE;
extern const int CShims_TCP_KEEPINTVL;
extern const int CShims_TCP_KEEPCNT;
extern const int CShims_TCP_DEFER_ACCEPT;
extern const int CShims_TCP_FASTOPEN;
extern const int CShims_TCP_MAXSEG;
extern const int CShims_TCP_USER_TIMEOUT;
/// SO_BINDTODEVICE takes a string, not an int.
int CShims_bind_to_device(int fd, const char *name);
/// Lets a socket bind an address this host does not own, HAProxy's way: IP_TRANSPARENT (or
/// IPV6_TRANSPARENT), which needs CAP_NET_ADMIN or CAP_NET_RAW and also receives diverted (TPROXY)
/// traffic, else IP_FREEBIND. Returns 0, or -1 with errno from the IP_TRANSPARENT attempt.
int CShims_make_foreign(int fd, int family);

// threads: CPU_SET and friends are macros.
/// Pins the calling thread to `cpus`. 0 or an errno value, as pthread_setaffinity_np.
int CShims_set_affinity(const int *cpus, int count);
/// How many CPUs the calling thread may run on, or -1.
int CShims_get_affinity_count(void);
/// Names a thread (a `pthread_t`; at most 15 bytes, longer names are cut), as `top -H` and `ps -L`
/// show it. (pthread.h is not included here: pulling it into this module hid Glibc's MSG_NOSIGNAL
/// from Swift files in a clean build.)
int CShims_set_thread_name(unsigned long thread, const char *name);
/// `set-mark`: SO_MARK, the netfilter mark of every packet the socket sends.
int CShims_set_mark(int fd, unsigned int mark);
/// `set-tos`: IP_TOS, or IPV6_TCLASS on an IPv6 socket that is not IPv4-mapped (HAProxy's
/// conn_set_tos).
int CShims_set_tos(int fd, int tos);
/// The client connection's kernel counters for the `fc_*` fetches: rtt and rttvar (µs),
/// unacked, sacked, retrans, fackets, lost, reordering, written to `out[0...7]`. 0, or -1.
int CShims_tcp_info(int fd, uint32_t *out);
/// `silent-drop`, as HAProxy's: reads what is pending, acknowledges it at once (TCP_QUICKACK) and
/// puts the socket in TCP_REPAIR mode, so that closing it sends nothing (needs CAP_NET_ADMIN);
/// without that right, lowers the TTL (hop limit) to 1 so that the reset dies at the first router.
/// 1 when the socket was put in repair mode.
int CShims_silence(int fd);
/// SO_LINGER with a zero timeout: close() then sends RST, used to propagate a reset.
int CShims_set_linger_zero(int fd);

// eventfd (cross-thread wakeups)
int CShims_eventfd_nonblock(void);

// liburing, for the io_uring engine: readiness by multishot poll, batched submission, completions
// reaped in C because liburing's CQE iteration is a macro.
/// Returns 1 when the kernel lets this process set up an io_uring, 0 otherwise.
int CShims_uring_probe(void);

struct io_uring;
extern const uint32_t CShims_IORING_CQE_F_MORE;
/// A ring with `entries` submission slots, with SINGLE_ISSUER|DEFER_TASKRUN where the kernel has
/// them (one thread submits and reaps), else plain. NULL and *error = -errno on failure.
struct io_uring *CShims_uring_create(unsigned entries, int *error, int *flags_used);
void CShims_uring_destroy(struct io_uring *ring);
/// Enables a ring created disabled, making the calling thread its only submitter. 0 or -errno.
int CShims_uring_enable(struct io_uring *ring, int flags_used);
/// Queues a multishot poll on `fd`; submits first when the queue is full. 0 or -errno.
int CShims_uring_poll_multishot(struct io_uring *ring, int fd, unsigned mask, uint64_t data);
/// Queues the removal of the poll whose user data is `target`. 0 or -errno.
int CShims_uring_poll_remove(struct io_uring *ring, uint64_t target, uint64_t data);
/// Submits what is queued and waits up to `timeout_ms` (-1: no limit, 0: do not block) for one
/// completion. 0, or -ETIME, -EINTR …
int CShims_uring_submit_and_wait(struct io_uring *ring, int timeout_ms);
/// Copies up to `max` completions out and marks them seen; returns how many.
unsigned CShims_uring_reap(struct io_uring *ring, uint64_t *data, int32_t *result, uint32_t *flags, unsigned max);
/// Completions posted and not yet reaped.
unsigned CShims_uring_cq_ready(struct io_uring *ring);


// TLS clients for health checks (`check-ssl`, `http-check connect ssl`), over OpenSSL (tls.c).
// Not a one-line forward: OpenSSL's host and ALPN setters are macros or need wire formats, and a
// handshake's outcome is sorted into HAProxy's three reasons here, next to the library.
struct CShims_tls_settings {
    int verify;                 // 1: the chain must verify against ca_file (and the name, below)
    const char *ca_file;        // a PEM file or a directory; "@system-ca": the system's CAs
    const char *crl_file;       // revocation lists, checked with the chain; NULL: none
    const char *certificate;    // `crt`: certificate and key (or the key at <path>.key); NULL: none
    const char *ciphers;        // TLS 1.2 and below; NULL: the library's
    const char *ciphersuites;   // TLS 1.3; NULL: the library's
    const char *curves;         // NULL: the library's (and below)
    const char *sigalgs;
    const char *client_sigalgs;
    int min_version;            // TLS1_x_VERSION numbers; 0: the library's bound
    int max_version;
};
/// A context for one server's settings, or NULL with the reason in `error`.
void *CShims_tls_context(const struct CShims_tls_settings *settings, char *error, size_t length);
void CShims_tls_context_free(void *context);
/// A client session over the connected non-blocking socket `fd`. `sni`: sent, and verified when
/// the context verifies; else `host` (`verifyhost`) is verified. `alpn`: comma-separated, or NULL.
void *CShims_tls_session(void *context, int fd, const char *sni, const char *host, const char *alpn);
void CShims_tls_session_free(void *session);
/// 1: done; 0: call again when the socket is ready; -1: failed, with `reason` 0 (handshake
/// failure), 1 (the certificate does not name `host`) or 2 (it does not name `sni`).
int CShims_tls_handshake(void *session, int *reason);
/// Bytes moved; 0: the peer closed (read only); -1: call again when ready; -2: failed.
long CShims_tls_read(void *session, void *buffer, size_t length);
long CShims_tls_write(void *session, const void *buffer, size_t length);

/// Starts `path` with `argv` and exactly `envp`, descriptors from 3 up closed, every signal at its
/// default and none blocked (posix_spawn). Returns a pidfd (close-on-exec, readable once the child
/// has exited) and stores the pid in `pid_out`; -1 with errno (an exec failure included).
int CShims_spawn(const char *path, char *const argv[], char *const envp[], int *pid_out);
/// Reaps the child of `pidfd` if it has exited: 1, with its exit status in `code` (-1 when a signal
/// ended it); 0 while it runs; -1 with errno.
int CShims_reap(int pidfd, int *code);
/// pidfd_send_signal(2).
int CShims_pidfd_signal(int pidfd, int sig);

#endif // __linux__
#endif // CSHIMS_H
