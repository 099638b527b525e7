"""The kernel itself: modules, kexec, reboot, swap, the clock, process accounting, bpf,
perf events, keyrings and userfaultfd.

Every probe is harmless even where it is allowed (the kernel rejects its arguments after the
permission check: a wrong reboot magic, an out-of-range clock, too many kexec segments), so at
chroot level the suite shows the policy is absent by getting the host's own answer -- never by
loading a module, rebooting or moving the clock.
"""

from __future__ import annotations

import errno as E

import pytest

from .helpers import ATTACK, POLICY_LEVELS, assert_denied

pytestmark = pytest.mark.root

KERNEL_SYSCALLS = (
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "settimeofday", "clock_settime", "adjtimex", "clock_adjtime", "acct",
    "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd",
)
BUSYBOX = {
    "insmod": "head -c 4096 /dev/zero > /tmp/zero.ko; insmod /tmp/zero.ko",
    "rmmod": "rmmod jailer_sec_none",
}


@pytest.mark.parametrize("level", POLICY_LEVELS)
@pytest.mark.parametrize("probe", KERNEL_SYSCALLS)
def test_kernel_syscalls_are_refused(attack, level, probe):
    out = attack(level, f"try {probe} {ATTACK} {probe}")
    assert_denied(out, probe, E.EPERM)


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_setting_the_clock_to_now_is_refused(attack, level):
    """A valid time (now, so even a broken policy could not move the host clock far): the
    host clock is checked by the attack fixture's before/after comparison."""
    out = attack(level, f"try settime {ATTACK} clock_settime_now")
    assert_denied(out, "settime", E.EPERM)


@pytest.mark.parametrize("level", POLICY_LEVELS)
@pytest.mark.parametrize("label", BUSYBOX)
def test_module_tools_are_refused(attack, level, label):
    out = attack(level, f"try {label} sh -c '{BUSYBOX[label]}'")
    assert_denied(out, label, E.EPERM)


def test_chroot_level_reaches_the_kernel(attack, host_baseline):
    """No filter and full capabilities: each call gets exactly the host's answer (an EINVAL
    for the bad argument, ENOSYS where this kernel lacks the feature, 0 for the harmless)."""
    out = attack("chroot", "".join(f"try {p} {ATTACK} {p}\n" for p in KERNEL_SYSCALLS))
    wrong = {p: (out[p], host_baseline[p]) for p in KERNEL_SYSCALLS
             if out[p].errno != host_baseline[p].errno}
    assert not wrong, wrong
    assert any(host_baseline[p].errno not in (0, E.EPERM) for p in ("reboot", "adjtimex"))
