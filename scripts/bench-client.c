/*
 * ftbench: the load generator and kernel reference servers of scripts/bench.
 * Compiled by scripts/bench at run time (gcc -O2 -pthread); one JSON object
 * on stdout per client run. Every client mode runs in the client namespace.
 *
 *   ftbench lat     HOST PORT N WARMUP MSG      N round trips of MSG+"\n" on one
 *                                               connection, reply read up to "\n"
 *   ftbench udp     HOST PORT SECONDS SIZE WINDOW
 *                                               UDP echo pps: WINDOW datagrams of
 *                                               SIZE bytes outstanding
 *   ftbench bulk    HOST PORT SECONDS discard|echo
 *                                               one TCP connection, 64 KiB writes
 *   ftbench stream  HOST PORT SECONDS CLIENTS   CLIENTS connections, each an INCR
 *                                               closed loop; stall/lost/dup/reset
 *   ftbench conns   HOST PORT N                 opens N connections (one INCR each),
 *                                               prints "ready", holds them until
 *                                               stdin closes
 *   ftbench tcpecho ADDR PORT                   kernel reference: TCP echo server
 *   ftbench udpecho ADDR PORT                   kernel reference: UDP echo server
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "ftbench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds this process used so far (all threads): ",\"cpu_user_s\": U, \"cpu_sys_s\": S" */
static const char *cpu_json(void) {
    static char buf[96];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    snprintf(buf, sizeof buf, ", \"cpu_user_s\": %.3f, \"cpu_sys_s\": %.3f",
             (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    return buf;
}

static struct sockaddr_in addr_of(const char *host, const char *port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "ftbench: bad IPv4 address %s\n", host);
        exit(2);
    }
    return a;
}

static int tcp_connect(struct sockaddr_in *a, int timeout_s) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)a, sizeof *a) < 0) die("connect");
    return fd;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Line reader over a socket. */
struct reader {
    int fd;
    char buf[65536];
    size_t len, off;
};

/* Returns the line length (without "\n") copied to out, -1 on error (errno),
 * -2 on EOF. */
static long read_line(struct reader *r, char *out, size_t cap) {
    for (;;) {
        char *nl = memchr(r->buf + r->off, '\n', r->len - r->off);
        if (nl) {
            size_t n = (size_t)(nl - (r->buf + r->off));
            size_t c = n < cap - 1 ? n : cap - 1;
            memcpy(out, r->buf + r->off, c);
            out[c] = 0;
            r->off += n + 1;
            return (long)n;
        }
        if (r->off > 0) {
            memmove(r->buf, r->buf + r->off, r->len - r->off);
            r->len -= r->off;
            r->off = 0;
        }
        if (r->len == sizeof r->buf) { errno = EMSGSIZE; return -1; }
        ssize_t n = read(r->fd, r->buf + r->len, sizeof r->buf - r->len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) return -2;
        r->len += (size_t)n;
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *sorted, size_t n, double p) {
    if (n == 0) return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    if (i >= n) i = n - 1;
    return (double)sorted[i];
}

/* ---- lat ---------------------------------------------------------------- */

static int cmd_lat(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: ftbench lat HOST PORT N WARMUP MSG\n"); return 2; }
    struct sockaddr_in a = addr_of(argv[2], argv[3]);
    long n = atol(argv[4]), warm = atol(argv[5]);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s\n", argv[6]);
    size_t mlen = strlen(msg);
    int fd = tcp_connect(&a, 10);
    static struct reader r;
    r.fd = fd;
    uint64_t *lat = calloc((size_t)n, sizeof *lat);
    char line[4096];
    long prev = -1, nonmono = 0;
    for (long i = -warm; i < n; i++) {
        uint64_t t0 = mono_ns();
        if (write_all(fd, msg, mlen) < 0) die("write");
        long l = read_line(&r, line, sizeof line);
        uint64_t t1 = mono_ns();
        if (l == -2) { fprintf(stderr, "ftbench: EOF after %ld requests\n", i + warm); return 1; }
        if (l < 0) die("read");
        if (i >= 0) lat[i] = t1 - t0;
        char *end;
        long v = strtol(line, &end, 10);
        if (end != line) {
            if (prev >= 0 && v != prev + 1) nonmono++;
            prev = v;
        }
    }
    close(fd);
    double sum = 0;
    for (long i = 0; i < n; i++) sum += (double)lat[i];
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
    printf("{\"n\": %ld, \"median_us\": %.2f, \"p99_us\": %.2f, \"p999_us\": %.2f, \"mean_us\": %.2f, "
           "\"min_us\": %.2f, \"max_us\": %.2f, \"counter_gaps\": %ld%s}\n",
           n, pct(lat, (size_t)n, 0.5) / 1e3, pct(lat, (size_t)n, 0.99) / 1e3, pct(lat, (size_t)n, 0.999) / 1e3,
           sum / (double)n / 1e3, (double)lat[0] / 1e3, (double)lat[n - 1] / 1e3, nonmono, cpu_json());
    return 0;
}

/* ---- udp ---------------------------------------------------------------- */

static int cmd_udp(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: ftbench udp HOST PORT SECONDS SIZE WINDOW\n"); return 2; }
    struct sockaddr_in a = addr_of(argv[2], argv[3]);
    double secs = atof(argv[4]);
    size_t size = (size_t)atol(argv[5]);
    int window = atoi(argv[6]);
    if (size < 8) size = 8;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    enum { RING = 1 << 16 };
    static uint64_t sent_at[RING];
    static char pending[RING];
    char buf[65536], rbuf[65536];
    memset(buf, 'u', sizeof buf);
    /* A datagram without reply after 20 ms counts as lost and frees its window slot. */
    const uint64_t timeout_ns = 20 * 1000000ull;
    uint64_t seq = 0, oldest = 0, received = 0, late = 0, lost = 0, stray = 0;
    int outstanding = 0;
    uint64_t t0 = mono_ns(), end = t0 + (uint64_t)(secs * 1e9);
    uint64_t warm_end = t0 + (uint64_t)(secs * 1e9 * 0.1), warm_rx = 0, warm_t = t0;
    int warm_done = 0;
    for (;;) {
        uint64_t now = mono_ns();
        if (now >= end) break;
        if (!warm_done && now >= warm_end) { warm_done = 1; warm_rx = received; warm_t = now; }
        while (outstanding < window && seq - oldest < RING) {
            memcpy(buf, &seq, 8);
            if (send(fd, buf, size, 0) < 0) {
                if (errno == ECONNREFUSED || errno == ENOBUFS || errno == EAGAIN) break;
                die("send");
            }
            sent_at[seq % RING] = now;
            pending[seq % RING] = 1;
            seq++; outstanding++;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 5);
        now = mono_ns();
        if (r > 0) {
            for (;;) {
                ssize_t m = recv(fd, rbuf, sizeof rbuf, MSG_DONTWAIT);
                if (m < 0) break;
                uint64_t q;
                if ((size_t)m != size) { stray++; continue; }
                memcpy(&q, rbuf, 8);
                if (q >= seq || seq - q > RING) { stray++; continue; }
                if (pending[q % RING]) {
                    pending[q % RING] = 0;
                    outstanding--;
                    received++;
                } else {
                    late++;
                }
            }
        }
        while (oldest < seq && (!pending[oldest % RING] || now - sent_at[oldest % RING] > timeout_ns)) {
            if (pending[oldest % RING]) { pending[oldest % RING] = 0; outstanding--; lost++; }
            oldest++;
        }
    }
    uint64_t t1 = mono_ns();
    double el = (double)(t1 - warm_t) / 1e9;
    printf("{\"pps\": %.0f, \"seconds\": %.3f, \"sent\": %llu, \"received\": %llu, \"lost\": %llu, \"late\": %llu, "
           "\"stray\": %llu, \"size\": %zu, \"window\": %d%s}\n",
           (double)(received - warm_rx) / el, el, (unsigned long long)seq, (unsigned long long)received,
           (unsigned long long)lost, (unsigned long long)late, (unsigned long long)stray, size, window, cpu_json());
    return 0;
}

/* ---- bulk --------------------------------------------------------------- */

struct bulk {
    int fd;
    uint64_t end_ns;
    uint64_t sent;
    int err;
};

static void *bulk_sender(void *arg) {
    struct bulk *b = arg;
    static char chunk[65536];
    memset(chunk, 'b', sizeof chunk);
    while (mono_ns() < b->end_ns) {
        ssize_t w = write(b->fd, chunk, sizeof chunk);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            b->err = errno;
            break;
        }
        b->sent += (uint64_t)w;
    }
    shutdown(b->fd, SHUT_WR);
    return NULL;
}

static int cmd_bulk(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: ftbench bulk HOST PORT SECONDS discard|echo\n"); return 2; }
    struct sockaddr_in a = addr_of(argv[2], argv[3]);
    double secs = atof(argv[4]);
    int echo = strcmp(argv[5], "echo") == 0;
    int fd = tcp_connect(&a, 30);
    struct bulk b = {fd, 0, 0, 0};
    uint64_t t0 = mono_ns();
    b.end_ns = t0 + (uint64_t)(secs * 1e9);
    pthread_t th;
    pthread_create(&th, NULL, bulk_sender, &b);
    static char rbuf[262144];
    uint64_t got = 0;
    const char *close_kind = "fin";
    for (;;) {
        ssize_t n = read(fd, rbuf, sizeof rbuf);
        if (n < 0) {
            if (errno == EINTR) continue;
            close_kind = errno == ECONNRESET ? "rst" : (errno == EAGAIN ? "timeout" : "error");
            break;
        }
        if (n == 0) break;
        got += (uint64_t)n;
    }
    uint64_t t1 = mono_ns();
    pthread_join(th, NULL);
    close(fd);
    double el = (double)(t1 - t0) / 1e9;
    uint64_t bytes = echo ? got : b.sent;
    printf("{\"mode\": \"%s\", \"sent\": %llu, \"received\": %llu, \"seconds\": %.3f, \"mbit_s\": %.1f, "
           "\"close\": \"%s\", \"send_error\": %d%s}\n",
           echo ? "echo" : "discard", (unsigned long long)b.sent, (unsigned long long)got, el,
           (double)bytes * 8 / el / 1e6, close_kind, b.err, cpu_json());
    return 0;
}

/* ---- stream (failover) -------------------------------------------------- */

struct stream {
    struct sockaddr_in addr;
    double secs;
    int id;
    long *values;
    long nvalues, cap;
    uint64_t max_gap_ns;
    double max_gap_start_wall;
    /* every gap between replies longer than 2 ms: start (wall clock) and length */
    double gap_start[256];
    double gap_ms[256];
    int ngaps;
    const char *error;
    int err_errno;
};

static void *stream_run(void *arg) {
    struct stream *s = arg;
    int fd = tcp_connect(&s->addr, 5);
    struct reader *r = calloc(1, sizeof *r);
    r->fd = fd;
    char line[256];
    uint64_t t0 = mono_ns(), end = t0 + (uint64_t)(s->secs * 1e9), last = 0;
    double last_wall = 0;
    while (mono_ns() < end) {
        if (write_all(fd, "INCR\n", 5) < 0) { s->error = errno == ECONNRESET || errno == EPIPE ? "reset" : "write"; s->err_errno = errno; break; }
        long l = read_line(r, line, sizeof line);
        if (l == -2) { s->error = "eof"; break; }
        if (l < 0) {
            s->err_errno = errno;
            s->error = errno == ECONNRESET ? "reset" : (errno == EAGAIN ? "timeout" : "read");
            break;
        }
        uint64_t now = mono_ns();
        double w = wall_s();
        if (last != 0 && now - last > s->max_gap_ns) { s->max_gap_ns = now - last; s->max_gap_start_wall = last_wall; }
        if (last != 0 && now - last > 2000000 && s->ngaps < 256) {
            s->gap_start[s->ngaps] = last_wall;
            s->gap_ms[s->ngaps++] = (double)(now - last) / 1e6;
        }
        last = now;
        last_wall = w;
        if (s->nvalues == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 65536;
            s->values = realloc(s->values, (size_t)s->cap * sizeof(long));
        }
        s->values[s->nvalues++] = strtol(line, NULL, 10);
    }
    close(fd);
    return NULL;
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

static int cmd_stream(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: ftbench stream HOST PORT SECONDS CLIENTS\n"); return 2; }
    int k = atoi(argv[5]);
    struct stream *s = calloc((size_t)k, sizeof *s);
    pthread_t *th = calloc((size_t)k, sizeof *th);
    for (int i = 0; i < k; i++) {
        s[i].addr = addr_of(argv[2], argv[3]);
        s[i].secs = atof(argv[4]);
        s[i].id = i;
        pthread_create(&th[i], NULL, stream_run, &s[i]);
    }
    long total = 0;
    for (int i = 0; i < k; i++) { pthread_join(th[i], NULL); total += s[i].nvalues; }
    long *all = malloc((size_t)(total ? total : 1) * sizeof(long));
    long off = 0;
    for (int i = 0; i < k; i++) { memcpy(all + off, s[i].values, (size_t)s[i].nvalues * sizeof(long)); off += s[i].nvalues; }
    qsort(all, (size_t)total, sizeof(long), cmp_long);
    /* A fresh counter hands out 1, 2, 3, ...: every value exactly once. */
    long dups = 0, lost = 0, expect = 1;
    for (long i = 0; i < total; i++) {
        if (i > 0 && all[i] == all[i - 1]) { dups++; continue; }
        if (all[i] > expect) lost += all[i] - expect;
        expect = all[i] + 1;
    }
    int resets = 0, errors = 0;
    printf("{\"total\": %ld, \"lost\": %ld, \"duplicated\": %ld, \"max_value\": %ld, \"clients\": [", total, lost, dups,
           total ? all[total - 1] : 0);
    for (int i = 0; i < k; i++) {
        if (s[i].error) { errors++; if (strcmp(s[i].error, "reset") == 0 || strcmp(s[i].error, "eof") == 0) resets++; }
        printf("%s{\"requests\": %ld, \"max_stall_ms\": %.3f, \"stall_start_wall\": %.6f, \"error\": %s%s%s, \"errno\": %d, "
               "\"gaps\": [",
               i ? ", " : "", s[i].nvalues, (double)s[i].max_gap_ns / 1e6, s[i].max_gap_start_wall,
               s[i].error ? "\"" : "", s[i].error ? s[i].error : "null", s[i].error ? "\"" : "", s[i].err_errno);
        for (int g = 0; g < s[i].ngaps; g++)
            printf("%s[%.6f, %.3f]", g ? ", " : "", s[i].gap_start[g], s[i].gap_ms[g]);
        printf("]}");
    }
    printf("], \"resets\": %d, \"errors\": %d}\n", resets, errors);
    return 0;
}

/* ---- conns (memory) ----------------------------------------------------- */

static int cmd_conns(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: ftbench conns HOST PORT N\n"); return 2; }
    struct sockaddr_in a = addr_of(argv[2], argv[3]);
    int n = atoi(argv[4]);
    struct rlimit rl = {(rlim_t)n + 64, (rlim_t)n + 64};
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) die("setrlimit");
    int *fds = calloc((size_t)n, sizeof(int));
    struct reader *r = calloc(1, sizeof *r);
    char line[256];
    for (int i = 0; i < n; i++) {
        fds[i] = tcp_connect(&a, 10);
        r->fd = fds[i];
        r->len = r->off = 0;
        if (write_all(fds[i], "INCR\n", 5) < 0) die("write");
        if (read_line(r, line, sizeof line) < 0) die("read");
    }
    printf("ready %d\n", n);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {}
    for (int i = 0; i < n; i++) close(fds[i]);
    return 0;
}

/* ---- kernel reference servers ------------------------------------------- */

static int listen_on(const char *host, const char *port, int type) {
    struct sockaddr_in a = addr_of(host, port);
    int fd = socket(AF_INET, type, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (type == SOCK_STREAM && listen(fd, 1024) < 0) die("listen");
    return fd;
}

static int cmd_tcpecho(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: ftbench tcpecho ADDR PORT\n"); return 2; }
    signal(SIGCHLD, SIG_IGN);
    int lfd = listen_on(argv[2], argv[3], SOCK_STREAM);
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0) { if (errno == EINTR) continue; die("accept"); }
        pid_t p = fork();
        if (p == 0) {
            close(lfd);
            int one = 1;
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            static char buf[262144];
            for (;;) {
                ssize_t n = read(c, buf, sizeof buf);
                if (n <= 0) break;
                if (write_all(c, buf, (size_t)n) < 0) break;
            }
            _exit(0);
        }
        close(c);
    }
}

static int cmd_udpecho(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: ftbench udpecho ADDR PORT\n"); return 2; }
    int fd = listen_on(argv[2], argv[3], SOCK_DGRAM);
    static char buf[65536];
    for (;;) {
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        if (n < 0) { if (errno == EINTR) continue; die("recvfrom"); }
        sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
    }
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) goto usage;
    if (!strcmp(argv[1], "lat")) return cmd_lat(argc, argv);
    if (!strcmp(argv[1], "udp")) return cmd_udp(argc, argv);
    if (!strcmp(argv[1], "bulk")) return cmd_bulk(argc, argv);
    if (!strcmp(argv[1], "stream")) return cmd_stream(argc, argv);
    if (!strcmp(argv[1], "conns")) return cmd_conns(argc, argv);
    if (!strcmp(argv[1], "tcpecho")) return cmd_tcpecho(argc, argv);
    if (!strcmp(argv[1], "udpecho")) return cmd_udpecho(argc, argv);
usage:
    fprintf(stderr, "usage: ftbench lat|udp|bulk|stream|conns|tcpecho|udpecho ...\n");
    return 2;
}
