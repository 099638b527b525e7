"""cffi build script for the two seccomp modules (both API mode, compiled at ``pip install``).

``jailer.policy._seccomp`` (``ffibuilder``) wraps libseccomp (``-lseccomp``). It turns a policy into
raw BPF and is imported only when a filter has to be compiled: on a cache miss, never on a warm
start.

``jailer.policy._seccomp_load`` (``loadbuilder``) is tiny and not linked to libseccomp; it is what a
warm start imports. It loads a BPF program with seccomp(2), hashes cache keys (SHA-256 here
costs nothing, while ``import hashlib`` costs ~5 ms and ``_sha256`` ~0.5 ms on this machine),
and records which libseccomp the compiler module was built against, so cached filters can be
invalidated when that library changes.
"""

from cffi import FFI

SECCOMP_CDEF = """
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

uint32_t jl_act_errno(uint32_t err);
void free(void *ptr);
"""

SECCOMP_SOURCE = r"""
#include <stdlib.h>
#include <seccomp.h>

static uint32_t jl_act_errno(uint32_t err) { return SCMP_ACT_ERRNO(err); }
"""

LOAD_CDEF = """
int jl_seccomp_load(const unsigned char *bpf, size_t len, unsigned int flags);
void jl_sha256(const unsigned char *data, size_t len, unsigned char *out);
const char *jl_libseccomp_version(void);
const char *jl_libseccomp_path(void);
"""

# The SHA-256 round constants and initial state (FIPS 180-4), as computed from the primes.
LOAD_SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>

#define JL_STR2(x) #x
#define JL_STR(x) JL_STR2(x)

/* Load a raw BPF program (an array of struct sock_filter) as a seccomp filter. */
static int jl_seccomp_load(const unsigned char *bpf, size_t len, unsigned int flags) {
    struct sock_fprog prog;
    if (len == 0 || len % sizeof(struct sock_filter) != 0
            || len / sizeof(struct sock_filter) > BPF_MAXINSNS) {
        errno = EINVAL;
        return -1;
    }
    prog.len = (unsigned short)(len / sizeof(struct sock_filter));
    prog.filter = (struct sock_filter *)bpf;
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

/* The libseccomp that jailer.policy._seccomp was compiled against (headers, and the shared library
   the dynamic loader picked at build time). */
static const char *jl_libseccomp_version(void) {
    return JL_STR(SCMP_VER_MAJOR) "." JL_STR(SCMP_VER_MINOR) "." JL_STR(SCMP_VER_MICRO);
}
static const char *jl_libseccomp_path(void) { return JL_LIBSECCOMP_PATH; }

static const uint32_t jl_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

#define JL_ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void jl_sha256_block(uint32_t h[8], const unsigned char *p) {
    uint32_t w[64], a, b, c, d, e, f, g, k, t1, t2;
    int i;
    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16
             | (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (i = 16; i < 64; i++) {
        uint32_t s0 = JL_ROR(w[i - 15], 7) ^ JL_ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = JL_ROR(w[i - 2], 17) ^ JL_ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; k = h[7];
    for (i = 0; i < 64; i++) {
        t1 = k + (JL_ROR(e, 6) ^ JL_ROR(e, 11) ^ JL_ROR(e, 25)) + ((e & f) ^ (~e & g))
           + jl_k[i] + w[i];
        t2 = (JL_ROR(a, 2) ^ JL_ROR(a, 13) ^ JL_ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

static void jl_sha256(const unsigned char *data, size_t len, unsigned char *out) {
    uint32_t h[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
    unsigned char tail[128];
    size_t i, rest, total;
    uint64_t bits = (uint64_t)len * 8;
    for (i = 0; i + 64 <= len; i += 64)
        jl_sha256_block(h, data + i);
    rest = len - i;
    memset(tail, 0, sizeof tail);
    memcpy(tail, data + i, rest);
    tail[rest] = 0x80;
    total = rest + 1 + 8 <= 64 ? 64 : 128;
    for (i = 0; i < 8; i++)
        tail[total - 1 - i] = (unsigned char)(bits >> (8 * i));
    jl_sha256_block(h, tail);
    if (total == 128)
        jl_sha256_block(h, tail + 64);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(h[i] >> 8);
        out[4 * i + 3] = (unsigned char)h[i];
    }
}
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
ffibuilder.cdef(SECCOMP_CDEF)
ffibuilder.set_source("jailer.policy._seccomp", SECCOMP_SOURCE, libraries=["seccomp"])

loadbuilder = FFI()
loadbuilder.cdef(LOAD_CDEF)
loadbuilder.set_source("jailer.policy._seccomp_load", LOAD_SOURCE,
                       define_macros=[("JL_LIBSECCOMP_PATH", f'"{libseccomp_path()}"')])

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
    loadbuilder.compile(verbose=True)
