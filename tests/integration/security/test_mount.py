"""Mounts and escapes from the root: mount, umount and remount (busybox and the new mount
API), pivot_root, the classic chroot escape, and open_by_handle_at ("shocker").

Under the jail policy every mount-family call fails with EPERM (seccomp, and CAP_SYS_ADMIN is
gone). At chroot level the same mounts work, inside a throw-away mount namespace made by the
test (``unshare -m``), and the chroot escape reaches the host's root.
"""

from __future__ import annotations

import errno as E

import pytest

from .helpers import ATTACK, POLICY_LEVELS, assert_denied, assert_succeeded

pytestmark = pytest.mark.root

MOUNT_COMMANDS = {  # label -> busybox command run as root inside
    "mount_tmpfs": "mount -t tmpfs none /mnt",
    "mount_bind": "mount -o bind /bin /mnt",
    "mount_proc": "mount -t proc proc /mnt",
    "umount_proc": "umount /proc",
    "umount_dev_lazy": "umount -l /dev",
    "umount_root_lazy": "umount -l /",
    "remount_root_ro": "mount -o remount,ro /",
    "remount_proc_sys_rw": "mount -o remount,bind,rw /proc/sys",
    "pivot_root_bb": "pivot_root /tmp /tmp",
}
MOUNT_SYSCALLS = ("mount", "fsopen", "fsmount", "fsconfig", "move_mount", "open_tree", "pivot_root",
                  "umount2", "open_by_handle_at")


@pytest.mark.parametrize("level", POLICY_LEVELS)
@pytest.mark.parametrize("label", MOUNT_COMMANDS)
def test_mount_commands_are_refused(attack, level, label):
    out = attack(level, f"try {label} {MOUNT_COMMANDS[label]}\n"
                        "try still_mounted grep -q ' /proc proc ' /proc/mounts")
    assert_denied(out, label, E.EPERM)
    assert_succeeded(out, "still_mounted")


@pytest.mark.parametrize("level", POLICY_LEVELS)
@pytest.mark.parametrize("probe", MOUNT_SYSCALLS)
def test_mount_syscalls_are_refused(attack, level, probe):
    out = attack(level, f"try {probe} {ATTACK} {probe}")
    assert_denied(out, probe, E.EPERM)


@pytest.mark.parametrize("level", POLICY_LEVELS)
def test_chroot_escape_stays_inside(attack, level, marker):
    """mkdir x; chroot x; cd ../../..; chroot . -- climbs only to the container's root."""
    out = attack(level, f"cd /tmp\ntry escape {ATTACK} chroot_escape {marker}\n"
                        f"try marker ls {marker}")
    assert out["escape"].fields.get("escaped") == "0", out["escape"]
    assert out["escape"].errno in (0, E.EPERM), out["escape"]  # CAP_SYS_CHROOT is kept
    assert_denied(out, "marker", E.ENOENT)


def test_chroot_level_mounts_and_escapes(attack, marker, host_baseline):
    """At chroot level (real root, no policy) mounts work -- in the test's private mount
    namespace, so nothing reaches the host -- and the chroot escape finds the host's /tmp."""
    script = "".join(f"try {label} {MOUNT_COMMANDS[label]}\ntry u_{label} umount /mnt\n"
                     for label in ("mount_tmpfs", "mount_bind", "mount_proc"))
    script += f"cd /tmp\ntry escape {ATTACK} chroot_escape {marker}\n"
    script += "".join(f"try {p} {ATTACK} {p}\n" for p in MOUNT_SYSCALLS)
    out = attack("chroot", script)
    for label in ("mount_tmpfs", "mount_bind", "mount_proc"):
        assert_succeeded(out, label)
        assert_succeeded(out, f"u_{label}")
    assert_succeeded(out, "escape")
    assert out["escape"].fields["escaped"] == "1", out["escape"]
    for probe in MOUNT_SYSCALLS:
        assert out[probe].errno == host_baseline[probe].errno, (out[probe],
                                                                host_baseline[probe])
