/* jailer.policy._seccomp's own helper beside libseccomp's API: read both by seccomp_compile.c
 * and by cffi's cdef (see _seccomp_build.py), so only prototypes here. */

uint32_t jl_act_errno(uint32_t err);
