/* jailer-monitor: the one small process that stays on the host while a named jail runs.
 *
 * Usage (exec'd by the runtime, which is a child subreaper and the parent of the container's
 * pid 1; both facts survive the execve):
 *
 *   jailer-monitor --pid PID --dir DIR [--pty-fd N] [--log FILE] [--log-max BYTES]
 *                  [-- CMD ARGS...]
 *
 *   --pid PID        the container's pid 1; must be a child of this process
 *   --dir DIR        the jail's runtime state dir (exists, owned by the caller)
 *   --pty-fd N       inherited fd: the master of the container's pty. Everything read from it
 *                    goes to FILE, to a 16 KiB ring buffer (the "current screen") and to every
 *                    console client. It is always read, so the container never blocks on a
 *                    full pty even with nobody attached.
 *   --log FILE       append the pty output to FILE (O_APPEND|O_CREAT, 0600); a FILE never
 *                    grows past --log-max: it is then renamed to FILE.1 (replacing the old
 *                    one) and a new FILE is started. Ignored without --pty-fd.
 *   --log-max BYTES  default 1 MiB.
 *   -- CMD ARGS...   run after the container ended, by execvp in this same process (same pid,
 *                    still the subreaper), with fds 0-2 as they are and all others closed, no
 *                    signal blocked or pending, SIGPIPE and SIGXFSZ as they were at start.
 *   Flags may also be written --flag=VALUE.
 *
 * Console (only with --pty-fd): a unix stream socket DIR/console.sock (mode 0600, a stale one
 * is replaced), any number of clients (up to MAX_CLIENTS at once; more are refused). A new
 * client first receives the ring buffer, then every new output byte. A client that cannot keep
 * up (more than OUT_CAP bytes pending) is dropped; the monitor never blocks on a client.
 * Client -> monitor frames: 1 byte type, 2 bytes length (little endian), payload:
 *   'i'  input bytes, written to the pty master
 *   'w'  8 bytes: rows, cols, xpixel, ypixel (u16 LE each) -> TIOCSWINSZ on the master
 *   other types are skipped.
 *
 * Signals: SIGTERM, SIGINT, SIGHUP and SIGQUIT sent to the monitor are forwarded to PID;
 * SIGPIPE and SIGXFSZ (a log write past RLIMIT_FSIZE) are ignored. Every child is reaped
 * (orphans of the container land here, the monitor being a subreaper). A caller that blocks
 * SIGTERM, SIGINT, SIGHUP, SIGQUIT and SIGCHLD before its execv loses none of them (a blocked
 * signal stays pending across execve; unblocked, one arriving before the monitor has set up
 * would kill it).
 *
 * A stale DIR/exit is removed at start. When PID exits: the pty output still in flight is
 * drained to the log and the clients (at most DRAIN_MS), console.sock is removed, DIR/exit is
 * written atomically (via DIR/exit.tmp) as two lines:
 *   "exit CODE" or "signal N", then the CLOCK_REALTIME time of the exit ("SECONDS.MICROS"),
 * the clients are flushed (best effort, at most DRAIN_MS) and closed. Then CMD is exec'd, or
 * the monitor exits with the container's status (128+N for signal N). Children still alive
 * then are inherited by CMD.
 *
 * Fds inherited besides 0-2 and the pty are kept while the jail runs (Python makes its fds
 * close-on-exec, so only ones passed on purpose get here) and closed before CMD.
 * Bad flags: one line on stderr, exit 125, nothing touched. Later failures (log, socket) only
 * lose that feature: the container keeps running and is still waited for.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER 0x5441
#endif

#define RING_SIZE (16 * 1024)
#define MAX_CLIENTS 64
#define OUT_CAP (64 * 1024) /* per client: pending output before it is dropped */
#define IN_CAP 4096         /* per client: one read of input frames */
#define CHUNK 4096
#define DRAIN_MS 100

struct client {
    int fd;
    unsigned char *mem; /* mmap'd: OUT_CAP bytes of output, then IN_CAP bytes of input */
    uint32_t out_start, out_end;
    uint16_t in_off, in_len;
    uint8_t hdr[3], hdr_len; /* frame header being read; == 3 while in a payload */
    uint16_t left;           /* payload bytes still to come */
    uint8_t ws[8], ws_len;
    uint8_t hup;     /* peer hung up while its input was stalled */
    uint8_t no_out;  /* peer cannot receive any more; its input is still read until EOF */
};

static pid_t child;
static int exited, status;
static struct timespec exit_time;

static int dir_fd = -1, master = -1, slave_hold = -1, listen_fd = -1, sig_fd = -1;
static int log_fd = -1;
static const char *log_path;
static char log_old[PATH_MAX];
static unsigned long long log_max = 1 << 20, log_size;

static unsigned char ring[RING_SIZE];
static size_t ring_head, ring_len;

static struct client clients[MAX_CLIENTS];
static int nclients;

static void say(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
    buf[n++] = '\n';
    while (write(2, buf, n) < 0 && errno == EINTR) {}
}

#define fail(...) do { say("jailer-monitor: " __VA_ARGS__); exit(125); } while (0)

static long long number(const char *flag, const char *v, long long min) {
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < min) fail("%s: not a valid number: '%s'", flag, v);
    return n;
}

static long long ms_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* ── reaping ─────────────────────────────────────────────────────────────────────────── */
static void reap(void) {
    int st;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0 || (p < 0 && errno == EINTR)) {
        if (p == child && !exited) {
            exited = 1;
            status = st;
            clock_gettime(CLOCK_REALTIME, &exit_time);
        }
    }
}

static void read_signals(void) {
    struct signalfd_siginfo si[8];
    for (;;) {
        ssize_t n = read(sig_fd, si, sizeof si);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        for (ssize_t i = 0; i < n / (ssize_t)sizeof si[0]; i++) {
            int sig = si[i].ssi_signo;
            if (sig == SIGCHLD) reap();
            else if (!exited) kill(child, sig);
        }
    }
}

/* ── the log ─────────────────────────────────────────────────────────────────────────── */
static void log_open(void) {
    log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    struct stat st;
    log_size = (log_fd >= 0 && fstat(log_fd, &st) == 0) ? (unsigned long long)st.st_size : 0;
}

static void log_rotate(void) {
    rename(log_path, log_old); /* if FILE is gone, just start a new one */
    close(log_fd);
    log_open();
}

static void log_write(const unsigned char *p, size_t n) {
    if (!log_path) return;
    if (log_fd < 0) log_open(); /* it failed before: try again */
    while (n > 0 && log_fd >= 0) {
        if (log_size >= log_max) {
            log_rotate();
            if (log_fd < 0) return;
        }
        size_t room = log_max - log_size, k = n < room ? n : room;
        ssize_t w = write(log_fd, p, k);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* ENOSPC, EIO...: this output is lost, the container goes on */
        log_size += w;
        p += w;
        n -= w;
    }
}

/* ── clients ─────────────────────────────────────────────────────────────────────────── */
static void drop(struct client *c) {
    if (c->fd < 0) return;
    close(c->fd);
    munmap(c->mem, OUT_CAP + IN_CAP);
    c->fd = -1;
}

static void flush(struct client *c) {
    while (c->fd >= 0 && c->out_start < c->out_end) {
        ssize_t w = send(c->fd, c->mem + c->out_start, c->out_end - c->out_start,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return;
        if (w <= 0) { c->no_out = 1; break; } /* gone: what it sent before may still be unread */
        c->out_start += w;
    }
    if (c->fd >= 0) c->out_start = c->out_end = 0;
}

static void queue(struct client *c, const unsigned char *p, size_t n) {
    if (c->fd < 0 || c->no_out || n == 0) return;
    if (c->out_end + n > OUT_CAP) {
        memmove(c->mem, c->mem + c->out_start, c->out_end - c->out_start);
        c->out_end -= c->out_start;
        c->out_start = 0;
        if (c->out_end + n > OUT_CAP) { drop(c); return; } /* too slow: let it go */
    }
    memcpy(c->mem + c->out_end, p, n);
    c->out_end += n;
    flush(c);
}

static void output(const unsigned char *p, size_t n) {
    log_write(p, n);
    const unsigned char *q = p;
    size_t m = n;
    if (m > RING_SIZE) { q += m - RING_SIZE; m = RING_SIZE; }
    size_t first = RING_SIZE - ring_head < m ? RING_SIZE - ring_head : m;
    memcpy(ring + ring_head, q, first);
    memcpy(ring, q + first, m - first);
    ring_head = (ring_head + m) % RING_SIZE;
    ring_len = ring_len + m > RING_SIZE ? RING_SIZE : ring_len + m;
    for (int i = 0; i < nclients; i++) queue(&clients[i], p, n);
}

/* Read what the pty has (a few chunks at most, to stay fair); -1 when it hung up. */
static int read_master(int rounds) {
    static unsigned char buf[CHUNK];
    while (rounds-- > 0) {
        ssize_t r = read(master, buf, sizeof buf);
        if (r < 0 && errno == EINTR) { rounds++; continue; }
        if (r < 0 && errno == EAGAIN) return 0;
        if (r <= 0) return -1; /* EIO: no slave open any more */
        output(buf, r);
    }
    return 0;
}

static void accept_clients(void) {
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return;
        }
        void *mem = MAP_FAILED;
        if (nclients < MAX_CLIENTS)
            mem = mmap(NULL, OUT_CAP + IN_CAP, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED) { close(fd); continue; }
        struct client *c = &clients[nclients++];
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->mem = mem;
        size_t old = ring_len < RING_SIZE ? 0 : ring_head; /* oldest byte */
        queue(c, ring + old, ring_len - old);
        if (old) queue(c, ring, old);
    }
}

/* Act on the client's buffered input; 1 if it is stalled on a full pty, 0 when consumed. */
static int client_input(struct client *c) {
    unsigned char *in = c->mem + OUT_CAP;
    while (c->in_off < c->in_len) {
        if (c->hdr_len < 3) {
            c->hdr[c->hdr_len++] = in[c->in_off++];
            if (c->hdr_len == 3) {
                c->left = c->hdr[1] | c->hdr[2] << 8;
                c->ws_len = 0;
                if (c->left == 0) c->hdr_len = 0;
            }
            continue;
        }
        size_t n = c->in_len - c->in_off;
        if (n > c->left) n = c->left;
        if (c->hdr[0] == 'i') {
            ssize_t w = write(master, in + c->in_off, n);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && errno == EAGAIN) return 1;
            if (w < 0) w = n; /* EIO: nobody reads the terminal; the input is lost */
            n = w;
        } else if (c->hdr[0] == 'w') {
            for (size_t i = 0; i < n && c->ws_len < 8; i++) c->ws[c->ws_len++] = in[c->in_off + i];
        }
        c->in_off += n;
        c->left -= n;
        if (c->left == 0) {
            if (c->hdr[0] == 'w' && c->ws_len == 8 && c->hdr[1] == 8 && c->hdr[2] == 0) {
                struct winsize ws = {
                    .ws_row = c->ws[0] | c->ws[1] << 8, .ws_col = c->ws[2] | c->ws[3] << 8,
                    .ws_xpixel = c->ws[4] | c->ws[5] << 8, .ws_ypixel = c->ws[6] | c->ws[7] << 8};
                ioctl(master, TIOCSWINSZ, &ws);
            }
            c->hdr_len = 0;
        }
    }
    c->in_off = c->in_len = 0;
    return 0;
}

static void client_read(struct client *c) {
    ssize_t r = read(c->fd, c->mem + OUT_CAP, IN_CAP);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (r <= 0) { drop(c); return; }
    c->in_off = 0;
    c->in_len = r;
    client_input(c);
}

static int stalled(const struct client *c) { return c->fd >= 0 && c->in_off < c->in_len; }

static void compact(void) {
    int j = 0;
    for (int i = 0; i < nclients; i++)
        if (clients[i].fd >= 0) clients[j++] = clients[i];
    nclients = j;
}

/* DIR/console.sock appears only once it listens (bound as console.sock.tmp, then renamed):
 * a client that sees it can connect. */
static void open_console(const char *dir) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if ((size_t)snprintf(a.sun_path, sizeof a.sun_path, "%s/console.sock.tmp", dir) >=
        sizeof a.sun_path) /* too long for sun_path: go through the dir fd */
        snprintf(a.sun_path, sizeof a.sun_path, "/proc/self/fd/%d/console.sock.tmp", dir_fd);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd < 0) { say("jailer-monitor: socket: %s", strerror(errno)); return; }
    unlinkat(dir_fd, "console.sock", 0);
    unlinkat(dir_fd, "console.sock.tmp", 0);
    mode_t old = umask(077); /* 0700 from bind, then 0600: never open to others */
    int ok = bind(listen_fd, (struct sockaddr *)&a, sizeof a) == 0 &&
             fchmodat(dir_fd, "console.sock.tmp", 0600, 0) == 0 &&
             listen(listen_fd, 16) == 0 &&
             renameat(dir_fd, "console.sock.tmp", dir_fd, "console.sock") == 0;
    umask(old);
    if (!ok) {
        say("jailer-monitor: console %s: %s", a.sun_path, strerror(errno));
        close(listen_fd);
        listen_fd = -1;
        unlinkat(dir_fd, "console.sock.tmp", 0);
    }
}

/* ── the end ─────────────────────────────────────────────────────────────────────────── */
static void drain(void) {
    long long deadline = ms_now() + DRAIN_MS;
    for (;;) {
        long long left = deadline - ms_now();
        if (left <= 0) return;
        struct pollfd p = {.fd = master, .events = POLLIN};
        int n = poll(&p, 1, left < 20 ? (int)left : 20);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || !(p.revents & POLLIN)) return; /* quiet for 20 ms, or hung up */
        if (read_master(1) < 0) return;
    }
}

static void flush_all(void) {
    long long deadline = ms_now() + DRAIN_MS;
    for (;;) {
        struct pollfd p[MAX_CLIENTS];
        int n = 0;
        for (int i = 0; i < nclients; i++) {
            flush(&clients[i]);
            if (clients[i].fd >= 0 && clients[i].out_end > clients[i].out_start)
                p[n++] = (struct pollfd){.fd = clients[i].fd, .events = POLLOUT};
        }
        long long left = deadline - ms_now();
        if (n == 0 || left <= 0) break;
        poll(p, n, (int)left);
    }
    for (int i = 0; i < nclients; i++) drop(&clients[i]);
    nclients = 0;
}

static void write_exit(void) {
    char buf[96];
    int n = snprintf(buf, sizeof buf, "%s %d\n%lld.%06ld\n",
                     WIFSIGNALED(status) ? "signal" : "exit",
                     WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                     (long long)exit_time.tv_sec, exit_time.tv_nsec / 1000);
    int fd = openat(dir_fd, "exit.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) { say("jailer-monitor: exit.tmp: %s", strerror(errno)); return; }
    char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        p += w;
        n -= w;
    }
    close(fd);
    if (n > 0 || renameat(dir_fd, "exit.tmp", dir_fd, "exit") < 0)
        say("jailer-monitor: writing %s: %s", "exit", strerror(errno ? errno : EIO));
}

static void close_from(int lowest) {
    if (syscall(SYS_close_range, lowest, ~0U, 0) == 0) return;
    long max = sysconf(_SC_OPEN_MAX);
    for (int fd = lowest; fd < (max > 0 ? max : 65536); fd++) close(fd);
}

int main(int argc, char **argv) {
    long long pid = 0, pty_fd = -1;
    const char *dir = NULL;
    char **cmd = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v, *eq;
        if (strcmp(a, "--") == 0) {
            cmd = argv + i + 1;
            if (!*cmd) fail("-- needs a command");
            break;
        }
        if (strncmp(a, "--", 2) != 0) fail("unexpected argument '%s' (usage: --pid PID --dir DIR "
                                           "[--pty-fd N] [--log FILE] [--log-max BYTES] "
                                           "[-- CMD...])", a);
        size_t len = (eq = strchr(a, '=')) ? (size_t)(eq - a) : strlen(a);
        if (eq) v = eq + 1;
        else if (i + 1 < argc) v = argv[++i];
        else fail("%s needs a value", a);
#define IS(name) (len == sizeof name - 1 && strncmp(a, name, len) == 0)
        if (IS("--pid")) pid = number("--pid", v, 1);
        else if (IS("--dir")) dir = v;
        else if (IS("--pty-fd")) pty_fd = number("--pty-fd", v, 0);
        else if (IS("--log")) log_path = v;
        else if (IS("--log-max")) log_max = number("--log-max", v, 1);
        else fail("unknown flag '%.*s'", (int)len, a);
    }
    if (!pid) fail("--pid is required");
    if (!dir) fail("--dir is required");
    if (pid > INT_MAX) fail("--pid: not a valid number: '%lld'", pid);
    child = pid;
    if (pty_fd > INT_MAX || (pty_fd >= 0 && fcntl(pty_fd, F_GETFD) < 0))
        fail("--pty-fd %lld: not an open file descriptor", pty_fd);
    dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) fail("--dir %s: %s", dir, strerror(errno));
    siginfo_t si = {0};
    if (waitid(P_PID, child, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
        fail("--pid %d: not a child of this process (%s)", child, strerror(errno));
    if (log_path && strlen(log_path) + 3 > sizeof log_old) fail("--log: path too long");
    if (pty_fd < 0) log_path = NULL;
    if (log_path) snprintf(log_old, sizeof log_old, "%s.1", log_path);

    /* Signals: the forwarded ones and SIGCHLD arrive on a signalfd. Their dispositions are
     * reset (once blocked, so that none is lost): an ignored SIGCHLD would make the kernel
     * reap PID behind our back. */
    sigset_t mask;
    sigemptyset(&mask);
    static const int caught[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD};
    for (size_t i = 0; i < sizeof caught / sizeof caught[0]; i++) sigaddset(&mask, caught[i]);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    for (size_t i = 0; i < sizeof caught / sizeof caught[0]; i++) signal(caught[i], SIG_DFL);
    struct sigaction old_pipe, old_xfsz, ign = {.sa_handler = SIG_IGN};
    sigaction(SIGPIPE, &ign, &old_pipe);
    sigaction(SIGXFSZ, &ign, &old_xfsz);
    sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sig_fd < 0) fail("signalfd: %s", strerror(errno));

    if (pty_fd >= 0) {
        master = pty_fd;
        fcntl(master, F_SETFD, FD_CLOEXEC);
        fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
        /* Hold a slave open: the master then never reports a hang-up (a busy poll) when the
         * container closes its terminal, and output written just before exit stays readable. */
        slave_hold = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (log_path) log_open();
        open_console(dir);
    }
    unlinkat(dir_fd, "exit", 0); /* stale, from an earlier run */
    reap(); /* PID may have ended before SIGCHLD was routed to the signalfd */

    long long master_quiet_until = 0; /* no held slave and the pty hung up: poll it less */
    struct pollfd p[3 + MAX_CLIENTS];
    while (!exited) {
        int n = 0, any_stalled = 0, timeout = -1;
        p[n++] = (struct pollfd){.fd = sig_fd, .events = POLLIN};
        for (int i = 0; i < nclients; i++) any_stalled |= stalled(&clients[i]);
        int mi = -1, li = -1, first_client = 0;
        if (master >= 0) {
            if (master_quiet_until && ms_now() < master_quiet_until) {
                timeout = (int)(master_quiet_until - ms_now()) + 1;
            } else {
                master_quiet_until = 0;
                mi = n;
                p[n++] = (struct pollfd){.fd = master,
                                         .events = POLLIN | (any_stalled ? POLLOUT : 0)};
            }
        }
        if (listen_fd >= 0) {
            li = n;
            p[n++] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
        }
        first_client = n;
        for (int i = 0; i < nclients; i++) {
            struct client *c = &clients[i];
            short ev = (stalled(c) ? 0 : POLLIN) | (c->out_end > c->out_start ? POLLOUT : 0);
            /* a hung-up peer with input still to deliver is left out until the pty takes it */
            p[n++] = (struct pollfd){.fd = stalled(c) && c->hup ? -1 : c->fd, .events = ev};
        }
        if (poll(p, n, timeout) < 0) {
            if (errno == EINTR) continue;
            fail("poll: %s", strerror(errno));
        }
        if (p[0].revents) read_signals();
        if (mi >= 0 && p[mi].revents) {
            if ((p[mi].revents & (POLLIN | POLLHUP | POLLERR)) && read_master(8) < 0)
                master_quiet_until = ms_now() + 200;
            if (p[mi].revents & POLLOUT)
                for (int i = 0; i < nclients; i++)
                    if (stalled(&clients[i])) client_input(&clients[i]);
        }
        for (int i = 0; i < nclients && first_client + i < n; i++) {
            struct client *c = &clients[i];
            short re = p[first_client + i].revents;
            if (c->fd < 0 || !re) continue;
            if (re & POLLOUT) flush(c);
            if (c->fd >= 0 && (re & (POLLIN | POLLHUP | POLLERR))) {
                if (!stalled(c)) client_read(c);
                else c->hup = 1;
            }
        }
        compact();
        if (li >= 0 && (p[li].revents & POLLIN)) accept_clients();
    }

    if (master >= 0) drain();
    if (listen_fd >= 0) {
        close(listen_fd);
        unlinkat(dir_fd, "console.sock", 0);
    }
    reap();
    write_exit();
    flush_all();
    if (log_fd >= 0) close(log_fd);
    int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    if (!cmd) return code;
    read_signals(); /* consume what is pending: a late SIGTERM must not kill CMD at birth */
    sigemptyset(&mask);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    sigaction(SIGXFSZ, &old_xfsz, NULL);
    close_from(3);
    execvp(cmd[0], cmd);
    say("jailer-monitor: exec %s: %s", cmd[0], strerror(errno));
    return code;
}
