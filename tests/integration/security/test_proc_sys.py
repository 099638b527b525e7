"""/proc and /sys: writes to /proc/sys, /proc/sysrq-trigger and /sys, reads of /proc/kcore,
/proc/keys and the kernel log, and the cgroup release_agent escape (mount a cgroup v1
hierarchy, point release_agent at a script of ours).

Host-global files are only ever *opened* for writing (the permission check happens at open;
nothing is written), and release_agent is only ever rewritten with its own current value, so
no attempt could change the host even where the policy failed.
"""

from __future__ import annotations

import errno as E
import os

import pytest

from .helpers import ATTACK, POLICY_LEVELS, WRITE_DENIED, assert_denied, assert_succeeded

pytestmark = pytest.mark.root

PROC_SYS_FILES = ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/sysrq",
                  "/proc/sys/vm/overcommit_memory", "/proc/sys/kernel/hostname",
                  "/proc/sysrq-trigger", "/proc/sys/fs/binfmt_misc/register")
SYS_FILES = ("/sys/kernel/mm/transparent_hugepage/enabled", "/sys/kernel/uevent_helper",
             "/sys/class/net/lo/mtu", "/sys/power/state")
SECRETS = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
           "/dev/core", "/proc/kmsg")
CGROUP_MOUNTS = {
    "cg_memory": "mount -t cgroup -o memory cgroup /tmp/cg",
    "cg_named": "mount -t cgroup -o none,name=jsec cgroup /tmp/cg",
    "cg2": "mount -t cgroup2 none /tmp/cg",
}


def _write_denied(path: str) -> set[int]:
    """What opening ``path`` for writing may fail with: absent on this host -> ENOENT."""
    return WRITE_DENIED if os.path.exists(path) else WRITE_DENIED | {E.ENOENT}


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_proc_sys_and_sysrq_cannot_be_opened_for_writing(attack, level):
    out = attack(level, "".join(f"try {p} {ATTACK} openw {p}\n" for p in PROC_SYS_FILES)
                 + "try echo_hostname sh -c 'echo evil > /proc/sys/kernel/hostname'")
    for path in PROC_SYS_FILES:
        assert_denied(out, path, _write_denied(path))
    assert_denied(out, "echo_hostname", WRITE_DENIED)


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_sys_is_read_only(attack, level):
    out = attack(level, "".join(f"try {p} {ATTACK} openw {p}\n" for p in SYS_FILES)
                 + "try touch touch /sys/jsec\ntry mkdir_cgroup mkdir /sys/fs/cgroup/jsec")
    for path in SYS_FILES:
        assert_denied(out, path, _write_denied(path))
    assert_denied(out, "touch", WRITE_DENIED)
    assert_denied(out, "mkdir_cgroup", WRITE_DENIED | {E.ENOENT})  # sysfs: no such dir


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_kernel_memory_keys_and_log_are_unreadable(attack, level):
    out = attack(level, "".join(f"try {p} {ATTACK} read {p}\n" for p in SECRETS)
                 + "try dmesg dmesg")
    for path in SECRETS:
        got = out[path]
        assert got.errno in {E.EPERM, E.EACCES, E.ENOENT} or got.fields.get("bytes") == "0", \
            got  # masked (an empty file), or not there at all
    assert_denied(out, "dmesg", {E.EPERM, E.EACCES})


@pytest.mark.parametrize("level", POLICY_LEVELS)
@pytest.mark.parametrize("label", CGROUP_MOUNTS)
def test_cgroup_release_agent_escape(attack, level, label):
    """Mount a cgroup hierarchy, then rewrite its release_agent: refused at the mount."""
    out = attack(level, f"mkdir -p /tmp/cg\ntry {label} {CGROUP_MOUNTS[label]}\n"
                        f"try agent {ATTACK} rewrite /tmp/cg/release_agent\n"
                        f"try notify {ATTACK} rewrite /tmp/cg/notify_on_release\n"
                        "umount /tmp/cg 2>/dev/null; true")
    assert_denied(out, label, E.EPERM)
    assert_denied(out, "agent", {E.EPERM, E.EACCES, E.EROFS, E.ENOENT})
    assert_denied(out, "notify", {E.EPERM, E.EACCES, E.EROFS, E.ENOENT})


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_visible_cgroup_files_are_not_writable(attack, level):
    """Whatever the container sees under /sys/fs/cgroup (nothing at jail level), it cannot
    write release agents, notify flags or move itself to another cgroup."""
    out = attack(level, r"""
        n=0
        for f in /sys/fs/cgroup/release_agent /sys/fs/cgroup/*/release_agent \
                 /sys/fs/cgroup/notify_on_release /sys/fs/cgroup/*/notify_on_release; do
            [ -e "$f" ] && n=$((n+1)) && try "rw$f" /x/attack rewrite "$f"
        done
        for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs; do
            [ -e "$f" ] && n=$((n+1)) && try "w$f" /x/attack openw "$f"
        done
        try count echo $n""")
    for label, got in out.attempts.items():
        if label != "count":
            assert got.errno in WRITE_DENIED, got
    assert len(out.attempts) == int(out["count"].text) + 1


def test_chroot_level_reaches_proc_sys_and_cgroups(attack):
    """Real root, no policy: in the test's private mount namespace a fresh proc and a
    cgroup v1 hierarchy mount fine and host-global files open for writing (nothing is
    written)."""
    out = attack("chroot", f"""
        try proc mount -t proc proc /proc
        try core_pattern {ATTACK} openw /proc/sys/kernel/core_pattern
        try sysfs mount -t sysfs sysfs /sys
        try thp {ATTACK} openw /sys/kernel/mm/transparent_hugepage/enabled
        mkdir -p /tmp/cg
        try cgroup mount -t cgroup -o pids cgroup /tmp/cg
        try agent {ATTACK} read /tmp/cg/release_agent
        umount /tmp/cg; umount /sys; umount /proc
    """)
    for label in ("proc", "core_pattern", "sysfs", "thp", "cgroup", "agent"):
        assert_succeeded(out, label)
