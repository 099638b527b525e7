"""The policy as seen from inside: seccomp filter mode, no_new_privs, the exact capability
sets, foreign system-call ABIs and syscall numbers the filter does not know.

At chroot level there is no policy at all: the status and every probe match what host root
gets outside any container.
"""

from __future__ import annotations

import errno as E

import pytest

from .helpers import (
    ATTACK,
    DROPPED_CAPS,
    JAIL_CAPS,
    POLICY_LEVELS,
    assert_denied,
    cap_names,
)

pytestmark = pytest.mark.root

# probe of attack.c -> errno under the jail policy
ABI_PROBES = {
    "i386_getpid": E.EPERM,  # int 0x80 from a 64-bit process: the i386 table
    "x32_getpid": E.EPERM,  # __X32_SYSCALL_BIT set: the x32 table
    "unknown": E.ENOSYS,  # syscall 1000: no such call (tomorrow's kernel may add it)
}

# Attempts that only the policy stops: inside the container's own user namespace the kernel
# allows each of them, so with the policy switched off they must succeed -- otherwise the
# EPERMs the suite asserts could come from the kernel alone and prove nothing.
POLICY_ONLY = {
    "mount": f"{ATTACK} mount", "fsopen": f"{ATTACK} fsopen",
    "open_tree": f"{ATTACK} open_tree", "unshare_user": f"{ATTACK} unshare_user",
    "clone3": f"{ATTACK} clone3", "perf_event_open": f"{ATTACK} perf_event_open",
    "userfaultfd": f"{ATTACK} userfaultfd", "add_key": f"{ATTACK} add_key",
    "i386_getpid": f"{ATTACK} i386_getpid", "rawsock": f"{ATTACK} rawsock",
    "packetsock": f"{ATTACK} packetsock", "mount_bb": "mount -t tmpfs none /mnt",
    "whiteout": "mknod /dev/shm/whiteout c 0 0", "addr_add": "ip addr add 10.9.9.9/32 dev lo",
    "unshare_U": "unshare -U true",
}


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_seccomp_no_new_privs_and_capabilities(attack, level):
    out = attack(level, f"try status {ATTACK} status")
    f = out["status"].fields
    assert (f["seccomp"], f["nnp"]) == ("2", "1"), out["status"]
    for kind in ("capeff", "capprm", "capbnd"):
        caps = cap_names(f[kind])
        assert not caps & DROPPED_CAPS, f"{kind} keeps {sorted(caps & DROPPED_CAPS)}"
        assert caps == JAIL_CAPS, f"{kind}: extra {sorted(caps - JAIL_CAPS)}, " \
                                  f"missing {sorted(JAIL_CAPS - caps)}"


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_policy_is_inherited_across_exec(attack, level):
    """Status is per process: a grandchild (after two execs) still has the filter."""
    out = attack(level, f"try status sh -c 'sh -c \"{ATTACK} status\"'")
    assert (out["status"].fields["seccomp"], out["status"].fields["nnp"]) == ("2", "1")


@pytest.mark.parametrize("level", POLICY_LEVELS)
@pytest.mark.parametrize("probe", ABI_PROBES)
def test_foreign_abis_and_unknown_syscalls(attack, level, probe):
    out = attack(level, f"try {probe} {ATTACK} {probe}")
    assert_denied(out, probe, ABI_PROBES[probe])


def test_chroot_level_has_no_policy(attack, host_baseline):
    """Plain chroot as real root: same capabilities as host root, no filter, and the foreign
    ABIs answer as they do on the host (no_new_privs is "always on", so not checked)."""
    script = "".join(f"try {p} {ATTACK} {p}\n" for p in ["status", *ABI_PROBES])
    out = attack("chroot", script)
    status = out["status"].fields
    host = host_baseline["status"].fields
    assert status["seccomp"] == "0"
    assert status["capeff"] == host["capeff"] and status["capbnd"] == host["capbnd"]
    # everything the jail drops (host root here lacks CAP_SYS_RESOURCE itself)
    assert cap_names(status["capeff"]) >= DROPPED_CAPS - {"SYS_RESOURCE"}
    for probe in ABI_PROBES:
        assert out[probe].errno == host_baseline[probe].errno, (out[probe],
                                                                host_baseline[probe])


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_attacks_succeed_without_the_policy(attack, level):
    """The suite's own control: no filter and every capability (inside the user namespace)."""
    out = attack(level, "".join(f"try {k} {v}\n" for k, v in POLICY_ONLY.items()),
                 "--seccomp", "unconfined", "--cap-add", "ALL")
    failed = [out[label] for label in POLICY_ONLY if not out[label].ok]
    assert not failed, failed
