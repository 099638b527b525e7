"""cffi build script for ``jailer._native``: thin C shims over the syscalls the launcher uses.

Compiled once at ``pip install`` time (API mode), so a start never pays for parsing C
declarations. Every shim returns -1 with errno set on failure; ``jailer.syscalls`` turns that
into an ``OSError`` naming the call and its arguments.
"""

from cffi import FFI

CDEF = """
int jl_unshare(int flags);
int jl_setns(int fd, int nstype);
int jl_mount(const char *src, const char *dst, const char *fstype, unsigned long flags,
             const char *data);
int jl_umount2(const char *target, int flags);
int jl_pivot_root(const char *new_root, const char *put_old);
int jl_sethostname(const char *name, size_t len);
int jl_open_tree(int dfd, const char *path, unsigned int flags);
int jl_move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path,
                  unsigned int flags);
int jl_mount_setattr(int fd, unsigned long long attr_set, unsigned long long attr_clr,
                     int userns_fd, int recursive);
int jl_openat2(int dfd, const char *path, unsigned long long flags, unsigned long long mode,
               unsigned long long resolve);
int jl_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
             unsigned long a5);
int jl_loopback_up(void);
int jl_setgroups0(void);
int jl_close_range(unsigned int first, unsigned int last, unsigned int flags);
int jl_setfsid(int uid, int gid);
"""

SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

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

static int jl_unshare(int flags) { return unshare(flags); }
static int jl_setns(int fd, int nstype) { return setns(fd, nstype); }
static int jl_mount(const char *src, const char *dst, const char *fstype,
                    unsigned long flags, const char *data) {
    return mount(src, dst, fstype, flags, data);
}
static int jl_umount2(const char *target, int flags) { return umount2(target, flags); }
static int jl_pivot_root(const char *new_root, const char *put_old) {
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}
static int jl_sethostname(const char *name, size_t len) { return sethostname(name, len); }
static int jl_open_tree(int dfd, const char *path, unsigned int flags) {
    return (int)syscall(SYS_open_tree, dfd, path, flags);
}
static int jl_move_mount(int from_dfd, const char *from_path, int to_dfd,
                         const char *to_path, unsigned int flags) {
    return (int)syscall(SYS_move_mount, from_dfd, from_path, to_dfd, to_path, flags);
}
static int jl_mount_setattr(int fd, unsigned long long attr_set, unsigned long long attr_clr,
                            int userns_fd, int recursive) {
    struct jl_mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = attr_set;
    attr.attr_clr = attr_clr;
    attr.userns_fd = userns_fd >= 0 ? (uint64_t)userns_fd : 0;
    unsigned int flags = 0x1000 /* AT_EMPTY_PATH */ | (recursive ? 0x8000 /* AT_RECURSIVE */ : 0);
    return (int)syscall(SYS_mount_setattr, fd, "", flags, &attr, sizeof attr);
}
static int jl_openat2(int dfd, const char *path, unsigned long long flags,
                      unsigned long long mode, unsigned long long resolve) {
    struct jl_open_how how = { flags, mode, resolve };
    return (int)syscall(SYS_openat2, dfd, path, &how, sizeof how);
}
static int jl_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
                    unsigned long a5) {
    return prctl(option, a2, a3, a4, a5);
}
static int jl_loopback_up(void) {
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
static int jl_setgroups0(void) { return setgroups(0, NULL); }
static int jl_close_range(unsigned int first, unsigned int last, unsigned int flags) {
    return (int)syscall(SYS_close_range, first, last, flags);
}
/* fsuid/fsgid only affect file access checks and the owner of new files: mount rights stay. */
static int jl_setfsid(int uid, int gid) {
    setfsgid((gid_t)gid);
    setfsuid((uid_t)uid);
    return 0;
}
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("jailer._native", SOURCE)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
