/* jailer.policy._seccomp: libseccomp, which turns a policy into BPF, plus what cffi cannot call
 * directly (SCMP_ACT_ERRNO is a macro). Built by _seccomp_build.py (cffi, -lseccomp). */
#include <stdint.h>
#include <stdlib.h>
#include <seccomp.h>

#include "seccomp_compile.h"

uint32_t jl_act_errno(uint32_t err) { return SCMP_ACT_ERRNO(err); }
