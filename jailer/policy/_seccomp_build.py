"""cffi build script for the two seccomp modules (both API mode, compiled at ``pip install``).

``jailer.policy._seccomp`` (``ffibuilder``: ``seccomp_compile.c`` + ``.h`` and libseccomp's API
declared below, ``-lseccomp``) turns a policy into raw BPF and is imported only when a filter
has to be compiled: on a cache miss, never on a warm start.

``jailer.policy._seccomp_load`` (``loadbuilder``: ``seccomp_load.c`` + ``.h``) is tiny and not
linked to libseccomp; it is what a warm start imports. It loads a BPF program with seccomp(2),
hashes cache keys (SHA-256 in C, so a start does not import ``hashlib``), and records which
libseccomp the compiler module was built against, so cached filters can be invalidated when
that library changes.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
COMPILE_HEADER = HERE / "seccomp_compile.h"
COMPILE_SOURCE = HERE / "seccomp_compile.c"
LOAD_HEADER = HERE / "seccomp_load.h"
LOAD_SOURCE = HERE / "seccomp_load.c"

# libseccomp's API as cffi declares it ("..." lets cffi take values and members from
# <seccomp.h>): cffi syntax, not C, so it stays here; the C is in seccomp_compile.c.
LIBSECCOMP_CDEF = """
typedef void *scmp_filter_ctx;
struct scmp_version { unsigned int major; unsigned int minor; unsigned int micro; };
enum scmp_filter_attr {
    SCMP_FLTATR_ACT_DEFAULT, SCMP_FLTATR_ACT_BADARCH, SCMP_FLTATR_CTL_NNP,
    SCMP_FLTATR_CTL_TSYNC, SCMP_FLTATR_CTL_LOG, SCMP_FLTATR_CTL_OPTIMIZE, ...
};
enum scmp_compare {
    SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT,
    SCMP_CMP_MASKED_EQ, ...
};
struct scmp_arg_cmp { unsigned int arg; enum scmp_compare op; uint64_t datum_a;
                      uint64_t datum_b; };

#define SCMP_ACT_KILL_PROCESS ...
#define SCMP_ACT_KILL_THREAD ...
#define SCMP_ACT_TRAP ...
#define SCMP_ACT_LOG ...
#define SCMP_ACT_ALLOW ...
#define __NR_SCMP_ERROR ...

scmp_filter_ctx seccomp_init(uint32_t def_action);
void seccomp_release(scmp_filter_ctx ctx);
int seccomp_attr_set(scmp_filter_ctx ctx, enum scmp_filter_attr attr, uint32_t value);
uint32_t seccomp_arch_native(void);
uint32_t seccomp_arch_resolve_name(const char *arch_name);
int seccomp_arch_exist(const scmp_filter_ctx ctx, uint32_t arch_token);
int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
int seccomp_arch_remove(scmp_filter_ctx ctx, uint32_t arch_token);
int seccomp_syscall_resolve_name(const char *name);
char *seccomp_syscall_resolve_num_arch(uint32_t arch_token, int num);
int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
                           unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);
int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
const struct scmp_version *seccomp_version(void);
unsigned int seccomp_api_get(void);

void free(void *ptr);
"""


def libseccomp_path() -> str:
    """Where the dynamic loader finds ``libseccomp.so.2`` (build time only), or "".

    The soname link, not the versioned file, so that a later stat() follows an upgrade.
    """
    import ctypes
    import os

    try:
        ctypes.CDLL("libseccomp.so.2")
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split(None, 5)[-1].strip()
                if "/libseccomp.so" in path:
                    soname = os.path.join(os.path.dirname(path), "libseccomp.so.2")
                    return soname if os.path.exists(soname) else path
    except OSError:
        pass
    return ""


ffibuilder = FFI()
ffibuilder.cdef(LIBSECCOMP_CDEF + COMPILE_HEADER.read_text())
ffibuilder.set_source("jailer.policy._seccomp", COMPILE_SOURCE.read_text(),
                      libraries=["seccomp"], include_dirs=[str(HERE)],
                      depends=[str(COMPILE_HEADER), str(COMPILE_SOURCE)])

loadbuilder = FFI()
loadbuilder.cdef(LOAD_HEADER.read_text())
loadbuilder.set_source("jailer.policy._seccomp_load", LOAD_SOURCE.read_text(),
                       include_dirs=[str(HERE)], depends=[str(LOAD_HEADER), str(LOAD_SOURCE)],
                       define_macros=[("JL_LIBSECCOMP_PATH", f'"{libseccomp_path()}"')])

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
    loadbuilder.compile(verbose=True)
