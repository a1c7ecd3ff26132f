/*
 * epoll_echo.c - the physical limit: a line-echo server in C, one process.
 *
 *   epoll_echo PORT [PROCESSES]     (binds 127.0.0.1:PORT; PROCESSES defaults to 1)
 *
 * Level-triggered epoll over a non-blocking listener and non-blocking
 * connections.  Whatever bytes arrive are written straight back, which for
 * a client that sends one line and waits for it is exactly "read a line,
 * write it back"; the connection is closed on EOF.  Output the socket does
 * not take at once waits in a per-connection buffer (the connection is then
 * watched for writability and not read), so a slow reader cannot make the
 * server block or lose bytes.  No greeting, no logging: this is what the
 * kernel's loopback allows one process to do, the ceiling for every
 * single-process peer and a yardstick for the pools.  With PROCESSES > 1
 * the listener is shared by that many processes, each with its own epoll
 * set waiting on it with EPOLLEXCLUSIVE (one woken per connection): what
 * the whole box can do, for the pools' connection-per-request cell.
 *
 * Build: cc -O2 -o epoll_echo epoll_echo.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct pending { /* unsent output of one connection */
    size_t len, off;
    char *data;
};

static struct pending *pend; /* indexed by fd */
static int pend_cap;
static int ep;

static void drop(int fd) {
    if (fd < pend_cap) { free(pend[fd].data); memset(&pend[fd], 0, sizeof pend[fd]); }
    close(fd); /* leaves the epoll set */
}

static void watch(int fd, unsigned events) {
    struct epoll_event ev = {.events = events, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

static int keep(int fd, const char *data, size_t len) { /* 0 ok, -1 no memory */
    if (fd >= pend_cap) {
        int cap = pend_cap ? pend_cap : 1024;
        while (cap <= fd) cap *= 2;
        struct pending *p = realloc(pend, (size_t)cap * sizeof *p);
        if (!p) return -1;
        memset(p + pend_cap, 0, (size_t)(cap - pend_cap) * sizeof *p);
        pend = p;
        pend_cap = cap;
    }
    struct pending *p = &pend[fd];
    char *d = malloc(len);
    if (!d) return -1;
    memcpy(d, data, len);
    p->data = d, p->len = len, p->off = 0;
    watch(fd, EPOLLOUT);
    return 0;
}

static void flush(int fd) {
    struct pending *p = &pend[fd];
    while (p->off < p->len) {
        ssize_t w = send(fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);
        if (w > 0) { p->off += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return;
        drop(fd);
        return;
    }
    free(p->data);
    memset(p, 0, sizeof *p);
    watch(fd, EPOLLIN | EPOLLRDHUP);
}

static void echo(int fd) {
    static char buf[65536];
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) { drop(fd); return; }
    if (r < 0) return;
    size_t off = 0;
    while (off < (size_t)r) {
        ssize_t w = send(fd, buf + off, (size_t)r - off, MSG_NOSIGNAL);
        if (w > 0) { off += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) { if (keep(fd, buf + off, (size_t)r - off)) drop(fd); return; }
        drop(fd);
        return;
    }
}

int main(int argc, char **argv) {
    int processes = argc > 2 ? atoi(argv[2]) : 1;
    if (argc < 2 || argc > 3 || processes < 1) { fprintf(stderr, "usage: epoll_echo PORT [PROCESSES]\n"); return 2; }
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, SOMAXCONN) < 0) {
        perror("epoll_echo: bind/listen");
        return 1;
    }
    while (--processes > 0 && fork() > 0) /* the parent serves too; stopped with its process group */
        ;
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
            } else if (events[i].events & EPOLLOUT) {
                flush(fd);
            } else {
                echo(fd);
            }
        }
    }
}
