/* attack: one static binary with every escape attempt busybox cannot make.
 *
 *   attack NAME [ARGS...]
 *
 * prints "errno=N" (0 when the call succeeded) plus NAME-specific key=value fields, and exits
 * 0 on success, 1 on failure, 2 on a usage error. Every attempt is built to be harmless if it
 * succeeds on the host: invalid arguments that the kernel rejects only after its permission
 * checks (a bad reboot magic, an out-of-range clock, too many kexec segments), detached mount
 * trees that are closed at once, keys in a keyring that dies with the process.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/quota.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/timex.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OPEN_TREE_CLONE 1
#define FSCONFIG_CMD_CREATE 6
#define KEY_SPEC_PROCESS_KEYRING (-2)
#define KEYCTL_GET_KEYRING_ID 0
#define UFFD_USER_MODE_ONLY 1
#define X32_SYSCALL_BIT 0x40000000L

static int report(long ret)
{
	int e = ret < 0 ? errno : 0;
	printf("errno=%d\n", e);
	return e ? 1 : 0;
}

/* ── mounts ──────────────────────────────────────────────────────────────────────────── */
static int a_mount(char **av)
{
	long r = syscall(SYS_mount, "none", "/mnt", "tmpfs", 0UL, "size=1m");
	int e = errno;
	if (r == 0)
		syscall(SYS_umount2, "/mnt", 0);
	errno = e;
	return report(r);
}
static int a_fsopen(char **av)
{
	long fd = syscall(SYS_fsopen, "tmpfs", 0);
	if (fd >= 0)
		close(fd);
	return report(fd);
}
static int a_fsmount(char **av) { return report(syscall(SYS_fsmount, -1, 0, 0)); }
static int a_fsconfig(char **av)
{
	return report(syscall(SYS_fsconfig, -1, FSCONFIG_CMD_CREATE, NULL, NULL, 0));
}
static int a_move_mount(char **av)
{
	return report(syscall(SYS_move_mount, -1, "", -1, "", 0));
}
static int a_open_tree(char **av)
{
	/* recursive: a non-recursive copy of a tree with locked submounts is EINVAL anyway */
	long fd = syscall(SYS_open_tree, AT_FDCWD, "/",
			  OPEN_TREE_CLONE | AT_RECURSIVE | O_CLOEXEC);
	if (fd >= 0)
		close(fd); /* a detached copy: gone with its last fd */
	return report(fd);
}
static int a_pivot_root(char **av)
{
	return report(syscall(SYS_pivot_root, "/tmp", "/tmp")); /* not a mount point */
}
static int a_umount2(char **av)
{
	return report(syscall(SYS_umount2, "/jailer-sec-no-such-mount", 0));
}

/* mknod PATH b|c|p|s [MAJOR MINOR] */
static int a_mknod(char **av)
{
	mode_t type = av[3][0] == 'b' ? S_IFBLK : av[3][0] == 'c' ? S_IFCHR
		    : av[3][0] == 'p' ? S_IFIFO : S_IFSOCK;
	dev_t dev = av[4] && av[5] ? makedev(atoi(av[4]), atoi(av[5])) : 0;
	return report(mknod(av[2], type | 0600, dev));
}

/* ── kernel: modules, kexec, reboot, swap, clock, accounting ─────────────────────────── */
static int a_init_module(char **av) { return report(syscall(SYS_init_module, "", 0, "")); }
static int a_finit_module(char **av)
{
	return report(syscall(SYS_finit_module, 0, "", 0x80000000UL)); /* invalid flags */
}
static int a_delete_module(char **av)
{
	return report(syscall(SYS_delete_module, "jailer_sec_none", O_NONBLOCK));
}
static int a_kexec_load(char **av)
{
	return report(syscall(SYS_kexec_load, 0UL, 1000UL, NULL, 0UL)); /* > KEXEC_SEGMENT_MAX */
}
static int a_kexec_file_load(char **av)
{
	return report(syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL, 0x80000000UL));
}
static int a_reboot(char **av)
{
	return report(syscall(SYS_reboot, 0, 0, 0, NULL)); /* wrong magic: EINVAL at best */
}
static int a_swapon(char **av) { return report(syscall(SYS_swapon, "/jailer-sec-no-swap", 0)); }
static int a_swapoff(char **av) { return report(syscall(SYS_swapoff, "/jailer-sec-no-swap")); }
static int a_settimeofday(char **av)
{
	struct timeval tv = {0, 2000000}; /* tv_usec out of range */
	return report(syscall(SYS_settimeofday, &tv, NULL));
}
static int a_clock_settime(char **av)
{
	struct timespec ts = {0, 2000000000}; /* tv_nsec out of range */
	return report(syscall(SYS_clock_settime, CLOCK_REALTIME, &ts));
}
/* a valid time (now): only ever run inside a user namespace, where it must fail */
static int a_clock_settime_now(char **av)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return report(syscall(SYS_clock_settime, CLOCK_REALTIME, &ts));
}
static int a_adjtimex(char **av)
{
	struct timex tx = {.modes = ADJ_TICK, .tick = 1}; /* tick out of range */
	return report(syscall(SYS_adjtimex, &tx));
}
static int a_clock_adjtime(char **av)
{
	struct timex tx = {.modes = ADJ_TICK, .tick = 1};
	return report(syscall(SYS_clock_adjtime, CLOCK_REALTIME, &tx));
}
static int a_acct(char **av) { return report(syscall(SYS_acct, "/jailer-sec-none/acct")); }

/* ── kernel interfaces: bpf, perf, keys, userfaultfd, file handles ───────────────────── */
static int a_bpf(char **av)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.map_type = BPF_MAP_TYPE_ARRAY;
	attr.key_size = 4;
	attr.value_size = 4;
	attr.max_entries = 1;
	long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
	if (fd >= 0)
		close(fd);
	return report(fd);
}
static int a_perf_event_open(char **av)
{
	struct perf_event_attr a;
	memset(&a, 0, sizeof a);
	a.type = PERF_TYPE_SOFTWARE;
	a.size = sizeof a;
	a.config = PERF_COUNT_SW_TASK_CLOCK;
	a.disabled = 1;
	a.exclude_kernel = 1;
	a.exclude_hv = 1;
	long fd = syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd >= 0)
		close(fd);
	return report(fd);
}
static int a_keyctl(char **av)
{
	return report(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, 1));
}
static int a_add_key(char **av)
{
	return report(syscall(SYS_add_key, "user", "jailer-sec", "x", 1,
			      KEY_SPEC_PROCESS_KEYRING));
}
static int a_request_key(char **av)
{
	return report(syscall(SYS_request_key, "user", "jailer-sec-none", NULL, 0));
}
static int a_userfaultfd(char **av)
{
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (fd >= 0)
		close(fd);
	return report(fd);
}
/* "shocker": get a handle for / and open it back; if the handle cannot be made, forge one
 * for inode 2 (the root of an ext4 file system) as the 2014 exploit did. */
static int a_open_by_handle_at(char **av)
{
	struct {
		struct file_handle h;
		unsigned char buf[128];
	} fh;
	int mnt_id, mfd = open("/", O_RDONLY | O_DIRECTORY);
	fh.h.handle_bytes = sizeof fh.buf;
	if (syscall(SYS_name_to_handle_at, AT_FDCWD, "/", &fh.h, &mnt_id, 0) < 0) {
		printf("name_to_handle_errno=%d ", errno);
		uint32_t forged[2] = {2, 0};
		fh.h.handle_bytes = 8;
		fh.h.handle_type = 1; /* FILEID_INO32_GEN */
		memcpy(fh.h.f_handle, forged, 8);
	}
	long fd = syscall(SYS_open_by_handle_at, mfd, &fh.h, O_RDONLY);
	if (fd >= 0)
		close(fd);
	return report(fd);
}

/* ── namespaces and processes ────────────────────────────────────────────────────────── */
static int a_unshare_user(char **av) { return report(syscall(SYS_unshare, CLONE_NEWUSER)); }
static int wait_child(long pid)
{
	if (pid == 0)
		_exit(0);
	if (pid > 0)
		waitpid(pid, NULL, __WALL);
	return report(pid);
}
static int a_clone_user(char **av)
{
	return wait_child(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
}
static int a_clone3(char **av)
{
	struct clone_args a;
	memset(&a, 0, sizeof a);
	a.exit_signal = SIGCHLD;
	return wait_child(syscall(SYS_clone3, &a, sizeof a));
}
static int a_setns(char **av)
{
	int fd = open(av[2], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return report(fd);
	return report(setns(fd, 0));
}
static int a_ptrace(char **av)
{
	pid_t pid = atoi(av[2]);
	long r = ptrace(PTRACE_ATTACH, pid, 0, 0);
	int e = errno;
	if (r == 0) {
		waitpid(pid, NULL, __WALL);
		ptrace(PTRACE_DETACH, pid, 0, 0);
	}
	errno = e;
	return report(r);
}
/* mkdir x; chroot x; chdir .. many times; chroot . -- then look for the host's marker */
static int a_chroot_escape(char **av)
{
	char name[64];
	snprintf(name, sizeof name, "escape-%d", getpid());
	int here = open(".", O_PATH | O_DIRECTORY);
	if (mkdir(name, 0700) < 0 && errno != EEXIST)
		return report(-1);
	long r = chroot(name);
	int e = errno;
	if (r == 0) {
		for (int i = 0; i < 256; i++)
			if (chdir("..") < 0)
				break;
		chroot(".");
	}
	printf("escaped=%d ", access(av[2], F_OK) == 0);
	unlinkat(here, name, AT_REMOVEDIR);
	errno = e;
	return report(r);
}

/* ── ABIs: i386 (int 0x80), x32, a syscall number nobody has ─────────────────────────── */
static int a_i386_getpid(char **av)
{
	long ret = 20; /* __NR_getpid on i386 */
	__asm__ volatile("int $0x80" : "+a"(ret) : : "memory");
	if (ret < 0 && ret > -4096) {
		errno = -ret;
		return report(-1);
	}
	return report(0);
}
static int a_x32_getpid(char **av) { return report(syscall(X32_SYSCALL_BIT | SYS_getpid)); }
static int a_unknown(char **av) { return report(syscall(1000)); }

/* ── files: open for writing, write back the same bytes, read ────────────────────────── */
static int a_openw(char **av)
{
	int fd = open(av[2], O_WRONLY | O_CLOEXEC); /* never truncates, never writes */
	if (fd >= 0)
		close(fd);
	return report(fd);
}
static int a_rewrite(char **av)
{
	char buf[4096];
	int fd = open(av[2], O_RDONLY);
	if (fd < 0)
		return report(-1);
	ssize_t n = read(fd, buf, sizeof buf);
	close(fd);
	if (n < 0)
		return report(-1);
	fd = open(av[2], O_WRONLY);
	if (fd < 0)
		return report(-1);
	ssize_t w = write(fd, buf, n);
	close(fd);
	return report(w);
}
static int a_read(char **av)
{
	char buf[4096];
	int fd = open(av[2], O_RDONLY | O_NONBLOCK); /* /proc/kmsg must not block */
	if (fd < 0)
		return report(-1);
	ssize_t n = read(fd, buf, sizeof buf);
	close(fd);
	if (n >= 0)
		printf("bytes=%zd ", n);
	return report(n);
}
/* the open file descriptors, without the one used to list them */
static int a_fds(char **av)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return report(-1);
	struct dirent *e;
	char path[300], target[256];
	printf("fds=");
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
			continue;
		snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(path, target, sizeof target - 1);
		target[n > 0 ? n : 0] = 0;
		printf("%s:%s,", e->d_name, target);
	}
	closedir(d);
	printf(" ");
	return report(0);
}

/* ── status: capabilities, seccomp, no_new_privs (works without /proc) ───────────────── */
static int a_status(char **av)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) < 0)
		return report(-1);
	unsigned long long eff = d[0].effective | (unsigned long long)d[1].effective << 32;
	unsigned long long prm = d[0].permitted | (unsigned long long)d[1].permitted << 32;
	unsigned long long bnd = 0;
	for (int i = 0; i < 64; i++)
		if (prctl(PR_CAPBSET_READ, i, 0, 0, 0) == 1)
			bnd |= 1ULL << i;
	printf("capeff=%llx capprm=%llx capbnd=%llx seccomp=%d nnp=%d ", eff, prm, bnd,
	       prctl(PR_GET_SECCOMP, 0, 0, 0, 0), prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	return report(0);
}

/* ── network ─────────────────────────────────────────────────────────────────────────── */
static int a_rawsock(char **av)
{
	int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
	if (fd >= 0)
		close(fd);
	return report(fd);
}
static int a_packetsock(char **av)
{
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(0x0003)); /* ETH_P_ALL */
	if (fd >= 0)
		close(fd);
	return report(fd);
}

/* ── beside Docker's default profile ─────────────────────────────────────────────────── */
#define AF_VSOCK_ 40
#define ADDR_NO_RANDOMIZE_ 0x0040000
#define SYSLOG_ACTION_SIZE_BUFFER 10
static int a_io_uring_setup(char **av)
{
	unsigned char params[120] = {0}; /* struct io_uring_params, zeroed */
	long fd = syscall(SYS_io_uring_setup, 1, params);
	if (fd >= 0)
		close((int)fd);
	return report(fd);
}
/* personality(arg) with arg in hex; prints the old persona; restores it on success */
static int a_personality(char **av)
{
	unsigned long want = strtoul(av[2], NULL, 16);
	long old = syscall(SYS_personality, want);
	int e = errno;
	if (old >= 0 && want != 0xffffffffUL)
		syscall(SYS_personality, (unsigned long)old);
	errno = e;
	return report(old);
}
/* a fresh pty pair: TIOCSTI pushes a byte into its own input; TIOCLINUX asks for a VT's
 * shift state (the kernel answers ENOTTY/EINVAL on a pty once past the filter) */
static int pty_slave(void)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0)
		return -1;
	return open(ptsname(m), O_RDWR | O_NOCTTY);
}
static int a_tiocsti(char **av)
{
	int s = pty_slave();
	if (s < 0)
		return report(s);
	char c = 'x';
	return report(ioctl(s, TIOCSTI, &c));
}
static int a_tioclinux(char **av)
{
	int s = pty_slave();
	if (s < 0)
		return report(s);
	char sub = 6; /* TIOCL_GETSHIFTSTATE */
	return report(ioctl(s, TIOCLINUX, &sub));
}
static int a_vsock(char **av)
{
	int fd = socket(AF_VSOCK_, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		close(fd);
	return report(fd);
}
static int a_syslog(char **av) { return report(syscall(SYS_syslog, SYSLOG_ACTION_SIZE_BUFFER, 0, 0)); }
static int a_uselib(char **av) { return report(syscall(SYS_uselib, "/jailer-sec-none/lib.so")); }
static int a_fanotify_init(char **av)
{
	long fd = syscall(SYS_fanotify_init, 0 /* FAN_CLASS_NOTIF */, O_RDONLY);
	if (fd >= 0)
		close((int)fd);
	return report(fd);
}
static int a_quotactl(char **av)
{
	int fmt;
	return report(syscall(SYS_quotactl, QCMD(Q_GETFMT, USRQUOTA), "/jailer-sec-none", 0, &fmt));
}
static int a_quotactl_fd(char **av)
{
	int fmt;
	return report(syscall(SYS_quotactl_fd, -1, QCMD(Q_GETFMT, USRQUOTA), 0, &fmt));
}
static int a_lookup_dcookie(char **av)
{
	char buf[64];
	return report(syscall(SYS_lookup_dcookie, 0ULL, buf, sizeof buf));
}
static int a_iopl(char **av) { return report(syscall(SYS_iopl, 0)); }
static int a_ioperm(char **av) { return report(syscall(SYS_ioperm, 0x80UL, 1UL, 0)); }
static int a_vhangup(char **av) { return report(syscall(SYS_vhangup)); }

static const struct {
	const char *name;
	int (*fn)(char **);
	int args;
} ATTACKS[] = {
	{"mount", a_mount, 0}, {"fsopen", a_fsopen, 0}, {"fsmount", a_fsmount, 0}, {"fsconfig", a_fsconfig, 0},
	{"move_mount", a_move_mount, 0}, {"open_tree", a_open_tree, 0},
	{"pivot_root", a_pivot_root, 0}, {"umount2", a_umount2, 0}, {"mknod", a_mknod, 2},
	{"init_module", a_init_module, 0}, {"finit_module", a_finit_module, 0},
	{"delete_module", a_delete_module, 0}, {"kexec_load", a_kexec_load, 0},
	{"kexec_file_load", a_kexec_file_load, 0}, {"reboot", a_reboot, 0},
	{"swapon", a_swapon, 0}, {"swapoff", a_swapoff, 0},
	{"settimeofday", a_settimeofday, 0}, {"clock_settime", a_clock_settime, 0},
	{"clock_settime_now", a_clock_settime_now, 0}, {"adjtimex", a_adjtimex, 0},
	{"clock_adjtime", a_clock_adjtime, 0}, {"acct", a_acct, 0}, {"bpf", a_bpf, 0},
	{"perf_event_open", a_perf_event_open, 0}, {"keyctl", a_keyctl, 0},
	{"add_key", a_add_key, 0}, {"request_key", a_request_key, 0},
	{"userfaultfd", a_userfaultfd, 0}, {"open_by_handle_at", a_open_by_handle_at, 0},
	{"unshare_user", a_unshare_user, 0}, {"clone_user", a_clone_user, 0},
	{"clone3", a_clone3, 0}, {"setns", a_setns, 1}, {"ptrace", a_ptrace, 1},
	{"chroot_escape", a_chroot_escape, 1}, {"i386_getpid", a_i386_getpid, 0},
	{"x32_getpid", a_x32_getpid, 0}, {"unknown", a_unknown, 0}, {"openw", a_openw, 1},
	{"rewrite", a_rewrite, 1}, {"read", a_read, 1}, {"fds", a_fds, 0},
	{"status", a_status, 0}, {"rawsock", a_rawsock, 0}, {"packetsock", a_packetsock, 0},
	{"io_uring_setup", a_io_uring_setup, 0}, {"personality", a_personality, 1},
	{"tiocsti", a_tiocsti, 0}, {"tioclinux", a_tioclinux, 0}, {"vsock", a_vsock, 0},
	{"syslog", a_syslog, 0}, {"uselib", a_uselib, 0}, {"fanotify_init", a_fanotify_init, 0},
	{"quotactl", a_quotactl, 0}, {"quotactl_fd", a_quotactl_fd, 0},
	{"lookup_dcookie", a_lookup_dcookie, 0}, {"iopl", a_iopl, 0}, {"ioperm", a_ioperm, 0},
	{"vhangup", a_vhangup, 0},
};

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; argc > 1 && i < sizeof ATTACKS / sizeof *ATTACKS; i++)
		if (strcmp(argv[1], ATTACKS[i].name) == 0) {
			if (argc - 2 < ATTACKS[i].args)
				break;
			return ATTACKS[i].fn(argv);
		}
	fprintf(stderr, "usage: attack NAME [ARGS...] (see the table in attack.c)\n");
	return 2;
}
