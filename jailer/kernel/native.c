/* jailer.kernel._native: thin C shims over the launcher's syscalls, and jl_final_exec, the
 * last steps before the workload runs. Built by _native_build.py (cffi, API mode); the
 * declarations Python sees are in native.h. */
#ifndef _GNU_SOURCE  /* Python.h, which cffi includes first, defines it */
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/fsuid.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "native.h"

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

struct jl_mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };
struct jl_open_how { uint64_t flags, mode, resolve; };

int jl_unshare(int flags) { return unshare(flags); }
int jl_setns(int fd, int nstype) { return setns(fd, nstype); }
int jl_mount(const char *src, const char *dst, const char *fstype,
                    unsigned long flags, const char *data) {
    return mount(src, dst, fstype, flags, data);
}
int jl_umount2(const char *target, int flags) { return umount2(target, flags); }
int jl_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}
int jl_sethostname(const char *name, size_t len) { return sethostname(name, len); }
int jl_open_tree(int dfd, const char *path, unsigned int flags) {
    return (int)syscall(SYS_open_tree, dfd, path, flags);
}
int jl_move_mount(int from_dfd, const char *from_path, int to_dfd,
                         const char *to_path, unsigned int flags) {
    return (int)syscall(SYS_move_mount, from_dfd, from_path, to_dfd, to_path, flags);
}
int jl_mount_setattr(int fd, unsigned long long attr_set, unsigned long long attr_clr,
                            int userns_fd, int recursive) {
    struct jl_mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = attr_set;
    attr.attr_clr = attr_clr;
    attr.userns_fd = userns_fd >= 0 ? (uint64_t)userns_fd : 0;
    unsigned int flags = 0x1000 /* AT_EMPTY_PATH */ | (recursive ? 0x8000 /* AT_RECURSIVE */ : 0);
    return (int)syscall(SYS_mount_setattr, fd, "", flags, &attr, sizeof attr);
}
int jl_openat2(int dfd, const char *path, unsigned long long flags,
                      unsigned long long mode, unsigned long long resolve) {
    struct jl_open_how how = { flags, mode, resolve };
    return (int)syscall(SYS_openat2, dfd, path, &how, sizeof how);
}
long long jl_fstype(int fd) {
    struct statfs st;
    if (fstatfs(fd, &st) < 0)
        return -1;
    return (long long)(unsigned long)st.f_type;
}
int jl_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
                    unsigned long a5) {
    return prctl(option, a2, a3, a4, a5);
}
int jl_loopback_up(void) {
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) goto fail;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) goto fail;
    close(fd);
    return 0;
fail:
    { int e = errno; close(fd); errno = e; }
    return -1;
}
int jl_setgroups0(void) { return setgroups(0, NULL); }
/* The last steps before the workload runs, in C so that no Python code runs (and touches
 * memory) once the process is in the container's cgroup: join the cgroup, enter a cgroup
 * namespace rooted there, drop capabilities, switch user, no_new_privs, seccomp, execve.
 * Returns -1 with errno set and *stage the JL_STAGE_* of the failed step (native.h). */
static int jl_capset(unsigned long long eff, unsigned long long prm, unsigned long long inh) {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2] = {
        { (unsigned)eff, (unsigned)prm, (unsigned)inh },
        { (unsigned)(eff >> 32), (unsigned)(prm >> 32), (unsigned)(inh >> 32) } };
    return (int)syscall(SYS_capset, &h, d);
}
/* Mark every fd >= first close-on-exec: close_range (Linux 5.11), else one fcntl per fd up
 * to the fd limit (as runc does it). */
static int jl_cloexec_from(int first) {
    if (syscall(SYS_close_range, first, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) == 0) return 0;
    if (errno != ENOSYS && errno != EINVAL) return -1;
    long top = sysconf(_SC_OPEN_MAX);
    for (long fd = first; fd < top; fd++) {
        int flags = fcntl((int)fd, F_GETFD);
        if (flags >= 0 && fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC) < 0) return -1;
    }
    return 0;
}
int jl_final_exec(struct jl_final *f, int *stage) {
    int cap;
    *stage = JL_STAGE_CGROUP;
    for (int i = 0; i < f->n_cg; i++)
        if (write(f->cg_fds[i], "0", 1) != 1) return -1;
    *stage = JL_STAGE_CGROUPNS;
    if (f->cgroupns && unshare(0x02000000 /* CLONE_NEWCGROUP */) < 0) return -1;
    /* close-on-exec, not close: the fds that report a failure of the steps below (the
     * runtime's pipe, OCI's exec fifo and --log) stay open until execve succeeds. Done
     * before any filter is loaded: an allow-list profile need not list close_range. */
    *stage = JL_STAGE_CLOSE_FDS;
    if (jl_cloexec_from(3) < 0) return -1;
    if (!f->nnp && f->bpf_len) {
        /* without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while we
         * still have it (runc does the same); the filter then sees the steps below */
        struct sock_fprog prog = { (unsigned short)(f->bpf_len / 8),
                                   (struct sock_filter *)f->bpf };
        *stage = JL_STAGE_SECCOMP;
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, f->bpf_flags, &prog) < 0) return -1;
    }
    if (f->caps) {
        *stage = JL_STAGE_BOUNDING;
        for (cap = 0; cap < 64; cap++)
            if (!(f->keep >> cap & 1) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0
                && errno != EINVAL) return -1;
        if (f->uid && (f->amb || (f->sets && f->prm))
            && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return -1;
    }
    *stage = JL_STAGE_USER;
    if (f->uid || f->gid || f->n_groups) {
        /* a change of credentials clears the parent-death signal: re-arm it, or a workload
         * run as a non-root user outlives a SIGKILLed runtime */
        int pdeath = 0;
        if (prctl(PR_GET_PDEATHSIG, &pdeath, 0, 0, 0) < 0) return -1;
        if (setgroups((size_t)f->n_groups, (const gid_t *)f->groups) < 0
            || setresgid(f->gid, f->gid, f->gid) < 0
            || setresuid(f->uid, f->uid, f->uid) < 0) return -1;
        if (pdeath && prctl(PR_SET_PDEATHSIG, pdeath, 0, 0, 0) < 0) return -1;
    }
    if (f->caps) {
        *stage = JL_STAGE_CAPS;
        /* sets: the effective and permitted sets as given (OCI); else derived from keep */
        unsigned long long mine = f->uid ? (f->amb & f->keep) : f->keep;
        if (jl_capset(f->sets ? f->eff : mine, f->sets ? f->prm : mine, f->inh) < 0)
            return -1;
        for (cap = 0; cap < 64; cap++)
            if ((f->amb & f->keep) >> cap & 1
                && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) return -1;
    }
    *stage = JL_STAGE_NNP;
    if (f->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -1;
    if (f->nnp && f->bpf_len) {
        struct sock_fprog prog = { (unsigned short)(f->bpf_len / 8),
                                   (struct sock_filter *)f->bpf };
        *stage = JL_STAGE_SECCOMP;
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, f->bpf_flags, &prog) < 0) return -1;
    }
    *stage = JL_STAGE_EXEC;
    if (f->exec_fd >= 0)  /* a binary from outside the root (the chroot-level --init) */
        syscall(SYS_execveat, f->exec_fd, "", f->argv, f->envp, 0x1000 /* AT_EMPTY_PATH */);
    else
        execve(f->path, f->argv, f->envp);
    return -1;
}
/* fsuid/fsgid only affect file access checks and the owner of new files: mount rights stay. */
int jl_setfsid(int uid, int gid) {
    setfsgid((gid_t)gid);
    setfsuid((uid_t)uid);
    return 0;
}
/* OCI linux.personality, process.ioPriority, process.scheduler: set in pid 1 before exec. */
int jl_personality(unsigned long persona) {
    return personality(persona) < 0 ? -1 : 0;
}
int jl_ioprio_set(int which, int who, int ioprio) {
    return (int)syscall(SYS_ioprio_set, which, who, ioprio);
}
struct jl_sched_attr {  /* linux/sched/types.h, SCHED_ATTR_SIZE_VER0 */
    uint32_t size, sched_policy; uint64_t sched_flags; int32_t sched_nice;
    uint32_t sched_priority; uint64_t sched_runtime, sched_deadline, sched_period;
};
int jl_sched_setattr(unsigned int policy, unsigned long long flags, int nice,
                     unsigned int priority, unsigned long long runtime,
                     unsigned long long deadline, unsigned long long period) {
    struct jl_sched_attr a = { sizeof a, policy, flags, nice, priority, runtime, deadline,
                               period };
    return (int)syscall(SYS_sched_setattr, 0, &a, 0);
}
