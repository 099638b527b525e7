/* The shims of jailer.kernel._native: read both by native.c and by cffi's cdef (see
 * _native_build.py), so it holds only what cdef understands: "#define NAME NUMBER",
 * types and prototypes (no include guard, no #include). Every shim returns -1 with errno set
 * on failure. */

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
int jl_setfsid(int uid, int gid);
long long jl_fstype(int fd);
int jl_personality(unsigned long persona);
int jl_ioprio_set(int which, int who, int ioprio);
int jl_sched_setattr(unsigned int policy, unsigned long long flags, int nice,
                     unsigned int priority, unsigned long long runtime,
                     unsigned long long deadline, unsigned long long period);

/* The arguments of jl_final_exec. */
struct jl_final {
    int *cg_fds; int n_cg; int cgroupns;
    int caps; unsigned long long keep, inh, amb;
    int sets; unsigned long long eff, prm;
    int uid, gid;
    const unsigned int *groups; int n_groups;
    int nnp;
    const unsigned char *bpf; size_t bpf_len; unsigned int bpf_flags;
    const char *path; int exec_fd; char **argv; char **envp;
};

/* The steps of jl_final_exec, reported in *stage when one fails (named for users by
 * jailer.kernel.syscalls.final_stage_names). */
#define JL_STAGE_CGROUP 1       /* join the container's cgroups */
#define JL_STAGE_CGROUPNS 2     /* unshare a cgroup namespace */
#define JL_STAGE_BOUNDING 3     /* drop the capability bounding set, keep caps across setuid */
#define JL_STAGE_USER 4         /* supplementary groups, gid, uid */
#define JL_STAGE_CAPS 5         /* capset and ambient capabilities */
#define JL_STAGE_NNP 6          /* no_new_privs */
#define JL_STAGE_CLOSE_FDS 7    /* close-on-exec for fds >= 3 */
#define JL_STAGE_SECCOMP 8      /* load the seccomp filter */
#define JL_STAGE_EXEC 9         /* execve / execveat */

int jl_final_exec(struct jl_final *f, int *stage);
