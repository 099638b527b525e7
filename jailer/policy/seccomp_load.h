/* The functions of jailer.policy._seccomp_load: read both by seccomp_load.c and by cffi's cdef
 * (see _seccomp_build.py), so only prototypes here. */

int jl_seccomp_load(const unsigned char *bpf, size_t len, unsigned int flags);
void jl_sha256(const unsigned char *data, size_t len, unsigned char *out);
const char *jl_libseccomp_version(void);
const char *jl_libseccomp_path(void);
