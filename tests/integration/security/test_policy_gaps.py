"""Hole 8 of the security review: what Docker's default seccomp profile denies and the jail
policy allowed. io_uring (its queued operations bypass the per-syscall filter), personality
values beyond PER_LINUX/PER_LINUX32/UNAME26 and the query (ADDR_NO_RANDOMIZE turns off ASLR),
TIOCSTI/TIOCLINUX, AF_VSOCK sockets, the kernel log, quotas, port I/O, fanotify, uselib,
lookup_dcookie and vhangup.

The control: the same probe run as host root with no policy (in throw-away namespaces), and at
chroot level, gets the kernel's own answer -- success, or the kernel's error for an argument or
a missing feature -- never the filter's EPERM, so the attack path is live where the policy is
absent."""

from __future__ import annotations

import errno as E
import subprocess

import pytest

from .helpers import ATTACK, POLICY_LEVELS, assert_denied

pytestmark = pytest.mark.root

PROBES = {  # label: attack.c arguments
    "io_uring_setup": "io_uring_setup",
    "addr_no_randomize": "personality 40000",
    "per_bsd": "personality 6",
    "addr_no_randomize_high_bits": "personality 100040000",  # the kernel reads 32 bits
    "tiocsti": "tiocsti", "tioclinux": "tioclinux", "vsock": "vsock",
    "syslog": "syslog", "uselib": "uselib", "fanotify_init": "fanotify_init",
    "quotactl": "quotactl", "quotactl_fd": "quotactl_fd", "lookup_dcookie": "lookup_dcookie",
    "iopl": "iopl", "ioperm": "ioperm", "vhangup": "vhangup",
}
# reach the kernel without a policy: success on this host (so the attack works there)
LIVE_ON_HOST = ("io_uring_setup", "addr_no_randomize", "tiocsti", "vsock", "syslog",
                "fanotify_init")
ALLOWED = {"per_linux": "personality 0", "per_linux32": "personality 8",
           "uname26": "personality 20000", "linux32_uname26": "personality 20008",
           "query": "personality ffffffff"}


def _script(probes: dict[str, str]) -> str:
    return "".join(f"try {label} {ATTACK} {args}\n" for label, args in probes.items())


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_docker_denied_calls_are_refused(attack, level):
    out = attack(level, _script(PROBES))
    for label in PROBES:
        assert_denied(out, label, E.EPERM)


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_docker_allowed_personalities_still_work(attack, level):
    out = attack(level, _script(ALLOWED))
    for label in ALLOWED:
        assert out[label].errno == 0, (label, out[label])


def test_without_the_policy_the_calls_reach_the_kernel(attack, attack_bin):
    """The control: as host root (throw-away namespaces) the live ones succeed, and at chroot
    level (no filter) none of them gets the filter's EPERM."""
    for label in LIVE_ON_HOST:
        r = subprocess.run(["setsid", "unshare", "-m", "-n", str(attack_bin),
                            *PROBES[label].split()], capture_output=True, text=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode == 0 and "errno=0" in r.stdout, (label, r.stdout, r.stderr)
    out = attack("chroot", _script(PROBES), netns=True)
    wrong = {label: out[label] for label in PROBES if out[label].errno == E.EPERM}
    assert not wrong, wrong
    assert out["addr_no_randomize"].errno == 0 and out["io_uring_setup"].errno == 0
