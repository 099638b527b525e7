/* The benchmark's workload: one static program, many modes. Each mode times itself with
 * CLOCK_MONOTONIC (so the start-up of whatever runs it is excluded) and prints one number on
 * its last line of output. Built by `jailer bench` with `cc -static -O2`.
 *
 *   true                      exit 0 at once
 *   idle                      sleep until killed (an idle jail's command)
 *   cpu N                     N x (fill 4096 ints from a PRNG, qsort, checksum)  -> ms
 *   alu N                     N rounds of an integer hash (xorshift64*)         -> ms
 *   syscall N                 N getppid() system calls                         -> ns/call
 *   membw MIB ROUNDS          memcpy of a MIB-MiB buffer, ROUNDS times          -> MB/s
 *   fileio DIR MIB            write DIR/bench.io in 1 MiB blocks, read it back  -> MB/s
 *   files DIR N               N x (create, write 4 KiB, close, stat, unlink)    -> us/file
 *   tcp-server PORT           serve stream and echo clients, forever
 *   tcp-stream HOST PORT MIB  send MIB MiB, wait for the server's ack           -> MB/s
 *   tcp-rr HOST PORT N        N 1-byte request/response round trips            -> us/rt
 * HOST "self": fork a one-connection server on 127.0.0.1 first (this namespace's loopback);
 * PORT is then ignored.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "bench: %s: %s\n", what, strerror(errno));
    exit(1);
}

static long num(const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v <= 0) {
        fprintf(stderr, "bench: %s: expected a positive number\n", s);
        exit(2);
    }
    return v;
}

static int port_num(const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > 65535) {
        fprintf(stderr, "bench: %s: expected a port number\n", s);
        exit(2);
    }
    return (int)v;
}

/* A tight ALU loop: what any translator (qemu's TCG) handles best. */
static int alu(long n) {
    uint64_t x = 88172645463325252ull, sum = 0;
    double t0 = now();
    for (long i = 0; i < n; i++) {
        x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
        sum += x * 2685821657736338717ull;
    }
    double dt = now() - t0;
    printf("checksum %llu\n%.3f\n", (unsigned long long)sum, dt * 1e3);
    return 0;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Everyday integer code: fill an array from a PRNG, qsort it (branches, calls through a
 * function pointer, loads and stores), fold a checksum; N rounds of 4096 elements. */
static int cpu(long n) {
    static uint32_t a[4096];
    uint64_t x = 88172645463325252ull, sum = 0;
    double t0 = now();
    for (long r = 0; r < n; r++) {
        for (int i = 0; i < 4096; i++) {
            x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
            a[i] = (uint32_t)((x * 2685821657736338717ull) >> 32);
        }
        qsort(a, 4096, sizeof a[0], cmp_u32);
        for (int i = 0; i < 4096; i += 64) sum += a[i] * (uint64_t)i;
    }
    double dt = now() - t0;
    printf("checksum %llu\n%.3f\n", (unsigned long long)sum, dt * 1e3);
    return 0;
}

static int sys_loop(long n) {
    double t0 = now();
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    printf("%.3f\n", (now() - t0) * 1e9 / n);
    return 0;
}

static int membw(long mib, long rounds) {
    size_t len = (size_t)mib << 20;
    char *a = malloc(len), *b = malloc(len);
    if (!a || !b) die("malloc");
    memset(a, 1, len);
    memset(b, 2, len);  /* fault every page in before the clock starts */
    double t0 = now();
    for (long r = 0; r < rounds; r++) {
        memcpy(r & 1 ? a : b, r & 1 ? b : a, len);
    }
    double dt = now() - t0;
    printf("check %d\n%.1f\n", a[len / 2] + b[len / 3], (double)len * rounds / dt / 1e6);
    return 0;
}

static int fileio(const char *dir, long mib) {
    char path[4096], *buf = malloc(1 << 20);
    if (!buf) die("malloc");
    memset(buf, 'x', 1 << 20);
    snprintf(path, sizeof path, "%s/bench.io", dir);
    double t0 = now();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die(path);
    for (long i = 0; i < mib; i++)
        if (write(fd, buf, 1 << 20) != 1 << 20) die("write");
    if (close(fd) < 0) die("close");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die(path);
    ssize_t got;
    long total = 0;
    while ((got = read(fd, buf, 1 << 20)) > 0) total += got;
    if (got < 0) die("read");
    close(fd);
    double dt = now() - t0;
    if (unlink(path) < 0) die("unlink");
    if (total != mib << 20) { fprintf(stderr, "bench: short read\n"); return 1; }
    printf("%.1f\n", 2.0 * (mib << 20) / dt / 1e6);  /* bytes written + read per second */
    return 0;
}

static int files(const char *dir, long n) {
    char path[4096], buf[4096];
    struct stat st;
    memset(buf, 'y', sizeof buf);
    double t0 = now();
    for (long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/f%ld", dir, i % 64);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) die(path);
        if (write(fd, buf, sizeof buf) != sizeof buf) die("write");
        close(fd);
        if (stat(path, &st) < 0) die("stat");
        if (unlink(path) < 0) die("unlink");
    }
    printf("%.3f\n", (now() - t0) * 1e6 / n);
    return 0;
}

/* ── TCP ──────────────────────────────────────────────────────────────────────────────── */
static void full_write(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno == EINTR) continue; die("write"); }
        p += w; n -= w;
    }
}

static int full_read(int fd, char *p, size_t n) {
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0) { if (errno == EINTR) continue; die("read"); }
        if (r == 0) return -1;
        p += r; n -= r;
    }
    return 0;
}

static void serve(int c) {
    static char buf[1 << 16];
    int one = 1;
    char mode;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (full_read(c, &mode, 1) < 0) return;
    if (mode == 'S') {  /* stream: swallow until EOF from the client's shutdown, then ack */
        ssize_t r;
        while ((r = read(c, buf, sizeof buf)) > 0) {}
        full_write(c, "k", 1);
    } else {            /* echo one byte at a time */
        char b;
        while (full_read(c, &b, 1) == 0) full_write(c, &b, 1);
    }
}

static int listener(int port, int *bound) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    socklen_t len = sizeof a;
    int one = 1, s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) die("socket");
    a.sin_addr.s_addr = htonl(port ? INADDR_ANY : INADDR_LOOPBACK);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(s, 16) < 0) die("listen");
    getsockname(s, (struct sockaddr *)&a, &len);
    *bound = ntohs(a.sin_port);
    return s;
}

static void tcp_server(int port) __attribute__((noreturn));
static void tcp_server(int port) {
    int bound, s = listener(port, &bound);
    signal(SIGPIPE, SIG_IGN);
    fprintf(stderr, "bench: listening on port %d\n", bound);
    for (;;) {
        int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) { if (errno == EINTR) continue; die("accept"); }
        serve(c);
        close(c);
    }
}

/* Connect, retrying for up to 10 s while the server comes up. */
static int dial(const char *host, int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    int one = 1;
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "bench: %s: not an IPv4 address\n", host);
        exit(2);
    }
    for (int tries = 0;; tries++) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) die("socket");
        if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
            struct timeval limit = {.tv_sec = 30};  /* a vanished link fails, never hangs */
            setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
            setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
            return s;
        }
        close(s);
        if (tries >= 1000) die("connect");
        usleep(10000);
    }
}

static int tcp_client(const char *host, int port, char mode, long n) {
    pid_t child = 0;
    if (strcmp(host, "self") == 0) {
        int s = listener(0, &port);
        child = fork();
        if (child < 0) die("fork");
        if (child == 0) {
            int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
            if (c < 0) die("accept");
            serve(c);
            _exit(0);
        }
        close(s);
        host = "127.0.0.1";
    }
    int s = dial(host, port);
    double dt;
    if (mode == 'S') {
        static char buf[1 << 16];
        long total = n << 20;
        char ack;
        memset(buf, 'z', sizeof buf);
        double t0 = now();
        full_write(s, "S", 1);
        for (long sent = 0; sent < total; sent += sizeof buf) full_write(s, buf, sizeof buf);
        shutdown(s, SHUT_WR);
        if (full_read(s, &ack, 1) < 0) { fprintf(stderr, "bench: no ack\n"); return 1; }
        dt = now() - t0;
        printf("%.1f\n", (double)total / dt / 1e6);
    } else {
        char b = 'p';
        full_write(s, "R", 1);
        double t0 = now();
        for (long i = 0; i < n; i++) {
            full_write(s, &b, 1);
            if (full_read(s, &b, 1) < 0) { fprintf(stderr, "bench: closed\n"); return 1; }
        }
        dt = now() - t0;
        printf("%.3f\n", dt * 1e6 / n);
    }
    close(s);
    if (child > 0) waitpid(child, NULL, 0);
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: bench true | idle | cpu N | alu N | syscall N | membw MIB ROUNDS"
                    " | fileio DIR MIB | files DIR N | tcp-server PORT | tcp-stream HOST PORT MIB"
                    " | tcp-rr HOST PORT N\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    const char *m = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(m, "true")) return 0;
    if (!strcmp(m, "idle")) for (;;) pause();
    if (!strcmp(m, "cpu") && argc == 3) return cpu(num(argv[2]));
    if (!strcmp(m, "alu") && argc == 3) return alu(num(argv[2]));
    if (!strcmp(m, "syscall") && argc == 3) return sys_loop(num(argv[2]));
    if (!strcmp(m, "membw") && argc == 4) return membw(num(argv[2]), num(argv[3]));
    if (!strcmp(m, "fileio") && argc == 4) return fileio(argv[2], num(argv[3]));
    if (!strcmp(m, "files") && argc == 4) return files(argv[2], num(argv[3]));
    if (!strcmp(m, "tcp-server") && argc == 3) tcp_server(port_num(argv[2]));
    if (!strcmp(m, "tcp-stream") && argc == 5)
        return tcp_client(argv[2], port_num(argv[3]), 'S', num(argv[4]));
    if (!strcmp(m, "tcp-rr") && argc == 5)
        return tcp_client(argv[2], port_num(argv[3]), 'R', num(argv[4]));
    usage();
    return 2;
}
