/*
 * echoload.c - load generator for line-echo servers (netserver's benchmark).
 *
 *   echoload [-c CONNS] [-k LINES] [-d SECONDS] [-t TIMEOUT] [-s BYTES] [-n MAX] [-a SOURCES] HOST PORT
 *   echoload --probe [-d SECONDS] HOST PORT
 *
 * CONNS client connections run at once, each in a loop: connect, then LINES
 * times "send one line, wait until exactly that line comes back", then close
 * and connect again.  LINES=1 is one connection per request (connection
 * rate); LINES=100 is mostly request rate.  One thread, one epoll set,
 * non-blocking sockets: the client must cost far less than the servers it
 * drives, which is checked by printing its own CPU time.
 *
 * The run ends at SECONDS sharp (replies still in flight then are neither
 * counted nor errors) or after MAX completed requests (-n, for profiling a
 * fixed amount of work); an alarm at SECONDS+3 kills the process whatever
 * happens, so a harness can never hang on it.
 *
 * -a SOURCES (IPv4 loopback only): connect from 127.0.0.1 .. 127.0.0.SOURCES in turn.  Every
 * connection the client closes leaves a TIME_WAIT socket on its side for 60 s, and at more than
 * ~14,000 connections a second from one address connect() spends its time searching the
 * ephemeral ports for a free one (the client, not the server, sets the rate); each source address
 * has a port space of its own, as real clients on many hosts do.
 *
 * Errors are counted by kind, never waited on:
 *   refused   connect() failed with ECONNREFUSED (no listener, queue full)
 *   reset     ECONNRESET / EPIPE on any operation
 *   eof       the server closed before the whole reply came back
 *   mismatch  the reply is not the line that was sent
 *   timeout   connect, or one request, took longer than TIMEOUT
 *   other     any other errno (EADDRNOTAVAIL: out of ephemeral ports, ...)
 * A connection that failed waits 10 ms and connects again.
 *
 * Output, one line on stdout:
 *   RESULT requests=N rate=R/s refused=.. reset=.. eof=.. mismatch=.. timeout=.. other=..
 *          errors=.. connections=.. p50_us=.. p99_us=.. max_us=.. cpu_user=.. cpu_sys=.. first_error=..
 * Exit status 0 without errors, 1 with, 2 on bad usage.
 *
 * --probe: connect, send one line, expect it back; retried every 20 ms
 * until it works (exit 0, "PROBE ok ms=..") or SECONDS pass (exit 1).
 *
 * Build: cc -O2 -o echoload echoload.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24 /* Linux 4.2; older C libraries lack the name */
#endif

#define LINE_MAX_BYTES 4096
#define BACKOFF_NS 10000000ull /* 10 ms after an error */

enum phase { P_OFF, P_CONNECT, P_REPLY, P_PAUSE };
enum err { E_REFUSED, E_RESET, E_EOF, E_MISMATCH, E_TIMEOUT, E_OTHER, E_KINDS };
static const char *err_names[E_KINDS] = {"refused", "reset", "eof", "mismatch", "timeout", "other"};

struct client {
    int fd;
    enum phase phase;
    unsigned id;
    unsigned done;         /* requests answered on this connection */
    uint64_t serial;       /* requests sent by this client, ever */
    uint64_t started;      /* ns: when the current request (or connect) began */
    uint64_t deadline;     /* ns: timeout of the phase, or end of the pause */
    size_t got;            /* reply bytes received so far */
    char line[LINE_MAX_BYTES];
    char reply[LINE_MAX_BYTES + 64];
};

/* settings */
static int conns = 50, lines = 1, size = 16;
static double seconds = 5.0, timeout_s = 3.0;
static uint64_t max_requests;
static struct sockaddr_storage addr;
static socklen_t addrlen;
static int family;
static int sources = 1;        /* -a: source addresses 127.0.0.1 .. 127.0.0.<sources> */
static unsigned next_source;

/* state and counters */
static int ep;
static size_t line_len;
static uint64_t timeout_ns;
static uint64_t requests, connections, errors[E_KINDS];
static char first_error[96];

/* latency: 1 us steps below 1 ms, 10 us below 10 ms, 100 us below 100 ms, 1 ms below 10 s */
#define LAT_BUCKETS (1000 + 900 + 900 + 9900 + 1)
static uint64_t lat[LAT_BUCKETS], lat_max;

static void lat_add(uint64_t us) {
    size_t i;
    if (us < 1000) i = us;
    else if (us < 10000) i = 1000 + (us - 1000) / 10;
    else if (us < 100000) i = 1900 + (us - 10000) / 100;
    else if (us < 10000000) i = 2800 + (us - 100000) / 1000;
    else i = LAT_BUCKETS - 1;
    lat[i]++;
    if (us > lat_max) lat_max = us;
}

static uint64_t lat_bucket_top(size_t i) {
    if (i < 1000) return i;
    if (i < 1900) return 1000 + (i - 1000) * 10 + 9;
    if (i < 2800) return 10000 + (i - 1900) * 100 + 99;
    if (i < LAT_BUCKETS - 1) return 100000 + (i - 2800) * 1000 + 999;
    return lat_max;
}

static uint64_t lat_percentile(double p) {
    uint64_t total = 0, seen = 0;
    for (size_t i = 0; i < LAT_BUCKETS; i++) total += lat[i];
    if (!total) return 0;
    uint64_t rank = (uint64_t)(p * (double)total);
    if (rank >= total) rank = total - 1;
    for (size_t i = 0; i < LAT_BUCKETS; i++) {
        seen += lat[i];
        if (seen > rank) {
            uint64_t v = lat_bucket_top(i);
            return v < lat_max ? v : lat_max;
        }
    }
    return lat_max;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void count_error(enum err kind, const char *where, int code) {
    errors[kind]++;
    if (!first_error[0]) {
        snprintf(first_error, sizeof first_error, "%s/%s", where, code ? strerror(code) : err_names[kind]);
        for (char *p = first_error; *p; p++)
            if (*p == ' ') *p = '_'; /* one key=value token */
    }
}

static enum err kind_of(int code) {
    switch (code) {
    case ECONNREFUSED: return E_REFUSED;
    case ECONNRESET: case EPIPE: return E_RESET;
    case ETIMEDOUT: return E_TIMEOUT;
    default: return E_OTHER;
    }
}

static void hang_up(struct client *c) {
    if (c->fd >= 0) close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    c->phase = P_OFF;
}

static void fail(struct client *c, enum err kind, const char *where, int code, uint64_t now) {
    count_error(kind, where, code);
    hang_up(c);
    c->phase = P_PAUSE;
    c->deadline = now + BACKOFF_NS;
}

/* The payload: client id and serial in hex, padded with letters, then '\n'. */
static void make_line(struct client *c) {
    char head[32];
    int n = snprintf(head, sizeof head, "%x:%llx:", c->id, (unsigned long long)c->serial);
    for (int i = 0; i < size; i++) c->line[i] = i < n ? head[i] : (char)('a' + i % 26);
    c->line[size] = '\n';
}

static void send_request(struct client *c, uint64_t now) {
    c->serial++;
    make_line(c);
    if (c->done) c->started = now; /* the first request's clock started at connect */
    c->deadline = now + timeout_ns;
    c->got = 0;
    c->phase = P_REPLY;
    /* A line this short always fits the empty send buffer of a connected socket. */
    ssize_t w = send(c->fd, c->line, line_len, MSG_NOSIGNAL);
    if (w == (ssize_t)line_len) return;
    if (w >= 0) fail(c, E_OTHER, "send", EAGAIN, now);
    else fail(c, kind_of(errno), "send", errno, now);
}

static void open_connection(struct client *c, uint64_t now) {
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { fail(c, E_OTHER, "socket", errno, now); return; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    if (sources > 1) {
        /* The port is chosen at connect(), for the whole 4-tuple (IP_BIND_ADDRESS_NO_PORT). */
        struct sockaddr_in source = {.sin_family = AF_INET};
        source.sin_addr.s_addr = htonl(0x7f000001u + next_source++ % (unsigned)sources);
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&source, sizeof source) < 0) {
            fail(c, E_OTHER, "bind", errno, now);
            return;
        }
    }
    c->done = 0;
    c->started = now;
    c->deadline = now + timeout_ns;
    /* Edge-triggered, both directions, registered once for the connection's life. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) { fail(c, E_OTHER, "epoll_ctl", errno, now); return; }
    if (connect(fd, (struct sockaddr *)&addr, addrlen) == 0) {
        connections++;
        send_request(c, now);
    } else if (errno == EINPROGRESS) {
        c->phase = P_CONNECT;
    } else {
        fail(c, kind_of(errno), "connect", errno, now);
    }
}

static void connected(struct client *c, uint64_t now) {
    int code = 0;
    socklen_t len = sizeof code;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &code, &len) < 0) code = errno;
    if (code) { fail(c, kind_of(code), "connect", code, now); return; }
    connections++;
    send_request(c, now);
}

static void answered(struct client *c, uint64_t now) {
    lat_add((now - c->started) / 1000);
    requests++;
    c->done++;
    if ((int)c->done < lines) {
        send_request(c, now);
    } else {
        hang_up(c);
        open_connection(c, now);
    }
}

static void read_reply(struct client *c, uint64_t now) {
    for (;;) {
        ssize_t r = recv(c->fd, c->reply + c->got, sizeof c->reply - c->got, 0);
        if (r > 0) {
            size_t before = c->got;
            c->got += (size_t)r;
            if (c->got < line_len) {
                if (memchr(c->reply + before, '\n', (size_t)r)) { fail(c, E_MISMATCH, "reply", 0, now); return; }
                continue;
            }
            if (c->got > line_len || memcmp(c->reply, c->line, line_len) != 0) {
                fail(c, E_MISMATCH, "reply", 0, now);
                return;
            }
            answered(c, now); /* the next reply, if any, is a new edge */
            return;
        }
        if (r == 0) { fail(c, E_EOF, "reply", 0, now); return; }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return;
        fail(c, kind_of(errno), "recv", errno, now);
        return;
    }
}

static void on_event(struct client *c, uint32_t events, uint64_t now) {
    if (c->phase == P_CONNECT) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        connected(c, now);
        if (c->phase != P_REPLY) return;
        /* Fall through: the reply may already be here (same edge). */
    }
    if (c->phase == P_REPLY && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        read_reply(c, now);
}

static void check_clocks(struct client *all, uint64_t now) {
    for (int i = 0; i < conns; i++) {
        struct client *c = &all[i];
        if (c->phase == P_PAUSE) {
            if (now >= c->deadline) open_connection(c, now);
        } else if (c->phase != P_OFF && now >= c->deadline) {
            fail(c, E_TIMEOUT, c->phase == P_CONNECT ? "connect" : "reply", 0, now);
        }
    }
}

static int resolve(const char *host, const char *port) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int r = getaddrinfo(host, port, &hints, &res);
    if (r) { fprintf(stderr, "echoload: %s port %s: %s\n", host, port, gai_strerror(r)); return -1; }
    memcpy(&addr, res->ai_addr, res->ai_addrlen);
    addrlen = res->ai_addrlen;
    family = res->ai_family;
    freeaddrinfo(res);
    return 0;
}

/* --probe: one blocking round trip at a time until one succeeds. */
static int probe(void) {
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
    static const char ping[] = "probe line\n";
    int tries = 0;
    while (now_ns() < end) {
        tries++;
        int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct timeval tv = {.tv_sec = 1};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        char buf[64];
        size_t got = 0;
        if (connect(fd, (struct sockaddr *)&addr, addrlen) == 0 &&
            send(fd, ping, sizeof ping - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof ping - 1)) {
            while (got < sizeof ping - 1) {
                ssize_t r = recv(fd, buf + got, sizeof buf - got, 0);
                if (r <= 0) break;
                got += (size_t)r;
            }
        }
        close(fd);
        if (got == sizeof ping - 1 && memcmp(buf, ping, got) == 0) {
            printf("PROBE ok ms=%.1f tries=%d\n", (double)(now_ns() - t0) / 1e6, tries);
            return 0;
        }
        usleep(20000);
    }
    printf("PROBE failed ms=%.1f tries=%d\n", (double)(now_ns() - t0) / 1e6, tries);
    return 1;
}

static void usage(void) {
    fprintf(stderr,
            "usage: echoload [-c conns] [-k lines_per_conn] [-d seconds] [-t timeout] [-s bytes] [-n max_requests]\n"
            "                [-a source_addresses] HOST PORT\n"
            "       echoload --probe [-d seconds] HOST PORT\n");
    exit(2);
}

int main(int argc, char **argv) {
    int probing = 0, i;
    const char *pos[2];
    int npos = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--probe")) { probing = 1; continue; }
        if (a[0] == '-' && a[1] && !a[2] && strchr("ckdtsna", a[1])) {
            if (!v) usage();
            i++;
            switch (a[1]) {
            case 'c': conns = atoi(v); break;
            case 'k': lines = atoi(v); break;
            case 'd': seconds = atof(v); break;
            case 't': timeout_s = atof(v); break;
            case 's': size = atoi(v); break;
            case 'n': max_requests = strtoull(v, NULL, 10); break;
            case 'a': sources = atoi(v); break;
            }
            continue;
        }
        if (a[0] == '-' || npos == 2) usage();
        pos[npos++] = a;
    }
    if (npos != 2 || conns < 1 || lines < 1 || seconds <= 0 || timeout_s <= 0 || size < 8 ||
        size >= LINE_MAX_BYTES || sources < 1 || sources > 254)
        usage();
    if (resolve(pos[0], pos[1])) return 2;
    if (sources > 1 && family != AF_INET) {
        fprintf(stderr, "echoload: -a needs an IPv4 server address (127.0.0.1)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)seconds + 3); /* the safety net: default action ends the process */
    if (probing) return probe();

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)conns + 32) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    line_len = (size_t)size + 1;
    timeout_ns = (uint64_t)(timeout_s * 1e9);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct client *all = calloc((size_t)conns, sizeof *all);
    if (ep < 0 || !all) { perror("echoload"); return 2; }

    uint64_t start = now_ns(), stop = start + (uint64_t)(seconds * 1e9), last_check = start;
    for (i = 0; i < conns; i++) {
        all[i].fd = -1;
        all[i].id = (unsigned)i;
        open_connection(&all[i], start);
    }
    struct epoll_event events[256];
    for (;;) {
        uint64_t now = now_ns();
        if (now >= stop || (max_requests && requests >= max_requests)) break;
        uint64_t left_ms = (stop - now) / 1000000 + 1;
        int n = epoll_wait(ep, events, 256, left_ms < 5 ? (int)left_ms : 5);
        if (n < 0 && errno != EINTR) { perror("epoll_wait"); return 2; }
        now = now_ns();
        if (now >= stop) break; /* nothing completed after the bell counts */
        for (i = 0; i < n; i++) on_event(events[i].data.ptr, events[i].events, now);
        if (now - last_check >= 5000000ull || n <= 0) {
            last_check = now;
            check_clocks(all, now);
        }
    }
    uint64_t end = now_ns();
    for (i = 0; i < conns; i++) hang_up(&all[i]);

    double window = max_requests && end < stop ? (double)(end - start) / 1e9 : seconds;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    uint64_t total_errors = 0;
    for (i = 0; i < E_KINDS; i++) total_errors += errors[i];
    printf("RESULT requests=%llu rate=%.1f", (unsigned long long)requests, (double)requests / window);
    for (i = 0; i < E_KINDS; i++) printf(" %s=%llu", err_names[i], (unsigned long long)errors[i]);
    printf(" errors=%llu connections=%llu seconds=%.3f p50_us=%llu p99_us=%llu max_us=%llu"
           " cpu_user=%.3f cpu_sys=%.3f first_error=%s\n",
           (unsigned long long)total_errors, (unsigned long long)connections, window,
           (unsigned long long)lat_percentile(0.50), (unsigned long long)lat_percentile(0.99),
           (unsigned long long)lat_max,
           ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
           first_error[0] ? first_error : "-");
    fflush(stdout);
    return total_errors ? 1 : 0;
}
