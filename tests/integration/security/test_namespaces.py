"""Namespaces: a nested user namespace to regain a full capability set (and then mount),
unshare/clone with CLONE_NEWUSER, clone3, and setns into other namespaces through /proc --
the container's own pid 1 (nsenter -t 1) and a host pid number.

At chroot level no policy stops any of it: nsenter through /proc/<pid of the test's sleeper>
lands in the host's mount namespace, where the test's marker file in /tmp is visible (read
only, from the test's private mount namespace). Only the kernel's own rule remains there: a
chrooted process may not create a user namespace (EPERM from unshare(2), not from a filter).
"""

from __future__ import annotations

import errno as E
import os

import pytest

from .helpers import ATTACK, POLICY_LEVELS, assert_denied, assert_succeeded

pytestmark = pytest.mark.root

NESTED = {
    "unshare_U": "unshare -U true",
    "unshare_Ur_mount": "unshare -U -r -m sh -c 'mount -t tmpfs none /mnt && echo mounted'",
    "unshare_Urn_ip": "unshare -U -r -n ip link set lo up",
}
NS_SYSCALLS = {"unshare_user": E.EPERM, "clone_user": E.EPERM, "clone3": E.ENOSYS}
NAMESPACES = ("mnt", "net", "uts", "ipc", "pid", "cgroup", "time")
HOST_VISIBLE_NS = ("mnt", "pid", "net", "uts", "ipc", "user")


@pytest.mark.parametrize("level", POLICY_LEVELS)
@pytest.mark.parametrize("label", NESTED)
def test_nested_user_namespaces_are_refused(attack, level, label):
    out = attack(level, f"try {label} {NESTED[label]}")
    assert_denied(out, label, E.EPERM)
    assert "mounted" not in out[label].text


@pytest.mark.parametrize("level", POLICY_LEVELS)
@pytest.mark.parametrize("probe", NS_SYSCALLS)
def test_namespace_syscalls_are_refused(attack, level, probe):
    out = attack(level, f"try {probe} {ATTACK} {probe}")
    assert_denied(out, probe, NS_SYSCALLS[probe])


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_setns_through_pid_1_is_refused(attack, level):
    """Without CAP_SYS_ADMIN not even the container's own namespaces can be re-entered."""
    out = attack(level, "try nsenter1 nsenter -t 1 -m -u -i -n -p true\n"
                 + "".join(f"try {ns} {ATTACK} setns /proc/1/ns/{ns}\n" for ns in NAMESPACES)
                 + f"try user {ATTACK} setns /proc/1/ns/user")
    assert_denied(out, "nsenter1", E.EPERM)
    for ns in NAMESPACES:
        assert_denied(out, ns, E.EPERM)
    assert_denied(out, "user", {E.EPERM, E.EINVAL})  # EINVAL: it is the current one


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_host_namespaces_are_unreachable(attack, level, sleeper):
    pid = sleeper.pid
    out = attack(level, f"try nsenter_host nsenter -t {pid} -m -n true\n"
                 + "".join(f"try {ns} {ATTACK} setns /proc/{pid}/ns/{ns}\n"
                           for ns in NAMESPACES)
                 + "".join(f"try id_{ns} readlink /proc/self/ns/{ns}\n"
                           for ns in (*HOST_VISIBLE_NS, "cgroup")))
    assert_denied(out, "nsenter_host", E.ENOENT)
    for ns in NAMESPACES:
        assert_denied(out, ns, E.ENOENT)
    own = [*HOST_VISIBLE_NS, *(["cgroup"] if level == "container" else [])]
    same = [ns for ns in own if out[f"id_{ns}"].text == os.readlink(f"/proc/self/ns/{ns}")]
    assert not same, f"namespaces shared with the host: {same}"


def test_chroot_level_enters_host_namespaces(attack, sleeper, marker, host_baseline):
    pid = sleeper.pid
    out = attack("chroot", "".join(f"try {k} {v}\n" for k, v in NESTED.items())
                 + "".join(f"try {p} {ATTACK} {p}\n" for p in NS_SYSCALLS)
                 + f"""
        try proc mount -t proc proc /proc
        try host_mnt nsenter -t {pid} -m ls {marker}
        umount /proc
    """)
    for label in ("proc", "host_mnt"):
        assert_succeeded(out, label)
    for label in NESTED:  # the kernel's chroot rule (see above), the same with no policy
        assert_denied(out, label, E.EPERM)
    for probe in ("unshare_user", "clone_user"):
        assert_denied(out, probe, E.EPERM)
    assert out["clone3"].errno == host_baseline["clone3"].errno == 0
