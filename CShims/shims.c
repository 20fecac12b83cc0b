#include <pthread.h>
#include <sched.h>
#include <string.h>
#include "CShims.h"

#ifdef __linux__
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

const uint32_t CShims_EPOLLIN = EPOLLIN;
const uint32_t CShims_EPOLLOUT = EPOLLOUT;
const uint32_t CShims_EPOLLERR = EPOLLERR;
const uint32_t CShims_EPOLLHUP = EPOLLHUP;
const uint32_t CShims_EPOLLRDHUP = EPOLLRDHUP;
const uint32_t CShims_EPOLLET = EPOLLET;
const int CShims_EPOLL_CTL_ADD = EPOLL_CTL_ADD;
const int CShims_EPOLL_CTL_MOD = EPOLL_CTL_MOD;
const int CShims_EPOLL_CTL_DEL = EPOLL_CTL_DEL;

int CShims_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int CShims_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev = {.events = events, .data = {.u64 = data}};
    return epoll_ctl(epfd, op, fd, &ev);
}

int CShims_epoll_wait(int epfd, CShims_epoll_event *events, int maxevents, int timeout_ms) {
    return epoll_wait(epfd, events, maxevents, timeout_ms);
}

uint32_t CShims_epoll_event_events(const CShims_epoll_event *events, int index) { return events[index].events; }
uint64_t CShims_epoll_event_data(const CShims_epoll_event *events, int index) { return events[index].data.u64; }
size_t CShims_epoll_event_size(void) { return sizeof(struct epoll_event); }

const unsigned CShims_SPLICE_F_MOVE = SPLICE_F_MOVE;
const unsigned CShims_SPLICE_F_NONBLOCK = SPLICE_F_NONBLOCK;
const unsigned CShims_SPLICE_F_MORE = SPLICE_F_MORE;

ssize_t CShims_splice(int fd_in, int fd_out, size_t len, unsigned flags) {
    return splice(fd_in, NULL, fd_out, NULL, len, flags);
}

int CShims_pipe2_nonblock(int fds[2]) { return pipe2(fds, O_NONBLOCK | O_CLOEXEC); }
int CShims_pipe_set_size(int fd, int size) { return fcntl(fd, F_SETPIPE_SZ, size); }
int CShims_pipe_get_size(int fd) { return fcntl(fd, F_GETPIPE_SZ); }
int CShims_pipe_bytes_queued(int fd) {
    int n = 0;
    return ioctl(fd, FIONREAD, &n) < 0 ? -1 : n;
}

int CShims_socket_nonblock(int domain, int type) { return socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }
int CShims_accept4_nonblock(int fd) { return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); }
int CShims_accept4_nonblock_peer(int fd, struct sockaddr *addr, socklen_t *len) { return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC); }

int CShims_setns_net(int fd) { return setns(fd, CLONE_NEWNET); }

int CShims_setsockopt_int(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof(value));
}

int CShims_getsockopt_int(int fd, int level, int name, int *value) {
    socklen_t len = sizeof(*value);
    return getsockopt(fd, level, name, value, &len);
}

const int CShims_SO_REUSEPORT = SO_REUSEPORT;
const int CShims_SO_REUSEADDR = SO_REUSEADDR;
const int CShims_SO_ERROR = SO_ERROR;
const int CShims_SO_LINGER = SO_LINGER;
const int CShims_TCP_NODELAY = TCP_NODELAY;
/* <linux/in.h>'s value; glibc's <netinet/in.h> may not define it. */
const int CShims_IP_BIND_ADDRESS_NO_PORT = 24;
const int CShims_IP_TRANSPARENT = IP_TRANSPARENT;
const int CShims_TCP_FASTOPEN_CONNECT = TCP_FASTOPEN_CONNECT;

int CShims_pending_input(int fd, int *count) { return ioctl(fd, FIONREAD, count); }
const int CShims_IPV6_V6ONLY = IPV6_V6ONLY;
const int CShims_MSG_NOSIGNAL = MSG_NOSIGNAL;
const int CShims_SO_KEEPALIVE = SO_KEEPALIVE;
const int CShims_SO_BINDTODEVICE = SO_BINDTODEVICE;
const int CShims_TCP_KEEPIDLE = TCP_KEEPIDLE;
const int CShims_TCP_KEEPINTVL = TCP_KEEPINTVL;
const int CShims_TCP_KEEPCNT = TCP_KEEPCNT;
const int CShims_TCP_DEFER_ACCEPT = TCP_DEFER_ACCEPT;
const int CShims_TCP_FASTOPEN = TCP_FASTOPEN;
const int CShims_TCP_MAXSEG = TCP_MAXSEG;
const int CShims_TCP_USER_TIMEOUT = TCP_USER_TIMEOUT;

int CShims_bind_to_device(int fd, const char *name) {
    return setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, (socklen_t)strlen(name));
}

int CShims_make_foreign(int fd, int family) {
    int one = 1;
    int transparent = family == AF_INET6
        ? setsockopt(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, &one, sizeof(one))
        : setsockopt(fd, IPPROTO_IP, IP_TRANSPARENT, &one, sizeof(one));
    if (transparent == 0) return 0;
    int saved = errno;
    if (setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one)) == 0) return 0;
    errno = saved;
    return -1;
}

int CShims_set_affinity(const int *cpus, int count) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < count; i++) {
        if (cpus[i] >= 0 && cpus[i] < CPU_SETSIZE) CPU_SET(cpus[i], &set);
    }
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int CShims_get_affinity_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (pthread_getaffinity_np(pthread_self(), sizeof(set), &set) != 0) return -1;
    return CPU_COUNT(&set);
}

int CShims_set_thread_name(unsigned long thread, const char *name) {
    char cut[16];
    strncpy(cut, name, sizeof(cut) - 1);
    cut[sizeof(cut) - 1] = 0;
    return pthread_setname_np((pthread_t)thread, cut);
}

int CShims_set_linger_zero(int fd) {
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    return setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

int CShims_set_mark(int fd, unsigned int mark) {
    return setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
}

int CShims_set_tos(int fd, int tos) {
    struct sockaddr_storage local;
    socklen_t length = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &length) < 0) return -1;
    if (local.ss_family == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&local)->sin6_addr))
        return setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
    return setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
}

int CShims_tcp_info(int fd, uint32_t *out) {
    struct tcp_info info;
    socklen_t length = sizeof(info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) < 0) return -1;
    out[0] = info.tcpi_rtt;
    out[1] = info.tcpi_rttvar;
    out[2] = info.tcpi_unacked;
    out[3] = info.tcpi_sacked;
    out[4] = info.tcpi_retrans;
    out[5] = info.tcpi_fackets;
    out[6] = info.tcpi_lost;
    out[7] = info.tcpi_reordering;
    return 0;
}

int CShims_silence(int fd) {
    // What has arrived is read so that the quick ACK acknowledges it: a client retransmitting
    // unacknowledged data would otherwise draw a reset from the closed socket's successor.
    char sink[4096];
    while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0) {}
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
    if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &one, sizeof(one)) == 0) return 1;
    struct sockaddr_storage local;
    socklen_t length = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &length) == 0) {
        if (local.ss_family == AF_INET) setsockopt(fd, IPPROTO_IP, IP_TTL, &one, sizeof(one));
        if (local.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &one, sizeof(one));
    }
    return 0;
}

int CShims_eventfd_nonblock(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

const uint32_t CShims_IORING_CQE_F_MORE = IORING_CQE_F_MORE;

struct io_uring *CShims_uring_create(unsigned entries, int *error, int *flags_used) {
    struct io_uring *ring = calloc(1, sizeof(*ring));
    if (!ring) { *error = -ENOMEM; return NULL; }
    // Created disabled: with SINGLE_ISSUER the submitting thread is fixed when the ring is enabled,
    // and the ring is built on the starting thread but driven by its reactor's thread.
    unsigned flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED;
    int r = io_uring_queue_init(entries, ring, flags);
    if (r == -EINVAL) { flags = 0; r = io_uring_queue_init(entries, ring, flags); }
    if (r < 0) { free(ring); *error = r; return NULL; }
    *flags_used = (int)flags;
    return ring;
}

int CShims_uring_enable(struct io_uring *ring, int flags_used) {
    if (!(flags_used & IORING_SETUP_R_DISABLED)) return 0;
    // io_uring_enable_rings is declared by Debian's liburing 2.3 headers but not exported by its
    // library: make the register call directly.
    long r = syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    return r < 0 ? -errno : 0;
}

void CShims_uring_destroy(struct io_uring *ring) {
    io_uring_queue_exit(ring);
    free(ring);
}

static struct io_uring_sqe *sqe_for(struct io_uring *ring) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (!sqe) {
        io_uring_submit(ring);
        sqe = io_uring_get_sqe(ring);
    }
    return sqe;
}

int CShims_uring_poll_multishot(struct io_uring *ring, int fd, unsigned mask, uint64_t data) {
    struct io_uring_sqe *sqe = sqe_for(ring);
    if (!sqe) return -EBUSY;
    io_uring_prep_poll_multishot(sqe, fd, mask);
    io_uring_sqe_set_data64(sqe, data);
    return 0;
}

int CShims_uring_poll_remove(struct io_uring *ring, uint64_t target, uint64_t data) {
    struct io_uring_sqe *sqe = sqe_for(ring);
    if (!sqe) return -EBUSY;
    io_uring_prep_poll_remove(sqe, target);
    io_uring_sqe_set_data64(sqe, data);
    return 0;
}

int CShims_uring_submit_and_wait(struct io_uring *ring, int timeout_ms) {
    if (timeout_ms == 0) {
        int r = io_uring_submit_and_get_events(ring);
        return r < 0 ? r : 0;
    }
    struct io_uring_cqe *cqe = NULL;
    if (timeout_ms < 0) {
        int r = io_uring_submit_and_wait(ring, 1);
        return r < 0 ? r : 0;
    }
    struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
    int r = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
    return r < 0 ? r : 0;
}

unsigned CShims_uring_cq_ready(struct io_uring *ring) { return io_uring_cq_ready(ring); }

unsigned CShims_uring_reap(struct io_uring *ring, uint64_t *data, int32_t *result, uint32_t *flags, unsigned max) {
    struct io_uring_cqe *cqes[256];
    if (max > 256) max = 256;
    unsigned n = io_uring_peek_batch_cqe(ring, cqes, max);
    for (unsigned i = 0; i < n; i++) {
        data[i] = io_uring_cqe_get_data64(cqes[i]);
        result[i] = cqes[i]->res;
        flags[i] = cqes[i]->flags;
    }
    io_uring_cq_advance(ring, n);
    return n;
}

int CShims_uring_probe(void) {
    struct io_uring ring;
    if (io_uring_queue_init(2, &ring, 0) < 0) return 0;
    io_uring_queue_exit(&ring);
    return 1;
}
#endif

#ifdef __linux__
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

int CShims_spawn(const char *path, char *const argv[], char *const envp[], int *pid_out) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setsigmask(&attributes, &none);
    pid_t pid;
    int rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (rc != 0) { errno = rc; return -1; }
    *pid_out = pid;
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) {
        int saved = errno;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        errno = saved;
        return -1;
    }
    return pidfd;
}

int CShims_reap(int pidfd, int *code) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | WNOHANG) != 0) return -1;
    if (info.si_pid == 0) return 0;
    *code = info.si_code == CLD_EXITED ? info.si_status : -1;
    return 1;
}

int CShims_pidfd_signal(int pidfd, int sig) { return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0); }
#endif
